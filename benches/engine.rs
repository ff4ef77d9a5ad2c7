//! Engine benchmarks: the sequencer on the fast book against lobster 0.7, on the same
//! deterministic flows, with holds, settlement and event output included.
//!
//! `cargo bench --bench engine` runs the criterion groups, then prints a summary: each
//! flow's operations per second (best of five runs), the ratio to lobster, and the heap
//! bytes per resting order with a million orders resting. The summary also runs the mixed
//! flow through the fast book alone, matched by a bare loop with no ledger, checks or
//! events, to show how much of the sequencer's time is book work. Under `cargo test`
//! every flow runs once on a small size, to prove the benchmark still works.

#[path = "common/flow.rs"]
mod flow;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use divmid::command::Command;
use divmid::engine::{LevelBook, OrderBook, RestingOrder, Sequencer};
use divmid::event::{Event, EventKind};
use divmid::types::{OrderId, Price, Quantity, SelfTradePrevention, Side};
use flow::Operation;

/// Counts live heap bytes so the benchmark can report memory per resting order. A
/// process-wide allocator is the only way to see every allocation the engine makes; it is
/// part of this benchmark binary only, never of the exchange.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Sizes of one run: the full ones under `cargo bench`, small ones under `cargo test`.
struct Sizes {
    mixed_operations: usize,
    /// Commands of the load generator's flow.
    load_commands: usize,
    exchange_core_operations: usize,
    resting_large: usize,
    resting_small: usize,
}

const SEED: u64 = 20_261_126;

/// Applies every command, keeping the events of one command at a time as the pipeline
/// would before handing them to the store. The commands are handed back, as the pipeline
/// keeps each command to journal it: they are freed after the timing, like lobster's
/// orders.
fn run_divmid(
    mut sequencer: Sequencer<LevelBook>,
    commands: Vec<Command>,
) -> (Sequencer<LevelBook>, Vec<Command>) {
    let mut events: Vec<Event> = Vec::with_capacity(64);
    for command in &commands {
        events.clear();
        let _ = black_box(sequencer.apply(0, command, &mut events));
        black_box(&events);
    }
    (sequencer, commands)
}

/// The flow through the fast book alone: price-time matching at the maker's price with
/// nothing else (no funds, holds, checks, events or replies). Each order belongs to the
/// account the sequencer's flow gives it, since the book lists every account's orders.
/// Returns the book and the number of fills, which must equal the sequencer's on the same
/// flow.
fn run_book_alone(flow: &[Operation]) -> (LevelBook, u64) {
    let mut book = LevelBook::default();
    let mut fills = 0;
    for operation in flow {
        match *operation {
            Operation::Limit {
                id,
                side,
                price,
                lots,
                ..
            } => {
                let left = take(&mut book, side, Some(price), lots, &mut fills);
                if left > 0 {
                    book.insert(RestingOrder {
                        id: OrderId(id),
                        account: flow::account_for(side, id),
                        side,
                        price: Price(price),
                        quantity: Quantity(left),
                        filled: Quantity(0),
                        created_seq: id,
                        post_only: false,
                        self_trade_prevention: SelfTradePrevention::CancelTaker,
                        has_client_order_id: false,
                    });
                }
            }
            Operation::Market { side, lots, .. } => {
                take(&mut book, side, None, lots, &mut fills);
            }
            Operation::Cancel { id } => {
                black_box(book.remove(OrderId(id)));
            }
            Operation::Amend { .. } => unreachable!("the mixed flow has no amendments"),
        }
    }
    (book, fills)
}

