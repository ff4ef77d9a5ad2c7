//! The offline check of a data directory (`divmid-server check --data-dir DIR`): recovery
//! as the server does it (the newest snapshot whose hash holds, the journal replayed to
//! exactly its recorded events, the acknowledged high-water mark, every invariant), then,
//! when the journal still starts at the first event, a replay of the whole journal from
//! genesis that must reach the same state hash.
//!
//! What it is not: read-only at sled's level. Opening sled repairs a torn tail of its log
//! as the server's start would; the check then reports what such a repair lost.

use std::fmt;
use std::path::Path;

use super::recovery::replay;
use super::{recover, recover_with, snapshot_file, Store, StoreError};
use crate::config::EngineConfig;
use crate::engine::{LevelBook, OrderBook, Sequencer, SequencerSnapshot};
use crate::event::Supply;

/// What a sound data directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The last event's sequence number.
    pub seq: u64,
    /// The last sequence number the store acknowledged, if it recorded one.
    pub acknowledged_seq: Option<u64>,
    /// The snapshot recovery started from (0: genesis).
    pub snapshot_seq: u64,
    /// Commands replayed after it.
    pub commands_replayed: u64,
    /// Whether the whole journal was also replayed from genesis to the same state.
    pub replayed_from_genesis: bool,
    /// Accounts on the ledger, the issuer's included.
    pub accounts: usize,
    /// Orders resting on every book.
    pub open_orders: usize,
    /// The divmid supply.
    pub supply: Supply,
    /// The state hash (SHA-256 of the canonical snapshot encoding).
    pub state_hash: [u8; 32],
    /// How the engine configuration checked with compares to the one in force.
    pub engine: EngineStatus,
}

/// What a start with the checked configuration would do about the engine configuration
/// in force (a change the data cannot take fails the check instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineStatus {
    /// It is the one in force, recorded.
    InForce,
    /// The data records none yet: a start records it.
    NotRecorded,
    /// It differs from the one in force: a start journals the change.
    Changes,
}

