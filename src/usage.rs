//! Metering usage built from committed events: what each service charged each holder per
//! clock hour (a count and a sum), and each holder's automatic top-ups, so a holder can
//! see where its divmids went and a service can bill or audit its clicks.
//!
//! Pure: it is fed committed events (the API's feed does it, off the commit path) and
//! asked questions. Bounded: hours older than the retention are forgotten, and when more
//! rows than `rows_max` are kept the oldest hour goes whole, so memory stays about
//! `rows_max` times [`ROW_BYTES`] whatever the click rate. What is kept starts at
//! [`Usage::kept_from_ms`], which every answer reports. A restart rebuilds it from the
//! journal, as the candles are.

use std::collections::{BTreeMap, VecDeque};

use crate::event::{Event, EventKind};
use crate::types::{AccountId, Amount};

/// Milliseconds in an hour.
pub const HOUR_MS: u64 = 60 * 60 * 1_000;
/// Milliseconds in a UTC day.
pub const DAY_MS: u64 = 24 * HOUR_MS;
/// Memory one kept row costs, about: an entry in each of two ordered maps (a 24-byte key
/// and a 16-byte sum, with the maps' own overhead) and one in the list of its hour.
pub const ROW_BYTES: usize = 110;

/// Charges in one interval: how many, and their sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageSum {
    /// How many charges.
    pub charges: u64,
    /// Micro-DVM charged.
    pub amount: Amount,
}

impl UsageSum {
    fn add(&mut self, other: UsageSum) {
        self.charges += other.charges;
        // At most every divmid ever minted, which fits 64 bits.
        self.amount = Amount(self.amount.0 + other.amount.0);
    }
}

/// One automatic top-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopUpRecord {
    /// The sequence number of its event.
    pub seq: u64,
    /// Its time, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Micro-DVM bought.
    pub quantity: Amount,
    /// Micro-USD paid.
    pub cost: Amount,
}

/// The interval rows are summed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    /// Clock hours.
    Hour,
    /// UTC days.
    Day,
}

impl Interval {
    fn ms(self) -> u64 {
        match self {
            Interval::Hour => HOUR_MS,
            Interval::Day => DAY_MS,
        }
    }
}

/// One row of an answer: an interval's start, the other party (the service for a holder,
/// the holder for a service) and the sum.
pub type UsageRow = (u64, AccountId, UsageSum);

/// Usage per holder and per service, by hour.
#[derive(Debug)]
pub struct Usage {
    retention_ms: u64,
    rows_max: usize,
    /// `(holder, hour, service)`: a holder's rows in time order.
    by_holder: BTreeMap<(AccountId, u64, AccountId), UsageSum>,
    /// `(service, hour, holder)`: a service's rows in time order.
    by_service: BTreeMap<(AccountId, u64, AccountId), UsageSum>,
    /// The rows each hour holds, `(holder, service)`, for forgetting whole hours.
    hours: BTreeMap<u64, Vec<(AccountId, AccountId)>>,
    /// `(holder, seq)`: top-ups.
    top_ups: BTreeMap<(AccountId, u64), TopUpRecord>,
    /// Top-ups in the order they were made: `(time, holder, seq)`.
    top_up_order: VecDeque<(u64, AccountId, u64)>,
    /// Nothing before this time is kept.
    kept_from_ms: u64,
    /// The latest event time seen: retention is judged by it.
    latest_ms: u64,
    /// The sequence number of the last event applied.
    applied_seq: u64,
}

impl Usage {
    /// Empty usage that keeps `retention_ms` of hours and at most `rows_max` rows (and as
    /// many top-ups).
    pub fn new(retention_ms: u64, rows_max: usize) -> Usage {
        assert!(rows_max > 0, "usage keeps a row at least");
        Usage {
            retention_ms,
            rows_max,
            by_holder: BTreeMap::new(),
            by_service: BTreeMap::new(),
            hours: BTreeMap::new(),
            top_ups: BTreeMap::new(),
            top_up_order: VecDeque::new(),
            kept_from_ms: 0,
            latest_ms: 0,
            applied_seq: 0,
        }
    }

    /// The sequence number of the last event applied.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// Usage before this time is no longer kept.
    pub fn kept_from_ms(&self) -> u64 {
        self.kept_from_ms
    }

    /// Rows kept.
    pub fn rows(&self) -> usize {
        self.by_holder.len()
    }

    /// Marks everything up to `seq` as applied (a replay starts after it).
    pub fn skip_to(&mut self, seq: u64) {
        self.applied_seq = self.applied_seq.max(seq);
    }

