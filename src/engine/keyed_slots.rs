//! `KeyedSlots`: entries kept by account and key for a retention window, in the slots of
//! one slab, found through a [`SlotTable`] of slot numbers, and counted per account. The
//! kept client order ids and the idempotency keys are held this way: under a high rate
//! hundreds of thousands of them are held and mostly cold, and a new key's look-up reads
//! only the table, a filing reuses the slot an expiry has just freed (memory just read),
//! and an expiry queue can name an entry by its slot.
//!
//! What the entries are, when they expire and how a key is compared are the holder's.

use std::hash::BuildHasher;

use rustc_hash::{FxBuildHasher, FxHashMap};

use super::slot_table::SlotTable;
use crate::types::AccountId;

/// The hash an entry of `account` under `key` is filed and found by.
pub(super) fn key_hash(account: AccountId, key: &str) -> u64 {
    FxBuildHasher.hash_one((account, key))
}

/// What an entry tells about itself: its owner, its key, and their [`key_hash`].
pub(super) trait Keyed {
    fn account(&self) -> AccountId;
    fn key_bytes(&self) -> &[u8];
    fn hash(&self) -> u64;
}

/// Slots per chunk of the slab: about 2.7 MB of kept client order ids.
const CHUNK_SLOTS: usize = 1 << 14;

/// The slots in chunks of [`CHUNK_SLOTS`], each allocated when the one before is full:
/// growing the slab never moves a filled slot. As one vector, a slab of a million slots
/// (some 170 MB of kept ids) grew by copying all of it into twice the memory, the
/// sequencer and the replica waiting meanwhile, and left half of the new memory unused.
#[derive(Clone, Debug)]
struct Chunks<T> {
    chunks: Vec<Vec<Option<T>>>,
}

impl<T> Chunks<T> {
    fn len(&self) -> usize {
        self.chunks
            .last()
            .map_or(0, |last| (self.chunks.len() - 1) * CHUNK_SLOTS + last.len())
    }

    fn get(&self, slot: usize) -> Option<&Option<T>> {
        self.chunks.get(slot / CHUNK_SLOTS)?.get(slot % CHUNK_SLOTS)
    }

    fn get_mut(&mut self, slot: usize) -> Option<&mut Option<T>> {
        self.chunks
            .get_mut(slot / CHUNK_SLOTS)?
            .get_mut(slot % CHUNK_SLOTS)
    }

