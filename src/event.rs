//! The sequencer's output language: every state change as an [`Event`] stamped with the
//! next global sequence number, and the [`Reply`] a caller gets.
//!
//! Events carry the balances each movement leaves behind, so every view (balances, open
//! orders, books, trade history, account history) can be rebuilt from the event stream
//! alone, without running the engine. The store journals them; market data and the API
//! read them; none of those reaches into the engine.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ledger::AutoTopUp;
use crate::types::{
    AccountId, Amount, Asset, Balance, Balances, ClientKey, FundingSourceKind, IssuePrice,
    Liquidity, MarketId, OrderId, OrderStatus, OrderTerms, OrderType, Price, Quantity, Role,
    SelfTradePrevention, Side, Tier, TimeInForce, TradeId,
};

/// One state change, with its place in the global order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// One more than the previous event's; never reused.
    pub seq: u64,
    /// The time the command carried, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// What changed.
    pub kind: EventKind,
}

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A new account exists.
    AccountCreated {
        /// Its id.
        account: AccountId,
        /// Its name.
        name: Box<str>,
        /// Its role.
        role: Role,
        /// Its tier.
        tier: Tier,
        /// SHA-256 of its bearer token.
        token_hash: [u8; 32],
    },
    /// The issuer changed a tier's sale price.
    IssuePriceSet {
        /// The tier.
        tier: Tier,
        /// The new price.
        price: IssuePrice,
    },
    /// Divmids entered the system into the treasury (debit: outside, credit: treasury).
    Minted {
        /// Micro-DVM minted.
        amount: Amount,
        /// The issuer's memo.
        memo: Box<str>,
        /// The key that makes it apply once.
        idempotency_key: Box<str>,
        /// The treasury's DVM afterwards.
        treasury_after: Balance,
    },
    /// Dollars entered the system (debit: outside, credit: the account).
    Deposited {
        /// The account credited.
        account: AccountId,
        /// Micro-USD.
        amount: Amount,
        /// The funding source.
        source: FundingSourceKind,
        /// The source's reference.
        source_reference: Box<str>,
        /// The key that makes it apply once.
        idempotency_key: Box<str>,
        /// The account's USD afterwards.
        balance_after: Balance,
    },
    /// Dollars left the system (debit: the account, credit: outside).
    Withdrawn {
        /// The account debited.
        account: AccountId,
        /// Micro-USD.
        amount: Amount,
        /// Where they went.
        destination: Box<str>,
        /// The key that makes it apply once.
        idempotency_key: Box<str>,
        /// The account's USD afterwards.
        balance_after: Balance,
    },
    /// A trader bought divmids from the treasury: USD from the buyer to the treasury, DVM
    /// from the treasury to the buyer.
    DivmidsBought {
        /// The buyer.
        account: AccountId,
        /// Micro-DVM bought.
        quantity: Amount,
        /// The issue price applied.
        price: IssuePrice,
        /// Micro-USD paid, rounded up.
        cost: Amount,
        /// The key that makes it apply once.
        idempotency_key: Box<str>,
        /// The buyer's balances afterwards.
        account_after: Balances,
        /// The treasury's balances afterwards.
        treasury_after: Balances,
    },
    /// A service charged an account: DVM from the account to the issuer's revenue.
    Charged {
        /// The service.
        service: AccountId,
        /// The account charged.
        account: AccountId,
        /// Micro-DVM.
        amount: Amount,
        /// The service's memo.
        memo: Box<str>,
        /// The key that makes it apply once.
        idempotency_key: Box<str>,
        /// The account's DVM afterwards.
        balance_after: Balance,
        /// The revenue account's DVM afterwards.
        revenue_after: Balance,
    },
    /// Before a charge, the charged account's pool was bought back up from the treasury
    /// (its automatic top-up): USD from the holder to the treasury, DVM from the treasury
    /// to the holder. The `Charged` event follows in the same command.
    AutoToppedUp {
        /// The holder.
        account: AccountId,
        /// Micro-DVM bought.
        quantity: Amount,
        /// The issue price applied.
        price: IssuePrice,
        /// Micro-USD paid, rounded up.
        cost: Amount,
        /// Micro-USD the holder's top-ups cost this UTC month, this one included.
        month_spent_usd: Amount,
        /// The holder's balances afterwards.
        account_after: Balances,
        /// The treasury's balances afterwards.
        treasury_after: Balances,
    },
    /// A holder set its automatic top-up.
    AutoTopUpSet {
        /// The holder.
        account: AccountId,
        /// The new settings.
        settings: AutoTopUp,
    },
    /// A holder set (or, with `None`, removed) its daily limit on a service's charges.
    SpendLimitSet {
        /// The holder.
        account: AccountId,
        /// The service.
        service: AccountId,
        /// Micro-DVM per UTC day.
        daily_max: Option<Amount>,
    },
    /// An order was accepted and its funds reserved (available to held).
    OrderAccepted(AcceptedOrder),
    /// A maker and a taker traded. Both sides are settled from held funds (a market buy
    /// pays from available), at the maker's price.
    Fill(Fill),
    /// An order (new, or amended to a new price or a larger quantity) went onto the book
    /// with what was left of it after matching.
    OrderRested {
        /// The order.
        order_id: OrderId,
        /// Its owner.
        account: AccountId,
        /// Its market.
        market: MarketId,
        /// Its side of the book.
        side: Side,
        /// The price level it joined, at the back.
        price: Price,
        /// Lots it offers.
        remaining: Quantity,
    },
    /// An order's quantity was reduced without a trade: by an amendment that keeps its
    /// priority, or by self-trade prevention in decrement mode.
    OrderReduced {
        /// The order.
        order_id: OrderId,
        /// Its owner.
        account: AccountId,
        /// Its market.
        market: MarketId,
        /// Lots taken off its total quantity.
        quantity_removed: Quantity,
        /// Its total quantity afterwards.
        quantity_after: Quantity,
        /// The asset the order holds.
        asset: Asset,
        /// Funds released from held to available.
        released: Amount,
        /// The owner's balance of the held asset afterwards.
        balance_after: Balance,
    },
    /// An order left its place in the book with a new price and/or a larger quantity, to be
    /// matched again as a new order would be (it loses time priority).
    OrderReplaced {
        /// The order.
        order_id: OrderId,
        /// Its owner.
        account: AccountId,
        /// Its market.
        market: MarketId,
        /// The new limit price.
        price: Price,
        /// The new total quantity, filled part included.
        quantity: Quantity,
        /// The asset the order holds.
        asset: Asset,
        /// Funds the order held before.
        hold_before: Amount,
        /// Funds held for the order afterwards (its remaining quantity at its price).
        hold_after: Amount,
        /// The owner's balance of the held asset afterwards.
        balance_after: Balance,
    },
    /// An order ended; what it still held went back to available.
    OrderDone {
        /// The order.
        order_id: OrderId,
        /// Its owner.
        account: AccountId,
        /// Its market.
        market: MarketId,
        /// Filled, canceled, rejected or expired.
        status: OrderStatus,
        /// Why it ended.
        reason: DoneReason,
        /// Its final total quantity, filled part included.
        quantity: Quantity,
        /// Lots it traded.
        filled: Quantity,
        /// The asset the order held.
        asset: Asset,
        /// Funds released from held to available.
        released: Amount,
        /// The owner's balance of the held asset afterwards.
        balance_after: Balance,
    },
    /// An account's bearer token was replaced or revoked.
    TokenChanged {
        /// The account.
        account: AccountId,
        /// Whether it now has no token at all.
        revoked: bool,
    },
    /// Commands from here on are decided under the engine configuration of the
    /// `Configure` command that emitted this (its order sizes and limits).
    EngineConfigured,
}

