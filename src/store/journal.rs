//! The journal's records: the commands that changed state, in order, with the events they
//! emitted. Replaying the commands through the deterministic sequencer rebuilds the state;
//! the events serve history and market data without replaying anything.
//!
//! A record is stored under its last event's sequence number (big-endian, so keys sort in
//! sequence order), which makes "the records after sequence number S" a range scan.

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::command::Command;
use crate::event::Event;

/// The first byte of every stored record: the encoding's version.
const FORMAT_VERSION: u8 = 1;

/// One command that changed state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The time the command carried.
    pub timestamp_ms: u64,
    /// The command, as applied.
    pub command: Command,
    /// How many of the record's events it emitted (they follow the previous entry's).
    pub event_count: u32,
}

/// Consecutive commands and every event they emitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// The commands, in order.
    pub entries: Vec<JournalEntry>,
    /// Their events, in order; sequence numbers are consecutive.
    pub events: Vec<Event>,
}

impl JournalRecord {
    /// The sequence number of the first event, if there is one.
    pub fn first_seq(&self) -> Option<u64> {
        self.events.first().map(|event| event.seq)
    }

    /// The sequence number of the last event, if there is one.
    pub fn last_seq(&self) -> Option<u64> {
        self.events.last().map(|event| event.seq)
    }

    /// Adds a command and the events it emitted.
    pub fn push(&mut self, timestamp_ms: u64, command: Command, events: &[Event]) {
        let event_count =
            u32::try_from(events.len()).expect("a command emits fewer than 2^32 events");
        self.entries.push(JournalEntry {
            timestamp_ms,
            command,
            event_count,
        });
        self.events.extend_from_slice(events);
    }

    /// The stored form: a version byte, then the record.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let mut bytes = vec![FORMAT_VERSION];
        let body = postcard::to_allocvec(self).map_err(StoreError::Encoding)?;
        bytes.extend_from_slice(&body);
        Ok(bytes)
    }

    /// A record from its stored form.
    pub fn decode(bytes: &[u8]) -> Result<JournalRecord, StoreError> {
        match bytes.split_first() {
            Some((&FORMAT_VERSION, body)) => {
                postcard::from_bytes(body).map_err(StoreError::Encoding)
            }
            Some((version, _)) => Err(StoreError::Corrupt(format!(
                "journal record in format {version}, expected {FORMAT_VERSION}"
            ))),
            None => Err(StoreError::Corrupt("empty journal record".to_string())),
        }
    }

    /// Checks that the events' sequence numbers are consecutive and that the entries
    /// account for every event.
    pub fn validate(&self) -> Result<(), StoreError> {
        let counted: u64 = self
            .entries
            .iter()
            .map(|entry| u64::from(entry.event_count))
            .sum();
        if counted != self.events.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "a record's entries count {counted} events but it holds {}",
                self.events.len()
            )));
        }
        for pair in self.events.windows(2) {
            if pair[1].seq != pair[0].seq + 1 {
                return Err(StoreError::Corrupt(format!(
                    "event {} follows event {} in a record",
                    pair[1].seq, pair[0].seq
                )));
            }
        }
        Ok(())
    }
}

/// The key a record is stored under.
pub fn key_of(last_seq: u64) -> [u8; 8] {
    last_seq.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::types::{IssuePrice, Tier};

    fn record() -> JournalRecord {
        let mut record = JournalRecord::default();
        let events: Vec<Event> = (7..9)
            .map(|seq| Event {
                seq,
                timestamp_ms: 1_700_000_000_000,
                kind: EventKind::IssuePriceSet {
                    tier: Tier::Public,
                    price: IssuePrice(seq),
                },
            })
            .collect();
        let command = Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(8),
        };
        record.push(1_700_000_000_000, command, &events);
        record
    }

    #[test]
    fn records_round_trip_through_their_stored_form() {
        let record = record();
        let bytes = record.encode().expect("encodes");
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(JournalRecord::decode(&bytes).expect("decodes"), record);
        assert_eq!((record.first_seq(), record.last_seq()), (Some(7), Some(8)));
        assert!(record.validate().is_ok());
    }

    #[test]
    fn damaged_records_are_refused() {
        let bytes = record().encode().expect("encodes");
        assert!(JournalRecord::decode(&bytes[..bytes.len() / 2]).is_err());
        let mut future = bytes.clone();
        future[0] = 9;
        let error = JournalRecord::decode(&future).expect_err("an unknown version is refused");
        assert!(error.to_string().contains("format 9"), "{error}");
        assert!(JournalRecord::decode(&[]).is_err());
        let mut gap = record();
        gap.events[1].seq = 10;
        assert!(gap.validate().is_err());
    }

    #[test]
    fn keys_sort_in_sequence_order() {
        assert!(key_of(255) < key_of(256));
        assert!(key_of(1) < key_of(u64::MAX));
    }
}
