//! The bridge's session descriptions (RFC 4566 SDP, RFC 3264 offer/answer): tsps's offer
//! to a participant, the reading of a participant's answer or offer, and tsps's answer.
//!
//! Written by hand: the bridge reads one audio stream's address, port, payload types and
//! direction, and writes a fixed template; the SDP crates parse far more (and reject
//! more of what real phones send). Unknown lines are skipped, not errors.

use super::g711::Codec;
use super::mixer::Flow;
use std::net::{IpAddr, Ipv4Addr};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("not UTF-8 text")]
    NotText,
    #[error("no audio stream")]
    NoAudio,
    #[error("bad media line: {0:?}")]
    BadMedia(String),
    #[error("unsupported transport profile {0:?} (the bridge speaks RTP/AVP)")]
    Profile(String),
    #[error("bad or missing connection address: {0:?}")]
    Connection(String),
    #[error("no codec in common")]
    NoCommonCodec,
}

/// An SDP direction attribute (RFC 3264 §5.1), as written by whoever wrote the SDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn parse(attr: &str) -> Option<Direction> {
        match attr {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// A participant's audio stream, read from its offer or answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerMedia {
    /// The connection address: media-level `c=` over session-level.
    pub address: IpAddr,
    /// 0: the stream is rejected (in an answer) or disabled (in an offer).
    pub port: u16,
    /// The payload types of the `m=` line, in the peer's order of preference.
    pub payload_types: Vec<u8>,
    /// The payload type the peer gave `telephone-event/8000` (RFC 4733), if any.
    pub telephone_event: Option<u8>,
    pub direction: Direction,
}

impl PeerMedia {
    /// The first of PCMU and PCMA in the peer's order.
    pub fn codec(&self) -> Option<Codec> {
        self.payload_types
            .iter()
            .find_map(|&pt| Codec::from_payload_type(pt))
    }

    /// `c=0.0.0.0` (RFC 2543 hold, still sent by some phones).
    pub fn is_hold_address(&self) -> bool {
        self.address.is_unspecified()
    }

    /// The conference's rule: a participant that holds (sendonly, inactive, hold
    /// address) or rejected the stream is muted both ways, so its music on hold is never
    /// mixed in; one that only listens (recvonly) is sent to but not heard.
    pub fn flow(&self) -> Flow {
        if self.port == 0 || self.is_hold_address() {
            return Flow::default();
        }
        match self.direction {
            Direction::SendRecv => Flow {
                hear: true,
                send: true,
            },
            Direction::RecvOnly => Flow {
                hear: false,
                send: true,
            },
            Direction::SendOnly | Direction::Inactive => Flow::default(),
        }
    }

    /// The direction tsps answers this offer with (the mirror of [`PeerMedia::flow`]).
    pub fn answer_direction(&self) -> Direction {
        match self.flow() {
            Flow {
                hear: true,
                send: true,
            } => Direction::SendRecv,
            Flow { send: true, .. } => Direction::SendOnly,
            Flow { hear: true, .. } => Direction::RecvOnly,
            _ => Direction::Inactive,
        }
    }
}

/// Reads the first audio stream of a peer's SDP.
pub fn parse(sdp: &[u8]) -> Result<PeerMedia, SdpError> {
    let text = std::str::from_utf8(sdp).map_err(|_| SdpError::NotText)?;
    let mut session_c: Option<IpAddr> = None;
    let mut session_dir: Option<Direction> = None;
    // The first m=audio line's port and payload types, and what its section says.
    let mut audio: Option<(u16, Vec<u8>)> = None;
    let mut media_c: Option<IpAddr> = None;
    let mut media_dir: Option<Direction> = None;
    let mut telephone_event: Option<u8> = None;
    // Which section the lines belong to: the session, the first audio stream, or another.
    enum Section {
        Session,
        Audio,
        Other,
    }
    let mut section = Section::Session;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        match (kind, &section) {
            ("m", _) => {
                if audio.is_some() || !value.starts_with("audio ") {
                    section = Section::Other;
                    continue;
                }
                audio = Some(parse_media(value)?);
                section = Section::Audio;
            }
            ("c", Section::Session) => session_c = Some(parse_connection(value)?),
            ("c", Section::Audio) => media_c = Some(parse_connection(value)?),
            ("a", Section::Session) => session_dir = Direction::parse(value).or(session_dir),
            ("a", Section::Audio) => {
                if let Some(d) = Direction::parse(value) {
                    media_dir = Some(d);
                } else if let Some(pt) = telephone_event_pt(value) {
                    telephone_event = Some(pt);
                }
            }
            _ => {}
        }
    }
    let (port, payload_types) = audio.ok_or(SdpError::NoAudio)?;
    let address = match media_c.or(session_c) {
        Some(a) => a,
        // A rejected stream needs no address.
        None if port == 0 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        None => return Err(SdpError::Connection("none".into())),
    };
    Ok(PeerMedia {
        address,
        port,
        telephone_event: telephone_event.filter(|pt| payload_types.contains(pt)),
        payload_types,
        direction: media_dir.or(session_dir).unwrap_or(Direction::SendRecv),
    })
}

