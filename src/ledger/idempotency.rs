//! Idempotency records: what a money-moving command with a key did, so that a retry
//! returns the same reply and changes nothing.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::command::Command;
use crate::error::Reject;
use crate::event::Reply;
use crate::types::AccountId;

/// A command that was applied under a key, and what it replied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    command: Command,
    reply: Reply,
}

/// Applied keys, scoped per account: two accounts may use the same key. Serialized as a
/// list sorted by account and key, so equal records always encode the same.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdempotencyRecords {
    records: FxHashMap<(AccountId, Box<str>), Record>,
}

impl IdempotencyRecords {
    /// The reply of an earlier identical command under the same key, `None` when the key is
    /// new, or `AlreadyExists` when the key was used with other parameters.
    pub fn replay(
        &self,
        account: AccountId,
        key: &str,
        command: &Command,
    ) -> Result<Option<Reply>, Reject> {
        match self.records.get(&(account, Box::from(key))) {
            None => Ok(None),
            Some(record) if record.command == *command => Ok(Some(record.reply.clone())),
            Some(_) => Err(Reject::AlreadyExists {
                field: "idempotency_key",
            }),
        }
    }

    /// Records what a command under a new key replied.
    pub fn record(&mut self, account: AccountId, key: &str, command: Command, reply: Reply) {
        let previous = self
            .records
            .insert((account, Box::from(key)), Record { command, reply });
        assert!(previous.is_none(), "an idempotency key was recorded twice");
    }

    /// How many keys are recorded.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no key is recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl Serialize for IdempotencyRecords {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut sorted: Vec<(&(AccountId, Box<str>), &Record)> = self.records.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        serializer.collect_seq(sorted)
    }
}

impl<'de> Deserialize<'de> for IdempotencyRecords {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let list: Vec<((AccountId, Box<str>), Record)> = Vec::deserialize(deserializer)?;
        Ok(IdempotencyRecords {
            records: list.into_iter().collect(),
        })
    }
}
