//! Cancel, cancel all and amend, and the client order ids that make retries safe.

use super::*;

scenarios!(
    canceling_releases_the_hold_and_only_the_owner_may_cancel,
    cancel_all_ends_every_open_order_of_the_account,
    amending_down_keeps_priority_and_releases_funds,
    amending_the_price_loses_priority_and_may_match,
    amending_to_the_filled_quantity_ends_the_order,
    amending_up_needs_the_funds,
    client_order_ids_make_retries_safe,
    client_order_ids_per_account_are_bounded,
);

fn canceling_releases_the_hold_and_only_the_owner_may_cancel<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let buyer = h.trader(100 * USD, 0);
    let intruder = h.trader(100 * USD, 0);
    let bid = h.place(NewOrder {
        client_order_id: Some("mine".into()),
        ..limit(buyer, Side::Buy, 5_000, 1_000)
    });
    let reject = h.rejected(Command::CancelOrder {
        account: intruder,
        target: OrderRef::Id(bid.order_id),
    });
    assert_eq!(reject, Reject::NotFound { field: "order_id" });
    let reject = h.rejected(Command::CancelOrder {
        account: intruder,
        target: OrderRef::Client("mine".into()),
    });
    assert_eq!(
        reject,
        Reject::NotFound {
            field: "client_order_id"
        }
    );
    let reply = h.run(Command::CancelOrder {
        account: buyer,
        target: OrderRef::Client("mine".into()),
    });
    let Reply::Order(view) = reply else {
        panic!("unexpected reply")
    };
    assert_eq!(view.status, OrderStatus::Canceled);
    assert_eq!(h.holdings(buyer), (100 * USD, 0, 0, 0));
    assert!(
        h.cancel(buyer, bid.order_id).is_err(),
        "an ended order cannot be canceled"
    );
}

fn cancel_all_ends_every_open_order_of_the_account<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let trader = h.trader(100 * USD, 10 * DVM);
    let other = h.trader(100 * USD, 0);
    h.limit(trader, Side::Buy, 4_000, 100);
    h.limit(trader, Side::Buy, 4_100, 100);
    h.limit(trader, Side::Sell, 6_000, 100);
    h.limit(other, Side::Buy, 4_000, 100);
    let reply = h.run(Command::CancelAllOrders {
        account: trader,
        market: None,
    });
    assert_eq!(reply, Reply::CanceledCount(3));
    assert_eq!(h.holdings(trader), (100 * USD, 0, 10 * DVM, 0));
    assert_eq!(h.levels(Side::Buy), vec![(4_000, 100)]);
    assert!(h.levels(Side::Sell).is_empty());
    let reject = h.rejected(Command::CancelAllOrders {
        account: trader,
        market: Some(MarketId(9)),
    });
    assert_eq!(reject, Reject::NotFound { field: "market" });
}

fn amending_down_keeps_priority_and_releases_funds<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let first = h.trader(100 * USD, 0);
    let second = h.trader(100 * USD, 0);
    let seller = h.trader(0, 10 * DVM);
    let a = h.limit(first, Side::Buy, 5_000, 1_000);
    let b = h.limit(second, Side::Buy, 5_000, 1_000);
    let amended = h
        .amend(first, a.order_id, Some(400), None)
        .expect("amended");
    assert_eq!(amended.terms.quantity, Quantity(400));
    assert_eq!(h.holdings(first), (98 * USD, 2 * USD, 0, 0));
    let ask = h.limit(seller, Side::Sell, 5_000, 500);
    // `a` kept its place ahead of `b`.
    assert_eq!(
        h.fills(),
        vec![
            (a.order_id, ask.order_id, 5_000, 400),
            (b.order_id, ask.order_id, 5_000, 100)
        ]
    );
}

fn amending_the_price_loses_priority_and_may_match<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let first = h.trader(100 * USD, 0);
    let second = h.trader(100 * USD, 0);
    let seller = h.trader(0, 10 * DVM);
    let a = h.limit(first, Side::Buy, 5_000, 100);
    let b = h.limit(second, Side::Buy, 4_900, 100);
    // Down to b's price: a now queues behind b.
    h.amend(first, a.order_id, None, Some(4_900))
        .expect("amended");
    assert_eq!(h.holdings(first), (100 * USD - 490_000, 490_000, 0, 0));
    let ask = h.limit(seller, Side::Sell, 4_900, 100);
    assert_eq!(h.fills(), vec![(b.order_id, ask.order_id, 4_900, 100)]);
    // A new price that crosses trades at once, at the maker's price.
    let ask = h.limit(seller, Side::Sell, 5_500, 100);
    let amended = h
        .amend(first, a.order_id, None, Some(6_000))
        .expect("amended");
    assert_eq!(h.fills(), vec![(ask.order_id, a.order_id, 5_500, 100)]);
    assert_eq!(amended.status, OrderStatus::Filled);
    assert_eq!(h.holdings(first), (100 * USD - 550_000, 0, DVM, 0));
}

