//! History read from the store: an account's events newest first, and the events after a
//! sequence number, paginated, without loading more than a page (and the records it
//! touches) into memory.
//!
//! The same indexer keeps every order's state by id, an account's orders, and client order
//! ids, so ended orders can be looked up and listed.
//!
//! An index, kept off the commit path, lists for each account the sequence numbers of the
//! events that concern it: one sled key per account per indexing pass
//! (`account ++ last seq of the pass`), whose value is the list of those sequence numbers;
//! a pass with more of them for one account than a bounded value holds writes several
//! keys, each under the last sequence number it lists.
//! An indexer thread extends it from the journal behind the commits; the index and the
//! sequence number it reaches are written in one atomic batch, so after a crash it resumes
//! where it stopped. Queries read the index up to where it reaches and scan the journal
//! for the rest, and never look past the last committed sequence number they are given.

use std::collections::BTreeMap;

use super::journal::{self, JournalRecord, Records};
use super::{bounded, StoreError};
use crate::event::{Event, EventKind, OrderView};
use crate::ledger::{REVENUE, TREASURY};
use crate::types::{AccountId, OrderId};

const INDEXED_SEQ_KEY: &[u8] = b"indexed_seq";

/// Sequence numbers in one value of the account index, at most: at most 10 bytes each
/// in postcard's varints, so a value stays under [`super::VALUE_BYTES_MAX`].
const INDEX_SEQS_PER_VALUE: usize = 3_000;

/// Read access to the journal and the indexes; cheap to clone and to share.
#[derive(Clone)]
pub struct History {
    journal: sled::Tree,
    /// Per account and indexing pass: the sequence numbers of its events.
    index: sled::Tree,
    meta: sled::Tree,
    /// Every order's state as of the indexed sequence number, by order id.
    orders: sled::Tree,
    /// `account ++ order id`, for listing an account's orders.
    account_orders: sled::Tree,
    /// `account ++ client order id` to the latest order placed with it.
    client_orders: sled::Tree,
}

/// One page of events and where the next page starts, if there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The events, in the order asked for.
    pub events: Vec<Event>,
    /// The sequence number to pass for the next page, when there may be more.
    pub next: Option<u64>,
}

/// The accounts an event concerns.
pub fn accounts_of(event: &Event) -> Vec<AccountId> {
    match &event.kind {
        EventKind::AccountCreated { account, .. }
        | EventKind::TokenChanged { account, .. }
        | EventKind::Deposited { account, .. }
        | EventKind::Withdrawn { account, .. }
        | EventKind::OrderReduced { account, .. }
        | EventKind::OrderReplaced { account, .. }
        | EventKind::OrderRested { account, .. }
        | EventKind::OrderDone { account, .. }
        | EventKind::AutoTopUpSet { account, .. }
        | EventKind::SpendLimitSet { account, .. } => vec![*account],
        EventKind::OrderAccepted(order) => vec![order.account],
        EventKind::IssuePriceSet { .. } => Vec::new(),
        EventKind::Minted { .. } => vec![TREASURY],
        EventKind::DivmidsBought { account, .. } | EventKind::AutoToppedUp { account, .. } => {
            vec![*account, TREASURY]
        }
        EventKind::Charged { account, .. } => vec![*account, REVENUE],
        EventKind::Fill(fill) => vec![fill.maker_account, fill.taker_account],
    }
}