/// Fills up to `lots` against the other side while its best price crosses `limit`, and
/// returns the lots left.
fn take(book: &mut LevelBook, side: Side, limit: Option<u64>, lots: u64, fills: &mut u64) -> u64 {
    let maker_side = side.opposite();
    let mut left = lots;
    while left > 0 {
        let Some(price) = book.best_price(maker_side) else {
            break;
        };
        let crosses = match (limit, side) {
            (None, _) => true,
            (Some(limit), Side::Buy) => price.0 <= limit,
            (Some(limit), Side::Sell) => price.0 >= limit,
        };
        if !crosses {
            break;
        }
        let offered = book.best(maker_side).map_or(0, |order| order.remaining().0);
        let traded = offered.min(left);
        left -= traded;
        *fills += 1;
        if book.fill_best(maker_side, Quantity(traded)).is_zero() {
            book.remove_best(maker_side);
        }
    }
    left
}

fn run_lobster(orders: Vec<lobster::OrderType>) -> (lobster::OrderBook, Vec<lobster::OrderType>) {
    let mut book = lobster::OrderBook::default();
    for order in &orders {
        black_box(book.execute(*order));
    }
    (book, orders)
}

/// A sequencer with the flow's first `prefill` operations applied, and the rest as
/// commands.
fn prefilled(flow: &[Operation], prefill: usize) -> (Sequencer<LevelBook>, Vec<Command>) {
    let mut commands = flow::commands(flow);
    let rest = commands.split_off(prefill);
    let (sequencer, _) = run_divmid(flow::funded_sequencer(), commands);
    (sequencer, rest)
}

