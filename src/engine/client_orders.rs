//! Client order ids: each account's orders by the id it gave them, kept while the order
//! lives and, once it has ended, for the retention window, so that a retry is answered
//! with the order rather than placing another.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::keyed_slots::{key_hash, Keyed, KeyedSlots};
use super::snapshot::{ClientOrderRecord, ClientOrderRecordView, EndedRecord};
use crate::types::ClientKey;
use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};

use crate::command::NewOrder;
use crate::event::OrderView;
use crate::types::{AccountId, OrderId, OrderStatus, OrderTerms, Quantity};

/// An order placed with a client order id: what it was placed with, so a retry can be
/// told from a reuse, and how it ended once it has. Its owner and its client order id are
/// the entry's account and key, not copied here: each copy of an id was an allocation,
/// and an entry is kept for every order of the retention window.
#[derive(Clone, Debug)]
pub(super) struct ClientOrder {
    /// The terms it was placed with.
    pub(super) placed: OrderTerms,
    pub(super) order_id: OrderId,
    pub(super) ended: Option<Ended>,
    /// Once ended: the clock time from which the id is forgotten (a retry then places a
    /// new order).
    pub(super) expires_ms: Option<u64>,
}

/// How an order ended: its view, but for its ids and owner.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ended {
    terms: OrderTerms,
    filled: Quantity,
    status: OrderStatus,
    created_seq: u64,
}

impl Ended {
    /// How an order placed at `created_seq` ended: with `terms`, `filled`, in `status`.
    pub(super) fn new(
        terms: OrderTerms,
        filled: Quantity,
        status: OrderStatus,
        created_seq: u64,
    ) -> Ended {
        Ended {
            terms,
            filled,
            status,
            created_seq,
        }
    }

    /// As a snapshot records it for an order placed with `placed`.
    fn record(&self, placed: &OrderTerms) -> EndedRecord {
        EndedRecord {
            terms: (self.terms != *placed).then_some(self.terms),
            filled: self.filled,
            status: self.status,
            created_seq: self.created_seq,
        }
    }

    /// What a snapshot's record of an order placed with `placed` says.
    fn of_record(record: &EndedRecord, placed: &OrderTerms) -> Ended {
        Ended {
            terms: record.terms.unwrap_or(*placed),
            filled: record.filled,
            status: record.status,
            created_seq: record.created_seq,
        }
    }
}

/// An [`EndedRecord`] borrowed from an entry: it encodes to the same bytes.
#[derive(serde::Serialize)]
struct EndedRecordView<'a> {
    terms: Option<&'a OrderTerms>,
    filled: Quantity,
    status: OrderStatus,
    created_seq: u64,
}

impl ClientOrder {
    /// How the order ended, as the owner `account` sees it, if it has.
    pub(super) fn ended_view(
        &self,
        account: AccountId,
        client_order_id: &str,
    ) -> Option<OrderView> {
        self.ended.as_ref().map(|ended| OrderView {
            order_id: self.order_id,
            account,
            client_order_id: Some(client_order_id.into()),
            terms: ended.terms,
            filled: ended.filled,
            status: ended.status,
            created_seq: ended.created_seq,
        })
    }

    /// How the order ended as a snapshot records it, borrowed.
    fn ended_record_view(&self) -> Option<EndedRecordView<'_>> {
        self.ended.as_ref().map(|ended| EndedRecordView {
            terms: (ended.terms != self.placed).then_some(&ended.terms),
            filled: ended.filled,
            status: ended.status,
            created_seq: ended.created_seq,
        })
    }

    /// Whether the id is still kept at `now_ms`: its order lives, or ended less than the
    /// retention window before.
    pub(super) fn kept_at(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|at| at > now_ms)
    }
}

/// Every client order id kept, and what it owns:
/// - each entry in a slot of [`KeyedSlots`] with its owner, its id and the id's hash,
///   found by owner and id through an index of slot numbers, which stays a few megabytes
///   where the entries run to a hundred: under a high order rate hundreds of thousands of
///   ids are kept, and each placement looks one up that is not there, which reads only
///   the index; a slot freed by an expiry is the next one filled;
/// - the live ids are exactly those of the entries not ended, by order id, as slots;
/// - the expiry queue is in expiry order and holds every ended entry's expiry (and stale
///   ones, of ids placed again since, passed over when popped), naming its slot.
#[derive(Debug, Default)]
pub(super) struct ClientOrders {
    slots: KeyedSlots<Slot>,
    live: FxHashMap<OrderId, u32>,
    expiry: VecDeque<Expiry>,
}

