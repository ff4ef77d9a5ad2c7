//! The order commands: place, cancel, cancel all and amend, and the matching of an
//! incoming order against the book.
//!
//! Matching is price-time priority at the maker's price. Funds move with every fill: a
//! bid holds its limit price times its quantity in the quote asset, an ask holds its
//! quantity in the base asset, and each fill pays the maker's price out of those holds (a
//! market buy, which holds nothing, pays out of available funds and stops when they run
//! out). A taker filled below its limit gets the difference back at once.

mod amend;
mod fill;
mod place;

use super::book::{OrderBook, RestingOrder};
use super::client_orders::Ended;
use super::sequencer::{resting_hold, Sequencer};
use crate::command::{NewOrder, OrderRef};
use crate::config::MarketGrid;
use crate::error::Reject;
use crate::event::{AcceptedOrder, DoneReason, Event, EventKind, Fill, OrderView, Reply};
use crate::ledger::Settlement;
use crate::types::{
    AccountId, Amount, Asset, Balances, ClientKey, MarketId, OrderId, OrderStatus, OrderTerms,
    OrderType, Price, Quantity, Role, SelfTradePrevention, Side, TimeInForce, TradeId,
};

/// An order while it takes liquidity.
#[derive(Clone, Copy, Debug)]
struct Taker {
    id: OrderId,
    account: AccountId,
    /// What it asks for; self-trade decrements reduce its quantity (the filled part
    /// included).
    terms: OrderTerms,
    filled: u64,
    /// Lots it may still trade: below `quantity - filled` when a market sell is capped by
    /// the caller's divmids.
    tradable: u64,
    /// What it still holds; zero for a market buy.
    hold: Amount,
    /// Whether it has a client order id (kept by the sequencer while it lives).
    has_client_order_id: bool,
    created_seq: u64,
    /// Whether the order already counts among its account's open orders: an amended
    /// order being matched again does.
    tracked: bool,
}

impl Taker {
    fn crosses(&self, maker_price: Price) -> bool {
        match (self.terms.price, self.terms.side) {
            (None, _) => true,
            (Some(limit), Side::Buy) => maker_price <= limit,
            (Some(limit), Side::Sell) => maker_price >= limit,
        }
    }

    /// A market buy pays for each fill out of available funds.
    fn pays_from_available(&self) -> bool {
        self.terms.side == Side::Buy && self.terms.order_type == OrderType::Market
    }

    /// What the buyer's hold set aside for `lots` traded at `notional`: the maker's price
    /// (the notional) when the taker sells to a resting bid, the taker's limit for an
    /// incoming bid, nothing for a market buy, which pays from what is available.
    fn buyer_held(&self, spec: &MarketGrid, lots: u64, notional: Amount) -> Amount {
        match (self.terms.side, self.terms.price) {
            (Side::Sell, _) => notional,
            (Side::Buy, _) if self.pays_from_available() => Amount::ZERO,
            (Side::Buy, limit) => spec.notional(limit.expect("a limit buy has a price"), lots),
        }
    }

    fn view(&self, status: OrderStatus, client_order_id: Option<ClientKey>) -> OrderView {
        OrderView {
            order_id: self.id,
            account: self.account,
            client_order_id,
            terms: self.terms,
            filled: Quantity(self.filled),
            status,
            created_seq: self.created_seq,
        }
    }
}

/// The resting order a taker meets.
#[derive(Clone, Copy, Debug)]
struct Maker {
    id: OrderId,
    account: AccountId,
    price: Price,
    /// Lots it had filled before this fill.
    filled: Quantity,
}

/// Why matching stopped before the taker's quantity ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Nothing more crosses.
    Exhausted,
    /// Self-trade prevention ended the taker.
    SelfTrade,
    /// A market buy's funds ran out.
    Funds,
}

impl<B: OrderBook> Sequencer<B> {
    /// The market's grid, copied out of the configuration.
    pub(super) fn grid(&self, market: MarketId) -> MarketGrid {
        self.grids[usize::from(market.0)]
    }
}