impl History {
    pub(super) fn new(db: &sled::Db, journal: sled::Tree) -> Result<History, StoreError> {
        Ok(History {
            journal,
            index: db.open_tree("account_index")?,
            meta: db.open_tree("meta")?,
            orders: db.open_tree("orders")?,
            account_orders: db.open_tree("account_orders")?,
            client_orders: db.open_tree("client_orders")?,
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
        let mut groups: BTreeMap<AccountId, Vec<u64>> = BTreeMap::new();
        let mut orders: BTreeMap<OrderId, OrderView> = BTreeMap::new();
        let mut placed: Vec<(AccountId, OrderId, Option<Box<str>>)> = Vec::new();
        let mut reached = from;
        let mut records = 0;
        for record in self.records_after(from).take(records_max) {
            let record = record?;
            if record.last_seq().is_none_or(|last| last > committed_seq) {
                break;
            }
            for event in &record.events {
                for account in accounts_of(event) {
                    let seqs = groups.entry(account).or_default();
                    if seqs.last() != Some(&event.seq) {
                        seqs.push(event.seq);
                    }
                }
                self.index_order_event(event, &mut orders, &mut placed)?;
            }
            reached = record.last_seq().unwrap_or(reached);
            records += 1;
        }
        if records == 0 {
            return Ok(0);
        }
        let mut index_batch = sled::Batch::default();
        for (account, seqs) in groups {
            let pieces = seqs.chunks(INDEX_SEQS_PER_VALUE);
            let last_piece = pieces.len() - 1;
            for (piece, seqs) in pieces.enumerate() {
                let value = postcard::to_allocvec(seqs).map_err(StoreError::Encoding)?;
                // Keyed by the last sequence number it lists (the pass's, for the last
                // piece): every listed number is at most its key and above the key before.
                let key_seq = match piece == last_piece {
                    true => reached,
                    false => seqs[seqs.len() - 1],
                };
                index_batch.insert(&index_key(account, key_seq), bounded(value));
            }
        }
        let mut meta_batch = sled::Batch::default();
        meta_batch.insert(INDEXED_SEQ_KEY, &reached.to_be_bytes());
        let mut orders_batch = sled::Batch::default();
        for (order_id, view) in &orders {
            let value = postcard::to_allocvec(view).map_err(StoreError::Encoding)?;
            orders_batch.insert(&order_id.0.to_be_bytes(), bounded(value));
        }
        let mut account_orders_batch = sled::Batch::default();
        let mut client_orders_batch = sled::Batch::default();
        for (account, order_id, client_order_id) in &placed {
            account_orders_batch.insert(&index_key(*account, order_id.0), &[]);
            if let Some(client_order_id) = client_order_id {
                client_orders_batch.insert(
                    bounded(client_key(*account, client_order_id)),
                    &order_id.0.to_be_bytes(),
                );
            }
        }
        // One transaction: the indexes and how far they reach never disagree.
        use sled::Transactional;
        (
            &self.index,
            &self.meta,
            &self.orders,
            &self.account_orders,
            &self.client_orders,
        )
            .transaction(|(index, meta, orders, account_orders, client_orders)| {
                index.apply_batch(&index_batch)?;
                meta.apply_batch(&meta_batch)?;
                orders.apply_batch(&orders_batch)?;
                account_orders.apply_batch(&account_orders_batch)?;
                client_orders.apply_batch(&client_orders_batch)?;
                Ok(())
            })
            .map_err(
                |error: sled::transaction::TransactionError<()>| match error {
                    sled::transaction::TransactionError::Storage(error) => StoreError::Sled(error),
                    sled::transaction::TransactionError::Abort(()) => {
                        StoreError::Corrupt("the index transaction aborted".to_string())
                    }
                },
            )?;
        Ok(records)
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
                for event in record.events {
                    if event.seq < before && accounts_of(&event).contains(&account) {
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
        // of its pass, so the first group to read is the first keyed at or after `before`.
        let bound = before.min(indexed.saturating_add(1));
        let first_group = self
            .index
            .range(index_key(account, bound)..=index_key(account, u64::MAX))
            .next();
        let older_groups = self
            .index
            .range(index_key(account, 0)..index_key(account, bound))
            .rev();
        let mut cache: Option<JournalRecord> = None;
        'groups: for item in first_group.into_iter().chain(older_groups) {
            let (_, value) = item?;
            let seqs: Vec<u64> = postcard::from_bytes(&value).map_err(StoreError::Encoding)?;
            for seq in seqs.into_iter().rev().filter(|seq| *seq < bound) {
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
    /// Applies an order's event to its indexed state (read once per pass, then kept in
    /// `orders` until the pass writes them all).
    fn index_order_event(
        &self,
        event: &Event,
        orders: &mut BTreeMap<OrderId, OrderView>,
        placed: &mut Vec<(AccountId, OrderId, Option<Box<str>>)>,
    ) -> Result<(), StoreError> {
        if let EventKind::OrderAccepted(accepted) = &event.kind {
            placed.push((
                accepted.account,
                accepted.order_id,
                accepted.client_order_id.clone(),
            ));
            orders.insert(accepted.order_id, accepted.view(event.seq));
            return Ok(());
        }
        for order_id in event.kind.changed_orders() {
            let view = match orders.entry(order_id) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => match self.order(order_id)? {
                    Some(view) => entry.insert(view),
                    // Its acceptance was pruned from history: nothing to update.
                    None => continue,
                },
            };
            view.apply(&event.kind);
        }
        Ok(())
    }

    /// An order's state as of the indexed sequence number.
    pub fn order(&self, order_id: OrderId) -> Result<Option<OrderView>, StoreError> {
        match self.orders.get(order_id.0.to_be_bytes())? {
            None => Ok(None),
            Some(bytes) => Ok(Some(
                postcard::from_bytes(&bytes).map_err(StoreError::Encoding)?,
            )),
        }
    }

    /// The latest order the account placed with this client order id, as indexed.
    pub fn order_by_client_id(
        &self,
        account: AccountId,
        client_order_id: &str,
    ) -> Result<Option<OrderView>, StoreError> {
        match self
            .client_orders
            .get(client_key(account, client_order_id))?
        {
            None => Ok(None),
            Some(bytes) => self.order(OrderId(seq_from(&bytes)?)),
        }
    }

    /// The account's orders, newest first, placed before `before` (an order id; all when
    /// `None`), at most `limit`.
    pub fn account_orders(
        &self,
        account: AccountId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OrderView>, StoreError> {
        let end = index_key(account, before.unwrap_or(u64::MAX));
        let mut views = Vec::new();
        for item in self.account_orders.range(index_key(account, 0)..end).rev() {
            if views.len() >= limit {
                break;
            }
            let (key, _) = item?;
            let order_id = OrderId(seq_from(&key[8..])?);
            if let Some(view) = self.order(order_id)? {
                views.push(view);
            }
        }
        Ok(views)
    }
}

fn client_key(account: AccountId, client_order_id: &str) -> Vec<u8> {
    let mut key = account.0.to_be_bytes().to_vec();
    key.extend_from_slice(client_order_id.as_bytes());
    key
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