/// A kept id: its owner, the id, the hash the index files it under, and its order.
#[derive(Debug)]
struct Slot {
    account: AccountId,
    client_order_id: ClientKey,
    hash: u64,
    entry: ClientOrder,
}

/// An ended entry's expiry: its slot, and the order it was for, since the slot may hold
/// another order under the same id by then (an id placed again), or another id (once
/// this expiry's entry has gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Expiry {
    expires_ms: u64,
    slot: u32,
    order_id: OrderId,
}

impl Keyed for Slot {
    fn account(&self) -> AccountId {
        self.account
    }

    fn key_bytes(&self) -> &[u8] {
        self.client_order_id.as_bytes()
    }

    fn hash(&self) -> u64 {
        self.hash
    }
}

impl ClientOrders {
    /// The slot of the account's id, if it is kept.
    fn find(&self, account: AccountId, client_order_id: &str) -> Option<u32> {
        self.slots.find(key_hash(account, client_order_id), |kept| {
            kept.account == account && kept.client_order_id.is(client_order_id)
        })
    }

    fn slot(&self, slot: u32) -> &Slot {
        self.slots.filled(slot)
    }

    fn slot_mut(&mut self, slot: u32) -> &mut Slot {
        self.slots.filled_mut(slot)
    }

    /// The account's order under this id, live or ended (ended ones until they are
    /// expired, which the caller judges by `expires_ms` between expiries).
    pub(super) fn get(&self, account: AccountId, client_order_id: &str) -> Option<&ClientOrder> {
        self.find(account, client_order_id)
            .map(|slot| &self.slot(slot).entry)
    }

    /// Ids the account holds, live and ended.
    pub(super) fn count(&self, account: AccountId) -> u32 {
        self.slots.count(account)
    }

    /// Ids held, over every account.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Live orders with a client order id.
    pub(super) fn live_len(&self) -> usize {
        self.live.len()
    }

    /// A live order's client order id.
    pub(super) fn live_id(&self, order_id: OrderId) -> Option<&ClientKey> {
        self.live
            .get(&order_id)
            .map(|&slot| &self.slot(slot).client_order_id)
    }

    /// Keeps a new order's client order id while it lives; an id whose order ended before
    /// is taken over (and stays counted once).
    pub(super) fn placed(&mut self, order: &NewOrder, order_id: OrderId) {
        let Some(client_order_id) = &order.client_order_id else {
            return;
        };
        let entry = ClientOrder {
            placed: order.terms,
            order_id,
            ended: None,
            expires_ms: None,
        };
        let slot = match self.find(order.account, client_order_id) {
            Some(slot) => {
                self.slot_mut(slot).entry = entry;
                slot
            }
            None => self.slots.file(Slot {
                account: order.account,
                client_order_id: ClientKey::new(client_order_id),
                hash: key_hash(order.account, client_order_id),
                entry,
            }),
        };
        self.live.insert(order_id, slot);
    }

    /// A live order's id, once the order has ended.
    pub(super) fn forget_live(&mut self, order_id: OrderId) {
        self.live.remove(&order_id);
    }

    /// A live order's end: its id is no longer live, and how it ended is kept so that a
    /// retry returns it, until `expires_ms` (or the last expiry queued, if later: the
    /// queue stays in order). Its entry is found through the live orders by order id: one
    /// look-up, where finding it by owner and id hashed the id, probed the index and
    /// compared the id.
    pub(super) fn live_ended(&mut self, order_id: OrderId, ended: Ended, expires_ms: u64) {
        let slot = self
            .live
            .remove(&order_id)
            .expect("a live order's client order id is kept");
        self.end_live(order_id, slot, ended, expires_ms);
    }

    /// As [`ClientOrders::live_ended`], but the id stays live until
    /// [`ClientOrders::forget_live`]: a taker's end, recorded while its placement (or
    /// amendment) still reads its id.
    pub(super) fn live_ending(&mut self, order_id: OrderId, ended: Ended, expires_ms: u64) {
        let slot = *self
            .live
            .get(&order_id)
            .expect("a live order's client order id is kept");
        self.end_live(order_id, slot, ended, expires_ms);
    }

