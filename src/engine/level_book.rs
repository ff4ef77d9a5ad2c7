//! The order book the exchange runs on: price levels in sorted vectors, orders in a slab
//! linked into a queue per level, and an index from order id to slab slot.
//!
//! Each side keeps its levels sorted so that the best level is the last element: the
//! levels matching touches most are at the end, where inserting and removing one moves
//! nothing. Every order operation is O(1) apart from finding a level that is not the best,
//! a binary search over the side's levels.
//!
//! Each account's orders are listed too, as slots in a vector per account, each node
//! keeping its position there: adding appends, removing moves the list's last slot into
//! the gap. Both are O(1), so cancel all finds an account's orders without a scan and
//! ending an order costs no search.

use super::book::{OrderBook, RestingOrder};
use super::slot_index::SlotIndex;
use crate::types::Level;
use crate::types::{AccountId, OrderId, Price, Quantity, Side};

/// No slot: the end of a level's queue.
const NIL: u32 = u32::MAX;

/// A slab slot: an order and its neighbours in its level's queue.
#[derive(Clone, Debug)]
struct Node {
    order: RestingOrder,
    previous: u32,
    next: u32,
    /// Its position in its account's list.
    listed_at: u32,
}

/// One price level of one side.
#[derive(Clone, Copy, Debug)]
struct PriceLevel {
    /// Sort key: the price for bids, its complement for asks, so that on both sides the
    /// best level has the largest key and sits last.
    key: u64,
    price: Price,
    /// Lots resting here, summed over the queue.
    quantity: u64,
    /// Orders in the queue.
    count: u32,
    head: u32,
    tail: u32,
}

/// Price levels over a slab of linked orders.
#[derive(Clone, Debug, Default)]
pub struct LevelBook {
    nodes: Vec<Node>,
    free: Vec<u32>,
    index: SlotIndex,
    bids: Vec<PriceLevel>,
    asks: Vec<PriceLevel>,
    /// The most orders any level has held since the book was last empty.
    level_orders_bound: u32,
    /// Per account id, the slots of its orders, in no particular order.
    account_slots: Vec<Vec<u32>>,
}

fn key_of(side: Side, price: Price) -> u64 {
    match side {
        Side::Buy => price.0,
        Side::Sell => u64::MAX - price.0,
    }
}

/// Where an account's list is kept. Account ids are dense: the ledger numbers accounts
/// from 1, and only an existing account's order reaches a book.
fn account_index(account: AccountId) -> usize {
    usize::try_from(account.0).expect("account ids fit in memory")
}

impl LevelBook {
    /// An empty book with room for `orders` resting orders before it reallocates.
    pub fn with_capacity(orders: usize) -> LevelBook {
        LevelBook {
            nodes: Vec::with_capacity(orders),
            free: Vec::new(),
            index: SlotIndex::default(),
            bids: Vec::new(),
            asks: Vec::new(),
            level_orders_bound: 0,
            account_slots: Vec::new(),
        }
    }

    fn levels_of(&self, side: Side) -> &Vec<PriceLevel> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn levels_of_mut(&mut self, side: Side) -> &mut Vec<PriceLevel> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// The position of the level at `key`, or where it would be inserted.
    fn find_level(levels: &[PriceLevel], key: u64) -> Result<usize, usize> {
        // Most traffic is at the best level, the last one.
        match levels.last() {
            Some(last) if last.key == key => Ok(levels.len() - 1),
            Some(last) if last.key < key => Err(levels.len()),
            _ => levels.binary_search_by_key(&key, |level| level.key),
        }
    }

    /// Adds the order in `slot` to its account's list.
    fn list(&mut self, account: AccountId, slot: u32) {
        let index = account_index(account);
        if self.account_slots.len() <= index {
            self.account_slots.resize_with(index + 1, Vec::new);
        }
        let slots = &mut self.account_slots[index];
        let position = u32::try_from(slots.len()).expect("an account has fewer than 2^32 orders");
        slots.push(slot);
        self.nodes[slot as usize].listed_at = position;
    }

    /// Takes the order in `slot` off its account's list: the list's last slot fills the
    /// gap.
    fn unlist(&mut self, account: AccountId, slot: u32) {
        let slots = &mut self.account_slots[account_index(account)];
        let position = self.nodes[slot as usize].listed_at as usize;
        let removed = slots.swap_remove(position);
        assert_eq!(removed, slot, "an order is listed where it was put");
        if let Some(&moved) = slots.get(position) {
            self.nodes[moved as usize].listed_at = position as u32;
        }
    }

    fn slot(&self, id: OrderId) -> u32 {
        self.index.get(id).expect("the order rests on the book")
    }

    /// Reduces a resting order's remaining lots and its level's total, and returns what
    /// it has left.
    fn take_lots(&mut self, id: OrderId, lots: Quantity, filled: bool) -> Quantity {
        let slot = self.slot(id);
        let order = &mut self.nodes[slot as usize].order;
        assert!(lots <= order.remaining(), "took more than the order offers");
        if filled {
            order.filled = Quantity(order.filled.0 + lots.0);
        } else {
            order.quantity = Quantity(order.quantity.0 - lots.0);
        }
        let remaining = order.remaining();
        let (side, key) = (order.side, key_of(order.side, order.price));
        let levels = self.levels_of_mut(side);
        let position = Self::find_level(levels, key).expect("a resting order has a level");
        levels[position].quantity -= lots.0;
        remaining
    }
    /// Takes the order in `slot` out of its level's queue and the slab; its index entry is
    /// already gone. `position` is its level's position when the caller knows it.
    fn unlink(&mut self, slot: u32, position: Option<usize>) -> RestingOrder {
        let node = &mut self.nodes[slot as usize];
        let (previous, next) = (node.previous, node.next);
        // The slot's stale order stays until the slot is reused: only linked slots are
        // ever read.
        let order = node.order;
        if previous != NIL {
            self.nodes[previous as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].previous = previous;
        }
        self.free.push(slot);
        self.unlist(order.account, slot);

        let levels = self.levels_of_mut(order.side);
        let position = position.unwrap_or_else(|| {
            Self::find_level(levels, key_of(order.side, order.price))
                .expect("a resting order has a level")
        });
        let level = &mut levels[position];
        level.quantity -= order.remaining().0;
        level.count -= 1;
        if level.head == slot {
            level.head = next;
        }
        if level.tail == slot {
            level.tail = previous;
        }
        if level.count == 0 {
            levels.remove(position);
        }
        if self.index.len() == 0 {
            self.level_orders_bound = 0;
        }
        order
    }
}

