//! The durable store: the only module that knows sled.
//!
//! - The journal (`journal.rs`) is a sled tree of records, each holding consecutive
//!   commands that changed state and the events they emitted, keyed by the last event's
//!   sequence number. A group of records is written in one atomic sled batch, flushed,
//!   and then sled's file is fsynced: sled 0.34's own flush uses `sync_file_range`, which
//!   does not survive a power cut.
//! - Snapshots (`snapshot_file.rs`) are files beside the database, each the whole
//!   sequencer state with its SHA-256, written to a temporary name, fsynced and renamed.
//! - History (`history.rs`) reads an account's events and the events after a sequence
//!   number, paginated, through an account index kept off the commit path.
//! - Recovery (`recovery.rs`) loads the newest snapshot, replays the journal after it
//!   through the deterministic sequencer, requires the replay to emit exactly the events
//!   the journal holds, requires the journal to reach the acknowledged high-water mark
//!   (`watermark.rs`, a small file beside sled written after every commit), and checks
//!   every invariant before anything is served. `check.rs` does the same offline.
//! - Backups (`backup.rs`) copy the newest snapshot and the journal of a running store into
//!   one file with its SHA-256, and restore it into an empty directory.
//!
//! What this module is not: it keeps no state of the exchange in memory and decides
//! nothing about commands; it writes what it is given and reads it back.

mod backup;
mod check;
mod history;
mod journal;
mod recovery;
mod snapshot_file;
mod snapshot_legacy;
mod watermark;

use std::fs::File;
use std::path::{Path, PathBuf};

pub use backup::{check_backup, restore, BackupSource, BackupSummary};
pub use check::{check, check_at, EngineStatus, Report as CheckReport};
pub use history::{accounts_of, History, Page};
use journal::{seq_of_key, Records};
pub use recovery::{record_engine, recover, recover_with, Recovered};
pub use watermark::Mark;

use crate::engine::{EncodedSnapshot, SequencerSnapshot};
use crate::pipeline::{
    AccountIndex, CommittedEvents, Journal, JournalError, JournalRecord, SnapshotStore,
};

/// Sled's segment size. Sled writes any page larger than a quarter of a segment to a
/// separate blob file, which it does not fsync (`pagecache/blob_io.rs`), so nothing the
/// store writes may ever make such a page.
const SEGMENT_BYTES: usize = 4 << 20;
/// Journal records deleted by one sled batch when pruning.
const PRUNE_RECORDS_PER_BATCH: usize = 1_000;
/// A commit that takes this long is logged with where its time went.
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// The largest value the store writes to sled, in bytes. A sled page is a whole tree node
/// with every value in it; a leaf splits above 16 entries and merges below 4, so a page
/// holds at most about 20 values: 20 x 32 KiB stays well under the quarter of a segment
/// (1 MiB) above which sled writes a blob file that it never fsyncs. Larger journal
/// records are stored in parts (`journal.rs`), index values in pieces (`history.rs`), and
/// [`bounded`] asserts the bound at every write.
pub const VALUE_BYTES_MAX: usize = 32 * 1024;

/// A value about to be written to sled, checked against [`VALUE_BYTES_MAX`]. A larger one
/// would be a broken invariant of this module, not an operating error: it stops the
/// process before anything is written that a power cut could take back.
fn bounded<V: AsRef<[u8]>>(value: V) -> V {
    assert!(
        value.as_ref().len() <= VALUE_BYTES_MAX,
        "a sled value of {} bytes exceeds the {VALUE_BYTES_MAX}-byte bound",
        value.as_ref().len()
    );
    value
}

impl From<StoreError> for JournalError {
    fn from(error: StoreError) -> JournalError {
        JournalError(Box::new(error))
    }
}

/// The store is the pipeline's journal.
impl Journal for Store {
    type Snapshots = Snapshots;

    fn append(&mut self, records: &[JournalRecord]) -> Result<(), JournalError> {
        Ok(Store::append(self, records)?)
    }

    fn snapshots(&self) -> Snapshots {
        Store::snapshots(self)
    }
}

impl SnapshotStore for Snapshots {
    fn write(&mut self, snapshot: &EncodedSnapshot) -> Result<(), JournalError> {
        Ok(snapshot_file::write(&self.directory, snapshot)?)
    }

