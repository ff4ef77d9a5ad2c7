//! `SlotTable`: slot numbers filed by hash in one array, open addressing with linear
//! probing, each entry the hash's high half beside the slot number. It is the index of
//! the kept client order ids, which under a high order rate holds hundreds of thousands
//! of entries that are mostly cold: a look-up, a filing and a removal each read one run of
//! neighbouring entries, usually one cache line, where a table that keeps its control
//! bytes apart from its slots (hashbrown's) reads two. A removal shifts the entries after
//! it back instead of leaving a tombstone, so the table never fills with dead entries.
//!
//! It is also the index of the idempotency keys held, for the same reason.
//!
//! It is not a general map: it stores slot numbers only, and the caller tells a slot's
//! key by looking at the slot, as `find`'s `is_key` does.

/// Slot numbers by the high 32 bits of a 64-bit hash.
#[derive(Clone, Debug, Default)]
pub(super) struct SlotTable {
    /// Empty (0) or `tag << 32 | (slot + 1)`; the length is zero or a power of two.
    entries: Vec<u64>,
    len: usize,
}

/// The fewest entries a table that holds any has.
const ENTRIES_MIN: usize = 16;

/// An entry of `slot` under `hash`: the hash's high half, which also places it.
fn entry(hash: u64, slot: u32) -> u64 {
    let slot = u64::from(slot) + 1;
    assert!(slot <= u64::from(u32::MAX), "a slot number fits an entry");
    (hash >> 32) << 32 | slot
}

fn slot_of(entry: u64) -> u32 {
    (entry as u32) - 1
}

impl SlotTable {
    /// Slot numbers filed.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// Where an entry's probe starts.
    fn home(&self, entry: u64) -> usize {
        (entry >> 32) as usize & self.mask()
    }

    /// The slot filed under `hash` for which `is_key` holds, if any.
    pub(super) fn find(&self, hash: u64, is_key: impl Fn(u32) -> bool) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        let tag = hash >> 32;
        let mut at = self.home(entry(hash, 0));
        loop {
            let found = self.entries[at];
            if found == 0 {
                return None;
            }
            if found >> 32 == tag && is_key(slot_of(found)) {
                return Some(slot_of(found));
            }
            at = (at + 1) & self.mask();
        }
    }

    /// The entry a look-up of `hash` reads first; read ahead of the look-up, it brings the
    /// entry's cache line in (see `KeyedSlots::read_ahead`).
    pub(super) fn first_probed(&self, hash: u64) -> u64 {
        match self.entries.is_empty() {
            true => 0,
            false => self.entries[self.home(entry(hash, 0))],
        }
    }

    /// Files `slot` under `hash`. The caller files a slot once.
    pub(super) fn insert(&mut self, hash: u64, slot: u32) {
        // At most half full, so that the probes stay short.
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        self.place(entry(hash, slot));
        self.len += 1;
    }

    fn place(&mut self, new: u64) {
        let mut at = self.home(new);
        while self.entries[at] != 0 {
            at = (at + 1) & self.mask();
        }
        self.entries[at] = new;
    }

    fn grow(&mut self) {
        let length = (self.entries.len() * 2).max(ENTRIES_MIN);
        let old = std::mem::replace(&mut self.entries, vec![0; length]);
        for filed in old.into_iter().filter(|&filed| filed != 0) {
            self.place(filed);
        }
    }

    /// Removes `slot`, filed under `hash`; says whether it was filed.
    pub(super) fn remove(&mut self, hash: u64, slot: u32) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let wanted = entry(hash, slot);
        let mut hole = self.home(wanted);
        loop {
            match self.entries[hole] {
                0 => return false,
                found if found == wanted => break,
                _ => hole = (hole + 1) & self.mask(),
            }
        }
        // Each entry after the hole, up to the next empty one, moves back into it unless
        // its probe starts after the hole (cyclically), where it would not be found.
        let mut next = (hole + 1) & self.mask();
        loop {
            let moving = self.entries[next];
            if moving == 0 {
                break;
            }
            let home = self.home(moving);
            let distance_to_next = next.wrapping_sub(home) & self.mask();
            let distance_to_hole = next.wrapping_sub(hole) & self.mask();
            if distance_to_next >= distance_to_hole {
                self.entries[hole] = moving;
                hole = next;
            }
            next = (next + 1) & self.mask();
        }
        self.entries[hole] = 0;
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn slots_are_found_by_hash_and_key_and_removed() {
        let mut table = SlotTable::default();
        assert_eq!(table.find(7, |_| true), None);
        // Two slots under one hash: the key tells them apart.
        table.insert(7 << 32, 1);
        table.insert(7 << 32, 2);
        table.insert(9 << 32, 3);
        assert_eq!(table.find(7 << 32, |slot| slot == 2), Some(2));
        assert_eq!(table.find(7 << 32, |slot| slot == 3), None);
        assert!(table.remove(7 << 32, 1));
        assert!(!table.remove(7 << 32, 1));
        assert_eq!(table.find(7 << 32, |slot| slot == 2), Some(2));
        assert_eq!(table.len(), 2);
    }

    proptest::proptest! {
        /// Any sequence of filings and removals, with hashes crowded into a few probe
        /// runs that wrap around the end of the array, finds what a map would.
        #[test]
        fn the_table_finds_what_a_map_holds(
            operations in proptest::collection::vec(
                (0u64..40, 0u32..64, proptest::bool::ANY),
                0..400,
            )
        ) {
            let mut table = SlotTable::default();
            let mut model: HashMap<u32, u64> = HashMap::new();
            for (hash_high, slot, filing) in operations {
                let hash = (hash_high | 0xFFFF_FFF0) << 32 | 0xABCD;
                match (filing, model.get(&slot).copied()) {
                    (true, None) => {
                        table.insert(hash, slot);
                        model.insert(slot, hash);
                    }
                    (_, Some(filed)) if !filing => {
                        proptest::prop_assert!(table.remove(filed, slot));
                        model.remove(&slot);
                    }
                    _ => {}
                }
                proptest::prop_assert_eq!(table.len(), model.len());
                for (&slot, &filed) in &model {
                    proptest::prop_assert_eq!(table.find(filed, |found| found == slot), Some(slot));
                }
            }
        }
    }
}
