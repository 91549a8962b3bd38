//! Floods without credentials (issue 10, items 4 and 5): input that made tsps write
//! megabytes of log per datagram, and connections that exhausted its file descriptors.
//! tsps must answer, keep serving, and write a bounded log.

mod common;

use common::{free_port, status_code, tenant_a_yaml, Tsps, DEVICE_IP};
use std::net::{IpAddr, UdpSocket};
use std::time::Duration;

fn start(env: &[(&str, &str)]) -> Tsps {
    Tsps::start(&tenant_a_yaml(free_port(IpAddr::V4(DEVICE_IP), false)), env)
}

/// An OPTIONS from 1001 whose `X-Junk` header is folded over `lines` continuation
/// lines: about 62 KB with a thousand.
fn folded_options(n: usize, lines: usize) -> String {
    let junk = " bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n".repeat(lines);
    format!(
        "OPTIONS sip:a.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bKfold{n}\r\n\
         From: <sip:1001@a.test>;tag=fold{n}\r\n\
         To: <sip:a.test>\r\n\
         Call-ID: fold-{n}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         X-Junk: a\r\n{junk}\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn datagrams_built_to_flood_the_log_write_a_bounded_trickle() {
    let tsps = start(&[]);
    let before = tsps.log_text().lines().count();
    let socket = UdpSocket::bind((DEVICE_IP, 0)).unwrap();
    let folded = folded_options(0, 1000);
    assert!(folded.len() > 60_000, "{}", folded.len());
    // A hundred of them (before: 13,452 log lines each), every one answered 400.
    for n in 0..100 {
        socket
            .send_to(folded_options(n, 1000).as_bytes(), tsps.sip_addr())
            .unwrap();
    }
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = vec![0u8; 65_536];
    for _ in 0..100 {
        let (len, _) = socket
            .recv_from(&mut buf)
            .expect("every datagram is answered");
        let resp = String::from_utf8_lossy(&buf[..len]);
        assert_eq!(status_code(&resp), Some(400), "{resp}");
        assert!(
            resp.contains("header field longer than 4096 bytes"),
            "{resp}"
        );
    }
    // Thousands of small malformed ones, each of which tsps notes (at debug level in
    // these tests) where it refuses them: one place in the code, rate-limited.
    for n in 0..3000 {
        socket
            .send_to(format!("garbage {n}\r\n\r\n").as_bytes(), tsps.sip_addr())
            .unwrap();
    }
    // Still serving. Sent from the same socket, the OPTIONS is read by the same shard
    // after all of the above, so its answer proves they were handled.
    let options = common::raw::RawUa::bind(DEVICE_IP, &tsps).message(&common::raw::Req {
        method: "OPTIONS",
        uri: "sip:a.test",
        from: "1001@a.test",
        to: "a.test",
        call_id: "after-flood",
        cseq: 1,
        extra: vec![],
    });
    socket.send_to(options.as_bytes(), tsps.sip_addr()).unwrap();
    let ok = loop {
        let (len, _) = socket
            .recv_from(&mut buf)
            .expect("an answer after the flood");
        let resp = String::from_utf8_lossy(&buf[..len]).into_owned();
        if resp.contains("after-flood") {
            break resp;
        }
    };
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    let written = tsps.log_text().lines().count() - before;
    assert!(
        written < 1_000,
        "{written} log lines for 3,100 datagrams:\n{}",
        tsps.log_text()
    );
    let suppressed = common::sample(&tsps.metrics(), "tsps_log_suppressed_total").unwrap();
    assert!(suppressed >= 2_000.0, "{suppressed}");
}
