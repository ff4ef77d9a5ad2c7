//! `StreamOrderBook`: a snapshot, then level updates, each message with a stream sequence
//! number one greater than the last and the top-of-book checksum.
//!
//! One task keeps a replica of every book from committed events and publishes the top
//! levels after each committed batch through a watch channel, which holds only the newest
//! view ([`SharedView`]). A subscriber that sent the view before it takes the changes
//! every such subscriber shares: encoded once per market and depth, by the first that
//! asks, with the market's checksum and the heartbeat likewise computed once; a subscriber
//! that skipped views diffs the newest against the last it sent, so a slow subscriber gets
//! fewer, coalesced updates rather than a growing queue; one whose client stops reading
//! altogether is ended with `ABORTED`, to resubscribe for a fresh snapshot. The snapshot
//! is each subscriber's own.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::Status;

use super::book_view::{publish, Payload, Sides, Views};
use super::context::Context;
use super::journal_pages::PAGE_EVENTS;
use super::proto;
use super::status;
use crate::market_data::{BookReplica, BookView};
use crate::pipeline::{Answer, CommittedEvents, Query};
use crate::store::{History, StoreError};
use crate::types::{MarketId, Side};

/// Levels per side a book stream may ask for, and that the views keep.
pub const STREAM_DEPTH_MAX: usize = 100;

/// Levels per side a book stream sends when the request names no depth.
pub const STREAM_DEPTH_DEFAULT: usize = 10;

fn view_of(replica: &BookReplica, markets: usize) -> BookView {
    BookView {
        seq: replica.applied_seq(),
        markets: (0..markets)
            .map(|index| {
                let market = MarketId(index as u16);
                (
                    replica.levels(market, Side::Buy, STREAM_DEPTH_MAX),
                    replica.levels(market, Side::Sell, STREAM_DEPTH_MAX),
                )
            })
            .collect(),
    }
}

/// Keeps the replica current and publishes its views until the pipeline stops.
pub async fn feed(context: Arc<Context>, views: Views) {
    let markets = context.config.engine.markets.len();
    let mut live = context.pipeline.subscribe();
    // Held weakly from here on, so that this task never keeps the exchange alive.
    let weak = Arc::downgrade(&context);
    let Some(mut replica) = seed(&context, markets).await else {
        return;
    };
    drop(context);
    publish(&views, view_of(&replica, markets));
    loop {
        match live.recv().await {
            Ok(events) => {
                apply(&mut replica, &events);
                publish(&views, view_of(&replica, markets));
            }
            // Too far behind to apply every change: catch up from the journal, or, if it
            // no longer holds what was missed, start again from the engine's book.
            Err(RecvError::Lagged(_)) => {
                let Some(context) = weak.upgrade() else {
                    return;
                };
                live = context.pipeline.subscribe();
                if !catch_up(&context, &mut replica).await {
                    tracing::info!("book feed: reseeding from the engine's books");
                    match seed(&context, markets).await {
                        Some(fresh) => replica = fresh,
                        None => return,
                    }
                }
                drop(context);
                publish(&views, view_of(&replica, markets));
            }
            Err(RecvError::Closed) => return,
        }
    }
}

fn apply(replica: &mut BookReplica, events: &CommittedEvents) {
    for event in events.iter() {
        replica.apply(event);
    }
}

/// Applies the journal's events from the replica's sequence number up to everything
/// committed, off the async threads. False when the journal cannot be read or no longer
/// holds every event the replica missed.
async fn catch_up(context: &Context, replica: &mut BookReplica) -> bool {
    let history = context.history.clone();
    let committed = context.pipeline.committed_seq();
    let mut behind = std::mem::replace(replica, BookReplica::new(0, 0));
    let caught_up = tokio::task::spawn_blocking(move || {
        let caught_up = replay_journal(&history, committed, &mut behind);
        (behind, caught_up)
    })
    .await;
    match caught_up {
        Ok((caught_up, Ok(true))) => {
            *replica = caught_up;
            true
        }
        Ok((_, Ok(false))) => false,
        Ok((_, Err(error))) => {
            tracing::warn!(%error, "book feed: cannot read the journal");
            false
        }
        Err(_) => false,
    }
}

