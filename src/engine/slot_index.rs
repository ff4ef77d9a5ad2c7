//! Where each resting order sits in the book's slab, by order id.
//!
//! Order ids are issued in increasing order and most orders live briefly, so the index
//! keeps recent ids in a vector addressed by `id - base`: a window that slides forward as
//! old orders end. An order that outlives the window (it is more than `window_max` ids
//! older than the newest) moves to a hash map. Finding, adding and removing a recent order
//! is an array access; the window's memory is bounded by `window_max`.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::types::OrderId;

/// No slot.
const VACANT: u32 = u32::MAX;

/// Slab slots by order id.
#[derive(Clone, Debug)]
pub struct SlotIndex {
    /// The id of `window[0]`.
    base: u64,
    /// Slots of ids `base..base + window.len()`, `VACANT` where no order rests.
    window: VecDeque<u32>,
    /// The most ids the window spans before its oldest entries move to `old`.
    window_max: usize,
    /// Slots of orders older than the window.
    old: FxHashMap<OrderId, u32>,
    /// Orders indexed.
    len: usize,
}

impl Default for SlotIndex {
    /// A window of about two million ids (8 MiB at most): a book of a million resting
    /// orders under steady placement keeps every order in it.
    fn default() -> Self {
        SlotIndex::new(1 << 21)
    }
}

impl SlotIndex {
    /// An empty index whose window spans at most `window_max` ids.
    pub fn new(window_max: usize) -> SlotIndex {
        assert!(window_max > 0, "the window spans an id at least");
        SlotIndex {
            base: 0,
            window: VecDeque::new(),
            window_max,
            old: FxHashMap::default(),
            len: 0,
        }
    }

    /// How many orders are indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The order's slot.
    pub fn get(&self, id: OrderId) -> Option<u32> {
        if id.0 >= self.base {
            if let Some(&slot) = self.window.get((id.0 - self.base) as usize) {
                if slot != VACANT {
                    return Some(slot);
                }
            }
        }
        // An order kept in `old` may have an id above the window's base: the window
        // restarts at the next id inserted whenever it empties.
        self.old.get(&id).copied()
    }

    /// Records the order's slot; the order must not be indexed already.
    pub fn insert(&mut self, id: OrderId, slot: u32) {
        assert!(slot != VACANT, "slot numbers stay below u32::MAX");
        self.len += 1;
        if self.window.is_empty() {
            self.base = id.0;
        }
        if id.0 < self.base {
            let previous = self.old.insert(id, slot);
            assert!(previous.is_none(), "an order id is indexed twice");
            return;
        }
        let offset = (id.0 - self.base) as usize;
        while self.window.len() <= offset {
            self.window.push_back(VACANT);
        }
        assert!(
            self.window[offset] == VACANT,
            "an order id is indexed twice"
        );
        self.window[offset] = slot;
        while self.window.len() > self.window_max {
            let slot = self.window.pop_front().expect("the window is not empty");
            if slot != VACANT {
                self.old.insert(OrderId(self.base), slot);
            }
            self.base += 1;
        }
    }

    /// Forgets the order and returns its slot.
    pub fn remove(&mut self, id: OrderId) -> Option<u32> {
        let in_window = if id.0 >= self.base {
            self.window
                .get_mut((id.0 - self.base) as usize)
                .filter(|entry| **entry != VACANT)
                .map(|entry| std::mem::replace(entry, VACANT))
        } else {
            None
        };
        let slot = match in_window {
            Some(slot) => slot,
            None => self.old.remove(&id)?,
        };
        self.len -= 1;
        // Ended orders at the front of the window let it slide forward.
        while self.window.front() == Some(&VACANT) {
            self.window.pop_front();
            self.base += 1;
        }
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_and_old_orders_are_found_until_removed() {
        let mut index = SlotIndex::new(4);
        for id in 10..20 {
            index.insert(OrderId(id), id as u32 * 2);
        }
        assert_eq!(index.len(), 10);
        // Ids 10..16 have moved out of the window; all are still found.
        for id in 10..20 {
            assert_eq!(index.get(OrderId(id)), Some(id as u32 * 2), "id {id}");
        }
        assert_eq!(index.get(OrderId(9)), None);
        assert_eq!(index.get(OrderId(20)), None);
        assert_eq!(index.remove(OrderId(12)), Some(24));
        assert_eq!(index.remove(OrderId(12)), None);
        assert_eq!(index.remove(OrderId(19)), Some(38));
        assert_eq!(index.get(OrderId(19)), None);
        assert_eq!(index.len(), 8);
        // An old id may come back (an amended order re-enters the book).
        index.insert(OrderId(12), 7);
        assert_eq!(index.get(OrderId(12)), Some(7));
    }

    #[test]
    fn old_orders_are_found_after_the_window_restarts_below_them() {
        let mut index = SlotIndex::new(1_000);
        index.insert(OrderId(10), 1);
        index.insert(OrderId(7), 2); // below the base: kept in `old`
        index.remove(OrderId(10)); // the window empties
        index.insert(OrderId(3), 3); // and restarts at 3, below 7
        assert_eq!(index.get(OrderId(7)), Some(2));
        assert_eq!(index.remove(OrderId(7)), Some(2));
        assert_eq!(index.get(OrderId(7)), None);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn the_window_slides_past_ended_orders() {
        let mut index = SlotIndex::new(1_000);
        for id in 1..=100 {
            index.insert(OrderId(id), id as u32);
        }
        for id in 1..=99 {
            index.remove(OrderId(id));
        }
        assert_eq!(index.window.len(), 1);
        assert_eq!(index.get(OrderId(100)), Some(100));
    }
}