    fn prune(
        &mut self,
        retention_events: u64,
        records_max: usize,
        keep_after_seq: u64,
    ) -> Result<usize, JournalError> {
        Ok(Snapshots::prune(
            self,
            retention_events,
            records_max,
            keep_after_seq,
        )?)
    }
}

impl AccountIndex for History {
    fn index_pending(&self, committed_seq: u64, records_max: usize) -> Result<usize, JournalError> {
        Ok(History::index_pending(self, committed_seq, records_max)?)
    }

    fn index_committed(
        &self,
        commits: &[CommittedEvents],
        events_max: usize,
    ) -> Result<Option<u64>, JournalError> {
        let events = commits.iter().flat_map(|commit| commit.iter());
        Ok(History::index_committed(self, events, events_max)?)
    }

    fn indexed_seq(&self) -> Result<u64, JournalError> {
        Ok(History::indexed_seq(self)?)
    }
}

/// How long opening waits for sled's lock on the data directory. Sled 0.34 releases it
/// from its background flusher thread, which wakes every 500 ms, some time after the last
/// handle is dropped: a store reopened at once in the same process can find it still held.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How often opening looks again whether the previous process let go of the lock.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Sled's configuration for the store in `directory`.
fn sled_config(directory: &Path, cache_bytes: u64) -> sled::Config {
    sled::Config::new()
        .path(directory.join("sled"))
        .segment_size(SEGMENT_BYTES)
        .cache_capacity(cache_bytes)
}

/// Opens sled, waiting up to `wait` while its lock is held; a lock still held after that
/// belongs to another process.
fn open_sled(
    config: &sled::Config,
    directory: &Path,
    wait: std::time::Duration,
) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match config.open() {
            Err(sled::Error::Io(error)) if is_lock_held(&error) => {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::Locked(directory.to_path_buf()));
                }
                std::thread::sleep(LOCK_POLL);
            }
            opened => return Ok(opened?),
        }
    }
}

/// Whether sled refused to open because its lock file is held: sled 0.34.7 reports it as
/// an `Other` I/O error with this text (`Config::open_file` in its `config.rs`).
fn is_lock_held(error: &std::io::Error) -> bool {
    error.to_string().starts_with("could not acquire lock on")
}

/// Creates `directory` (and its missing parents) readable by its owner alone (0700); an
/// existing directory is left as it is.
pub fn create_private_directory(directory: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(directory)
}

/// Why the store could not do what it was asked. Any of these on the write path stops the
/// exchange (fail-stop); on start-up it refuses to serve.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Sled failed.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A file operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A record or snapshot could not be encoded or decoded.
    #[error("encoding: {0}")]
    Encoding(postcard::Error),
    /// What is stored is inconsistent.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The configured engine cannot continue the stored state: a market's name, assets,
    /// tick or lot differs from the one the data was written under.
    #[error("the configuration cannot continue this data directory: {0}")]
    EngineChanged(String),
    /// A backup is restored only into an empty directory.
    #[error("{0} is not empty: a backup is restored only into an empty or new directory")]
    NotEmpty(PathBuf),
    /// Another process holds the data directory's lock.
    #[error("the data directory {0} is in use: another process holds its lock")]
    Locked(PathBuf),
    /// The journal ends before what the store acknowledged: acknowledged commands are
    /// gone (a damaged or truncated sled log).
    #[error(
        "the journal ends at seq {journal_seq} but seq {acknowledged_seq} was acknowledged: \
         acknowledged commands are missing from the store; refusing to serve (restore the \
         data directory from a backup)"
    )]
    BehindAcknowledged {
        /// Where the journal ends.
        journal_seq: u64,
        /// The last sequence number acknowledged, from the mark file.
        acknowledged_seq: u64,
    },
}

/// Writes snapshots and deletes the journal records behind them. It shares the store's
/// sled tree (sled takes writers from several threads), so the pipeline runs it on a
/// thread of its own: a large snapshot no longer stalls the appends.
pub struct Snapshots {
    journal: sled::Tree,
    directory: PathBuf,
}

