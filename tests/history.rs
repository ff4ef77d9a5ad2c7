//! History read from the store: an account's events newest first and the events after a
//! sequence number, paginated, must equal what the journal holds, whether the account
//! index is complete, partial or absent, and never go past the committed sequence number.

use divmid::command::{Command, NewOrder};
use divmid::config::EngineConfig;
use divmid::engine::LevelBook;
use divmid::event::{Event, EventKind, OrderView};
use divmid::pipeline::{Pipeline, PipelineConfig};
use divmid::store::{accounts_of, recover, History, Store};
use divmid::types::{
    AccountId, Amount, FundingSourceKind, IssuePrice, MarketId, OrderId, OrderTerms, OrderType,
    Price, Quantity, Role, SelfTradePrevention, Side, Tier, TimeInForce,
};

fn commands() -> Vec<Command> {
    let mut commands = vec![
        Command::Mint {
            amount: Amount(1_000_000_000_000),
            memo: Box::default(),
            idempotency_key: "mint".into(),
        },
        Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(IssuePrice::UNITS_PER_USD),
        },
    ];
    for account in 3..6 {
        commands.push(Command::CreateAccount {
            name: format!("trader {account}").into(),
            role: Role::Trader,
            tier: Tier::Public,
            token_hash: [0; 32],
        });
        commands.push(Command::Deposit {
            account: AccountId(account),
            source: FundingSourceKind::Egold,
            amount: Amount(500_000_000),
            source_reference: "123456".into(),
            idempotency_key: "fund".into(),
        });
        commands.push(Command::BuyDivmids {
            account: AccountId(account),
            quantity: Amount(100_000_000),
            max_price: IssuePrice(IssuePrice::UNITS_PER_USD),
            idempotency_key: "buy".into(),
        });
    }
    for index in 0..600u64 {
        commands.push(Command::PlaceOrder(NewOrder {
            account: AccountId(3 + index % 3),
            terms: OrderTerms {
                market: MarketId(0),
                side: if index % 2 == 0 {
                    Side::Sell
                } else {
                    Side::Buy
                },
                order_type: OrderType::Limit,
                price: Some(Price(10_000 + (index * 7) % 11)),
                quantity: Quantity(1 + index % 9),
                time_in_force: TimeInForce::GoodTillCanceled,
                post_only: false,
                self_trade_prevention: SelfTradePrevention::CancelMaker,
            },
            // A third of them with the longest client order id there may be: 128 such
            // views exceed what one sled value holds, so their buckets are kept in parts.
            client_order_id: index
                .is_multiple_of(3)
                .then(|| format!("{index:0>width$}", width = KEY_LENGTH_MAX).into()),
        }));
    }
    commands
}

/// The longest key `engine.limits.key_length_max` allows.
const KEY_LENGTH_MAX: usize = 1_024;

/// The default engine, taking client order ids as long as they may be.
fn engine_config() -> EngineConfig {
    let mut engine = EngineConfig::default();
    engine.limits.key_length_max = KEY_LENGTH_MAX;
    engine
}

/// A store whose journal holds `commands()`, not indexed yet: its history, every event
/// it holds and the last one's sequence number.
struct Journaled {
    history: History,
    events: Vec<Event>,
    committed: u64,
    /// Kept open, and its directory kept, while the test reads.
    _store: Store,
    _directory: tempfile::TempDir,
}

fn journaled() -> Journaled {
    let directory = tempfile::tempdir().expect("a temporary directory");
    {
        let store = Store::open(directory.path()).expect("the store opens");
        let recovered = recover::<LevelBook>(&store, engine_config()).expect("recovers");
        let config = PipelineConfig {
            record_events_max: 16,
            ..PipelineConfig::default()
        };
        let pipeline = Pipeline::start(recovered.sequencer, store, config);
        for command in commands() {
            pipeline
                .submit(0, command)
                .expect("queued")
                .blocking_recv()
                .expect("an outcome")
                .expect("accepted");
        }
        pipeline.shutdown();
    }
    let store = Store::open(directory.path()).expect("the store reopens");
    let events: Vec<Event> = store
        .records_after(0)
        .flat_map(|record| record.expect("readable").events)
        .collect();
    Journaled {
        history: store.history().expect("history"),
        committed: events.last().expect("events").seq,
        events,
        _store: store,
        _directory: directory,
    }
}

/// The sequence numbers of the events that concern the account, newest first.
fn history_of(events: &[Event], account: AccountId) -> Vec<u64> {
    let mut seqs: Vec<u64> = events
        .iter()
        .filter(|event| accounts_of(event).any(|of| of == account))
        .map(|event| event.seq)
        .collect();
    seqs.reverse();
    seqs
}

