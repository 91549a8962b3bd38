//! Tone measurement for the media tests: what a party heard, as the amplitude of each
//! party's tone in G.711's 8 kHz samples.

/// G.711's sample rate.
const RATE: f64 = 8000.0;

/// The amplitude of the `freq` component of `samples` at 8 kHz (Goertzel): a sine of
/// amplitude A at a bin frequency gives A.
pub fn goertzel_amplitude(samples: &[i16], freq: f64) -> f64 {
    let n = samples.len() as f64;
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / RATE).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    2.0 * power.sqrt() / n
}
