//! Scenario tests of the sequencer, each run against both books: exact balances after
//! every fill, every order type, time in force and self-trade prevention mode.
//!
//! DVM-USD figures used throughout: a price of 5,000 ticks is 0.5 USD per DVM, 100 lots
//! are 1 DVM, and a notional in micro-USD is ticks times lots.

use super::{LevelBook, OrderBook, ReferenceBook, Sequencer};
use crate::command::{Command, NewOrder, OrderRef};
use crate::config::EngineConfig;
use crate::error::Reject;
use crate::event::{DoneReason, Event, EventKind, OrderView, Reply};
use crate::types::{
    AccountId, Amount, Asset, FundingSourceKind, IssuePrice, MarketId, OrderId, OrderStatus,
    OrderType, Price, Quantity, Role, SelfTradePrevention, Side, Tier, TimeInForce,
};

const USD: u64 = 1_000_000;
const DVM: u64 = 1_000_000;
const MARKET: MarketId = MarketId(0);

struct Harness<B: OrderBook> {
    sequencer: Sequencer<B>,
    /// The events of the last command.
    events: Vec<Event>,
    keys: u64,
}

/// `(usd available, usd held, dvm available, dvm held)` in micro-units.
type Holdings = (u64, u64, u64, u64);

/// Every account's balances, both books' levels and the last sequence number.
type Snapshot = (
    Vec<crate::types::Balances>,
    Vec<(u64, u64)>,
    Vec<(u64, u64)>,
    u64,
);

impl<B: OrderBook> Harness<B> {
    fn new() -> Self {
        Self::with_config(EngineConfig::default())
    }

