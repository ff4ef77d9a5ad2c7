//! Event streams to clients: the events a filter keeps, those after `from_seq` out of the
//! journal, then live ones from the pipeline's broadcast, with no gap and no duplicate. The
//! broadcast is subscribed to before the journal is read, and each event is sent once, in
//! sequence order.
//!
//! Bounded everywhere: at most `stream_subscribers_max` streams at once; a hand-off to
//! each client of at most `stream_buffer_messages` messages, in chunks (one channel
//! operation per committed batch rather than per message); a subscriber that falls behind
//! the broadcast is ended with `ABORTED` and the sequence number to resume from; when the
//! server stops, streams end with `UNAVAILABLE` and the same.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_stream::Stream;
use tonic::codegen::BoxStream;
use tonic::Status;

use super::context::{Context, StreamKind};
use super::journal_pages::{self, PAGE_EVENTS};
use super::status;
use crate::event::Event;

/// Starts a stream of what `convert` makes of the events `keep` accepts: those after
/// `from_seq` out of the journal, then live ones; live ones only without `from_seq`.
pub fn start<T, Keep, Convert>(
    context: Arc<Context>,
    kind: StreamKind,
    from_seq: Option<u64>,
    keep: Keep,
    convert: Convert,
) -> Result<BoxStream<T>, Status>
where
    T: Send + 'static,
    Keep: Fn(&Event) -> bool + Send + Sync + Clone + 'static,
    Convert: FnMut(&Event) -> Vec<T> + Send + 'static,
{
    if let Some(from_seq) = from_seq {
        context.check_from_seq("from_seq", from_seq)?;
    }
    let permit = context.stream_permit(kind)?;
    let buffered = context.config.server.stream_buffer_messages;
    let (sender, receiver) = mpsc::channel(CHUNKS);
    tokio::spawn(async move {
        let mut sender = Chunks {
            sender,
            chunk: Vec::new(),
            chunk_max: buffered.div_ceil(CHUNKS),
        };
        let ended = run(&context, from_seq, keep, convert, &mut sender, permit).await;
        if let Err(status) = ended {
            if sender.flush().await {
                let _ = sender.sender.send(Err(status)).await;
            }
        }
    });
    Ok(Box::pin(Flatten {
        receiver,
        chunk: Vec::new().into_iter(),
    }))
}

/// Chunks waiting for one client, at most; each holds at most a quarter of the
/// subscriber's buffer.
const CHUNKS: usize = 4;

/// The sending side of a subscriber's hand-off: messages gather into a chunk, sent when
/// full and at the end of each batch of events.
struct Chunks<T> {
    sender: mpsc::Sender<Result<Vec<T>, Status>>,
    chunk: Vec<T>,
    chunk_max: usize,
}

impl<T> Chunks<T> {
    /// Adds a message; false once the client has gone.
    async fn push(&mut self, message: T) -> bool {
        self.chunk.push(message);
        self.chunk.len() < self.chunk_max || self.flush().await
    }

    /// Sends what has gathered; false once the client has gone.
    async fn flush(&mut self) -> bool {
        if self.chunk.is_empty() {
            return true;
        }
        let chunk = std::mem::take(&mut self.chunk);
        self.sender.send(Ok(chunk)).await.is_ok()
    }
}

/// The client's side: the chunks' messages one by one.
struct Flatten<T> {
    receiver: mpsc::Receiver<Result<Vec<T>, Status>>,
    chunk: std::vec::IntoIter<T>,
}

impl<T> Unpin for Flatten<T> {}

impl<T> Stream for Flatten<T> {
    type Item = Result<T, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        context: &mut TaskContext<'_>,
    ) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(message) = self.chunk.next() {
                return Poll::Ready(Some(Ok(message)));
            }
            match self.receiver.poll_recv(context) {
                Poll::Ready(Some(Ok(chunk))) => self.chunk = chunk.into_iter(),
                Poll::Ready(Some(Err(status))) => return Poll::Ready(Some(Err(status))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

async fn run<T, Keep, Convert>(
    context: &Arc<Context>,
    from_seq: Option<u64>,
    keep: Keep,
    mut convert: Convert,
    sender: &mut Chunks<T>,
    _permit: OwnedSemaphorePermit,
) -> Result<(), Status>
where
    T: Send + 'static,
    Keep: Fn(&Event) -> bool + Send + Sync + Clone + 'static,
    Convert: FnMut(&Event) -> Vec<T> + Send + 'static,
{
    let live = context.pipeline.subscribe();
    let start = context.pipeline.committed_seq();
    let from = from_seq.unwrap_or(start);
    if from < start {
        crate::api::trade_stream::check_retained(context, from).await?;
    }
    let Some(last_sent) = replay(context, (from, start), &keep, &mut convert, sender).await? else {
        return Ok(());
    };
    follow(context, live, last_sent, &keep, &mut convert, sender).await
}

/// Sends what the journal holds after `from` up to `start`, where the live feed begins;
/// the last sequence number sent, or `None` once the client is gone.
async fn replay<T, Keep, Convert>(
    context: &Arc<Context>,
    (from, start): (u64, u64),
    keep: &Keep,
    convert: &mut Convert,
    sender: &mut Chunks<T>,
) -> Result<Option<u64>, Status>
where
    T: Send + 'static,
    Keep: Fn(&Event) -> bool + Send + Sync + Clone + 'static,
    Convert: FnMut(&Event) -> Vec<T> + Send + 'static,
{
    let mut last_sent = from;
    while last_sent < start {
        let bounds = (last_sent, start);
        let page = journal_pages::page(&context.history, bounds, PAGE_EVENTS, keep.clone()).await?;
        for event in &page.events {
            for message in convert(event) {
                if !sender.push(message).await {
                    return Ok(None);
                }
            }
        }
        if !sender.flush().await {
            return Ok(None);
        }
        // Where the page stopped looking; the end of the replay when nothing is left.
        last_sent = page.next.unwrap_or(start);
    }
    Ok(Some(last_sent))
}

/// Sends committed events after `last_sent` as they are broadcast, until the client goes,
/// the stream falls behind or the server stops.
async fn follow<T, Keep, Convert>(
    context: &Arc<Context>,
    mut live: tokio::sync::broadcast::Receiver<crate::pipeline::CommittedEvents>,
    mut last_sent: u64,
    keep: &Keep,
    convert: &mut Convert,
    sender: &mut Chunks<T>,
) -> Result<(), Status>
where
    T: Send + 'static,
    Keep: Fn(&Event) -> bool,
    Convert: FnMut(&Event) -> Vec<T>,
{
    let mut stopping = context.stopping.subscribe();
    loop {
        let received = tokio::select! {
            received = live.recv() => received,
            _ = stopping.wait_for(|stopping| *stopping) => {
                return Err(status::unavailable(format!(
                    "the server is shutting down; resubscribe with from_seq = {last_sent}"
                )));
            }
        };
        let events = match received {
            Ok(events) => events,
            Err(RecvError::Lagged(_)) => {
                return Err(status::fell_behind(format!(
                    "the stream fell behind; resubscribe with from_seq = {last_sent}"
                )));
            }
            Err(RecvError::Closed) => return Err(status::unavailable("the exchange is stopping")),
        };
        for event in events.iter() {
            if event.seq <= last_sent {
                continue;
            }
            if keep(event) {
                for message in convert(event) {
                    if !sender.push(message).await {
                        return Ok(());
                    }
                }
            }
            last_sent = event.seq;
        }
        if !sender.flush().await {
            return Ok(());
        }
    }
}
