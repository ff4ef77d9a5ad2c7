//! Event streams to clients: the events a filter keeps, those after `from_seq` out of the
//! journal, then live ones from the pipeline's broadcast, with no gap and no duplicate. The
//! broadcast is subscribed to before the journal is read, and each event is sent once, in
//! sequence order.
//!
//! Bounded everywhere: at most `stream_subscribers_max` streams at once; a bounded
//! hand-off to each client; a subscriber that falls behind the broadcast is ended with
//! `ABORTED` and the sequence number to resume from; when the server stops, streams end
//! with `UNAVAILABLE` and the same.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::Status;

use super::context::Context;
use crate::event::Event;

/// Events read from the journal per step of a replay.
const EVENTS_PER_READ: usize = 1_024;

/// Starts a stream of what `convert` makes of the events `keep` accepts, after
/// `from_seq` (live only when 0).
pub fn start<T, Keep, Convert>(
    context: Arc<Context>,
    from_seq: u64,
    keep: Keep,
    convert: Convert,
) -> Result<BoxStream<T>, Status>
where
    T: Send + 'static,
    Keep: Fn(&Event) -> bool + Send + Sync + Clone + 'static,
    Convert: FnMut(&Event) -> Vec<T> + Send + 'static,
{
    let permit = context.stream_permit()?;
    let (sender, receiver) = mpsc::channel(context.config.server.stream_buffer_messages);
    tokio::spawn(async move {
        if let Err(status) = run(&context, from_seq, keep, convert, &sender, permit).await {
            let _ = sender.send(Err(status)).await;
        }
    });
    Ok(Box::pin(ReceiverStream::new(receiver)))
}

async fn run<T, Keep, Convert>(
    context: &Arc<Context>,
    from_seq: u64,
    keep: Keep,
    mut convert: Convert,
    sender: &mpsc::Sender<Result<T, Status>>,
    _permit: OwnedSemaphorePermit,
) -> Result<(), Status>
where
    T: Send + 'static,
    Keep: Fn(&Event) -> bool + Send + Sync + Clone + 'static,
    Convert: FnMut(&Event) -> Vec<T> + Send + 'static,
{
    let mut live = context.pipeline.subscribe();
    let start = context.pipeline.committed_seq();
    let mut last_sent = if from_seq == 0 { start } else { from_seq };
    // The journal from `from_seq` up to where the live feed starts.
    while last_sent < start {
        let history = context.history.clone();
        let (after, filter) = (last_sent, keep.clone());
        let page = tokio::task::spawn_blocking(move || {
            history.events_after(after, EVENTS_PER_READ, EVENTS_PER_READ * 64, start, filter)
        })
        .await
        .map_err(|_| Status::internal("the history reader stopped"))?
        .map_err(|error| Status::internal(format!("history: {error}")))?;
        for event in &page.events {
            for message in convert(event) {
                if sender.send(Ok(message)).await.is_err() {
                    return Ok(());
                }
            }
        }
        // Where the page stopped looking; the end of the replay when nothing is left.
        last_sent = page.next.unwrap_or(start);
    }
    let mut stopping = context.stopping.subscribe();
    loop {
        let received = tokio::select! {
            received = live.recv() => received,
            _ = stopping.wait_for(|stopping| *stopping) => {
                return Err(Status::unavailable(format!(
                    "the server is shutting down; resubscribe with from_seq = {last_sent}"
                )));
            }
        };
        match received {
            Ok(events) => {
                for event in events.iter() {
                    if event.seq <= last_sent {
                        continue;
                    }
                    if keep(event) {
                        for message in convert(event) {
                            if sender.send(Ok(message)).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                    last_sent = event.seq;
                }
            }
            Err(RecvError::Lagged(_)) => {
                return Err(Status::aborted(format!(
                    "the stream fell behind; resubscribe with from_seq = {last_sent}"
                )));
            }
            Err(RecvError::Closed) => return Err(Status::unavailable("the exchange is stopping")),
        }
    }
}
