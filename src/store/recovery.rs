//! Rebuilding the sequencer from the store: the newest snapshot, then the journal after it
//! replayed command by command. The replay must emit exactly the events the journal
//! recorded, and the result must keep every invariant, or the store refuses to start.

use super::{Store, StoreError};
use crate::command::Command;
use crate::config::EngineConfig;
use crate::engine::{OrderBook, Sequencer, SequencerSnapshot};
use crate::event::Event;
use crate::pipeline::{replay_entries, JournalRecord};

/// What recovery found.
pub struct Recovered<B: OrderBook> {
    /// The sequencer, at the last journaled event.
    pub sequencer: Sequencer<B>,
    /// The sequence number of the snapshot it started from (0 for genesis).
    pub snapshot_seq: u64,
    /// Commands replayed after the snapshot.
    pub commands_replayed: u64,
}

/// How often a long replay says how far it has come.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Rebuilds the state the store holds from its newest snapshot and the journal after it.
/// The configuration must have been validated.
pub fn recover<B: OrderBook>(
    store: &Store,
    config: EngineConfig,
) -> Result<Recovered<B>, StoreError> {
    recover_with(store, config, true)
}

/// Rebuilds the state from the newest snapshot, or, without `use_snapshot`, by replaying
/// the whole journal from genesis (checks and tests compare the two).
pub fn recover_with<B: OrderBook>(
    store: &Store,
    config: EngineConfig,
    use_snapshot: bool,
) -> Result<Recovered<B>, StoreError> {
    let snapshot = if use_snapshot {
        store.latest_snapshot()?
    } else {
        None
    };
    let (mut sequencer, snapshot_seq) = restore_snapshot::<B>(config, snapshot)?;
    let target = store.last_seq()?;
    let commands_replayed = replay(
        &mut sequencer,
        (snapshot_seq, target),
        store.records_after(snapshot_seq),
    )?;
    // After the replay, so that a damaged record is reported as such; before serving, so
    // that a journal cut short by damage is never served as if nothing was lost.
    store.check_acknowledged()?;
    sequencer
        .check_invariants()
        .map_err(|broken| StoreError::Corrupt(format!("recovered state is broken: {broken}")))?;
    Ok(Recovered {
        sequencer,
        snapshot_seq,
        commands_replayed,
    })
}

/// Journals the configured engine before a server serves, when the state was kept under
/// another one or under one not recorded yet (a new store, or data from before it was
/// recorded): the commands after it are decided under `configured`, and every replay
/// decides the ones before it under the configuration they were first decided under.
/// Refuses a configuration that changes what the stored integers mean (a market's tick,
/// lot, assets or name), naming the market and the setting. Returns the sequence number of
/// the change, if one was journaled.
pub fn record_engine<B: OrderBook>(
    store: &mut Store,
    sequencer: &mut Sequencer<B>,
    configured: &EngineConfig,
    timestamp_ms: u64,
) -> Result<Option<u64>, StoreError> {
    if sequencer.engine_recorded() && sequencer.config() == configured {
        return Ok(None);
    }
    sequencer
        .config()
        .check_change(configured)
        .map_err(StoreError::EngineChanged)?;
    let command = Command::Configure(Box::new(configured.clone()));
    let mut events = Vec::new();
    sequencer
        .apply(timestamp_ms, &command, &mut events)
        .map_err(|reject| StoreError::EngineChanged(reject.to_string()))?;
    let seq = sequencer.last_seq();
    let mut record = JournalRecord::default();
    record.push(timestamp_ms, command, &mut events);
    store.append(&[record])?;
    Ok(Some(seq))
}

/// The sequencer a snapshot restores (checked against its recorded hash), or genesis, with
/// the snapshot's sequence number.
pub(super) fn restore_snapshot<B: OrderBook>(
    config: EngineConfig,
    snapshot: Option<(SequencerSnapshot, [u8; 32])>,
) -> Result<(Sequencer<B>, u64), StoreError> {
    let Some((snapshot, recorded_hash)) = snapshot else {
        return Ok((Sequencer::<B>::new(config), 0));
    };
    let seq = snapshot.last_seq;
    let legacy = snapshot.engine.is_none();
    let sequencer = Sequencer::<B>::from_snapshot(config, snapshot).map_err(|broken| {
        StoreError::Corrupt(format!("snapshot {seq} does not restore: {broken}"))
    })?;
    let restored_hash = match legacy {
        true => sequencer.state_hash_without_engine(),
        false => sequencer.state_hash(),
    };
    if restored_hash != recorded_hash {
        return Err(StoreError::Corrupt(format!(
            "the state restored from snapshot {seq} does not match its recorded hash"
        )));
    }
    Ok((sequencer, seq))
}

/// Replays `records` (the journal after the sequencer's state, from the snapshot at
/// `snapshot_seq` towards `target`, for the progress lines) command by command; each must
/// emit exactly the events recorded with it. Returns the commands replayed.
pub(super) fn replay<B: OrderBook>(
    sequencer: &mut Sequencer<B>,
    (snapshot_seq, target): (u64, u64),
    records: impl Iterator<Item = Result<JournalRecord, StoreError>>,
) -> Result<u64, StoreError> {
    let mut commands_replayed = 0;
    let mut events: Vec<Event> = Vec::new();
    let mut reported = std::time::Instant::now();
    for record in records {
        let record = record?;
        if reported.elapsed() >= PROGRESS_EVERY {
            let seq = sequencer.last_seq();
            let done = (seq - snapshot_seq) * 100 / target.saturating_sub(snapshot_seq).max(1);
            tracing::info!(
                seq,
                target,
                snapshot_seq,
                commands_replayed,
                "replaying the journal: {done}% done"
            );
            reported = std::time::Instant::now();
        }
        if record.first_seq() != Some(sequencer.last_seq() + 1) {
            return Err(StoreError::Corrupt(format!(
                "the journal resumes at {:?} after event {}",
                record.first_seq(),
                sequencer.last_seq()
            )));
        }
        // A configuration the journal records that the one replaying cannot continue (a
        // market's tick changed, say) is named as such, not reported as a mismatch.
        for entry in &record.entries {
            if let Command::Configure(recorded) = &entry.command {
                recorded
                    .check_change(sequencer.config())
                    .map_err(StoreError::EngineChanged)?;
            }
        }
        replay_entries(sequencer, &record.entries, &record.events, &mut events)
            .map_err(StoreError::Corrupt)?;
        commands_replayed += record.entries.len() as u64;
    }
    Ok(commands_replayed)
}
