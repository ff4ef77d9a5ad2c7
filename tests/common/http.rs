//! A plain HTTP/1.1 client for the web gateway's tests: GET with headers, JSON bodies,
//! and a Server-Sent Events reader; POST and DELETE for driving a WebDriver.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// An answer: status, headers and the whole body as text.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("{}: {error}", self.body))
    }
}

/// Sends one request to `address` (`host:port`) on a connection of its own.
async fn send(
    address: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> hyper::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .unwrap_or_else(|error| panic!("connect to {address}: {error}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("an HTTP/1.1 connection");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", address);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("a request");
    sender.send_request(request).await.expect("an answer")
}

async fn whole(response: hyper::Response<Incoming>) -> Answer {
    let (parts, body) = response.into_parts();
    let bytes = tokio::time::timeout(Duration::from_secs(60), body.collect())
        .await
        .expect("the body within a minute")
        .expect("the body")
        .to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(bytes.to_vec()).expect("UTF-8"),
    }
}

/// `GET path` with `headers`.
pub async fn get_with(address: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    whole(send(address, Method::GET, path, headers, None).await).await
}

/// `GET path`.
pub async fn get(address: &str, path: &str) -> Answer {
    get_with(address, path, &[]).await
}

/// `GET path`, answered 200 with JSON.
pub async fn get_json(address: &str, path: &str) -> serde_json::Value {
    let answer = get(address, path).await;
    assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
    answer.json()
}

/// `POST path` with a JSON body; the answer as JSON.
pub async fn post_json(address: &str, path: &str, body: &serde_json::Value) -> Answer {
    whole(send(address, Method::POST, path, &[], Some(body.to_string())).await).await
}

/// `DELETE path`.
pub async fn delete(address: &str, path: &str) -> Answer {
    whole(send(address, Method::DELETE, path, &[], None).await).await
}

/// One Server-Sent Event.
#[derive(Clone, Debug, Default)]
pub struct Event {
    pub event: String,
    pub id: Option<u64>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|error| panic!("{}: {error}", self.data))
    }
}

/// An open event stream.
pub struct Events {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    buffer: String,
}

/// Opens an event stream at `path`, with `Last-Event-ID` when given.
pub async fn events(address: &str, path: &str, last_event_id: Option<u64>) -> Events {
    let last = last_event_id.map(|id| id.to_string());
    let headers: Vec<(&str, &str)> = last
        .as_deref()
        .map(|id| vec![("last-event-id", id)])
        .unwrap_or_default();
    let (parts, body) = send(address, Method::GET, path, &headers, None)
        .await
        .into_parts();
    Events {
        status: parts.status,
        headers: parts.headers,
        body,
        buffer: String::new(),
    }
}

impl Events {
    /// The next event (comments skipped), or `None` when the stream ends or nothing comes
    /// within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    match line.split_once(':') {
                        Some(("event", value)) => event.event = value.trim_start().to_string(),
                        Some(("id", value)) => event.id = value.trim_start().parse().ok(),
                        Some(("data", value)) => data.push(value.trim_start().to_string()),
                        _ => {}
                    }
                }
                if event.event.is_empty() && data.is_empty() {
                    continue;
                }
                event.data = data.join("\n");
                return Some(event);
            }
            let frame = tokio::time::timeout(wait, self.body.frame()).await.ok()??;
            let frame = frame.ok()?;
            if let Some(bytes) = frame.data_ref() {
                self.buffer
                    .push_str(std::str::from_utf8(bytes).expect("UTF-8"));
            }
        }
    }
}
