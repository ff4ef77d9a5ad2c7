//! The journal the pipeline's store stage writes through: the real store, or a test double
//! that fails on purpose. The pipeline owns the contract (as raft-rs's core owns its
//! `Storage`); the store implements it.

use crate::store::{JournalRecord, Snapshots, Store, StoreError};

/// Where the pipeline's store stage writes: the real store, or a test double that fails
/// on purpose.
pub trait Journal: Send + 'static {
    /// Writes the records in one atomic, durable write: after `Ok`, all of them survive a
    /// crash or a power cut; after `Err`, none or all of them may have been written, and
    /// the caller must stop.
    fn append(&mut self, records: &[JournalRecord]) -> Result<(), StoreError>;

    /// What writes snapshots and prunes the journal behind them, from a thread of its own
    /// so that neither holds up appends.
    fn snapshots(&self) -> Snapshots;
}

impl Journal for Store {
    fn append(&mut self, records: &[JournalRecord]) -> Result<(), StoreError> {
        Store::append(self, records)
    }

    fn snapshots(&self) -> Snapshots {
        Store::snapshots(self)
    }
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
    fn append(&mut self, records: &[JournalRecord]) -> Result<(), StoreError> {
        self.appends += 1;
        if self.appends >= self.fail_at {
            return Err(StoreError::Injected("append failed"));
        }
        self.inner.append(records)
    }

    fn snapshots(&self) -> Snapshots {
        self.inner.snapshots()
    }
}