    fn push(&mut self, entry: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK_SLOTS => last.push(Some(entry)),
            _ => {
                // The first chunk grows as entries come, so that a small state (a test's,
                // a quiet exchange's) has room for what it holds only; the next ones are
                // allocated whole.
                let mut chunk = match self.chunks.is_empty() {
                    true => Vec::new(),
                    false => Vec::with_capacity(CHUNK_SLOTS),
                };
                chunk.push(Some(entry));
                self.chunks.push(chunk);
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Option<T>> {
        self.chunks.iter().flatten()
    }
}

impl<T> std::ops::Index<usize> for Chunks<T> {
    type Output = Option<T>;

    fn index(&self, slot: usize) -> &Option<T> {
        self.get(slot)
            .expect("a slot number names a slot of the slab")
    }
}

impl<T> std::ops::IndexMut<usize> for Chunks<T> {
    fn index_mut(&mut self, slot: usize) -> &mut Option<T> {
        self.get_mut(slot)
            .expect("a slot number names a slot of the slab")
    }
}

#[derive(Clone, Debug)]
pub(super) struct KeyedSlots<T> {
    slots: Chunks<T>,
    /// Freed slots, the last freed filled first.
    free_slots: Vec<u32>,
    index: SlotTable,
    /// Entries per account; an account with none has no count.
    counts: FxHashMap<AccountId, u32>,
    len: usize,
}

impl<T> Default for KeyedSlots<T> {
    fn default() -> KeyedSlots<T> {
        KeyedSlots {
            slots: Chunks { chunks: Vec::new() },
            free_slots: Vec::new(),
            index: SlotTable::default(),
            counts: FxHashMap::default(),
            len: 0,
        }
    }
}

impl<T: Keyed> KeyedSlots<T> {
    /// The slot of the entry filed under `hash` for which `is_key` holds, if any.
    pub(super) fn find(&self, hash: u64, is_key: impl Fn(&T) -> bool) -> Option<u32> {
        let slots = &self.slots;
        self.index.find(hash, |slot| {
            slots[slot as usize].as_ref().is_some_and(&is_key)
        })
    }

    /// Reads ahead what look-ups of `hashes` and removals of the entries in `slots` will
    /// read first: the index entries, the slots, and the slots' keys (a removal frees the
    /// key, which writes into it). Under a high rate the index and the slots run to tens of
    /// megabytes and are mostly cold; each pass's reads depend on none of the others, so
    /// the processor overlaps their cache misses, where the commands that follow would
    /// take them one after another. Returns a value made of what it read, for the caller
    /// to hand to `std::hint::black_box` so that the reads are made.
    pub(super) fn read_ahead(
        &self,
        hashes: impl Iterator<Item = u64>,
        slots: impl Iterator<Item = u32> + Clone,
    ) -> u64 {
        let filled = |slot: u32| self.slots.get(slot as usize).and_then(Option::as_ref);
        let mut read = 0;
        for hash in hashes {
            read ^= self.index.first_probed(hash);
        }
        for slot in slots.clone() {
            read ^= filled(slot).map_or(0, Keyed::hash);
        }
        for entry in slots.filter_map(filled) {
            read ^= self.index.first_probed(entry.hash());
            read ^= u64::from(entry.key_bytes().first().copied().unwrap_or(0));
        }
        read
    }

    /// The entry in `slot`, if it is filled.
    pub(super) fn get(&self, slot: u32) -> Option<&T> {
        self.slots[slot as usize].as_ref()
    }

    /// The entry in a slot the caller knows to be filled (found, or named by a live
    /// order).
    pub(super) fn filled(&self, slot: u32) -> &T {
        self.get(slot).expect("a slot found or named is filled")
    }

    pub(super) fn filled_mut(&mut self, slot: u32) -> &mut T {
        self.slots[slot as usize]
            .as_mut()
            .expect("a slot found or named is filled")
    }

    /// Files a new entry (its key is not held) in a free slot and in the index.
    pub(super) fn file(&mut self, entry: T) -> u32 {
        let hash = entry.hash();
        *self.counts.entry(entry.account()).or_default() += 1;
        self.len += 1;
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(entry);
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len())
                    .expect("fewer entries are held than a slot number can count");
                self.slots.push(entry);
                slot
            }
        };
        self.index.insert(hash, slot);
        slot
    }

    /// Removes the entry in a filled slot from the index and the counts, and frees the
    /// slot.
    pub(super) fn remove(&mut self, slot: u32) -> T {
        let entry = self.slots[slot as usize]
            .take()
            .expect("only a filled slot is removed");
        let filed = self.index.remove(entry.hash(), slot);
        assert!(filed, "every filled slot is indexed");
        self.free_slots.push(slot);
        self.len -= 1;
        if let std::collections::hash_map::Entry::Occupied(mut count) =
            self.counts.entry(entry.account())
        {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
        entry
    }

    /// The entries the account holds.
    pub(super) fn count(&self, account: AccountId) -> u32 {
        self.counts.get(&account).copied().unwrap_or(0)
    }

    /// The entries held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The filled slots and their entries, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, entry)| Some((slot as u32, entry.as_ref()?)))
    }

    /// Slots the slab has, filled or free.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Whether no account holds an entry.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0 && self.counts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug)]
    struct Entry {
        account: AccountId,
        key: String,
    }

    impl Keyed for Entry {
        fn account(&self) -> AccountId {
            self.account
        }

        fn key_bytes(&self) -> &[u8] {
            self.key.as_bytes()
        }

        fn hash(&self) -> u64 {
            key_hash(self.account, &self.key)
        }
    }

    fn entry(number: usize) -> Entry {
        Entry {
            account: AccountId(1 + number as u64 % 3),
            key: format!("key-{number}"),
        }
    }

    fn find(slots: &KeyedSlots<Entry>, wanted: &Entry) -> Option<u32> {
        slots.find(wanted.hash(), |held| {
            held.account == wanted.account && held.key == wanted.key
        })
    }

    #[test]
    fn entries_past_the_first_chunks_are_found_and_freed_slots_are_filled_first() {
        let count = 2 * CHUNK_SLOTS + 5;
        let mut slots = KeyedSlots::default();
        for number in 0..count {
            assert_eq!(slots.file(entry(number)), number as u32);
        }
        assert_eq!((slots.len(), slots.capacity()), (count, count));
        for number in [0, CHUNK_SLOTS - 1, CHUNK_SLOTS, 2 * CHUNK_SLOTS + 4] {
            let slot = find(&slots, &entry(number)).expect("filed");
            assert_eq!(slots.filled(slot).key, entry(number).key);
        }
        // Slots freed in the first and the last chunk are the next ones filled, and the
        // slab does not grow.
        let freed = [3, 2 * CHUNK_SLOTS + 1];
        for slot in freed {
            assert_eq!(slots.remove(slot as u32).key, entry(slot).key);
        }
        assert!(find(&slots, &entry(3)).is_none());
        let new = entry(count);
        assert_eq!(slots.file(new.clone()), freed[1] as u32);
        assert_eq!(slots.file(entry(count + 1)), freed[0] as u32);
        assert_eq!(slots.capacity(), count);
        assert_eq!(find(&slots, &new), Some(freed[1] as u32));
        // In slot order across the chunks.
        let keys: Vec<u32> = slots.iter().map(|(slot, _)| slot).collect();
        assert_eq!(keys, Vec::from_iter(0..count as u32));
        assert_eq!(
            slots.count(AccountId(1)),
            slots
                .iter()
                .filter(|(_, held)| held.account == AccountId(1))
                .count() as u32
        );
    }
}
