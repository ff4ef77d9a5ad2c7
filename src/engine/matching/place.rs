//! Placing an order: its checks, the funds it must hold, its acceptance, and its client
//! order id kept for retries.

use super::*;

impl<B: OrderBook> Sequencer<B> {
    pub(in crate::engine) fn place_order(
        &mut self,
        order: &NewOrder,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        if let Some(reply) = self.client_order_retry(order)? {
            return Ok(reply);
        }
        self.validate_new_order(order)?;
        let spec = self.grid(order.terms.market);
        let (hold_asset, hold, tradable) = self.funds_for(&spec, order)?;
        let mut taker = Taker {
            id: OrderId(self.next_order_id),
            account: order.account,
            terms: order.terms,
            filled: 0,
            tradable,
            hold,
            has_client_order_id: order.client_order_id.is_some(),
            created_seq: self.next_seq,
            tracked: false,
        };
        self.next_order_id += 1;
        self.record_client_order(order, taker.id);

        let refusal = if order.terms.post_only && self.would_take(&taker) {
            Some((OrderStatus::Rejected, DoneReason::PostOnlyWouldTake))
        } else if order.terms.time_in_force == TimeInForce::FillOrKill
            && !self.can_fill_entirely(&taker)
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
    pub(super) fn record_client_order(&mut self, order: &NewOrder, order_id: OrderId) {
        self.client_orders.placed(order, order_id);
    }

    /// A retry of an order placed with the same client order id returns that order and
    /// places nothing; reusing the id of a live order with other parameters is refused.
    pub(super) fn client_order_retry(&self, order: &NewOrder) -> Result<Option<Reply>, Reject> {
        let Some(client_order_id) = &order.client_order_id else {
            return Ok(None);
        };
        self.check_text(
            "client_order_id",
            client_order_id,
            self.config.limits.key_length_max,
            true,
        )?;
        let known = self.client_orders.get(order.account, client_order_id);
        let Some(existing) = known.filter(|existing| existing.kept_at(self.now_ms())) else {
            // New (counted against the limit), or ended longer ago than retention keeps
            // (its entry is then replaced, and counted already).
            let held = self.client_orders.count(order.account);
            let limit = self.config.limits.client_order_ids_per_account_max;
            if known.is_none() && held >= limit {
                return Err(Reject::LimitExceeded {
                    field: "client_order_ids_per_account_max",
                    limit: u64::from(limit),
                });
            }
            return Ok(None);
        };
        let current = match existing.ended_view(order.account, client_order_id) {
            Some(view) => view,
            None => self
                .open_order_in(existing.placed.market, existing.order_id)
                .expect("a live client order rests on its book"),
        };
        // The entry was found by the order's owner and client order id: the same order
        // is the same terms.
        if existing.placed == order.terms {
            return Ok(Some(Reply::Order(current)));
        }
        if existing.ended.is_none() {
            return Err(Reject::AlreadyExists {
                field: "client_order_id",
            });
        }
        Ok(None)
    }

    pub(in crate::engine) fn open_order_in(
        &self,
        market: MarketId,
        order_id: OrderId,
    ) -> Option<OrderView> {
        let order = self.books[usize::from(market.0)].get(order_id)?;
        Some(self.resting_view(market, order))
    }

    pub(super) fn validate_new_order(&self, order: &NewOrder) -> Result<(), Reject> {
        self.ledger
            .require(order.account, Role::Trader, "account_id")?;
        let spec = self
            .grids
            .get(usize::from(order.terms.market.0))
            .ok_or(Reject::NotFound { field: "market" })?;
        check_quantity(spec, order.terms.quantity)?;
        match (order.terms.order_type, order.terms.price) {
            (OrderType::Limit, None) => {
                return Err(Reject::invalid("price", "is required for a limit order"));
            }
            (OrderType::Market, _) if order.terms.post_only => {
                return Err(Reject::invalid(
                    "post_only",
                    "a market order always takes liquidity",
                ));
            }
            _ => {}
        }
        if let Some(price) = order.terms.price {
            check_price(spec, price, order.terms.quantity)?;
        }
        let rests = order.terms.order_type == OrderType::Limit
            && order.terms.time_in_force == TimeInForce::GoodTillCanceled;
        if rests {
            let price = order.terms.price.expect("a limit order has a price");
            self.check_room(order.account, order.terms.market, order.terms.side, price)?;
        }
        Ok(())
    }

    /// Refuses an order that could rest where the account or the price level is full.
    pub(super) fn check_room(
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
    pub(super) fn funds_for(
        &self,
        spec: &MarketGrid,
        order: &NewOrder,
    ) -> Result<(Asset, Amount, u64), Reject> {
        let quantity = order.terms.quantity.0;
        match (order.terms.side, order.terms.order_type) {
            (Side::Buy, OrderType::Limit) => {
                let price = order.terms.price.expect("a limit order has a price");
                let hold = spec.notional(price, quantity);
                self.require_available(order.account, spec.quote, hold)?;
                Ok((spec.quote, hold, quantity))
            }
            (Side::Buy, OrderType::Market) => {
                let available = self.ledger.balance(order.account, spec.quote).available;
                let book = &self.books[usize::from(order.terms.market.0)];
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

    pub(super) fn require_available(
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

    pub(super) fn accepted(
        &self,
        taker: &Taker,
        hold_asset: Asset,
        balance_after: crate::types::Balance,
    ) -> AcceptedOrder {
        AcceptedOrder {
            order_id: taker.id,
            account: taker.account,
            terms: taker.terms,
            client_order_id: self.client_order_id_of(taker.id, taker.has_client_order_id),
            hold_asset,
            hold: taker.hold,
            balance_after,
        }
    }

    pub(super) fn emit_accepted(
        &mut self,
        taker: &Taker,
        hold_asset: Asset,
        events: &mut Vec<Event>,
    ) {
        let balance_after = self.ledger.balance(taker.account, hold_asset);
        let accepted = self.accepted(taker, hold_asset, balance_after);
        self.emit(events, || EventKind::OrderAccepted(accepted));
    }
}

pub(super) fn check_quantity(spec: &MarketGrid, quantity: Quantity) -> Result<(), Reject> {
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

pub(super) fn check_price(
    spec: &MarketGrid,
    price: Price,
    quantity: Quantity,
) -> Result<(), Reject> {
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
