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
//! Charges come at click rate and are most of the keys, so a charge's record keeps only
//! what tells a retry from a reuse (the account, the amount and a hash of the memo) and
//! the sequence number its retry answers: about 200 bytes a key with the map and the
//! queue, where a whole command and reply take about 370 (`benches/engine.rs` measures
//! both). The key's text is kept once, in its record's slot.
//!
//! What this is not: it decides nothing about the command itself, and it keeps no
//! record of a command that was refused.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::keyed_slots::{key_hash, Keyed, KeyedSlots};
use crate::command::Command;
use crate::error::Reject;
use crate::event::Reply;
use crate::types::ClientKey;
use crate::types::{AccountId, Amount};

/// What was applied under a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Applied {
    /// A charge: its terms and the sequence number of its `Charged` event.
    Charge {
        account: AccountId,
        amount: Amount,
        /// [`memo_hash`] of its memo.
        memo_hash: u64,
        seq: u64,
    },
    /// Any other keyed command, and its reply.
    Command {
        command: Box<Command>,
        reply: Box<Reply>,
    },
}

impl Applied {
    fn of(command: &Command, reply: &Reply) -> Applied {
        match (command, reply) {
            (
                Command::Charge {
                    account,
                    amount,
                    memo,
                    ..
                },
                Reply::Charged { seq },
            ) => Applied::Charge {
                account: *account,
                amount: *amount,
                memo_hash: memo_hash(memo),
                seq: *seq,
            },
            _ => Applied::Command {
                command: Box::new(command.clone()),
                reply: Box::new(reply.clone()),
            },
        }
    }

    /// Which expiry queue the record goes to: charges (0) or the rest (1).
    fn class(&self) -> usize {
        match self {
            Applied::Charge { .. } => 0,
            Applied::Command { .. } => 1,
        }
    }

    /// The reply a retry of `command` gets, or `None` when `command` is not the one
    /// applied (the key is reused with other parameters).
    fn reply_to(&self, command: &Command) -> Option<Reply> {
        match (self, command) {
            (
                Applied::Charge {
                    account,
                    amount,
                    memo_hash: applied_memo,
                    seq,
                },
                Command::Charge {
                    account: retried_account,
                    amount: retried_amount,
                    memo,
                    ..
                },
            ) => (account == retried_account
                && amount == retried_amount
                && *applied_memo == memo_hash(memo))
            .then_some(Reply::Charged { seq: *seq }),
            (
                Applied::Command {
                    command: applied,
                    reply,
                },
                _,
            ) => (**applied == *command).then(|| (**reply).clone()),
            _ => None,
        }
    }
}

/// FNV-1a (64 bits) of a memo: stable across builds and versions, since snapshots keep
/// it. A collision only makes a reuse of a key with another memo answer as a retry,
/// which applies nothing.
fn memo_hash(memo: &str) -> u64 {
    memo.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What was applied under a key, and when it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    applied: Applied,
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

/// An [`IdempotencyRecord`] borrowed from the records: it encodes to the same bytes.
#[derive(Serialize)]
pub struct IdempotencyRecordView<'a> {
    account: AccountId,
    key: &'a str,
    record: &'a Record,
}

/// Applied keys, scoped per account: two accounts may use the same key.
///
/// Held as the kept client order ids are, in [`KeyedSlots`]: each record with its
/// account, key and key's hash in a slot of one slab, a slot freed by an expiry filled by
/// the next new key, found through an index of slot numbers by account and key; the
/// expiry queues name slots. At click rate hundreds of thousands of charge keys are held,
/// mostly cold: a new key's look-up reads one entry of the index, and an expiry reads its
/// slot and one entry of the index, where per-account maps of shared key strings read
/// several lines each and freed the key twice.
#[derive(Clone, Debug, Default)]
pub struct IdempotencyRecords {
    /// Expired records not yet removed included.
    slots: KeyedSlots<Held>,
    /// Per retention class (charges, then every other command, whose retentions may
    /// differ): `(expires_ms, slot)` in expiry order (each queue's records are appended
    /// with non-decreasing expiry times).
    expiry: [VecDeque<(u64, u32)>; 2],
}

/// A held record, with its account, its key and the hash the index files them under.
#[derive(Clone, Debug)]
struct Held {
    account: AccountId,
    key: ClientKey,
    hash: u64,
    record: Record,
}

impl Keyed for Held {
    fn account(&self) -> AccountId {
        self.account
    }