fn amending_to_the_filled_quantity_ends_the_order<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let buyer = h.trader(100 * USD, 0);
    let seller = h.trader(0, 10 * DVM);
    let bid = h.limit(buyer, Side::Buy, 5_000, 1_000);
    h.limit(seller, Side::Sell, 5_000, 300);
    let amended = h
        .amend(buyer, bid.order_id, Some(300), None)
        .expect("amended");
    assert_eq!(
        (amended.status, amended.filled),
        (OrderStatus::Canceled, Quantity(300))
    );
    assert_eq!(h.holdings(buyer), (100 * USD - 1_500_000, 0, 3 * DVM, 0));
    assert!(h.levels(Side::Buy).is_empty());
}

fn amending_up_needs_the_funds<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let buyer = h.trader(10 * USD, 0);
    let bid = h.limit(buyer, Side::Buy, 5_000, 1_000);
    let reject = h.rejected(Command::AmendOrder {
        account: buyer,
        order_id: bid.order_id,
        quantity: Some(Quantity(2_001)),
        price: None,
    });
    assert!(matches!(
        reject,
        Reject::InsufficientFunds {
            needed: 5_005_000,
            available: 5_000_000,
            ..
        }
    ));
    let amended = h
        .amend(buyer, bid.order_id, Some(2_000), None)
        .expect("amended");
    assert_eq!(amended.terms.quantity, Quantity(2_000));
    assert_eq!(h.holdings(buyer), (0, 10 * USD, 0, 0));
    let reject = h.rejected(Command::AmendOrder {
        account: buyer,
        order_id: OrderId(999),
        quantity: Some(Quantity(1)),
        price: None,
    });
    assert_eq!(reject, Reject::NotFound { field: "order_id" });
}

fn client_order_ids_make_retries_safe<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let buyer = h.trader(100 * USD, 0);
    let order = NewOrder {
        client_order_id: Some("c-1".into()),
        ..limit(buyer, Side::Buy, 5_000, 100)
    };
    let first = h.place(order.clone());
    let retry = h.place(order.clone());
    assert_eq!(retry, first);
    assert!(h.events.is_empty(), "a retry places nothing");
    assert_eq!(h.holdings(buyer), (100 * USD - 500_000, 500_000, 0, 0));
    let reject = h.rejected(Command::PlaceOrder(with_terms(order.clone(), |terms| {
        terms.quantity = Quantity(200)
    })));
    assert_eq!(
        reject,
        Reject::AlreadyExists {
            field: "client_order_id"
        }
    );
    h.cancel(buyer, first.order_id).expect("canceled");
    // The same parameters again are still a retry of the ended order...
    let retry = h.place(order.clone());
    assert_eq!(
        (retry.order_id, retry.status),
        (first.order_id, OrderStatus::Canceled)
    );
    // ...while other parameters reuse the id for a new order.
    let reused = h.place(with_terms(order, |terms| terms.quantity = Quantity(200)));
    assert_ne!(reused.order_id, first.order_id);
    assert_eq!(reused.status, OrderStatus::Open);
}

fn client_order_ids_per_account_are_bounded<B: OrderBook>() {
    let mut config = EngineConfig::default();
    config.limits.client_order_ids_per_account_max = 2;
    config.limits.idempotency_retention_ms = 1_000;
    let mut h = Harness::<B>::with_config(config);
    let buyer = h.trader(100 * USD, 0);
    let with_id = |id: &str| NewOrder {
        client_order_id: Some(id.into()),
        ..limit(buyer, Side::Buy, 5_000, 1)
    };
    let first = h.place(with_id("c-1"));
    h.cancel(buyer, first.order_id).expect("canceled");
    h.place(with_id("c-2"));
    let before = h.holdings(buyer);
    let reject = h.rejected(Command::PlaceOrder(with_id("c-3")));
    assert_eq!(
        reject,
        Reject::LimitExceeded {
            field: "client_order_ids_per_account_max",
            limit: 2
        }
    );
    assert_eq!(h.holdings(buyer), before, "the refusal changes nothing");
    // A retry under a kept id is still answered, and an order without an id is taken.
    assert_eq!(h.place(with_id("c-1")).order_id, first.order_id);
    h.limit(buyer, Side::Buy, 5_000, 1);
    // Once retention has forgotten the ended order's id, a new id fits again.
    let later_ms = 1_700_000_000_000 + 2_000;
    let mut events = Vec::new();
    h.sequencer
        .apply(later_ms, &deposit(buyer, "later"), &mut events)
        .expect("a deposit moves the clock");
    events.clear();
    h.sequencer
        .apply(later_ms, &Command::PlaceOrder(with_id("c-3")), &mut events)
        .expect("a new id fits once c-1 is forgotten");
}

/// A deposit of one dollar by card under `key`.
fn deposit(account: AccountId, key: &str) -> Command {
    Command::Deposit {
        account,
        source: FundingSourceKind::Card,
        amount: Amount(USD),
        source_reference: "card ending 1111".into(),
        idempotency_key: key.into(),
    }
}
