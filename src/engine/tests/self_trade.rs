//! Self-trade prevention, each mode.

use super::*;

scenarios!(
    stp_cancel_taker_keeps_the_maker,
    stp_cancel_maker_removes_the_resting_order_and_keeps_matching,
    stp_cancel_both_ends_both_orders,
    stp_decrement_reduces_both_without_a_trade,
);

fn stp_cancel_taker_keeps_the_maker<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let trader = h.trader(100 * USD, 10 * DVM);
    let other = h.trader(0, 10 * DVM);
    let other_ask = h.limit(other, Side::Sell, 4_900, 100);
    let own_ask = h.limit(trader, Side::Sell, 5_000, 100);
    let bid = h.limit(trader, Side::Buy, 5_000, 300);
    // The other account's ask trades; the own ask stops the taker.
    assert_eq!(
        h.fills(),
        vec![(other_ask.order_id, bid.order_id, 4_900, 100)]
    );
    assert_eq!(
        (bid.status, bid.filled),
        (OrderStatus::Canceled, Quantity(100))
    );
    assert_eq!(
        h.done(bid.order_id),
        Some((OrderStatus::Canceled, DoneReason::SelfTrade))
    );
    assert_eq!(h.levels(Side::Sell), vec![(5_000, 100)]);
    assert!(h.sequencer.open_order(own_ask.order_id).is_some());
    assert_eq!(h.holdings(trader), (100 * USD - 490_000, 0, 10 * DVM, DVM));
}

fn stp_cancel_maker_removes_the_resting_order_and_keeps_matching<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let trader = h.trader(100 * USD, 10 * DVM);
    let other = h.trader(0, 10 * DVM);
    let own_ask = h.limit(trader, Side::Sell, 5_000, 100);
    let other_ask = h.limit(other, Side::Sell, 5_000, 100);
    let bid = h.place(with_terms(limit(trader, Side::Buy, 5_000, 100), |terms| {
        terms.self_trade_prevention = SelfTradePrevention::CancelMaker
    }));
    assert_eq!(
        h.done(own_ask.order_id),
        Some((OrderStatus::Canceled, DoneReason::SelfTrade))
    );
    assert_eq!(
        h.fills(),
        vec![(other_ask.order_id, bid.order_id, 5_000, 100)]
    );
    assert_eq!(bid.status, OrderStatus::Filled);
    // 10 DVM back from the canceled ask, plus 1 DVM bought for 0.5 USD.
    assert_eq!(h.holdings(trader), (100 * USD - 500_000, 0, 11 * DVM, 0));
}

fn stp_cancel_both_ends_both_orders<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let trader = h.trader(100 * USD, 10 * DVM);
    let own_ask = h.limit(trader, Side::Sell, 5_000, 100);
    let bid = h.place(with_terms(limit(trader, Side::Buy, 5_000, 100), |terms| {
        terms.self_trade_prevention = SelfTradePrevention::CancelBoth
    }));
    assert_eq!(
        h.done(own_ask.order_id),
        Some((OrderStatus::Canceled, DoneReason::SelfTrade))
    );
    assert_eq!(bid.status, OrderStatus::Canceled);
    assert!(h.fills().is_empty());
    assert_eq!(h.holdings(trader), (100 * USD, 0, 10 * DVM, 0));
    assert!(h.levels(Side::Sell).is_empty() && h.levels(Side::Buy).is_empty());
}

fn stp_decrement_reduces_both_without_a_trade<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let trader = h.trader(100 * USD, 10 * DVM);
    let own_ask = h.limit(trader, Side::Sell, 5_000, 1_000);
    let bid = h.place(with_terms(limit(trader, Side::Buy, 5_000, 400), |terms| {
        terms.self_trade_prevention = SelfTradePrevention::Decrement
    }));
    assert!(h.fills().is_empty());
    assert_eq!(
        (bid.status, bid.terms.quantity),
        (OrderStatus::Canceled, Quantity(0))
    );
    let ask = h
        .sequencer
        .open_order(own_ask.order_id)
        .expect("the ask rests");
    assert_eq!(
        (ask.terms.quantity, ask.filled),
        (Quantity(600), Quantity(0))
    );
    // 6 DVM still held by the ask, nothing by the bid.
    assert_eq!(h.holdings(trader), (100 * USD, 0, 4 * DVM, 6 * DVM));
    // A larger decrementing bid ends the ask and rests what is left of itself.
    let bid = h.place(with_terms(
        limit(trader, Side::Buy, 5_000, 1_000),
        |terms| terms.self_trade_prevention = SelfTradePrevention::Decrement,
    ));
    assert_eq!(
        h.done(own_ask.order_id),
        Some((OrderStatus::Canceled, DoneReason::SelfTrade))
    );
    assert_eq!(
        (bid.status, bid.terms.quantity),
        (OrderStatus::Open, Quantity(400))
    );
    assert_eq!(h.holdings(trader), (98 * USD, 2 * USD, 10 * DVM, 0));
}
