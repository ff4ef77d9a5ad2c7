//! History read from the store: an account's events newest first, and the events after a
//! sequence number, paginated, without loading more than a page (and the records it
//! touches) into memory.
//!
//! The same indexer keeps every order's state by id and each account's orders, so ended
//! orders can be looked up and listed. Both are written per pass, not per order: sled's
//! cost follows the keys written (about 8 µs each), and at an order session's rate a key
//! per order would take more than a core.
//!
//! An index, kept off the commit path, lists for each account the sequence numbers of the
//! events that concern it: one sled key per account per indexing pass
//! (`account ++ last seq of the pass`), whose value is the list of those sequence numbers;
//! a pass with more of them for one account than a bounded value holds writes several
//! keys, each under the last sequence number it lists.
//! An indexer thread extends it behind the commits, from the committed events it is handed
//! ([`History::index_committed`]) or from the journal ([`History::index_pending`]); a pass
//! may end anywhere, inside a journal record too. The index and the sequence number it
//! reaches are written in one atomic batch, so after a crash it resumes where it stopped. Queries read the index up to where it reaches and scan the journal
//! for the rest, and never look past the last committed sequence number they are given.

use std::collections::BTreeMap;

use super::journal::{self, Records};
use super::{bounded, StoreError};
use crate::event::{Event, EventKind, OrderView};
use crate::ledger::{REVENUE, TREASURY};
use crate::pipeline::JournalRecord;
use crate::types::{AccountId, OrderId};

const INDEXED_SEQ_KEY: &[u8] = b"indexed_seq";

/// Sequence numbers (or order ids) in one value of an account's list, at most: at most 10
/// bytes each in postcard's varints, so a value stays under [`super::VALUE_BYTES_MAX`].
const IDS_PER_VALUE: usize = 3_000;

/// Orders whose views share one bucket of the order index: consecutive order ids, so a
/// pass writes one key per 128 orders it touched (under one order session the index took
/// 21% of a core with sixteen to a bucket, 15-16% with 128).
const ORDERS_PER_BUCKET: u64 = 128;

/// A bucket's parts are numbered in a byte.
const _: () = assert!(ORDERS_PER_BUCKET <= u8::MAX as u64);

/// Bytes of encoded views in one part of a bucket, at most: room is left for the part's
/// count and the views' count, so the value stays under [`super::VALUE_BYTES_MAX`]. A
/// bucket of small views is one value; 128 of the largest (a client order id of
/// `engine.limits.key_length_max`'s 1,024 bytes: about 1.1 KB each) take five.
const PART_VIEW_BYTES_MAX: usize = super::VALUE_BYTES_MAX - 16;

/// The order index: the views of a bucket's orders, by id, under the bucket's number
/// (`order id / ORDERS_PER_BUCKET`), and when they need more than one value, the rest
/// under `bucket ++ part`.
const ORDER_VIEWS_TREE: &str = "order_views";

/// Each account's orders: `account ++ last order id listed` to order ids, ascending.
const ORDER_LISTS_TREE: &str = "order_lists";

/// The order index as it was written sixteen orders to a bucket, one value each:
/// regrouped into [`ORDER_VIEWS_TREE`] when a store opens ([`migrate_order_index`]).
const FORMER_ORDER_BUCKETS_TREE: &str = "order_buckets";

/// Trees of the order index as it was once written, a key per order in each: moved into
/// [`ORDER_VIEWS_TREE`] and [`ORDER_LISTS_TREE`] when a store opens.
const FORMER_ORDER_VIEWS_TREE: &str = "orders";
const FORMER_ACCOUNT_ORDERS_TREE: &str = "account_orders";
const FORMER_CLIENT_ORDERS_TREE: &str = "client_orders";

/// Keys written in one sled batch while migrating, at most.
const MIGRATION_BATCH_KEYS: usize = 1_000;

/// Read access to the journal and the indexes; cheap to clone and to share.
#[derive(Clone)]
pub struct History {
    journal: sled::Tree,
    /// Per account and indexing pass: the sequence numbers of its events.
    index: sled::Tree,
    meta: sled::Tree,
    /// Every order's state as of the indexed sequence number, by bucket of 128 orders.
    order_views: sled::Tree,
    /// Per account: the ids of its orders.
    order_lists: sled::Tree,
}

/// What one indexing pass gathers before writing it in one transaction.
#[derive(Default)]
struct Pass {
    /// Per account: the sequence numbers of the events that concern it.
    events: BTreeMap<AccountId, Vec<u64>>,
    /// The buckets of the orders accepted or changed, as they stand after the pass: each
    /// read once, when the pass first touches it, and written once.
    buckets: BTreeMap<u64, StoredBucket>,
    /// Per account: the orders it placed.
    placed: BTreeMap<AccountId, Vec<u64>>,
}

/// One page of events and where the next page starts, if there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The events, in the order asked for.
    pub events: Vec<Event>,
    /// The sequence number to pass for the next page, when there may be more.
    pub next: Option<u64>,
}

