//! A sequencer's whole state as plain data: what the store writes every so many events so
//! that a restart loads it and replays only the commands after it.
//!
//! The encoding is canonical: maps are written sorted and books in priority order, so two
//! sequencers in the same state give the same bytes and the same state hash, however they
//! got there (straight from genesis, or from an earlier snapshot plus replay).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::book::{OrderBook, RestingOrder};
use super::client_orders::{ClientOrder, ClientOrderRecordViews, ClientOrders, RecordOrder};
use super::idempotency::{IdempotencyRecord, IdempotencyRecordView, IdempotencyRecords};
use super::sequencer::Sequencer;
use crate::config::EngineConfig;
use crate::ledger::{Ledger, PrepaidPool};
use crate::types::{AccountId, OrderId, OrderStatus, OrderTerms, Quantity, Side};

/// Everything a sequencer needs to continue where it was. `Kept` is how a kept client
/// order id is recorded: [`ClientOrderRecord`], but for reading the earlier formats,
/// which recorded each one at length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencerSnapshot<Kept = ClientOrderRecord> {
    /// The sequence number of the last event applied.
    pub last_seq: u64,
    /// The id the next order gets.
    pub next_order_id: u64,
    /// The id the next trade gets.
    pub next_trade_id: u64,
    /// The clock: the largest timestamp of the commands that changed state.
    pub clock_ms: u64,
    /// Accounts and balances.
    pub ledger: Ledger,
    /// Holders' automatic top-ups and spend limits.
    pub prepaid: PrepaidPool,
    /// Idempotency keys applied within the retention window, sorted by account and key.
    pub idempotency: Vec<IdempotencyRecord>,
    /// Per market: the bids, then the asks, each side in priority order.
    pub books: Vec<Vec<RestingOrder>>,
    /// Orders placed with a client order id, live or ended within the retention window,
    /// sorted by account and id.
    pub client_orders: Vec<Kept>,
    /// The engine configuration the state's commands were decided under, and the next
    /// ones are; `None` in a snapshot of the format before it was recorded.
    pub engine: Option<EngineConfig>,
}

/// A snapshot in its canonical encoding (postcard), with the sequence number it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedSnapshot {
    /// The sequence number of the last event applied.
    pub last_seq: u64,
    /// The encoding of the [`SequencerSnapshot`] of the same state.
    pub body: Vec<u8>,
}

/// A [`SequencerSnapshot`] borrowed from the state it describes: the same fields in the
/// same order, so it encodes to the same bytes without copying the state first (a state
/// of a million kept client order ids would be a million copies of each).
#[derive(Serialize)]
struct SnapshotView<'a> {
    last_seq: u64,
    next_order_id: u64,
    next_trade_id: u64,
    clock_ms: u64,
    ledger: &'a Ledger,
    prepaid: &'a PrepaidPool,
    idempotency: Vec<IdempotencyRecordView<'a>>,
    books: Vec<Vec<RestingOrder>>,
    client_orders: ClientOrderRecordViews<'a>,
    engine: Option<&'a EngineConfig>,
}

/// A [`ClientOrderRecord`] borrowed from the state: it encodes to the same bytes (see its
/// `Serialize` in `client_orders`).
pub(super) struct ClientOrderRecordView<'a> {
    pub(super) account: AccountId,
    pub(super) client_order_id: &'a str,
    pub(super) entry: &'a ClientOrder,
}

/// An order placed with a client order id. Its owner, its id and the terms it was placed
/// with are written once: a state under a high order rate keeps hundreds of thousands of
/// these, and each snapshot writes, hashes and stores every one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientOrderRecord {
    /// The owner.
    pub account: AccountId,
    /// The owner's id for it.
    pub client_order_id: Box<str>,
    /// The terms it was placed with.
    pub placed: OrderTerms,
    /// The exchange's id for it.
    pub order_id: OrderId,
    /// How it ended, once it has.
    pub ended: Option<EndedRecord>,
    /// Once ended: the clock time from which the id is forgotten.
    pub expires_ms: Option<u64>,
}

/// How an order placed with a client order id ended: its view but for what the record
/// holds already (its ids, its owner and, unless an amend changed them, its terms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedRecord {
    /// Its terms when it ended, if an amend had changed them from those it was placed
    /// with; `None` when they are those, so that a state has one encoding.
    pub terms: Option<OrderTerms>,
    /// Lots traded.
    pub filled: Quantity,
    /// How it ended.
    pub status: OrderStatus,
    /// The sequence number of its acceptance.
    pub created_seq: u64,
}

impl SequencerSnapshot {
    /// Its canonical encoding, as a snapshot file holds it.
    pub fn encoded(&self) -> EncodedSnapshot {
        EncodedSnapshot {
            last_seq: self.last_seq,
            body: postcard::to_allocvec(self)
                .expect("a snapshot always encodes: it holds only plain data"),
        }
    }

    /// The state hash a sequencer restored from it has: the SHA-256 of its encoding, or,
    /// when it records no engine configuration, of the encoding without it (as
    /// [`Sequencer::state_hash_without_engine`] computes). What a snapshot of an earlier
    /// format, converted, is checked against once restored.
    pub fn state_hash(&self) -> [u8; 32] {
        let body = self.encoded().body;
        // The configuration is encoded last, and `None` as postcard's one byte 0.
        let body = match self.engine {
            Some(_) => &body[..],
            None => &body[..body.len() - 1],
        };
        Sha256::digest(body).into()
    }
}