    fn with_config(config: EngineConfig) -> Self {
        let mut harness = Harness {
            sequencer: Sequencer::new(config),
            events: Vec::new(),
            keys: 0,
        };
        harness.run(Command::Mint {
            amount: Amount(1_000_000 * DVM),
            memo: "genesis".into(),
            idempotency_key: "mint-genesis".into(),
        });
        harness.run(Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(IssuePrice::UNITS_PER_USD),
        });
        harness
    }

    fn try_run(&mut self, command: Command) -> Result<Reply, Reject> {
        self.events.clear();
        self.sequencer
            .apply(1_700_000_000_000, &command, &mut self.events)
    }

    fn run(&mut self, command: Command) -> Reply {
        self.try_run(command).expect("the command is accepted")
    }

    fn key(&mut self) -> String {
        self.keys += 1;
        format!("key-{}", self.keys)
    }

    fn account(&mut self, role: Role) -> AccountId {
        match self.run(Command::CreateAccount {
            name: "someone".into(),
            role,
            tier: Tier::Public,
            token_hash: [7; 32],
        }) {
            Reply::AccountCreated { account } => account,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// A trader holding exactly `usd` and `dvm` micro-units, available.
    fn trader(&mut self, usd: u64, dvm: u64) -> AccountId {
        let account = self.account(Role::Trader);
        // The issue price is 1 USD per DVM, so buying `dvm` costs `dvm` micro-USD.
        if usd + dvm > 0 {
            let idempotency_key = self.key();
            self.run(Command::Deposit {
                account,
                source: FundingSourceKind::Card,
                amount: Amount(usd + dvm),
                source_reference: "4111111111111111".into(),
                idempotency_key: idempotency_key.into(),
            });
        }
        if dvm > 0 {
            let idempotency_key = self.key();
            self.run(Command::BuyDivmids {
                account,
                quantity: Amount(dvm),
                max_price: IssuePrice(IssuePrice::UNITS_PER_USD),
                idempotency_key: idempotency_key.into(),
            });
        }
        assert_eq!(self.holdings(account), (usd, 0, dvm, 0));
        account
    }

    fn holdings(&self, account: AccountId) -> Holdings {
        let balances = self.sequencer.ledger().balances(account);
        let usd = balances[Asset::Usd.index()];
        let dvm = balances[Asset::Dvm.index()];
        (usd.available.0, usd.held.0, dvm.available.0, dvm.held.0)
    }

    fn try_place(&mut self, order: NewOrder) -> Result<OrderView, Reject> {
        let reply = self.try_run(Command::PlaceOrder(order))?;
        match reply.order(&self.events) {
            Some(view) => Ok(view),
            None => panic!("unexpected reply {reply:?}"),
        }
    }

    fn place(&mut self, order: NewOrder) -> OrderView {
        self.try_place(order).expect("the order is accepted")
    }

    fn limit(&mut self, account: AccountId, side: Side, price: u64, lots: u64) -> OrderView {
        self.place(limit(account, side, price, lots))
    }

    /// `(maker, taker, price, lots)` of the last command's fills, in order.
    fn fills(&self) -> Vec<(OrderId, OrderId, u64, u64)> {
        self.events
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::Fill(fill) => Some((
                    fill.maker_order,
                    fill.taker_order,
                    fill.price.0,
                    fill.quantity.0,
                )),
                _ => None,
            })
            .collect()
    }

    fn done(&self, order: OrderId) -> Option<(OrderStatus, DoneReason)> {
        self.events.iter().find_map(|event| match &event.kind {
            EventKind::OrderDone {
                order_id,
                status,
                reason,
                ..
            } if *order_id == order => Some((*status, *reason)),
            _ => None,
        })
    }

    fn levels(&self, side: Side) -> Vec<(u64, u64)> {
        self.sequencer
            .book(MARKET)
            .expect("the market exists")
            .levels(side, 100)
            .into_iter()
            .map(|level| (level.price.0, level.quantity.0))
            .collect()
    }

    fn cancel(&mut self, account: AccountId, order: OrderId) -> Result<Reply, Reject> {
        self.try_run(Command::CancelOrder {
            account,
            target: OrderRef::Id(order),
        })
    }

    fn amend(
        &mut self,
        account: AccountId,
        order_id: OrderId,
        quantity: Option<u64>,
        price: Option<u64>,
    ) -> Result<OrderView, Reject> {
        match self.try_run(Command::AmendOrder {
            account,
            order_id,
            quantity: quantity.map(Quantity),
            price: price.map(Price),
        })? {
            Reply::Order(view) => Ok(view),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Runs a command that must be rejected, and checks it changed nothing.
    fn rejected(&mut self, command: Command) -> Reject {
        let before = self.snapshot();
        let reject = self.try_run(command).expect_err("the command is rejected");
        assert!(self.events.is_empty(), "a rejected command emitted events");
        assert_eq!(self.snapshot(), before, "a rejected command changed state");
        reject
    }

    fn snapshot(&self) -> Snapshot {
        let balances = self
            .sequencer
            .ledger()
            .accounts()
            .iter()
            .map(|account| account.balances)
            .collect();
        (
            balances,
            self.levels(Side::Buy),
            self.levels(Side::Sell),
            self.sequencer.last_seq(),
        )
    }
}

fn limit(account: AccountId, side: Side, price: u64, lots: u64) -> NewOrder {
    NewOrder {
        account,
        market: MARKET,
        side,
        order_type: OrderType::Limit,
        price: Some(Price(price)),
        quantity: Quantity(lots),
        time_in_force: TimeInForce::GoodTillCanceled,
        post_only: false,
        client_order_id: None,
        self_trade_prevention: SelfTradePrevention::CancelTaker,
    }
}

fn market(account: AccountId, side: Side, lots: u64) -> NewOrder {
    NewOrder {
        order_type: OrderType::Market,
        price: None,
        time_in_force: TimeInForce::ImmediateOrCancel,
        ..limit(account, side, 1, lots)
    }
}

/// Runs each scenario against both books.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod level_book {
            $(#[test] fn $name() { super::$name::<super::LevelBook>(); })*
        }
        mod reference_book {
            $(#[test] fn $name() { super::$name::<super::ReferenceBook>(); })*
        }
    };
}