fn criterion_groups(criterion: &mut Criterion, sizes: &Sizes) {
    let mixed = flow::mixed_flow(SEED, sizes.mixed_operations);
    let mut group = criterion.benchmark_group("mixed_flow");
    group.throughput(Throughput::Elements(mixed.len() as u64));
    group.sample_size(10);
    group.bench_function("divmid", |bencher| {
        bencher.iter_batched(
            || (flow::funded_sequencer(), flow::commands(&mixed)),
            |(sequencer, commands)| run_divmid(sequencer, commands),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("lobster", |bencher| {
        bencher.iter_batched(
            || flow::lobster_orders(&mixed),
            run_lobster,
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let mut group = criterion.benchmark_group("exchange_core_mix");
    group.sample_size(10);
    for resting in [sizes.resting_small, sizes.resting_large] {
        let (flow, prefill) =
            flow::exchange_core_flow(SEED, resting, sizes.exchange_core_operations);
        group.throughput(Throughput::Elements((flow.len() - prefill) as u64));
        group.bench_function(format!("divmid/{resting}_resting"), |bencher| {
            bencher.iter_batched(
                || prefilled(&flow, prefill),
                |(sequencer, commands)| run_divmid(sequencer, commands),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// The best of five timed runs of `run` on fresh inputs from `setup`, in operations per
/// second.
fn best_rate<T, R>(operations: usize, setup: impl Fn() -> T, run: impl Fn(T) -> R) -> u64 {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let input = setup();
        let started = Instant::now();
        let output = run(input);
        best = best.min(started.elapsed());
        drop(black_box(output));
    }
    (operations as f64 / best.as_secs_f64()) as u64
}

/// How many fills the sequencer makes on the flow.
fn sequencer_fills(flow: &[Operation]) -> u64 {
    let mut sequencer = flow::funded_sequencer::<LevelBook>();
    let mut events: Vec<Event> = Vec::with_capacity(64);
    let mut fills = 0;
    for command in &flow::commands(flow) {
        events.clear();
        let _ = sequencer.apply(0, command, &mut events);
        fills += events
            .iter()
            .filter(|event| matches!(event.kind, EventKind::Fill(_)))
            .count() as u64;
    }
    fills
}

/// The load generator's flow at 270 commands a millisecond, its client order ids kept 4 s
/// after their orders end (as `divmid-load`'s runs configure the exchange: some 650,000
/// kept) and 4 ms (some 500): what the kept ids' memory costs the engine per command.
fn load_flow_summary(commands: usize) {
    let timed = flow::load_flow(commands, 270);
    for retention_ms in [4_000, 4] {
        let mut config = divmid::config::EngineConfig::default();
        config.limits.idempotency_retention_ms = retention_ms;
        let rate = best_rate(
            timed.len(),
            || (flow::funded_sequencer_with(config.clone()), timed.clone()),
            |(mut sequencer, timed): (Sequencer<LevelBook>, Vec<(u64, Command)>)| {
                let mut events: Vec<Event> = Vec::with_capacity(64);
                for (now_ms, command) in &timed {
                    events.clear();
                    let applied = sequencer.apply(*now_ms, command, &mut events);
                    assert!(applied.is_ok(), "the load's flow is accepted: {applied:?}");
                }
                (sequencer, timed)
            },
        );
        println!(
            "the load's flow, {} commands at 270 a millisecond, client order ids kept \
             {retention_ms} ms: {rate} commands/s ({:.0} ns per command)",
            timed.len(),
            1e9 / rate as f64
        );
    }
}

/// Heap bytes per resting order: `resting` non-crossing orders placed into a book.
fn bytes_per_resting_order(resting: usize) -> (u64, usize) {
    let (flow, prefill) = flow::exchange_core_flow(SEED, resting, 0);
    let commands = flow::commands(&flow[..prefill]);
    let mut sequencer = flow::funded_sequencer::<LevelBook>();
    let mut events: Vec<Event> = Vec::with_capacity(64);
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    // The commands stay allocated throughout, so only what the engine keeps is counted.
    for command in &commands {
        events.clear();
        let _ = black_box(sequencer.apply(0, command, &mut events));
    }
    let after = LIVE_BYTES.load(Ordering::Relaxed);
    drop(commands);
    let orders = sequencer
        .book(divmid::types::MarketId(0))
        .map_or(0, divmid::engine::OrderBook::len);
    ((after - before) as u64 / orders.max(1) as u64, orders)
}

/// Heap bytes the sequencer holds after `keys` deposits (or, with `charges`, a service's
/// charges) under distinct idempotency keys, one a millisecond, with keys kept for
/// `retention_ms`; and how many keys it holds.
fn bytes_after_distinct_keys(keys: u64, retention_ms: u64, charges: bool) -> (usize, usize) {
    use divmid::types::{AccountId, Amount, FundingSourceKind, IssuePrice, Role, Tier};
    let mut config = divmid::config::EngineConfig::default();
    config.limits.idempotency_retention_ms = retention_ms;
    config.limits.charge_key_retention_ms = retention_ms;
    config.limits.idempotency_keys_per_account_max = 100_000_000;
    let mut sequencer = Sequencer::<LevelBook>::new(config);
    let mut events: Vec<Event> = Vec::with_capacity(64);
    let holder = AccountId(3);
    let setup = [
        Command::CreateAccount {
            name: "holder".into(),
            role: Role::Trader,
            tier: Tier::Public,
            token_hash: [1; 32],
        },
        Command::CreateAccount {
            name: "service".into(),
            role: Role::Service,
            tier: Tier::Public,
            token_hash: [2; 32],
        },
        Command::Mint {
            amount: Amount(keys),
            memo: "".into(),
            idempotency_key: "setup".into(),
        },
        Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(IssuePrice::UNITS_PER_USD),
        },
        Command::Deposit {
            account: holder,
            source: FundingSourceKind::Card,
            amount: Amount(keys),
            source_reference: "card ending 1111".into(),
            idempotency_key: "setup-deposit".into(),
        },
        Command::BuyDivmids {
            account: holder,
            quantity: Amount(keys),
            max_price: IssuePrice(IssuePrice::UNITS_PER_USD),
            idempotency_key: "setup-buy".into(),
        },
    ];
    for command in &setup {
        sequencer.apply(0, command, &mut events).expect("set up");
    }
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for index in 0..keys {
        events.clear();
        let idempotency_key = format!("click-{index}").into();
        let command = if charges {
            Command::Charge {
                service: AccountId(4),
                account: holder,
                amount: Amount(1),
                memo: "page view".into(),
                idempotency_key,
            }
        } else {
            Command::Deposit {
                account: holder,
                source: FundingSourceKind::Card,
                amount: Amount(1),
                source_reference: "card ending 1111".into(),
                idempotency_key,
            }
        };
        sequencer
            .apply(index, &command, &mut events)
            .expect("applied");
    }
    events = Vec::new();
    drop(events);
    let after = LIVE_BYTES.load(Ordering::Relaxed);
    (
        after.saturating_sub(before),
        sequencer.idempotency_keys_held(),
    )
}

fn summary(sizes: &Sizes) {
    println!("\nsummary (best of 5 runs each)");
    let mixed = flow::mixed_flow(SEED, sizes.mixed_operations);
    let ours = best_rate(
        mixed.len(),
        || (flow::funded_sequencer(), flow::commands(&mixed)),
        |(sequencer, commands)| run_divmid(sequencer, commands),
    );
    let theirs = best_rate(mixed.len(), || flow::lobster_orders(&mixed), run_lobster);
    println!(
        "mixed flow, {} operations: divmid {} ops/s, lobster {} ops/s, ratio {:.2}",
        mixed.len(),
        ours,
        theirs,
        ours as f64 / theirs as f64
    );
    let book_alone = best_rate(mixed.len(), || &mixed[..], run_book_alone);
    println!(
        "mixed flow, {} operations, the book alone: {book_alone} ops/s ({:.0} ns per operation; \
         the sequencer {:.0} ns)",
        mixed.len(),
        1e9 / book_alone as f64,
        1e9 / ours as f64
    );
    assert_eq!(
        run_book_alone(&mixed).1,
        sequencer_fills(&mixed),
        "the book alone must do the sequencer's matching"
    );
    for resting in [sizes.resting_small, sizes.resting_large] {
        let (flow, prefill) =
            flow::exchange_core_flow(SEED, resting, sizes.exchange_core_operations);
        let rate = best_rate(
            flow.len() - prefill,
            || prefilled(&flow, prefill),
            |(sequencer, commands)| run_divmid(sequencer, commands),
        );
        println!(
            "exchange-core mix, {resting} resting, {} operations: divmid {rate} ops/s",
            flow.len() - prefill
        );
    }
    load_flow_summary(sizes.load_commands);
    let (bytes, orders) = bytes_per_resting_order(sizes.resting_large);
    println!("memory: {bytes} heap bytes per resting order with {orders} orders resting");
    let keys = sizes.resting_large as u64;
    for (kind, charges) in [("deposits", false), ("charges", true)] {
        let (aged, aged_held) = bytes_after_distinct_keys(keys, 1_000, charges);
        let (kept, kept_held) =
            bytes_after_distinct_keys(keys, divmid::config::IDEMPOTENCY_RETENTION_MS_MAX, charges);
        println!(
            "idempotency, {kind}: {keys} distinct keys, one a millisecond: kept 1 s, {aged} heap \
             bytes held ({aged_held} keys); kept 366 days, {kept} heap bytes ({kept_held} keys, \
             {} bytes a key)",
            kept / kept_held.max(1)
        );
        assert!(aged_held <= 1_002, "keys age out");
    }
}

fn main() {
    let benchmarking = std::env::args().any(|argument| argument == "--bench");
    let sizes = if benchmarking {
        Sizes {
            mixed_operations: 1_000_000,
            load_commands: 3_000_000,
            exchange_core_operations: 1_000_000,
            resting_large: 1_000_000,
            resting_small: 1_000,
        }
    } else {
        Sizes {
            mixed_operations: 10_000,
            load_commands: 20_000,
            exchange_core_operations: 10_000,
            resting_large: 10_000,
            resting_small: 1_000,
        }
    };
    let mut criterion = Criterion::default().configure_from_args();
    criterion_groups(&mut criterion, &sizes);
    criterion.final_summary();
    summary(&sizes);
}