impl Report {
    /// The report of a recovered state.
    pub(super) fn of<B: OrderBook>(
        sequencer: &Sequencer<B>,
        config: &EngineConfig,
        acknowledged_seq: Option<u64>,
        snapshot_seq: u64,
        commands_replayed: u64,
        replayed_from_genesis: bool,
    ) -> Report {
        Report {
            seq: sequencer.last_seq(),
            acknowledged_seq,
            snapshot_seq,
            commands_replayed,
            replayed_from_genesis,
            accounts: sequencer.ledger().accounts().len(),
            open_orders: (0..config.markets.len())
                .filter_map(|index| sequencer.book(crate::types::MarketId(index as u16)))
                .map(OrderBook::len)
                .sum(),
            supply: sequencer.supply(),
            state_hash: sequencer.state_hash(),
            engine: match (sequencer.config() == config, sequencer.engine_recorded()) {
                (false, _) => EngineStatus::Changes,
                (true, false) => EngineStatus::NotRecorded,
                (true, true) => EngineStatus::InForce,
            },
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hash: String = self
            .state_hash
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        writeln!(formatter, "seq {}", self.seq)?;
        match self.acknowledged_seq {
            Some(seq) => writeln!(formatter, "acknowledged seq {seq}")?,
            None => writeln!(formatter, "acknowledged seq none recorded")?,
        }
        writeln!(
            formatter,
            "recovered from snapshot {} with {} commands replayed",
            self.snapshot_seq, self.commands_replayed
        )?;
        match self.replayed_from_genesis {
            true => writeln!(formatter, "whole journal replayed from genesis: same state")?,
            false => writeln!(
                formatter,
                "whole journal replayed from genesis: not possible (it starts after a snapshot)"
            )?,
        }
        writeln!(
            formatter,
            "engine configuration {}",
            match self.engine {
                EngineStatus::InForce => "in force",
                EngineStatus::NotRecorded => "not recorded yet: a start records it",
                EngineStatus::Changes =>
                    "differs from the one in force: a start journals the change and decides \
                     later commands under it",
            }
        )?;
        writeln!(formatter, "accounts {}", self.accounts)?;
        writeln!(formatter, "open orders {}", self.open_orders)?;
        let supply = &self.supply;
        writeln!(
            formatter,
            "supply minted {} treasury {} circulating {} spent {}",
            supply.minted, supply.treasury, supply.circulating, supply.spent
        )?;
        write!(formatter, "state hash {hash}")
    }
}

/// Checks the data directory in `directory` with the engine configuration it is served
/// with; any problem is an error that says what and where.
pub fn check(directory: &Path, config: &EngineConfig) -> Result<Report, StoreError> {
    if !directory.join("sled").exists() {
        return Err(StoreError::Corrupt(format!(
            "{} holds no store (no sled folder)",
            directory.display()
        )));
    }
    let store = Store::open(directory)?;
    // Recovery passes a damaged snapshot over for an older one; a check names it.
    snapshot_file::verify_all(&store.snapshot_directory())?;
    let recovered = recover::<LevelBook>(&store, config.clone())?;
    let sequencer = &recovered.sequencer;
    // What a start with this configuration would refuse.
    sequencer
        .config()
        .check_change(config)
        .map_err(StoreError::EngineChanged)?;
    let state_hash = sequencer.state_hash();
    // A journal starts at genesis when its first record holds the first event; an empty
    // one only when there is no snapshot either (a backup taken just as a snapshot was is
    // the snapshot alone, and that cannot be replayed from genesis).
    let starts_at_genesis = match store.records_after(0).next() {
        None => recovered.snapshot_seq == 0,
        Some(record) => record?.first_seq() == Some(1),
    };
    let replayed_from_genesis = starts_at_genesis && recovered.snapshot_seq > 0;
    if replayed_from_genesis {
        let replayed = recover_with::<LevelBook>(&store, config.clone(), false)?;
        if replayed.sequencer.state_hash() != state_hash {
            return Err(StoreError::Corrupt(format!(
                "snapshot {} and the whole journal replayed from genesis give different \
                 states: {}",
                recovered.snapshot_seq,
                first_difference(&sequencer.snapshot(), &replayed.sequencer.snapshot())
            )));
        }
    }
    Ok(Report::of(
        sequencer,
        config,
        store.acknowledged()?.map(|mark| mark.seq),
        recovered.snapshot_seq,
        recovered.commands_replayed,
        starts_at_genesis,
    ))
}

/// Where two states first differ, for an operator: the part, and the first record of it
/// that differs in each (from a snapshot and replay, then from genesis).
fn first_difference(from_snapshot: &SequencerSnapshot, from_genesis: &SequencerSnapshot) -> String {
    fn records<T: PartialEq + std::fmt::Debug>(
        name: &str,
        left: &[T],
        right: &[T],
    ) -> Option<String> {
        if left == right {
            return None;
        }
        let at = left.iter().zip(right).take_while(|(a, b)| a == b).count();
        Some(format!(
            "{name} differ from record {at} on ({} and {} records): {:?} against {:?}",
            left.len(),
            right.len(),
            left.get(at),
            right.get(at)
        ))
    }
    let (a, b) = (from_snapshot, from_genesis);
    let counters = [
        ("last_seq", a.last_seq, b.last_seq),
        ("next_order_id", a.next_order_id, b.next_order_id),
        ("next_trade_id", a.next_trade_id, b.next_trade_id),
        ("clock_ms", a.clock_ms, b.clock_ms),
    ];
    let counter = counters
        .iter()
        .find(|(_, left, right)| left != right)
        .map(|(name, left, right)| format!("{name} {left} against {right}"));
    let books = a
        .books
        .iter()
        .zip(&b.books)
        .enumerate()
        .find_map(|(market, (left, right))| {
            records(&format!("market {market}'s book"), left, right)
        });
    counter
        .or_else(|| records("accounts", a.ledger.accounts(), b.ledger.accounts()))
        .or_else(|| {
            (a.ledger != b.ledger).then(|| "the ledger's totals or prices differ".to_string())
        })
        .or_else(|| (a.prepaid != b.prepaid).then(|| "the prepaid pools differ".to_string()))
        .or_else(|| records("idempotency records", &a.idempotency, &b.idempotency))
        .or(books)
        .or_else(|| records("client orders", &a.client_orders, &b.client_orders))
        .unwrap_or_else(|| "their encodings differ".to_string())
}

/// Rebuilds the state at `seq` by replaying the journal from genesis to there (so the
/// journal must still start at the first event, as it does without retention) and checks
/// every invariant; compares a backup's state with its source's.
pub fn check_at(directory: &Path, config: &EngineConfig, seq: u64) -> Result<Report, StoreError> {
    if !directory.join("sled").exists() {
        return Err(StoreError::Corrupt(format!(
            "{} holds no store (no sled folder)",
            directory.display()
        )));
    }
    let store = Store::open(directory)?;
    let mut sequencer = Sequencer::<LevelBook>::new(config.clone());
    let records = store.records_after(0).take_while(|record| {
        !matches!(record, Ok(record) if record.first_seq().is_some_and(|first| first > seq))
    });
    let commands_replayed = replay(&mut sequencer, (0, seq), records)?;
    if sequencer.last_seq() != seq {
        return Err(StoreError::Corrupt(format!(
            "no state at seq {seq}: the journal replayed from genesis reaches seq {} and no \
             command ends at {seq}",
            sequencer.last_seq()
        )));
    }
    sequencer.check_invariants().map_err(|broken| {
        StoreError::Corrupt(format!("the state at seq {seq} is broken: {broken}"))
    })?;
    Ok(Report::of(
        &sequencer,
        config,
        store.acknowledged()?.map(|mark| mark.seq),
        0,
        commands_replayed,
        true,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::types::{IssuePrice, Tier};
    use sha2::Digest;

    #[test]
    fn a_snapshot_without_a_journal_after_it_checks_out_and_says_genesis_was_not_replayed() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let config = EngineConfig::default();
        let mut sequencer = Sequencer::<LevelBook>::new(config.clone());
        let mut events = Vec::new();
        for cents in [90, 95] {
            let command = Command::SetIssuePrice {
                tier: Tier::Public,
                price: IssuePrice(IssuePrice::UNITS_PER_USD / 100 * cents),
            };
            sequencer
                .apply(1_000, &command, &mut events)
                .expect("applies");
        }
        let store = Store::open(directory.path()).expect("opens");
        snapshot_file::write(&store.snapshot_directory(), &sequencer.encoded_snapshot())
            .expect("written");
        drop(store);

        let report = check(directory.path(), &config).expect("a snapshot alone checks out");
        assert_eq!(report.seq, sequencer.last_seq());
        assert_eq!(report.snapshot_seq, sequencer.last_seq());
        assert!(!report.replayed_from_genesis);
        assert_eq!(report.state_hash, sequencer.state_hash());
    }

    /// A sequencer under tighter limits than the default, with a state to snapshot.
    fn tightened() -> Sequencer<LevelBook> {
        let mut config = EngineConfig::default();
        config.limits.open_orders_per_account_max = 3;
        let mut sequencer = Sequencer::<LevelBook>::new(config);
        let command = Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(IssuePrice::UNITS_PER_USD),
        };
        sequencer
            .apply(1_000, &command, &mut Vec::new())
            .expect("applies");
        sequencer
    }

    #[test]
    fn a_snapshot_restores_under_the_limits_it_was_taken_under_whatever_is_configured() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let sequencer = tightened();
        let store = Store::open(directory.path()).expect("opens");
        snapshot_file::write(&store.snapshot_directory(), &sequencer.encoded_snapshot())
            .expect("written");

        let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
        let mut restored = recovered.sequencer;
        assert_eq!(restored.config(), sequencer.config());
        assert!(restored.engine_recorded());
        assert_eq!(restored.state_hash(), sequencer.state_hash());

        // The configured limits take over from a command journaled before serving; a
        // market's tick cannot.
        let mut store = store;
        let mut ticked = EngineConfig::default();
        ticked.markets[0].tick_micros *= 10;
        let refused = super::super::record_engine(&mut store, &mut restored, &ticked, 2_000)
            .expect_err("a tick change is refused");
        assert!(refused.to_string().contains("tick_micros"), "{refused}");
        assert_eq!(restored.state_hash(), sequencer.state_hash());
        let default = EngineConfig::default();
        let seq = super::super::record_engine(&mut store, &mut restored, &default, 2_000)
            .expect("journaled");
        assert_eq!(seq, Some(sequencer.last_seq() + 1));
        assert_eq!(restored.config(), &default);
        let again = recover::<LevelBook>(&store, ticked).expect("recovers");
        assert_eq!(again.sequencer.config(), &default);
        assert_eq!(again.sequencer.state_hash(), restored.state_hash());
    }

