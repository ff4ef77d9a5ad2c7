//! `StreamOrderBook`: a snapshot, then level updates, each message with a stream sequence
//! number one greater than the last and the top-of-book checksum.
//!
//! One task keeps a replica of every book from committed events and publishes the top
//! levels after each committed batch through a watch channel, which holds only the newest
//! view. Each subscriber diffs the newest view against the last one it sent, so a slow
//! subscriber gets fewer, coalesced updates rather than a growing queue; one whose client
//! stops reading altogether is ended with `ABORTED`, to resubscribe for a fresh snapshot.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::Status;

use super::context::{Context, MarketView};
use super::proto;
use crate::engine::Level;
use crate::market_data::{checksum, BookReplica, BookView};
use crate::pipeline::{Answer, CommittedEvents, Query};
use crate::store::{History, StoreError};
use crate::types::{MarketId, Side};

/// Events read from the journal per step of a catch-up.
const EVENTS_PER_READ: usize = 4_096;
/// Levels per side a book stream may ask for, and that the views keep.
pub const STREAM_DEPTH_MAX: usize = 100;

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
pub async fn feed(context: Arc<Context>, views: watch::Sender<Option<Arc<BookView>>>) {
    let markets = context.config.engine.markets.len();
    let mut live = context.pipeline.subscribe();
    // Held weakly from here on, so that this task never keeps the exchange alive.
    let weak = Arc::downgrade(&context);
    let Some(mut replica) = seed(&context, markets).await else {
        return;
    };
    drop(context);
    views.send_replace(Some(Arc::new(view_of(&replica, markets))));
    loop {
        match live.recv().await {
            Ok(events) => {
                apply(&mut replica, &events);
                views.send_replace(Some(Arc::new(view_of(&replica, markets))));
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
                views.send_replace(Some(Arc::new(view_of(&replica, markets))));
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
        let page =
            history.events_after(after, EVENTS_PER_READ, EVENTS_PER_READ, committed, |_| true)?;
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
        let mut sent: Option<(Vec<Level>, Vec<Level>)> = None;
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
            let Some(view) = current else {
                if sent.is_some() {
                    let _ = sender
                        .send(Err(Status::unavailable(
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
            let (all_bids, all_asks) = &view.markets[usize::from(market.0)];
            let bids: Vec<Level> = all_bids.iter().take(depth).copied().collect();
            let asks: Vec<Level> = all_asks.iter().take(depth).copied().collect();
            let sum = checksum(
                all_asks,
                all_bids,
                |price| market_view.price(price),
                |quantity| market_view.quantity(quantity),
            );
            let update = match &sent {
                None => Some(proto::book_update::Update::Snapshot(proto::BookSnapshot {
                    bids: wire(&market_view, &bids),
                    asks: wire(&market_view, &asks),
                    book_seq: view.seq,
                })),
                Some((old_bids, old_asks)) => {
                    let changed_bids = diff(old_bids, &bids);
                    let changed_asks = diff(old_asks, &asks);
                    (!changed_bids.is_empty() || !changed_asks.is_empty()).then(|| {
                        proto::book_update::Update::Changes(proto::LevelChanges {
                            bids: wire(&market_view, &changed_bids),
                            asks: wire(&market_view, &changed_asks),
                            book_seq: view.seq,
                        })
                    })
                }
            };
            if let Some(update) = update {
                if !deliver(&sender, &mut stream_seq, update, sum).await {
                    return;
                }
                ticker.reset();
                sent = Some((bids, asks));
            }
            tokio::select! {
                changed = views.changed() => if changed.is_err() { return },
                _ = ticker.tick() => {
                    let beat = proto::book_update::Update::Heartbeat(proto::Heartbeat { book_seq: view.seq });
                    if !deliver(&sender, &mut stream_seq, beat, sum).await {
                        return;
                    }
                }
                _ = stopping() => {
                    let _ = sender.send(Err(Status::unavailable("the server is shutting down; resubscribe"))).await;
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
    update: proto::book_update::Update,
    checksum: u32,
) -> bool {
    if sender.capacity() <= 1 {
        let _ = sender.try_send(Err(Status::aborted(
            "the client fell too far behind; resubscribe for a new snapshot",
        )));
        return false;
    }
    *stream_seq += 1;
    let message = proto::BookUpdate {
        seq: *stream_seq,
        update: Some(update),
        checksum,
    };
    sender.send(Ok(message)).await.is_ok()
}

/// The levels of `new` that differ from `old`, with zero for those gone.
pub fn diff(old: &[Level], new: &[Level]) -> Vec<Level> {
    let mut changes: Vec<Level> = new
        .iter()
        .filter(|level| !old.contains(level))
        .copied()
        .collect();
    for level in old {
        if !new.iter().any(|other| other.price == level.price) {
            changes.push(Level {
                price: level.price,
                quantity: crate::types::Quantity::ZERO,
            });
        }
    }
    changes
}

pub fn wire(market: &MarketView<'_>, levels: &[Level]) -> Vec<proto::PriceLevel> {
    levels
        .iter()
        .map(|level| proto::PriceLevel {
            price: market.price(level.price),
            quantity: market.quantity(level.quantity),
        })
        .collect()
}
