//! The durable pipeline end to end, on a real sled store in a temporary directory:
//! outcomes only after commit, recovery to the same state, snapshots that bound replay,
//! fail-stop on a failing journal, and back-pressure on a full queue.

use std::time::Duration;

use divmid::api::book_stream::replay_journal;
use divmid::command::{Command, NewOrder};
use divmid::config::EngineConfig;
use divmid::engine::{LevelBook, OrderBook, Sequencer};
use divmid::event::Reply;
use divmid::market_data::BookReplica;
use divmid::pipeline::{Answer, Failure, Outcome, Pipeline, PipelineConfig, Query};
use divmid::pipeline::{FaultyJournal, Journal, JournalError, JournalRecord};
use divmid::store::{recover, Snapshots, Store, StoreError};
use divmid::types::{
    AccountId, Amount, FundingSourceKind, IssuePrice, MarketId, OrderTerms, OrderType, Price,
    Quantity, Role, SelfTradePrevention, Side, Tier, TimeInForce,
};

const SELLER: AccountId = AccountId(3);
const BUYER: AccountId = AccountId(4);

/// Two funded traders, then `orders` alternating asks and crossing bids.
fn commands(orders: u64) -> Vec<Command> {
    let mut commands = vec![
        Command::Mint {
            amount: Amount(1_000_000_000_000),
            memo: "genesis".into(),
            idempotency_key: "mint".into(),
        },
        Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(IssuePrice::UNITS_PER_USD),
        },
    ];
    for (name, account) in [("seller", SELLER), ("buyer", BUYER)] {
        commands.push(Command::CreateAccount {
            name: name.into(),
            role: Role::Trader,
            tier: Tier::Public,
            token_hash: [1; 32],
        });
        commands.push(Command::Deposit {
            account,
            source: FundingSourceKind::Card,
            amount: Amount(2_000_000_000),
            source_reference: "4111111111111111".into(),
            idempotency_key: "deposit".into(),
        });
    }
    commands.push(Command::BuyDivmids {
        account: SELLER,
        quantity: Amount(1_000_000_000),
        max_price: IssuePrice(IssuePrice::UNITS_PER_USD),
        idempotency_key: "buy".into(),
    });
    for index in 0..orders {
        let (account, side) = if index % 2 == 0 {
            (SELLER, Side::Sell)
        } else {
            (BUYER, Side::Buy)
        };
        commands.push(Command::PlaceOrder(NewOrder {
            account,
            terms: OrderTerms {
                market: MarketId(0),
                side,
                order_type: OrderType::Limit,
                price: Some(Price(10_000 + index % 7)),
                quantity: Quantity(10 + index % 13),
                time_in_force: TimeInForce::GoodTillCanceled,
                post_only: false,
                self_trade_prevention: SelfTradePrevention::CancelTaker,
            },
            client_order_id: None,
        }));
    }
    commands
}

/// The state the commands give when applied directly.
fn expected_hash(commands: &[Command]) -> [u8; 32] {
    let mut sequencer = Sequencer::<LevelBook>::new(EngineConfig::default());
    let mut events = Vec::new();
    for command in commands {
        let _ = sequencer.apply(1, command, &mut events);
    }
    sequencer.state_hash()
}

/// A journal whose every append first waits `delay`, counting the appends: the queues
/// fill, and batches wait behind each write to be committed several at a time.
struct SlowJournal {
    inner: Store,
    delay: Duration,
    appends: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Journal for SlowJournal {
    type Snapshots = Snapshots;

    fn append(&mut self, records: &[JournalRecord]) -> Result<(), JournalError> {
        std::thread::sleep(self.delay);
        self.appends
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.inner.append(records)?)
    }

    fn snapshots(&self) -> Snapshots {
        self.inner.snapshots()
    }
}

fn start(directory: &std::path::Path, config: PipelineConfig) -> Pipeline {
    let store = Store::open(directory).expect("the store opens");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    Pipeline::start(recovered.sequencer, store, config)
}

fn run(pipeline: &Pipeline, command: Command) -> Outcome {
    let receiver = pipeline.submit(1, command).expect("the queue takes it");
    receiver.blocking_recv().expect("an outcome arrives")
}