/// An order as accepted, with the funds reserved for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedOrder {
    /// The exchange's id.
    pub order_id: OrderId,
    /// The owner.
    pub account: AccountId,
    /// What it asks for.
    pub terms: OrderTerms,
    /// The caller's id for it.
    pub client_order_id: Option<ClientKey>,
    /// The asset reserved.
    pub hold_asset: Asset,
    /// Micro-units reserved (zero for a market buy, which pays from available).
    pub hold: Amount,
    /// The owner's balance of `hold_asset` afterwards.
    pub balance_after: Balance,
}

impl AcceptedOrder {
    /// The order's state right after its acceptance (sequence number `seq`).
    pub fn view(&self, seq: u64) -> OrderView {
        OrderView {
            order_id: self.order_id,
            account: self.account,
            client_order_id: self.client_order_id.clone(),
            terms: self.terms,
            filled: Quantity::ZERO,
            status: OrderStatus::Open,
            created_seq: seq,
        }
    }
}

/// One trade between a resting maker and an incoming taker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// The trade's id.
    pub trade_id: TradeId,
    /// The market.
    pub market: MarketId,
    /// The maker's price, in ticks.
    pub price: Price,
    /// Lots traded.
    pub quantity: Quantity,
    /// The taker's side.
    pub taker_side: Side,
    /// The resting order.
    pub maker_order: OrderId,
    /// The maker's account.
    pub maker_account: AccountId,
    /// The incoming order.
    pub taker_order: OrderId,
    /// The taker's account.
    pub taker_account: AccountId,
    /// Micro-USD the taker got back from its hold because the maker's price was better
    /// than its limit.
    pub taker_released: Amount,
    /// Whether the taker (a market buy) paid from available funds rather than a hold.
    pub taker_paid_from_available: bool,
    /// Lots the maker has traded, this fill included.
    pub maker_filled: Quantity,
    /// Lots the taker has traded, this fill included.
    pub taker_filled: Quantity,
    /// The maker's balances afterwards.
    pub maker_after: Balances,
    /// The taker's balances afterwards.
    pub taker_after: Balances,
}

