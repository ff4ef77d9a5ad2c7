//! Property tests: random command sequences, rejects included, run through the sequencer
//! on the fast book and on the naive reference book. Both must emit identical events and
//! replies, and after every command the ledger must conserve every asset, each order must
//! hold exactly what it should, and the book must not be crossed. The mixes include
//! charges with automatic top-ups and spend limits, and issue price changes: the supply
//! identity (minted = treasury + circulating + spent) is among the invariants checked.

use divmid::command::{Command, NewOrder, OrderRef};
use divmid::config::EngineConfig;
use divmid::engine::{LevelBook, OrderBook, ReferenceBook, Sequencer};
use divmid::event::Event;
use divmid::ledger::AutoTopUp;
use divmid::market_data::BookReplica;
use divmid::types::{
    AccountId, Amount, FundingSourceKind, IssuePrice, MarketId, OrderId, OrderTerms, OrderType,
    Price, Quantity, Role, SelfTradePrevention, Side, Tier, TimeInForce,
};
use proptest::prelude::*;

const TRADERS: u64 = 4;

/// One random step. Indices are reduced modulo what exists when the step runs.
#[derive(Clone, Debug)]
enum Step {
    Place {
        trader: u64,
        buy: bool,
        market: bool,
        price: u64,
        lots: u64,
        time_in_force: u8,
        post_only: bool,
        stp: u8,
        client_order_id: Option<u8>,
    },
    /// Cancels a known order: as its owner unless `trader` is set, as that trader.
    Cancel {
        trader: Option<u64>,
        order: usize,
    },
    CancelByClientId {
        trader: u64,
        client_order_id: u8,
    },
    CancelAll {
        trader: u64,
    },
    /// Amends a known order: as its owner unless `trader` is set, as that trader.
    Amend {
        trader: Option<u64>,
        order: usize,
        lots: Option<u64>,
        price: Option<u64>,
    },
    Deposit {
        trader: u64,
        amount: u64,
    },
    Withdraw {
        trader: u64,
        amount: u64,
    },
    Charge {
        trader: u64,
        amount: u64,
    },
    SetAutoTopUp {
        trader: u64,
        enabled: bool,
        threshold: u64,
        target: u64,
        max_price: u64,
        monthly_max_usd: u64,
    },
    SetSpendLimit {
        trader: u64,
        daily_max: Option<u64>,
    },
    SetIssuePrice {
        price: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let trader = 0..TRADERS;
    prop_oneof![
        10 => (
            trader.clone(),
            any::<bool>(),
            prop::bool::weighted(0.15),
            4_990u64..5_010,
            1u64..60,
            0u8..3,
            prop::bool::weighted(0.1),
            0u8..4,
            prop::option::weighted(0.2, 0u8..4),
        )
            .prop_map(
                |(trader, buy, market, price, lots, time_in_force, post_only, stp, client_order_id)| {
                    Step::Place {
                        trader,
                        buy,
                        market,
                        price,
                        lots,
                        time_in_force,
                        post_only,
                        stp,
                        client_order_id,
                    }
                }
            ),
        3 => (prop::option::weighted(0.2, trader.clone()), any::<usize>())
            .prop_map(|(trader, order)| Step::Cancel { trader, order }),
        1 => (trader.clone(), 0u8..4)
            .prop_map(|(trader, client_order_id)| Step::CancelByClientId { trader, client_order_id }),
        1 => trader.clone().prop_map(|trader| Step::CancelAll { trader }),
        4 => (
            prop::option::weighted(0.2, trader.clone()),
            any::<usize>(),
            prop::option::of(0u64..80),
            prop::option::of(4_990u64..5_010),
        )
            .prop_map(|(trader, order, lots, price)| Step::Amend { trader, order, lots, price }),
        1 => (trader.clone(), 0u64..2_000_000).prop_map(|(trader, amount)| Step::Deposit { trader, amount }),
        1 => (trader.clone(), 0u64..2_000_000).prop_map(|(trader, amount)| Step::Withdraw { trader, amount }),
        3 => (trader.clone(), 0u64..3_000_000).prop_map(|(trader, amount)| Step::Charge { trader, amount }),
        1 => (
            trader.clone(),
            prop::bool::weighted(0.8),
            0u64..2_000_000,
            0u64..4_000_000,
            0u64..(IssuePrice::UNITS_PER_USD),
            0u64..20_000_000,
        )
            .prop_map(|(trader, enabled, threshold, target, max_price, monthly_max_usd)| {
                Step::SetAutoTopUp { trader, enabled, threshold, target, max_price, monthly_max_usd }
            }),
        1 => (trader, prop::option::of(0u64..5_000_000))
            .prop_map(|(trader, daily_max)| Step::SetSpendLimit { trader, daily_max }),
        1 => (1u64..(IssuePrice::UNITS_PER_USD)).prop_map(|price| Step::SetIssuePrice { price }),
    ]
}

/// Accounts 3..3+TRADERS are traders; the next one is a service.
fn trader_id(trader: u64) -> AccountId {
    AccountId(3 + trader)
}

const SERVICE: AccountId = AccountId(3 + TRADERS);

fn setup() -> Vec<Command> {
    let mut commands = vec![
        Command::Mint {
            amount: Amount(10_000_000_000),
            memo: Box::default(),
            idempotency_key: "genesis".into(),
        },
        Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(IssuePrice::UNITS_PER_USD / 2),
        },
    ];
    for trader in 0..TRADERS {
        commands.push(Command::CreateAccount {
            name: format!("trader {trader}").into(),
            role: Role::Trader,
            tier: Tier::Public,
            token_hash: [trader as u8; 32],
        });
        commands.push(Command::Deposit {
            account: trader_id(trader),
            source: FundingSourceKind::Card,
            amount: Amount(50_000_000),
            source_reference: "4111111111111111".into(),
            idempotency_key: "initial deposit".into(),
        });
        commands.push(Command::BuyDivmids {
            account: trader_id(trader),
            quantity: Amount(20_000_000),
            max_price: IssuePrice(IssuePrice::UNITS_PER_USD),
            idempotency_key: "initial purchase".into(),
        });
    }
    commands.push(Command::CreateAccount {
        name: "service".into(),
        role: Role::Service,
        tier: Tier::Public,
        token_hash: [99; 32],
    });
    commands
}