    fn end_live(&mut self, order_id: OrderId, slot: u32, ended: Ended, expires_ms: u64) {
        assert_eq!(
            self.slot(slot).entry.order_id,
            order_id,
            "a live id's entry is its order's"
        );
        self.end(slot, ended, expires_ms);
    }

    /// Records how the order in `slot` ended and queues its expiry.
    fn end(&mut self, slot: u32, ended: Ended, expires_ms: u64) {
        let last = self.expiry.back().map_or(0, |expiry| expiry.expires_ms);
        let expires_ms = expires_ms.max(last);
        let entry = &mut self.slot_mut(slot).entry;
        entry.ended = Some(ended);
        entry.expires_ms = Some(expires_ms);
        let order_id = entry.order_id;
        self.expiry.push_back(Expiry {
            expires_ms,
            slot,
            order_id,
        });
    }

    /// Forgets the ids of orders that ended long enough before `now_ms`.
    pub(super) fn expire(&mut self, now_ms: u64) {
        while self
            .expiry
            .front()
            .is_some_and(|expiry| expiry.expires_ms <= now_ms)
        {
            let expiry = self.expiry.pop_front().expect("seen");
            // An id placed again since belongs to another order (and is live, or ended
            // later), and a slot freed since may hold another id: this expiry is stale.
            let current = self.slots.get(expiry.slot).is_some_and(|kept| {
                kept.entry.order_id == expiry.order_id
                    && kept.entry.expires_ms == Some(expiry.expires_ms)
            });
            if current {
                self.slots.remove(expiry.slot);
            }
        }
    }

    /// Reads ahead what look-ups of `ids` and the next `expiries` expiries will read first
    /// (see `KeyedSlots::read_ahead`).
    pub(super) fn read_ahead<'a>(
        &self,
        ids: impl Iterator<Item = (AccountId, &'a str)>,
        expiries: usize,
    ) -> u64 {
        let due = self.expiry.iter().take(expiries).map(|expiry| expiry.slot);
        let hashes = ids.map(|(account, id)| key_hash(account, id));
        self.slots.read_ahead(hashes, due)
    }

    /// The entries not expired at `now_ms`, sorted by account and id: a snapshot's.
    pub(super) fn records(&self, now_ms: u64) -> Vec<ClientOrderRecord> {
        let mut order = RecordOrder::default();
        self.record_views(now_ms, &mut order)
            .views()
            .map(|view| ClientOrderRecord {
                account: view.account,
                client_order_id: Box::from(view.client_order_id),
                placed: view.entry.placed,
                order_id: view.entry.order_id,
                ended: view
                    .entry
                    .ended
                    .map(|ended| ended.record(&view.entry.placed)),
                expires_ms: view.entry.expires_ms,
            })
            .collect()
    }

    /// The entries not expired at `now_ms`, sorted by account and id in `order`, borrowed:
    /// what a snapshot's encoding writes. Keys are unique, so an unstable sort is
    /// canonical.
    ///
    /// Each slot is sorted with its id's first bytes copied beside it ([`SortKey`]), so
    /// that most comparisons are of integers, not of strings each behind a pointer: a
    /// snapshot sorts every kept id, hundreds of thousands under a high order rate. The
    /// order is kept by the caller from one snapshot to the next: tens of megabytes
    /// allocated afresh each time were memory the kernel had to zero each time.
    pub(super) fn record_views<'a>(
        &'a self,
        now_ms: u64,
        order: &'a mut RecordOrder,
    ) -> ClientOrderRecordViews<'a> {
        let sorted = &mut order.0;
        sorted.clear();
        // Room for every slot at once: growing while filling would copy the order and
        // touch fresh memory at each doubling.
        sorted.reserve(self.slots.len());
        sorted.extend(
            self.slots
                .iter()
                .filter(|(_, kept)| kept.entry.kept_at(now_ms))
                .map(|(slot, kept)| {
                    let key = SortKey::of(kept.account, kept.client_order_id.as_bytes());
                    (key, slot)
                }),
        );
        // Byte order, which is `str`'s.
        let id = |slot: u32| self.slot(slot).client_order_id.as_bytes();
        sorted.sort_unstable_by(|(left_key, left), (right_key, right)| {
            left_key
                .cmp(right_key)
                .then_with(|| id(*left).cmp(id(*right)))
        });
        ClientOrderRecordViews {
            orders: self,
            sorted,
        }
    }

    /// The ids a snapshot kept.
    pub(super) fn from_records(records: Vec<ClientOrderRecord>) -> ClientOrders {
        let mut orders = ClientOrders::default();
        let mut expiry = Vec::new();
        for record in records {
            let entry = ClientOrder {
                placed: record.placed,
                order_id: record.order_id,
                ended: (record.ended.as_ref()).map(|ended| Ended::of_record(ended, &record.placed)),
                expires_ms: record.expires_ms,
            };
            // A snapshot lists each account's id once.
            let slot = match orders.find(record.account, &record.client_order_id) {
                Some(slot) => {
                    orders.slot_mut(slot).entry = entry;
                    slot
                }
                None => orders.slots.file(Slot {
                    account: record.account,
                    hash: key_hash(record.account, &record.client_order_id),
                    client_order_id: ClientKey::new(&record.client_order_id),
                    entry,
                }),
            };
            if record.ended.is_none() {
                orders.live.insert(record.order_id, slot);
            }
            if let Some(expires_ms) = record.expires_ms {
                expiry.push(Expiry {
                    expires_ms,
                    slot,
                    order_id: record.order_id,
                });
            }
        }
        expiry.sort();
        orders.expiry = expiry.into();
        orders
    }
}

