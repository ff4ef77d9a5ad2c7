//! The order commands: place, cancel, cancel all and amend, and the matching of an
//! incoming order against the book.
//!
//! Matching is price-time priority at the maker's price. Funds move with every fill: a
//! bid holds its limit price times its quantity in the quote asset, an ask holds its
//! quantity in the base asset, and each fill pays the maker's price out of those holds (a
//! market buy, which holds nothing, pays out of available funds and stops when they run
//! out). A taker filled below its limit gets the difference back at once.

use super::book::{OrderBook, RestingOrder};
use super::sequencer::{resting_hold, ClientOrder, Sequencer};
use crate::command::{NewOrder, OrderRef};
use crate::config::MarketGrid;
use crate::error::Reject;
use crate::event::{AcceptedOrder, DoneReason, Event, EventKind, Fill, OrderView, Reply};
use crate::ledger::Settlement;
use crate::types::{
    AccountId, Amount, Asset, Balances, MarketId, OrderId, OrderStatus, OrderType, Price, Quantity,
    Role, SelfTradePrevention, Side, TimeInForce, TradeId,
};

/// An order while it takes liquidity.
#[derive(Clone, Copy, Debug)]
struct Taker {
    id: OrderId,
    account: AccountId,
    market: MarketId,
    side: Side,
    order_type: OrderType,
    time_in_force: TimeInForce,
    /// Limit price, or a market order's cap.
    price: Option<Price>,
    /// Total lots, filled part included; self-trade decrements reduce it.
    quantity: u64,
    filled: u64,
    /// Lots it may still trade: below `quantity - filled` when a market sell is capped by
    /// the caller's divmids.
    tradable: u64,
    /// What it still holds; zero for a market buy.
    hold: Amount,
    post_only: bool,
    self_trade_prevention: SelfTradePrevention,
    /// Whether it has a client order id (kept by the sequencer while it lives).
    has_client_order_id: bool,
    created_seq: u64,
    /// Whether the order already counts among its account's open orders: an amended
    /// order being matched again does.
    tracked: bool,
}

impl Taker {
    fn crosses(&self, maker_price: Price) -> bool {
        match (self.price, self.side) {
            (None, _) => true,
            (Some(limit), Side::Buy) => maker_price <= limit,
            (Some(limit), Side::Sell) => maker_price >= limit,
        }
    }

    /// A market buy pays for each fill out of available funds.
    fn pays_from_available(&self) -> bool {
        self.side == Side::Buy && self.order_type == OrderType::Market
    }

