//! A blocking client of a user's live events (WebSocket or SSE) for the end-to-end
//! tests: a thread with its own runtime reads the stream and hands each JSON message
//! over a channel, so a test waits for the message it expects with a deadline.

use futures::StreamExt;
use serde_json::Value;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub struct EventsClient {
    rx: mpsc::Receiver<Value>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Every message received so far (for failure messages).
    pub seen: Vec<Value>,
    /// How the server ended the stream, once it has (see [`EventsClient::wait_ended`]).
    end: Arc<Mutex<Option<String>>>,
}

/// How a request authenticates.
pub enum Credentials<'a> {
    /// `Authorization: Bearer <token>` (the operator's or an integration's).
    Bearer(&'a str),
    /// A portal session's `tsps_session` cookie (a WebSocket also needs an `Origin`).
    Cookie(&'a str),
}

pub enum Kind {
    WebSocket,
    Sse,
}

impl EventsClient {
    /// Connects to `url` (`http://…/events/ws` or `…/events/sse`) with the bearer token
    /// (the operator's or an integration's API token). Panics unless the server accepts
    /// the stream.
    pub fn connect(kind: Kind, url: &str, token: &str, since: Option<&str>) -> EventsClient {
        Self::try_connect(kind, url, token, since, &[])
            .unwrap_or_else(|e| panic!("cannot open the event stream {url}: {e}"))
    }

    /// Like [`EventsClient::connect`], with `headers` added to the request (an `Origin`,
    /// say), and the refusal (`HTTP error: 401 Unauthorized`, `status 404 Not Found`)
    /// returned instead of a panic.
    pub fn try_connect(
        kind: Kind,
        url: &str,
        token: &str,
        since: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<EventsClient, String> {
        Self::try_connect_as(kind, url, Credentials::Bearer(token), since, headers)
    }

    /// Like [`EventsClient::try_connect`], authenticated by `credentials`.
    pub fn try_connect_as(
        kind: Kind,
        url: &str,
        credentials: Credentials<'_>,
        since: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<EventsClient, String> {
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let token = match credentials {
            Credentials::Bearer(token) => Some(token.to_string()),
            Credentials::Cookie(value) => {
                headers.push(("cookie".into(), format!("tsps_session={value}")));
                None
            }
        };
        let end = Arc::new(Mutex::new(None::<String>));
        let ended = end.clone();
        let record = move |how: String| {
            ended.lock().unwrap().get_or_insert(how);
        };
        let (tx, rx) = mpsc::channel();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let mut url = url.to_string();
        if let Some(s) = since {
            url = format!("{url}?since={s}");
        }
        let shown = url.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                match kind {
                    Kind::WebSocket => {
                        let ws_url = url.replacen("http://", "ws://", 1);
                        let mut req = ws_url.into_client_request().expect("ws request");
                        if let Some(token) = &token {
                            req.headers_mut().insert(
                                "authorization",
                                format!("Bearer {token}").parse().expect("header"),
                            );
                        }
                        for (k, v) in &headers {
                            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                                k.parse().expect("header name");
                            req.headers_mut()
                                .insert(name, v.parse().expect("header value"));
                        }
                        let (mut ws, _) = match tokio_tungstenite::connect_async(req).await {
                            Ok(ok) => ok,
                            Err(e) => {
                                let _ = ready_tx.send(Err(e.to_string()));
                                return;
                            }
                        };
                        let _ = ready_tx.send(Ok(()));
                        loop {
                            tokio::select! {
                                _ = &mut stopped => {
                                    let _ = ws.close(None).await;
                                    return;
                                }
                                m = ws.next() => match m {
                                    Some(Ok(Message::Text(t))) => {
                                        let v = serde_json::from_str(&t).expect("JSON message");
                                        if tx.send(v).is_err() { return; }
                                    }
                                    Some(Ok(Message::Close(frame))) => record(match frame {
                                        Some(f) => format!("close {} {}", u16::from(f.code), f.reason),
                                        None => "close".to_string(),
                                    }),
                                    Some(Ok(_)) => {}
                                    None => return record("end".into()),
                                    Some(Err(e)) => return record(format!("error: {e}")),
                                },
                            }
                        }
                    }
                    Kind::Sse => {
                        let client = reqwest::Client::new();
                        let mut req = client.get(&url);
                        if let Some(token) = &token {
                            req = req.bearer_auth(token);
                        }
                        for (k, v) in &headers {
                            req = req.header(k.as_str(), v.as_str());
                        }
                        let resp = req.send().await;
                        let mut resp = match resp {
                            Ok(r) if r.status() == 200 => r,
                            Ok(r) => {
                                let _ = ready_tx.send(Err(format!("status {}", r.status())));
                                return;
                            }
                            Err(e) => {
                                let _ = ready_tx.send(Err(e.to_string()));
                                return;
                            }
                        };
                        let _ = ready_tx.send(Ok(()));
                        let mut buf = String::new();
                        loop {
                            tokio::select! {
                                _ = &mut stopped => return,
                                chunk = resp.chunk() => match chunk {
                                    Ok(Some(bytes)) => {
                                        buf.push_str(&String::from_utf8_lossy(&bytes));
                                        while let Some(end) = buf.find("\n\n") {
                                            let event: String = buf.drain(..end + 2).collect();
                                            let data: String = event
                                                .lines()
                                                .filter_map(|l| l.strip_prefix("data:"))
                                                .map(str::trim_start)
                                                .collect();
                                            let id = event
                                                .lines()
                                                .find_map(|l| l.strip_prefix("id:"))
                                                .map(|s| s.trim().to_string());
                                            if data.is_empty() { continue; }
                                            let mut v: Value =
                                                serde_json::from_str(&data).expect("JSON data");
                                            v["sse_id"] = id.into();
                                            if tx.send(v).is_err() { return; }
                                        }
                                    }
                                    Ok(None) => return record("end".into()),
                                    Err(e) => return record(format!("error: {e}")),
                                },
                            }
                        }
                    }
                }
            });
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(EventsClient {
                rx,
                stop: Some(stop),
                thread: Some(thread),
                seen: Vec::new(),
                end,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(e) => Err(format!("{shown}: no answer: {e}")),
        }
    }

    /// The next message, or panics after `wait`.
    pub fn next(&mut self, wait: Duration) -> Value {
        match self.rx.recv_timeout(wait) {
            Ok(v) => {
                self.seen.push(v.clone());
                v
            }
            Err(e) => panic!("no event within {wait:?} ({e}); seen: {:#?}", self.seen),
        }
    }

    /// Skips messages until one satisfies `pred`; panics after `wait`.
    pub fn until(&mut self, wait: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("no {what} within {wait:?}; seen: {:#?}", self.seen),
            }
        }
    }

    /// Waits until the server ends the stream (reading what it still sends); how it
    /// ended: `close <code> <reason>` (a WebSocket Close frame), `end` (an SSE response
    /// complete) or `error: ...`. Panics if the stream is still open after `wait`.
    pub fn wait_ended(&mut self, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "the stream is still open after {wait:?}; seen: {:#?}",
                        self.seen
                    )
                }
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.end.lock().unwrap().clone().unwrap_or_default()
    }

    /// Closes the stream (like a browser tab going away).
    pub fn close(mut self) -> Vec<Value> {
        self.shutdown();
        std::mem::take(&mut self.seen)
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EventsClient {
    fn drop(&mut self) {
        self.shutdown();
    }
}