impl Snapshots {
    /// Deletes journal records that no kept snapshot needs, that are more than
    /// `retention_events` events older than the newest snapshot, and that end at or
    /// before `keep_after_seq` (what the account index has read), at most `records_max`
    /// of them; returns how many it deleted.
    pub fn prune(
        &mut self,
        retention_events: u64,
        records_max: usize,
        keep_after_seq: u64,
    ) -> Result<usize, StoreError> {
        let kept = snapshot_file::kept_seqs(&self.directory)?;
        let (Some(oldest), Some(newest)) = (kept.iter().min(), kept.iter().max()) else {
            return Ok(0);
        };
        // Recovery may fall back to the oldest kept snapshot, so everything after it stays.
        let floor = (*oldest)
            .min(newest.saturating_sub(retention_events))
            .min(keep_after_seq);
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        let mut last_removed = None;
        // Whole records only: the parts of a record go together.
        for item in self
            .journal
            .range(..journal::key_of(floor.saturating_add(1)))
        {
            let (key, _) = item?;
            let seq = seq_of_key(&key)?;
            if last_removed != Some(seq) {
                if removed == records_max {
                    break;
                }
                if removed > 0 && removed % PRUNE_RECORDS_PER_BATCH == 0 {
                    // A sled batch holds sled's process-wide write lock while it applies,
                    // and commits wait for it: deletions go in short batches.
                    self.journal.apply_batch(std::mem::take(&mut batch))?;
                }
                removed += 1;
                last_removed = Some(seq);
            }
            batch.remove(key);
        }
        if removed > 0 {
            self.journal.apply_batch(batch)?;
        }
        Ok(removed)
    }
}

/// The sled database and the snapshot files in one data directory.
pub struct Store {
    db: sled::Db,
    journal: sled::Tree,
    /// Sled's data file, fsynced after every flush.
    db_file: File,
    /// The acknowledged high-water mark, written after every append.
    watermark: watermark::Watermark,
    directory: PathBuf,
    /// The last sequence number journaled, once known (an empty journal, pruned behind a
    /// snapshot, says nothing of it): each append must continue it.
    appended_seq: Option<u64>,
}

/// Asserts that `records` continue the journal after `appended` (any first sequence
/// number when it is unknown): no record empty, each command's events counted, every
/// event numbered one more than the one before. A breach would journal what recovery
/// refuses, after the callers were answered: it is a bug, stopped before anything is
/// written, as the reader stops at one. Returns the last sequence number.
fn assert_continues(appended: Option<u64>, records: &[JournalRecord]) -> u64 {
    let first = records.first().and_then(JournalRecord::first_seq);
    let mut last = appended.or(first.map(|seq| seq - 1)).unwrap_or(0);
    for record in records {
        assert!(!record.events.is_empty(), "a journal record holds events");
        let counted: u64 = record
            .entries
            .iter()
            .map(|entry| u64::from(entry.event_count))
            .sum();
        assert_eq!(
            counted,
            record.events.len() as u64,
            "a journal record's commands account for its events"
        );
        for event in &record.events {
            assert_eq!(
                event.seq,
                last + 1,
                "the journal continues after seq {last}"
            );
            last = event.seq;
        }
    }
    last
}

/// The store's page cache unless configured.
pub use crate::config::STORE_CACHE_BYTES_DEFAULT as CACHE_BYTES_DEFAULT;

impl Store {
    /// Opens (or creates) the store in `directory`, with a page cache of
    /// `CACHE_BYTES_DEFAULT`.
    pub fn open(directory: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(directory, CACHE_BYTES_DEFAULT)
    }

    /// Opens (or creates) the store in `directory`, keeping at most about `cache_bytes` of
    /// pages in memory.
    pub fn open_with_cache(directory: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        create_private_directory(directory)?;
        let db = open_sled(&sled_config(directory, cache_bytes), directory, LOCK_WAIT)?;
        let journal = db.open_tree("journal")?;
        history::migrate_order_index(&db)?;
        db.flush()?;
        let db_file = File::open(directory.join("sled").join("db"))?;
        db_file.sync_all()?;
        snapshot_file::sync_directory(&directory.join("sled"))?;
        snapshot_file::sync_directory(directory)?;
        let watermark = watermark::Watermark::open(directory)?;
        let appended_seq = match journal.last()? {
            None => None,
            Some((key, _)) => Some(seq_of_key(&key)?),
        };
        Ok(Store {
            db,
            journal,
            db_file,
            watermark,
            directory: directory.to_path_buf(),
            appended_seq,
        })
    }

    /// Read access to history (and the account index), to share with other threads.
    pub fn history(&self) -> Result<History, StoreError> {
        History::new(&self.db, self.journal.clone())
    }

