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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prost::bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::Status;

use super::context::{Context, MarketView};
use super::journal_pages::PAGE_EVENTS;
use super::proto;
use super::status;
use crate::engine::Level;
use crate::market_data::{checksum, BookReplica, BookView};
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

/// A published view of every book, with what its subscribers share: the level changes
/// from the view before it (encoded once per market and depth, for every subscriber that
/// sent that view), each market's checksum, and the heartbeat.
pub struct SharedView {
    /// The books' top levels.
    pub view: BookView,
    /// The sequence number of the view published before this one.
    previous_seq: Option<u64>,
    /// Encoded changes from the previous view, by market and depth (`None`: nothing
    /// changed within that depth).
    changes: Mutex<HashMap<(MarketId, usize), Option<Bytes>>>,
    /// Each market's checksum, computed by its first subscriber.
    checksums: Vec<OnceLock<u32>>,
    /// The heartbeat's encoding.
    heartbeat: Bytes,
}

/// One market's bids and asks, best first.
pub type Sides = (Vec<Level>, Vec<Level>);

/// The views of the book feed, as subscribers and the NATS publisher read them.
pub type Views = watch::Sender<Option<Arc<SharedView>>>;

/// Publishes `view`, the successor of the one published before it.
fn publish(views: &Views, view: BookView) {
    let previous_seq = views.borrow().as_ref().map(|shared| shared.view.seq);
    let heartbeat = proto::book_update::Update::Heartbeat(proto::Heartbeat { book_seq: view.seq });
    let shared = SharedView {
        previous_seq,
        changes: Mutex::new(HashMap::new()),
        checksums: (0..view.markets.len()).map(|_| OnceLock::new()).collect(),
        heartbeat: heartbeat.shared(),
        view,
    };
    views.send_replace(Some(Arc::new(shared)));
}

impl SharedView {
    /// A market's top-of-book checksum in this view.
    pub fn checksum(&self, market: MarketView<'_>) -> u32 {
        *self.checksums[usize::from(market.id.0)].get_or_init(|| {
            let (bids, asks) = &self.view.markets[usize::from(market.id.0)];
            checksum(
                asks,
                bids,
                |price| market.price(price),
                |quantity| market.quantity(quantity),
            )
        })
    }

    /// The encoded changes of `market` at `depth` from the previous view, for a
    /// subscriber that sent `sent` (the previous view's levels at that depth); encoded by
    /// the first subscriber that asks, shared by the others.
    fn shared_changes(
        &self,
        market: MarketView<'_>,
        depth: usize,
        sent: &Sides,
        now: &Sides,
    ) -> Option<Bytes> {
        let Ok(mut changes) = self.changes.lock() else {
            return changes_of(market, sent, now, self.view.seq).map(|update| update.shared());
        };
        changes
            .entry((market.id, depth))
            .or_insert_with(|| {
                changes_of(market, sent, now, self.view.seq).map(|update| update.shared())
            })
            .clone()
    }
}

impl SharedView {
    /// A market's top `depth` levels a side in this view.
    pub fn sides(&self, market: MarketId, depth: usize) -> Sides {
        let (bids, asks) = &self.view.markets[usize::from(market.0)];
        (
            bids.iter().take(depth).copied().collect(),
            asks.iter().take(depth).copied().collect(),
        )
    }

    /// What a subscriber at `depth` is sent for this view, given what it last sent (the
    /// view's sequence number and its levels) and the levels now: a snapshot first; the
    /// shared changes when it sent the view before this one; its own, coalesced, when it
    /// skipped views; nothing when nothing changed.
    fn payload(
        &self,
        market: MarketView<'_>,
        depth: usize,
        sent: Option<&(u64, Sides)>,
        now: &Sides,
    ) -> Option<Payload> {
        match sent {
            None => Some(Payload::Own(proto::book_update::Update::Snapshot(
                proto::BookSnapshot {
                    bids: wire(&market, &now.0),
                    asks: wire(&market, &now.1),
                    book_seq: self.view.seq,
                },
            ))),
            Some((sent_seq, levels)) if Some(*sent_seq) == self.previous_seq => self
                .shared_changes(market, depth, levels, now)
                .map(Payload::Shared),
            Some((_, levels)) => changes_of(market, levels, now, self.view.seq).map(Payload::Own),
        }
    }
}

/// The level changes from `sent` to `now`, if any.
fn changes_of(
    market: MarketView<'_>,
    (old_bids, old_asks): &Sides,
    (bids, asks): &Sides,
    book_seq: u64,
) -> Option<proto::book_update::Update> {
    let changed_bids = diff(old_bids, bids);
    let changed_asks = diff(old_asks, asks);
    (!changed_bids.is_empty() || !changed_asks.is_empty()).then(|| {
        proto::book_update::Update::Changes(proto::LevelChanges {
            bids: wire(&market, &changed_bids),
            asks: wire(&market, &changed_asks),
            book_seq,
        })
    })
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

/// What a message says: an update of its own, or a shared encoding.
enum Payload {
    Own(proto::book_update::Update),
    Shared(Bytes),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Price, Quantity};

    fn level(price: u64, quantity: u64) -> Level {
        Level {
            price: Price(price),
            quantity: Quantity(quantity),
        }
    }

    #[test]
    fn subscribers_in_step_share_one_encoding_of_the_changes_and_the_heartbeat() {
        let config = crate::config::EngineConfig::default();
        let market = MarketView {
            id: MarketId(0),
            spec: &config.markets[0],
        };
        let views: Views = watch::Sender::new(None);
        let before = (vec![level(5_000, 100)], vec![level(6_000, 100)]);
        publish(
            &views,
            BookView {
                seq: 10,
                markets: vec![before.clone()],
            },
        );
        let after = (vec![level(5_000, 300)], vec![level(6_000, 100)]);
        publish(
            &views,
            BookView {
                seq: 11,
                markets: vec![after.clone()],
            },
        );
        let shared = views.borrow().clone().expect("a view");
        assert_eq!(shared.previous_seq, Some(10));
        let first = shared
            .shared_changes(market, 10, &before, &after)
            .expect("the bid changed");
        let second = shared
            .shared_changes(market, 10, &before, &after)
            .expect("the bid changed");
        // One encoding, its bytes shared rather than copied or encoded again.
        assert_eq!(first.as_ptr(), second.as_ptr());
        let message = proto::BookUpdate::with_shared(3, second, shared.checksum(market));
        let decoded = <proto::BookUpdate as prost::Message>::decode(
            prost::Message::encode_to_vec(&message).as_slice(),
        )
        .expect("decodes");
        let Some(proto::book_update::Update::Changes(changes)) = decoded.update else {
            panic!("changes: {decoded:?}");
        };
        assert_eq!(
            (changes.bids.len(), changes.asks.len(), changes.book_seq),
            (1, 0, 11)
        );
        // Nothing changed at that depth: nothing to send.
        let unchanged = (vec![level(5_000, 100)], Vec::new());
        assert!(shared
            .shared_changes(market, 1, &unchanged, &unchanged)
            .is_none());
        let beat = proto::BookUpdate::with_shared(4, shared.heartbeat.clone(), 0);
        let decoded = <proto::BookUpdate as prost::Message>::decode(
            prost::Message::encode_to_vec(&beat).as_slice(),
        )
        .expect("decodes");
        assert!(matches!(
            decoded.update,
            Some(proto::book_update::Update::Heartbeat(proto::Heartbeat {
                book_seq: 11
            }))
        ));
    }
}