/// The slots of kept ids in a snapshot's order, for [`ClientOrders::record_views`]; kept
/// from one snapshot to the next for its room.
#[derive(Debug, Default)]
pub struct RecordOrder(Vec<(SortKey, u32)>);

/// The kept ids in a snapshot's order, borrowed: encoded as the sequence of their
/// records.
pub(super) struct ClientOrderRecordViews<'a> {
    orders: &'a ClientOrders,
    sorted: &'a [(SortKey, u32)],
}

/// Records whose slots an encoding reads before it writes them.
const READ_AHEAD_RECORDS: usize = 32;

impl<'a> ClientOrderRecordViews<'a> {
    pub(super) fn views(&self) -> impl ExactSizeIterator<Item = ClientOrderRecordView<'a>> + 'a {
        let orders = self.orders;
        self.sorted
            .iter()
            .map(move |&(_, slot)| ClientOrderRecordView::of(orders.slot(slot)))
    }
}

impl<'a> ClientOrderRecordView<'a> {
    fn of(kept: &'a Slot) -> ClientOrderRecordView<'a> {
        ClientOrderRecordView {
            account: kept.account,
            client_order_id: kept.client_order_id.as_str(),
            entry: &kept.entry,
        }
    }
}

impl Slot {
    /// A value made of fields spread through the slot that its encoding reads (the
    /// compiler lays them out, so not every cache line is sure to be among them), for
    /// `std::hint::black_box`.
    fn read(&self) -> u64 {
        self.account.0
            ^ self.hash
            ^ u64::from(
                self.client_order_id
                    .as_bytes()
                    .first()
                    .copied()
                    .unwrap_or(0),
            )
            ^ self.entry.order_id.0
            ^ self.entry.expires_ms.unwrap_or(0)
            ^ self.entry.ended.map_or(0, |ended| ended.created_seq)
    }
}

impl Serialize for ClientOrderRecordViews<'_> {
    /// As a `Vec` of the records: their count, then each. Each group of records has its
    /// slots read before any is written: in the snapshot's order the slots lie anywhere in
    /// a slab of hundreds of megabytes, and reads that depend on none of the others overlap
    /// their cache misses, where writing one record after another took them in turn (half
    /// of a snapshot's encoding, under an order session's hundreds of thousands of kept
    /// ids).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut records = serializer.serialize_seq(Some(self.sorted.len()))?;
        for group in self.sorted.chunks(READ_AHEAD_RECORDS) {
            let slots = group.iter().map(|&(_, slot)| self.orders.slot(slot));
            std::hint::black_box(slots.clone().fold(0, |read, kept| read ^ kept.read()));
            for kept in slots {
                records.serialize_element(&ClientOrderRecordView::of(kept))?;
            }
        }
        records.end()
    }
}

