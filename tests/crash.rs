//! Crash recovery with a real process: `divmid-soak` drives the durable pipeline with
//! commands in flight, is killed with SIGKILL at a random moment, and the data directory
//! must then hold every acknowledged command, nothing half applied (recovery replays the
//! journal and requires the exact journaled events), a balanced ledger, and the same state
//! from the newest snapshot as from a replay of the whole journal.
//!
//! `DIVMID_CRASH_CYCLES` sets the number of kill-and-restart cycles (20 by default); the
//! README shows a long run.

use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use divmid::command::Command;
use divmid::config::EngineConfig;
use divmid::engine::LevelBook;
use divmid::store::{recover_with, Store};

fn cycles() -> u64 {
    std::env::var("DIVMID_CRASH_CYCLES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(20)
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&text[index..index + 2], 16).expect("hex"))
        .collect()
}

/// Runs the soak binary on `directory` and kills it `after` its store is recovered;
/// returns everything it printed.
fn run_and_kill(directory: &std::path::Path, seed: u64, after: Duration) -> Vec<String> {
    let mut child = Process::new(env!("CARGO_BIN_EXE_divmid-soak"))
        .arg("--data-dir")
        .arg(directory)
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--commands")
        .arg("1000000")
        .arg("--snapshot-every")
        .arg("3000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the soak binary starts");
    let stdout = child.stdout.take().expect("piped");
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait for recovery, so that the kill lands while commands are in flight.
    while !output
        .iter()
        .any(|line: &String| line.starts_with("recovered"))
    {
        let line = received
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the soak binary recovers within a minute");
        output.push(line);
    }
    std::thread::sleep(after);
    child.kill().expect("SIGKILL is delivered");
    child.wait().expect("the child is reaped");
    reader.join().expect("the reader ends");
    output.extend(received.try_iter());
    output
}

#[test]
fn every_acknowledged_command_survives_kill_9() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut random: u64 = 0x2545_F491_4F6C_DD1D;
    let mut acknowledged_total = 0;
    let mut last_seq = 0;
    for cycle in 1..=cycles() {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let after = Duration::from_millis(20 + random % 300);
        let output = run_and_kill(directory.path(), cycle, after);
        let recovered_line = output
            .iter()
            .find(|line| line.starts_with("recovered"))
            .expect("printed");
        let previous: u64 = recovered_line
            .split(' ')
            .nth(1)
            .and_then(|seq| seq.parse().ok())
            .expect("a seq");
        assert!(
            previous >= last_seq,
            "cycle {cycle}: the store went back from {last_seq} to {previous}"
        );

        let store = Store::open(directory.path()).expect("the store reopens");
        let from_snapshot = recover_with::<LevelBook>(&store, EngineConfig::default(), true)
            .unwrap_or_else(|error| panic!("cycle {cycle}: recovery failed: {error}"));
        let from_genesis = recover_with::<LevelBook>(&store, EngineConfig::default(), false)
            .unwrap_or_else(|error| panic!("cycle {cycle}: full replay failed: {error}"));
        assert_eq!(
            from_snapshot.sequencer.state_hash(),
            from_genesis.sequencer.state_hash(),
            "cycle {cycle}: the snapshot and a full replay disagree"
        );
        let mut sequencer = from_snapshot.sequencer;
        last_seq = sequencer.last_seq();
        let mut events = Vec::new();
        for line in output.iter().filter_map(|line| line.strip_prefix("ack ")) {
            let command: Command =
                postcard::from_bytes(&unhex(line)).expect("an acknowledged command decodes");
            events.clear();
            let reply = sequencer.apply(0, &command, &mut events);
            assert!(
                reply.is_ok() && events.is_empty(),
                "cycle {cycle}: acknowledged {command:?} is not in the recovered state ({reply:?}, {} events)",
                events.len()
            );
            acknowledged_total += 1;
        }
        drop(store);
    }
    assert!(acknowledged_total > 0, "the workload acknowledged nothing");
}
