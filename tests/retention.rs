//! Retention of idempotency keys and of ended orders' client order ids: kept for
//! `idempotency_retention_ms` of the commands' own time, within which a retry applies at
//! most once; after it the key is free and forgotten, so memory stays flat under a stream
//! of distinct keys; a snapshot holds only live records and continues exactly as the
//! sequencer it was taken from; one account holds a bounded number of keys.

use divmid::command::{Command, NewOrder, OrderRef};
use divmid::config::EngineConfig;
use divmid::engine::{LevelBook, Sequencer};
use divmid::error::Reject;
use divmid::event::Reply;
use divmid::types::{
    AccountId, Amount, Asset, FundingSourceKind, IssuePrice, MarketId, OrderStatus, OrderTerms,
    OrderType, Price, Quantity, Role, SelfTradePrevention, Side, Tier, TimeInForce,
};

const TRADER: AccountId = AccountId(3);
const RETENTION_MS: u64 = 1_000;

fn config(keys_per_account_max: u32) -> EngineConfig {
    let mut config = EngineConfig::default();
    config.limits.idempotency_retention_ms = RETENTION_MS;
    config.limits.idempotency_keys_per_account_max = keys_per_account_max;
    config
}

fn deposit(key: &str) -> Command {
    Command::Deposit {
        account: TRADER,
        source: FundingSourceKind::Card,
        amount: Amount(1_000_000),
        source_reference: "4111111111111111".into(),
        idempotency_key: key.into(),
    }
}

fn order(client_order_id: &str, price: u64) -> Command {
    Command::PlaceOrder(NewOrder {
        account: TRADER,
        terms: OrderTerms {
            market: MarketId(0),
            side: Side::Buy,
            order_type: OrderType::Limit,
            price: Some(Price(price)),
            quantity: Quantity(1),
            time_in_force: TimeInForce::GoodTillCanceled,
            post_only: false,
            self_trade_prevention: SelfTradePrevention::CancelTaker,
        },
        client_order_id: Some(client_order_id.into()),
    })
}

/// A sequencer with the trader's account, at time 0.
fn sequencer(keys_per_account_max: u32) -> Sequencer<LevelBook> {
    let mut sequencer = Sequencer::new(config(keys_per_account_max));
    let mut events = Vec::new();
    let setup = [
        Command::Mint {
            amount: Amount(1_000_000_000),
            memo: "".into(),
            idempotency_key: "mint".into(),
        },
        Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(IssuePrice::UNITS_PER_USD),
        },
        Command::CreateAccount {
            name: "trader".into(),
            role: Role::Trader,
            tier: Tier::Public,
            token_hash: [3; 32],
        },
    ];
    for command in setup {
        sequencer.apply(0, &command, &mut events).expect("set up");
    }
    sequencer
}

fn usd(sequencer: &Sequencer<LevelBook>) -> u64 {
    sequencer.ledger().balances(TRADER)[Asset::Usd.index()]
        .available
        .0
}

#[test]
fn a_retry_within_the_window_applies_once_and_after_it_applies_anew() {
    let mut sequencer = sequencer(1_000);
    let mut events = Vec::new();
    let first = sequencer
        .apply(10, &deposit("d"), &mut events)
        .expect("applied");
    events.clear();
    let retry = sequencer
        .apply(10 + RETENTION_MS - 1, &deposit("d"), &mut events)
        .expect("a retry");
    assert_eq!(retry, first, "the retry answers as the first did");
    assert!(events.is_empty(), "and changes nothing");
    assert_eq!(usd(&sequencer), 1_000_000);
    let reused = sequencer.apply(
        10 + RETENTION_MS - 1,
        &order_deposit_mismatch(),
        &mut events,
    );
    assert_eq!(
        reused,
        Err(Reject::AlreadyExists {
            field: "idempotency_key"
        })
    );
    sequencer
        .apply(10 + RETENTION_MS, &deposit("d"), &mut events)
        .expect("the key is free again");
    assert_eq!(usd(&sequencer), 2_000_000, "applied anew after the window");
}

/// The key "d" with other parameters.
fn order_deposit_mismatch() -> Command {
    Command::Deposit {
        account: TRADER,
        source: FundingSourceKind::Card,
        amount: Amount(7),
        source_reference: "4111111111111111".into(),
        idempotency_key: "d".into(),
    }
}

#[test]
fn keys_held_stay_flat_under_200k_distinct_keys_once_they_age_out() {
    let mut sequencer = sequencer(1_000_000);
    let mut events = Vec::new();
    let mut held_max = 0;
    // One key a millisecond: the window holds about RETENTION_MS of them.
    for index in 0..200_000u64 {
        events.clear();
        sequencer
            .apply(index, &deposit(&format!("key-{index}")), &mut events)
            .expect("applied");
        held_max = held_max.max(sequencer.idempotency_keys_held());
    }
    assert!(
        held_max <= RETENTION_MS as usize + 2,
        "{held_max} keys held at most"
    );
    assert_eq!(usd(&sequencer), 200_000 * 1_000_000);
    let snapshot = sequencer.snapshot();
    assert!(snapshot.idempotency.len() <= RETENTION_MS as usize + 1);
}

