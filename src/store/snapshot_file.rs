//! Snapshot files: `snapshots/<last_seq>.snapshot`, each a magic number, the SHA-256 of
//! the body, and the body (the canonical encoding of a [`SequencerSnapshot`], whose hash
//! is also the sequencer's state hash). A snapshot is written under a temporary name,
//! fsynced, renamed into place and its directory fsynced, so a crash leaves either the
//! whole file or none. The two newest are kept.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{snapshot_legacy, StoreError};
use crate::engine::{EncodedSnapshot, SequencerSnapshot};

/// The format's mark: a file of another format (`DVMSNAP1`, before a charge's reply held
/// its sequence number; `DVMSNAP2`, before retention kept the clock and expiry times;
/// `DVMSNAP3`, before the prepaid pool and the issue prices' changes; `DVMSNAP4`, before
/// charges' idempotency records were kept compact) is passed over like a damaged one, and
/// the journal replays what it covered. `DVMSNAP6` and `DVMSNAP5` are still read (see
/// [`EARLIER_MAGIC`] and [`LEGACY_MAGIC`]).
const MAGIC: &[u8; 8] = b"DVMSNAP7";

/// The format before kept client order ids were recorded compactly, read through
/// `snapshot_legacy`. Its recorded hash is of that encoding, so the state it restores is
/// checked against the converted snapshot's hash instead.
pub(super) const EARLIER_MAGIC: &[u8; 8] = b"DVMSNAP6";

/// The format before that, and before the engine configuration was recorded last in the
/// body: `DVMSNAP6`'s encoding without that field, read as if it ended with `None`
/// (postcard's one byte 0), and its hash is of the body as it is.
pub(super) const LEGACY_MAGIC: &[u8; 8] = b"DVMSNAP5";

/// Whether a file starting with `magic` is of a format this version reads.
fn readable(magic: &[u8]) -> bool {
    magic == MAGIC || magic == EARLIER_MAGIC || magic == LEGACY_MAGIC
}
const SUFFIX: &str = ".snapshot";
const KEPT: usize = 2;

/// Makes a directory's entries (new, renamed or removed files) durable.
pub fn sync_directory(directory: &Path) -> Result<(), StoreError> {
    File::open(directory)?.sync_all()?;
    Ok(())
}

/// Writes the snapshot durably and removes all but the newest few.
pub fn write(directory: &Path, snapshot: &EncodedSnapshot) -> Result<(), StoreError> {
    fs::create_dir_all(directory)?;
    let body = &snapshot.body;
    let hash: [u8; 32] = Sha256::digest(body).into();
    let path = directory.join(format!("{:020}{SUFFIX}", snapshot.last_seq));
    let temporary = path.with_extension("partial");
    {
        let mut file = File::create(&temporary)?;
        file.write_all(MAGIC)?;
        file.write_all(&hash)?;
        file.write_all(body)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, &path)?;
    sync_directory(directory)?;
    let mut existing = list(directory)?;
    existing.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    for (_, old) in existing.into_iter().skip(KEPT) {
        fs::remove_file(old)?;
    }
    sync_directory(directory)
}

/// The newest snapshot whose magic number and checksum hold, with the hash the state it
/// restores must have (see [`decode`]). Damaged files are passed over for an older one:
/// the journal still holds what they covered.
pub fn latest(directory: &Path) -> Result<Option<(SequencerSnapshot, [u8; 32])>, StoreError> {
    if !directory.exists() {
        return Ok(None);
    }
    let mut files = list(directory)?;
    files.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    for (seq, path) in files {
        if let Ok((snapshot, hash)) = read(&path) {
            if snapshot.last_seq == seq {
                return Ok(Some((snapshot, hash)));
            }
        }
    }
    Ok(None)
}

/// The sequence numbers of the snapshots kept.
pub fn kept_seqs(directory: &Path) -> Result<Vec<u64>, StoreError> {
    if !directory.exists() {
        return Ok(Vec::new());
    }
    Ok(list(directory)?.into_iter().map(|(seq, _)| seq).collect())
}

