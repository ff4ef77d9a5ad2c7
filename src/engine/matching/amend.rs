//! Cancel, cancel all and amend.

use super::place::{check_price, check_quantity};
use super::*;

impl<B: OrderBook> Sequencer<B> {
    /// Takes a resting order off its book and ends it as canceled.
    pub(super) fn cancel_resting(
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
    pub(super) fn cancel_removed(
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

    pub(in crate::engine) fn cancel_order(
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
                    .get(account, client_order_id)
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

    pub(in crate::engine) fn cancel_all_orders(
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

    pub(in crate::engine) fn amend_order(
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
    pub(super) fn shrink_in_place(
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
    pub(super) fn replace(
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
    pub(super) fn amending(
        market: MarketId,
        order: &RestingOrder,
        price: Price,
        quantity: Quantity,
        hold: Amount,
    ) -> Taker {
        Taker {
            id: order.id,
            account: order.account,
            terms: OrderTerms {
                price: Some(price),
                quantity,
                ..order.terms(market)
            },
            filled: order.filled.0,
            tradable: quantity.0,
            hold,
            has_client_order_id: order.has_client_order_id,
            created_seq: order.created_seq,
            tracked: true,
        }
    }
}
