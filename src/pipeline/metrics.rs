//! What the pipeline measures as it runs: every figure an atomic that its threads add to
//! without waiting, read when metrics are scraped.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::command::Command;
use crate::metrics::{Histogram, COUNT_BOUNDS, LATENCY_BOUNDS_NS};

/// The pipeline's figures.
#[derive(Debug)]
pub struct PipelineMetrics {
    /// Commands applied, by kind, accepted (0) or refused (1).
    commands: [[AtomicU64; 2]; Command::KINDS.len()],
    /// Durable writes of the journal (append, flush, fsync, the acknowledged mark), in
    /// nanoseconds.
    pub commit: Histogram,
    /// Commands and queries per batch the sequencer hands the store.
    pub batch: Histogram,
    /// Snapshot writes, in nanoseconds.
    pub snapshot: Histogram,
    /// Requests put in the sequencer's queue, and taken from it.
    queued: AtomicU64,
    taken: AtomicU64,
}

impl Default for PipelineMetrics {
    fn default() -> PipelineMetrics {
        PipelineMetrics {
            commands: std::array::from_fn(|_| [AtomicU64::new(0), AtomicU64::new(0)]),
            commit: Histogram::new(LATENCY_BOUNDS_NS),
            batch: Histogram::new(COUNT_BOUNDS),
            snapshot: Histogram::new(LATENCY_BOUNDS_NS),
            queued: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }
    }
}

impl PipelineMetrics {
    /// Counts a command applied.
    pub(super) fn applied(&self, kind: usize, accepted: bool) {
        self.commands[kind][usize::from(!accepted)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request queued.
    pub(super) fn queued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request taken by the sequencer.
    pub(super) fn taken(&self) {
        self.taken.fetch_add(1, Ordering::Relaxed);
    }

    /// Commands applied of the kind `Command::KINDS[kind]`: accepted, refused.
    pub fn commands(&self, kind: usize) -> (u64, u64) {
        let [accepted, refused] = &self.commands[kind];
        (
            accepted.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
        )
    }

    /// Requests waiting in the sequencer's queue.
    pub fn queue_depth(&self) -> u64 {
        // Taken is read first: a request taken after this read was queued before the next.
        let taken = self.taken.load(Ordering::Relaxed);
        self.queued.load(Ordering::Relaxed).saturating_sub(taken)
    }
}