    /// Counts one committed event; an event already applied is passed over.
    pub fn apply(&mut self, event: &Event) {
        if event.seq <= self.applied_seq {
            return;
        }
        self.applied_seq = event.seq;
        let time_ms = event.timestamp_ms;
        if time_ms < self.kept_from_ms {
            return;
        }
        match event.kind {
            EventKind::Charged {
                service,
                account,
                amount,
                ..
            } => {
                let hour = time_ms / HOUR_MS;
                let charge = UsageSum { charges: 1, amount };
                let row = self.by_holder.entry((account, hour, service)).or_default();
                if row.charges == 0 {
                    self.hours.entry(hour).or_default().push((account, service));
                }
                row.add(charge);
                self.by_service
                    .entry((service, hour, account))
                    .or_default()
                    .add(charge);
            }
            EventKind::AutoToppedUp {
                account,
                quantity,
                cost,
                ..
            } => {
                let record = TopUpRecord {
                    seq: event.seq,
                    time_ms,
                    quantity,
                    cost,
                };
                self.top_ups.insert((account, event.seq), record);
                self.top_up_order.push_back((time_ms, account, event.seq));
            }
            _ => return,
        }
        self.latest_ms = self.latest_ms.max(time_ms);
        self.forget();
    }

    /// Forgets hours older than the retention, then the oldest hours while more rows than
    /// the bound are kept; then the top-ups before what is kept, and the oldest beyond the
    /// bound.
    fn forget(&mut self) {
        let retained_from = self.latest_ms.saturating_sub(self.retention_ms);
        while let Some((&hour, _)) = self.hours.first_key_value() {
            let too_old = (hour + 1) * HOUR_MS <= retained_from;
            if !too_old && self.by_holder.len() <= self.rows_max {
                break;
            }
            let (_, rows) = self.hours.pop_first().expect("seen");
            for (holder, service) in rows {
                self.by_holder.remove(&(holder, hour, service));
                self.by_service.remove(&(service, hour, holder));
            }
            self.kept_from_ms = self.kept_from_ms.max((hour + 1) * HOUR_MS);
        }
        self.kept_from_ms = self.kept_from_ms.max(retained_from / HOUR_MS * HOUR_MS);
        while let Some(&(time_ms, holder, seq)) = self.top_up_order.front() {
            if time_ms >= self.kept_from_ms && self.top_ups.len() <= self.rows_max {
                break;
            }
            self.top_up_order.pop_front();
            self.top_ups.remove(&(holder, seq));
        }
    }

    /// A holder's charges per service and interval overlapping `[from_ms, to_ms)`, by
    /// interval then service, after `after` (the last row of the previous page), at most
    /// `limit`; and whether more follow.
    pub fn holder_rows(
        &self,
        holder: AccountId,
        range: (u64, u64),
        interval: Interval,
        after: Option<(u64, AccountId)>,
        limit: usize,
    ) -> (Vec<UsageRow>, bool) {
        rows_of(&self.by_holder, holder, range, interval, after, limit)
    }

    /// A service's charges per holder and interval: as [`Usage::holder_rows`].
    pub fn service_rows(
        &self,
        service: AccountId,
        range: (u64, u64),
        interval: Interval,
        after: Option<(u64, AccountId)>,
        limit: usize,
    ) -> (Vec<UsageRow>, bool) {
        rows_of(&self.by_service, service, range, interval, after, limit)
    }

    /// A holder's top-ups in `[from_ms, to_ms)`, oldest first, at most `limit`; and
    /// whether more are in the range.
    pub fn top_ups_of(
        &self,
        holder: AccountId,
        (from_ms, to_ms): (u64, u64),
        limit: usize,
    ) -> (Vec<TopUpRecord>, bool) {
        let mut found = self
            .top_ups
            .range((holder, 0)..=(holder, u64::MAX))
            .map(|(_, record)| *record)
            .filter(|record| (from_ms..to_ms).contains(&record.time_ms));
        let records: Vec<TopUpRecord> = found.by_ref().take(limit).collect();
        (records, found.next().is_some())
    }
}

