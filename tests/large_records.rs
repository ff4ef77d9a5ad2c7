//! Commands that emit very many events, against sled's blob files: a cancel all of
//! 100,000 resting orders, a taker that sweeps 50,000 makers, snapshots of a state with
//! 100,000 resting orders, and the account index listing them. sled writes a page larger than a quarter of a segment to
//! a blob file that it never fsyncs, so none of this may reach `sled/blobs`; and after a
//! real SIGKILL the recovered state must be the acknowledged one, with the large records
//! joined back from their parts.
//!
//! The test runs itself a second time as a child process (the workload, with
//! `DIVMID_LARGE_RECORDS_DIR` set), waits for every acknowledgement, checks the blob
//! folder and kills the child.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Stdio};

use divmid::command::{Command, NewOrder};
use divmid::config::EngineConfig;
use divmid::engine::{LevelBook, Sequencer};
use divmid::pipeline::{Pipeline, PipelineConfig};
use divmid::store::{accounts_of, recover, recover_with, Store};
use divmid::types::{
    AccountId, Amount, FundingSourceKind, IssuePrice, MarketId, OrderTerms, OrderType, Price,
    Quantity, Role, SelfTradePrevention, Side, Tier, TimeInForce,
};

const CHILD_DIRECTORY: &str = "DIVMID_LARGE_RECORDS_DIR";
const BIDDER: AccountId = AccountId(3);
const SELLER: AccountId = AccountId(4);
const CANCELED: u64 = 100_000;
const SWEPT: u64 = 50_000;

fn order(account: AccountId, side: Side, order_type: OrderType, price: u64, lots: u64) -> Command {
    Command::PlaceOrder(NewOrder {
        account,
        terms: OrderTerms {
            market: MarketId(0),
            side,
            order_type,
            price: Some(Price(price)),
            quantity: Quantity(lots),
            time_in_force: TimeInForce::GoodTillCanceled,
            post_only: false,
            self_trade_prevention: SelfTradePrevention::CancelTaker,
        },
        client_order_id: None,
    })
}

/// The workload, in order: funding, 100,000 one-lot bids and a cancel of them all, then
/// 50,000 one-lot bids swept by one market sell.
fn commands() -> Vec<Command> {
    let mut commands = vec![
        Command::Mint {
            amount: Amount(1_000_000_000_000_000),
            memo: "genesis".into(),
            idempotency_key: "mint".into(),
        },
        Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(IssuePrice::UNITS_PER_USD),
        },
    ];
    for (name, account) in [("bidder", BIDDER), ("seller", SELLER)] {
        commands.push(Command::CreateAccount {
            name: name.into(),
            role: Role::Trader,
            tier: Tier::Public,
            token_hash: [7; 32],
        });
        commands.push(Command::Deposit {
            account,
            source: FundingSourceKind::Card,
            amount: Amount(500_000_000_000),
            source_reference: "4111111111111111".into(),
            idempotency_key: "deposit".into(),
        });
    }
    commands.push(Command::BuyDivmids {
        account: SELLER,
        quantity: Amount(100_000_000_000),
        max_price: IssuePrice(IssuePrice::UNITS_PER_USD),
        idempotency_key: "buy".into(),
    });
    // Bids from 0.5000 down, a thousand per tick: a deep book of many levels.
    let bid = |index: u64| {
        order(
            BIDDER,
            Side::Buy,
            OrderType::Limit,
            5_000 - index / 1_000,
            1,
        )
    };
    commands.extend((0..CANCELED).map(bid));
    commands.push(Command::CancelAllOrders {
        account: BIDDER,
        market: None,
    });
    commands.extend((0..SWEPT).map(bid));
    commands.push(order(SELLER, Side::Sell, OrderType::Market, 1, SWEPT));
    commands
}

/// The state the workload gives applied directly, its last sequence number, and how many
/// events concern the bidder.
fn expected(commands: &[Command]) -> ([u8; 32], u64, usize) {
    let mut sequencer = Sequencer::<LevelBook>::new(EngineConfig::default());
    let mut events = Vec::new();
    let mut bidder_events = 0;
    for command in commands {
        events.clear();
        sequencer
            .apply(1, command, &mut events)
            .expect("the workload is accepted");
        bidder_events += events
            .iter()
            .filter(|event| accounts_of(event).any(|of| of == BIDDER))
            .count();
    }
    (sequencer.state_hash(), sequencer.last_seq(), bidder_events)
}

