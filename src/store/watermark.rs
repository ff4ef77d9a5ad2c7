//! The acknowledged high-water mark: the last sequence number the store acknowledged and
//! the SHA-256 of the journal record that ends there, in a small file beside sled
//! (`acknowledged`), written and fsynced after every commit and before anyone is answered.
//!
//! sled treats damage in its log as a torn tail and truncates there, so a flipped byte or
//! a lost write would otherwise bring the exchange back at an earlier state, silently,
//! with acknowledged commands gone. The mark is outside sled's log, so such a truncation
//! cannot take it back with it: recovery compares the journal with it and refuses to
//! serve when the journal ends before it, or holds another record there.
//!
//! The file has two slots of [`SLOT_BYTES`], written in turn, each with its own CRC: a
//! write torn by a power cut damages only the slot being written, and the other still
//! holds the mark before it. Reading takes the valid slot with the higher sequence number.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::StoreError;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "acknowledged";

const MAGIC: &[u8; 8] = b"DVMMARK1";

/// Magic, sequence number, hash, CRC-32 of the three.
const SLOT_BYTES: u64 = 8 + 8 + 32 + 4;

/// What the store last acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The last acknowledged event's sequence number.
    pub seq: u64,
    /// The SHA-256 of the stored form of the journal record ending at `seq`.
    pub record_hash: [u8; 32],
}

impl Mark {
    /// The mark of the journal record ending at `seq`, stored as `stored`: the one place
    /// its hash is taken, for the append that writes it and the check that reads it back.
    pub fn of_stored(seq: u64, stored: &[u8]) -> Mark {
        Mark {
            seq,
            record_hash: Sha256::digest(stored).into(),
        }
    }

    fn encode(&self) -> [u8; SLOT_BYTES as usize] {
        let mut slot = [0; SLOT_BYTES as usize];
        slot[..8].copy_from_slice(MAGIC);
        slot[8..16].copy_from_slice(&self.seq.to_be_bytes());
        slot[16..48].copy_from_slice(&self.record_hash);
        let crc = crc32fast::hash(&slot[..48]);
        slot[48..].copy_from_slice(&crc.to_be_bytes());
        slot
    }

    fn decode(slot: &[u8]) -> Option<Mark> {
        let (body, crc) = slot.split_at_checked(48)?;
        let crc = u32::from_be_bytes(crc.try_into().ok()?);
        if &body[..8] != MAGIC || crc32fast::hash(body) != crc {
            return None;
        }
        Some(Mark {
            seq: u64::from_be_bytes(body[8..16].try_into().ok()?),
            record_hash: body[16..48].try_into().ok()?,
        })
    }
}

/// The mark file, open for writing.
pub struct Watermark {
    file: File,
    /// Marks written since opening; picks the slot of the next one.
    writes: u64,
}

impl Watermark {
    /// Opens (or creates) the mark file in `directory`.
    pub fn open(directory: &Path) -> Result<Watermark, StoreError> {
        let path = directory.join(FILE_NAME);
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if created {
            // Both slots written now, so that writing a mark never needs new space: on a
            // full disk it fails only where the journal itself would.
            file.write_all_at(&[0; 2 * SLOT_BYTES as usize], 0)?;
            file.sync_all()?;
            super::snapshot_file::sync_directory(directory)?;
        }
        // Start with the slot that does not hold the newest mark, so that the newest
        // survives a torn first write.
        let writes = match read_slots(&file)? {
            [Some(first), Some(second)] if first.seq > second.seq => 1,
            [Some(_), None] => 1,
            _ => 0,
        };
        Ok(Watermark { file, writes })
    }

    /// Writes the mark durably: after `Ok`, a power cut leaves it (or a later one).
    pub fn write(&mut self, mark: &Mark) -> Result<(), StoreError> {
        let offset = (self.writes % 2) * SLOT_BYTES;
        self.file.write_all_at(&mark.encode(), offset)?;
        self.file.sync_data()?;
        self.writes += 1;
        Ok(())
    }
}

fn read_slots(file: &File) -> Result<[Option<Mark>; 2], StoreError> {
    let mut bytes = [0; 2 * SLOT_BYTES as usize];
    let length = file.metadata()?.len().min(bytes.len() as u64) as usize;
    file.read_exact_at(&mut bytes[..length], 0)?;
    let (first, second) = bytes.split_at(SLOT_BYTES as usize);
    Ok([Mark::decode(first), Mark::decode(second)])
}

/// The newest mark in `directory`, if one was ever written.
pub fn read(directory: &Path) -> Result<Option<Mark>, StoreError> {
    let path = directory.join(FILE_NAME);
    if !path.exists() {
        return Ok(None);
    }
    let slots = read_slots(&File::open(path)?)?;
    Ok(slots.into_iter().flatten().max_by_key(|mark| mark.seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_mark_survives_a_torn_slot() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        assert_eq!(read(directory.path()).expect("readable"), None);
        let mut watermark = Watermark::open(directory.path()).expect("opens");
        let marks: Vec<Mark> = (1..=3)
            .map(|seq| Mark {
                seq,
                record_hash: [seq as u8; 32],
            })
            .collect();
        for mark in &marks {
            watermark.write(mark).expect("written");
        }
        assert_eq!(read(directory.path()).expect("readable"), Some(marks[2]));
        // The third mark went to the first slot; tear it: the second mark remains.
        let file = OpenOptions::new()
            .write(true)
            .open(directory.path().join(FILE_NAME))
            .expect("opens");
        file.write_all_at(&[0xFF; 4], 10).expect("torn");
        assert_eq!(read(directory.path()).expect("readable"), Some(marks[1]));
        // Reopened, the next write goes to the torn slot, not over the newest valid one.
        let mut reopened = Watermark::open(directory.path()).expect("reopens");
        let fourth = Mark {
            seq: 4,
            record_hash: [4; 32],
        };
        reopened.write(&fourth).expect("written");
        assert_eq!(read(directory.path()).expect("readable"), Some(fourth));
    }
}
