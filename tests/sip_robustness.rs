//! Bad input over the wire: raw datagrams and TCP streams from the test itself. Each
//! test ends with an OPTIONS ping from SIPp that must get 200, i.e. the process did not
//! panic, and its listeners still serve.

mod common;

use common::{free_port, header, status_code, status_line, tenant_a_yaml, Tsps, DEVICE_IP};
use std::net::IpAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(2);

fn start() -> Tsps {
    Tsps::start(&tenant_a_yaml(free_port(IpAddr::V4(DEVICE_IP), false)), &[])
}

/// A request from 1001 of a.test with the given method, extra headers and body, in
/// wire format. `omit` drops a header by name (to build malformed requests).
fn request(method: &str, uri: &str, extra: &[&str], omit: &str, body: &str) -> String {
    let branch = format!("z9hG4bK{}", uuid::Uuid::new_v4().simple());
    let call_id = format!("{}@127.0.0.1", uuid::Uuid::new_v4().simple());
    let mut headers = vec![
        format!("Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch={branch}"),
        "From: <sip:1001@a.test>;tag=robust1".to_string(),
        format!("To: <{uri}>"),
        format!("Call-ID: {call_id}"),
        format!("CSeq: 1 {method}"),
        "Max-Forwards: 70".to_string(),
    ];
    headers.retain(|h| {
        !h.to_ascii_lowercase()
            .starts_with(&format!("{}:", omit.to_ascii_lowercase()))
    });
    headers.extend(extra.iter().map(|h| h.to_string()));
    headers.push(format!("Content-Length: {}", body.len()));
    format!(
        "{method} {uri} SIP/2.0\r\n{}\r\n\r\n{body}",
        headers.join("\r\n")
    )
}

#[test]
fn garbage_datagrams_get_nothing_or_400() {
    let tsps = start();
    let garbage: [&[u8]; 4] = [
        b"\x00\x01\x02\x03\xff\xfe",
        b"hello world\r\n\r\n",
        b"INVITE\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",
    ];
    for g in garbage {
        if let Some(resp) = tsps.udp_exchange(g, Duration::from_millis(500)) {
            assert_eq!(
                status_code(&resp),
                Some(400),
                "garbage {:?} got: {}",
                String::from_utf8_lossy(g),
                status_line(&resp)
            );
        }
    }
    tsps.assert_alive();
}

/// RFC 3261 §8.2.6.2: a response copies the request's Call-ID, so without one no
/// response can be formed and the request is dropped (and nothing breaks).
#[test]
fn missing_call_id_is_dropped() {
    let tsps = start();
    let msg = request("OPTIONS", "sip:a.test", &[], "Call-ID", "");
    let resp = tsps.udp_exchange(msg.as_bytes(), WAIT);
    assert_eq!(resp, None, "no response can be formed without Call-ID");
    tsps.assert_alive();
}

#[test]
fn unparseable_cseq_gets_400() {
    let tsps = start();
    let msg = request("OPTIONS", "sip:a.test", &["CSeq: x OPTIONS"], "CSeq", "");
    let resp = tsps
        .udp_exchange(msg.as_bytes(), WAIT)
        .expect("a request with a broken CSeq gets a response");
    assert_eq!(status_code(&resp), Some(400), "{resp}");
    tsps.assert_alive();
}

#[test]
fn unknown_method_gets_501() {
    let tsps = start();
    let msg = request("FOO", "sip:a.test", &[], "", "");
    let resp = tsps
        .udp_final_response(msg.as_bytes(), WAIT)
        .expect("FOO gets a response");
    assert_eq!(status_code(&resp), Some(501), "{resp}");
    assert_eq!(header(&resp, "CSeq"), Some("1 FOO"), "{resp}");
    tsps.assert_alive();
}