impl<B: OrderBook> Sequencer<B> {
    /// Every market's resting orders: per market the bids, then the asks, each side in
    /// priority order. Only the books are copied, not the rest of the state.
    pub fn resting_orders(&self) -> Vec<Vec<RestingOrder>> {
        self.books
            .iter()
            .map(|book| {
                let mut orders = Vec::with_capacity(book.len());
                for side in [Side::Buy, Side::Sell] {
                    book.visit_in_priority(side, &mut |order| {
                        orders.push(*order);
                        true
                    });
                }
                orders
            })
            .collect()
    }

    /// The whole state, canonically ordered.
    pub fn snapshot(&self) -> SequencerSnapshot {
        let books = self.resting_orders();
        let client_orders = self.client_orders.records(self.clock_ms);
        SequencerSnapshot {
            last_seq: self.last_seq(),
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            clock_ms: self.clock_ms,
            ledger: self.ledger.clone(),
            prepaid: self.prepaid.clone(),
            idempotency: self.idempotency.live(self.clock_ms),
            books,
            client_orders,
            engine: Some(self.config.clone()),
        }
    }

    /// Records a snapshot copies: accounts, resting orders, idempotency records and
    /// client order ids kept.
    pub fn state_records(&self) -> u64 {
        let resting: usize = self.books.iter().map(|book| book.len()).sum();
        (self.ledger.accounts().len()
            + self.prepaid.len()
            + resting
            + self.idempotency.len()
            + self.client_orders.len()) as u64
    }

    /// The whole state in its canonical encoding, the same bytes as the encoding of
    /// [`Sequencer::snapshot`], written from the state where it is.
    pub fn encoded_snapshot(&self) -> EncodedSnapshot {
        self.encoded_snapshot_into(Vec::new(), &mut RecordOrder::default())
    }

    /// [`Sequencer::encoded_snapshot`] written into `buffer`, emptied first, with the kept
    /// client order ids sorted in `order`: both kept from an earlier snapshot already have
    /// the room, so a large state is not encoded through fresh memory the kernel has to
    /// zero, or a series of growing copies.
    pub fn encoded_snapshot_into(
        &self,
        mut buffer: Vec<u8>,
        order: &mut RecordOrder,
    ) -> EncodedSnapshot {
        buffer.clear();
        let view = SnapshotView {
            last_seq: self.last_seq(),
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            clock_ms: self.clock_ms,
            ledger: &self.ledger,
            prepaid: &self.prepaid,
            idempotency: self.idempotency.live_views(self.clock_ms),
            books: self.resting_orders(),
            client_orders: self.client_orders.record_views(self.clock_ms, order),
            engine: Some(&self.config),
        };
        let body = super::encoding::to_extend(&view, buffer)
            .expect("a snapshot always encodes: it holds only plain data");
        EncodedSnapshot {
            last_seq: view.last_seq,
            body,
        }
    }

    /// SHA-256 of the canonical encoding of the whole state.
    pub fn state_hash(&self) -> [u8; 32] {
        Sha256::digest(&self.encoded_snapshot().body).into()
    }

    /// SHA-256 of the state's encoding in the snapshot format before the engine
    /// configuration was recorded: the same bytes without the configuration, which is
    /// encoded last. What a snapshot of that format recorded as its hash.
    pub fn state_hash_without_engine(&self) -> [u8; 32] {
        let mut body = self.encoded_snapshot().body;
        let engine = postcard::to_allocvec(&Some(&self.config))
            .expect("a configuration always encodes: it holds only plain data");
        body.truncate(body.len() - engine.len());
        Sha256::digest(&body).into()
    }

    /// A sequencer continuing from `snapshot`, with every invariant checked before it is
    /// returned, under the engine configuration the snapshot records, or `config` for a
    /// snapshot that records none (which must have been validated and have the snapshot's
    /// markets).
    pub fn from_snapshot(
        config: EngineConfig,
        mut snapshot: SequencerSnapshot,
    ) -> Result<Self, String> {
        let engine_recorded = snapshot.engine.is_some();
        let config = snapshot.engine.take().unwrap_or(config);
        if snapshot.books.len() != config.markets.len() {
            return Err(format!(
                "the snapshot has {} markets but the configuration {}",
                snapshot.books.len(),
                config.markets.len()
            ));
        }
        let mut sequencer = Sequencer::<B>::new(config);
        sequencer.engine_recorded = engine_recorded;
        sequencer.next_seq = snapshot.last_seq + 1;
        sequencer.next_order_id = snapshot.next_order_id;
        sequencer.next_trade_id = snapshot.next_trade_id;
        sequencer.clock_ms = snapshot.clock_ms;
        sequencer.ledger = snapshot.ledger;
        sequencer.prepaid = snapshot.prepaid;
        sequencer.idempotency = IdempotencyRecords::from_live(snapshot.idempotency)?;
        for (index, orders) in snapshot.books.into_iter().enumerate() {
            // Inserting in priority order into an empty book restores time priority.
            for order in orders {
                if sequencer.ledger.account(order.account).is_none() {
                    return Err(format!("order {} belongs to no account", order.id));
                }
                if sequencer.books[index].get(order.id).is_some() {
                    return Err(format!("order {} is in the snapshot twice", order.id));
                }
                sequencer.track(order.account);
                sequencer.books[index].insert(order);
            }
        }
        sequencer.client_orders = ClientOrders::from_records(snapshot.client_orders);
        for (index, account) in sequencer.ledger.accounts().iter().enumerate() {
            if account.id.0 != index as u64 + 1 {
                return Err(format!(
                    "account {} is stored at position {index}",
                    account.id
                ));
            }
        }
        sequencer.check_invariants()?;
        Ok(sequencer)
    }
}
