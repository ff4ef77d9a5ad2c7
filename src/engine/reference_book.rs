//! A naive order book that is obviously correct: each side is a vector in arrival order,
//! and every question is answered by scanning it. Too slow to run the exchange on; it
//! exists so that tests can require [`LevelBook`](super::LevelBook) to behave exactly
//! like it.

use super::book::{OrderBook, RestingOrder};
use crate::types::Level;
use crate::types::{AccountId, OrderId, Price, Quantity, Side};

/// Both sides as plain vectors in arrival order.
#[derive(Clone, Debug, Default)]
pub struct ReferenceBook {
    bids: Vec<RestingOrder>,
    asks: Vec<RestingOrder>,
}

impl ReferenceBook {
    fn side(&self, side: Side) -> &Vec<RestingOrder> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn position(&self, id: OrderId) -> Option<(Side, usize)> {
        for side in [Side::Buy, Side::Sell] {
            if let Some(index) = self.side(side).iter().position(|order| order.id == id) {
                return Some((side, index));
            }
        }
        None
    }

    fn order_mut(&mut self, id: OrderId) -> &mut RestingOrder {
        let (side, index) = self.position(id).expect("the order rests on the book");
        match side {
            Side::Buy => &mut self.bids[index],
            Side::Sell => &mut self.asks[index],
        }
    }

    /// Whether `a` comes before `b` on `side`: a better price, or the same price and
    /// earlier in the vector (the vector is in arrival order).
    fn better(side: Side, a: Price, b: Price) -> bool {
        match side {
            Side::Buy => a > b,
            Side::Sell => a < b,
        }
    }

    /// The side's orders sorted by priority.
    fn in_priority(&self, side: Side) -> Vec<&RestingOrder> {
        let mut orders: Vec<&RestingOrder> = self.side(side).iter().collect();
        // A stable sort keeps arrival order within a price.
        orders.sort_by(|a, b| match side {
            Side::Buy => b.price.cmp(&a.price),
            Side::Sell => a.price.cmp(&b.price),
        });
        orders
    }
}

impl OrderBook for ReferenceBook {
    fn insert(&mut self, order: RestingOrder) {
        match order.side {
            Side::Buy => self.bids.push(order),
            Side::Sell => self.asks.push(order),
        }
    }

    fn remove(&mut self, id: OrderId) -> Option<RestingOrder> {
        let (side, index) = self.position(id)?;
        Some(match side {
            Side::Buy => self.bids.remove(index),
            Side::Sell => self.asks.remove(index),
        })
    }

    fn get(&self, id: OrderId) -> Option<&RestingOrder> {
        let (side, index) = self.position(id)?;
        Some(&self.side(side)[index])
    }

    fn orders_of(&self, account: AccountId) -> Vec<OrderId> {
        self.bids
            .iter()
            .chain(&self.asks)
            .filter(|order| order.account == account)
            .map(|order| order.id)
            .collect()
    }

    fn best(&self, side: Side) -> Option<&RestingOrder> {
        let mut best: Option<&RestingOrder> = None;
        for order in self.side(side) {
            match best {
                Some(current) if !Self::better(side, order.price, current.price) => {}
                _ => best = Some(order),
            }
        }
        best
    }

    fn fill(&mut self, id: OrderId, lots: Quantity) -> Quantity {
        let order = self.order_mut(id);
        assert!(
            lots <= order.remaining(),
            "filled more than the order offers"
        );
        order.filled = Quantity(order.filled.0 + lots.0);
        order.remaining()
    }

    fn shrink(&mut self, id: OrderId, lots: Quantity) {
        let order = self.order_mut(id);
        assert!(
            lots <= order.remaining(),
            "shrunk more than the order offers"
        );
        order.quantity = Quantity(order.quantity.0 - lots.0);
    }

    fn orders_at(&self, side: Side, price: Price) -> usize {
        self.side(side).iter().filter(|o| o.price == price).count()
    }

    fn levels(&self, side: Side, depth: usize) -> Vec<Level> {
        let mut levels: Vec<Level> = Vec::new();
        for order in self.in_priority(side) {
            match levels.last_mut() {
                Some(level) if level.price == order.price => {
                    level.quantity = Quantity(level.quantity.0 + order.remaining().0);
                }
                _ => levels.push(Level {
                    price: order.price,
                    quantity: order.remaining(),
                }),
            }
        }
        levels.truncate(depth);
        levels
    }

    fn visit_in_priority(&self, side: Side, visit: &mut dyn FnMut(&RestingOrder) -> bool) {
        for order in self.in_priority(side) {
            if !visit(order) {
                return;
            }
        }
    }

    fn len(&self) -> usize {
        self.bids.len() + self.asks.len()
    }
}
