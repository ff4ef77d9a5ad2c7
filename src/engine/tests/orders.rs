//! Placing orders: resting, crossing, priority, market orders and their funds, the limits on open orders and levels, and bad orders refused.

use super::*;

scenarios!(
    a_limit_buy_rests_and_holds_its_notional,
    a_crossing_limit_fills_at_the_makers_price_and_refunds_the_difference,
    the_unfilled_rest_of_a_crossing_limit_rests_at_its_price,
    makers_fill_in_price_then_time_priority,
    a_market_buy_walks_the_book_until_its_funds_run_out,
    a_market_buy_stops_at_its_price_cap,
    a_market_sell_is_capped_by_the_sellers_divmids,
    a_market_order_without_enough_funds_for_a_lot_is_rejected,
    limits_on_open_orders_and_levels_are_enforced,
    bad_orders_are_rejected_with_the_field_and_change_nothing,
);

fn a_limit_buy_rests_and_holds_its_notional<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let buyer = h.trader(100 * USD, 0);
    let order = h.limit(buyer, Side::Buy, 5_000, 1_000);
    assert_eq!(order.status, OrderStatus::Open);
    // 10 DVM at 0.5 USD holds 5 USD.
    assert_eq!(h.holdings(buyer), (95 * USD, 5 * USD, 0, 0));
    assert_eq!(h.levels(Side::Buy), vec![(5_000, 1_000)]);
}

fn a_crossing_limit_fills_at_the_makers_price_and_refunds_the_difference<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let seller = h.trader(0, 10 * DVM);
    let buyer = h.trader(100 * USD, 0);
    let ask = h.limit(seller, Side::Sell, 5_000, 1_000);
    assert_eq!(h.holdings(seller), (0, 0, 0, 10 * DVM));
    let bid = h.limit(buyer, Side::Buy, 6_000, 400);
    assert_eq!(h.fills(), vec![(ask.order_id, bid.order_id, 5_000, 400)]);
    assert_eq!(bid.status, OrderStatus::Filled);
    // 4 DVM at the maker's 0.5 USD: 2 USD paid, the 0.4 USD above it refunded.
    assert_eq!(h.holdings(buyer), (98 * USD, 0, 4 * DVM, 0));
    assert_eq!(h.holdings(seller), (2 * USD, 0, 0, 6 * DVM));
    assert_eq!(h.levels(Side::Sell), vec![(5_000, 600)]);
}

fn the_unfilled_rest_of_a_crossing_limit_rests_at_its_price<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let seller = h.trader(0, 10 * DVM);
    let buyer = h.trader(100 * USD, 0);
    h.limit(seller, Side::Sell, 5_000, 1_000);
    let bid = h.limit(buyer, Side::Buy, 6_000, 1_500);
    assert_eq!(bid.status, OrderStatus::PartiallyFilled);
    assert_eq!(
        (bid.filled, bid.remaining()),
        (Quantity(1_000), Quantity(500))
    );
    // Paid 5 USD for 10 DVM; 5 DVM rest at 0.6 holding 3 USD.
    assert_eq!(h.holdings(buyer), (92 * USD, 3 * USD, 10 * DVM, 0));
    assert_eq!(h.levels(Side::Sell), vec![]);
    assert_eq!(h.levels(Side::Buy), vec![(6_000, 500)]);
}

fn makers_fill_in_price_then_time_priority<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let first = h.trader(0, 10 * DVM);
    let second = h.trader(0, 10 * DVM);
    let better = h.trader(0, 10 * DVM);
    let buyer = h.trader(100 * USD, 0);
    let a = h.limit(first, Side::Sell, 5_100, 100);
    let b = h.limit(second, Side::Sell, 5_100, 100);
    let c = h.limit(better, Side::Sell, 5_000, 100);
    let bid = h.limit(buyer, Side::Buy, 5_100, 250);
    assert_eq!(
        h.fills(),
        vec![
            (c.order_id, bid.order_id, 5_000, 100),
            (a.order_id, bid.order_id, 5_100, 100),
            (b.order_id, bid.order_id, 5_100, 50),
        ]
    );
    // 0.5 + 0.51 + 0.255 USD.
    assert_eq!(h.holdings(buyer), (100 * USD - 1_265_000, 0, 2_500_000, 0));
    assert_eq!(h.holdings(second), (255_000, 0, 9 * DVM, 500_000));
    assert_eq!(
        h.done(a.order_id),
        Some((OrderStatus::Filled, DoneReason::Filled))
    );
    assert_eq!(h.done(b.order_id), None);
}

fn a_market_buy_walks_the_book_until_its_funds_run_out<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let seller = h.trader(0, 20 * DVM);
    let buyer = h.trader(8 * USD, 0);
    h.limit(seller, Side::Sell, 5_000, 1_000);
    h.limit(seller, Side::Sell, 10_000, 1_000);
    let order = h.place(market(buyer, Side::Buy, 2_000));
    // 10 DVM at 0.5 (5 USD), then 3 DVM at 1.0 (3 USD): the dollars are gone.
    assert_eq!(order.filled, Quantity(1_300));
    assert_eq!(order.status, OrderStatus::Canceled);
    assert_eq!(
        h.done(order.order_id),
        Some((OrderStatus::Canceled, DoneReason::FundsExhausted))
    );
    assert_eq!(h.holdings(buyer), (0, 0, 13 * DVM, 0));
    assert_eq!(h.holdings(seller), (8 * USD, 0, 0, 7 * DVM));
    assert_eq!(h.levels(Side::Sell), vec![(10_000, 700)]);
}

