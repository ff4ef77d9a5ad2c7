//! The exchange's vocabulary: ids, assets, sides, order options and the integer money types.
//!
//! Money never exists here as a decimal or a float. Balances and ledger amounts are
//! [`Amount`]s in micro-units (six decimal places, the precision both assets are held
//! with); order prices are [`Price`]s in ticks and order sizes are [`Quantity`]s in lots of
//! one market. Converting between wire decimals and these integers is the API's job; this
//! module only defines the units and the checked arithmetic between them.

use serde::{Deserialize, Serialize};

use std::fmt;

mod client_key;

pub use client_key::{ClientKey, INLINE_KEY_BYTES};

/// Micro-units in one whole unit of an asset: both assets are held with six decimal places.
pub const MICROS_PER_UNIT: u64 = 1_000_000;

/// Milliseconds in a minute: command timestamps are milliseconds since the Unix epoch.
pub const MINUTE_MS: u64 = 60_000;

/// Milliseconds in an hour.
pub const HOUR_MS: u64 = 60 * MINUTE_MS;

/// Milliseconds in a UTC day (UTC has no leap seconds in Unix time).
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// An account on the ledger. Ids are dense and assigned by the sequencer in creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub u64);

/// An order, numbered by the sequencer in acceptance order across all markets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrderId(pub u64);

/// A trade (one fill between a maker and a taker), numbered in execution order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TradeId(pub u64);

/// A market's index in the configured market list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MarketId(pub u16);

impl fmt::Display for AccountId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

impl fmt::Display for TradeId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

/// The two assets the ledger holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Asset {
    /// Divmids, the platform's prepaid unit.
    #[serde(rename = "DVM")]
    Dvm = 0,
    /// US dollars.
    #[serde(rename = "USD")]
    Usd = 1,
}

impl Asset {
    /// Every asset, in index order.
    pub const ALL: [Asset; 2] = [Asset::Dvm, Asset::Usd];

    /// The asset's position in per-asset arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The asset's symbol, as on the wire.
    pub fn symbol(self) -> &'static str {
        match self {
            Asset::Dvm => "DVM",
            Asset::Usd => "USD",
        }
    }
}

/// An amount of one asset in micro-units (10^-6). Never negative: the ledger refuses any
/// movement that would take a balance below zero.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Amount(pub u64);

impl Amount {
    /// Nothing.
    pub const ZERO: Amount = Amount(0);

    /// The sum, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// The difference, or `None` when `other` is larger.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Amount {
    /// Writes the amount as a decimal with exactly six places, e.g. `12.500000`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}.{:06}",
            self.0 / MICROS_PER_UNIT,
            self.0 % MICROS_PER_UNIT
        )
    }
}

/// An order price in ticks of its market (for DVM-USD one tick is 0.0001 USD per DVM).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Price(pub u64);

/// An order quantity in lots of its market (for DVM-USD one lot is 0.01 DVM).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Quantity(pub u64);

impl Quantity {
    /// No lots.
    pub const ZERO: Quantity = Quantity(0);

    /// Whether this is zero lots.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// The price at which the issuer sells divmids to one tier, in 10^-12 USD per DVM.
///
/// Issue prices may carry more places than USD holds (a sale of 0.000001 DVM at such a
/// price costs a fraction of a micro-dollar), so they get a finer unit than balances; the
/// cost of a sale is rounded up to the micro-dollar, in the house's favour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IssuePrice(pub u64);

impl IssuePrice {
    /// Issue price units in one USD.
    pub const UNITS_PER_USD: u64 = 1_000_000_000_000;
    /// Decimal places an issue price may carry.
    pub const DECIMAL_PLACES: u32 = 12;
}

/// A side of the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    /// Buys the base asset (bids).
    Buy,
    /// Sells the base asset (asks).
    Sell,
}

impl Side {
    /// The other side: the side a taker on this side matches against.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// How an order is priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderType {
    /// Matches at its price or better, and the rest may rest on the book.
    Limit,
    /// Never rests: fills what the book and the caller's funds allow, the rest is canceled.
    /// An optional price caps how far it may walk the book.
    Market,
}

/// How long an order may live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeInForce {
    /// Good till canceled: the unfilled rest of a limit order rests on the book.
    GoodTillCanceled,
    /// Immediate or cancel: what does not fill at once is canceled.
    ImmediateOrCancel,
    /// Fill or kill: fills entirely at once, or changes nothing.
    FillOrKill,
}