/// The accounts an event concerns: none, one or two, without allocating (the account
/// index and every order-update stream ask it of each event).
pub fn accounts_of(event: &Event) -> impl Iterator<Item = AccountId> + Clone {
    let (first, second) = match &event.kind {
        EventKind::AccountCreated { account, .. }
        | EventKind::TokenChanged { account, .. }
        | EventKind::Deposited { account, .. }
        | EventKind::Withdrawn { account, .. }
        | EventKind::OrderReduced { account, .. }
        | EventKind::OrderReplaced { account, .. }
        | EventKind::OrderRested { account, .. }
        | EventKind::OrderDone { account, .. }
        | EventKind::AutoTopUpSet { account, .. }
        | EventKind::SpendLimitSet { account, .. } => (Some(*account), None),
        EventKind::OrderAccepted(order) => (Some(order.account), None),
        EventKind::IssuePriceSet { .. } | EventKind::EngineConfigured => (None, None),
        EventKind::Minted { .. } => (Some(TREASURY), None),
        EventKind::DivmidsBought { account, .. } | EventKind::AutoToppedUp { account, .. } => {
            (Some(*account), Some(TREASURY))
        }
        EventKind::Charged { account, .. } => (Some(*account), Some(REVENUE)),
        EventKind::Fill(fill) => (Some(fill.maker_account), Some(fill.taker_account)),
    };
    [first, second].into_iter().flatten()
}

impl History {
    pub(super) fn new(db: &sled::Db, journal: sled::Tree) -> Result<History, StoreError> {
        Ok(History {
            journal,
            index: db.open_tree("account_index")?,
            meta: db.open_tree("meta")?,
            order_views: db.open_tree(ORDER_VIEWS_TREE)?,
            order_lists: db.open_tree(ORDER_LISTS_TREE)?,
        })
    }

    /// The sequence number the account index reaches.
    pub fn indexed_seq(&self) -> Result<u64, StoreError> {
        match self.meta.get(INDEXED_SEQ_KEY)? {
            None => Ok(0),
            Some(bytes) => seq_from(&bytes),
        }
    }

    /// Indexes up to `records_max` journal records after what is indexed, not past
    /// `committed_seq`; returns how many it indexed (0 when it has caught up).
    pub fn index_pending(
        &self,
        committed_seq: u64,
        records_max: usize,
    ) -> Result<usize, StoreError> {
        let from = self.indexed_seq()?;
        let mut pass = Pass::default();
        let mut reached = from;
        let mut records = 0;
        for record in self.records_after(from).take(records_max) {
            let record = record?;
            if record.last_seq().is_none_or(|last| last > committed_seq) {
                break;
            }
            // A pass of committed events may have ended inside this record.
            for event in record.events.iter().filter(|event| event.seq > from) {
                self.index_event(event, &mut pass)?;
            }
            reached = record.last_seq().unwrap_or(reached);
            records += 1;
        }
        if records == 0 {
            return Ok(0);
        }
        self.write_pass(pass, reached)?;
        Ok(records)
    }

