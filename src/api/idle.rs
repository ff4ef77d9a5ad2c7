//! Idleness, of connections and of requests: what lets the server take back what a client
//! holds and does not use.
//!
//! Each connection has an `Activity` (`listener.rs`): how many of its requests are open, and how many
//! have begun. The [`IdleLayer`] keeps that count (a request is open from its headers
//! until its response has been sent or dropped), and the connection (`listener.rs`)
//! closes itself once no request has been open for `idle_timeout_ms`, or when none has
//! begun within `handshake_timeout_ms` of its accept. The layer also ends a request whose
//! body sends no bytes for `stream_idle_timeout_ms`: an idle `OrderSession` or
//! `ChargeSession`, a reflection stream, or a message sent half way and left, so that
//! the bytes buffered for it are freed.
//!
//! What this is not: a rate limit. A client that trickles a byte at a time keeps its
//! request open; the message limit and the per-connection stream and request limits
//! bound what it can hold meanwhile.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tonic::body::Body;
use tonic::codegen::{http, Bytes, Service};
use tonic::Status;

use super::listener::{ConnectionInfo, Open};
use super::status;

/// The activity of the connection a request came on, plain or under TLS.
pub fn connection_of(extensions: &http::Extensions) -> Option<&ConnectionInfo> {
    extensions.get::<ConnectionInfo>().or_else(|| {
        extensions
            .get::<tonic::transport::server::TlsConnectInfo<ConnectionInfo>>()
            .map(|info| info.get_ref())
    })
}

/// Counts each request open on its connection, ends request bodies that go idle, and
/// charges the bytes of partly received messages to the server's budget.
#[derive(Clone, Debug)]
pub struct IdleLayer {
    /// How long a request body may send nothing.
    pub stream_idle: Duration,
    /// The bytes of partly received messages, over all requests.
    pub partial: Arc<PartialBytes>,
}

/// The bytes of gRPC messages received in part, over all requests, and their limit: a
/// message that arrives whole in one read costs nothing; one left half sent holds its
/// bytes here until it completes, its request ends or `stream_idle_timeout_ms` ends it.
#[derive(Debug)]
pub struct PartialBytes {
    held: AtomicUsize,
    max: usize,
}

impl PartialBytes {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> PartialBytes {
        PartialBytes {
            held: AtomicUsize::new(0),
            max,
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn charge(&self, bytes: usize) -> Result<(), Status> {
        let before = self.held.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.max {
            self.held.fetch_sub(bytes, Ordering::Relaxed);
            return Err(status::limit_reached(
                "server.partial_messages_bytes_max",
                "the server holds as many partly received messages as it allows; retry \
                 shortly",
            ));
        }
        Ok(())
    }

    fn release(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }
}

impl<S> tower_layer::Layer<S> for IdleLayer {
    type Service = Idle<S>;

    fn layer(&self, inner: S) -> Idle<S> {
        Idle {
            inner,
            stream_idle: self.stream_idle,
            partial: Arc::clone(&self.partial),
        }
    }
}

/// The service of [`IdleLayer`].
#[derive(Clone, Debug)]
pub struct Idle<S> {
    inner: S,
    stream_idle: Duration,
    partial: Arc<PartialBytes>,
}

impl<S, B> Service<http::Request<Body>> for Idle<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Counted<S::Future>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let open = connection_of(request.extensions()).map(|info| info.activity.begin());
        let request = request.map(|body| {
            Body::new(IdleBody {
                inner: body,
                stream_idle: self.stream_idle,
                timer: None,
                framing: Framing::default(),
                partial: Arc::clone(&self.partial),
                charged: 0,
            })
        });
        Counted {
            inner: self.inner.call(request),
            open,
        }
    }
}

pin_project_lite::pin_project! {
    /// A response on its way; the request stays counted open in its body.
    pub struct Counted<F> {
        #[pin]
        inner: F,
        open: Option<Open>,
    }
}