impl Fill {
    /// Whether `order_id` made or took liquidity in this fill, if it is part of it.
    pub fn liquidity_of(&self, order_id: OrderId) -> Option<Liquidity> {
        if order_id == self.maker_order {
            Some(Liquidity::Maker)
        } else if order_id == self.taker_order {
            Some(Liquidity::Taker)
        } else {
            None
        }
    }
}

/// Why an order ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DoneReason {
    /// Its whole quantity traded.
    Filled,
    /// Its owner canceled it (or amended its quantity to what was already filled).
    CanceledByOwner,
    /// An IOC or market order's unfilled rest.
    Unfilled,
    /// Self-trade prevention ended it.
    SelfTrade,
    /// A market buy's funds ran out.
    FundsExhausted,
    /// A fill-or-kill order could not fill entirely.
    FillOrKill,
    /// A post-only order would have taken liquidity.
    PostOnlyWouldTake,
}

/// An order's state as the caller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderView {
    /// The exchange's id.
    pub order_id: OrderId,
    /// The owner.
    pub account: AccountId,
    /// The caller's id for it.
    pub client_order_id: Option<ClientKey>,
    /// What it asks for now (an amendment changes the price or the quantity).
    pub terms: OrderTerms,
    /// Lots traded.
    pub filled: Quantity,
    /// Where it stands.
    pub status: OrderStatus,
    /// The sequence number of its acceptance.
    pub created_seq: u64,
}

/// How an [`OrderView`] is stored: its fields in the order the history and snapshots have
/// always held them (what was filled and the status between two of the terms), so that
/// data directories already written stay readable (`store::journal`'s tests check the
/// bytes).
#[derive(Serialize, Deserialize)]
#[serde(rename = "OrderView")]
struct OrderViewLayout<Text> {
    order_id: OrderId,
    account: AccountId,
    client_order_id: Option<Text>,
    market: MarketId,
    side: Side,
    order_type: OrderType,
    price: Option<Price>,
    quantity: Quantity,
    filled: Quantity,
    status: OrderStatus,
    time_in_force: TimeInForce,
    post_only: bool,
    self_trade_prevention: SelfTradePrevention,
    created_seq: u64,
}

/// An [`OrderView`] borrowed in parts, where its owner and client order id are kept apart
/// from the rest: it encodes to the same bytes as the view.
struct OrderViewParts<'a> {
    /// The exchange's id.
    pub order_id: OrderId,
    /// The owner.
    pub account: AccountId,
    /// The caller's id for it.
    pub client_order_id: Option<&'a str>,
    /// What it asks for now.
    pub terms: &'a OrderTerms,
    /// Lots traded.
    pub filled: Quantity,
    /// Where it stands.
    pub status: OrderStatus,
    /// The sequence number of its acceptance.
    pub created_seq: u64,
}

impl Serialize for OrderView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        OrderViewParts {
            order_id: self.order_id,
            account: self.account,
            client_order_id: self.client_order_id.as_deref(),
            terms: &self.terms,
            filled: self.filled,
            status: self.status,
            created_seq: self.created_seq,
        }
        .serialize(serializer)
    }
}

impl Serialize for OrderViewParts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let OrderTerms {
            market,
            side,
            order_type,
            price,
            quantity,
            time_in_force,
            post_only,
            self_trade_prevention,
        } = *self.terms;
        OrderViewLayout {
            order_id: self.order_id,
            account: self.account,
            client_order_id: self.client_order_id,
            market,
            side,
            order_type,
            price,
            quantity,
            filled: self.filled,
            status: self.status,
            time_in_force,
            post_only,
            self_trade_prevention,
            created_seq: self.created_seq,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for OrderView {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let OrderViewLayout {
            order_id,
            account,
            client_order_id,
            market,
            side,
            order_type,
            price,
            quantity,
            filled,
            status,
            time_in_force,
            post_only,
            self_trade_prevention,
            created_seq,
        } = OrderViewLayout::<ClientKey>::deserialize(deserializer)?;
        let terms = OrderTerms {
            market,
            side,
            order_type,
            price,
            quantity,
            time_in_force,
            post_only,
            self_trade_prevention,
        };
        Ok(OrderView {
            order_id,
            account,
            client_order_id,
            terms,
            filled,
            status,
            created_seq,
        })
    }
}