#[test]
fn committed_commands_survive_a_restart_with_the_same_state() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let commands = commands(400);
    let pipeline = start(directory.path(), PipelineConfig::default());
    let mut updates = pipeline.subscribe();
    // Submit everything at once so that batches form and commit together.
    let receivers: Vec<_> = commands
        .iter()
        .map(|command| pipeline.submit(1, command.clone()).expect("queued"))
        .collect();
    for receiver in receivers {
        receiver
            .blocking_recv()
            .expect("an outcome")
            .expect("accepted");
    }
    let committed = pipeline.committed_seq();
    let mut broadcast = Vec::new();
    while let Ok(batch) = updates.try_recv() {
        broadcast.extend(batch.iter().map(|event| event.seq));
    }
    assert_eq!(
        broadcast,
        (1..=committed).collect::<Vec<_>>(),
        "every committed event, once, in order"
    );
    pipeline.shutdown();

    let store = Store::open(directory.path()).expect("the store reopens");
    assert_eq!(store.last_seq().expect("readable"), committed);
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    assert_eq!(recovered.commands_replayed, commands.len() as u64);
    assert_eq!(recovered.sequencer.state_hash(), expected_hash(&commands));
}

#[test]
fn commands_submitted_together_are_answered_in_order_and_survive_a_restart() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut commands = commands(400);
    // A mint under a key already used with another amount: refused, changing nothing.
    commands.insert(
        5,
        Command::Mint {
            amount: Amount(1),
            memo: "again".into(),
            idempotency_key: "mint".into(),
        },
    );
    // Small batches and records, so that the submissions make many batches, each
    // journaled in several records, and a slow journal, so that the batches waiting
    // behind a write are committed together in the next.
    let config = PipelineConfig {
        batch_requests_max: 16,
        record_events_max: 8,
        ..PipelineConfig::default()
    };
    let store = Store::open(directory.path()).expect("the store opens");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    let appends = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let journal = SlowJournal {
        inner: store,
        delay: Duration::from_millis(20),
        appends: std::sync::Arc::clone(&appends),
    };
    let pipeline = Pipeline::start(recovered.sequencer, journal, config);
    let receivers: Vec<_> = commands
        .chunks(10)
        .map(|chunk| {
            pipeline
                .submit_all(1, chunk.to_vec(), divmid::pipeline::Events::Kept)
                .expect("queued")
        })
        .collect();
    let receivers_count = receivers.len() as u64;
    let outcomes: Vec<Outcome> = receivers
        .into_iter()
        .flat_map(|receiver| receiver.blocking_recv().expect("outcomes arrive"))
        .collect();
    assert_eq!(outcomes.len(), commands.len(), "one outcome per command");
    for (index, outcome) in outcomes.iter().enumerate() {
        match index {
            5 => assert!(
                matches!(outcome, Err(Failure::Rejected(_))),
                "the reused key is refused: {outcome:?}"
            ),
            _ => assert!(outcome.is_ok(), "command {index}: {outcome:?}"),
        }
    }
    let seqs: Vec<u64> = outcomes
        .iter()
        .flatten()
        .flat_map(|committed| committed.events.iter().map(|event| event.seq))
        .collect();
    let committed = pipeline.committed_seq();
    assert_eq!(
        seqs,
        (1..=committed).collect::<Vec<_>>(),
        "in order, each once"
    );
    // Submissions of ten, in batches of at least sixteen commands: two submissions each.
    let batches = receivers_count.div_ceil(2);
    let appends = appends.load(std::sync::atomic::Ordering::Relaxed);
    assert!(appends < batches, "{appends} writes for {batches} batches");
    // Each outcome carries exactly what its own command emitted, though the commands'
    // events were journaled in records of eight and committed several batches at a time.
    let mut straight = Sequencer::<LevelBook>::new(EngineConfig::default());
    for (index, (command, outcome)) in commands.iter().zip(&outcomes).enumerate() {
        let mut emitted = Vec::new();
        let _ = straight.apply(1, command, &mut emitted);
        if let Ok(committed) = outcome {
            assert_eq!(&*committed.events, emitted.as_slice(), "command {index}");
        }
    }
    pipeline.shutdown();
    let store = Store::open(directory.path()).expect("the store reopens");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    assert_eq!(recovered.sequencer.state_hash(), expected_hash(&commands));
}