#[test]
fn ended_orders_client_ids_are_kept_for_the_window_and_live_ones_always() {
    let mut sequencer = sequencer(1_000);
    let mut events = Vec::new();
    sequencer
        .apply(0, &deposit("fund"), &mut events)
        .expect("funded");
    let placed = |sequencer: &mut Sequencer<LevelBook>, time, id: &str, price| {
        let mut events = Vec::new();
        sequencer.apply(time, &order(id, price), &mut events)
    };
    let live = placed(&mut sequencer, 1, "live", 100).expect("rests");
    let ended = placed(&mut sequencer, 1, "ended", 101).expect("rests");
    let Reply::Placed(ended_id) = ended else {
        panic!("placed: {ended:?}")
    };
    sequencer
        .apply(
            2,
            &Command::CancelOrder {
                account: TRADER,
                target: OrderRef::Client("ended".into()),
            },
            &mut events,
        )
        .expect("canceled");
    // Within the window a lookup finds the order as it ended, and a retry returns it and
    // places nothing.
    let looked_up = sequencer.order_by_client_id(TRADER, "ended");
    assert!(
        matches!(&looked_up, Some(view) if view.order_id == ended_id && view.status == OrderStatus::Canceled),
        "{looked_up:?}"
    );
    let retry = placed(&mut sequencer, 2 + RETENTION_MS - 1, "ended", 101).expect("a retry");
    assert!(matches!(retry, Reply::Order(view) if view.order_id == ended_id));
    // After it, the same id places a new order; the live order's id is still held.
    events.clear();
    sequencer
        .apply(2 + RETENTION_MS, &deposit("tick"), &mut events)
        .expect("time moves on");
    assert_eq!(
        sequencer.client_order_ids_held(),
        1,
        "only the live order's id"
    );
    assert_eq!(sequencer.order_by_client_id(TRADER, "ended"), None);
    assert!(sequencer.order_by_client_id(TRADER, "live").is_some());
    let again = placed(&mut sequencer, 3 + RETENTION_MS, "ended", 101).expect("placed");
    assert!(matches!(again, Reply::Placed(id) if id != ended_id));
    let retry_live = placed(&mut sequencer, 10 * RETENTION_MS, "live", 100).expect("a retry");
    assert!(
        matches!(retry_live, Reply::Order(_)),
        "{retry_live:?} for {live:?}"
    );
}

#[test]
fn a_restored_snapshot_expires_exactly_as_the_sequencer_it_was_taken_from() {
    let mut straight = sequencer(1_000);
    let mut events = Vec::new();
    let commands: Vec<(u64, Command)> = (0..3_000u64)
        .map(|index| {
            let time = index * 3;
            match index % 3 {
                0 => (time, deposit(&format!("k{}", index % 700))),
                1 => (time, order(&format!("c{}", index % 500), 100 + index % 50)),
                _ => (
                    time,
                    Command::CancelAllOrders {
                        account: TRADER,
                        market: None,
                    },
                ),
            }
        })
        .collect();
    let (first_half, second_half) = commands.split_at(commands.len() / 2);
    for (time, command) in first_half {
        events.clear();
        let _ = straight.apply(*time, command, &mut events);
    }
    let mut restored = Sequencer::<LevelBook>::from_snapshot(config(1_000), straight.snapshot())
        .expect("restores");
    for (time, command) in second_half {
        let mut straight_events = Vec::new();
        let mut restored_events = Vec::new();
        let a = straight.apply(*time, command, &mut straight_events);
        let b = restored.apply(*time, command, &mut restored_events);
        assert_eq!(a, b);
        assert_eq!(straight_events, restored_events);
    }
    assert_eq!(straight.state_hash(), restored.state_hash());
    assert!(
        straight.idempotency_keys_held() < 700,
        "old keys were forgotten"
    );
}

#[test]
fn one_account_holds_a_bounded_number_of_keys() {
    let mut sequencer = sequencer(3);
    let mut events = Vec::new();
    for key in ["a", "b", "c"] {
        sequencer
            .apply(0, &deposit(key), &mut events)
            .expect("applied");
    }
    let refused = sequencer.apply(0, &deposit("d"), &mut events);
    assert_eq!(
        refused,
        Err(Reject::LimitExceeded {
            field: "idempotency_keys_per_account_max",
            limit: 3
        })
    );
    assert_eq!(usd(&sequencer), 3_000_000, "the refusal changed nothing");
    // A retry of a held key still answers; once the keys have aged out and a command has
    // moved the clock past them, there is room again.
    assert!(sequencer.apply(0, &deposit("a"), &mut events).is_ok());
    let price = Command::SetIssuePrice {
        tier: Tier::Subscriber,
        price: IssuePrice(1),
    };
    sequencer
        .apply(RETENTION_MS, &price, &mut events)
        .expect("applied");
    sequencer
        .apply(RETENTION_MS, &deposit("d"), &mut events)
        .expect("room once the others expired");
}
