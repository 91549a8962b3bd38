//! RTP packets (RFC 3550 §5.1): the fixed header, CSRC list, header extension and
//! padding, parsed from and written to bytes. Written by hand: the bridge needs only the
//! 12-byte header, and a malformed packet is an `Err`, never a panic.

/// The fixed part of an RTP header plus the fields the bridge reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrcs: Vec<u32>,
}

/// A parsed packet borrowing its payload from the datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub payload: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("shorter than an RTP header")]
    TooShort,
    #[error("not RTP version 2")]
    Version,
    #[error("CSRC list or header extension beyond the packet")]
    Truncated,
    #[error("padding longer than the payload")]
    Padding,
    #[error("an RTCP packet (payload types 72-76 with the marker: RFC 5761 §4)")]
    Rtcp,
}

const FIXED: usize = 12;

impl<'a> RtpPacket<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        if buf.len() < FIXED {
            return Err(RtpError::TooShort);
        }
        if buf[0] >> 6 != 2 {
            return Err(RtpError::Version);
        }
        let padding = buf[0] & 0x20 != 0;
        let extension = buf[0] & 0x10 != 0;
        let csrc_count = usize::from(buf[0] & 0x0F);
        let marker = buf[1] & 0x80 != 0;
        let payload_type = buf[1] & 0x7F;
        // RTCP sent to the RTP port (rtcp-mux) has packet types 200-204 in this byte.
        if (72..=76).contains(&payload_type) && marker {
            return Err(RtpError::Rtcp);
        }
        let mut at = FIXED + 4 * csrc_count;
        if buf.len() < at {
            return Err(RtpError::Truncated);
        }
        let csrcs = buf[FIXED..at]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if extension {
            // 16 bits profile, 16 bits length in 32-bit words, then the words.
            let head = buf.get(at..at + 4).ok_or(RtpError::Truncated)?;
            let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
            at += 4 + 4 * words;
            if buf.len() < at {
                return Err(RtpError::Truncated);
            }
        }
        let mut end = buf.len();
        if padding {
            // The last octet counts the padding octets, itself included.
            let count = usize::from(buf[end - 1]);
            if count == 0 || count > end - at {
                return Err(RtpError::Padding);
            }
            end -= count;
        }
        Ok(RtpPacket {
            header: RtpHeader {
                marker,
                payload_type,
                sequence: u16::from_be_bytes([buf[2], buf[3]]),
                timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                csrcs,
            },
            payload: &buf[at..end],
        })
    }

    /// Appends the packet to `out` (no extension, no padding; at most 15 CSRCs kept).
    pub fn write(header: &RtpHeader, payload: &[u8], out: &mut Vec<u8>) {
        let csrcs = &header.csrcs[..header.csrcs.len().min(15)];
        out.reserve(FIXED + 4 * csrcs.len() + payload.len());
        out.push(0x80 | csrcs.len() as u8);
        out.push(u8::from(header.marker) << 7 | (header.payload_type & 0x7F));
        out.extend_from_slice(&header.sequence.to_be_bytes());
        out.extend_from_slice(&header.timestamp.to_be_bytes());
        out.extend_from_slice(&header.ssrc.to_be_bytes());
        for c in csrcs {
            out.extend_from_slice(&c.to_be_bytes());
        }
        out.extend_from_slice(payload);
    }
}

/// One outgoing stream: its SSRC, the next sequence number and timestamp (both start
/// random, RFC 3550 §5.1), and the marker on the first packet (a talkspurt begins).
#[derive(Clone, Debug)]
pub struct RtpSender {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    first: bool,
}

impl RtpSender {
    pub fn new(ssrc: u32, sequence: u16, timestamp: u32) -> Self {
        Self {
            ssrc,
            sequence,
            timestamp,
            first: true,
        }
    }

    pub fn random() -> Self {
        Self::new(rand::random(), rand::random(), rand::random())
    }