/// The rows of one owner in a map keyed `(owner, hour, other)`, summed per interval.
fn rows_of(
    map: &BTreeMap<(AccountId, u64, AccountId), UsageSum>,
    owner: AccountId,
    (from_ms, to_ms): (u64, u64),
    interval: Interval,
    after: Option<(u64, AccountId)>,
    limit: usize,
) -> (Vec<UsageRow>, bool) {
    let step = interval.ms();
    let first_hour = from_ms / step * step / HOUR_MS;
    let end_hour = to_ms.div_ceil(step) * step / HOUR_MS;
    let mut sums: BTreeMap<(u64, AccountId), UsageSum> = BTreeMap::new();
    let hours = (owner, first_hour, AccountId(0))..(owner, end_hour, AccountId(0));
    for (&(_, hour, other), sum) in map.range(hours) {
        let start_ms = hour * HOUR_MS / step * step;
        sums.entry((start_ms, other)).or_default().add(*sum);
    }
    let mut rows = sums
        .into_iter()
        .filter(|(key, _)| after.is_none_or(|after| *key > after))
        .map(|((start_ms, other), sum)| (start_ms, other, sum));
    let page: Vec<UsageRow> = rows.by_ref().take(limit).collect();
    (page, rows.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Balance, Balances};

    fn charge(seq: u64, time_ms: u64, service: u64, holder: u64, amount: u64) -> Event {
        Event {
            seq,
            timestamp_ms: time_ms,
            kind: EventKind::Charged {
                service: AccountId(service),
                account: AccountId(holder),
                amount: Amount(amount),
                memo: "".into(),
                idempotency_key: "".into(),
                balance_after: Balance::default(),
                revenue_after: Balance::default(),
            },
        }
    }

    #[test]
    fn charges_sum_per_hour_and_day_and_page_in_order() {
        let mut usage = Usage::new(40 * DAY_MS, 1_000);
        let day = 20_000 * DAY_MS;
        usage.apply(&charge(1, day + 10, 5, 3, 100));
        usage.apply(&charge(2, day + 20, 5, 3, 50));
        usage.apply(&charge(3, day + HOUR_MS, 6, 3, 7));
        usage.apply(&charge(4, day + HOUR_MS, 5, 4, 1));
        usage.apply(&charge(4, day + HOUR_MS, 5, 4, 1_000));
        let whole_day = (day, day + DAY_MS);
        let (rows, more) = usage.holder_rows(AccountId(3), whole_day, Interval::Hour, None, 10);
        let sum = |charges, amount| UsageSum {
            charges,
            amount: Amount(amount),
        };
        assert_eq!(
            rows,
            vec![
                (day, AccountId(5), sum(2, 150)),
                (day + HOUR_MS, AccountId(6), sum(1, 7)),
            ]
        );
        assert!(!more);
        let (rows, _) = usage.holder_rows(AccountId(3), whole_day, Interval::Day, None, 10);
        assert_eq!(
            rows,
            vec![
                (day, AccountId(5), sum(2, 150)),
                (day, AccountId(6), sum(1, 7))
            ]
        );
        let (first, more) = usage.holder_rows(AccountId(3), whole_day, Interval::Day, None, 1);
        assert!(more);
        let after = Some((first[0].0, first[0].1));
        let (second, more) = usage.holder_rows(AccountId(3), whole_day, Interval::Day, after, 1);
        assert_eq!((second[0].1, more), (AccountId(6), false));
        let (rows, _) = usage.service_rows(AccountId(5), whole_day, Interval::Day, None, 10);
        assert_eq!(
            rows,
            vec![
                (day, AccountId(3), sum(2, 150)),
                (day, AccountId(4), sum(1, 1))
            ],
            "the replayed seq 4 is counted once"
        );
        let (rows, _) = usage.holder_rows(
            AccountId(3),
            (day + HOUR_MS, day + DAY_MS),
            Interval::Hour,
            None,
            10,
        );
        assert_eq!(rows.len(), 1, "the range starts at the second hour");
    }

    #[test]
    fn memory_is_bounded_by_retention_and_by_rows() {
        let mut usage = Usage::new(2 * HOUR_MS, 1_000);
        for hour in 0..10 {
            usage.apply(&charge(hour + 1, hour * HOUR_MS, 5, 3, 1));
        }
        assert_eq!(usage.rows(), 3, "the last two hours and the current one");
        assert_eq!(usage.kept_from_ms(), 7 * HOUR_MS);
        let mut usage = Usage::new(40 * DAY_MS, 10);
        for holder in 0..25 {
            usage.apply(&charge(
                holder + 1,
                (holder / 5) * HOUR_MS,
                5,
                100 + holder,
                1,
            ));
        }
        assert!(usage.rows() <= 10, "{} rows", usage.rows());
        assert_eq!(usage.kept_from_ms(), 3 * HOUR_MS, "whole hours go");
        let top_up = Event {
            seq: 100,
            timestamp_ms: 4 * HOUR_MS,
            kind: EventKind::AutoToppedUp {
                account: AccountId(3),
                quantity: Amount(10),
                price: crate::types::IssuePrice(1),
                cost: Amount(1),
                month_spent_usd: Amount(1),
                account_after: Balances::default(),
                treasury_after: Balances::default(),
            },
        };
        usage.apply(&top_up);
        let (found, more) = usage.top_ups_of(AccountId(3), (0, 5 * HOUR_MS), 10);
        assert_eq!(
            (found.len(), found[0].quantity, more),
            (1, Amount(10), false)
        );
    }
}