#[test]
fn snapshots_bound_what_a_restart_replays() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let commands = commands(300);
    let config = PipelineConfig {
        snapshot_every_events: 100,
        ..PipelineConfig::default()
    };
    let pipeline = start(directory.path(), config);
    for command in &commands {
        run(&pipeline, command.clone()).expect("accepted");
    }
    pipeline.shutdown();
    let store = Store::open(directory.path()).expect("the store reopens");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    assert!(recovered.snapshot_seq > 0, "a snapshot was taken");
    assert!(
        recovered.commands_replayed < 100,
        "only the commands after the snapshot are replayed, not {}",
        recovered.commands_replayed
    );
    assert_eq!(recovered.sequencer.state_hash(), expected_hash(&commands));
}

#[test]
fn a_damaged_snapshot_is_passed_over_for_an_older_one() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let commands = commands(300);
    let config = PipelineConfig {
        snapshot_every_events: 100,
        ..PipelineConfig::default()
    };
    let pipeline = start(directory.path(), config);
    for command in &commands {
        run(&pipeline, command.clone()).expect("accepted");
    }
    pipeline.shutdown();
    let mut snapshots: Vec<_> = std::fs::read_dir(directory.path().join("snapshots"))
        .expect("snapshots were written")
        .map(|entry| entry.expect("listed").path())
        .collect();
    snapshots.sort();
    assert_eq!(snapshots.len(), 2, "the two newest snapshots are kept");
    let newest = snapshots.last().expect("a snapshot");
    let mut bytes = std::fs::read(newest).expect("readable");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(newest, bytes).expect("writable");

    let store = Store::open(directory.path()).expect("the store reopens");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    let older: u64 = snapshots[0]
        .file_stem()
        .and_then(|stem| stem.to_str())
        .and_then(|stem| stem.parse().ok())
        .expect("named by sequence number");
    assert_eq!(recovered.snapshot_seq, older);
    assert_eq!(recovered.sequencer.state_hash(), expected_hash(&commands));
}

#[test]
fn retention_prunes_old_history_but_keeps_what_recovery_needs() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let commands = commands(600);
    let config = PipelineConfig {
        snapshot_every_events: 100,
        journal_retention_events: 50,
        ..PipelineConfig::default()
    };
    let pipeline = start(directory.path(), config);
    for command in &commands {
        run(&pipeline, command.clone()).expect("accepted");
    }
    pipeline.shutdown();
    let store = Store::open(directory.path()).expect("the store reopens");
    let oldest = store
        .records_after(0)
        .next()
        .expect("history is kept")
        .expect("readable");
    assert!(
        oldest.first_seq() > Some(1),
        "the oldest history was pruned"
    );
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    assert_eq!(recovered.sequencer.state_hash(), expected_hash(&commands));
}

#[test]
fn a_failed_write_stops_the_exchange_and_acknowledges_nothing_of_it() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let commands = commands(10);
    let store = Store::open(directory.path()).expect("the store opens");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    // The fourth append fails: the first three commands are durable, nothing after.
    let journal = FaultyJournal::new(store, 4);
    let pipeline = Pipeline::start(recovered.sequencer, journal, PipelineConfig::default());
    let mut updates = pipeline.subscribe();
    for command in &commands[..3] {
        run(&pipeline, command.clone()).expect("accepted");
    }
    let committed = pipeline.committed_seq();
    let failed = run(&pipeline, commands[3].clone());
    assert!(matches!(failed, Err(Failure::Unavailable(_))), "{failed:?}");
    assert!(pipeline.is_failed());
    assert!(pipeline.failure().unwrap_or_default().contains("injected"));
    assert!(matches!(
        pipeline.submit(1, commands[4].clone()),
        Err(Failure::Unavailable(_))
    ));
    assert!(matches!(
        pipeline.query(Query::Supply),
        Err(Failure::Unavailable(_))
    ));
    let mut broadcast = Vec::new();
    while let Ok(batch) = updates.try_recv() {
        broadcast.extend(batch.iter().map(|event| event.seq));
    }
    assert_eq!(
        broadcast.last().copied(),
        Some(committed),
        "nothing of the failed write is broadcast"
    );
    pipeline.shutdown();

    let store = Store::open(directory.path()).expect("the store reopens");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    assert_eq!(recovered.sequencer.last_seq(), committed);
    assert_eq!(
        recovered.sequencer.state_hash(),
        expected_hash(&commands[..3])
    );
}

