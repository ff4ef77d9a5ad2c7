//! Time in force and post-only: IOC, FOK, post-only.

use super::*;

scenarios!(
    ioc_cancels_what_does_not_fill_at_once,
    fok_fills_entirely_or_changes_nothing,
    post_only_rests_or_is_rejected_whole,
);

fn ioc_cancels_what_does_not_fill_at_once<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let seller = h.trader(0, 10 * DVM);
    let buyer = h.trader(100 * USD, 0);
    h.limit(seller, Side::Sell, 5_000, 400);
    let order = h.place(with_terms(limit(buyer, Side::Buy, 5_000, 1_000), |terms| {
        terms.time_in_force = TimeInForce::ImmediateOrCancel
    }));
    assert_eq!(
        (order.status, order.filled),
        (OrderStatus::Canceled, Quantity(400))
    );
    assert_eq!(h.holdings(buyer), (98 * USD, 0, 4 * DVM, 0));
    assert!(h.levels(Side::Buy).is_empty());
}

fn fok_fills_entirely_or_changes_nothing<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let seller = h.trader(0, 10 * DVM);
    let buyer = h.trader(100 * USD, 0);
    h.limit(seller, Side::Sell, 5_000, 400);
    h.limit(seller, Side::Sell, 5_100, 400);
    let before = (h.holdings(buyer), h.holdings(seller), h.levels(Side::Sell));
    let fok = with_terms(limit(buyer, Side::Buy, 5_100, 801), |terms| {
        terms.time_in_force = TimeInForce::FillOrKill
    });
    let order = h.place(fok.clone());
    assert_eq!(
        (order.status, order.filled),
        (OrderStatus::Expired, Quantity(0))
    );
    assert!(h.fills().is_empty());
    assert_eq!(
        (h.holdings(buyer), h.holdings(seller), h.levels(Side::Sell)),
        before
    );
    let order = h.place(with_terms(fok, |terms| terms.quantity = Quantity(800)));
    assert_eq!(
        (order.status, order.filled),
        (OrderStatus::Filled, Quantity(800))
    );
    assert_eq!(h.holdings(buyer), (100 * USD - 4_040_000, 0, 8 * DVM, 0));
}

fn post_only_rests_or_is_rejected_whole<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let seller = h.trader(0, 10 * DVM);
    let buyer = h.trader(100 * USD, 0);
    h.limit(seller, Side::Sell, 5_000, 400);
    let post_only = with_terms(limit(buyer, Side::Buy, 5_000, 100), |terms| {
        terms.post_only = true
    });
    let order = h.place(post_only.clone());
    assert_eq!(order.status, OrderStatus::Rejected);
    assert_eq!(h.holdings(buyer), (100 * USD, 0, 0, 0));
    let order = h.place(with_terms(post_only, |terms| {
        terms.price = Some(Price(4_999))
    }));
    assert_eq!(order.status, OrderStatus::Open);
    assert_eq!(h.levels(Side::Buy), vec![(4_999, 100)]);
}