    /// Indexes committed events handed over in memory (as the commits broadcast them, in
    /// sequence order), passing over those the index reaches already, at most
    /// `events_max`, in one pass: the journal is not read back. Returns how many it
    /// indexed, or `None`, having written nothing, when they do not continue the index
    /// (the caller reads the journal).
    pub fn index_committed<'a>(
        &self,
        events: impl IntoIterator<Item = &'a Event>,
        events_max: usize,
    ) -> Result<Option<u64>, StoreError> {
        let from = self.indexed_seq()?;
        let mut pass = Pass::default();
        let mut reached = from;
        let after = events.into_iter().filter(|event| event.seq > from);
        for event in after.take(events_max) {
            if event.seq != reached + 1 {
                return Ok(None);
            }
            self.index_event(event, &mut pass)?;
            reached = event.seq;
        }
        if reached == from {
            return Ok(Some(0));
        }
        self.write_pass(pass, reached)?;
        Ok(Some(reached - from))
    }

    /// Adds an event to the pass: to the events of the accounts it concerns, and to the
    /// orders it accepts or changes.
    fn index_event(&self, event: &Event, pass: &mut Pass) -> Result<(), StoreError> {
        for account in accounts_of(event) {
            let seqs = pass.events.entry(account).or_default();
            if seqs.last() != Some(&event.seq) {
                seqs.push(event.seq);
            }
        }
        self.index_order_event(event, pass)
    }

    /// Writes a pass and how far it reaches in one transaction: the indexes and their
    /// reach never disagree.
    fn write_pass(&self, pass: Pass, reached: u64) -> Result<(), StoreError> {
        // The last piece of each account's events is keyed by the pass's last sequence
        // number: every listed number is at most its key and above the key before.
        let index_batch = lists_batch(pass.events, Some(reached))?;
        let order_lists_batch = lists_batch(pass.placed, None)?;
        let mut meta_batch = sled::Batch::default();
        meta_batch.insert(INDEXED_SEQ_KEY, &reached.to_be_bytes());
        let mut buckets_batch = sled::Batch::default();
        // A bucket read for an order whose acceptance was pruned holds no view of it: one
        // empty is not written.
        let buckets = pass.buckets.into_iter();
        for (bucket, stored) in buckets.filter(|(_, stored)| !stored.views.is_empty()) {
            insert_bucket(&mut buckets_batch, bucket, &stored.views, stored.parts)?;
        }
        use sled::Transactional;
        (
            &self.index,
            &self.meta,
            &self.order_views,
            &self.order_lists,
        )
            .transaction(|(index, meta, order_views, order_lists)| {
                index.apply_batch(&index_batch)?;
                meta.apply_batch(&meta_batch)?;
                order_views.apply_batch(&buckets_batch)?;
                order_lists.apply_batch(&order_lists_batch)?;
                Ok(())
            })
            .map_err(
                |error: sled::transaction::TransactionError<()>| match error {
                    sled::transaction::TransactionError::Storage(error) => StoreError::Sled(error),
                    sled::transaction::TransactionError::Abort(()) => {
                        StoreError::Corrupt("the index transaction aborted".to_string())
                    }
                },
            )
    }

    /// The account's events, newest first, older than `before` (all when `None`), at most
    /// `limit`, none past `committed_seq`.
    pub fn account_events(
        &self,
        account: AccountId,
        before: Option<u64>,
        limit: usize,
        committed_seq: u64,
    ) -> Result<Page, StoreError> {
        let before = before
            .unwrap_or(u64::MAX)
            .min(committed_seq.saturating_add(1));
        let indexed = self.indexed_seq()?;
        let mut events = Vec::new();
        // The tail the index does not reach yet, newest first.
        if before > indexed + 1 {
            let mut tail: Vec<Event> = Vec::new();
            for record in self.records_after(indexed) {
                let record = record?;
                let past = record.last_seq().is_none_or(|last| last >= before);
                // The index may end inside the first record.
                for event in record
                    .events
                    .into_iter()
                    .filter(|event| event.seq > indexed)
                {
                    if event.seq < before && accounts_of(&event).any(|of| of == account) {
                        tail.push(event);
                    }
                }
                if past {
                    break;
                }
            }
            events.extend(tail.into_iter().rev().take(limit));
        }
        // Then the index, newest group first. A group is keyed by the last sequence number
        // of its pass, so the first group to read is the first keyed at or after `bound`.
        let bound = before.min(indexed.saturating_add(1));
        let mut cache: Option<JournalRecord> = None;
        'groups: for seqs in lists_before(&self.index, account, bound) {
            for seq in seqs?.into_iter().rev().filter(|seq| *seq < bound) {
                if events.len() >= limit {
                    break 'groups;
                }
                // A pruned event is history no longer kept.
                if let Some(event) = self.event(seq, &mut cache)? {
                    events.push(event);
                }
            }
        }
        let next = (events.len() == limit)
            .then(|| events.last().map(|event| event.seq))
            .flatten();
        Ok(Page { events, next })
    }

    /// Events after `after`, oldest first, that `keep` accepts, at most `limit`, none past
    /// `committed_seq`, looking at no more than `scan_max` events.
    pub fn events_after(
        &self,
        after: u64,
        limit: usize,
        scan_max: usize,
        committed_seq: u64,
        keep: impl Fn(&Event) -> bool,
    ) -> Result<Page, StoreError> {
        let mut events = Vec::new();
        let mut scanned = 0;
        let mut last_seen = after;
        'records: for record in self.records_after(after) {
            for event in record?.events {
                if event.seq <= after {
                    continue;
                }
                if event.seq > committed_seq || events.len() >= limit || scanned >= scan_max {
                    break 'records;
                }
                scanned += 1;
                last_seen = event.seq;
                if keep(&event) {
                    events.push(event);
                }
            }
        }
        let more = last_seen < committed_seq;
        Ok(Page {
            events,
            next: more.then_some(last_seen),
        })
    }

    /// The journal's records from the one holding `seq + 1` on: the first may hold
    /// events up to `seq` too, which callers pass over.
    fn records_after(
        &self,
        seq: u64,
    ) -> impl Iterator<Item = Result<JournalRecord, StoreError>> + '_ {
        let start = journal::key_of(seq.saturating_add(1));
        Records::new(self.journal.range(start..)).map(|item| item.map(|(_, record)| record))
    }

    /// The sequence number of the oldest event the journal still holds (retention prunes
    /// older ones); `None` for an empty journal.
    pub fn first_seq(&self) -> Result<Option<u64>, StoreError> {
        match self.records_after(0).next() {
            Some(record) => Ok(record?.first_seq()),
            None => Ok(None),
        }
    }

    /// A sequence number after which every journaled event is from `time_ms` or later
    /// (as far as the clock moved forward): a binary search over the journal's records.
    pub fn seq_before_time(&self, time_ms: u64) -> Result<u64, StoreError> {
        let first_record = |seq: u64| self.record_holding(seq);
        let Some(oldest) = first_record(0)? else {
            return Ok(0);
        };
        let mut low = oldest.first_seq().unwrap_or(1).saturating_sub(1);
        let mut high = match self.journal.last()? {
            None => return Ok(0),
            Some((key, _)) => journal::seq_of_key(&key)?,
        };
        // Invariant: events up to `low` may be older than `time_ms`; the record holding
        // `high` starts at or after it (or `high` is the last event).
        while low + 1 < high {
            let middle = low + (high - low) / 2;
            let record = first_record(middle)?;
            let started = record
                .as_ref()
                .and_then(|record| record.events.first())
                .map_or(u64::MAX, |event| event.timestamp_ms);
            if started < time_ms {
                low = middle;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    /// The first record that ends at or after `seq`: the one holding it, unless retention
    /// pruned it.
    fn record_holding(&self, seq: u64) -> Result<Option<JournalRecord>, StoreError> {
        let scan = self.journal.range(journal::key_of(seq)..);
        Records::new(scan)
            .next()
            .transpose()
            .map(|record| record.map(|(_, record)| record))
    }

    /// The event with sequence number `seq`, reusing the last record read when it holds it.
    fn event(
        &self,
        seq: u64,
        cache: &mut Option<JournalRecord>,
    ) -> Result<Option<Event>, StoreError> {
        let holds = |record: &JournalRecord| {
            record.first_seq().is_some_and(|first| first <= seq)
                && record.last_seq().is_some_and(|last| last >= seq)
        };
        if !cache.as_ref().is_some_and(holds) {
            *cache = self.record_holding(seq)?;
        }
        Ok(cache
            .as_ref()
            .filter(|record| holds(record))
            .and_then(|record| {
                let first = record.first_seq()?;
                record.events.get((seq - first) as usize).cloned()
            }))
    }
}

impl History {
    /// Applies an order's event to its indexed state, in its bucket as the pass holds it.
    fn index_order_event(&self, event: &Event, pass: &mut Pass) -> Result<(), StoreError> {
        if let EventKind::OrderAccepted(accepted) = &event.kind {
            pass.placed
                .entry(accepted.account)
                .or_default()
                .push(accepted.order_id.0);
            let bucket = self.pass_bucket(&mut pass.buckets, accepted.order_id)?;
            put_view(&mut bucket.views, accepted.view(event.seq));
            return Ok(());
        }
        for order_id in event.kind.changed_orders() {
            let bucket = self.pass_bucket(&mut pass.buckets, order_id)?;
            let views = &mut bucket.views;
            // Not there when its acceptance was pruned from history: nothing to update.
            if let Ok(index) = views.binary_search_by_key(&order_id, |view| view.order_id) {
                views[index].apply(&event.kind);
            }
        }
        Ok(())
    }

    /// The bucket of `order_id` as the pass holds it, read from the store the first time.
    fn pass_bucket<'a>(
        &self,
        buckets: &'a mut BTreeMap<u64, StoredBucket>,
        order_id: OrderId,
    ) -> Result<&'a mut StoredBucket, StoreError> {
        Ok(match buckets.entry(bucket_of(order_id)) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                let stored = self.bucket(*entry.key())?;
                entry.insert(stored)
            }
        })
    }

    /// An order's state as of the indexed sequence number.
    pub fn order(&self, order_id: OrderId) -> Result<Option<OrderView>, StoreError> {
        let mut stored = self.bucket(bucket_of(order_id))?.views;
        Ok(stored
            .binary_search_by_key(&order_id, |view| view.order_id)
            .ok()
            .map(|index| stored.swap_remove(index)))
    }

    /// The views of one bucket's orders, by id (none when it holds none yet), read from
    /// all its parts.
    fn bucket(&self, bucket: u64) -> Result<StoredBucket, StoreError> {
        let Some(first) = self.order_views.get(part_key(bucket, 0))? else {
            return Ok(StoredBucket::default());
        };
        let (parts, mut views) = decode_part(&first)?;
        for part in 1..parts {
            let value = self
                .order_views
                .get(part_key(bucket, part))?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "part {part} of {parts} of order bucket {bucket} is missing"
                    ))
                })?;
            views.extend(decode_part(&value)?.1);
        }
        Ok(StoredBucket { views, parts })
    }

    /// The account's orders, newest first, placed before `before` (an order id; all when
    /// `None`), at most `limit`.
    pub fn account_orders(
        &self,
        account: AccountId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OrderView>, StoreError> {
        let bound = before.unwrap_or(u64::MAX);
        let mut views = Vec::new();
        let mut cache: Option<(u64, Vec<OrderView>)> = None;
        for ids in lists_before(&self.order_lists, account, bound) {
            for id in ids?.into_iter().rev().filter(|id| *id < bound) {
                if views.len() >= limit {
                    return Ok(views);
                }
                let bucket = bucket_of(OrderId(id));
                if cache.as_ref().is_none_or(|(cached, _)| *cached != bucket) {
                    cache = Some((bucket, self.bucket(bucket)?.views));
                }
                let stored = cache.as_ref().map_or(&[][..], |(_, views)| views);
                if let Ok(index) = stored.binary_search_by_key(&OrderId(id), |view| view.order_id) {
                    views.push(stored[index].clone());
                }
            }
        }
        Ok(views)
    }
}

