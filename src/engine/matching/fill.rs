//! Taking liquidity: matching a taker against the book, each fill settled, self-trade
//! prevention, resting what is left, and how orders end.

use super::*;

impl<B: OrderBook> Sequencer<B> {
    /// Whether the order would trade at once if it were placed.
    pub(super) fn would_take(&self, taker: &Taker) -> bool {
        let book = &self.books[usize::from(taker.terms.market.0)];
        book.best_price(taker.terms.side.opposite())
            .is_some_and(|price| taker.crosses(price))
    }

    /// Whether the order can trade its whole quantity at once, walking the book as
    /// matching would: a resting order of the caller's own is skipped when self-trade
    /// prevention would cancel it, and ends the walk otherwise.
    pub(super) fn can_fill_entirely(&self, taker: &Taker) -> bool {
        let spec = self.grid(taker.terms.market);
        let per_tick_lot = spec.quote_micros_per_tick_lot;
        let mut budget = if taker.pays_from_available() {
            Some(self.ledger.balance(taker.account, spec.quote).available.0)
        } else {
            None
        };
        let mut fillable = 0;
        let needed = taker.terms.quantity.0;
        let book = &self.books[usize::from(taker.terms.market.0)];
        book.visit_in_priority(taker.terms.side.opposite(), &mut |maker| {
            if !taker.crosses(maker.price) {
                return false;
            }
            if maker.account == taker.account {
                return taker.terms.self_trade_prevention == SelfTradePrevention::CancelMaker;
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
    pub(super) fn take_liquidity(
        &mut self,
        taker: &mut Taker,
        events: &mut Vec<Event>,
    ) -> OrderStatus {
        let stop = self.match_taker(taker, events);
        let remaining = taker.terms.quantity.0 - taker.filled;
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
            && taker.terms.order_type == OrderType::Limit
            && taker.terms.time_in_force == TimeInForce::GoodTillCanceled;
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

    pub(super) fn match_taker(&mut self, taker: &mut Taker, events: &mut Vec<Event>) -> Stop {
        let market = usize::from(taker.terms.market.0);
        let maker_side = taker.terms.side.opposite();
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
                match taker.terms.self_trade_prevention {
                    SelfTradePrevention::CancelTaker => return Stop::SelfTrade,
                    SelfTradePrevention::CancelMaker => {
                        self.end_best(
                            taker.terms.market,
                            maker_side,
                            OrderStatus::Canceled,
                            DoneReason::SelfTrade,
                            events,
                        );
                        continue;
                    }
                    SelfTradePrevention::CancelBoth => {
                        self.end_best(
                            taker.terms.market,
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
                let spec = self.grid(taker.terms.market);
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
        if taker.tradable < taker.terms.quantity.0 {
            // A market sell capped by the caller's divmids traded all it could.
            return Stop::Funds;
        }
        Stop::Exhausted
    }

    /// Trades `lots` between the taker and the maker at the maker's price and settles
    /// both sides.
    pub(super) fn execute_fill(
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
        let maker_side = taker.terms.side.opposite();
        let maker_done = self.books[usize::from(taker.terms.market.0)]
            .fill_best(maker_side, Quantity(lots))
            .is_zero();
        let fill = Fill {
            trade_id: TradeId(self.next_trade_id),
            market: taker.terms.market,
            price,
            quantity: Quantity(lots),
            taker_side: taker.terms.side,
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
                taker.terms.market,
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
    pub(super) fn settle_fill(
        &mut self,
        taker: &mut Taker,
        maker_account: AccountId,
        price: Price,
        lots: u64,
    ) -> (Balances, Balances, Amount) {
        let spec = self.grid(taker.terms.market);
        let notional = spec.notional(price, lots);
        let delivered = spec.base_amount(lots);
        let (buyer, seller) = match taker.terms.side {
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
        match taker.terms.side {
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
    pub(super) fn decrement(
        &mut self,
        taker: &mut Taker,
        maker_id: OrderId,
        maker_remaining: u64,
        events: &mut Vec<Event>,
    ) {
        let lots = (taker.tradable - taker.filled).min(maker_remaining);
        let spec = self.grid(taker.terms.market);
        // The maker gives up `lots` and what it held for them.
        let maker = self.books[usize::from(taker.terms.market.0)]
            .get(maker_id)
            .expect("the maker rests");
        let (maker_asset, maker_released) = match maker.side {
            Side::Buy => (spec.quote, spec.notional(maker.price, lots)),
            Side::Sell => (spec.base, spec.base_amount(lots)),
        };
        let maker_account = maker.account;
        let maker_quantity_after = Quantity(maker.quantity.0 - lots);
        self.books[usize::from(taker.terms.market.0)].shrink(maker_id, Quantity(lots));
        let balance_after = self
            .ledger
            .release(maker_account, maker_asset, maker_released);
        self.emit(events, || EventKind::OrderReduced {
            order_id: maker_id,
            account: maker_account,
            market: taker.terms.market,
            quantity_removed: Quantity(lots),
            quantity_after: maker_quantity_after,
            asset: maker_asset,
            released: maker_released,
            balance_after,
        });
        if maker_remaining == lots {
            self.end_best(
                taker.terms.market,
                taker.terms.side.opposite(),
                OrderStatus::Canceled,
                DoneReason::SelfTrade,
                events,
            );
        }
        // The taker too.
        let (taker_asset, taker_released) = match taker.terms.side {
            Side::Buy if taker.pays_from_available() => (spec.quote, Amount::ZERO),
            Side::Buy => {
                let limit = taker.terms.price.expect("a limit buy has a price");
                (spec.quote, spec.notional(limit, lots))
            }
            Side::Sell => (spec.base, spec.base_amount(lots)),
        };
        taker.terms.quantity.0 -= lots;
        taker.tradable -= lots;
        taker.hold = Amount(taker.hold.0 - taker_released.0);
        let balance_after = self
            .ledger
            .release(taker.account, taker_asset, taker_released);
        self.emit(events, || EventKind::OrderReduced {
            order_id: taker.id,
            account: taker.account,
            market: taker.terms.market,
            quantity_removed: Quantity(lots),
            quantity_after: taker.terms.quantity,
            asset: taker_asset,
            released: taker_released,
            balance_after,
        });
    }

    /// Puts what is left of a GTC limit taker on the book. What it still holds is exactly
    /// what a resting order of its price and remaining quantity holds.
    pub(super) fn rest(&mut self, taker: &Taker, events: &mut Vec<Event>) -> OrderStatus {
        let resting = RestingOrder {
            id: taker.id,
            account: taker.account,
            side: taker.terms.side,
            price: taker.terms.price.expect("a limit order has a price"),
            quantity: taker.terms.quantity,
            filled: Quantity(taker.filled),
            created_seq: taker.created_seq,
            post_only: taker.terms.post_only,
            self_trade_prevention: taker.terms.self_trade_prevention,
            has_client_order_id: taker.has_client_order_id,
        };
        assert_eq!(
            resting_hold(&self.grid(taker.terms.market), &resting).1,
            taker.hold,
            "a resting order must hold exactly its price times its remaining quantity"
        );
        if !taker.tracked {
            self.track(taker.account);
        }
        self.books[usize::from(taker.terms.market.0)].insert(resting);
        self.emit(events, || EventKind::OrderRested {
            order_id: taker.id,
            account: taker.account,
            market: taker.terms.market,
            side: taker.terms.side,
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
    pub(super) fn end_taker(
        &mut self,
        taker: &mut Taker,
        status: OrderStatus,
        reason: DoneReason,
        events: &mut Vec<Event>,
    ) {
        let spec = self.grid(taker.terms.market);
        let asset = if taker.terms.side == Side::Buy {
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
            market: taker.terms.market,
            status,
            reason,
            quantity: taker.terms.quantity,
            filled: Quantity(taker.filled),
            asset,
            released,
            balance_after,
        });
        if taker.has_client_order_id {
            let filled = Quantity(taker.filled);
            let ended = Ended::new(taker.terms, filled, status, taker.created_seq);
            let expires_ms = self.client_order_expiry_ms();
            self.client_orders.live_ending(taker.id, ended, expires_ms);
        }
    }

    /// Ends the best resting order on `side` (the maker a taker is meeting).
    pub(super) fn end_best(
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
    pub(super) fn finish_resting(
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
            let ended = Ended::new(order.terms(market), order.filled, status, order.created_seq);
            let expires_ms = self.client_order_expiry_ms();
            self.client_orders.live_ended(order.id, ended, expires_ms);
        }
    }

    /// An amended order's state after matching again, for the reply; an order that ended
    /// forgets its client order id (its ended state is recorded for retries).
    pub(super) fn final_taker_view(&mut self, taker: &Taker, status: OrderStatus) -> OrderView {
        let client_order_id = self.client_order_id_of(taker.id, taker.has_client_order_id);
        self.placement_done(taker, status);
        taker.view(status, client_order_id)
    }

    /// An order that ended while it was placed forgets its client order id (its ended
    /// state is recorded for retries).
    pub(super) fn placement_done(&mut self, taker: &Taker, status: OrderStatus) {
        if status.is_final() && taker.has_client_order_id {
            self.client_orders.forget_live(taker.id);
        }
    }

    /// When the id of an order that ends now is forgotten: the retention window from now.
    fn client_order_expiry_ms(&self) -> u64 {
        self.now_ms()
            .saturating_add(self.config.limits.idempotency_retention_ms)
    }

    /// A resting order's state once it has ended with `status`.
    pub(super) fn ended_view(
        &self,
        market: MarketId,
        order: &RestingOrder,
        status: OrderStatus,
    ) -> OrderView {
        let mut view = self.resting_view(market, order);
        view.status = status;
        view
    }
}