/// Every page of the account's history, concatenated.
fn all_pages(history: &History, account: AccountId, page: usize, committed: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut before = None;
    loop {
        let result = history
            .account_events(account, before, page, committed)
            .expect("readable");
        assert!(result.events.len() <= page);
        seqs.extend(result.events.iter().map(|event| event.seq));
        match result.next {
            Some(next) => before = Some(next),
            None => return seqs,
        }
    }
}

#[test]
fn an_accounts_history_pages_newest_first_with_or_without_the_index() {
    let fixture = journaled();
    let (history, events, committed) = (&fixture.history, &fixture.events, fixture.committed);
    let trader = AccountId(4);
    let expected = history_of(events, trader);
    assert!(expected.len() > 300, "the trader has a long history");

    // No index yet: everything comes from the journal.
    assert_eq!(all_pages(history, trader, 50, committed), expected);
    // Part indexed: the newest events come from the journal, older ones from the index.
    history.index_pending(committed, 20).expect("indexes");
    let indexed = history.indexed_seq().expect("readable");
    assert!(indexed > 0 && indexed < committed);
    assert_eq!(all_pages(history, trader, 37, committed), expected);
    // Fully indexed.
    while history.index_pending(committed, 20).expect("indexes") > 0 {}
    assert_eq!(history.indexed_seq().expect("readable"), committed);
    assert_eq!(all_pages(history, trader, 50, committed), expected);
    assert_eq!(all_pages(history, trader, 1, committed), expected);

    // Nothing past the committed sequence number is shown.
    let bound = committed / 2;
    let seen = all_pages(history, trader, 50, bound);
    assert!(seen.iter().all(|seq| *seq <= bound));
    let expected_bounded: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|seq| *seq <= bound)
        .collect();
    assert_eq!(seen, expected_bounded);
}

#[test]
fn trades_after_a_sequence_number_page_in_order() {
    let fixture = journaled();
    let (history, events, committed) = (&fixture.history, &fixture.events, fixture.committed);
    let is_fill = |event: &Event| matches!(event.kind, EventKind::Fill(_));
    let expected: Vec<u64> = events
        .iter()
        .filter(|event| is_fill(event))
        .map(|event| event.seq)
        .collect();
    assert!(expected.len() > 50, "the flow trades");
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = history
            .events_after(after, 25, 10_000, committed, is_fill)
            .expect("readable");
        seen.extend(page.events.iter().map(|event| event.seq));
        match page.next {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seen, expected);
    // From the middle.
    let middle = expected[expected.len() / 2];
    let page = history
        .events_after(middle, 5, 10_000, committed, is_fill)
        .expect("readable");
    let following: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|seq| *seq > middle)
        .take(5)
        .collect();
    assert_eq!(
        page.events
            .iter()
            .map(|event| event.seq)
            .collect::<Vec<_>>(),
        following
    );
}

