//! What the matcher needs of an order book, and the resting order it stores.
//!
//! The matching rules (price-time priority, time in force, self-trade prevention, funds)
//! live in the sequencer, written once against the [`OrderBook`] trait. Two books
//! implement it: [`LevelBook`](super::LevelBook), the fast one the exchange runs, and
//! [`ReferenceBook`](super::ReferenceBook), a plain vector that is obviously correct. The
//! same tests and random command sequences run through both and must give identical
//! events.

use serde::{Deserialize, Serialize};

use crate::types::{
    AccountId, Level, MarketId, OrderId, OrderTerms, OrderType, Price, Quantity,
    SelfTradePrevention, Side, TimeInForce,
};

/// An order resting on the book. Only a GTC limit order rests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestingOrder {
    /// The exchange's id.
    pub id: OrderId,
    /// The owner.
    pub account: AccountId,
    /// Bid or ask.
    pub side: Side,
    /// Its limit price, where it rests.
    pub price: Price,
    /// Its total quantity, filled part included.
    pub quantity: Quantity,
    /// Lots traded so far.
    pub filled: Quantity,
    /// The sequence number of its acceptance.
    pub created_seq: u64,
    /// Post-only: kept so an amendment to a crossing price can be refused.
    pub post_only: bool,
    /// Its self-trade prevention mode, applied when an amendment makes it a taker.
    pub self_trade_prevention: SelfTradePrevention,
    /// Whether it was placed with a client order id (kept by the sequencer, so that a
    /// resting order is plain data).
    pub has_client_order_id: bool,
}

impl RestingOrder {
    /// Its terms on `market`'s book: a good-till-canceled limit order at its price.
    pub fn terms(&self, market: MarketId) -> OrderTerms {
        OrderTerms {
            market,
            side: self.side,
            order_type: OrderType::Limit,
            price: Some(self.price),
            quantity: self.quantity,
            time_in_force: TimeInForce::GoodTillCanceled,
            post_only: self.post_only,
            self_trade_prevention: self.self_trade_prevention,
        }
    }

    /// Lots still offered.
    pub fn remaining(&self) -> Quantity {
        Quantity(self.quantity.0 - self.filled.0)
    }
}

/// An order book of one market, both sides.
///
/// Priority: on each side, a better price first (higher for bids, lower for asks), then the
/// earlier arrival. An order keeps its place when it is filled or shrunk, and goes to the
/// back of its level when it is removed and inserted again.
pub trait OrderBook: Default {
    /// Puts the order at the back of its price level.
    fn insert(&mut self, order: RestingOrder);

    /// Takes the order off the book.
    fn remove(&mut self, id: OrderId) -> Option<RestingOrder>;

    /// The order, if it rests on the book.
    fn get(&self, id: OrderId) -> Option<&RestingOrder>;

    /// The ids of `account`'s orders on the book, in no particular order.
    fn orders_of(&self, account: AccountId) -> Vec<OrderId>;

    /// The first order in priority on `side`.
    fn best(&self, side: Side) -> Option<&RestingOrder>;

    /// The best price on `side`.
    fn best_price(&self, side: Side) -> Option<Price> {
        self.best(side).map(|order| order.price)
    }

    /// Takes the order off the book if `account` owns it.
    fn remove_owned(&mut self, id: OrderId, account: AccountId) -> Option<RestingOrder> {
        if self.get(id)?.account != account {
            return None;
        }
        self.remove(id)
    }

    /// Takes the first order in priority on `side` off the book.
    fn remove_best(&mut self, side: Side) -> Option<RestingOrder> {
        let id = self.best(side)?.id;
        self.remove(id)
    }

    /// Records `lots` traded by a resting order, which keeps its place, and returns what
    /// it has left. The order must rest and have at least `lots` remaining.
    fn fill(&mut self, id: OrderId, lots: Quantity) -> Quantity;

    /// Records `lots` traded by the first order in priority on `side` and returns what it
    /// has left. That order must have at least `lots` remaining.
    fn fill_best(&mut self, side: Side, lots: Quantity) -> Quantity {
        let id = self.best(side).expect("the side has an order").id;
        self.fill(id, lots)
    }

    /// Takes `lots` off a resting order's total quantity without a trade; it keeps its
    /// place. The order must rest and have at least `lots` remaining.
    fn shrink(&mut self, id: OrderId, lots: Quantity);

    /// How many orders rest at `price` on `side`.
    fn orders_at(&self, side: Side, price: Price) -> usize;

    /// At least as many orders as rest at any one price level: a level can be full only
    /// when this bound reaches the limit, which spares most orders the level look-up.
    fn level_orders_bound(&self) -> usize {
        self.len()
    }

    /// Up to `depth` aggregated levels of `side`, best first.
    fn levels(&self, side: Side, depth: usize) -> Vec<Level>;

    /// Calls `visit` on the orders of `side` in priority order until it returns false.
    fn visit_in_priority(&self, side: Side, visit: &mut dyn FnMut(&RestingOrder) -> bool);

    /// How many orders rest on the book.
    fn len(&self) -> usize;

    /// Whether no order rests on the book.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