impl OrderBook for LevelBook {
    fn insert(&mut self, order: RestingOrder) {
        let (side, id, account, price, lots) = (
            order.side,
            order.id,
            order.account,
            order.price,
            order.remaining().0,
        );
        let node = Node {
            order,
            previous: NIL,
            next: NIL,
            listed_at: 0,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot as usize] = node;
                slot
            }
            None => {
                let slot = u32::try_from(self.nodes.len()).expect("fewer than 2^32 orders rest");
                assert!(slot != NIL, "fewer than 2^32 - 1 orders rest");
                self.nodes.push(node);
                slot
            }
        };
        self.index.insert(id, slot);
        self.list(account, slot);

        let key = key_of(side, price);
        let levels = self.levels_of_mut(side);
        let position = match Self::find_level(levels, key) {
            Ok(position) => position,
            Err(position) => {
                levels.insert(
                    position,
                    PriceLevel {
                        key,
                        price,
                        quantity: 0,
                        count: 0,
                        head: NIL,
                        tail: NIL,
                    },
                );
                position
            }
        };
        let level = &mut levels[position];
        let tail = level.tail;
        level.quantity += lots;
        level.count += 1;
        level.tail = slot;
        let count = level.count;
        if tail == NIL {
            level.head = slot;
        } else {
            self.nodes[tail as usize].next = slot;
            self.nodes[slot as usize].previous = tail;
        }
        self.level_orders_bound = self.level_orders_bound.max(count);
    }

    fn remove(&mut self, id: OrderId) -> Option<RestingOrder> {
        let slot = self.index.remove(id)?;
        Some(self.unlink(slot, None))
    }

    fn remove_owned(&mut self, id: OrderId, account: AccountId) -> Option<RestingOrder> {
        let slot = self.index.get(id)?;
        if self.nodes[slot as usize].order.account != account {
            return None;
        }
        self.index.remove(id);
        Some(self.unlink(slot, None))
    }

    fn remove_best(&mut self, side: Side) -> Option<RestingOrder> {
        let position = self.levels_of(side).len().checked_sub(1)?;
        let slot = self.levels_of(side)[position].head;
        let id = self.nodes[slot as usize].order.id;
        self.index.remove(id);
        Some(self.unlink(slot, Some(position)))
    }

    fn get(&self, id: OrderId) -> Option<&RestingOrder> {
        let slot = self.index.get(id)?;
        Some(&self.nodes[slot as usize].order)
    }

    fn orders_of(&self, account: AccountId) -> Vec<OrderId> {
        self.account_slots
            .get(account_index(account))
            .map_or_else(Vec::new, |slots| {
                slots
                    .iter()
                    .map(|&slot| self.nodes[slot as usize].order.id)
                    .collect()
            })
    }

    fn best(&self, side: Side) -> Option<&RestingOrder> {
        let level = self.levels_of(side).last()?;
        Some(&self.nodes[level.head as usize].order)
    }

    fn best_price(&self, side: Side) -> Option<Price> {
        self.levels_of(side).last().map(|level| level.price)
    }

    fn fill(&mut self, id: OrderId, lots: Quantity) -> Quantity {
        self.take_lots(id, lots, true)
    }

    fn fill_best(&mut self, side: Side, lots: Quantity) -> Quantity {
        let levels = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = levels.last_mut().expect("the side has an order");
        level.quantity -= lots.0;
        let order = &mut self.nodes[level.head as usize].order;
        assert!(
            lots <= order.remaining(),
            "filled more than the order offers"
        );
        order.filled = Quantity(order.filled.0 + lots.0);
        order.remaining()
    }

    fn shrink(&mut self, id: OrderId, lots: Quantity) {
        self.take_lots(id, lots, false);
    }

    fn orders_at(&self, side: Side, price: Price) -> usize {
        let levels = self.levels_of(side);
        match Self::find_level(levels, key_of(side, price)) {
            Ok(position) => levels[position].count as usize,
            Err(_) => 0,
        }
    }

    fn levels(&self, side: Side, depth: usize) -> Vec<Level> {
        self.levels_of(side)
            .iter()
            .rev()
            .take(depth)
            .map(|level| Level {
                price: level.price,
                quantity: Quantity(level.quantity),
            })
            .collect()
    }

    fn visit_in_priority(&self, side: Side, visit: &mut dyn FnMut(&RestingOrder) -> bool) {
        for level in self.levels_of(side).iter().rev() {
            let mut slot = level.head;
            while slot != NIL {
                let node = &self.nodes[slot as usize];
                if !visit(&node.order) {
                    return;
                }
                slot = node.next;
            }
        }
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn level_orders_bound(&self) -> usize {
        self.level_orders_bound as usize
    }
}
