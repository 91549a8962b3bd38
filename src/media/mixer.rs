//! The conference mix, sans-IO: per participant a FIFO of decoded 8 kHz linear samples,
//! and a 20 ms [`Mixer::tick`] that gives each participant the sum of the others.
//!
//! The FIFO is the only jitter handling: packets are decoded into it as they arrive
//! (any packet time works), without reordering; it is bounded so that latency cannot
//! grow, and an input that runs short is padded with silence.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Samples per tick: 20 ms at 8 kHz.
pub const FRAME: usize = 160;
/// Longest FIFO: 200 ms. Beyond it the oldest samples are dropped.
pub const MAX_BUFFERED: usize = 10 * FRAME;

/// What flows between the bridge and one participant, from the bridge's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flow {
    /// The participant's audio is mixed in (the others hear it).
    pub hear: bool,
    /// The mix is sent to the participant.
    pub send: bool,
}

pub type Frame = [i16; FRAME];

struct Input {
    fifo: VecDeque<i16>,
    flow: Flow,
}

/// The mix of one bridge, keyed by participant.
pub struct Mixer<K> {
    inputs: HashMap<K, Input>,
}

impl<K: Copy + Eq + Hash> Default for Mixer<K> {
    fn default() -> Self {
        Self {
            inputs: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> Mixer<K> {
    /// Adds a participant, neither heard nor sent to until [`Mixer::set_flow`].
    pub fn add(&mut self, key: K) {
        self.inputs.entry(key).or_insert_with(|| Input {
            fifo: VecDeque::with_capacity(MAX_BUFFERED),
            flow: Flow::default(),
        });
    }

    pub fn remove(&mut self, key: &K) {
        self.inputs.remove(key);
    }

    pub fn set_flow(&mut self, key: &K, flow: Flow) {
        if let Some(input) = self.inputs.get_mut(key) {
            input.flow = flow;
            if !flow.hear {
                // Audio from before a hold is not played after it.
                input.fifo.clear();
            }
        }
    }

    pub fn flow(&self, key: &K) -> Option<Flow> {
        self.inputs.get(key).map(|i| i.flow)
    }

    /// Queues decoded samples from `key`; returns how many older samples were dropped
    /// to stay within [`MAX_BUFFERED`]. Ignored for a participant that is not heard.
    pub fn push(&mut self, key: &K, samples: &[i16]) -> usize {
        let Some(input) = self.inputs.get_mut(key).filter(|i| i.flow.hear) else {
            return 0;
        };
        let skipped = samples.len().saturating_sub(MAX_BUFFERED);
        let samples = &samples[skipped..];
        let excess = (input.fifo.len() + samples.len()).saturating_sub(MAX_BUFFERED);
        input.fifo.drain(..excess);
        input.fifo.extend(samples);
        skipped + excess
    }

    /// One 20 ms step: takes a frame from every heard participant (silence where short)
    /// and returns, for every participant sent to, the total minus its own frame,
    /// saturated to 16 bits.
    pub fn tick(&mut self) -> Vec<(K, Frame)> {
        let mut total = [0i32; FRAME];
        let mut own: HashMap<K, Frame> = HashMap::new();
        for (key, input) in &mut self.inputs {
            if !input.flow.hear {
                continue;
            }
            let mut frame = [0i16; FRAME];
            let n = input.fifo.len().min(FRAME);
            for (slot, sample) in frame.iter_mut().zip(input.fifo.drain(..n)) {
                *slot = sample;
            }
            for (t, s) in total.iter_mut().zip(frame) {
                *t += i32::from(s);
            }
            own.insert(*key, frame);
        }
        self.inputs
            .iter()
            .filter(|(_, input)| input.flow.send)
            .map(|(key, _)| {
                let mut out = [0i16; FRAME];
                let mine = own.get(key);
                for (i, o) in out.iter_mut().enumerate() {
                    let v = total[i] - mine.map_or(0, |f| i32::from(f[i]));
                    *o = v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                }
                (*key, out)
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }
}

/// Tone generation and detection for the tests of this module and of the bridge.
#[cfg(test)]
pub(crate) mod testing {
    /// `n` samples of a sine at `freq` Hz (8 kHz), starting at sample `start`.
    pub fn tone(freq: f64, amplitude: f64, start: usize, n: usize) -> Vec<i16> {
        (start..start + n)
            .map(|i| {
                let t = i as f64 / 8000.0;
                (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect()
    }

    /// The Goertzel algorithm: the power at `freq` Hz, normalized so that a full-scale
    /// sine gives about 1 and silence 0.
    pub fn goertzel(samples: &[i16], freq: f64) -> f64 {
        let n = samples.len() as f64;
        let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in samples {
            let s = f64::from(x) / 32768.0 + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        power * 4.0 / (n * n)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{goertzel, tone};
    use super::*;

    const BOTH: Flow = Flow {
        hear: true,
        send: true,
    };

    fn mixer(keys: &[u8]) -> Mixer<u8> {
        let mut m = Mixer::default();
        for k in keys {
            m.add(*k);
            m.set_flow(k, BOTH);
        }
        m
    }

    fn frames(m: &mut Mixer<u8>) -> HashMap<u8, Frame> {
        m.tick().into_iter().collect()
    }

    #[test]
    fn each_participant_hears_the_others_and_not_itself() {
        let tones = [(1u8, 400.0), (2, 1000.0), (3, 1800.0)];
        let mut m = mixer(&[1, 2, 3]);
        let mut heard: HashMap<u8, Vec<i16>> = HashMap::new();
        for f in 0..25 {
            for (k, freq) in tones {
                m.push(&k, &tone(freq, 8000.0, f * FRAME, FRAME));
            }
            for (k, frame) in frames(&mut m) {
                heard.entry(k).or_default().extend(frame);
            }
        }
        for (k, own_freq) in tones {
            let audio = &heard[&k];
            assert_eq!(audio.len(), 25 * FRAME);
            let own = goertzel(audio, own_freq);
            for (other, freq) in tones {
                if other != k {
                    let p = goertzel(audio, freq);
                    assert!(
                        p > 0.04 && p > 1000.0 * own,
                        "{k} hears {other}: {p} (own {own})"
                    );
                }
            }
            assert!(own < 1e-6, "{k} hears itself: {own}");
        }
    }

    #[test]
    fn the_sum_saturates() {
        let mut m = mixer(&[1, 2, 3]);
        m.push(&1, &[30_000; FRAME]);
        m.push(&2, &[30_000; FRAME]);
        m.push(&3, &[-30_000; FRAME]);
        let f = frames(&mut m);
        assert_eq!(f[&3][0], i16::MAX);
        assert_eq!(f[&1][0], 0);
        let mut m = mixer(&[1, 2, 3]);
        m.push(&1, &[-30_000; FRAME]);
        m.push(&2, &[-30_000; FRAME]);
        assert_eq!(frames(&mut m)[&3][FRAME - 1], i16::MIN);
    }

    #[test]
    fn muted_participants_are_neither_heard_nor_sent_to() {
        let mut m = mixer(&[1, 2, 3]);
        // 2 holds (sendonly or inactive: muted both ways), 3 only listens (recvonly).
        m.set_flow(&2, Flow::default());
        m.set_flow(
            &3,
            Flow {
                hear: false,
                send: true,
            },
        );
        m.push(&1, &[100; FRAME]);
        assert_eq!(m.push(&2, &[1000; FRAME]), 0);
        m.push(&3, &[10_000; FRAME]);
        let f = frames(&mut m);
        assert!(!f.contains_key(&2));
        assert_eq!(f[&1], [0; FRAME]);
        assert_eq!(f[&3], [100; FRAME]);
        // Resumed: heard again, without what it sent while held.
        m.set_flow(&2, BOTH);
        m.push(&2, &[7; FRAME]);
        let f = frames(&mut m);
        assert_eq!(f[&1], [7; FRAME]);
        assert_eq!(f[&2], [0; FRAME]);
        assert_eq!(f[&3], [7; FRAME]);
    }

    #[test]
    fn short_input_is_padded_and_the_fifo_is_bounded() {
        let mut m = mixer(&[1, 2]);
        // Any packet time: 10 ms now, the rest of the frame is silence.
        m.push(&1, &[5; 80]);
        let f = frames(&mut m);
        assert_eq!(&f[&2][..80], &[5; 80][..]);
        assert_eq!(&f[&2][80..], &[0; 80][..]);
        // 300 ms arrive at once: the oldest 100 ms go.
        let mut dropped = 0;
        for i in 0..15 {
            dropped += m.push(&1, &[i; FRAME]);
        }
        assert_eq!(dropped, 5 * FRAME);
        assert_eq!(frames(&mut m)[&2][0], 5);
        assert_eq!(
            m.push(&1, &[1; 3 * MAX_BUFFERED]),
            2 * MAX_BUFFERED + 9 * FRAME
        );
        // Removed: gone from the mix.
        m.remove(&1);
        assert_eq!(m.len(), 1);
        assert_eq!(frames(&mut m)[&2], [0; FRAME]);
    }

    #[test]
    fn goertzel_finds_a_tone() {
        let t = tone(1000.0, 16384.0, 0, 800);
        assert!((goertzel(&t, 1000.0) - 0.25).abs() < 0.01);
        assert!(goertzel(&t, 400.0) < 1e-3);
    }
}