/// Applies the journal's events after the replica's sequence number, up to `committed`.
/// `Ok(false)` when the journal no longer holds the events right after the replica's
/// (retention pruned them): the replica cannot be brought up to date from it.
pub fn replay_journal(
    history: &History,
    committed: u64,
    replica: &mut BookReplica,
) -> Result<bool, StoreError> {
    while replica.applied_seq() < committed {
        let after = replica.applied_seq();
        let page = history.events_after(after, PAGE_EVENTS, PAGE_EVENTS, committed, |_| true)?;
        // Every event is journaled, so the page must start right after the replica.
        if page.events.first().map(|event| event.seq) != Some(after + 1) {
            return Ok(false);
        }
        for event in &page.events {
            replica.apply(event);
        }
    }
    Ok(true)
}

async fn seed(context: &Context, markets: usize) -> Option<BookReplica> {
    let Ok(Answer::RestingOrders { orders, seq }) = context.query(Query::RestingOrders).await
    else {
        return None;
    };
    let mut replica = BookReplica::new(markets, seq);
    for (index, book) in orders.iter().enumerate() {
        for order in book {
            replica.seed(
                MarketId(index as u16),
                order.id,
                order.side,
                order.price,
                order.remaining(),
            );
        }
    }
    Some(replica)
}

/// Starts a book stream for one market.
pub fn start(
    context: Arc<Context>,
    market: MarketId,
    depth: usize,
) -> Result<BoxStream<proto::BookUpdate>, Status> {
    let permit = context.stream_permit(super::context::StreamKind::Anonymous)?;
    let (sender, receiver) = mpsc::channel(context.config.server.stream_buffer_messages);
    let mut views = context.book_views.subscribe();
    let stopping_watch = context.stopping.subscribe();
    let heartbeat = Duration::from_millis(context.config.server.book_heartbeat_ms);
    tokio::spawn(async move {
        let _permit = permit;
        let market_view = context.market_at(market);
        let mut stream_seq = 0;
        // The view last sent (its sequence number) and its levels at this depth.
        let mut sent: Option<(u64, Sides)> = None;
        let mut ticker = tokio::time::interval(heartbeat);
        ticker.tick().await;
        // Completes once the server is stopping (the watch's guard is dropped inside).
        let stopping = || {
            let mut watch = stopping_watch.clone();
            async move {
                let _ = watch.wait_for(|stopping| *stopping).await;
            }
        };
        loop {
            let current = views.borrow_and_update().clone();
            let Some(shared) = current else {
                if sent.is_some() {
                    let _ = sender
                        .send(Err(status::unavailable(
                            "the book feed stopped; resubscribe",
                        )))
                        .await;
                    return;
                }
                // Not seeded yet: wait for the first view.
                tokio::select! {
                    changed = views.changed() => if changed.is_err() { return },
                    _ = stopping() => return,
                }
                continue;
            };
            let now = shared.sides(market, depth);
            let sum = shared.checksum(market_view);
            let payload = shared.payload(market_view, depth, sent.as_ref(), &now);
            if let Some(payload) = payload {
                if !deliver(&sender, &mut stream_seq, payload, sum).await {
                    return;
                }
                ticker.reset();
            }
            sent = Some((shared.view.seq, now));
            tokio::select! {
                changed = views.changed() => if changed.is_err() { return },
                _ = ticker.tick() => {
                    let beat = Payload::Shared(shared.heartbeat.clone());
                    if !deliver(&sender, &mut stream_seq, beat, sum).await {
                        return;
                    }
                }
                _ = stopping() => {
                    let _ = sender.send(Err(status::unavailable("the server is shutting down; resubscribe"))).await;
                    return;
                }
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(receiver)))
}

/// Sends one message with the next stream sequence number; false once the client is gone
/// or has stopped reading (then told to resubscribe).
async fn deliver(
    sender: &mpsc::Sender<Result<proto::BookUpdate, Status>>,
    stream_seq: &mut u64,
    payload: Payload,
    checksum: u32,
) -> bool {
    if sender.capacity() <= 1 {
        let _ = sender.try_send(Err(status::fell_behind(
            "the client fell too far behind; resubscribe for a new snapshot",
        )));
        return false;
    }
    *stream_seq += 1;
    let message = match payload {
        Payload::Own(update) => proto::BookUpdate::new(*stream_seq, update, checksum),
        Payload::Shared(bytes) => proto::BookUpdate::with_shared(*stream_seq, bytes, checksum),
    };
    sender.send(Ok(message)).await.is_ok()
}