    fn key_bytes(&self) -> &[u8] {
        self.key.as_bytes()
    }

    fn hash(&self) -> u64 {
        self.hash
    }
}

impl IdempotencyRecords {
    /// The slot of the account's key, if it is held.
    fn find(&self, account: AccountId, key: &str) -> Option<u32> {
        self.slots.find(key_hash(account, key), |held| {
            held.account == account && held.key.is(key)
        })
    }

    fn held(&self, slot: u32) -> &Held {
        self.slots.filled(slot)
    }

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
        let record = self.find(account, key).map(|slot| &self.held(slot).record);
        match record {
            Some(record) if record.expires_ms <= now_ms => Ok(None),
            None => Ok(None),
            Some(record) => match record.applied.reply_to(command) {
                Some(reply) => Ok(Some(reply)),
                None => Err(Reject::AlreadyExists {
                    field: "idempotency_key",
                }),
            },
        }
    }

    /// Reads ahead what look-ups of `keys` and the next `expiries` expiries of each
    /// retention class will read first (see `KeyedSlots::read_ahead`).
    pub fn read_ahead<'a>(
        &self,
        keys: impl Iterator<Item = (AccountId, &'a str)>,
        expiries: usize,
    ) -> u64 {
        let due = self
            .expiry
            .iter()
            .flat_map(|queue| queue.iter().take(expiries))
            .map(|&(_, slot)| slot);
        let hashes = keys.map(|(account, key)| key_hash(account, key));
        self.slots.read_ahead(hashes, due)
    }

    /// Refuses a new key for an account that holds `keys_max` already.
    pub fn check_room(&self, account: AccountId, keys_max: u32) -> Result<(), Reject> {
        match self.slots.count(account) {
            keys if keys >= keys_max => Err(Reject::LimitExceeded {
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
        command: &Command,
        reply: &Reply,
        now_ms: u64,
        retention_ms: u64,
    ) {
        let applied = Applied::of(command, reply);
        let class = applied.class();
        let last = self.expiry[class]
            .back()
            .map_or(0, |(expires_ms, _)| *expires_ms);
        let expires_ms = now_ms.saturating_add(retention_ms).max(last);
        let record = Record {
            applied,
            expires_ms,
        };
        let slot = match self.find(account, key) {
            Some(slot) => {
                let held = self.slots.filled_mut(slot);
                assert!(
                    held.record.expires_ms <= now_ms && held.record.expires_ms < expires_ms,
                    "an idempotency key was recorded twice within its window"
                );
                held.record = record;
                slot
            }
            None => self.slots.file(Held {
                account,
                key: ClientKey::new(key),
                hash: key_hash(account, key),
                record,
            }),
        };
        self.expiry[class].push_back((expires_ms, slot));
    }

    /// Removes every record expired by `now_ms`, oldest first.
    pub fn expire(&mut self, now_ms: u64) {
        for class in 0..self.expiry.len() {
            while self.expiry[class]
                .front()
                .is_some_and(|(expires_ms, _)| *expires_ms <= now_ms)
            {
                let (expires_ms, slot) = self.expiry[class].pop_front().expect("looked at");
                // A key recorded again since has a later expiry, and this entry is stale.
                let current = self
                    .slots
                    .get(slot)
                    .is_some_and(|held| held.record.expires_ms == expires_ms);
                if current {
                    self.slots.remove(slot);
                }
            }
        }
    }

    /// The records live at `now_ms`, sorted by account and key: what a snapshot keeps.
    pub fn live(&self, now_ms: u64) -> Vec<IdempotencyRecord> {
        self.live_views(now_ms)
            .into_iter()
            .map(|view| IdempotencyRecord {
                account: view.account,
                key: Box::from(view.key),
                record: view.record.clone(),
            })
            .collect()
    }

    /// The records live at `now_ms`, sorted by account and key, borrowed: what a
    /// snapshot's encoding writes. Keys are unique, so an unstable sort is canonical.
    pub fn live_views(&self, now_ms: u64) -> Vec<IdempotencyRecordView<'_>> {
        let mut live: Vec<IdempotencyRecordView<'_>> = Vec::with_capacity(self.slots.len());
        live.extend(
            self.slots
                .iter()
                .map(|(_, held)| held)
                .filter(|held| held.record.expires_ms > now_ms)
                .map(|held| IdempotencyRecordView {
                    account: held.account,
                    key: held.key.as_str(),
                    record: &held.record,
                }),
        );
        live.sort_unstable_by(|left, right| {
            (left.account, left.key).cmp(&(right.account, right.key))
        });
        live
    }

    /// The records a snapshot kept.
    pub fn from_live(live: Vec<IdempotencyRecord>) -> Result<IdempotencyRecords, String> {
        let mut records = IdempotencyRecords::default();
        let mut queues: [Vec<(u64, u32)>; 2] = Default::default();
        for IdempotencyRecord {
            account,
            key,
            record,
        } in live
        {
            if records.find(account, &key).is_some() {
                return Err(format!("account {account} has an idempotency key twice"));
            }
            let class = record.applied.class();
            let expires_ms = record.expires_ms;
            let slot = records.slots.file(Held {
                account,
                hash: key_hash(account, &key),
                key: ClientKey::new(&key),
                record,
            });
            queues[class].push((expires_ms, slot));
        }
        records.expiry = queues.map(|mut queue| {
            queue.sort();
            queue.into()
        });
        Ok(records)
    }

    /// How many keys are held, expired ones not yet removed included.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.slots.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::types::DAY_MS;
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
            records.record(ACCOUNT, key, &mint(key), &reply, now, DAY_MS);
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
        assert!(records.slots.is_empty());
    }

    #[test]
    fn two_accounts_hold_the_same_key_apart_and_a_freed_slot_is_filled_again() {
        const OTHER: AccountId = AccountId(4);
        let mut records = IdempotencyRecords::default();
        let reply = Reply::IssuePriceSet;
        records.record(ACCOUNT, "a", &mint("a"), &reply, 0, 100);
        records.record(OTHER, "a", &mint("a"), &reply, 50, 100);
        assert_eq!(
            records.check_room(ACCOUNT, 1),
            Err(Reject::LimitExceeded {
                field: "idempotency_keys_per_account_max",
                limit: 1,
            })
        );
        records.expire(100);
        assert_eq!(records.len(), 1);
        assert_eq!(records.check_room(ACCOUNT, 1), Ok(()));
        assert_eq!(
            records.replay(OTHER, "a", &mint("a"), 120),
            Ok(Some(reply.clone()))
        );
        assert_eq!(records.replay(ACCOUNT, "a", &mint("a"), 120), Ok(None));
        // The freed slot takes the next key; the other account's record stays where it was.
        records.record(ACCOUNT, "b", &mint("b"), &reply, 120, 100);
        assert_eq!(records.slots.capacity(), 2);
        let restored = IdempotencyRecords::from_live(records.live(120)).expect("restores");
        assert_eq!(restored.live(120), records.live(120));
        assert_eq!(restored.len(), 2);
    }

    #[test]
    fn a_key_recorded_again_after_expiry_is_not_removed_by_its_old_entry() {
        let mut records = IdempotencyRecords::default();
        let reply = Reply::IssuePriceSet;
        records.record(ACCOUNT, "a", &mint("a"), &reply, 0, DAY_MS);
        records.record(ACCOUNT, "a", &mint("a"), &reply, DAY_MS, DAY_MS);
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
        records.record(ACCOUNT, "old", &mint("old"), &reply, 0, DAY_MS);
        records.record(AccountId(5), "new", &mint("new"), &reply, DAY_MS, DAY_MS);
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

    #[test]
    fn a_charge_keeps_its_terms_and_answers_a_retry_with_its_seq() {
        let mut records = IdempotencyRecords::default();
        let charge = |amount: u64, memo: &str| Command::Charge {
            service: AccountId(4),
            account: ACCOUNT,
            amount: Amount(amount),
            memo: memo.into(),
            idempotency_key: "click".into(),
        };
        let reply = Reply::Charged { seq: 77 };
        records.record(AccountId(4), "click", &charge(5, "a"), &reply, 0, DAY_MS);
        assert_eq!(
            records.replay(AccountId(4), "click", &charge(5, "a"), 1),
            Ok(Some(reply))
        );
        for reused in [charge(6, "a"), charge(5, "b"), mint("click")] {
            assert!(
                records.replay(AccountId(4), "click", &reused, 1).is_err(),
                "{reused:?}"
            );
        }
        assert_ne!(memo_hash("a"), memo_hash("b"));
        assert_eq!(
            memo_hash(""),
            0xcbf2_9ce4_8422_2325,
            "FNV-1a's offset basis"
        );
    }
}