fn command_of(step: &Step, orders: &[(OrderId, AccountId)], index: usize) -> Command {
    let pick = |order: usize, trader: Option<u64>| {
        let (order_id, owner) = orders
            .get(order % orders.len().max(1))
            .copied()
            .unwrap_or((OrderId(0), trader_id(0)));
        (order_id, trader.map_or(owner, trader_id))
    };
    let key = format!("k{index}");
    match *step {
        Step::Place {
            trader,
            buy,
            market,
            price,
            lots,
            time_in_force,
            post_only,
            stp,
            client_order_id,
        } => Command::PlaceOrder(NewOrder {
            account: trader_id(trader),
            terms: OrderTerms {
                market: MarketId(0),
                side: if buy { Side::Buy } else { Side::Sell },
                order_type: if market {
                    OrderType::Market
                } else {
                    OrderType::Limit
                },
                price: if market && price % 2 == 0 {
                    None
                } else {
                    Some(Price(price))
                },
                quantity: Quantity(lots),
                time_in_force: [
                    TimeInForce::GoodTillCanceled,
                    TimeInForce::ImmediateOrCancel,
                    TimeInForce::FillOrKill,
                ][usize::from(time_in_force)],
                post_only,
                self_trade_prevention: [
                    SelfTradePrevention::CancelTaker,
                    SelfTradePrevention::CancelMaker,
                    SelfTradePrevention::CancelBoth,
                    SelfTradePrevention::Decrement,
                ][usize::from(stp)],
            },
            client_order_id: client_order_id.map(|id| format!("c{id}").into()),
        }),
        Step::Cancel { trader, order } => {
            let (order_id, account) = pick(order, trader);
            Command::CancelOrder {
                account,
                target: OrderRef::Id(order_id),
            }
        }
        Step::CancelByClientId {
            trader,
            client_order_id,
        } => Command::CancelOrder {
            account: trader_id(trader),
            target: OrderRef::Client(format!("c{client_order_id}").into()),
        },
        Step::CancelAll { trader } => Command::CancelAllOrders {
            account: trader_id(trader),
            market: None,
        },
        Step::Amend {
            trader,
            order,
            lots,
            price,
        } => {
            let (order_id, account) = pick(order, trader);
            Command::AmendOrder {
                account,
                order_id,
                quantity: lots.map(Quantity),
                price: price.map(Price),
            }
        }
        Step::Deposit { trader, amount } => Command::Deposit {
            account: trader_id(trader),
            source: FundingSourceKind::Paypal,
            amount: Amount(amount),
            source_reference: "someone@example.com".into(),
            idempotency_key: key.into(),
        },
        Step::Withdraw { trader, amount } => Command::Withdraw {
            account: trader_id(trader),
            amount: Amount(amount),
            destination: "bank".into(),
            idempotency_key: key.into(),
        },
        Step::Charge { trader, amount } => Command::Charge {
            service: SERVICE,
            account: trader_id(trader),
            amount: Amount(amount),
            memo: Box::default(),
            idempotency_key: key.into(),
        },
        Step::SetAutoTopUp {
            trader,
            enabled,
            threshold,
            target,
            max_price,
            monthly_max_usd,
        } => Command::SetAutoTopUp {
            account: trader_id(trader),
            settings: AutoTopUp {
                enabled,
                threshold: Amount(threshold),
                target: Amount(target),
                max_price: IssuePrice(max_price),
                monthly_max_usd: Amount(monthly_max_usd),
            },
        },
        Step::SetSpendLimit { trader, daily_max } => Command::SetSpendLimit {
            account: trader_id(trader),
            service: SERVICE,
            daily_max: daily_max.map(Amount),
        },
        Step::SetIssuePrice { price } => Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(price),
        },
    }
}