scenarios!(
    a_limit_buy_rests_and_holds_its_notional,
    a_crossing_limit_fills_at_the_makers_price_and_refunds_the_difference,
    the_unfilled_rest_of_a_crossing_limit_rests_at_its_price,
    makers_fill_in_price_then_time_priority,
    a_market_buy_walks_the_book_until_its_funds_run_out,
    a_market_buy_stops_at_its_price_cap,
    a_market_sell_is_capped_by_the_sellers_divmids,
    a_market_order_without_enough_funds_for_a_lot_is_rejected,
    ioc_cancels_what_does_not_fill_at_once,
    fok_fills_entirely_or_changes_nothing,
    post_only_rests_or_is_rejected_whole,
    stp_cancel_taker_keeps_the_maker,
    stp_cancel_maker_removes_the_resting_order_and_keeps_matching,
    stp_cancel_both_ends_both_orders,
    stp_decrement_reduces_both_without_a_trade,
    canceling_releases_the_hold_and_only_the_owner_may_cancel,
    cancel_all_ends_every_open_order_of_the_account,
    amending_down_keeps_priority_and_releases_funds,
    amending_the_price_loses_priority_and_may_match,
    amending_to_the_filled_quantity_ends_the_order,
    amending_up_needs_the_funds,
    client_order_ids_make_retries_safe,
    client_order_ids_per_account_are_bounded,
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
    let order = h.place(NewOrder {
        price: Some(Price(9_999)),
        ..market(buyer, Side::Buy, 2_000)
    });
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

fn ioc_cancels_what_does_not_fill_at_once<B: OrderBook>() {
    let mut h = Harness::<B>::new();
    let seller = h.trader(0, 10 * DVM);
    let buyer = h.trader(100 * USD, 0);
    h.limit(seller, Side::Sell, 5_000, 400);
    let order = h.place(NewOrder {
        time_in_force: TimeInForce::ImmediateOrCancel,
        ..limit(buyer, Side::Buy, 5_000, 1_000)
    });
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
    let fok = NewOrder {
        time_in_force: TimeInForce::FillOrKill,
        ..limit(buyer, Side::Buy, 5_100, 801)
    };
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
    let order = h.place(NewOrder {
        quantity: Quantity(800),
        ..fok
    });
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
    let post_only = NewOrder {
        post_only: true,
        ..limit(buyer, Side::Buy, 5_000, 100)
    };
    let order = h.place(post_only.clone());
    assert_eq!(order.status, OrderStatus::Rejected);
    assert_eq!(h.holdings(buyer), (100 * USD, 0, 0, 0));
    let order = h.place(NewOrder {
        price: Some(Price(4_999)),
        ..post_only
    });
    assert_eq!(order.status, OrderStatus::Open);
    assert_eq!(h.levels(Side::Buy), vec![(4_999, 100)]);
}

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
    let bid = h.place(NewOrder {
        self_trade_prevention: SelfTradePrevention::CancelMaker,
        ..limit(trader, Side::Buy, 5_000, 100)
    });
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
    let bid = h.place(NewOrder {
        self_trade_prevention: SelfTradePrevention::CancelBoth,
        ..limit(trader, Side::Buy, 5_000, 100)
    });
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
    let bid = h.place(NewOrder {
        self_trade_prevention: SelfTradePrevention::Decrement,
        ..limit(trader, Side::Buy, 5_000, 400)
    });
    assert!(h.fills().is_empty());
    assert_eq!(
        (bid.status, bid.quantity),
        (OrderStatus::Canceled, Quantity(0))
    );
    let ask = h
        .sequencer
        .open_order(own_ask.order_id)
        .expect("the ask rests");
    assert_eq!((ask.quantity, ask.filled), (Quantity(600), Quantity(0)));
    // 6 DVM still held by the ask, nothing by the bid.
    assert_eq!(h.holdings(trader), (100 * USD, 0, 4 * DVM, 6 * DVM));
    // A larger decrementing bid ends the ask and rests what is left of itself.
    let bid = h.place(NewOrder {
        self_trade_prevention: SelfTradePrevention::Decrement,
        ..limit(trader, Side::Buy, 5_000, 1_000)
    });
    assert_eq!(
        h.done(own_ask.order_id),
        Some((OrderStatus::Canceled, DoneReason::SelfTrade))
    );
    assert_eq!(
        (bid.status, bid.quantity),
        (OrderStatus::Open, Quantity(400))
    );
    assert_eq!(h.holdings(trader), (98 * USD, 2 * USD, 10 * DVM, 0));
}

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
    assert_eq!(amended.quantity, Quantity(400));
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
    assert_eq!(amended.quantity, Quantity(2_000));
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
    let reject = h.rejected(Command::PlaceOrder(NewOrder {
        quantity: Quantity(200),
        ..order.clone()
    }));
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
    let reused = h.place(NewOrder {
        quantity: Quantity(200),
        ..order
    });
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
    h.place(NewOrder {
        time_in_force: TimeInForce::ImmediateOrCancel,
        ..limit(a, Side::Buy, 4_000, 1)
    });
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
            NewOrder {
                price: None,
                ..limit(buyer, Side::Buy, 5_000, 1)
            },
            "price",
        ),
        (
            NewOrder {
                market: MarketId(3),
                ..limit(buyer, Side::Buy, 5_000, 1)
            },
            "market",
        ),
        (
            NewOrder {
                post_only: true,
                ..market(buyer, Side::Buy, 1)
            },
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

// Ledger scenarios run once: they do not touch a book.

#[test]
fn buying_divmids_charges_the_tier_price_rounded_up() {
    let mut h = Harness::<LevelBook>::new();
    let buyer = h.trader(10 * USD, 0);
    // 0.6666666 USD per DVM, more places than USD holds.
    h.run(Command::SetIssuePrice {
        tier: Tier::Public,
        price: IssuePrice(666_666_600_000),
    });
    let reply = h.run(Command::BuyDivmids {
        account: buyer,
        quantity: Amount(3),
        max_price: IssuePrice(IssuePrice::UNITS_PER_USD),
        idempotency_key: "buy-1".into(),
    });
    // 0.000003 DVM cost 0.0000019999998 USD, charged as 0.000002.
    assert!(matches!(
        reply,
        Reply::DivmidsBought {
            cost: Amount(2),
            ..
        }
    ));
    assert_eq!(h.holdings(buyer), (10 * USD - 2, 0, 3, 0));
    let treasury = h.sequencer.ledger().balances(crate::ledger::TREASURY);
    assert_eq!(treasury[Asset::Usd.index()].available, Amount(2));
    // A price above the buyer's maximum refuses the sale.
    let reject = h.rejected(Command::BuyDivmids {
        account: buyer,
        quantity: Amount(DVM),
        max_price: IssuePrice(600_000_000_000),
        idempotency_key: "buy-2".into(),
    });
    assert_eq!(
        reject.to_string(),
        "max_price: the issue price is above max_price"
    );
}

#[test]
fn subscribers_buy_at_their_own_tier_price() {
    let mut h = Harness::<LevelBook>::new();
    let subscriber = match h.run(Command::CreateAccount {
        name: "sub".into(),
        role: Role::Trader,
        tier: Tier::Subscriber,
        token_hash: [1; 32],
    }) {
        Reply::AccountCreated { account } => account,
        other => panic!("unexpected reply {other:?}"),
    };
    h.run(Command::Deposit {
        account: subscriber,
        source: FundingSourceKind::Paypal,
        amount: Amount(10 * USD),
        source_reference: "someone@example.com".into(),
        idempotency_key: "dep".into(),
    });
    let buy = Command::BuyDivmids {
        account: subscriber,
        quantity: Amount(10 * DVM),
        max_price: IssuePrice(IssuePrice::UNITS_PER_USD),
        idempotency_key: "buy".into(),
    };
    let reject = h.rejected(buy.clone());
    assert_eq!(
        reject.to_string(),
        "tier: the issuer has not set a price for this tier"
    );
    h.run(Command::SetIssuePrice {
        tier: Tier::Subscriber,
        price: IssuePrice(IssuePrice::UNITS_PER_USD / 2),
    });
    h.run(buy);
    assert_eq!(h.holdings(subscriber), (5 * USD, 0, 10 * DVM, 0));
}

#[test]
fn keyed_commands_apply_once_and_refuse_a_reused_key() {
    let mut h = Harness::<LevelBook>::new();
    let trader = h.trader(0, 0);
    let deposit = Command::Deposit {
        account: trader,
        source: FundingSourceKind::Egold,
        amount: Amount(7 * USD),
        source_reference: "123456".into(),
        idempotency_key: "d-1".into(),
    };
    let first = h.run(deposit.clone());
    let seq = h.sequencer.last_seq();
    assert_eq!(h.run(deposit), first);
    assert_eq!(h.sequencer.last_seq(), seq, "a retry emits nothing");
    assert_eq!(h.holdings(trader), (7 * USD, 0, 0, 0));
    let reject = h.rejected(Command::Deposit {
        account: trader,
        source: FundingSourceKind::Egold,
        amount: Amount(8 * USD),
        source_reference: "123456".into(),
        idempotency_key: "d-1".into(),
    });
    assert_eq!(
        reject,
        Reject::AlreadyExists {
            field: "idempotency_key"
        }
    );
    let mint = Command::Mint {
        amount: Amount(5 * DVM),
        memo: "more".into(),
        idempotency_key: "m-2".into(),
    };
    let first = h.run(mint.clone());
    assert_eq!(h.run(mint), first);
    assert_eq!(h.sequencer.supply().minted, Amount(1_000_005 * DVM));
}

#[test]
fn services_charge_divmids_into_revenue_and_supply_balances() {
    let mut h = Harness::<LevelBook>::new();
    let trader = h.trader(0, 2 * DVM);
    let service = h.account(Role::Service);
    let charge = |amount: u64, key: &str| Command::Charge {
        service,
        account: trader,
        amount: Amount(amount),
        memo: "api call".into(),
        idempotency_key: key.into(),
    };
    h.run(charge(1, "c-1"));
    h.run(charge(1, "c-1"));
    h.run(charge(250, "c-2"));
    assert_eq!(h.holdings(trader), (0, 0, 2 * DVM - 251, 0));
    let reject = h.rejected(charge(2 * DVM, "c-3"));
    assert!(matches!(
        reject,
        Reject::InsufficientFunds {
            asset: Asset::Dvm,
            ..
        }
    ));
    let supply = h.sequencer.supply();
    assert_eq!(supply.spent, Amount(251));
    assert_eq!(supply.circulating, Amount(2 * DVM - 251));
    assert_eq!(
        supply.treasury.0 + supply.circulating.0 + supply.spent.0,
        supply.minted.0
    );
    // Only a service charges, and only a trader is charged.
    let reject = h.rejected(Command::Charge {
        service: trader,
        account: trader,
        amount: Amount(1),
        memo: Box::default(),
        idempotency_key: "c-4".into(),
    });
    assert!(matches!(
        reject,
        Reject::PermissionDenied {
            field: "service",
            ..
        }
    ));
}

#[test]
fn withdrawals_take_only_available_dollars() {
    let mut h = Harness::<LevelBook>::new();
    let trader = h.trader(10 * USD, 0);
    h.limit(trader, Side::Buy, 5_000, 1_000);
    let reject = h.rejected(Command::Withdraw {
        account: trader,
        amount: Amount(6 * USD),
        destination: "bank".into(),
        idempotency_key: "w-1".into(),
    });
    assert!(matches!(
        reject,
        Reject::InsufficientFunds {
            needed: 6_000_000,
            available: 5_000_000,
            ..
        }
    ));
    let reply = h.run(Command::Withdraw {
        account: trader,
        amount: Amount(5 * USD),
        destination: "bank".into(),
        idempotency_key: "w-1".into(),
    });
    assert_eq!(h.holdings(trader), (0, 5 * USD, 0, 0));
    assert!(matches!(reply, Reply::Funds(_)));
    assert_eq!(h.sequencer.ledger().entered()[Asset::Usd.index()], 5 * USD);
}

#[test]
fn every_event_gets_the_next_sequence_number() {
    let mut h = Harness::<LevelBook>::new();
    let seller = h.trader(0, 10 * DVM);
    let buyer = h.trader(100 * USD, 0);
    h.limit(seller, Side::Sell, 5_000, 100);
    let before = h.sequencer.last_seq();
    h.limit(buyer, Side::Buy, 5_000, 100);
    let seqs: Vec<u64> = h.events.iter().map(|event| event.seq).collect();
    let expected: Vec<u64> = (before + 1..=before + seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
    assert!(seqs.len() >= 3, "accepted, fill and two order-done events");
}

#[test]
fn account_creation_validates_its_fields() {
    let mut h = Harness::<LevelBook>::new();
    let reject = h.rejected(Command::CreateAccount {
        name: Box::default(),
        role: Role::Trader,
        tier: Tier::Public,
        token_hash: [0; 32],
    });
    assert_eq!(reject.to_string(), "name: is required");
    let reject = h.rejected(Command::CreateAccount {
        name: "boss".into(),
        role: Role::Issuer,
        tier: Tier::Public,
        token_hash: [0; 32],
    });
    assert_eq!(
        reject.to_string(),
        "role: must be ROLE_TRADER or ROLE_SERVICE"
    );
}

#[test]
fn both_books_stay_identical_through_a_scenario() {
    let mut fast = Harness::<LevelBook>::new();
    let mut reference = Harness::<ReferenceBook>::new();
    for h in [&mut fast as &mut dyn Drive, &mut reference] {
        h.drive();
    }
    assert_eq!(fast.events, reference.events);
    assert_eq!(fast.levels(Side::Buy), reference.levels(Side::Buy));
    assert_eq!(fast.levels(Side::Sell), reference.levels(Side::Sell));
}

trait Drive {
    fn drive(&mut self);
}

impl<B: OrderBook> Drive for Harness<B> {
    fn drive(&mut self) {
        let seller = self.trader(0, 100 * DVM);
        let buyer = self.trader(1_000 * USD, 0);
        for (index, price) in [5_000, 5_100, 4_900, 5_000, 5_200].into_iter().enumerate() {
            self.limit(seller, Side::Sell, price, 100 + index as u64);
        }
        self.limit(buyer, Side::Buy, 5_100, 450);
    }
}