/// The child: runs the workload on `directory`, prints `acked SEQ` once every command is
/// committed, then waits to be killed.
fn run_child(directory: &Path) {
    let store = Store::open(directory).expect("the store opens");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    let config = PipelineConfig {
        // A snapshot of the 100,000 resting bids, and more after.
        snapshot_every_events: 90_000,
        ..PipelineConfig::default()
    };
    let history = store.history().expect("history opens");
    let mut pipeline = Pipeline::start(recovered.sequencer, store, config);
    pipeline.start_indexer(history.clone());
    // In waves the queue can hold.
    for wave in commands().chunks(10_000) {
        let receivers: Vec<_> = wave
            .iter()
            .map(|command| pipeline.submit(1, command.clone()).expect("queued"))
            .collect();
        for receiver in receivers {
            receiver
                .blocking_recv()
                .expect("an outcome")
                .expect("accepted");
        }
    }
    // The account index too: one pass lists the bidder's 100,000 cancels.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while history.indexed_seq().expect("readable") < pipeline.committed_seq() {
        assert!(
            std::time::Instant::now() < deadline,
            "the index does not catch up: {:?}",
            pipeline.index_failure()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    println!("acked {}", pipeline.committed_seq());
    loop {
        std::thread::park();
    }
}

/// Files in sled's blob folder (none if it does not exist).
fn blobs(directory: &Path) -> Vec<String> {
    match std::fs::read_dir(directory.join("sled").join("blobs")) {
        Err(_) => Vec::new(),
        Ok(entries) => entries
            .map(|entry| {
                entry
                    .expect("listable")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
    }
}

#[test]
fn huge_commands_write_no_blob_and_survive_kill_9() {
    if let Ok(directory) = std::env::var(CHILD_DIRECTORY) {
        run_child(Path::new(&directory));
        return;
    }
    let commands = commands();
    let (hash, last_seq, bidder_events) = expected(&commands);
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut child = Process::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "huge_commands_write_no_blob_and_survive_kill_9",
            "--nocapture",
        ])
        .env(CHILD_DIRECTORY, directory.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the child starts");
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    let acked = stdout
        .lines()
        .map(|line| line.expect("readable"))
        .find_map(|line| line.strip_prefix("acked ").map(str::to_string));
    child.kill().expect("SIGKILL is delivered");
    child.wait().expect("the child is reaped");
    let acked: u64 = acked
        .expect("the child acknowledges the workload")
        .parse()
        .expect("a sequence number");
    assert_eq!(acked, last_seq, "every event of the workload was committed");
    assert_eq!(
        blobs(directory.path()),
        Vec::<String>::new(),
        "sled wrote blob files, which it never fsyncs"
    );

    let store = Store::open(directory.path()).expect("the store reopens");
    assert_eq!(store.last_seq().expect("readable"), last_seq);
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    assert!(recovered.snapshot_seq > 0, "a snapshot was written");
    assert_eq!(recovered.sequencer.state_hash(), hash);
    let replayed =
        recover_with::<LevelBook>(&store, EngineConfig::default(), false).expect("replays");
    assert_eq!(
        replayed.sequencer.state_hash(),
        hash,
        "the whole journal replays"
    );
    let sizes: Vec<usize> = store
        .records_after(0)
        .map(|record| record.expect("readable").events.len())
        .collect();
    let history = store.history().expect("history opens");
    let page = history
        .account_events(BIDDER, None, usize::MAX, last_seq)
        .expect("the bidder's history reads");
    assert_eq!(page.events.len(), bidder_events, "the index lists them all");
    assert!(page.events.windows(2).all(|pair| pair[0].seq > pair[1].seq));
    let cancel_all = CANCELED as usize;
    assert!(
        sizes.iter().any(|events| *events >= cancel_all),
        "the cancel all's events come back as one record: {:?}",
        sizes.iter().max()
    );
}