fn assert_sound<B: OrderBook>(sequencer: &Sequencer<B>) {
    if let Err(broken) = sequencer.check_invariants() {
        panic!("invariant broken: {broken}");
    }
    let book = sequencer.book(MarketId(0)).expect("the market exists");
    if let (Some(bid), Some(ask)) = (book.best_price(Side::Buy), book.best_price(Side::Sell)) {
        assert!(bid < ask, "crossed book: {bid:?} >= {ask:?}");
    }
}

proptest! {
    // 200 random flows per property; `PROPTEST_CASES=N` runs N instead.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(200),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_fast_book_and_the_reference_book_emit_identical_events(
        steps in prop::collection::vec(step(), 1..500)
    ) {
        let mut fast = Sequencer::<LevelBook>::new(EngineConfig::default());
        let mut reference = Sequencer::<ReferenceBook>::new(EngineConfig::default());
        let mut fast_events: Vec<Event> = Vec::new();
        let mut reference_events: Vec<Event> = Vec::new();
        for command in setup() {
            fast.apply(0, &command, &mut fast_events).expect("setup is accepted");
            reference.apply(0, &command, &mut reference_events).expect("setup is accepted");
        }
        let mut orders: Vec<(OrderId, AccountId)> = Vec::new();
        // Market data's replica of the book, from events alone.
        let mut replica = BookReplica::new(1, fast.last_seq());
        for (index, step) in steps.iter().enumerate() {
            let command = command_of(step, &orders, index);
            fast_events.clear();
            reference_events.clear();
            // Five hours a step: days and UTC months pass (spend limits and top-up caps
            // reset), and retention forgets keys.
            let time = index as u64 * 5 * 3_600_000;
            let fast_reply = fast.apply(time, &command, &mut fast_events);
            let reference_reply = reference.apply(time, &command, &mut reference_events);
            prop_assert_eq!(&fast_reply, &reference_reply, "replies differ for {:?}", command);
            prop_assert_eq!(&fast_events, &reference_events, "events differ for {:?}", command);
            if let Ok(reply) = &fast_reply {
                let order = reply.order(&fast_events);
                if matches!(command, Command::PlaceOrder(_)) {
                    prop_assert!(order.is_some(), "no order in the reply to {:?}", command);
                }
                if let Some(order) = order {
                    orders.push((order.order_id, order.account));
                }
            }
            if fast_reply.is_err() {
                prop_assert!(fast_events.is_empty(), "a reject emitted events");
            }
            assert_sound(&fast);
            assert_sound(&reference);
            let fast_book = fast.book(MarketId(0)).expect("the market exists");
            let reference_book = reference.book(MarketId(0)).expect("the market exists");
            for event in &fast_events {
                replica.apply(event);
            }
            for side in [Side::Buy, Side::Sell] {
                prop_assert_eq!(fast_book.levels(side, 1_000), reference_book.levels(side, 1_000));
                prop_assert_eq!(replica.levels(MarketId(0), side, 1_000), fast_book.levels(side, 1_000));
            }
        }
    }

    #[test]
    fn a_snapshot_plus_replay_reaches_the_same_state_as_a_straight_replay(
        steps in prop::collection::vec(step(), 1..200),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut straight = Sequencer::<LevelBook>::new(EngineConfig::default());
        let mut events = Vec::new();
        for command in setup() {
            straight.apply(0, &command, &mut events).expect("setup is accepted");
        }
        let cut = cut.index(steps.len());
        let mut orders: Vec<(OrderId, AccountId)> = Vec::new();
        let mut restored: Option<Sequencer<LevelBook>> = None;
        for (index, step) in steps.iter().enumerate() {
            if index == cut {
                let snapshot = straight.snapshot();
                let bytes = postcard::to_allocvec(&snapshot).expect("a snapshot encodes");
                // What the replica writes, encoded from the state where it is, is the
                // same bytes.
                prop_assert_eq!(&straight.encoded_snapshot().body, &bytes);
                let decoded = postcard::from_bytes(&bytes).expect("a snapshot decodes");
                prop_assert_eq!(&snapshot, &decoded);
                let copy = Sequencer::<LevelBook>::from_snapshot(EngineConfig::default(), decoded)
                    .expect("a snapshot restores");
                prop_assert_eq!(copy.state_hash(), straight.state_hash());
                restored = Some(copy);
            }
            let command = command_of(step, &orders, index);
            let mut straight_events = Vec::new();
            let reply = straight.apply(index as u64, &command, &mut straight_events);
            if let Some(copy) = restored.as_mut() {
                let mut copy_events = Vec::new();
                let copy_reply = copy.apply(index as u64, &command, &mut copy_events);
                prop_assert_eq!(&copy_reply, &reply);
                prop_assert_eq!(&copy_events, &straight_events);
            }
            if let Some(order) = reply.ok().and_then(|reply| reply.order(&straight_events)) {
                orders.push((order.order_id, order.account));
            }
        }
        if let Some(copy) = restored {
            prop_assert_eq!(copy.state_hash(), straight.state_hash());
            prop_assert_eq!(copy.snapshot(), straight.snapshot());
        }
    }

    #[test]
    fn replaying_the_same_commands_gives_the_same_events(
        steps in prop::collection::vec(step(), 1..150)
    ) {
        let run = || {
            let mut sequencer = Sequencer::<LevelBook>::new(EngineConfig::default());
            let mut events = Vec::new();
            let mut orders: Vec<(OrderId, AccountId)> = Vec::new();
            for command in setup() {
                sequencer.apply(0, &command, &mut events).expect("setup is accepted");
            }
            for (index, step) in steps.iter().enumerate() {
                let command = command_of(step, &orders, index);
                let before = events.len();
                let reply = sequencer.apply(index as u64, &command, &mut events);
                if let Some(order) = reply.ok().and_then(|reply| reply.order(&events[before..])) {
                    orders.push((order.order_id, order.account));
                }
            }
            events
        };
        prop_assert_eq!(run(), run());
    }
}
