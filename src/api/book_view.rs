//! The published views of every book: the top levels after each committed batch, held
//! in a watch channel that keeps only the newest, with what the subscribers in step share
//! (the level changes from the view before, encoded once per market and depth by the
//! first subscriber that asks; each market's checksum; the heartbeat).
//!
//! What this is not: the feed that keeps the books (`book_stream.rs`) nor a subscriber's
//! stream; it knows views, markets and the wire, not the handlers' context.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use prost::bytes::Bytes;
use tokio::sync::watch;

use super::market_view::MarketView;
use super::proto;
use crate::engine::Level;
use crate::market_data::{checksum, BookView};
use crate::types::MarketId;

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
    pub heartbeat: Bytes,
}

/// One market's bids and asks, best first.
pub type Sides = (Vec<Level>, Vec<Level>);

/// The views of the book feed, as subscribers and the NATS publisher read them.
pub type Views = watch::Sender<Option<Arc<SharedView>>>;

/// Publishes `view`, the successor of the one published before it.
pub fn publish(views: &Views, view: BookView) {
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
    pub fn payload(
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

/// What a message says: an update of its own, or a shared encoding.
pub enum Payload {
    Own(proto::book_update::Update),
    Shared(Bytes),
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
