//! Idempotency records: what a money-moving command with a key did, so that a retry
//! returns the same reply and changes nothing, for as long as the retention window.
//!
//! Time is the sequencer's clock (the largest timestamp of the commands that changed
//! state), never a clock read here, so replaying the journal expires exactly what the
//! live exchange expired. A record expires `retention` after it was recorded; from then
//! on it is treated as absent (a retry applies anew), and it is removed from memory by
//! [`IdempotencyRecords::expire`] after the next command that changes state, which pops
//! the front of a queue kept in expiry order: each record is popped once, amortized O(1)
//! per command, never a scan. Snapshots hold only live records, and a sequencer restored
//! from one holds exactly what the live one held.
//!
//! What this is not: it decides nothing about the command itself, and it keeps no
//! record of a command that was refused.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::error::Reject;
use crate::event::Reply;
use crate::types::AccountId;

/// A command that was applied under a key, what it replied, and when it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    command: Command,
    reply: Reply,
    /// The clock time from which the key is free again. Strictly increasing over the
    /// records of one key, so it tells the queue's entry for this record from a stale one.
    expires_ms: u64,
}

/// One live record, as a snapshot keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    account: AccountId,
    key: Box<str>,
    record: Record,
}

/// Applied keys, scoped per account: two accounts may use the same key.
#[derive(Clone, Debug, Default)]
pub struct IdempotencyRecords {
    records: FxHashMap<(AccountId, Box<str>), Record>,
    /// `(expires_ms, account, key)` in expiry order (records are appended with
    /// non-decreasing expiry times).
    expiry: VecDeque<(u64, AccountId, Box<str>)>,
    /// Records held per account, expired ones not yet removed included.
    per_account: FxHashMap<AccountId, u32>,
}

impl IdempotencyRecords {
    /// The reply of an earlier identical command under the same key, `None` when the key is
    /// new or its record has expired by `now_ms`, or `AlreadyExists` when the key is in
    /// use with other parameters.
    pub fn replay(
        &self,
        account: AccountId,
        key: &str,
        command: &Command,
        now_ms: u64,
    ) -> Result<Option<Reply>, Reject> {
        match self.records.get(&(account, Box::from(key))) {
            Some(record) if record.expires_ms <= now_ms => Ok(None),
            None => Ok(None),
            Some(record) if record.command == *command => Ok(Some(record.reply.clone())),
            Some(_) => Err(Reject::AlreadyExists {
                field: "idempotency_key",
            }),
        }
    }

    /// Refuses a new key for an account that holds `keys_max` already.
    pub fn check_room(&self, account: AccountId, keys_max: u32) -> Result<(), Reject> {
        match self.per_account.get(&account) {
            Some(held) if *held >= keys_max => Err(Reject::LimitExceeded {
                field: "idempotency_keys_per_account_max",
                limit: u64::from(keys_max),
            }),
            _ => Ok(()),
        }
    }

    /// Records what a command under a new (or expired) key replied, at `now_ms`, kept
    /// for `retention_ms`.
    pub fn record(
        &mut self,
        account: AccountId,
        key: &str,
        command: Command,
        reply: Reply,
        now_ms: u64,
        retention_ms: u64,
    ) {
        let last = self.expiry.back().map_or(0, |(expires_ms, ..)| *expires_ms);
        let expires_ms = now_ms.saturating_add(retention_ms).max(last);
        let key: Box<str> = Box::from(key);
        let record = Record {
            command,
            reply,
            expires_ms,
        };
        match self.records.insert((account, key.clone()), record) {
            None => *self.per_account.entry(account).or_default() += 1,
            Some(previous) => assert!(
                previous.expires_ms <= now_ms && previous.expires_ms < expires_ms,
                "an idempotency key was recorded twice within its window"
            ),
        }
        self.expiry.push_back((expires_ms, account, key));
    }

    /// Removes every record expired by `now_ms`, oldest first.
    pub fn expire(&mut self, now_ms: u64) {
        while self
            .expiry
            .front()
            .is_some_and(|(expires_ms, ..)| *expires_ms <= now_ms)
        {
            let (expires_ms, account, key) = self.expiry.pop_front().expect("looked at");
            let entry = (account, key);
            // A key recorded again since has a later expiry: this entry is stale.
            if self.records.get(&entry).map(|record| record.expires_ms) == Some(expires_ms) {
                self.records.remove(&entry);
                let held = self
                    .per_account
                    .get_mut(&account)
                    .expect("a recorded key is counted");
                *held -= 1;
                if *held == 0 {
                    self.per_account.remove(&account);
                }
            }
        }
    }

