//! Backups: a consistent copy of a running store in one file, and its restore.
//!
//! A backup is the newest sound snapshot file as it is on disk, then every journal record
//! the store keeps up to one committed sequence number (those before the snapshot are the
//! accounts' history; those after it rebuild the state), then the SHA-256 of all that:
//!
//! ```text
//! "DVMBKUP1"  snapshot seq (u64)  last seq (u64)  snapshot length (u64)  snapshot file
//! { record length (u32, > 0)  record's stored form }*  0 (u32)  SHA-256 of the above
//! ```
//!
//! Integers are big-endian. Writing one reads only files and the journal, so trading goes
//! on while it is taken; the pipeline's retention deletes nothing from the journal until
//! the backup ends (`Pipeline::hold_journal`). Reading one checks the
//! whole file's SHA-256 before anything else, then the snapshot's own checksum, each
//! record's form and the continuity of sequence numbers; [`check_backup`] replays it in
//! memory, [`restore`] writes it into an empty data directory and checks that.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::check::Report;
use super::journal::{key_of, Records};
use super::recovery::{replay, restore_snapshot};
use super::{check, snapshot_file, JournalRecord, Store, StoreError};
use crate::config::EngineConfig;
use crate::engine::LevelBook;

const MAGIC: &[u8; 8] = b"DVMBKUP1";

/// The magic number, the two sequence numbers and the snapshot's length.
const HEADER_BYTES: u64 = 8 + 3 * 8;

/// The trailing SHA-256.
const HASH_BYTES: u64 = 32;

/// The largest record a backup may hold: far above any the journal writes (a command's
/// events are bounded), and below what a damaged length could make the reader allocate.
const RECORD_BYTES_MAX: u32 = 256 * 1024 * 1024;

/// Records written to the restored store per atomic write.
const RESTORE_RECORDS_PER_WRITE: usize = 1024;

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    /// The last sequence number it holds.
    pub seq: u64,
    /// The snapshot it starts from (0: genesis).
    pub snapshot_seq: u64,
    /// Journal records after the snapshot.
    pub records: u64,
    /// The file's length.
    pub bytes: u64,
    /// The SHA-256 the file ends with (of everything before it).
    pub sha256: [u8; 32],
}

/// What a running store's backups are read from: the journal and the snapshot files.
#[derive(Clone)]
pub struct BackupSource {
    journal: sled::Tree,
    snapshots: PathBuf,
}

impl Store {
    /// What backups of this store are taken from, to share with other threads.
    pub fn backup_source(&self) -> BackupSource {
        BackupSource {
            journal: self.journal.clone(),
            snapshots: self.snapshot_directory(),
        }
    }
}

impl BackupSource {
    /// Writes a backup to `out`: the newest sound snapshot, then the journal up to
    /// `committed()`, read once the snapshot is chosen. The caller keeps the journal from
    /// retention until this returns.
    pub fn write_to(
        &self,
        committed: impl FnOnce() -> u64,
        out: impl Write,
    ) -> Result<BackupSummary, StoreError> {
        let snapshot = snapshot_file::open_latest(&self.snapshots)?;
        let snapshot_seq = snapshot.as_ref().map_or(0, |(seq, _)| *seq);
        let seq = committed();
        if seq < snapshot_seq {
            return Err(StoreError::Corrupt(format!(
                "snapshot {snapshot_seq} is ahead of the committed seq {seq}"
            )));
        }
        let mut out = Hashing::new(out);
        out.write_all(MAGIC)?;
        out.write_all(&snapshot_seq.to_be_bytes())?;
        out.write_all(&seq.to_be_bytes())?;
        match snapshot {
            None => out.write_all(&0u64.to_be_bytes())?,
            Some((_, mut file)) => {
                let length = file.metadata()?.len();
                out.write_all(&length.to_be_bytes())?;
                let copied = std::io::copy(&mut (&mut file).take(length), &mut out)?;
                if copied != length {
                    return Err(StoreError::Corrupt(format!(
                        "snapshot {snapshot_seq} changed while it was read"
                    )));
                }
            }
        }
        let records = self.write_records(snapshot_seq, seq, &mut out)?;
        out.write_all(&0u32.to_be_bytes())?;
        let (mut out, sha256, length) = out.finish();
        out.write_all(&sha256)?;
        out.flush()?;
        Ok(BackupSummary {
            seq,
            snapshot_seq,
            records,
            bytes: length + HASH_BYTES,
            sha256,
        })
    }