    /// The directory the store lives in.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The sequence number of the last journaled event, 0 for an empty journal.
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        match self.journal.last()? {
            None => Ok(0),
            Some((key, _)) => Ok(seq_of_key(&key)?),
        }
    }

    /// The records holding events after `seq`, in order, read one at a time.
    pub fn records_after(
        &self,
        seq: u64,
    ) -> impl Iterator<Item = Result<JournalRecord, StoreError>> + '_ {
        let start = journal::key_of(seq.saturating_add(1));
        Records::new(self.journal.range(start..)).map(|item| {
            let (stored_seq, record) = item?;
            record.validate()?;
            if record.last_seq() != Some(stored_seq) {
                return Err(StoreError::Corrupt(format!(
                    "a record stored under {stored_seq} ends at {:?}",
                    record.last_seq()
                )));
            }
            Ok(record)
        })
    }

    /// The acknowledged high-water mark, if the store ever committed anything.
    pub fn acknowledged(&self) -> Result<Option<Mark>, StoreError> {
        watermark::read(&self.directory)
    }

    /// Checks the journal against the acknowledged high-water mark: it must reach the
    /// mark and hold there the very record that was acknowledged.
    pub fn check_acknowledged(&self) -> Result<(), StoreError> {
        let Some(mark) = self.acknowledged()? else {
            return Ok(());
        };
        let journal_seq = self.last_seq()?;
        if journal_seq < mark.seq {
            return Err(StoreError::BehindAcknowledged {
                journal_seq,
                acknowledged_seq: mark.seq,
            });
        }
        // The hash is of the bytes stored, not of the record encoded again: a record
        // written in an earlier format is the one acknowledged too.
        let scan = self.journal.range(journal::key_of(mark.seq)..);
        let stored = Records::new(scan).next_stored().transpose()?;
        let matches = match stored {
            Some((seq, bytes)) => Mark::of_stored(seq, &bytes) == mark,
            None => false,
        };
        if !matches {
            return Err(StoreError::Corrupt(format!(
                "the journal record acknowledged at seq {} is not the one stored there",
                mark.seq
            )));
        }
        Ok(())
    }

    /// The newest snapshot whose checksum holds, if any, with the state hash it restores
    /// to: the one recorded with it (a snapshot of an earlier format: its conversion's).
    pub fn latest_snapshot(&self) -> Result<Option<(SequencerSnapshot, [u8; 32])>, StoreError> {
        snapshot_file::latest(&self.snapshot_directory())
    }

    fn snapshot_directory(&self) -> PathBuf {
        self.directory.join("snapshots")
    }
}

impl Store {
    /// Writes the records in one atomic, durable write (one sled batch, flushed, sled's file
    /// fdatasynced, then the acknowledged mark): after `Ok`, all of them survive a crash or
    /// a power cut; after `Err`, none or all of them may have been written, and the caller
    /// must stop.
    pub fn append(&mut self, records: &[JournalRecord]) -> Result<(), StoreError> {
        self.appended_seq = Some(assert_continues(self.appended_seq, records));
        let mut batch = sled::Batch::default();
        // The mark names the last record by the hash of its stored form, taken from the
        // bytes encoded for the batch rather than from a second encoding.
        let mut last_mark = None;
        for (index, record) in records.iter().enumerate() {
            let seq = record
                .last_seq()
                .ok_or_else(|| StoreError::Corrupt("an empty journal record".to_string()))?;
            let bytes = record.encode()?;
            if index + 1 == records.len() {
                last_mark = Some(Mark::of_stored(seq, &bytes));
            }
            for (key, value) in journal::stored_as(seq, bytes)? {
                batch.insert(key, bounded(value));
            }
        }
        let started = std::time::Instant::now();
        self.journal.apply_batch(batch)?;
        let applied = started.elapsed();
        self.db.flush()?;
        let flushed = started.elapsed();
        self.db_file.sync_data()?;
        let synced = started.elapsed();
        if let Some(mark) = &last_mark {
            self.watermark.write(mark)?;
        }
        let total = started.elapsed();
        if total >= SLOW_COMMIT {
            tracing::warn!(
                total_ms = total.as_millis() as u64,
                apply_ms = applied.as_millis() as u64,
                flush_ms = (flushed - applied).as_millis() as u64,
                sync_ms = (synced - flushed).as_millis() as u64,
                mark_ms = (total - synced).as_millis() as u64,
                records = records.len(),
                "a slow commit"
            );
        }
        Ok(())
    }