/// `audio <port>[/<count>] <proto> <fmt> ...`
fn parse_media(value: &str) -> Result<(u16, Vec<u8>), SdpError> {
    let bad = || SdpError::BadMedia(value.to_string());
    let mut words = value.split_ascii_whitespace().skip(1);
    let port = words.next().ok_or_else(bad)?;
    let port = port.split('/').next().unwrap_or(port);
    let port: u16 = port.parse().map_err(|_| bad())?;
    let proto = words.next().ok_or_else(bad)?;
    // AVPF (RFC 4585) is AVP with feedback the bridge does not send: fine.
    if proto != "RTP/AVP" && proto != "RTP/AVPF" {
        return Err(SdpError::Profile(proto.to_string()));
    }
    let pts = words
        .map(|w| w.parse::<u8>().ok().filter(|pt| *pt < 128).ok_or_else(bad))
        .collect::<Result<Vec<u8>, _>>()?;
    if pts.is_empty() {
        return Err(bad());
    }
    Ok((port, pts))
}

/// `IN IP4 <address>[/<ttl>]` or `IN IP6 <address>`; names are not resolved.
fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    let bad = || SdpError::Connection(value.to_string());
    let mut words = value.split_ascii_whitespace();
    if words.next() != Some("IN") {
        return Err(bad());
    }
    let family = words.next().ok_or_else(bad)?;
    let address = words.next().ok_or_else(bad)?;
    let address = address.split('/').next().unwrap_or(address);
    let ip: IpAddr = address.parse().map_err(|_| bad())?;
    match (family, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err(bad()),
    }
}

/// `rtpmap:<pt> telephone-event/8000`
fn telephone_event_pt(value: &str) -> Option<u8> {
    let rest = value.strip_prefix("rtpmap:")?;
    let (pt, encoding) = rest.split_once(' ')?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next()?;
    let rate = parts.next()?;
    (name.eq_ignore_ascii_case("telephone-event") && rate == "8000")
        .then(|| pt.parse().ok())
        .flatten()
}

/// The `o=` line's session id and version: one per participant, the version rising with
/// every description tsps writes for it (RFC 3264 §8).
#[derive(Clone, Debug)]
pub struct Origin {
    session_id: u64,
    version: u64,
}

impl Origin {
    pub fn new(session_id: u64) -> Self {
        Self {
            session_id,
            version: 0,
        }
    }

    pub fn random() -> Self {
        // Kept below 2^62: some parsers read the numbers as signed 64-bit.
        Self::new(rand::random::<u64>() >> 2)
    }

    /// The next version, for a new description.
    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    pub fn version(&self) -> u64 {
        self.version
    }
}

/// The dynamic payload type tsps offers for RFC 4733 events.
pub const TELEPHONE_EVENT_PT: u8 = 101;

fn family(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn head(origin: &mut Origin, address: IpAddr) -> String {
    let version = origin.bump();
    let f = family(address);
    format!(
        "v=0\r\no=tsps {} {version} IN {f} {address}\r\ns=tsps\r\nc=IN {f} {address}\r\nt=0 0\r\n",
        origin.session_id
    )
}

/// tsps's offer to a participant: PCMU, PCMA and telephone-event, 20 ms, sendrecv.
pub fn write_offer(origin: &mut Origin, address: IpAddr, port: u16) -> String {
    let te = TELEPHONE_EVENT_PT;
    format!(
        "{}m=audio {port} RTP/AVP 0 8 {te}\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n\
         a=ptime:20\r\na=sendrecv\r\n",
        head(origin, address)
    )
}

/// tsps's answer to a participant's offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub sdp: String,
    /// None when the offer disabled the stream (port 0): the answer rejects it too.
    pub codec: Option<Codec>,
}