impl Serialize for ClientOrderRecordView<'_> {
    /// The fields of a [`super::snapshot::ClientOrderRecord`], in its order, written from
    /// the entry where it is: the same bytes.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entry = self.entry;
        let mut record = serializer.serialize_struct("ClientOrderRecord", 6)?;
        record.serialize_field("account", &self.account)?;
        record.serialize_field("client_order_id", self.client_order_id)?;
        record.serialize_field("placed", &entry.placed)?;
        record.serialize_field("order_id", &entry.order_id)?;
        record.serialize_field("ended", &entry.ended_record_view())?;
        record.serialize_field("expires_ms", &entry.expires_ms)?;
        record.end()
    }
}

/// An account and the first [`SortKey::PREFIX_BYTES`] bytes of a client order id, zero
/// padded: ordered as the pairs of account and whole id are, except that two ids equal
/// in those bytes may still differ after them. A padding byte is below any byte of an id
/// that goes on, as an id that ends is below one it begins.
///
/// The prefix is two big-endian halves rather than a `u128`, ordered the same: aligned to
/// 8 bytes, a key and its slot take 32 bytes where a `u128`'s alignment made them 48, and
/// a snapshot's sort moves every one of them many times over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SortKey {
    account: AccountId,
    prefix: [u64; 2],
}

impl SortKey {
    const PREFIX_BYTES: usize = 16;

    fn of(account: AccountId, bytes: &[u8]) -> SortKey {
        let mut prefix = [0; SortKey::PREFIX_BYTES];
        let length = bytes.len().min(SortKey::PREFIX_BYTES);
        prefix[..length].copy_from_slice(&bytes[..length]);
        let (high, low) = prefix.split_at(SortKey::PREFIX_BYTES / 2);
        let half = |bytes: &[u8]| u64::from_be_bytes(bytes.try_into().expect("half of 16 bytes"));
        SortKey {
            account,
            prefix: [half(high), half(low)],
        }
    }
}