    /// `samples` pass without a packet (the participant is on hold, or not yet
    /// answered): the timestamp keeps pace with the clock, and the next packet starts a
    /// new talkspurt (marker, RFC 3551 §4.1).
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.first = true;
    }

    /// The next packet carrying `payload` (`samples` long at 8 kHz).
    pub fn packet(&mut self, payload_type: u8, payload: &[u8], samples: u32) -> Vec<u8> {
        let header = RtpHeader {
            marker: std::mem::take(&mut self.first),
            payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            csrcs: Vec::new(),
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        let mut out = Vec::new();
        RtpPacket::write(&header, payload, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(pt: u8, seq: u16) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
            csrcs: vec![],
        }
    }

    #[test]
    fn a_plain_packet_round_trips() {
        let mut h = header(8, 65535);
        h.marker = true;
        h.csrcs = vec![7, 9];
        let mut buf = Vec::new();
        RtpPacket::write(&h, &[1, 2, 3], &mut buf);
        assert_eq!(buf[0], 0x82);
        assert_eq!(buf[1], 0x88);
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, &[1, 2, 3]);
    }

    #[test]
    fn extension_and_padding_are_skipped() {
        let mut buf = vec![0xB0, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 42];
        // Extension: profile 0xBEDE, one word.
        buf.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]);
        buf.extend_from_slice(&[5, 6, 7]);
        // Three octets of padding.
        buf.extend_from_slice(&[0, 0, 3]);
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.payload, &[5, 6, 7]);
        assert_eq!(p.header.sequence, 1);
        assert_eq!(p.header.timestamp, 160);
        assert_eq!(p.header.ssrc, 42);
    }

    #[test]
    fn malformed_packets_are_errors() {
        let ok = {
            let mut b = Vec::new();
            RtpPacket::write(&header(0, 1), &[0; 4], &mut b);
            b
        };
        assert_eq!(RtpPacket::parse(&ok[..11]), Err(RtpError::TooShort));
        let mut v1 = ok.clone();
        v1[0] = 0x40;
        assert_eq!(RtpPacket::parse(&v1), Err(RtpError::Version));
        let mut csrc = ok.clone();
        csrc[0] = 0x8F;
        assert_eq!(RtpPacket::parse(&csrc), Err(RtpError::Truncated));
        let mut ext = ok.clone();
        ext[0] = 0x90;
        ext[14] = 0xFF;
        ext[15] = 0xFF;
        assert_eq!(RtpPacket::parse(&ext), Err(RtpError::Truncated));
        let mut pad = ok.clone();
        pad[0] = 0xA0;
        *pad.last_mut().unwrap() = 0;
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::Padding));
        *pad.last_mut().unwrap() = 5;
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::Padding));
        // An RTCP receiver report (PT 201) on the RTP port.
        let rtcp = [0x81, 201, 0, 1, 0, 0, 0, 1];
        assert_eq!(RtpPacket::parse(&rtcp), Err(RtpError::TooShort));
        let rtcp = [0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(RtpPacket::parse(&rtcp), Err(RtpError::Rtcp));
    }

    #[test]
    fn the_sender_numbers_its_packets() {
        let mut s = RtpSender::new(99, u16::MAX, u32::MAX - 100);
        let a = s.packet(0, &[0xFF; 160], 160);
        let b = s.packet(0, &[0xFF; 160], 160);
        let (a, b) = (RtpPacket::parse(&a).unwrap(), RtpPacket::parse(&b).unwrap());
        assert!(a.header.marker && !b.header.marker);
        assert_eq!((a.header.sequence, b.header.sequence), (u16::MAX, 0));
        assert_eq!(b.header.timestamp, a.header.timestamp.wrapping_add(160));
        assert_eq!((a.header.ssrc, b.header.payload_type), (99, 0));
        assert_eq!(b.payload.len(), 160);
        // 40 ms on hold: same sequence, the clock moved on, a new talkspurt.
        s.skip(320);
        let c = RtpPacket::parse(&s.packet(0, &[0xFF; 160], 160))
            .unwrap()
            .header;
        assert!(c.marker);
        assert_eq!(c.sequence, 1);
        assert_eq!(c.timestamp, b.header.timestamp.wrapping_add(160 + 320));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = RtpPacket::parse(&bytes);
        }

        #[test]
        fn arbitrary_rtp_like_bytes_never_panic(
            first in any::<u8>(),
            rest in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            // Version 2 forced, so parsing goes past the first check.
            let mut b = vec![(first & 0x3F) | 0x80];
            b.extend(rest);
            if let Ok(p) = RtpPacket::parse(&b) {
                prop_assert!(p.payload.len() <= b.len());
            }
        }

        #[test]
        fn write_then_parse_is_identity(
            marker in any::<bool>(), pt in 0u8..72, seq in any::<u16>(), ts in any::<u32>(),
            ssrc in any::<u32>(), csrcs in proptest::collection::vec(any::<u32>(), 0..15),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let h = RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc, csrcs };
            let mut b = Vec::new();
            RtpPacket::write(&h, &payload, &mut b);
            let p = RtpPacket::parse(&b).unwrap();
            prop_assert_eq!(p.header, h);
            prop_assert_eq!(p.payload, &payload[..]);
        }
    }
}