    #[test]
    fn a_snapshot_of_the_format_before_the_engine_was_recorded_restores_under_the_configured_one() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let sequencer = tightened();
        // The earlier format, without the configuration.
        let mut snapshot = sequencer.snapshot();
        snapshot.engine = None;
        let body = super::super::snapshot_legacy::encode(&snapshot);
        let hash: [u8; 32] = sha2::Sha256::digest(&body).into();
        let store = Store::open(directory.path()).expect("opens");
        let snapshots = store.snapshot_directory();
        std::fs::create_dir_all(&snapshots).expect("a snapshot directory");
        let file = [&snapshot_file::LEGACY_MAGIC[..], &hash, &body].concat();
        let name = format!("{:020}.snapshot", sequencer.last_seq());
        std::fs::write(snapshots.join(name), file).expect("written");

        let recovered = recover::<LevelBook>(&store, sequencer.config().clone())
            .expect("a snapshot of the earlier format restores");
        assert_eq!(recovered.snapshot_seq, sequencer.last_seq());
        assert_eq!(recovered.sequencer.state_hash(), sequencer.state_hash());
        assert!(!recovered.sequencer.engine_recorded());
        drop(store);
        let report = check(directory.path(), sequencer.config()).expect("checks out");
        assert_eq!(report.snapshot_seq, sequencer.last_seq());
        assert_eq!(report.engine, EngineStatus::NotRecorded);
    }
}
