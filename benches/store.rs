//! Durability benchmarks on a real sled store in a temporary directory.
//!
//! `cargo bench --bench store` measures, with criterion, one durable journal append
//! (atomic sled batch, flush, fdatasync) of 1, 100 and 1,000 events; then prints a summary:
//! the whole pipeline's durable throughput on the engine benchmark's mixed flow, and the
//! restart time (open, load the newest snapshot, replay the journal after it, check every
//! invariant) of a store holding 1M resting orders and 10M journaled events. Under
//! `cargo test` every part runs once on small sizes.

#[path = "common/flow.rs"]
mod flow;

use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput};
use divmid::config::EngineConfig;
use divmid::engine::LevelBook;
use divmid::event::Event;
use divmid::pipeline::{JournalRecord, Pipeline, PipelineConfig};
use divmid::store::{recover, Store};

const SEED: u64 = 20_261_126;

struct Sizes {
    flow_commands: usize,
    resting_orders: usize,
    journaled_events: u64,
}

/// `count` appends of `events` events each, cut from the events of a real flow into
/// records of at most `record_events_max` events, as the pipeline cuts them.
fn appends(events: usize, count: usize) -> Vec<Vec<JournalRecord>> {
    let record_events_max = PipelineConfig::default().record_events_max;
    let mut appends = Vec::with_capacity(count);
    let mut current: Vec<JournalRecord> = Vec::new();
    let mut in_current = 0;
    for record in records(events.min(record_events_max), usize::MAX, events * count) {
        in_current += record.events.len();
        current.push(record);
        if in_current >= events {
            appends.push(std::mem::take(&mut current));
            in_current = 0;
            if appends.len() == count {
                break;
            }
        }
    }
    appends
}

/// Records of about `events` events each, cut from the events of a real flow of
/// `operations` operations.
fn records(events: usize, count: usize, operations: usize) -> Vec<JournalRecord> {
    let operations = flow::mixed_flow(SEED, operations);
    let commands = flow::commands(&operations);
    let mut sequencer = flow::funded_sequencer::<LevelBook>();
    let mut all: Vec<JournalRecord> = Vec::new();
    let mut record = JournalRecord::default();
    let mut emitted: Vec<Event> = Vec::new();
    for command in commands {
        emitted.clear();
        if sequencer.apply(0, &command, &mut emitted).is_ok() && !emitted.is_empty() {
            record.push(0, command, &mut emitted);
        }
        if record.events.len() >= events {
            all.push(std::mem::take(&mut record));
            if all.len() == count {
                break;
            }
        }
    }
    all
}

