//! G.711 (ITU-T G.711, 1988): µ-law (PCMU, RTP payload type 0) and A-law (PCMA, 8)
//! companding of 16-bit linear samples, the classic segment/mantissa algorithms.
//!
//! Written here rather than taken from a crate: it is sixty lines, and the one small
//! well-kept crate (audio-codec-algorithms) needs a newer Rust than the workspace's
//! rust-version. Decoding goes through 256-entry tables built at compile time.

/// The two codecs the bridge mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551 table 4).
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub const fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The encoding name in an SDP rtpmap.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        match self {
            Codec::Pcmu => out.extend(pcm.iter().map(|&s| encode_ulaw(s))),
            Codec::Pcma => out.extend(pcm.iter().map(|&s| encode_alaw(s))),
        }
    }

    pub fn decode(self, payload: &[u8], out: &mut Vec<i16>) {
        let table = match self {
            Codec::Pcmu => &ULAW_DECODE,
            Codec::Pcma => &ALAW_DECODE,
        };
        out.extend(payload.iter().map(|&b| table[b as usize]));
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// Linear → µ-law: bias, find the segment (the highest set bit), keep four mantissa
/// bits, invert (G.711 transmits µ-law codes complemented).
pub fn encode_ulaw(pcm: i16) -> u8 {
    let mut x = i32::from(pcm);
    let mask = if x < 0 {
        x = -x;
        0x7F
    } else {
        0xFF
    };
    x = x.min(ULAW_CLIP) + ULAW_BIAS;
    // x is in 0x84..=0x7FFF: its highest bit is 7..=14, the segment 0..=7.
    let seg = (31 - x.leading_zeros() as i32) - 7;
    let code = (seg << 4) | ((x >> (seg + 3)) & 0x0F);
    (code ^ mask) as u8
}

pub fn decode_ulaw(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code as i32;
    let t = (((u & 0x0F) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

/// Linear → A-law: 13 significant bits, segment and mantissa, even bits inverted
/// (the 0x55 mask of G.711).
pub fn encode_alaw(pcm: i16) -> u8 {
    let mut x = i32::from(pcm) >> 3;
    let mask = if x >= 0 {
        0xD5
    } else {
        x = -x - 1;
        0x55
    };
    // x is in 0..=4095: segment 0 up to 0x1F, then one per bit above bit 4.
    let seg = if x <= 0x1F {
        0
    } else {
        (31 - x.leading_zeros() as i32) - 4
    };
    let shift = if seg < 2 { 1 } else { seg };
    let code = (seg << 4) | ((x >> shift) & 0x0F);
    (code ^ mask) as u8
}

pub fn decode_alaw(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

const fn alaw_to_linear(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_to_linear(i as u8)
        } else {
            ulaw_to_linear(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW_DECODE: [i16; 256] = table(false);
static ALAW_DECODE: [i16; 256] = table(true);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Silence.
        assert_eq!(encode_ulaw(0), 0xFF);
        assert_eq!(encode_alaw(0), 0xD5);
        assert_eq!(decode_ulaw(0xFF), 0);
        assert_eq!(decode_ulaw(0x7F), 0);
        assert_eq!(decode_alaw(0xD5), 8);
        assert_eq!(decode_alaw(0x55), -8);
        // Full scale (the ITU tables' extremes).
        assert_eq!(decode_ulaw(0x80), 32124);
        assert_eq!(decode_ulaw(0x00), -32124);
        assert_eq!(decode_alaw(0xAA), 32256);
        assert_eq!(decode_alaw(0x2A), -32256);
        assert_eq!(encode_ulaw(i16::MAX), 0x80);
        assert_eq!(encode_ulaw(i16::MIN), 0x00);
        assert_eq!(encode_alaw(i16::MAX), 0xAA);
        assert_eq!(encode_alaw(i16::MIN), 0x2A);
        // A few from the middle of the G.191 reference tables.
        assert_eq!(decode_alaw(0x00), -5504);
        assert_eq!(decode_alaw(0x80), 5504);
        assert_eq!(decode_ulaw(0x7E), -8);
        assert_eq!(decode_ulaw(0xEF), 132);
        assert_eq!(decode_ulaw(0x6F), -132);
        assert_eq!(encode_ulaw(1000), 0xCE);
        assert_eq!(encode_alaw(1000), 0xFA);
    }

    #[test]
    fn every_code_survives_a_round_trip() {
        for code in 0..=255u8 {
            assert_eq!(encode_alaw(decode_alaw(code)), code, "A-law {code:#04x}");
            // µ-law has two zeros; +0 (0xFF) is the one the encoder writes.
            if code != 0x7F {
                assert_eq!(encode_ulaw(decode_ulaw(code)), code, "µ-law {code:#04x}");
            }
        }
    }

    #[test]
    fn round_trip_error_is_bounded_over_the_whole_range() {
        for x in i16::MIN..=i16::MAX {
            let m = i32::from(x).abs();
            // Half a quantization step, which grows with the segment.
            let u = i32::from(decode_ulaw(encode_ulaw(x))) - i32::from(x);
            assert!(u.abs() <= (m + 132) / 32 + 1, "µ-law {x}: error {u}");
            let a = i32::from(decode_alaw(encode_alaw(x))) - i32::from(x);
            assert!(a.abs() <= (m / 16).max(16), "A-law {x}: error {a}");
        }
    }

    #[test]
    fn decoding_is_monotonic_in_the_code_order() {
        // Code order by magnitude: µ-law 0x80..0xFF is +max..+0, A-law is segment order
        // after undoing the even-bit inversion.
        let ulaw: Vec<i16> = (0x80..=0xFFu8).rev().map(decode_ulaw).collect();
        assert!(ulaw.windows(2).all(|w| w[0] < w[1]), "{ulaw:?}");
        let alaw: Vec<i16> = (0..=0x7Fu8)
            .map(|c| decode_alaw((c | 0x80) ^ 0x55))
            .collect();
        assert!(alaw.windows(2).all(|w| w[0] < w[1]), "{alaw:?}");
    }

    #[test]
    fn codec_round_trips_a_buffer() {
        let pcm: Vec<i16> = (0..160).map(|i| (i * 200 - 16000) as i16).collect();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut bytes = Vec::new();
            codec.encode(&pcm, &mut bytes);
            assert_eq!(bytes.len(), 160);
            let mut back = Vec::new();
            codec.decode(&bytes, &mut back);
            for (a, b) in pcm.iter().zip(&back) {
                assert!((a - b).abs() <= 1024, "{codec:?}: {a} vs {b}");
            }
            assert_eq!(Codec::from_payload_type(codec.payload_type()), Some(codec));
        }
    }
}