#[test]
fn max_forwards_zero_gets_483() {
    let tsps = start();
    let msg = request(
        "INVITE",
        "sip:1002@a.test",
        &["Max-Forwards: 0", "Contact: <sip:1001@127.0.0.1:5999>"],
        "Max-Forwards",
        "",
    );
    let resp = tsps
        .udp_final_response(msg.as_bytes(), WAIT)
        .expect("INVITE gets a final response");
    assert_eq!(status_code(&resp), Some(483), "{resp}");
    tsps.assert_alive();
}

#[test]
fn oversized_message_over_tcp_gets_513() {
    let tsps = start();
    let body = "a".repeat(70 * 1024);
    let msg = request(
        "OPTIONS",
        "sip:a.test",
        &["Content-Type: text/plain"],
        "",
        &body,
    )
    .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let resp = tsps.tcp_exchange(msg.as_bytes(), Duration::from_secs(5));
    assert_eq!(status_code(&resp), Some(513), "got: {resp:?}");
    tsps.assert_alive();
}

#[test]
fn all_of_it_in_a_row_leaves_tsps_serving() {
    let tsps = start();
    let _ = tsps.udp_exchange(b"\xff\xfe\xfd", Duration::from_millis(200));
    let no_call_id = request("OPTIONS", "sip:a.test", &[], "Call-ID", "");
    let _ = tsps.udp_exchange(no_call_id.as_bytes(), WAIT);
    let foo = request("FOO", "sip:a.test", &[], "", "");
    let _ = tsps.udp_exchange(foo.as_bytes(), WAIT);
    let big = request("OPTIONS", "sip:a.test", &[], "", &"b".repeat(70 * 1024))
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let _ = tsps.tcp_exchange(big.as_bytes(), Duration::from_secs(3));
    // A truncated TCP message whose peer goes away mid-way.
    let _ = tsps.tcp_exchange(
        b"OPTIONS sip:a.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1",
        Duration::from_millis(300),
    );

    let ok = request("OPTIONS", "sip:a.test", &[], "", "");
    let resp = tsps
        .udp_exchange(ok.as_bytes(), WAIT)
        .expect("OPTIONS gets a response");
    assert_eq!(status_code(&resp), Some(200), "{resp}");
    tsps.assert_alive();
}

/// Overload control (issue 12, src/sip/overload.rs): with a queue age limit of zero,
/// every message that waited in a shard's mailbox (TCP ones do) counts as late, so a
/// REGISTER is refused with 503 and the configured Retry-After before any work (no
/// digest challenge), and counted; an OPTIONS, which starts no work, is answered.
#[test]
fn an_overloaded_shard_refuses_a_register_with_503_and_retry_after() {
    let tsps = Tsps::start(
        &tenant_a_yaml(free_port(IpAddr::V4(DEVICE_IP), false)),
        &[
            ("TSPS_SIP__OVERLOAD_QUEUE_AGE_MS", "0"),
            ("TSPS_SIP__OVERLOAD_RETRY_AFTER_SECS", "7"),
        ],
    );
    let request = |method: &str, n: u32| {
        format!(
            "{method} sip:a.test SIP/2.0\r\n\
             Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-overload-{n}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:1001@a.test>;tag=ov{n}\r\n\
             To: <sip:1001@a.test>\r\n\
             Call-ID: overload-{n}@127.0.0.1\r\n\
             CSeq: 1 {method}\r\n\
             Contact: <sip:1001@127.0.0.1:5999;transport=tcp>\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let refused = tsps.tcp_exchange(request("REGISTER", 1).as_bytes(), WAIT);
    assert_eq!(status_code(&refused), Some(503), "{refused}");
    assert_eq!(header(&refused, "Retry-After"), Some("7"), "{refused}");
    assert!(!refused.contains("WWW-Authenticate"), "no work: {refused}");

    let options = tsps.tcp_exchange(request("OPTIONS", 2).as_bytes(), WAIT);
    assert_eq!(status_code(&options), Some(200), "{options}");

    let refusals = common::sample(
        &tsps.metrics(),
        "tsps_sip_overload_refused_total{method=\"REGISTER\"}",
    );
    assert_eq!(refusals, Some(1.0));
}