/// What happens when a taker would trade with a resting order of its own account. The
/// taker's setting decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SelfTradePrevention {
    /// Cancel the rest of the taker; the resting order stays.
    #[default]
    CancelTaker,
    /// Cancel the resting order and keep matching.
    CancelMaker,
    /// Cancel both.
    CancelBoth,
    /// Reduce both by the smaller remaining quantity, without a trade; whichever reaches
    /// zero ends.
    Decrement,
}

/// What an order asks for: the terms it is placed with, carried unchanged by its
/// acceptance and its view, except that an amendment or a self-trade decrement changes
/// its price or quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTerms {
    /// Which market.
    pub market: MarketId,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// The limit price, required for a limit order; for a market order an optional cap on
    /// how far it may walk the book.
    pub price: Option<Price>,
    /// The quantity in lots, filled part included.
    pub quantity: Quantity,
    /// How long the order lives.
    pub time_in_force: TimeInForce,
    /// Refuse the order whole if it would take liquidity.
    pub post_only: bool,
    /// What to do when the order would trade with a resting order of its own account.
    pub self_trade_prevention: SelfTradePrevention,
}

/// An account's role, which decides the RPCs it may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The operator: mints, sets prices, creates accounts. Owns the treasury.
    Issuer,
    /// An account holder who deposits, buys divmids and trades.
    Trader,
    /// A platform service that charges divmids for usage.
    Service,
}

/// The customer tier, which decides the issuer's sale price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tier {
    /// Anyone.
    Public = 0,
    /// Existing subscribers, at a reduced rate.
    Subscriber = 1,
}

impl Tier {
    /// Every tier, in index order.
    pub const ALL: [Tier; 2] = [Tier::Public, Tier::Subscriber];

    /// The tier's position in per-tier arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where deposited dollars come from. The sequencer only records the kind: the funding
/// source has accepted the reference before the command reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FundingSourceKind {
    /// A payment card.
    Card,
    /// A PayPal account.
    Paypal,
    /// An e-gold account.
    Egold,
}

/// The state of an order, as clients see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Resting on the book, nothing filled yet.
    Open,
    /// Resting on the book with part filled.
    PartiallyFilled,
    /// Entirely filled.
    Filled,
    /// Ended before it filled entirely: by its owner, by time in force, by self-trade
    /// prevention, or because the caller's funds ran out.
    Canceled,
    /// Refused by a matching rule (a post-only order that would have taken liquidity).
    Rejected,
    /// A fill-or-kill order that could not fill entirely at once.
    Expired,
}

impl OrderStatus {
    /// Whether the order can change no more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Canceled
                | OrderStatus::Rejected
                | OrderStatus::Expired
        )
    }
}

/// Whether a fill's order provided liquidity (rested) or took it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Liquidity {
    /// The resting order.
    Maker,
    /// The incoming order.
    Taker,
}

/// An account's holding of one asset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Balance {
    /// Free to spend, withdraw or reserve.
    pub available: Amount,
    /// Reserved by open orders.
    pub held: Amount,
}

impl Balance {
    /// Available plus held.
    pub fn total(&self) -> u128 {
        u128::from(self.available.0) + u128::from(self.held.0)
    }
}

/// An account's holdings of every asset, indexed by [`Asset::index`].
pub type Balances = [Balance; 2];

/// One aggregated price level: its price and the lots resting there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    /// The level's price.
    pub price: Price,
    /// Lots resting at it, summed over its orders.
    pub quantity: Quantity,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_display_with_six_places() {
        assert_eq!(Amount(12_500_000).to_string(), "12.500000");
        assert_eq!(Amount(1).to_string(), "0.000001");
        assert_eq!(Amount::ZERO.to_string(), "0.000000");
    }

    #[test]
    fn amount_arithmetic_is_checked() {
        assert_eq!(Amount(1).checked_sub(Amount(2)), None);
        assert_eq!(Amount(u64::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(5).checked_add(Amount(2)), Some(Amount(7)));
    }

    #[test]
    fn final_statuses_are_the_ended_ones() {
        assert!(!OrderStatus::Open.is_final());
        assert!(!OrderStatus::PartiallyFilled.is_final());
        assert!(OrderStatus::Filled.is_final());
        assert!(OrderStatus::Expired.is_final());
    }
}