fn criterion_groups(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("journal_append");
    group.sample_size(20);
    for events in [1usize, 100, 1_000] {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let mut store = Store::open(directory.path()).expect("the store opens");
        let pool = appends(events, 64);
        let mut next = 0;
        let events_per_append: usize = pool[0].iter().map(|record| record.events.len()).sum();
        group.throughput(Throughput::Elements(events_per_append as u64));
        group.bench_function(format!("{events}_events"), |bencher| {
            bencher.iter_batched(
                || {
                    next = (next + 1) % pool.len();
                    pool[next].clone()
                },
                |records| store.append(&records).expect("appended"),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Runs `commands` through a pipeline on a fresh store, as fast as the queue takes them.
fn durable_throughput(commands: usize) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(directory.path()).expect("the store opens");
    let operations = flow::mixed_flow(SEED, commands);
    let config = PipelineConfig {
        queue_capacity: commands + 1,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::start(flow::funded_sequencer::<LevelBook>(), store, config);
    let first = pipeline.committed_seq();
    let started = Instant::now();
    let receivers: Vec<_> = flow::commands(&operations)
        .into_iter()
        .map(|command| pipeline.submit(0, command).expect("queued"))
        .collect();
    for receiver in receivers {
        let _ = receiver.blocking_recv().expect("an outcome");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events = pipeline.committed_seq() - first;
    pipeline.shutdown();
    println!(
        "pipeline, mixed flow: {commands} commands, {events} events durable in {elapsed:.2} s: \
         {:.0} commands/s, {:.0} events/s",
        commands as f64 / elapsed,
        events as f64 / elapsed
    );
}

/// Fills a store with `resting` orders and then trading until `journaled` events, and
/// times a restart.
fn restart_time(resting: usize, journaled: u64) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = PipelineConfig {
        queue_capacity: 1 << 20,
        snapshot_every_events: 1_000_000,
        ..PipelineConfig::default()
    };
    {
        let store = Store::open(directory.path()).expect("the store opens");
        let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
        let pipeline = Pipeline::start(recovered.sequencer, store, config);
        // The flow's accounts and funds are commands like any other, so they are journaled.
        for command in flow::funding_commands() {
            let _ = pipeline.submit(0, command).expect("queued").blocking_recv();
        }
        let (book, _) = flow::exchange_core_flow(SEED, resting, 0);
        submit_all(&pipeline, flow::commands(&book));
        let mut placed = flow::placements(&book);
        let mut round = 0;
        // Trading that keeps the book about its size: as many cancels as new orders.
        while pipeline.committed_seq() < journaled {
            round += 1;
            let operations = (journaled / 2).clamp(1_000, 1_000_000) as usize;
            let (trading, _) = flow::exchange_core_flow(SEED + round, 0, operations);
            submit_all(&pipeline, flow::commands_after(&trading, placed));
            placed += flow::placements(&trading);
        }
        pipeline.shutdown();
    }
    let started = Instant::now();
    let store = Store::open(directory.path()).expect("the store reopens");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    let elapsed = started.elapsed().as_secs_f64();
    let book = recovered
        .sequencer
        .book(divmid::types::MarketId(0))
        .map_or(0, divmid::engine::OrderBook::len);
    println!(
        "restart: {} journaled events, {book} orders resting: {elapsed:.2} s \
         (snapshot at {}, {} commands replayed)",
        recovered.sequencer.last_seq(),
        recovered.snapshot_seq,
        recovered.commands_replayed
    );
}

/// What the fdatasync after each flush costs: the same appends of 1,000 events to a bare
/// sled tree, with `flush()` alone (sled 0.34 uses `sync_file_range`, which a power cut
/// can undo) and with `flush()` then `fdatasync`, as the store does.
fn fsync_cost(appends_count: usize) {
    let pool = appends(1_000, 16);
    let encoded: Vec<Vec<(u64, Vec<u8>)>> = pool
        .iter()
        .map(|records| {
            records
                .iter()
                .map(|record| {
                    (
                        record.last_seq().unwrap_or(0),
                        record.encode().expect("encodes"),
                    )
                })
                .collect()
        })
        .collect();
    // sled's fdatasync and the acknowledged mark's (a 52-byte slot rewritten in place and
    // fdatasynced: what `Store::append` adds to every commit) measured in the same run.
    for (fsync, mark) in [(false, false), (true, false), (true, true)] {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let db = sled::Config::new()
            .path(directory.path())
            .segment_size(4 << 20)
            .open()
            .expect("sled opens");
        let tree = db.open_tree("journal").expect("a tree");
        let file = std::fs::File::open(directory.path().join("db")).expect("sled's file");
        let mark_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(directory.path().join("acknowledged"))
            .expect("the mark file");
        let started = Instant::now();
        for round in 0..appends_count {
            let mut batch = sled::Batch::default();
            for (seq, bytes) in &encoded[round % encoded.len()] {
                let key = (*seq + (round as u64) * 1_000_000_000).to_be_bytes();
                batch.insert(&key, bytes.as_slice());
            }
            tree.apply_batch(batch).expect("applied");
            db.flush().expect("flushed");
            if fsync {
                file.sync_data().expect("synced");
            }
            if mark {
                use std::os::unix::fs::FileExt;
                let slot = [round as u8; 52];
                let offset = (round as u64 % 2) * 52;
                mark_file.write_all_at(&slot, offset).expect("written");
                mark_file.sync_data().expect("synced");
            }
        }
        let per_append = started.elapsed().as_secs_f64() / appends_count as f64;
        println!(
            "append of 1,000 events, flush{}: {:.0} µs, {:.0} events/s",
            match (fsync, mark) {
                (false, _) => " only",
                (true, false) => " + fdatasync",
                (true, true) => " + fdatasync + acknowledged mark",
            },
            per_append * 1e6,
            1_000.0 / per_append
        );
    }
}

fn submit_all(pipeline: &Pipeline, commands: Vec<divmid::command::Command>) {
    let receivers: Vec<_> = commands
        .into_iter()
        .map(|command| pipeline.submit(0, command).expect("queued"))
        .collect();
    for receiver in receivers {
        let _ = receiver.blocking_recv().expect("an outcome");
    }
}

fn main() {
    let benchmarking = std::env::args().any(|argument| argument == "--bench");
    let sizes = if benchmarking {
        Sizes {
            flow_commands: 1_000_000,
            resting_orders: 1_000_000,
            journaled_events: 10_000_000,
        }
    } else {
        Sizes {
            flow_commands: 5_000,
            resting_orders: 2_000,
            journaled_events: 20_000,
        }
    };
    let mut criterion = Criterion::default().configure_from_args();
    criterion_groups(&mut criterion);
    criterion.final_summary();
    println!("\nsummary");
    fsync_cost(if benchmarking { 500 } else { 5 });
    durable_throughput(sizes.flow_commands);
    restart_time(sizes.resting_orders, sizes.journaled_events);
}
