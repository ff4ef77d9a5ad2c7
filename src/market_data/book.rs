//! A replica of each market's aggregated book, kept from committed events alone, and the
//! top-of-book checksum clients verify their copies with.
//!
//! It knows each resting order's side, price and remaining lots (from `OrderRested`), so
//! fills, reductions, replacements and ends change the right level by the right amount.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::event::{Event, EventKind};
use crate::types::Level;
use crate::types::{MarketId, OrderId, Price, Quantity, Side};

/// Levels in each checksum, per side.
pub const CHECKSUM_LEVELS: usize = 10;

#[derive(Clone, Copy, Debug)]
struct Resting {
    market: MarketId,
    side: Side,
    price: Price,
    remaining: u64,
}

#[derive(Clone, Debug, Default)]
struct MarketLevels {
    bids: BTreeMap<Price, u64>,
    asks: BTreeMap<Price, u64>,
}

/// The top levels of every book at one sequence number, as a replica publishes them.
#[derive(Clone, Debug, Default)]
pub struct BookView {
    /// The exchange's sequence number the view reflects.
    pub seq: u64,
    /// Per market: bids (highest first) and asks (lowest first).
    pub markets: Vec<(Vec<Level>, Vec<Level>)>,
}

/// Every market's aggregated levels, from events.
#[derive(Clone, Debug)]
pub struct BookReplica {
    markets: Vec<MarketLevels>,
    /// Hashed as the engine hashes its order ids: the exchange assigns them, so nobody
    /// outside can choose ids that collide, and SipHash's defence costs every event.
    orders: FxHashMap<OrderId, Resting>,
    applied_seq: u64,
}

impl BookReplica {
    /// A replica of `markets` empty books at sequence number `seq`.
    pub fn new(markets: usize, seq: u64) -> BookReplica {
        BookReplica {
            markets: vec![MarketLevels::default(); markets],
            orders: FxHashMap::default(),
            applied_seq: seq,
        }
    }

    /// Adds a resting order (seeding the replica from the engine's book).
    pub fn seed(
        &mut self,
        market: MarketId,
        order_id: OrderId,
        side: Side,
        price: Price,
        remaining: Quantity,
    ) {
        self.add(
            order_id,
            Resting {
                market,
                side,
                price,
                remaining: remaining.0,
            },
        );
    }

    /// The sequence number of the last event applied.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// Applies a committed event; those at or before the last applied are ignored.
    pub fn apply(&mut self, event: &Event) {
        if event.seq <= self.applied_seq {
            return;
        }
        self.applied_seq = event.seq;
        match &event.kind {
            EventKind::OrderRested {
                order_id,
                market,
                side,
                price,
                remaining,
                ..
            } => self.add(
                *order_id,
                Resting {
                    market: *market,
                    side: *side,
                    price: *price,
                    remaining: remaining.0,
                },
            ),
            EventKind::Fill(fill) => self.take(fill.maker_order, fill.quantity.0),
            EventKind::OrderReduced {
                order_id,
                quantity_removed,
                ..
            } => self.take(*order_id, quantity_removed.0),
            EventKind::OrderReplaced { order_id, .. } | EventKind::OrderDone { order_id, .. } => {
                if let Some(order) = self.orders.get(order_id).copied() {
                    self.take(*order_id, order.remaining);
                }
            }
            _ => {}
        }
    }

    fn add(&mut self, order_id: OrderId, order: Resting) {
        if let Some(book) = self.markets.get_mut(usize::from(order.market.0)) {
            *side_of(book, order.side).entry(order.price).or_default() += order.remaining;
            self.orders.insert(order_id, order);
        }
    }

    /// Takes lots off a resting order and its level; an order with none left is gone.
    fn take(&mut self, order_id: OrderId, lots: u64) {
        let Some(order) = self.orders.get_mut(&order_id) else {
            return;
        };
        let lots = lots.min(order.remaining);
        order.remaining -= lots;
        let order = *order;
        if order.remaining == 0 {
            self.orders.remove(&order_id);
        }
        let Some(book) = self.markets.get_mut(usize::from(order.market.0)) else {
            return;
        };
        let levels = side_of(book, order.side);
        if let Some(quantity) = levels.get_mut(&order.price) {
            *quantity -= lots.min(*quantity);
            if *quantity == 0 {
                levels.remove(&order.price);
            }
        }
    }

    /// Up to `depth` levels of one side, best first.
    pub fn levels(&self, market: MarketId, side: Side, depth: usize) -> Vec<Level> {
        let Some(book) = self.markets.get(usize::from(market.0)) else {
            return Vec::new();
        };
        let level = |(price, quantity): (&Price, &u64)| Level {
            price: *price,
            quantity: Quantity(*quantity),
        };
        match side {
            Side::Buy => book.bids.iter().rev().take(depth).map(level).collect(),
            Side::Sell => book.asks.iter().take(depth).map(level).collect(),
        }
    }
}

fn side_of(book: &mut MarketLevels, side: Side) -> &mut BTreeMap<Price, u64> {
    match side {
        Side::Buy => &mut book.bids,
        Side::Sell => &mut book.asks,
    }
}

/// The top-of-book checksum, as Kraken's book checksum v2: CRC32 (IEEE) over the top ten
/// asks (lowest first) then the top ten bids (highest first), each level's price and
/// quantity written with the market's decimals, the `.` removed and leading zeros stripped,
/// all concatenated. `price` and `quantity` write a level's values with those decimals.
pub fn checksum(
    asks: &[Level],
    bids: &[Level],
    price: impl Fn(Price) -> String,
    quantity: impl Fn(Quantity) -> String,
) -> u32 {
    let written = |level: &Level| (price(level.price), quantity(level.quantity));
    checksum_of_written(
        asks.iter().take(CHECKSUM_LEVELS).map(written),
        bids.iter().take(CHECKSUM_LEVELS).map(written),
    )
}

/// The same checksum over levels already written as the wire writes them (price and
/// quantity with the market's decimals), best first on each side: what a client computes
/// from the strings it received.
pub fn checksum_of_written<S: AsRef<str>>(
    asks: impl IntoIterator<Item = (S, S)>,
    bids: impl IntoIterator<Item = (S, S)>,
) -> u32 {
    let mut text = String::new();
    let mut push = |written: &str| {
        let digits: String = written.chars().filter(|c| *c != '.').collect();
        text.push_str(digits.trim_start_matches('0'));
    };
    for (price, quantity) in asks
        .into_iter()
        .take(CHECKSUM_LEVELS)
        .chain(bids.into_iter().take(CHECKSUM_LEVELS))
    {
        push(price.as_ref());
        push(quantity.as_ref());
    }
    crc32fast::hash(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_follows_krakens_layout() {
        // CRC32 (IEEE): the standard check value.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        let asks = [Level {
            price: Price(5_000),
            quantity: Quantity(150),
        }];
        let bids = [Level {
            price: Price(4_900),
            quantity: Quantity(1),
        }];
        let price = |price: Price| format!("0.{:04}", price.0);
        let quantity = |quantity: Quantity| format!("{}.{:02}", quantity.0 / 100, quantity.0 % 100);
        // "0.5000" "1.50", then "0.4900" "0.01": "5000" "150" "4900" "1".
        assert_eq!(
            checksum(&asks, &bids, price, quantity),
            crc32fast::hash(b"500015049001")
        );
    }
}