    fn view(&self, status: OrderStatus, client_order_id: Option<Box<str>>) -> OrderView {
        OrderView {
            order_id: self.id,
            account: self.account,
            client_order_id,
            market: self.market,
            side: self.side,
            order_type: self.order_type,
            price: self.price,
            quantity: Quantity(self.quantity),
            filled: Quantity(self.filled),
            status,
            time_in_force: self.time_in_force,
            post_only: self.post_only,
            self_trade_prevention: self.self_trade_prevention,
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
    fn grid(&self, market: MarketId) -> MarketGrid {
        self.grids[usize::from(market.0)]
    }

    pub(super) fn place_order(
        &mut self,
        order: &NewOrder,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        if let Some(reply) = self.client_order_retry(order)? {
            return Ok(reply);
        }
        self.validate_new_order(order)?;
        let spec = self.grid(order.market);
        let (hold_asset, hold, tradable) = self.funds_for(&spec, order)?;
        let mut taker = Taker {
            id: OrderId(self.next_order_id),
            account: order.account,
            market: order.market,
            side: order.side,
            order_type: order.order_type,
            time_in_force: order.time_in_force,
            price: order.price,
            quantity: order.quantity.0,
            filled: 0,
            tradable,
            hold,
            post_only: order.post_only,
            self_trade_prevention: order.self_trade_prevention,
            has_client_order_id: order.client_order_id.is_some(),
            created_seq: self.next_seq,
            tracked: false,
        };
        self.next_order_id += 1;
        self.record_client_order(order, taker.id);

        let refusal = if order.post_only && self.would_take(&taker) {
            Some((OrderStatus::Rejected, DoneReason::PostOnlyWouldTake))
        } else if order.time_in_force == TimeInForce::FillOrKill && !self.can_fill_entirely(&taker)
        {
            Some((OrderStatus::Expired, DoneReason::FillOrKill))
        } else {
            None
        };
        if let Some((status, reason)) = refusal {
            // Recorded, so the caller can look it up and a retry returns it, but nothing
            // is held or traded.
            taker.hold = Amount::ZERO;
            self.emit_accepted(&taker, hold_asset, events);
            self.end_taker(&mut taker, status, reason, events);
            self.placement_done(&taker, status);
            return Ok(Reply::Placed(taker.id));
        }

        let balance_after = self
            .ledger
            .hold(taker.account, hold_asset, hold, "quantity")
            .expect("the funds were checked");
        let accepted = self.accepted(&taker, hold_asset, balance_after);
        self.emit(events, || EventKind::OrderAccepted(accepted));
        let status = self.take_liquidity(&mut taker, events);
        self.placement_done(&taker, status);
        // The caller rebuilds the order's state from the events (`Reply::order`), which
        // spares this thread building a view per order.
        Ok(Reply::Placed(taker.id))
    }

    /// Keeps the order's client order id (if it has one) while it lives and, once it has
    /// ended, for the retention window; a new id is counted against the account's limit.
    fn record_client_order(&mut self, order: &NewOrder, order_id: OrderId) {
        let Some(client_order_id) = &order.client_order_id else {
            return;
        };
        let entry = ClientOrder {
            placed: order.clone(),
            order_id,
            ended: None,
            expires_ms: None,
        };
        let replaced = self
            .client_orders
            .insert((order.account, client_order_id.clone()), entry);
        if replaced.is_none() {
            self.count_client_order(order.account, true);
        }
        self.live_client_order_ids
            .insert(order_id, client_order_id.clone());
    }

    /// A retry of an order placed with the same client order id returns that order and
    /// places nothing; reusing the id of a live order with other parameters is refused.
    fn client_order_retry(&self, order: &NewOrder) -> Result<Option<Reply>, Reject> {
        let Some(client_order_id) = &order.client_order_id else {
            return Ok(None);
        };
        self.check_text(
            "client_order_id",
            client_order_id,
            self.config.limits.key_length_max,
            true,
        )?;
        let known = self
            .client_orders
            .get(&(order.account, client_order_id.clone()));
        let Some(existing) =
            known.filter(|existing| existing.expires_ms.is_none_or(|at| at > self.now_ms()))
        else {
            // New (counted against the limit), or ended longer ago than retention keeps
            // (its entry is then replaced, and counted already).
            let held = self.client_order_counts.get(&order.account).copied();
            let limit = self.config.limits.client_order_ids_per_account_max;
            if known.is_none() && held.unwrap_or(0) >= limit {
                return Err(Reject::LimitExceeded {
                    field: "client_order_ids_per_account_max",
                    limit: u64::from(limit),
                });
            }
            return Ok(None);
        };
        let current = match &existing.ended {
            Some(view) => view.clone(),
            None => self
                .open_order_in(existing.placed.market, existing.order_id)
                .expect("a live client order rests on its book"),
        };
        if existing.placed == *order {
            return Ok(Some(Reply::Order(current)));
        }
        if existing.ended.is_none() {
            return Err(Reject::AlreadyExists {
                field: "client_order_id",
            });
        }
        Ok(None)
    }

    pub(super) fn open_order_in(&self, market: MarketId, order_id: OrderId) -> Option<OrderView> {
        let order = self.books[usize::from(market.0)].get(order_id)?;
        Some(self.resting_view(market, order))
    }

    fn validate_new_order(&self, order: &NewOrder) -> Result<(), Reject> {
        self.ledger
            .require(order.account, Role::Trader, "account_id")?;
        let spec = self
            .grids
            .get(usize::from(order.market.0))
            .ok_or(Reject::NotFound { field: "market" })?;
        check_quantity(spec, order.quantity)?;
        match (order.order_type, order.price) {
            (OrderType::Limit, None) => {
                return Err(Reject::invalid("price", "is required for a limit order"));
            }
            (OrderType::Market, _) if order.post_only => {
                return Err(Reject::invalid(
                    "post_only",
                    "a market order always takes liquidity",
                ));
            }
            _ => {}
        }
        if let Some(price) = order.price {
            check_price(spec, price, order.quantity)?;
        }
        let rests = order.order_type == OrderType::Limit
            && order.time_in_force == TimeInForce::GoodTillCanceled;
        if rests {
            let price = order.price.expect("a limit order has a price");
            self.check_room(order.account, order.market, order.side, price)?;
        }
        Ok(())
    }

    /// Refuses an order that could rest where the account or the price level is full.
    fn check_room(
        &self,
        account: AccountId,
        market: MarketId,
        side: Side,
        price: Price,
    ) -> Result<(), Reject> {
        let limits = &self.config.limits;
        if self.open_count(account) >= limits.open_orders_per_account_max {
            return Err(Reject::LimitExceeded {
                field: "open_orders_per_account_max",
                limit: u64::from(limits.open_orders_per_account_max),
            });
        }
        let book = &self.books[usize::from(market.0)];
        let level_max = limits.orders_per_level_max as usize;
        if book.level_orders_bound() >= level_max && book.orders_at(side, price) >= level_max {
            return Err(Reject::LimitExceeded {
                field: "orders_per_level_max",
                limit: u64::from(limits.orders_per_level_max),
            });
        }
        Ok(())
    }

    /// What the order must hold, and how many lots it may trade. A limit buy holds its
    /// price times its quantity; a sell holds its quantity; a market buy holds nothing and
    /// a market sell is capped by the caller's divmids.
    fn funds_for(
        &self,
        spec: &MarketGrid,
        order: &NewOrder,
    ) -> Result<(Asset, Amount, u64), Reject> {
        let quantity = order.quantity.0;
        match (order.side, order.order_type) {
            (Side::Buy, OrderType::Limit) => {
                let price = order.price.expect("a limit order has a price");
                let hold = spec.notional(price, quantity);
                self.require_available(order.account, spec.quote, hold)?;
                Ok((spec.quote, hold, quantity))
            }
            (Side::Buy, OrderType::Market) => {
                let available = self.ledger.balance(order.account, spec.quote).available;
                let book = &self.books[usize::from(order.market.0)];
                // The cheapest lot on the book (or one micro-unit on an empty book) is the
                // least a market buy must be able to pay.
                let lot_price = book
                    .best_price(Side::Sell)
                    .map_or(1, |price| spec.notional(price, 1).0);
                if available.0 < lot_price {
                    return Err(Reject::InsufficientFunds {
                        field: "quantity",
                        asset: spec.quote,
                        needed: lot_price,
                        available: available.0,
                    });
                }
                Ok((spec.quote, Amount::ZERO, quantity))
            }
            (Side::Sell, order_type) => {
                let available = self.ledger.balance(order.account, spec.base).available.0;
                let affordable = available / spec.lot_micros;
                let tradable = match order_type {
                    OrderType::Market if affordable > 0 => quantity.min(affordable),
                    _ => quantity,
                };
                let hold = spec.base_amount(tradable);
                self.require_available(order.account, spec.base, hold)?;
                Ok((spec.base, hold, tradable))
            }
        }
    }

    fn require_available(
        &self,
        account: AccountId,
        asset: Asset,
        amount: Amount,
    ) -> Result<(), Reject> {
        let available = self.ledger.balance(account, asset).available;
        if available < amount {
            return Err(Reject::InsufficientFunds {
                field: "quantity",
                asset,
                needed: amount.0,
                available: available.0,
            });
        }
        Ok(())
    }

    /// Whether the order would trade at once if it were placed.
    fn would_take(&self, taker: &Taker) -> bool {
        let book = &self.books[usize::from(taker.market.0)];
        book.best_price(taker.side.opposite())
            .is_some_and(|price| taker.crosses(price))
    }

    /// Whether the order can trade its whole quantity at once, walking the book as
    /// matching would: a resting order of the caller's own is skipped when self-trade
    /// prevention would cancel it, and ends the walk otherwise.
    fn can_fill_entirely(&self, taker: &Taker) -> bool {
        let spec = self.grid(taker.market);
        let per_tick_lot = spec.quote_micros_per_tick_lot;
        let mut budget = if taker.pays_from_available() {
            Some(self.ledger.balance(taker.account, spec.quote).available.0)
        } else {
            None
        };
        let mut fillable = 0;
        let needed = taker.quantity;
        let book = &self.books[usize::from(taker.market.0)];
        book.visit_in_priority(taker.side.opposite(), &mut |maker| {
            if !taker.crosses(maker.price) {
                return false;
            }
            if maker.account == taker.account {
                return taker.self_trade_prevention == SelfTradePrevention::CancelMaker;
            }
            let mut lots = (needed - fillable).min(maker.remaining().0);
            if let Some(funds) = budget.as_mut() {
                let lot_price = maker.price.0 * per_tick_lot;
                lots = lots.min(*funds / lot_price);
                *funds -= lots * lot_price;
            }
            fillable += lots;
            lots > 0 && fillable < needed
        });
        fillable >= needed && taker.tradable >= needed
    }

    /// Matches the taker against the book, then rests what is left of a GTC limit order
    /// or ends it.
    fn take_liquidity(&mut self, taker: &mut Taker, events: &mut Vec<Event>) -> OrderStatus {
        let stop = self.match_taker(taker, events);
        let remaining = taker.quantity - taker.filled;
        if remaining == 0 {
            let status = if taker.filled > 0 {
                OrderStatus::Filled
            } else {
                OrderStatus::Canceled
            };
            let reason = if taker.filled > 0 {
                DoneReason::Filled
            } else {
                DoneReason::SelfTrade
            };
            self.end_taker(taker, status, reason, events);
            return status;
        }
        let rests = stop == Stop::Exhausted
            && taker.order_type == OrderType::Limit
            && taker.time_in_force == TimeInForce::GoodTillCanceled;
        if rests {
            return self.rest(taker, events);
        }
        let reason = match stop {
            Stop::Exhausted => DoneReason::Unfilled,
            Stop::SelfTrade => DoneReason::SelfTrade,
            Stop::Funds => DoneReason::FundsExhausted,
        };
        self.end_taker(taker, OrderStatus::Canceled, reason, events);
        OrderStatus::Canceled
    }

    fn match_taker(&mut self, taker: &mut Taker, events: &mut Vec<Event>) -> Stop {
        let market = usize::from(taker.market.0);
        let maker_side = taker.side.opposite();
        while taker.tradable > taker.filled {
            let Some(maker) = self.books[market].best(maker_side) else {
                return Stop::Exhausted;
            };
            if !taker.crosses(maker.price) {
                return Stop::Exhausted;
            }
            let (maker_id, maker_account, maker_price, maker_remaining, maker_filled) = (
                maker.id,
                maker.account,
                maker.price,
                maker.remaining().0,
                maker.filled,
            );
            if maker_account == taker.account {
                match taker.self_trade_prevention {
                    SelfTradePrevention::CancelTaker => return Stop::SelfTrade,
                    SelfTradePrevention::CancelMaker => {
                        self.end_best(
                            taker.market,
                            maker_side,
                            OrderStatus::Canceled,
                            DoneReason::SelfTrade,
                            events,
                        );
                        continue;
                    }
                    SelfTradePrevention::CancelBoth => {
                        self.end_best(
                            taker.market,
                            maker_side,
                            OrderStatus::Canceled,
                            DoneReason::SelfTrade,
                            events,
                        );
                        return Stop::SelfTrade;
                    }
                    SelfTradePrevention::Decrement => {
                        self.decrement(taker, maker_id, maker_remaining, events);
                        continue;
                    }
                }
            }
            let mut lots = (taker.tradable - taker.filled).min(maker_remaining);
            if taker.pays_from_available() {
                let spec = self.grid(taker.market);
                let lot_price = maker_price.0 * spec.quote_micros_per_tick_lot;
                let available = self.ledger.balance(taker.account, spec.quote).available.0;
                lots = lots.min(available / lot_price);
                if lots == 0 {
                    return Stop::Funds;
                }
            }
            let maker = Maker {
                id: maker_id,
                account: maker_account,
                price: maker_price,
                filled: maker_filled,
            };
            self.execute_fill(taker, maker, lots, events);
        }
        if taker.tradable < taker.quantity {
            // A market sell capped by the caller's divmids traded all it could.
            return Stop::Funds;
        }
        Stop::Exhausted
    }

    /// Trades `lots` between the taker and the maker at the maker's price and settles
    /// both sides.
    fn execute_fill(
        &mut self,
        taker: &mut Taker,
        maker: Maker,
        lots: u64,
        events: &mut Vec<Event>,
    ) {
        let Maker {
            id: maker_id,
            account: maker_account,
            price,
            filled: maker_filled,
        } = maker;
        let (taker_after, maker_after, taker_released) =
            self.settle_fill(taker, maker_account, price, lots);
        taker.filled += lots;
        let maker_side = taker.side.opposite();
        let maker_done = self.books[usize::from(taker.market.0)]
            .fill_best(maker_side, Quantity(lots))
            .is_zero();
        let fill = Fill {
            trade_id: TradeId(self.next_trade_id),
            market: taker.market,
            price,
            quantity: Quantity(lots),
            taker_side: taker.side,
            maker_order: maker_id,
            maker_account,
            taker_order: taker.id,
            taker_account: taker.account,
            taker_released,
            taker_paid_from_available: taker.pays_from_available(),
            maker_filled: Quantity(maker_filled.0 + lots),
            taker_filled: Quantity(taker.filled),
            maker_after,
            taker_after,
        };
        self.next_trade_id += 1;
        self.emit(events, || EventKind::Fill(fill));
        if maker_done {
            self.end_best(
                taker.market,
                maker_side,
                OrderStatus::Filled,
                DoneReason::Filled,
                events,
            );
        }
    }

    /// Moves the money and the divmids of `lots` traded at `price` between the taker and
    /// the maker's account, and takes what the taker's hold set aside for them; returns
    /// the taker's and the maker's balances after, and what the taker's hold released.
    fn settle_fill(
        &mut self,
        taker: &mut Taker,
        maker_account: AccountId,
        price: Price,
        lots: u64,
    ) -> (Balances, Balances, Amount) {
        let spec = self.grid(taker.market);
        let notional = spec.notional(price, lots);
        let delivered = spec.base_amount(lots);
        let (buyer, seller) = match taker.side {
            Side::Buy => (taker.account, maker_account),
            Side::Sell => (maker_account, taker.account),
        };
        let buyer_held = taker.buyer_held(&spec, lots, notional);
        let (buyer_after, seller_after) = self.ledger.settle_trade(&Settlement {
            buyer,
            seller,
            base: spec.base,
            quote: spec.quote,
            delivered,
            paid: notional,
            buyer_held,
        });
        match taker.side {
            Side::Buy => {
                taker.hold = Amount(taker.hold.0 - buyer_held.0);
                let released = Amount(buyer_held.0.saturating_sub(notional.0));
                (buyer_after, seller_after, released)
            }
            Side::Sell => {
                taker.hold = Amount(taker.hold.0 - delivered.0);
                (seller_after, buyer_after, Amount::ZERO)
            }
        }
    }

    /// Self-trade prevention by decrement: both orders lose the smaller remaining
    /// quantity without a trade.
    fn decrement(
        &mut self,
        taker: &mut Taker,
        maker_id: OrderId,
        maker_remaining: u64,
        events: &mut Vec<Event>,
    ) {
        let lots = (taker.tradable - taker.filled).min(maker_remaining);
        let spec = self.grid(taker.market);
        // The maker gives up `lots` and what it held for them.
        let maker = self.books[usize::from(taker.market.0)]
            .get(maker_id)
            .expect("the maker rests");
        let (maker_asset, maker_released) = match maker.side {
            Side::Buy => (spec.quote, spec.notional(maker.price, lots)),
            Side::Sell => (spec.base, spec.base_amount(lots)),
        };
        let maker_account = maker.account;
        let maker_quantity_after = Quantity(maker.quantity.0 - lots);
        self.books[usize::from(taker.market.0)].shrink(maker_id, Quantity(lots));
        let balance_after = self
            .ledger
            .release(maker_account, maker_asset, maker_released);
        self.emit(events, || EventKind::OrderReduced {
            order_id: maker_id,
            account: maker_account,
            market: taker.market,
            quantity_removed: Quantity(lots),
            quantity_after: maker_quantity_after,
            asset: maker_asset,
            released: maker_released,
            balance_after,
        });
        if maker_remaining == lots {
            self.end_best(
                taker.market,
                taker.side.opposite(),
                OrderStatus::Canceled,
                DoneReason::SelfTrade,
                events,
            );
        }
        // The taker too.
        let (taker_asset, taker_released) = match taker.side {
            Side::Buy if taker.pays_from_available() => (spec.quote, Amount::ZERO),
            Side::Buy => {
                let limit = taker.price.expect("a limit buy has a price");
                (spec.quote, spec.notional(limit, lots))
            }
            Side::Sell => (spec.base, spec.base_amount(lots)),
        };
        taker.quantity -= lots;
        taker.tradable -= lots;
        taker.hold = Amount(taker.hold.0 - taker_released.0);
        let balance_after = self
            .ledger
            .release(taker.account, taker_asset, taker_released);
        self.emit(events, || EventKind::OrderReduced {
            order_id: taker.id,
            account: taker.account,
            market: taker.market,
            quantity_removed: Quantity(lots),
            quantity_after: Quantity(taker.quantity),
            asset: taker_asset,
            released: taker_released,
            balance_after,
        });
    }

    /// Puts what is left of a GTC limit taker on the book. What it still holds is exactly
    /// what a resting order of its price and remaining quantity holds.
    fn rest(&mut self, taker: &Taker, events: &mut Vec<Event>) -> OrderStatus {
        let resting = RestingOrder {
            id: taker.id,
            account: taker.account,
            side: taker.side,
            price: taker.price.expect("a limit order has a price"),
            quantity: Quantity(taker.quantity),
            filled: Quantity(taker.filled),
            created_seq: taker.created_seq,
            post_only: taker.post_only,
            self_trade_prevention: taker.self_trade_prevention,
            has_client_order_id: taker.has_client_order_id,
        };
        assert_eq!(
            resting_hold(&self.grid(taker.market), &resting).1,
            taker.hold,
            "a resting order must hold exactly its price times its remaining quantity"
        );
        if !taker.tracked {
            self.track(taker.account);
        }
        self.books[usize::from(taker.market.0)].insert(resting);
        self.emit(events, || EventKind::OrderRested {
            order_id: taker.id,
            account: taker.account,
            market: taker.market,
            side: taker.side,
            price: resting.price,
            remaining: resting.remaining(),
        });
        if taker.filled == 0 {
            OrderStatus::Open
        } else {
            OrderStatus::PartiallyFilled
        }
    }

    /// Ends a taker that does not rest, releasing what it still holds.
    fn end_taker(
        &mut self,
        taker: &mut Taker,
        status: OrderStatus,
        reason: DoneReason,
        events: &mut Vec<Event>,
    ) {
        let spec = self.grid(taker.market);
        let asset = if taker.side == Side::Buy {
            spec.quote
        } else {
            spec.base
        };
        let released = taker.hold;
        taker.hold = Amount::ZERO;
        if taker.tracked {
            self.untrack(taker.account);
            taker.tracked = false;
        }
        let balance_after = self.ledger.release(taker.account, asset, released);
        self.emit(events, || EventKind::OrderDone {
            order_id: taker.id,
            account: taker.account,
            market: taker.market,
            status,
            reason,
            quantity: Quantity(taker.quantity),
            filled: Quantity(taker.filled),
            asset,
            released,
            balance_after,
        });
        if taker.has_client_order_id {
            let client_order_id = self.client_order_id_of(taker.id, true);
            self.record_ended(&taker.view(status, client_order_id));
        }
    }

    fn accepted(
        &self,
        taker: &Taker,
        hold_asset: Asset,
        balance_after: crate::types::Balance,
    ) -> AcceptedOrder {
        AcceptedOrder {
            order_id: taker.id,
            account: taker.account,
            market: taker.market,
            side: taker.side,
            order_type: taker.order_type,
            price: taker.price,
            quantity: Quantity(taker.quantity),
            time_in_force: taker.time_in_force,
            post_only: taker.post_only,
            self_trade_prevention: taker.self_trade_prevention,
            client_order_id: self.client_order_id_of(taker.id, taker.has_client_order_id),
            hold_asset,
            hold: taker.hold,
            balance_after,
        }
    }

    fn emit_accepted(&mut self, taker: &Taker, hold_asset: Asset, events: &mut Vec<Event>) {
        let balance_after = self.ledger.balance(taker.account, hold_asset);
        let accepted = self.accepted(taker, hold_asset, balance_after);
        self.emit(events, || EventKind::OrderAccepted(accepted));
    }

    /// Takes a resting order off its book and ends it as canceled.
    fn cancel_resting(
        &mut self,
        market: MarketId,
        order_id: OrderId,
        reason: DoneReason,
        events: &mut Vec<Event>,
    ) -> OrderView {
        let order = self.books[usize::from(market.0)]
            .remove(order_id)
            .expect("the order rests on its book");
        self.cancel_removed(market, &order, reason, events)
    }

    /// Ends an order already taken off its book as canceled, and returns its final
    /// state (a cancel replies with it).
    fn cancel_removed(
        &mut self,
        market: MarketId,
        order: &RestingOrder,
        reason: DoneReason,
        events: &mut Vec<Event>,
    ) -> OrderView {
        // Taken before the order forgets its client order id.
        let view = self.ended_view(market, order, OrderStatus::Canceled);
        self.finish_resting(market, order, OrderStatus::Canceled, reason, events);
        view
    }

    /// A resting order's state once it has ended with `status`.
    fn ended_view(&self, market: MarketId, order: &RestingOrder, status: OrderStatus) -> OrderView {
        let mut view = self.resting_view(market, order);
        view.status = status;
        view
    }

    /// Ends the best resting order on `side` (the maker a taker is meeting).
    fn end_best(
        &mut self,
        market: MarketId,
        side: Side,
        status: OrderStatus,
        reason: DoneReason,
        events: &mut Vec<Event>,
    ) {
        let order = self.books[usize::from(market.0)]
            .remove_best(side)
            .expect("the side has an order");
        self.finish_resting(market, &order, status, reason, events);
    }

    /// Ends an order already taken off its book: releases what it held, stops counting
    /// it, emits its end and, if it has a client order id, records how it ended for
    /// retries.
    fn finish_resting(
        &mut self,
        market: MarketId,
        order: &RestingOrder,
        status: OrderStatus,
        reason: DoneReason,
        events: &mut Vec<Event>,
    ) {
        let (asset, released) = resting_hold(&self.grid(market), order);
        let balance_after = self.ledger.release(order.account, asset, released);
        self.untrack(order.account);
        self.emit(events, || EventKind::OrderDone {
            order_id: order.id,
            account: order.account,
            market,
            status,
            reason,
            quantity: order.quantity,
            filled: order.filled,
            asset,
            released,
            balance_after,
        });
        if order.has_client_order_id {
            let view = self.ended_view(market, order, status);
            self.record_ended(&view);
            self.live_client_order_ids.remove(&order.id);
        }
    }

    /// An amended order's state after matching again, for the reply; an order that ended
    /// forgets its client order id (its ended state is recorded for retries).
    fn final_taker_view(&mut self, taker: &Taker, status: OrderStatus) -> OrderView {
        let client_order_id = self.client_order_id_of(taker.id, taker.has_client_order_id);
        self.placement_done(taker, status);
        taker.view(status, client_order_id)
    }

    /// An order that ended while it was placed forgets its client order id (its ended
    /// state is recorded for retries).
    fn placement_done(&mut self, taker: &Taker, status: OrderStatus) {
        if status.is_final() && taker.has_client_order_id {
            self.live_client_order_ids.remove(&taker.id);
        }
    }

    /// Remembers how an order with a client order id ended, so a retry returns it.
    fn record_ended(&mut self, view: &OrderView) {
        let Some(client_order_id) = &view.client_order_id else {
            return;
        };
        // Kept for the retention window from now; the queue stays in expiry order.
        let last = self.client_order_expiry.back().map_or(0, |(at, ..)| *at);
        let expires_ms = self
            .now_ms()
            .saturating_add(self.config.limits.idempotency_retention_ms)
            .max(last);
        let key = (view.account, client_order_id.clone());
        let Some(entry) = self.client_orders.get_mut(&key) else {
            return;
        };
        if entry.order_id != view.order_id {
            return;
        }
        entry.ended = Some(view.clone());
        entry.expires_ms = Some(expires_ms);
        self.client_order_expiry
            .push_back((expires_ms, key.0, key.1));
    }

    pub(super) fn cancel_order(
        &mut self,
        account: AccountId,
        target: &OrderRef,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        let (order_id, field) = match target {
            OrderRef::Id(order_id) => (*order_id, "order_id"),
            OrderRef::Client(client_order_id) => {
                let entry = self
                    .client_orders
                    .get(&(account, client_order_id.clone()))
                    .filter(|entry| entry.ended.is_none())
                    .ok_or(Reject::NotFound {
                        field: "client_order_id",
                    })?;
                (entry.order_id, "client_order_id")
            }
        };
        // One look-up per market: the order comes off the book only if the caller owns it.
        for index in 0..self.books.len() {
            let Some(order) = self.books[index].remove_owned(order_id, account) else {
                continue;
            };
            let market = MarketId(index as u16);
            let view = self.cancel_removed(market, &order, DoneReason::CanceledByOwner, events);
            return Ok(Reply::Order(view));
        }
        Err(Reject::NotFound { field })
    }

    pub(super) fn cancel_all_orders(
        &mut self,
        account: AccountId,
        market: Option<MarketId>,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        if let Some(market) = market {
            self.market(market)
                .ok_or(Reject::NotFound { field: "market" })?;
        }
        // Oldest first.
        let targets = self.live_orders_of(account, market);
        for (order_id, order_market) in &targets {
            self.cancel_resting(
                *order_market,
                *order_id,
                DoneReason::CanceledByOwner,
                events,
            );
        }
        Ok(Reply::CanceledCount(targets.len() as u64))
    }

    pub(super) fn amend_order(
        &mut self,
        account: AccountId,
        order_id: OrderId,
        quantity: Option<Quantity>,
        price: Option<Price>,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        if quantity.is_none() && price.is_none() {
            return Err(Reject::invalid(
                "quantity",
                "an amendment needs a new quantity or price",
            ));
        }
        let market = self.owned_order(account, order_id, "order_id")?;
        let spec = self.grid(market);
        let order = *self.books[usize::from(market.0)]
            .get(order_id)
            .expect("an open order rests on its book");
        let new_quantity = quantity.unwrap_or(order.quantity);
        let new_price = price.unwrap_or(order.price);
        check_quantity(&spec, new_quantity)?;
        check_price(&spec, new_price, new_quantity)?;
        if new_quantity <= order.filled {
            let view = self.cancel_resting(market, order_id, DoneReason::CanceledByOwner, events);
            return Ok(Reply::Order(view));
        }
        if new_price == order.price && new_quantity <= order.quantity {
            return Ok(Reply::Order(self.shrink_in_place(
                market,
                &order,
                new_quantity,
                events,
            )));
        }
        self.replace(market, order, new_quantity, new_price, events)
    }

    /// Lowers a resting order's quantity; it keeps its time priority.
    fn shrink_in_place(
        &mut self,
        market: MarketId,
        order: &RestingOrder,
        new_quantity: Quantity,
        events: &mut Vec<Event>,
    ) -> OrderView {
        let lots = order.quantity.0 - new_quantity.0;
        if lots > 0 {
            let spec = self.grid(market);
            let (asset, held_before) = resting_hold(&spec, order);
            self.books[usize::from(market.0)].shrink(order.id, Quantity(lots));
            let shrunk = self.books[usize::from(market.0)]
                .get(order.id)
                .expect("a shrunk order still rests");
            let (_, held_after) = resting_hold(&self.grid(market), shrunk);
            let released = Amount(held_before.0 - held_after.0);
            let balance_after = self.ledger.release(order.account, asset, released);
            self.emit(events, || EventKind::OrderReduced {
                order_id: order.id,
                account: order.account,
                market,
                quantity_removed: Quantity(lots),
                quantity_after: new_quantity,
                asset,
                released,
                balance_after,
            });
        }
        self.open_order_in(market, order.id)
            .expect("a shrunk order still rests")
    }

    /// Moves a resting order to a new price and/or a larger quantity: it leaves the book,
    /// its hold is adjusted, and it is matched again as a new order would be.
    fn replace(
        &mut self,
        market: MarketId,
        order: RestingOrder,
        new_quantity: Quantity,
        new_price: Price,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        let spec = self.grid(market);
        let mut amended = order;
        amended.quantity = new_quantity;
        amended.price = new_price;
        let (asset, held_before) = resting_hold(&spec, &order);
        let (_, held_after) = resting_hold(&spec, &amended);
        if held_after > held_before {
            self.require_available(order.account, asset, Amount(held_after.0 - held_before.0))?;
        }
        let mut taker = Taker::amending(market, &order, new_price, new_quantity, held_after);
        if order.post_only && self.would_take(&taker) {
            return Err(Reject::FailedPrecondition {
                field: "price",
                reason: "a post-only order may not take liquidity",
            });
        }
        if new_price != order.price
            && self.books[usize::from(market.0)].orders_at(order.side, new_price)
                >= self.config.limits.orders_per_level_max as usize
        {
            return Err(Reject::LimitExceeded {
                field: "orders_per_level_max",
                limit: u64::from(self.config.limits.orders_per_level_max),
            });
        }
        // Every check passed: from here on the amendment happens.
        self.books[usize::from(market.0)]
            .remove(order.id)
            .expect("the order rests on its book");
        let balance_after = if held_after >= held_before {
            self.ledger
                .hold(
                    order.account,
                    asset,
                    Amount(held_after.0 - held_before.0),
                    "quantity",
                )
                .expect("the funds were checked")
        } else {
            self.ledger
                .release(order.account, asset, Amount(held_before.0 - held_after.0))
        };
        self.emit(events, || EventKind::OrderReplaced {
            order_id: order.id,
            account: order.account,
            market,
            price: new_price,
            quantity: new_quantity,
            asset,
            hold_before: held_before,
            hold_after: held_after,
            balance_after,
        });
        taker.hold = held_after;
        let status = self.take_liquidity(&mut taker, events);
        Ok(Reply::Order(self.final_taker_view(&taker, status)))
    }
}

impl Taker {
    /// A resting order amended to `price` and `quantity`, holding `hold`, about to be
    /// matched again as a new GTC limit order would be.
    fn amending(
        market: MarketId,
        order: &RestingOrder,
        price: Price,
        quantity: Quantity,
        hold: Amount,
    ) -> Taker {
        Taker {
            id: order.id,
            account: order.account,
            market,
            side: order.side,
            order_type: OrderType::Limit,
            time_in_force: TimeInForce::GoodTillCanceled,
            price: Some(price),
            quantity: quantity.0,
            filled: order.filled.0,
            tradable: quantity.0,
            hold,
            post_only: order.post_only,
            self_trade_prevention: order.self_trade_prevention,
            has_client_order_id: order.has_client_order_id,
            created_seq: order.created_seq,
            tracked: true,
        }
    }

    /// What the buyer's hold set aside for `lots` traded at `notional`: the maker's price
    /// (the notional) when the taker sells to a resting bid, the taker's limit for an
    /// incoming bid, nothing for a market buy, which pays from what is available.
    fn buyer_held(&self, spec: &MarketGrid, lots: u64, notional: Amount) -> Amount {
        match (self.side, self.price) {
            (Side::Sell, _) => notional,
            (Side::Buy, _) if self.pays_from_available() => Amount::ZERO,
            (Side::Buy, limit) => spec.notional(limit.expect("a limit buy has a price"), lots),
        }
    }
}

fn check_quantity(spec: &MarketGrid, quantity: Quantity) -> Result<(), Reject> {
    if quantity.0 < spec.quantity_min_lots {
        return Err(Reject::invalid(
            "quantity",
            "below the market's minimum order size",
        ));
    }
    if quantity.0 > spec.quantity_max_lots {
        return Err(Reject::invalid(
            "quantity",
            "above the market's maximum order size",
        ));
    }
    Ok(())
}

fn check_price(spec: &MarketGrid, price: Price, quantity: Quantity) -> Result<(), Reject> {
    if price.0 == 0 {
        return Err(Reject::invalid("price", "must be positive"));
    }
    if price.0 > spec.price_max_ticks {
        return Err(Reject::invalid("price", "above the market's maximum price"));
    }
    // Validation of the market keeps price_max_ticks * quantity_max_lots within 64 bits.
    let notional = spec.notional(price, quantity.0);
    if notional.0 > spec.notional_max_micros {
        return Err(Reject::invalid(
            "quantity",
            "notional above the market's maximum",
        ));
    }
    Ok(())
}
