//! The HTTP accept loop (axum::serve has no connection limit and no header timeout):
//! connections are limited in all and per source address (`transport::limit`, held
//! for a WebSocket's whole life too), a request head must arrive within the header
//! timeout (which also closes an idle keep-alive connection), an `accept` that fails
//! backs off instead of spinning, and hyper's own answers to requests it cannot parse
//! (an over-long URI, headers too large, not HTTP) get a JSON body like every other
//! error of the API.

use crate::transport::limit::{self, AcceptBackoff, ConnStats, ConnectionLimiter, Permit};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

/// Serves `app` on `listener` until `cancel`; then lets requests in progress finish (5 s
/// at most).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limiter: Arc<ConnectionLimiter>,
    header_timeout: Duration,
    cancel: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let mut backoff = AcceptBackoff::default();
    loop {
        let (stream, addr) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) if limit::is_connection_error(&e) => continue,
                Err(e) => {
                    limiter.stats().accept_errors.fetch_add(1, Relaxed);
                    let wait = backoff.failed();
                    warn!(error = %e, wait_ms = wait.as_millis() as u64, "http accept failed");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            },
        };
        backoff.succeeded();
        let permit = match limiter.acquire(addr.ip()) {
            Ok(p) => p,
            Err(why) => {
                debug!(%addr, ?why, "http connection refused: over the limit");
                continue;
            }
        };
        // Pushed events are small writes: without TCP_NODELAY, Nagle's algorithm meets
        // the browser's delayed ACK and each one waits about 40 ms.
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let (app, cancel, stats) = (app.clone(), cancel.clone(), limiter.stats().clone());
        tracker.spawn(connection(
            stream,
            addr,
            permit,
            app,
            header_timeout,
            cancel,
            stats,
        ));
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
}

async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    permit: Permit,
    app: Router,
    header_timeout: Duration,
    cancel: CancellationToken,
    stats: Arc<ConnStats>,
) {
    // The login limiter counts failures per client address (`ConnectInfo`).
    let svc = app.map_request(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(addr));
        req
    });
    let svc = TowerToHyperService::new(svc);
    // HTTP/1.1 only (browsers speak HTTP/2 over TLS alone): its head timer starts at
    // once, so a connection that never sends a byte is closed too.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let io = TokioIo::new(Guarded::new(stream, permit));
    let conn = builder.serve_connection(io, svc).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            stats.closed_slow.fetch_add(1, Relaxed);
        }
        debug!(%addr, error = %e, "http connection ended with an error");
    }
}

/// A connection's socket with its place in the limits (kept by a WebSocket after the
/// upgrade, since the socket goes with it), which rewrites hyper's own error answers.
struct Guarded {
    inner: TcpStream,
    _permit: Permit,
    /// A replacement being written for the response hyper is writing, and how far.
    rewrite: Option<(Vec<u8>, usize)>,
}

impl Guarded {
    fn new(inner: TcpStream, permit: Permit) -> Self {
        Self {
            inner,
            _permit: permit,
            rewrite: None,
        }
    }
}

/// The JSON answer for a response head hyper wrote by itself (status 400, 414 or 431
/// without a body: what it sends for a request it could not parse; the API's own
/// errors always carry a body).
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    const LINES: [(&[u8], u16, &str, &str, &str); 3] = [
        (
            b"HTTP/1.1 414 ",
            414,
            "URI Too Long",
            "uri_too_long",
            "the request's URI (path and query string) is longer than tsps accepts (64 KiB)",
        ),
        (
            b"HTTP/1.1 431 ",
            431,
            "Request Header Fields Too Large",
            "headers_too_large",
            "the request's headers are larger than tsps accepts",
        ),
        (
            b"HTTP/1.1 400 ",
            400,
            "Bad Request",
            "bad_request",
            "the request is not valid HTTP/1.1",
        ),
    ];
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &head[..end + 2];
    let (_, code, reason, error, message) = LINES.iter().find(|l| head.starts_with(l.0))?;
    let empty = head
        .split(|b| *b == b'\n')
        .any(|l| l.eq_ignore_ascii_case(b"content-length: 0\r"));
    if !empty {
        return None;
    }
    let body = serde_json::json!({"error": {"code": error, "message": message}}).to_string();
    Some(
        format!(
            "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        if me.rewrite.is_none() {
            match replacement(buf) {
                Some(bytes) => me.rewrite = Some((bytes, 0)),
                None => return Pin::new(&mut me.inner).poll_write(cx, buf),
            }
        }
        // Write the whole replacement, then tell hyper its response went out.
        let Some((bytes, done)) = &mut me.rewrite else {
            return Poll::Ready(Ok(0));
        };
        while *done < bytes.len() {
            let n = ready!(Pin::new(&mut me.inner).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        me.rewrite = None;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then writes each response head in one buffer, where
    // `replacement` can see it whole.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_error_answers_are_replaced() {
        let hyper414 = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 15:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(replacement(hyper414).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\n"));
        let body = out.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "uri_too_long");
        assert!(out.contains(&format!("content-length: {}\r\n", body.len())));
        // The API's own 400 has a body: left alone.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 57\r\n\r\n{}";
        assert!(replacement(ours).is_none());
        // Anything else, and a body that merely looks like a head, too.
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 414 URI Too Long").is_none());
    }
}