    /// Writes the journal's records up to `last`, which must end a record; they must
    /// reach back to the snapshot at `snapshot_seq`.
    fn write_records(
        &self,
        snapshot_seq: u64,
        last: u64,
        out: &mut impl Write,
    ) -> Result<u64, StoreError> {
        let mut next = None;
        let mut written = 0;
        if last > snapshot_seq {
            for item in Records::new(self.journal.range(..key_of(last.saturating_add(1)))) {
                let (stored_seq, record) = item?;
                record.validate()?;
                let resumes = next.is_none_or(|next| record.first_seq() == Some(next));
                if !resumes || record.last_seq() != Some(stored_seq) {
                    return Err(StoreError::Corrupt(format!(
                        "the journal resumes at {:?} after event {next:?}",
                        record.first_seq()
                    )));
                }
                let bytes = record.encode()?;
                let length = u32::try_from(bytes.len())
                    .ok()
                    .filter(|length| *length <= RECORD_BYTES_MAX)
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("record {stored_seq} is too large to back up"))
                    })?;
                out.write_all(&length.to_be_bytes())?;
                out.write_all(&bytes)?;
                written += 1;
                next = Some(stored_seq + 1);
            }
        }
        let reached = next.map_or(snapshot_seq, |next| next - 1);
        if reached != last.max(snapshot_seq) {
            return Err(StoreError::Corrupt(format!(
                "the journal has no record ending at the committed seq {last} (it reaches {reached})"
            )));
        }
        Ok(written)
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The writer, the SHA-256 of what was written and its length.
    fn finish(self) -> (W, [u8; 32], u64) {
        (self.inner, self.hasher.finalize().into(), self.bytes)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buffer)?;
        self.hasher.update(&buffer[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A backup file being read, its SHA-256 already checked.
struct BackupFile {
    path: PathBuf,
    reader: BufReader<File>,
    /// Bytes left before the trailing hash.
    remaining: u64,
    snapshot_seq: u64,
    seq: u64,
    snapshot_bytes: u64,
}

impl BackupFile {
    /// Opens a backup: the whole file's SHA-256 must hold, then its header is read.
    fn open(path: &Path) -> Result<BackupFile, StoreError> {
        let damaged =
            |what: &str| StoreError::Corrupt(format!("the backup {} {what}", path.display()));
        let mut file = File::open(path)?;
        let length = file.metadata()?.len();
        if length < HEADER_BYTES + 4 + HASH_BYTES {
            return Err(damaged("is too short to be a backup (cut short?)"));
        }
        let mut hasher = Sha256::new();
        let body = length - HASH_BYTES;
        std::io::copy(&mut (&mut file).take(body), &mut hasher)?;
        let mut recorded = [0; HASH_BYTES as usize];
        file.read_exact(&mut recorded)?;
        if hasher.finalize().as_slice() != recorded {
            return Err(damaged(
                "does not match its SHA-256: it was cut short or altered",
            ));
        }
        let mut reader = BufReader::new(File::open(path)?);
        let mut magic = [0; 8];
        reader.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(damaged("is not a divmid backup of this version"));
        }
        let mut header = [0u64; 3];
        for value in &mut header {
            *value = read_u64(&mut reader)?;
        }
        let [snapshot_seq, seq, snapshot_bytes] = header;
        let remaining = body - HEADER_BYTES;
        if snapshot_bytes > remaining || seq < snapshot_seq {
            return Err(damaged("has an impossible header"));
        }
        Ok(BackupFile {
            path: path.to_path_buf(),
            reader,
            remaining: remaining - snapshot_bytes,
            snapshot_seq,
            seq,
            snapshot_bytes,
        })
    }

    /// The snapshot, checked against its own hash, if the backup starts from one.
    fn snapshot(
        &mut self,
    ) -> Result<Option<(crate::engine::SequencerSnapshot, [u8; 32])>, StoreError> {
        if self.snapshot_bytes == 0 {
            return Ok(None);
        }
        let length = usize::try_from(self.snapshot_bytes)
            .map_err(|_| StoreError::Corrupt("a snapshot too large to read".to_string()))?;
        let mut bytes = vec![0; length];
        self.reader.read_exact(&mut bytes)?;
        let name = self.path.join(format!("snapshot {}", self.snapshot_seq));
        let snapshot = snapshot_file::decode(&bytes, &name)?;
        if snapshot.0.last_seq != self.snapshot_seq {
            return Err(StoreError::Corrupt(format!(
                "the backup's snapshot ends at {}, its header says {}",
                snapshot.0.last_seq, self.snapshot_seq
            )));
        }
        Ok(Some(snapshot))
    }

    /// The next record, or `None` at the end mark.
    fn next_record(&mut self) -> Result<Option<JournalRecord>, StoreError> {
        let corrupt =
            |what: &str| StoreError::Corrupt(format!("the backup {} {what}", self.path.display()));
        if self.remaining < 4 {
            return Err(corrupt("ends without its end mark"));
        }
        let length = read_u32(&mut self.reader)?;
        self.remaining -= 4;
        if length == 0 {
            return match self.remaining {
                0 => Ok(None),
                _ => Err(corrupt("has bytes after its end mark")),
            };
        }
        if length > RECORD_BYTES_MAX || u64::from(length) > self.remaining {
            return Err(corrupt("has a record longer than the file"));
        }
        let mut bytes = vec![0; length as usize];
        self.reader.read_exact(&mut bytes)?;
        self.remaining -= u64::from(length);
        let record = JournalRecord::decode(&bytes)?;
        record.validate()?;
        Ok(Some(record))
    }

    /// The records, each following the one before.
    fn records(&mut self) -> impl Iterator<Item = Result<JournalRecord, StoreError>> + '_ {
        let mut ended = false;
        let mut next: Option<u64> = None;
        std::iter::from_fn(move || {
            if ended {
                return None;
            }
            let record = self.next_record().and_then(|record| match record {
                Some(record) if next.is_some_and(|next| record.first_seq() != Some(next)) => {
                    Err(StoreError::Corrupt(format!(
                        "the backup's journal resumes at {:?} after event {next:?}",
                        record.first_seq()
                    )))
                }
                other => Ok(other),
            });
            match record {
                Ok(Some(record)) => {
                    next = record.last_seq().map(|last| last + 1);
                    Some(Ok(record))
                }
                Ok(None) => None,
                Err(error) => {
                    ended = true;
                    Some(Err(error))
                }
            }
        })
    }
}