fn bucket_of(order_id: OrderId) -> u64 {
    order_id.0 / ORDERS_PER_BUCKET
}

/// A bucket's views as stored, and in how many values.
#[derive(Default)]
struct StoredBucket {
    views: Vec<OrderView>,
    /// Values the views are stored in: 0 for a bucket not written yet.
    parts: u8,
}

/// The key of a bucket's part: the bucket's number, followed by the part's after the first.
fn part_key(bucket: u64, part: u8) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.extend_from_slice(&bucket.to_be_bytes());
    if part > 0 {
        key.push(part);
    }
    key
}

/// A part of a bucket: how many parts the bucket has, and the part's views.
fn decode_part(value: &[u8]) -> Result<(u8, Vec<OrderView>), StoreError> {
    postcard::from_bytes(value).map_err(StoreError::Encoding)
}

/// Writes a bucket's views (by id) into the batch in as many parts as their bytes need,
/// and removes the parts beyond those that the bucket was stored in before
/// (`parts_before`).
fn insert_bucket(
    batch: &mut sled::Batch,
    bucket: u64,
    views: &[OrderView],
    parts_before: u8,
) -> Result<(), StoreError> {
    let values = encode_bucket(views)?;
    // At most one part per view, and a bucket holds at most `ORDERS_PER_BUCKET` (asserted
    // to fit in a byte).
    let parts = u8::try_from(values.len()).expect("a bucket's parts are numbered in a byte");
    for (part, value) in (0..parts).zip(values) {
        batch.insert(part_key(bucket, part), bounded(value));
    }
    for stale in parts..parts_before {
        batch.remove(part_key(bucket, stale));
    }
    Ok(())
}

