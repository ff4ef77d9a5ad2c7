//! The journal the pipeline writes through, and what it writes: the contract between the
//! pipeline and the storage behind it, owned by the pipeline (as raft-rs's core owns its
//! `Storage` and `Entry`). The store implements [`Journal`], [`SnapshotStore`] and
//! [`AccountIndex`]; the pipeline never names it. A test double fails on purpose.

use serde::{Deserialize, Serialize};

use super::CommittedEvents;
use crate::command::Command;
use crate::engine::{EncodedSnapshot, OrderBook, Sequencer};
use crate::event::Event;

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

/// Consecutive commands and every event they emitted: what one commit makes durable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// The commands, in order.
    pub entries: Vec<JournalEntry>,
    /// Their events, in order; sequence numbers are consecutive.
    pub events: Vec<Event>,
}

impl JournalRecord {
    /// An empty record with room for `events` events and as many commands, so that
    /// filling it up to a record's bound does not grow it step by step.
    pub fn with_capacity(events: usize) -> JournalRecord {
        JournalRecord {
            entries: Vec::with_capacity(events),
            events: Vec::with_capacity(events),
        }
    }

    /// The sequence number of the first event, if there is one.
    pub fn first_seq(&self) -> Option<u64> {
        self.events.first().map(|event| event.seq)
    }

    /// The sequence number of the last event, if there is one.
    pub fn last_seq(&self) -> Option<u64> {
        self.events.last().map(|event| event.seq)
    }

    /// Adds a command that emitted the last `event_count` of the record's events (it was
    /// applied straight into them).
    pub fn push_applied(&mut self, timestamp_ms: u64, command: Command, event_count: usize) {
        let event_count =
            u32::try_from(event_count).expect("a command emits fewer than 2^32 events");
        self.entries.push(JournalEntry {
            timestamp_ms,
            command,
            event_count,
        });
    }

    /// Adds a command and the events it emitted, moved out of `events`.
    pub fn push(&mut self, timestamp_ms: u64, command: Command, events: &mut Vec<Event>) {
        let event_count = events.len();
        self.events.append(events);
        self.push_applied(timestamp_ms, command, event_count);
    }
}

/// Why the storage behind the pipeline failed, in its own words: the pipeline logs it,
/// reports it in its health and, for an append, stops.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct JournalError(#[from] pub Box<dyn std::error::Error + Send + Sync>);

/// Where the pipeline's store stage writes: the real store, or a test double that fails
/// on purpose.
pub trait Journal: Send + 'static {
    /// What writes this journal's snapshots.
    type Snapshots: SnapshotStore;

    /// Writes the records in one atomic, durable write: after `Ok`, all of them survive a
    /// crash or a power cut; after `Err`, none or all of them may have been written, and
    /// the caller must stop.
    fn append(&mut self, records: &[JournalRecord]) -> Result<(), JournalError>;

    /// What writes snapshots and prunes the journal behind them, from a thread of its own
    /// so that neither holds up appends.
    fn snapshots(&self) -> Self::Snapshots;
}

/// Writes snapshots of committed states, and deletes the journal records they make
/// unnecessary for recovery.
pub trait SnapshotStore: Send + 'static {
    /// Writes a snapshot durably. It must cover only journaled commands.
    fn write(&mut self, snapshot: &EncodedSnapshot) -> Result<(), JournalError>;

    /// Deletes journal records that no kept snapshot needs, that are more than
    /// `retention_events` events older than the newest snapshot, and that end at or
    /// before `keep_after_seq`, at most `records_max` of them; returns how many.
    fn prune(
        &mut self,
        retention_events: u64,
        records_max: usize,
        keep_after_seq: u64,
    ) -> Result<usize, JournalError>;
}

/// The per-account index of the journal that history reads, brought up to date off the
/// commit path.
pub trait AccountIndex: Send + 'static {
    /// Indexes the records committed up to `committed_seq` not indexed yet, at most
    /// `records_max` of them; returns how many.
    fn index_pending(&self, committed_seq: u64, records_max: usize) -> Result<usize, JournalError>;

    /// Indexes the events of `commits` (committed, in sequence order) that continue the
    /// index, at most `events_max`, without reading the journal; returns how many, or
    /// `None` when they leave a gap after what is indexed (nothing is indexed then).
    fn index_committed(
        &self,
        commits: &[CommittedEvents],
        events_max: usize,
    ) -> Result<Option<u64>, JournalError>;

    /// The last sequence number indexed.
    fn indexed_seq(&self) -> Result<u64, JournalError>;
}

/// Commands whose memory is read ahead at a time (`Sequencer::read_ahead`) when many are
/// replayed: what a session submits at most, whose reads stay in the processor's cache
/// until the commands use them.
const READ_AHEAD_COMMANDS: usize = 1_024;

/// Applies journaled commands to `sequencer`: each must be accepted again and emit
/// exactly its journaled events (`events`, the entries' events in order), or the journal
/// and the engine disagree (the error says where). `scratch` is reused for what each
/// command emits. Recovery and the snapshot replica both replay through it.
pub fn replay_entries<B: OrderBook>(
    sequencer: &mut Sequencer<B>,
    entries: &[JournalEntry],
    events: &[Event],
    scratch: &mut Vec<Event>,
) -> Result<(), String> {
    let mut offset = 0;
    for (at, entry) in entries.iter().enumerate() {
        if at % READ_AHEAD_COMMANDS == 0 {
            let next = entries[at..].iter().take(READ_AHEAD_COMMANDS);
            sequencer.read_ahead(next.map(|entry| &entry.command));
        }
        scratch.clear();
        let replayed = sequencer.apply(entry.timestamp_ms, &entry.command, scratch);
        let count = entry.event_count as usize;
        let expected = events.get(offset..offset + count);
        offset += count;
        if replayed.is_err() || expected != Some(scratch.as_slice()) {
            return Err(format!(
                "replaying the command before event {} did not give the journaled events",
                sequencer.last_seq() + 1
            ));
        }
    }
    if offset != events.len() {
        return Err(format!(
            "{} journaled events after event {} belong to no command",
            events.len().saturating_sub(offset),
            sequencer.last_seq()
        ));
    }
    Ok(())
}

/// A journal that fails on purpose: its `fail_at`-th append (counting from 1) and every
/// one after it return an error, after writing nothing. Tests use it to prove fail-stop.
pub struct FaultyJournal<J: Journal> {
    inner: J,
    appends: u64,
    fail_at: u64,
}

impl<J: Journal> FaultyJournal<J> {
    /// Wraps `inner` so that its `fail_at`-th append fails.
    pub fn new(inner: J, fail_at: u64) -> FaultyJournal<J> {
        FaultyJournal {
            inner,
            appends: 0,
            fail_at,
        }
    }
}

impl<J: Journal> Journal for FaultyJournal<J> {
    type Snapshots = J::Snapshots;

    fn append(&mut self, records: &[JournalRecord]) -> Result<(), JournalError> {
        self.appends += 1;
        if self.appends >= self.fail_at {
            return Err(JournalError(Box::from("injected fault: append failed")));
        }
        self.inner.append(records)
    }

    fn snapshots(&self) -> J::Snapshots {
        self.inner.snapshots()
    }
}