fn read(path: &Path) -> Result<(SequencerSnapshot, [u8; 32]), StoreError> {
    decode(&fs::read(path)?, path)
}

/// A snapshot from the bytes of its file (`path` names it in errors), with the hash the
/// state it restores must have: the one the file records, or for a file of an earlier
/// format, the converted snapshot's.
pub fn decode(bytes: &[u8], path: &Path) -> Result<(SequencerSnapshot, [u8; 32]), StoreError> {
    if bytes.len() < HEADER_BYTES || !readable(&bytes[..MAGIC.len()]) {
        return Err(StoreError::Corrupt(format!(
            "{} is not a snapshot",
            path.display()
        )));
    }
    let (hash, body) = bytes[MAGIC.len()..].split_at(32);
    let actual: [u8; 32] = Sha256::digest(body).into();
    if actual != hash {
        return Err(StoreError::Corrupt(format!(
            "{} fails its checksum",
            path.display()
        )));
    }
    let magic = &bytes[..MAGIC.len()];
    if magic == MAGIC {
        let snapshot = postcard::from_bytes(body).map_err(StoreError::Encoding)?;
        return Ok((snapshot, actual));
    }
    // An earlier format, converted: the state it restores is checked against the
    // converted snapshot's hash (its bytes were against the file's, above).
    let snapshot = match magic == LEGACY_MAGIC {
        true => snapshot_legacy::decode(&[body, &[0]].concat()),
        false => snapshot_legacy::decode(body),
    }
    .map_err(StoreError::Encoding)?;
    let hash = snapshot.state_hash();
    Ok((snapshot, hash))
}

/// The magic number and the body's SHA-256.
const HEADER_BYTES: usize = MAGIC.len() + 32;

/// Reads an open snapshot file through (from its start) and checks its magic number and
/// checksum without holding it in memory; leaves the file at its end.
fn verify_open(file: &mut File, path: &Path) -> Result<(), StoreError> {
    use std::io::{Read, Seek};
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut header = [0; HEADER_BYTES];
    let damaged = |what: &str| StoreError::Corrupt(format!("{} {what}", path.display()));
    file.read_exact(&mut header)
        .map_err(|_| damaged("is not a snapshot (too short)"))?;
    if !readable(&header[..MAGIC.len()]) {
        return Err(damaged("is not a snapshot of this version"));
    }
    let mut hasher = Sha256::new();
    std::io::copy(file, &mut hasher)?;
    if hasher.finalize().as_slice() != &header[MAGIC.len()..] {
        return Err(damaged("fails its checksum"));
    }
    Ok(())
}

/// Checks every kept snapshot file's magic number and checksum; the first that fails is
/// an error naming it.
pub fn verify_all(directory: &Path) -> Result<usize, StoreError> {
    if !directory.exists() {
        return Ok(0);
    }
    let files = list(directory)?;
    for (_, path) in &files {
        verify_open(&mut File::open(path)?, path)?;
    }
    Ok(files.len())
}

/// The newest snapshot file whose magic number and checksum hold, opened at its start,
/// with its sequence number. The open file stays readable if a newer snapshot removes it.
pub fn open_latest(directory: &Path) -> Result<Option<(u64, File)>, StoreError> {
    use std::io::Seek;
    if !directory.exists() {
        return Ok(None);
    }
    let mut files = list(directory)?;
    files.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    for (seq, path) in files {
        // Removed by a newer snapshot since it was listed, or damaged: an older one.
        let Ok(mut file) = File::open(&path) else {
            continue;
        };
        if verify_open(&mut file, &path).is_ok() {
            file.seek(std::io::SeekFrom::Start(0))?;
            return Ok(Some((seq, file)));
        }
    }
    Ok(None)
}

fn list(directory: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(directory)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if let Some(seq) = name.strip_suffix(SUFFIX).and_then(|seq| seq.parse().ok()) {
            files.push((seq, path));
        }
    }
    Ok(files)
}