/// A bucket's values: one holding every view when it fits (the usual case, encoded once),
/// else the views split in order into parts of at most [`PART_VIEW_BYTES_MAX`] bytes.
fn encode_bucket(views: &[OrderView]) -> Result<Vec<Vec<u8>>, StoreError> {
    let whole = postcard::to_allocvec(&(1_u8, views)).map_err(StoreError::Encoding)?;
    if whole.len() <= super::VALUE_BYTES_MAX {
        return Ok(vec![whole]);
    }
    let mut pieces: Vec<&[OrderView]> = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, view) in views.iter().enumerate() {
        let size = postcard::serialize_with_flavor(view, postcard::ser_flavors::Size::default())
            .map_err(StoreError::Encoding)?;
        if index > start && bytes + size > PART_VIEW_BYTES_MAX {
            pieces.push(&views[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    pieces.push(&views[start..]);
    let parts = u8::try_from(pieces.len()).expect("a bucket's parts are numbered in a byte");
    pieces
        .into_iter()
        .map(|piece| postcard::to_allocvec(&(parts, piece)).map_err(StoreError::Encoding))
        .collect()
}

/// Puts a view in its bucket's views, kept by id: replacing the order's older view.
fn put_view(stored: &mut Vec<OrderView>, view: OrderView) {
    match stored.binary_search_by_key(&view.order_id, |stored| stored.order_id) {
        Ok(index) => stored[index] = view,
        Err(index) => stored.insert(index, view),
    }
}

/// Each account's numbers (ascending) in pieces of at most [`IDS_PER_VALUE`], each keyed
/// `account ++` its last number, or the last piece by `last_key` when given.
fn lists_batch(
    lists: BTreeMap<AccountId, Vec<u64>>,
    last_key: Option<u64>,
) -> Result<sled::Batch, StoreError> {
    let mut batch = sled::Batch::default();
    for (account, numbers) in lists {
        let pieces = numbers.chunks(IDS_PER_VALUE);
        let last_piece = pieces.len() - 1;
        for (piece, numbers) in pieces.enumerate() {
            let value = postcard::to_allocvec(numbers).map_err(StoreError::Encoding)?;
            let key = match (piece == last_piece, last_key) {
                (true, Some(key)) => key,
                _ => numbers[numbers.len() - 1],
            };
            batch.insert(&index_key(account, key), bounded(value));
        }
    }
    Ok(batch)
}

/// An account's lists (of its events or of its orders) that may hold numbers below
/// `bound`, newest first. A list holds numbers at most its key and above the key before
/// it, so the first to read is the first keyed at or after `bound`.
fn lists_before(
    tree: &sled::Tree,
    account: AccountId,
    bound: u64,
) -> impl Iterator<Item = Result<Vec<u64>, StoreError>> {
    let first = tree
        .range(index_key(account, bound)..=index_key(account, u64::MAX))
        .next();
    let older = tree
        .range(index_key(account, 0)..index_key(account, bound))
        .rev();
    first.into_iter().chain(older).map(|item| {
        let (_, value) = item?;
        postcard::from_bytes(&value).map_err(StoreError::Encoding)
    })
}

/// Moves an order index written in an earlier layout into the current one, then drops
/// the former trees: buckets of sixteen orders are regrouped into buckets of
/// [`ORDERS_PER_BUCKET`]; an index written a key per order (order views by id,
/// `account ++ order id` keys, client order ids) goes into buckets and lists. Client
/// order ids are not moved: the sequencer keeps those it answers for (live orders', and
/// ended orders' within the retention window). Run when a store opens, before anything
/// indexes; after a crash half way it writes the same keys again.
pub(super) fn migrate_order_index(db: &sled::Db) -> Result<(), StoreError> {
    let names = db.tree_names();
    let exists = |name: &str| names.iter().any(|known| known.as_ref() == name.as_bytes());
    // Sixteen to a bucket first: when the key-per-order trees are still there as well, a
    // move from those was cut short, and they hold it all and are written over it.
    if exists(FORMER_ORDER_BUCKETS_TREE) {
        let former = db.open_tree(FORMER_ORDER_BUCKETS_TREE)?;
        // Keys are big-endian bucket numbers, each value's views by id: views in id order.
        let views = former.iter().values().flat_map(|value| {
            let decoded = value.map_err(StoreError::from).and_then(|value| {
                postcard::from_bytes::<Vec<OrderView>>(&value).map_err(StoreError::Encoding)
            });
            match decoded {
                Ok(views) => views.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(error) => vec![Err(error)],
            }
        });
        let moved = regroup(views, &db.open_tree(ORDER_VIEWS_TREE)?)?;
        db.drop_tree(FORMER_ORDER_BUCKETS_TREE)?;
        tracing::info!(
            orders = moved,
            "the order index is regrouped from buckets of 16 orders into buckets of {ORDERS_PER_BUCKET}"
        );
    }
    if exists(FORMER_ORDER_VIEWS_TREE) {
        let former = db.open_tree(FORMER_ORDER_VIEWS_TREE)?;
        // Keys are big-endian order ids: views in id order.
        let views = former
            .iter()
            .values()
            .map(|value| postcard::from_bytes::<OrderView>(&value?).map_err(StoreError::Encoding));
        let moved = regroup(views, &db.open_tree(ORDER_VIEWS_TREE)?)?;
        db.drop_tree(FORMER_ORDER_VIEWS_TREE)?;
        tracing::info!(
            orders = moved,
            "the order index is moved from a key per order into buckets of {ORDERS_PER_BUCKET}"
        );
    }
    if exists(FORMER_ACCOUNT_ORDERS_TREE) {
        let former = db.open_tree(FORMER_ACCOUNT_ORDERS_TREE)?;
        let lists = db.open_tree(ORDER_LISTS_TREE)?;
        // `account ++ order id` keys, ascending: each account's ids in order.
        let mut held: BTreeMap<AccountId, Vec<u64>> = BTreeMap::new();
        for key in former.iter().keys() {
            let key = key?;
            let account = AccountId(seq_from(&key[..8.min(key.len())])?);
            let order_id = seq_from(&key[8.min(key.len())..])?;
            if !held.contains_key(&account) && held.len() >= MIGRATION_BATCH_KEYS {
                lists.apply_batch(lists_batch(std::mem::take(&mut held), None)?)?;
            }
            let ids = held.entry(account).or_default();
            ids.push(order_id);
            if ids.len() == IDS_PER_VALUE {
                lists.apply_batch(lists_batch(std::mem::take(&mut held), None)?)?;
            }
        }
        lists.apply_batch(lists_batch(held, None)?)?;
        db.drop_tree(FORMER_ACCOUNT_ORDERS_TREE)?;
    }
    if exists(FORMER_CLIENT_ORDERS_TREE) {
        db.drop_tree(FORMER_CLIENT_ORDERS_TREE)?;
    }
    Ok(())
}

/// Writes views that come in id order into the order index's buckets, in batches of at
/// most [`MIGRATION_BATCH_KEYS`] buckets, over what those buckets held; returns how many
/// views it wrote.
fn regroup(
    views: impl Iterator<Item = Result<OrderView, StoreError>>,
    tree: &sled::Tree,
) -> Result<u64, StoreError> {
    let mut batch = sled::Batch::default();
    let mut buckets = 0;
    let mut moved = 0;
    let mut current: Option<(u64, Vec<OrderView>)> = None;
    for view in views {
        let view = view?;
        moved += 1;
        let bucket = bucket_of(view.order_id);
        match &mut current {
            Some((held, views)) if *held == bucket => views.push(view),
            _ => {
                if let Some((done, views)) = current.replace((bucket, vec![view])) {
                    insert_bucket(&mut batch, done, &views, 0)?;
                    buckets += 1;
                }
                if buckets >= MIGRATION_BATCH_KEYS {
                    tree.apply_batch(std::mem::take(&mut batch))?;
                    buckets = 0;
                }
            }
        }
    }
    if let Some((done, views)) = current {
        insert_bucket(&mut batch, done, &views, 0)?;
    }
    tree.apply_batch(batch)?;
    Ok(moved)
}

fn index_key(account: AccountId, seq: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&account.0.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn seq_from(bytes: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("a stored sequence number is not 8 bytes".to_string()))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{
        MarketId, OrderStatus, OrderTerms, OrderType, Price, Quantity, SelfTradePrevention, Side,
        TimeInForce,
    };

    fn view(order_id: u64, account: u64) -> OrderView {
        OrderView {
            order_id: OrderId(order_id),
            account: AccountId(account),
            client_order_id: Some(format!("c{order_id}").into()),
            terms: OrderTerms {
                market: MarketId(0),
                side: Side::Buy,
                order_type: OrderType::Limit,
                price: Some(Price(100 + order_id)),
                quantity: Quantity(5),
                time_in_force: TimeInForce::GoodTillCanceled,
                post_only: false,
                self_trade_prevention: SelfTradePrevention::CancelTaker,
            },
            filled: Quantity(order_id % 5),
            status: OrderStatus::PartiallyFilled,
            created_seq: order_id * 3,
        }
    }

    fn temporary_db() -> sled::Db {
        sled::Config::new()
            .temporary(true)
            .open()
            .expect("sled opens")
    }

    /// A database that `fill` wrote in a former layout, migrated twice: a migration cut
    /// short runs again from the start and must write the same.
    fn migrated_twice(fill: impl Fn(&sled::Db)) -> sled::Db {
        let db = temporary_db();
        fill(&db);
        migrate_order_index(&db).expect("migrates");
        fill(&db);
        migrate_order_index(&db).expect("migrates again");
        db
    }

    fn tree_exists(db: &sled::Db, name: &str) -> bool {
        db.tree_names()
            .iter()
            .any(|known| known.as_ref() == name.as_bytes())
    }

    /// Order `order_id`'s view with a client order id as long as a key may be (1,024
    /// bytes) every third order: 128 such views take more than one sled value.
    fn mixed_view(order_id: u64) -> OrderView {
        let mut view = view(order_id, 7 + order_id % 2);
        if order_id.is_multiple_of(3) {
            view.client_order_id = Some(format!("{order_id:0>1024}").into());
        }
        view
    }

    /// A store as the sixteen-to-a-bucket index left it, holding orders 1..=count.
    fn sixteen_to_a_bucket(db: &sled::Db, count: u64) {
        let tree = db.open_tree(FORMER_ORDER_BUCKETS_TREE).expect("a tree");
        for bucket in 0..=count / 16 {
            let views: Vec<OrderView> = (bucket * 16..(bucket + 1) * 16)
                .filter(|order_id| (1..=count).contains(order_id))
                .map(mixed_view)
                .collect();
            let value = postcard::to_allocvec(&views).expect("encodes");
            tree.insert(bucket.to_be_bytes(), value).expect("written");
        }
    }

    /// Every value of the order index is within sled's bound; returns how many there are.
    fn order_index_values(db: &sled::Db) -> usize {
        let tree = db.open_tree(ORDER_VIEWS_TREE).expect("a tree");
        let mut values = 0;
        for entry in tree.iter() {
            let (_, value) = entry.expect("readable");
            assert!(
                value.len() <= crate::store::VALUE_BYTES_MAX,
                "{}",
                value.len()
            );
            values += 1;
        }
        values
    }

    #[test]
    fn a_sixteen_to_a_bucket_index_is_regrouped_in_parts_and_its_tree_goes() {
        let count = 1_000;
        let db = migrated_twice(|db| sixteen_to_a_bucket(db, count));
        assert!(!tree_exists(&db, FORMER_ORDER_BUCKETS_TREE));
        let history = History::new(&db, db.open_tree("journal").expect("a tree")).expect("opens");
        for order_id in 1..=count {
            let found = history.order(OrderId(order_id)).expect("readable");
            assert_eq!(found, Some(mixed_view(order_id)), "order {order_id}");
        }
        assert_eq!(history.order(OrderId(count + 1)).expect("readable"), None);
        let buckets = count.div_ceil(ORDERS_PER_BUCKET) as usize;
        assert!(
            order_index_values(&db) > buckets,
            "buckets of large views are kept in parts"
        );
    }

    #[test]
    fn a_bucket_written_in_parts_reads_back_whole_and_leaves_no_stale_part() {
        let db = temporary_db();
        let history = History::new(&db, db.open_tree("journal").expect("a tree")).expect("opens");
        let write = |bucket: u64, views: &[OrderView], parts_before: u8| {
            let mut batch = sled::Batch::default();
            insert_bucket(&mut batch, bucket, views, parts_before).expect("encodes");
            history.order_views.apply_batch(batch).expect("written");
        };
        let neighbour: Vec<OrderView> = (256..300).map(mixed_view).collect();
        write(2, &neighbour, 0);
        let large: Vec<OrderView> = (128..256)
            .map(|order_id| {
                let mut view = mixed_view(order_id);
                view.client_order_id = Some(format!("{order_id:0>1024}").into());
                view
            })
            .collect();
        write(1, &large, 0);
        let stored = history.bucket(1).expect("readable");
        assert_eq!(stored.views, large);
        assert!(stored.parts >= 4, "{} parts", stored.parts);
        assert_eq!(order_index_values(&db), 1 + stored.parts as usize);
        // Written again smaller: one part, the others removed.
        let small: Vec<OrderView> = (128..256).map(|order_id| view(order_id, 7)).collect();
        write(1, &small, stored.parts);
        let again = history.bucket(1).expect("readable");
        assert_eq!((again.views, again.parts), (small, 1));
        assert_eq!(order_index_values(&db), 2);
        assert_eq!(history.bucket(2).expect("readable").views, neighbour);
        assert_eq!(history.bucket(0).expect("readable").views, []);
    }

    #[test]
    fn an_order_ended_whose_acceptance_history_no_longer_holds_is_passed_over() {
        let db = temporary_db();
        let history = History::new(&db, db.open_tree("journal").expect("a tree")).expect("opens");
        let ended = Event {
            seq: 1,
            timestamp_ms: 0,
            kind: EventKind::OrderDone {
                order_id: OrderId(500),
                account: AccountId(7),
                market: MarketId(0),
                status: OrderStatus::Canceled,
                reason: crate::event::DoneReason::CanceledByOwner,
                quantity: Quantity(5),
                filled: Quantity(0),
                asset: crate::types::Asset::Usd,
                released: crate::types::Amount(10),
                balance_after: crate::types::Balance::default(),
            },
        };
        let indexed = history.index_committed([&ended], 10).expect("indexes");
        assert_eq!(indexed, Some(1));
        assert_eq!(history.indexed_seq().expect("readable"), 1);
        assert_eq!(history.order(OrderId(500)).expect("readable"), None);
        assert_eq!(order_index_values(&db), 0, "no bucket is written for it");
        // The event is still in the account's index.
        let listed: Vec<Vec<u64>> = lists_before(&history.index, AccountId(7), u64::MAX)
            .collect::<Result<_, _>>()
            .expect("readable");
        assert_eq!(listed, [[1]]);
    }

    /// A store as the key-per-order index left it, holding orders 1..=count of accounts
    /// 7 and 8 in turn.
    fn former_index(db: &sled::Db, count: u64) {
        let orders = db.open_tree(FORMER_ORDER_VIEWS_TREE).expect("a tree");
        let account_orders = db.open_tree(FORMER_ACCOUNT_ORDERS_TREE).expect("a tree");
        let client_orders = db.open_tree(FORMER_CLIENT_ORDERS_TREE).expect("a tree");
        for order_id in 1..=count {
            let view = view(order_id, 7 + order_id % 2);
            let value = postcard::to_allocvec(&view).expect("encodes");
            orders
                .insert(order_id.to_be_bytes(), value)
                .expect("written");
            account_orders
                .insert(index_key(view.account, order_id), &[])
                .expect("written");
            client_orders
                .insert(
                    format!("{}c{order_id}", view.account.0),
                    &order_id.to_be_bytes(),
                )
                .expect("written");
        }
    }

    #[test]
    fn a_key_per_order_index_moves_into_buckets_and_lists_and_its_trees_go() {
        let count = 7_000;
        let db = migrated_twice(|db| former_index(db, count));
        for former in [
            FORMER_ORDER_VIEWS_TREE,
            FORMER_ACCOUNT_ORDERS_TREE,
            FORMER_CLIENT_ORDERS_TREE,
        ] {
            assert!(!tree_exists(&db, former), "{former} is dropped");
        }
        let history = History::new(&db, db.open_tree("journal").expect("a tree")).expect("opens");
        for order_id in [1, 2, 15, 16, 17, 127, 128, 129, 3_333, count] {
            let found = history.order(OrderId(order_id)).expect("readable");
            assert_eq!(found, Some(view(order_id, 7 + order_id % 2)));
        }
        assert_eq!(history.order(OrderId(count + 1)).expect("readable"), None);
        for account in [7, 8] {
            let expected: Vec<u64> = (1..=count)
                .rev()
                .filter(|order_id| 7 + order_id % 2 == account)
                .collect();
            let listed = history
                .account_orders(AccountId(account), None, 10_000)
                .expect("readable");
            let listed: Vec<u64> = listed.iter().map(|view| view.order_id.0).collect();
            assert_eq!(listed, expected);
            let page = history
                .account_orders(AccountId(account), Some(3_001), 4)
                .expect("readable");
            let page: Vec<u64> = page.iter().map(|view| view.order_id.0).collect();
            assert_eq!(
                page,
                expected
                    .into_iter()
                    .filter(|id| *id < 3_001)
                    .take(4)
                    .collect::<Vec<_>>()
            );
        }
        // A store with nothing to move is left as it is.
        migrate_order_index(&db).expect("nothing to do");
        assert_eq!(
            history.order(OrderId(1)).expect("readable"),
            Some(view(1, 8))
        );
    }
}
