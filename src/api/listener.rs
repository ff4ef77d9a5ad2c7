//! Accepting connections, bounded: at most `connections_max` open at once, each of which
//! must have begun its first request (the TLS and HTTP/2 handshakes done) within
//! `handshake_timeout_ms`, and is closed once it has had no request open for
//! `idle_timeout_ms`, so that sockets opened and left silent, or stalled half way through
//! a handshake, or kept alive with pings alone, cannot hold the server's places. When the
//! process runs out of file descriptors the accept loop waits and tries again instead of
//! spinning.
//!
//! What this is not: a judge of what a connection's requests do; HTTP/2 keepalive, the
//! message and stream limits, the request idle timeout (`idle.rs`) and the request
//! timeout see to that.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// What one connection is doing, shared by its socket and its requests.
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests open now.
    open: AtomicUsize,
    /// Requests begun since the accept: tells the socket that requests came and went
    /// between two of its reads.
    begun: AtomicU64,
    /// The socket's reader, woken when the last open request ends so that its idle
    /// timer starts.
    reader: AtomicWaker,
}

/// A request of a connection, counted open until dropped.
pub struct Open(Arc<Activity>);

impl Activity {
    /// Counts a request open until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Open {
        self.begun.fetch_add(1, Ordering::SeqCst);
        self.open.fetch_add(1, Ordering::SeqCst);
        Open(Arc::clone(self))
    }

    /// Requests open now and requests begun so far. `reader` is registered first, so
    /// that the end of the last open request after this look wakes it.
    pub fn look(&self, reader: &Waker) -> (usize, u64) {
        self.reader.register(reader);
        (
            self.open.load(Ordering::SeqCst),
            self.begun.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.reader.wake();
        }
    }
}

/// How long the accept loop waits after the process ran out of file descriptors (or
/// buffers) before it accepts again.
const EXHAUSTED_BACKOFF: Duration = Duration::from_millis(100);

/// An accepted connection: the socket, its place among `connections_max`, and when it is
/// closed for doing nothing.
pub struct Connection {
    stream: TcpStream,
    /// Released when the connection is dropped.
    _place: OwnedSemaphorePermit,
    /// The peer's address, and the requests open on the connection.
    info: ConnectionInfo,
    /// When the connection is closed unless a request is open by then: the handshake
    /// deadline until the first request, then the idle deadline.
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Whether a request was open at the last look.
    busy: bool,
    /// Requests begun at the last look.
    begun: u64,
    /// How long the connection may have no request open.
    idle_timeout: Duration,
}

/// What a request knows of its connection (tonic puts it in the request's extensions).
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The peer's address, when the socket knows it.
    pub remote: Option<std::net::SocketAddr>,
    /// The requests open on the connection.
    pub activity: Arc<Activity>,
}

/// The timeouts of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From the accept to the first request.
    pub handshake: Duration,
    /// With no request open.
    pub idle: Duration,
}

/// Accepts connections on `listener`, at most `connections_max` open at once, each closed
/// after `timeouts`. The stream ends when `listener` fails for good (never for a refused
/// or aborted connection).
pub fn incoming(
    listener: TcpListener,
    connections_max: usize,
    timeouts: Timeouts,
) -> ReceiverStream<io::Result<Connection>> {
    let places = Arc::new(Semaphore::new(connections_max));
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut warned = false;
        loop {
            // At the limit, new connections wait in the kernel's backlog until a place
            // is free: silent ones free theirs within the handshake timeout.
            let Ok(place) = Arc::clone(&places).acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) if out_of_resources(&error) => {
                    if !warned {
                        tracing::warn!(%error, "cannot accept connections: out of resources; retrying");
                        warned = true;
                    }
                    tokio::time::sleep(EXHAUSTED_BACKOFF).await;
                    continue;
                }
                // The peer gave up before it was accepted: nothing to serve.
                Err(_) => continue,
            };
            warned = false;
            let _ = stream.set_nodelay(true);
            let connection = Connection {
                info: ConnectionInfo {
                    remote: stream.peer_addr().ok(),
                    activity: Arc::default(),
                },
                stream,
                _place: place,
                deadline: Box::pin(tokio::time::sleep(timeouts.handshake)),
                busy: false,
                begun: 0,
                idle_timeout: timeouts.idle,
            };
            if sender.send(Ok(connection)).await.is_err() {
                // The server stopped taking connections.
                return;
            }
        }
    });
    ReceiverStream::new(receiver)
}

/// Whether an accept failed because the process or the system ran out of descriptors or
/// memory: waiting helps, retrying at once only spins.
fn out_of_resources(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            error.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        error.kind() == io::ErrorKind::OutOfMemory
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl Connection {
    /// The peer's address and the requests open on the connection.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Whether the connection has done nothing for too long: no request begun since the
    /// accept within the handshake timeout, or none open for the idle timeout. Called
    /// when the socket has nothing to read; wakes `context` when that changes.
    fn expired(&mut self, context: &mut Context<'_>) -> bool {
        let (open, begun) = self.info.activity.look(context.waker());
        if open > 0 {
            self.busy = true;
            self.begun = begun;
            return false;
        }
        if self.busy || begun != self.begun {
            // Requests were open since the last look: idle from now.
            self.busy = false;
            self.begun = begun;
            let idle_until = tokio::time::Instant::now() + self.idle_timeout;
            self.deadline.as_mut().reset(idle_until);
        }
        self.deadline.as_mut().poll(context).is_ready()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.stream).poll_read(context, buffer) {
            Poll::Pending if self.expired(context) => {
                let timeout = match self.begun {
                    0 => "handshake_timeout_ms",
                    _ => "idle_timeout_ms",
                };
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no request within {timeout}"),
                )))
            }
            read => read,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(context, bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
