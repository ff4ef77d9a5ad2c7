//! Accepting connections, bounded: at most `connections_max` open at once, each of which
//! must send its first bytes (the HTTP/2 preface, or a TLS ClientHello) within
//! `handshake_timeout_ms` or is closed, so that sockets opened and left silent cannot hold
//! the server's places. When the process runs out of file descriptors the accept loop
//! waits and tries again instead of spinning.
//!
//! What this is not: a judge of what a connection does once it has spoken; HTTP/2
//! keepalive, the message and stream limits and the request timeout see to that.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long the accept loop waits after the process ran out of file descriptors (or
/// buffers) before it accepts again.
const EXHAUSTED_BACKOFF: Duration = Duration::from_millis(100);

/// An accepted connection: the socket, its place among `connections_max`, and the
/// deadline for its first bytes.
pub struct Connection {
    stream: TcpStream,
    /// Released when the connection is dropped.
    _place: OwnedSemaphorePermit,
    /// Until the first bytes arrive: when they must have.
    first_bytes_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Accepts connections on `listener`, at most `connections_max` open at once, each given
/// `handshake_timeout` to send its first bytes. The stream ends when `listener` fails for
/// good (never for a refused or aborted connection).
pub fn incoming(
    listener: TcpListener,
    connections_max: usize,
    handshake_timeout: Duration,
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
                stream,
                _place: place,
                first_bytes_deadline: Some(Box::pin(tokio::time::sleep(handshake_timeout))),
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
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buffer.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(context, buffer);
        if self.first_bytes_deadline.is_none() {
            return read;
        }
        match read {
            Poll::Ready(Ok(())) if buffer.filled().len() > before => {
                self.first_bytes_deadline = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = self
                    .first_bytes_deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(context).is_ready());
                match expired {
                    true => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no handshake within handshake_timeout_ms",
                    ))),
                    false => Poll::Pending,
                }
            }
            other => other,
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