#[test]
fn queries_answer_from_committed_state() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let commands = commands(4);
    let pipeline = start(directory.path(), PipelineConfig::default());
    for command in &commands {
        run(&pipeline, command.clone()).expect("accepted");
    }
    let receiver = pipeline.query(Query::Balances(BUYER)).expect("queued");
    let Answer::Balances(balances) = receiver.blocking_recv().expect("answered").expect("ok")
    else {
        panic!("balances were asked for");
    };
    // The buyer deposited 2,000 USD and bought 0.23 DVM at 1.0000 (ticks 10,001 and
    // 10,003 crossed the asks at 10,000 and 10,002).
    assert!(balances[1].available.0 < 2_000_000_000);
    let receiver = pipeline
        .query(Query::Book {
            market: MarketId(0),
            depth: 10,
        })
        .expect("queued");
    let Answer::Book { seq, .. } = receiver.blocking_recv().expect("answered").expect("ok") else {
        panic!("the book was asked for");
    };
    assert_eq!(seq, pipeline.committed_seq());
    let receiver = pipeline
        .query(Query::Book {
            market: MarketId(7),
            depth: 10,
        })
        .expect("queued");
    assert!(receiver.blocking_recv().expect("answered").is_err());
}

#[test]
fn a_full_queue_refuses_requests_instead_of_growing() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(directory.path()).expect("the store opens");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    let config = PipelineConfig {
        queue_capacity: 4,
        batch_requests_max: 2,
        store_queue_capacity: 1,
        ..PipelineConfig::default()
    };
    let journal = SlowJournal {
        inner: store,
        delay: Duration::from_millis(30),
        appends: Default::default(),
    };
    let pipeline = Pipeline::start(recovered.sequencer, journal, config);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for index in 0..200 {
        let command = Command::Mint {
            amount: Amount(1),
            memo: Box::default(),
            idempotency_key: format!("mint-{index}").into(),
        };
        match pipeline.submit(1, command) {
            Ok(receiver) => accepted.push(receiver),
            Err(Failure::Unavailable(reason)) => {
                assert!(reason.contains("busy"), "{reason}");
                refused += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(refused > 0, "a full queue refuses");
    let minted = accepted.len() as u64;
    for receiver in accepted {
        match receiver
            .blocking_recv()
            .expect("an outcome")
            .expect("accepted")
            .reply
        {
            Reply::Minted(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let receiver = pipeline.query(Query::Supply).expect("queued");
    let Answer::Supply(supply) = receiver.blocking_recv().expect("answered").expect("ok") else {
        panic!("the supply was asked for");
    };
    assert_eq!(
        supply.minted,
        Amount(minted),
        "refused mints changed nothing"
    );
}

#[test]
fn a_book_replica_catches_up_from_the_journal_unless_retention_pruned_it() {
    let commands = commands(3_000);
    // The whole journal: a replica catches up from genesis in steps, to the engine's books.
    let directory = tempfile::tempdir().expect("a temporary directory");
    let pipeline = start(directory.path(), PipelineConfig::default());
    for command in &commands {
        run(&pipeline, command.clone()).expect("accepted");
    }
    pipeline.shutdown();
    let store = Store::open(directory.path()).expect("the store reopens");
    let history = store.history().expect("history");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    let last = recovered.sequencer.last_seq();
    let mut replica = BookReplica::new(1, 0);
    for step in [last / 3, last / 2, last] {
        assert!(replay_journal(&history, step, &mut replica).expect("readable"));
        assert_eq!(replica.applied_seq(), step);
    }
    let book = recovered.sequencer.book(MarketId(0)).expect("the market");
    assert!(!book.is_empty(), "orders rest");
    for side in [Side::Buy, Side::Sell] {
        assert_eq!(
            replica.levels(MarketId(0), side, usize::MAX),
            book.levels(side, usize::MAX),
            "{side:?}"
        );
    }

    // A journal pruned by retention cannot bring a replica from genesis up to date.
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = PipelineConfig {
        snapshot_every_events: 100,
        journal_retention_events: 50,
        ..PipelineConfig::default()
    };
    let pipeline = start(directory.path(), config);
    for command in &commands[..600] {
        run(&pipeline, command.clone()).expect("accepted");
    }
    let last = pipeline.committed_seq();
    pipeline.shutdown();
    let store = Store::open(directory.path()).expect("the store reopens");
    let history = store.history().expect("history");
    let mut replica = BookReplica::new(1, 0);
    assert!(!replay_journal(&history, last, &mut replica).expect("readable"));
}

/// A copy of the data directory's store and mark, with sled's log changed by `damage`.
fn damaged_copy(
    directory: &std::path::Path,
    damage: impl FnOnce(&mut Vec<u8>),
) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir(copy.path().join("sled")).expect("created");
    for entry in std::fs::read_dir(directory.join("sled")).expect("listable") {
        let entry = entry.expect("an entry");
        if entry.file_type().expect("a type").is_file() {
            let target = copy.path().join("sled").join(entry.file_name());
            std::fs::copy(entry.path(), target).expect("copied");
        }
    }
    let mark = "acknowledged";
    std::fs::copy(directory.join(mark), copy.path().join(mark)).expect("copied");
    let log = copy.path().join("sled").join("db");
    let mut bytes = std::fs::read(&log).expect("readable");
    damage(&mut bytes);
    std::fs::write(&log, &bytes).expect("written");
    copy
}

/// Runs `divmid-server check` on a data directory.
fn check(directory: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_divmid-server"))
        .arg("check")
        .arg("--data-dir")
        .arg(directory)
        .output()
        .expect("the check runs")
}

#[test]
fn a_damaged_or_cut_journal_is_refused_naming_both_sequence_numbers() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let commands = commands(600);
    let pipeline = start(directory.path(), PipelineConfig::default());
    // One commit each, so that the log holds many.
    for command in &commands {
        run(&pipeline, command.clone()).expect("accepted");
    }
    let acknowledged = pipeline.committed_seq();
    pipeline.shutdown();

    let flipped = damaged_copy(directory.path(), |bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
    });
    let cut = damaged_copy(directory.path(), |bytes| {
        bytes.truncate(bytes.len() * 3 / 5)
    });
    for damaged in [flipped, cut] {
        // The offline check says so first, as an operator would run it.
        let checked = check(damaged.path());
        assert!(!checked.status.success(), "the check fails");
        let said = String::from_utf8_lossy(&checked.stderr);
        assert!(
            said.contains(&format!("seq {acknowledged} was acknowledged")),
            "{said}"
        );
        let store = Store::open(damaged.path()).expect("sled opens what is left");
        let refused = recover::<LevelBook>(&store, EngineConfig::default());
        match refused {
            Err(
                error @ StoreError::BehindAcknowledged {
                    journal_seq,
                    acknowledged_seq,
                },
            ) => {
                assert!(journal_seq < acknowledged, "{error}");
                assert_eq!(acknowledged_seq, acknowledged);
                let message = error.to_string();
                assert!(
                    message.contains(&format!("ends at seq {journal_seq}")),
                    "{message}"
                );
                assert!(message.contains(&format!("seq {acknowledged} was acknowledged")));
            }
            Err(other) => panic!("refused, but not for what was lost: {other}"),
            Ok(recovered) => panic!(
                "served seq {} after acknowledging {acknowledged}",
                recovered.sequencer.last_seq()
            ),
        }
    }
    // The undamaged directory checks out and recovers everything.
    let checked = check(directory.path());
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{said}");
    assert!(said.starts_with(&format!("seq {acknowledged}\n")), "{said}");
    assert!(
        said.contains(&format!("acknowledged seq {acknowledged}\n")),
        "{said}"
    );
    let store = Store::open(directory.path()).expect("the store reopens");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    assert_eq!(recovered.sequencer.last_seq(), acknowledged);
    assert_eq!(recovered.sequencer.state_hash(), expected_hash(&commands));
}