    /// What writes snapshots and prunes the journal behind them, from a thread of its own
    /// so that neither holds up appends.
    pub fn snapshots(&self) -> Snapshots {
        Snapshots {
            journal: self.journal.clone(),
            directory: self.snapshot_directory(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::event::{Event, EventKind};
    use crate::types::{IssuePrice, Tier};

    /// A record of one price change per sequence number in `seqs`.
    fn record(seqs: std::ops::RangeInclusive<u64>) -> JournalRecord {
        let mut record = JournalRecord::default();
        for seq in seqs {
            let command = Command::SetIssuePrice {
                tier: Tier::Public,
                price: IssuePrice(IssuePrice::UNITS_PER_USD),
            };
            let event = Event {
                seq,
                timestamp_ms: 0,
                kind: EventKind::IssuePriceSet {
                    tier: Tier::Public,
                    price: IssuePrice(IssuePrice::UNITS_PER_USD),
                },
            };
            record.push(0, command, &mut vec![event]);
        }
        record
    }

    #[test]
    fn appends_that_continue_the_journal_pass_the_write_path_check() {
        assert_eq!(assert_continues(None, &[record(5..=7), record(8..=8)]), 8);
        assert_eq!(assert_continues(Some(8), &[record(9..=10)]), 10);
    }

    #[test]
    #[should_panic(expected = "the journal continues after seq 8")]
    fn an_append_that_skips_a_sequence_number_is_stopped_before_it_is_written() {
        assert_continues(Some(8), &[record(10..=11)]);
    }

    #[test]
    #[should_panic(expected = "the journal continues after seq 2")]
    fn records_that_overlap_are_stopped_before_they_are_written() {
        assert_continues(None, &[record(1..=2), record(2..=3)]);
    }

    /// Writes `records` as a release before compact records did: whole, with the mark
    /// over the last one's bytes.
    fn write_whole(store: &mut Store, records: &[JournalRecord]) {
        let mut batch = sled::Batch::default();
        let mut last = None;
        for record in records {
            let seq = record.last_seq().expect("events");
            let bytes = record.encode_whole().expect("encodes");
            batch.insert(&journal::key_of(seq), bytes.as_slice());
            last = Some(Mark::of_stored(seq, &bytes));
        }
        store.journal.apply_batch(batch).expect("written");
        store
            .watermark
            .write(&last.expect("records"))
            .expect("marked");
    }

    #[test]
    fn a_journal_written_whole_reads_back_and_its_acknowledged_record_is_found() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let earlier = [record(1..=3), record(4..=5)];
        write_whole(&mut Store::open(directory.path()).expect("opens"), &earlier);
        let mut store = Store::open(directory.path()).expect("reopens");
        store
            .check_acknowledged()
            .expect("the record acknowledged is there");
        store.append(&[record(6..=7)]).expect("appended compactly");
        store.check_acknowledged().expect("and the one after it");
        let read: Vec<JournalRecord> = store
            .records_after(0)
            .collect::<Result<_, _>>()
            .expect("readable");
        assert_eq!(read, [record(1..=3), record(4..=5), record(6..=7)]);
        // A mark that names other bytes than those stored (the same record written
        // whole) is refused. Written to both of the mark's slots.
        let whole = Mark::of_stored(7, &record(6..=7).encode_whole().expect("encodes"));
        for _ in 0..2 {
            store.watermark.write(&whole).expect("marked");
        }
        let error = store.check_acknowledged().expect_err("refused");
        assert!(
            error.to_string().contains("seq 7 is not the one stored"),
            "{error}"
        );
    }

    #[test]
    fn a_directory_in_use_is_refused_with_its_name_and_free_again_once_closed() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open(directory.path()).expect("opens");
        let config = sled_config(directory.path(), CACHE_BYTES_DEFAULT);
        let refused = open_sled(
            &config,
            directory.path(),
            std::time::Duration::from_millis(50),
        );
        match refused {
            Err(error @ StoreError::Locked(_)) => {
                assert!(error
                    .to_string()
                    .contains(&directory.path().display().to_string()));
            }
            other => panic!("expected the lock to be refused, got {other:?}"),
        }
        drop(store);
        // Reopened at once: the wait bridges sled's late release of its lock.
        let reopened = Store::open(directory.path()).expect("reopens after close");
        assert_eq!(reopened.last_seq().expect("readable"), 0);
    }
}