#[test]
fn the_indexer_thread_catches_up_behind_the_commits() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(directory.path()).expect("the store opens");
    let history = store.history().expect("history");
    let recovered = recover::<LevelBook>(&store, engine_config()).expect("recovers");
    let mut pipeline = Pipeline::start(recovered.sequencer, store, PipelineConfig::default());
    let submit = |pipeline: &Pipeline, command| {
        pipeline
            .submit(0, command)
            .expect("queued")
            .blocking_recv()
            .expect("an outcome")
            .expect("ok");
    };
    // The first half committed before the indexer starts (it reads those from the
    // journal), the rest after (it takes those as they are committed).
    let mut commands = commands().into_iter();
    let first_half = commands.len() / 2;
    commands
        .by_ref()
        .take(first_half)
        .for_each(|command| submit(&pipeline, command));
    pipeline.start_indexer(history.clone());
    commands.for_each(|command| submit(&pipeline, command));
    let committed = pipeline.committed_seq();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while history.indexed_seq().expect("readable") < committed {
        assert!(
            std::time::Instant::now() < deadline,
            "the indexer catches up"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(pipeline.index_failure(), None);
    pipeline.shutdown();
    drop(history);
    let trader = AccountId(4);
    let store = Store::open(directory.path()).expect("the store reopens");
    let events: Vec<Event> = store
        .records_after(0)
        .flat_map(|record| record.expect("readable").events)
        .collect();
    let expected = history_of(&events, trader);
    assert!(expected.len() > 300, "the trader has a long history");
    let history = store.history().expect("history");
    assert_eq!(history.indexed_seq().expect("readable"), committed);
    assert_eq!(all_pages(&history, trader, 50, committed), expected);
}

#[test]
fn committed_events_handed_over_in_memory_index_as_the_journal_does() {
    let fixture = journaled();
    let (history, events, committed) = (&fixture.history, &fixture.events, fixture.committed);
    // Events that do not continue the index are refused whole, and nothing is indexed.
    let gap = history
        .index_committed(&events[5..40], 1_000)
        .expect("readable");
    assert_eq!(gap, None);
    assert_eq!(history.indexed_seq().expect("readable"), 0);
    let trader = AccountId(4);
    // Handed over in pieces that overlap what is indexed, at most 23 at a time (records
    // hold 16), every third pass read from the journal instead: passes end inside
    // records, and the journal's passes and the queries' scans of what is not indexed
    // yet start inside one.
    assert_eq!(events.first().map(|event| event.seq), Some(1));
    let mut reached = 0;
    for pass in 0.. {
        if reached == committed {
            break;
        }
        if pass % 3 == 2 {
            assert_eq!(history.index_pending(committed, 1).expect("indexes"), 1);
        } else {
            let from = (reached as usize).saturating_sub(5);
            let until = (from + 61).min(events.len());
            let indexed = history
                .index_committed(&events[from..until], 23)
                .expect("readable")
                .expect("continues the index");
            assert!(indexed > 0 && indexed <= 23, "{indexed} indexed");
        }
        reached = history.indexed_seq().expect("readable");
        for (order_id, view) in orders_as_of(events, reached) {
            let found = history.order(OrderId(order_id)).expect("readable");
            assert_eq!(found, Some(view), "order {order_id} at seq {reached}");
        }
        assert_eq!(
            all_pages(history, trader, 37, committed),
            history_of(events, trader),
            "indexed to {reached}"
        );
    }
    for account in 3..6 {
        let account = AccountId(account);
        assert_eq!(
            all_pages(history, account, 50, committed),
            history_of(events, account)
        );
        let newest_first: Vec<OrderView> = orders_as_of(events, committed)
            .into_values()
            .rev()
            .filter(|view| view.account == account)
            .collect();
        assert_eq!(all_order_pages(history, account, 13), newest_first);
    }
}

/// Every order's state as the events up to `bound` leave it, by id.
fn orders_as_of(events: &[Event], bound: u64) -> std::collections::BTreeMap<u64, OrderView> {
    let mut orders = std::collections::BTreeMap::new();
    for event in events.iter().filter(|event| event.seq <= bound) {
        if let EventKind::OrderAccepted(accepted) = &event.kind {
            orders.insert(accepted.order_id.0, accepted.view(event.seq));
        }
        for order_id in event.kind.changed_orders() {
            if let Some(view) = orders.get_mut(&order_id.0) {
                view.apply(&event.kind);
            }
        }
    }
    orders
}

/// Every page of the account's orders, concatenated.
fn all_order_pages(history: &History, account: AccountId, page: usize) -> Vec<OrderView> {
    let mut orders: Vec<OrderView> = Vec::new();
    loop {
        let before = orders.last().map(|order| order.order_id.0);
        let found = history
            .account_orders(account, before, page)
            .expect("readable");
        let full = found.len() == page;
        orders.extend(found);
        if !full {
            return orders;
        }
    }
}

#[test]
fn orders_are_looked_up_and_listed_as_their_events_leave_them_pass_after_pass() {
    let fixture = journaled();
    let (history, events, committed) = (&fixture.history, &fixture.events, fixture.committed);
    let mut passes = 0;
    while history.index_pending(committed, 7).expect("indexes") > 0 {
        passes += 1;
        let indexed = history.indexed_seq().expect("readable");
        let expected = orders_as_of(events, indexed);
        for (order_id, view) in &expected {
            let found = history.order(OrderId(*order_id)).expect("readable");
            assert_eq!(
                found.as_ref(),
                Some(view),
                "order {order_id} at seq {indexed}"
            );
        }
        let beyond = expected.keys().last().copied().unwrap_or(0) + 1;
        assert_eq!(history.order(OrderId(beyond)).expect("readable"), None);
    }
    assert!(passes > 10, "orders change across many passes: {passes}");
    let expected = orders_as_of(events, committed);
    assert!(
        expected.values().any(|view| view.filled.0 > 0),
        "some orders filled"
    );
    for account in 3..6 {
        let account = AccountId(account);
        let newest_first: Vec<OrderView> = expected
            .values()
            .rev()
            .filter(|view| view.account == account)
            .cloned()
            .collect();
        assert_eq!(newest_first.len(), 200);
        assert_eq!(all_order_pages(history, account, 1_000), newest_first);
        assert_eq!(all_order_pages(history, account, 13), newest_first);
    }
    assert!(all_order_pages(history, AccountId(99), 10).is_empty());
}