const _: () = assert!(std::mem::size_of::<(SortKey, u32)>() == 32);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{
        MarketId, OrderStatus, OrderTerms, OrderType, Price, Quantity, SelfTradePrevention, Side,
        TimeInForce,
    };

    const ALICE: AccountId = AccountId(3);

    fn order(id: &str) -> NewOrder {
        NewOrder {
            account: ALICE,
            terms: OrderTerms {
                market: MarketId(0),
                side: Side::Buy,
                order_type: OrderType::Limit,
                price: Some(Price(5_000)),
                quantity: Quantity(1),
                time_in_force: TimeInForce::GoodTillCanceled,
                post_only: false,
                self_trade_prevention: SelfTradePrevention::CancelTaker,
            },
            client_order_id: Some(id.into()),
        }
    }

    /// How the order placed with `id` ended: canceled, nothing filled.
    fn ended(id: &str) -> Ended {
        Ended::new(order(id).terms, Quantity(0), OrderStatus::Canceled, 1)
    }

    #[test]
    fn an_id_is_counted_once_live_then_ended_until_it_expires() {
        let mut orders = ClientOrders::default();
        orders.placed(&order("a"), OrderId(1));
        orders.placed(&order("b"), OrderId(2));
        assert_eq!(
            (orders.count(ALICE), orders.len(), orders.live_len()),
            (2, 2, 2)
        );
        assert_eq!(orders.live_id(OrderId(1)).map(ClientKey::as_str), Some("a"));
        orders.live_ended(OrderId(1), ended("a"), 100);
        assert_eq!((orders.count(ALICE), orders.live_len()), (2, 1));
        assert_eq!(orders.live_id(OrderId(1)).map(ClientKey::as_str), None);
        let kept = orders.get(ALICE, "a").expect("kept while retention lasts");
        assert_eq!(kept.expires_ms, Some(100));
        orders.expire(99);
        assert_eq!(orders.count(ALICE), 2);
        orders.expire(100);
        assert_eq!((orders.count(ALICE), orders.len()), (1, 1));
        assert!(orders.get(ALICE, "a").is_none());
    }

    #[test]
    fn an_id_placed_again_after_its_order_ended_outlives_the_old_expiry() {
        let mut orders = ClientOrders::default();
        orders.placed(&order("a"), OrderId(1));
        orders.live_ended(OrderId(1), ended("a"), 100);
        // Placed again under the same id: counted once, and the old expiry is stale.
        orders.placed(&order("a"), OrderId(2));
        assert_eq!((orders.count(ALICE), orders.live_len()), (1, 1));
        orders.expire(500);
        assert_eq!(
            orders.get(ALICE, "a").map(|kept| kept.order_id),
            Some(OrderId(2))
        );
        // An expiry earlier than the last queued one is queued at the last one.
        orders.live_ended(OrderId(2), ended("a"), 1_000);
        orders.placed(&order("b"), OrderId(3));
        orders.live_ended(OrderId(3), ended("b"), 600);
        assert_eq!(
            orders.get(ALICE, "b").and_then(|kept| kept.expires_ms),
            Some(1_000)
        );
        let records = orders.records(0);
        assert_eq!(records.len(), 2);
        let restored = ClientOrders::from_records(records.clone());
        assert_eq!(restored.records(0), records);
        assert_eq!((restored.count(ALICE), restored.live_len()), (2, 0));
    }

    #[test]
    fn accounts_keep_the_same_id_apart_and_a_freed_slot_is_filled_again() {
        const BOB: AccountId = AccountId(4);
        let mut orders = ClientOrders::default();
        let mut bobs = order("a");
        bobs.account = BOB;
        orders.placed(&order("a"), OrderId(1));
        orders.placed(&bobs, OrderId(2));
        assert_eq!(
            (orders.count(ALICE), orders.count(BOB), orders.len()),
            (1, 1, 2)
        );
        assert_eq!(
            orders.get(BOB, "a").map(|kept| kept.order_id),
            Some(OrderId(2))
        );
        orders.live_ended(OrderId(1), ended("a"), 100);
        orders.expire(100);
        assert!(orders.get(ALICE, "a").is_none());
        assert_eq!(
            orders.get(BOB, "a").map(|kept| kept.order_id),
            Some(OrderId(2))
        );
        assert_eq!(
            (orders.count(ALICE), orders.count(BOB), orders.len()),
            (0, 1, 1)
        );
        // Alice's freed slot takes her next id; Bob's live id is where it was.
        orders.placed(&order("c"), OrderId(3));
        assert_eq!(orders.slots.capacity(), 2);
        assert_eq!(orders.live_id(OrderId(3)).map(ClientKey::as_str), Some("c"));
        assert_eq!(orders.live_id(OrderId(2)).map(ClientKey::as_str), Some("a"));
        let records = orders.records(0);
        assert_eq!(
            ClientOrders::from_records(records.clone()).records(0),
            records
        );
    }

    /// The ids of `keys` as a snapshot lists them.
    fn snapshot_order(keys: &std::collections::BTreeSet<(u64, String)>) -> Vec<(u64, String)> {
        let mut orders = ClientOrders::default();
        for (index, (account, id)) in keys.iter().enumerate() {
            let mut placed = order(id);
            placed.account = AccountId(*account);
            orders.placed(&placed, OrderId(index as u64 + 1));
        }
        orders
            .record_views(0, &mut RecordOrder::default())
            .views()
            .map(|view| (view.account.0, view.client_order_id.to_string()))
            .collect()
    }

    #[test]
    fn a_snapshot_lists_ids_by_account_then_id_where_ids_share_their_first_bytes() {
        let keys: std::collections::BTreeSet<(u64, String)> = [
            (2, ""),
            (2, "a"),
            (2, "a\0"),
            (2, "a\0\0"),
            (2, "ab"),
            (2, "0123456789abcdef"),
            (2, "0123456789abcdef\0"),
            (2, "0123456789abcdefX"),
            (2, "0123456789abcdefé"),
            (2, "0123456789abcdeX"),
            (2, "é"),
            (1, "z"),
            (1, "0123456789abcdefZ"),
            (1, "0123456789abcdefA"),
            (3, ""),
        ]
        .into_iter()
        .map(|(account, id)| (account, id.to_string()))
        .collect();
        assert_eq!(snapshot_order(&keys), Vec::from_iter(keys.iter().cloned()));
    }

    proptest::proptest! {
        #[test]
        fn a_snapshot_lists_any_ids_by_account_then_id(
            keys in proptest::collection::btree_set(
                (0u64..3, "[ab\\x00é]{0,20}"),
                0..64,
            )
        ) {
            proptest::prop_assert_eq!(snapshot_order(&keys), Vec::from_iter(keys.iter().cloned()));
        }
    }
}