/// Answers `offer` on `port`: the peer's preferred codec among PCMU and PCMA, its
/// telephone-event type if offered, and the direction of [`PeerMedia::answer_direction`].
pub fn write_answer(
    origin: &mut Origin,
    address: IpAddr,
    port: u16,
    offer: &PeerMedia,
) -> Result<Answer, SdpError> {
    if offer.port == 0 {
        // RFC 3264 §6: a rejected stream keeps its m= line, with port 0.
        let pts: Vec<String> = offer.payload_types.iter().map(u8::to_string).collect();
        let sdp = format!(
            "{}m=audio 0 RTP/AVP {}\r\n",
            head(origin, address),
            pts.join(" ")
        );
        return Ok(Answer { sdp, codec: None });
    }
    let codec = offer.codec().ok_or(SdpError::NoCommonCodec)?;
    let pt = codec.payload_type();
    let mut sdp = head(origin, address);
    match offer.telephone_event {
        Some(te) => sdp.push_str(&format!(
            "m=audio {port} RTP/AVP {pt} {te}\r\na=rtpmap:{pt} {}/8000\r\n\
             a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n",
            codec.name()
        )),
        None => sdp.push_str(&format!(
            "m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {}/8000\r\n",
            codec.name()
        )),
    }
    sdp.push_str(&format!(
        "a=ptime:20\r\na={}\r\n",
        offer.answer_direction().attribute()
    ));
    Ok(Answer {
        sdp,
        codec: Some(codec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const PHONE: &str = "v=0\r\n\
        o=- 1 1 IN IP4 192.0.2.10\r\n\
        s=-\r\n\
        c=IN IP4 192.0.2.10\r\n\
        t=0 0\r\n\
        m=audio 4000 RTP/AVP 8 0 96\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:96 telephone-event/8000\r\n\
        a=fmtp:96 0-15\r\n\
        a=sendrecv\r\n";

    #[test]
    fn the_offer_lists_both_codecs_and_events() {
        let mut o = Origin::new(42);
        let sdp = write_offer(&mut o, v4("198.51.100.1"), 20000);
        assert!(sdp.contains("o=tsps 42 1 IN IP4 198.51.100.1\r\n"), "{sdp}");
        assert!(sdp.contains("c=IN IP4 198.51.100.1\r\n"));
        assert!(sdp.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"));
        for line in [
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ] {
            assert!(sdp.contains(&format!("{line}\r\n")), "{line} in {sdp}");
        }
        // A second description for the same leg has a higher version.
        let again = write_offer(&mut o, v4("198.51.100.1"), 20000);
        assert!(again.contains("o=tsps 42 2 IN IP4"), "{again}");
        let v6 = write_offer(&mut Origin::new(1), v4("2001:db8::1"), 20002);
        assert!(v6.contains("c=IN IP6 2001:db8::1\r\n"), "{v6}");
        // tsps reads its own offer back.
        let p = parse(sdp.as_bytes()).unwrap();
        assert_eq!(p.payload_types, vec![0, 8, 101]);
        assert_eq!(p.telephone_event, Some(101));
        assert_eq!(p.codec(), Some(Codec::Pcmu));
    }

    #[test]
    fn a_phone_answer_is_read() {
        let p = parse(PHONE.as_bytes()).unwrap();
        assert_eq!(p.address, v4("192.0.2.10"));
        assert_eq!(p.port, 4000);
        assert_eq!(p.payload_types, vec![8, 0, 96]);
        assert_eq!(p.codec(), Some(Codec::Pcma));
        assert_eq!(p.telephone_event, Some(96));
        assert_eq!(p.direction, Direction::SendRecv);
        assert_eq!(
            p.flow(),
            Flow {
                hear: true,
                send: true
            }
        );
    }

    #[test]
    fn media_level_connection_and_direction_win() {
        let sdp = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n\
                   a=sendonly\n\
                   m=video 5000 RTP/AVP 96\nc=IN IP4 192.0.2.99\na=inactive\n\
                   m=audio 4002 RTP/AVP 0\nc=IN IP4 192.0.2.2/127\na=recvonly\n";
        let p = parse(sdp.as_bytes()).unwrap();
        assert_eq!(p.address, v4("192.0.2.2"));
        assert_eq!(p.port, 4002);
        assert_eq!(p.direction, Direction::RecvOnly);
        assert_eq!(
            p.flow(),
            Flow {
                hear: false,
                send: true
            }
        );
        // Without a media-level attribute the session-level one applies.
        let sdp = "v=0\nc=IN IP6 2001:db8::7\na=sendonly\nm=audio 4002 RTP/AVP 0\n";
        let p = parse(sdp.as_bytes()).unwrap();
        assert_eq!(p.address, v4("2001:db8::7"));
        assert_eq!(p.direction, Direction::SendOnly);
        assert_eq!(p.flow(), Flow::default());
    }

    #[test]
    fn hold_and_rejection() {
        let hold = PHONE.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
        let p = parse(hold.as_bytes()).unwrap();
        assert!(p.is_hold_address());
        assert_eq!(p.flow(), Flow::default());
        assert_eq!(p.answer_direction(), Direction::Inactive);
        for (attr, answer) in [
            ("sendrecv", Direction::SendRecv),
            ("sendonly", Direction::Inactive),
            ("recvonly", Direction::SendOnly),
            ("inactive", Direction::Inactive),
        ] {
            let sdp = PHONE.replace("a=sendrecv", &format!("a={attr}"));
            assert_eq!(
                parse(sdp.as_bytes()).unwrap().answer_direction(),
                answer,
                "{attr}"
            );
        }
        let rejected = PHONE.replace("m=audio 4000", "m=audio 0");
        let p = parse(rejected.as_bytes()).unwrap();
        assert_eq!(p.port, 0);
        assert_eq!(p.flow(), Flow::default());
        let a = write_answer(&mut Origin::new(7), v4("198.51.100.1"), 20000, &p).unwrap();
        assert_eq!(a.codec, None);
        assert!(a.sdp.contains("m=audio 0 RTP/AVP 8 0 96\r\n"), "{}", a.sdp);
    }

    #[test]
    fn answers_take_the_peer_preference_and_mirror_the_direction() {
        let p = parse(PHONE.as_bytes()).unwrap();
        let a = write_answer(&mut Origin::new(7), v4("198.51.100.1"), 20000, &p).unwrap();
        assert_eq!(a.codec, Some(Codec::Pcma));
        assert!(
            a.sdp.contains("m=audio 20000 RTP/AVP 8 96\r\n"),
            "{}",
            a.sdp
        );
        assert!(a.sdp.contains("a=rtpmap:96 telephone-event/8000\r\n"));
        assert!(a.sdp.contains("a=sendrecv\r\n"));
        let held = PHONE.replace("a=sendrecv", "a=sendonly");
        let p = parse(held.as_bytes()).unwrap();
        let a = write_answer(&mut Origin::new(7), v4("198.51.100.1"), 20000, &p).unwrap();
        assert!(a.sdp.contains("a=inactive\r\n"), "{}", a.sdp);
        let ulaw_only = "v=0\nc=IN IP4 192.0.2.3\nm=audio 4000 RTP/AVP 18 0\n";
        let p = parse(ulaw_only.as_bytes()).unwrap();
        let a = write_answer(&mut Origin::new(7), v4("198.51.100.1"), 20000, &p).unwrap();
        assert_eq!(a.codec, Some(Codec::Pcmu));
        assert!(a.sdp.contains("m=audio 20000 RTP/AVP 0\r\n"), "{}", a.sdp);
        let g729 = "v=0\nc=IN IP4 192.0.2.3\nm=audio 4000 RTP/AVP 18\n";
        let p = parse(g729.as_bytes()).unwrap();
        assert_eq!(
            write_answer(&mut Origin::new(7), v4("198.51.100.1"), 20000, &p),
            Err(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn unusable_descriptions_are_errors() {
        assert_eq!(parse(b"\xff\xfe"), Err(SdpError::NotText));
        assert_eq!(
            parse(b"v=0\nc=IN IP4 192.0.2.1\nm=video 4000 RTP/AVP 96\n"),
            Err(SdpError::NoAudio)
        );
        assert!(matches!(
            parse(b"v=0\nm=audio 4000 RTP/AVP 0\n"),
            Err(SdpError::Connection(_))
        ));
        assert!(matches!(
            parse(b"v=0\nc=IN IP4 phone.example\nm=audio 4000 RTP/AVP 0\n"),
            Err(SdpError::Connection(_))
        ));
        assert!(matches!(
            parse(b"v=0\nc=IN IP6 192.0.2.1\nm=audio 4000 RTP/AVP 0\n"),
            Err(SdpError::Connection(_))
        ));
        assert!(matches!(
            parse(b"v=0\nc=IN IP4 192.0.2.1\nm=audio 4000 RTP/SAVP 0\n"),
            Err(SdpError::Profile(_))
        ));
        assert!(matches!(
            parse(b"v=0\nc=IN IP4 192.0.2.1\nm=audio 99999 RTP/AVP 0\n"),
            Err(SdpError::BadMedia(_))
        ));
        assert!(matches!(
            parse(b"v=0\nc=IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP\n"),
            Err(SdpError::BadMedia(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "(?s).{0,400}") {
            let _ = parse(s.as_bytes());
        }

        #[test]
        fn arbitrary_lines_never_panic(lines in proptest::collection::vec(
            "[vocmat]=[ -~]{0,40}", 0..12)) {
            let _ = parse(lines.join("\r\n").as_bytes());
        }
    }
}