impl<F, B, E> Future for Counted<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(context))?;
        let open = this.open.take();
        Poll::Ready(Ok(response.map(|body| match open {
            Some(open) => Body::new(CountedBody {
                inner: body,
                _open: open,
            }),
            None => Body::new(body),
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted open until it is dropped.
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        _open: Open,
    }
}

impl<B> CountedBody<B> {
    /// `inner`, keeping `open` until it is dropped (for the web gateway's responses).
    pub fn new(inner: B, open: Open) -> CountedBody<B> {
        CountedBody { inner, _open: open }
    }
}

impl<B: HttpBody> HttpBody for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where a request body is in its gRPC framing: each message is a flag byte, a 4-byte
/// big-endian length, then that many bytes.
#[derive(Debug, Default)]
struct Framing {
    /// Bytes of the current message's 5-byte prefix seen (0 to 5).
    prefix_seen: usize,
    /// The current message's length, read from its prefix.
    length: [u8; 4],
    /// Bytes of the current message still to come once the prefix is complete.
    remaining: usize,
    /// Bytes of the current, incomplete message received so far.
    partial: usize,
}

/// The length of a message's prefix.
const PREFIX_BYTES: usize = 5;

impl Framing {
    /// Follows `data` through the framing.
    fn advance(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.prefix_seen < PREFIX_BYTES {
                let taken = (PREFIX_BYTES - self.prefix_seen).min(data.len());
                for (offset, byte) in data[..taken].iter().enumerate() {
                    // The flag byte is position 0; the length follows.
                    if let Some(index) = (self.prefix_seen + offset).checked_sub(1) {
                        self.length[index] = *byte;
                    }
                }
                self.prefix_seen += taken;
                self.partial += taken;
                data = &data[taken..];
                if self.prefix_seen == PREFIX_BYTES {
                    self.remaining = u32::from_be_bytes(self.length) as usize;
                }
            } else {
                let taken = self.remaining.min(data.len());
                self.remaining -= taken;
                self.partial += taken;
                data = &data[taken..];
            }
            if self.prefix_seen == PREFIX_BYTES && self.remaining == 0 {
                // The message is complete.
                *self = Framing::default();
            }
        }
    }
}

/// A request body that ends with `DEADLINE_EXCEEDED` when no bytes arrive for
/// `stream_idle`, and charges the bytes of a message received in part to the server's
/// budget (`RESOURCE_EXHAUSTED` when it is spent). The timer exists only while the body
/// waits, so a unary request that comes whole costs none.
struct IdleBody {
    inner: Body,
    stream_idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    framing: Framing,
    partial: Arc<PartialBytes>,
    /// Bytes charged to `partial` now.
    charged: usize,
}

impl IdleBody {
    /// Charges or releases the difference between what is held and what was charged.
    fn account(&mut self, frame: &Frame<Bytes>) -> Result<(), Status> {
        let Some(data) = frame.data_ref() else {
            return Ok(());
        };
        self.framing.advance(data);
        let held = self.framing.partial;
        if held > self.charged {
            self.partial.charge(held - self.charged)?;
        } else {
            self.partial.release(self.charged - held);
        }
        self.charged = held;
        Ok(())
    }
}

impl Drop for IdleBody {
    fn drop(&mut self) {
        self.partial.release(self.charged);
    }
}

impl HttpBody for IdleBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(context) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(timer) = &mut this.timer {
                    timer.as_mut().reset(Instant::now() + this.stream_idle);
                }
                Poll::Ready(Some(this.account(&frame).map(|()| frame)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                let stream_idle = this.stream_idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stream_idle)));
                match timer.as_mut().poll(context) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(status::deadline_exceeded(
                        "server.stream_idle_timeout_ms",
                        "the request sent nothing for this long; it is ended",
                    )))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(length: usize) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&(length as u32).to_be_bytes());
        bytes.extend(std::iter::repeat_n(7, length));
        bytes
    }

    #[test]
    fn whole_messages_leave_nothing_held_however_they_are_cut() {
        let mut stream = message(10);
        stream.extend(message(0));
        stream.extend(message(300));
        for cut in 1..stream.len() {
            let mut framing = Framing::default();
            for piece in stream.chunks(cut) {
                framing.advance(piece);
            }
            assert_eq!(framing.partial, 0, "pieces of {cut} bytes");
        }
    }

    #[test]
    fn a_message_sent_in_part_holds_what_has_arrived() {
        let mut framing = Framing::default();
        let stream = message(1_000);
        framing.advance(&stream[..3]);
        assert_eq!(framing.partial, 3);
        framing.advance(&stream[3..600]);
        assert_eq!(framing.partial, 600);
        framing.advance(&stream[600..]);
        assert_eq!(framing.partial, 0);
    }

    #[test]
    fn the_budget_refuses_what_does_not_fit_and_takes_back_what_is_released() {
        let budget = PartialBytes::new(100);
        budget.charge(60).expect("fits");
        let refused = budget.charge(41).expect_err("over the budget");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(budget.held(), 60);
        budget.release(60);
        budget.charge(100).expect("fits once released");
    }
}