fn read_u64(reader: &mut impl Read) -> Result<u64, StoreError> {
    let mut bytes = [0; 8];
    reader.read_exact(&mut bytes)?;
    Ok(u64::from_be_bytes(bytes))
}

fn read_u32(reader: &mut impl Read) -> Result<u32, StoreError> {
    let mut bytes = [0; 4];
    reader.read_exact(&mut bytes)?;
    Ok(u32::from_be_bytes(bytes))
}

/// Checks a backup file offline: its SHA-256, its snapshot's hash, and its journal
/// replayed in memory onto the snapshot to exactly its recorded events and every
/// invariant; reports the state at the backup's last sequence number.
pub fn check_backup(path: &Path, config: &EngineConfig) -> Result<Report, StoreError> {
    let mut backup = BackupFile::open(path)?;
    let snapshot = backup.snapshot()?;
    let (mut sequencer, snapshot_seq) = restore_snapshot::<LevelBook>(config.clone(), snapshot)?;
    // The records up to the snapshot are history; the state is rebuilt from those after.
    let target = backup.seq;
    let after_snapshot = backup
        .records()
        .filter(|record| !matches!(record, Ok(record) if record.last_seq() <= Some(snapshot_seq)));
    let commands_replayed = replay(&mut sequencer, (snapshot_seq, target), after_snapshot)?;
    if sequencer.last_seq() != backup.seq {
        return Err(StoreError::Corrupt(format!(
            "the backup {} ends at seq {} but says it holds seq {}",
            path.display(),
            sequencer.last_seq(),
            backup.seq
        )));
    }
    sequencer
        .check_invariants()
        .map_err(|broken| StoreError::Corrupt(format!("the backup's state is broken: {broken}")))?;
    Ok(Report::of(
        &sequencer,
        config,
        Some(backup.seq),
        snapshot_seq,
        commands_replayed,
        snapshot_seq == 0,
    ))
}

/// Restores a backup into `directory`, which must be empty or absent: the backup is
/// checked first ([`check_backup`]), then its snapshot and journal are written as the
/// server writes them, with the acknowledged mark at its last sequence number, and the
/// new directory is checked as `divmid-server check` does. Returns that check's report.
pub fn restore(path: &Path, directory: &Path, config: &EngineConfig) -> Result<Report, StoreError> {
    if directory.exists() && std::fs::read_dir(directory)?.next().is_some() {
        return Err(StoreError::NotEmpty(directory.to_path_buf()));
    }
    let checked = check_backup(path, config)?;
    let mut backup = BackupFile::open(path)?;
    let snapshot = backup.snapshot()?;
    let mut store = Store::open(directory)?;
    if let Some((snapshot, _)) = snapshot {
        snapshot_file::write(&store.snapshot_directory(), &snapshot.encoded())?;
    }
    let mut batch = Vec::with_capacity(RESTORE_RECORDS_PER_WRITE);
    for record in backup.records() {
        batch.push(record?);
        if batch.len() == RESTORE_RECORDS_PER_WRITE {
            store.append(&batch)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.append(&batch)?;
    }
    drop(store);
    let restored = check(directory, config)?;
    if restored.state_hash != checked.state_hash || restored.seq != checked.seq {
        return Err(StoreError::Corrupt(format!(
            "{} restored to seq {} with another state than the backup's (seq {})",
            directory.display(),
            restored.seq,
            checked.seq
        )));
    }
    Ok(restored)
}