impl EventKind {
    /// The orders whose state the event changes after their acceptance: a fill's maker
    /// and taker, or the order a reduction, a replacement or an end is about.
    pub fn changed_orders(&self) -> impl Iterator<Item = OrderId> {
        let orders = match self {
            EventKind::Fill(fill) => [Some(fill.maker_order), Some(fill.taker_order)],
            EventKind::OrderReduced { order_id, .. }
            | EventKind::OrderReplaced { order_id, .. }
            | EventKind::OrderDone { order_id, .. } => [Some(*order_id), None],
            _ => [None, None],
        };
        orders.into_iter().flatten()
    }
}

/// The state of order `order_id` after the events of the command that placed it: its
/// acceptance, then its fills, reductions and end among the events that follow. `None`
/// when the events do not accept it.
pub fn placed_order(events: &[Event], order_id: OrderId) -> Option<OrderView> {
    let position = events.iter().position(|event| {
        matches!(&event.kind, EventKind::OrderAccepted(accepted) if accepted.order_id == order_id)
    })?;
    let EventKind::OrderAccepted(accepted) = &events[position].kind else {
        unreachable!("found as an acceptance above");
    };
    let mut view = accepted.view(events[position].seq);
    view.apply_all(&events[position + 1..]);
    Some(view)
}

impl OrderView {
    /// Brings the order's state up to date with an event that concerns it: a fill, a
    /// reduction, a replacement or its end. Other events change nothing.
    pub fn apply(&mut self, kind: &EventKind) {
        match kind {
            EventKind::Fill(fill) => {
                self.filled = if self.order_id == fill.maker_order {
                    fill.maker_filled
                } else {
                    fill.taker_filled
                };
                if !self.status.is_final() {
                    self.status = OrderStatus::PartiallyFilled;
                }
            }
            EventKind::OrderReduced { quantity_after, .. } => self.terms.quantity = *quantity_after,
            EventKind::OrderReplaced {
                price, quantity, ..
            } => {
                self.terms.price = Some(*price);
                self.terms.quantity = *quantity;
            }
            EventKind::OrderDone {
                status,
                quantity,
                filled,
                ..
            } => {
                self.status = *status;
                self.terms.quantity = *quantity;
                self.filled = *filled;
            }
            _ => {}
        }
    }

    /// Brings the order's state up to date with every event among `events` that
    /// concerns it.
    pub fn apply_all(&mut self, events: &[Event]) {
        for event in events {
            if event.kind.changed_orders().any(|id| id == self.order_id) {
                self.apply(&event.kind);
            }
        }
    }

    /// Lots neither filled nor canceled; zero once the order has ended.
    pub fn remaining(&self) -> Quantity {
        if self.status.is_final() {
            Quantity::ZERO
        } else {
            Quantity(self.terms.quantity.0 - self.filled.0)
        }
    }
}

pub use crate::ledger::Supply;

/// What the caller of a command gets back once its events are committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The new account's id.
    AccountCreated {
        /// Its id.
        account: AccountId,
    },
    /// The supply after a mint.
    Minted(Supply),
    /// The issue price was set.
    IssuePriceSet,
    /// A holder's top-up settings or spend limit were set.
    PrepaidSettingsSet,
    /// The buyer's balances after a purchase, and what it cost.
    DivmidsBought {
        /// Micro-USD paid.
        cost: Amount,
        /// The buyer's balances afterwards.
        balances: Balances,
    },
    /// The account's USD after a deposit or withdrawal.
    Funds(Balance),
    /// A charge: its sequence number, which a retry under the same key gets again (the
    /// charged account's balance afterwards is in the `Charged` event).
    Charged {
        /// The sequence number of the `Charged` event.
        seq: u64,
    },
    /// The order after amending or canceling it, or after a retried placement. The
    /// fills it made are the command's `Fill` events.
    Order(OrderView),
    /// How many orders a cancel-all ended.
    CanceledCount(u64),
    /// A new order's id. Its state is rebuilt from the command's events by
    /// [`Reply::order`], off the sequencer's thread.
    Placed(OrderId),
    /// An account's token was replaced or revoked.
    TokenChanged {
        /// The account.
        account: AccountId,
        /// Its role.
        role: Role,
    },
    /// The engine continues under a new configuration.
    Configured,
}

impl Reply {
    /// The order a reply to an order command speaks of: the state it carries, or for a
    /// new order, its state rebuilt from `events`, the command's events.
    pub fn order(&self, events: &[Event]) -> Option<OrderView> {
        match self {
            Reply::Order(view) => Some(view.clone()),
            Reply::Placed(order_id) => placed_order(events, *order_id),
            _ => None,
        }
    }
}