    /// The records live at `now_ms`, sorted by account and key: what a snapshot keeps.
    pub fn live(&self, now_ms: u64) -> Vec<IdempotencyRecord> {
        // Sorted as references (keys are unique, so an unstable sort is canonical), then
        // copied once in order.
        let mut live: Vec<_> = self
            .records
            .iter()
            .filter(|(_, record)| record.expires_ms > now_ms)
            .collect();
        live.sort_unstable_by_key(|(key, _)| *key);
        live.into_iter()
            .map(|((account, key), record)| IdempotencyRecord {
                account: *account,
                key: key.clone(),
                record: record.clone(),
            })
            .collect()
    }

    /// The records a snapshot kept.
    pub fn from_live(live: Vec<IdempotencyRecord>) -> Result<IdempotencyRecords, String> {
        let mut records = IdempotencyRecords::default();
        let mut queue: Vec<(u64, AccountId, Box<str>)> = Vec::with_capacity(live.len());
        for IdempotencyRecord {
            account,
            key,
            record,
        } in live
        {
            queue.push((record.expires_ms, account, key.clone()));
            if records.records.insert((account, key), record).is_some() {
                return Err(format!("account {account} has an idempotency key twice"));
            }
            *records.per_account.entry(account).or_default() += 1;
        }
        queue.sort();
        records.expiry = queue.into();
        Ok(records)
    }

    /// How many keys are held, expired ones not yet removed included.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Amount;

    const DAY_MS: u64 = 24 * 60 * 60 * 1_000;
    const ACCOUNT: AccountId = AccountId(3);

    fn mint(key: &str) -> Command {
        Command::Mint {
            amount: Amount(1),
            memo: "".into(),
            idempotency_key: key.into(),
        }
    }

    #[test]
    fn a_key_is_kept_for_its_window_then_free_and_removed() {
        let mut records = IdempotencyRecords::default();
        let reply = Reply::IssuePriceSet;
        for (index, key) in ["a", "b", "c"].into_iter().enumerate() {
            let now = index as u64 * 1_000;
            records.record(ACCOUNT, key, mint(key), reply.clone(), now, DAY_MS);
        }
        let within = DAY_MS - 1;
        assert_eq!(
            records.replay(ACCOUNT, "a", &mint("a"), within),
            Ok(Some(reply.clone()))
        );
        assert!(records.replay(ACCOUNT, "a", &mint("b"), within).is_err());
        // From its expiry on the key is free, before or after it is removed.
        assert_eq!(records.replay(ACCOUNT, "a", &mint("a"), DAY_MS), Ok(None));
        records.expire(DAY_MS + 1_000);
        assert_eq!(records.len(), 1, "only what has expired is removed");
        records.expire(DAY_MS + 2_000);
        assert!(records.is_empty());
        assert!(records.per_account.is_empty());
    }

    #[test]
    fn a_key_recorded_again_after_expiry_is_not_removed_by_its_old_entry() {
        let mut records = IdempotencyRecords::default();
        let reply = Reply::IssuePriceSet;
        records.record(ACCOUNT, "a", mint("a"), reply.clone(), 0, DAY_MS);
        records.record(ACCOUNT, "a", mint("a"), reply.clone(), DAY_MS, DAY_MS);
        records.expire(DAY_MS);
        assert_eq!(
            records.replay(ACCOUNT, "a", &mint("a"), DAY_MS + 1),
            Ok(Some(reply))
        );
        assert_eq!(
            records.check_room(ACCOUNT, 1),
            Err(Reject::LimitExceeded {
                field: "idempotency_keys_per_account_max",
                limit: 1,
            })
        );
        assert!(records.check_room(AccountId(4), 1).is_ok());
    }

    #[test]
    fn a_snapshot_keeps_only_live_records_and_restores_their_expiry() {
        let mut records = IdempotencyRecords::default();
        let reply = Reply::IssuePriceSet;
        records.record(ACCOUNT, "old", mint("old"), reply.clone(), 0, DAY_MS);
        records.record(
            AccountId(5),
            "new",
            mint("new"),
            reply.clone(),
            DAY_MS,
            DAY_MS,
        );
        let live = records.live(DAY_MS);
        assert_eq!(live.len(), 1);
        let mut restored = IdempotencyRecords::from_live(live).expect("restores");
        assert_eq!(
            restored.replay(AccountId(5), "new", &mint("new"), DAY_MS),
            Ok(Some(reply))
        );
        restored.expire(2 * DAY_MS);
        assert!(restored.is_empty());
    }
}