fn a_market_buy_stops_at_its_price_cap<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let seller = h.trader(0, 20 * DVM);
    let buyer = h.trader(100 * USD, 0);
    h.limit(seller, Side::Sell, 5_000, 1_000);
    h.limit(seller, Side::Sell, 10_000, 1_000);
    let order = h.place(with_terms(market(buyer, Side::Buy, 2_000), |terms| {
        terms.price = Some(Price(9_999))
    }));
    assert_eq!(order.filled, Quantity(1_000));
    assert_eq!(
        h.done(order.order_id),
        Some((OrderStatus::Canceled, DoneReason::Unfilled))
    );
    assert_eq!(h.holdings(buyer), (95 * USD, 0, 10 * DVM, 0));
}

fn a_market_sell_is_capped_by_the_sellers_divmids<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let buyer = h.trader(100 * USD, 0);
    let seller = h.trader(0, 3 * DVM);
    h.limit(buyer, Side::Buy, 5_000, 1_000);
    let order = h.place(market(seller, Side::Sell, 1_000));
    assert_eq!(order.filled, Quantity(300));
    assert_eq!(
        h.done(order.order_id),
        Some((OrderStatus::Canceled, DoneReason::FundsExhausted))
    );
    assert_eq!(h.holdings(seller), (1_500_000, 0, 0, 0));
    assert_eq!(h.holdings(buyer), (95 * USD, 3_500_000, 3 * DVM, 0));
}

fn a_market_order_without_enough_funds_for_a_lot_is_rejected<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let seller = h.trader(0, 10 * DVM);
    let poor = h.trader(4_999, 0);
    h.limit(seller, Side::Sell, 5_000, 100);
    let reject = h.rejected(Command::PlaceOrder(market(poor, Side::Buy, 1)));
    assert!(matches!(
        reject,
        Reject::InsufficientFunds {
            needed: 5_000,
            available: 4_999,
            ..
        }
    ));
    let reject = h.rejected(Command::PlaceOrder(market(poor, Side::Sell, 1)));
    assert!(matches!(
        reject,
        Reject::InsufficientFunds {
            asset: Asset::Dvm,
            ..
        }
    ));
}

fn limits_on_open_orders_and_levels_are_enforced<B: OrderBook>() {
    let mut config = EngineConfig::default();
    config.limits.open_orders_per_account_max = 2;
    config.limits.orders_per_level_max = 3;
    let mut h = Harness::<B>::with_config(config);
    let a = h.trader(100 * USD, 0);
    let b = h.trader(100 * USD, 0);
    h.limit(a, Side::Buy, 5_000, 1);
    h.limit(a, Side::Buy, 5_000, 1);
    let reject = h.rejected(Command::PlaceOrder(limit(a, Side::Buy, 4_000, 1)));
    assert_eq!(
        reject,
        Reject::LimitExceeded {
            field: "open_orders_per_account_max",
            limit: 2
        }
    );
    let third = h.limit(b, Side::Buy, 5_000, 1);
    let reject = h.rejected(Command::PlaceOrder(limit(b, Side::Buy, 5_000, 1)));
    assert_eq!(
        reject,
        Reject::LimitExceeded {
            field: "orders_per_level_max",
            limit: 3
        }
    );
    // Another level has room, and a full level has room again once an order leaves it.
    h.limit(b, Side::Buy, 4_900, 1);
    h.cancel(b, third.order_id).expect("b's order rests");
    h.limit(b, Side::Buy, 5_000, 1);
    let reject = h.rejected(Command::PlaceOrder(limit(b, Side::Buy, 5_000, 1)));
    assert!(matches!(reject, Reject::LimitExceeded { .. }), "{reject:?}");
    // An IOC order never rests, so the limits do not apply to it.
    h.place(with_terms(limit(a, Side::Buy, 4_000, 1), |terms| {
        terms.time_in_force = TimeInForce::ImmediateOrCancel
    }));
}

fn bad_orders_are_rejected_with_the_field_and_change_nothing<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let buyer = h.trader(10 * USD, 0);
    let service = h.account(Role::Service);
    let cases: Vec<(NewOrder, &str)> = vec![
        (limit(buyer, Side::Buy, 5_000, 0), "quantity"),
        (limit(buyer, Side::Buy, 5_000, 100_000_001), "quantity"),
        (limit(buyer, Side::Buy, 0, 1), "price"),
        (limit(buyer, Side::Buy, 100_000_001, 1), "price"),
        (
            with_terms(limit(buyer, Side::Buy, 5_000, 1), |terms| {
                terms.price = None
            }),
            "price",
        ),
        (
            with_terms(limit(buyer, Side::Buy, 5_000, 1), |terms| {
                terms.market = MarketId(3)
            }),
            "market",
        ),
        (
            with_terms(market(buyer, Side::Buy, 1), |terms| terms.post_only = true),
            "post_only",
        ),
        (
            NewOrder {
                client_order_id: Some("".into()),
                ..limit(buyer, Side::Buy, 5_000, 1)
            },
            "client_order_id",
        ),
        (
            NewOrder {
                client_order_id: Some("x".repeat(65).into()),
                ..limit(buyer, Side::Buy, 5_000, 1)
            },
            "client_order_id",
        ),
        (limit(buyer, Side::Buy, 5_000, 2_001), "quantity"),
        (limit(service, Side::Buy, 5_000, 1), "account_id"),
        (limit(AccountId(99), Side::Buy, 5_000, 1), "account_id"),
    ];
    for (order, field) in cases {
        let reject = h.rejected(Command::PlaceOrder(order.clone()));
        let message = reject.to_string();
        assert!(
            message.starts_with(field),
            "{order:?} gave {message}, not naming {field}"
        );
    }
}
