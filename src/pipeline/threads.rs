//! The threads of the pipeline: the sequencer, which applies requests in batches; the
//! store, which makes batches durable and only then releases their outcomes; the replica,
//! a second sequencer that applies what was committed and copies its state for a
//! snapshot, so that the sequencer never stops for one; the snapshot writer; the indexer.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};

use tokio::sync::{broadcast, oneshot};

use super::journal::{replay_entries, AccountIndex, JournalEntry, JournalRecord, SnapshotStore};
use super::Journal;
use super::{
    Answer, CommandEvents, Committed, CommittedEvents, Events, Failure, Outcome, PipelineConfig,
    PipelineMetrics, Query, Request, Shared,
};
use crate::command::Command;
use crate::engine::{EncodedSnapshot, OrderBook, RecordOrder, Sequencer};
use crate::event::Event;
use crate::types::{Side, Tier};

/// How often the account indexer, caught up with the journal, looks for more.
const INDEX_IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// The first capacity of the buffers events are emitted into; they grow when more are
/// emitted at once, and are reused.
const EVENTS_BUFFER_CAPACITY: usize = 256;

/// An outcome waiting for its batch to be committed.
pub(super) enum Pending {
    Command(oneshot::Sender<Outcome>, Outcome),
    Commands(oneshot::Sender<Vec<Outcome>>, Vec<Outcome>),
    Query(
        oneshot::Sender<Result<Answer, Failure>>,
        Result<Answer, Failure>,
    ),
}

impl Pending {
    /// Releases the outcome, its events pointed at the commit's, among which its batch's
    /// start at `batch_start`.
    fn release(self, committed: &CommittedEvents, batch_start: usize) {
        let place = |outcome: &mut Outcome| {
            if let Ok(command) = outcome {
                command.events.committed(committed, batch_start);
            }
        };
        // A caller that stopped waiting (its connection closed) needs no answer.
        match self {
            Pending::Command(reply, mut outcome) => {
                place(&mut outcome);
                drop(reply.send(outcome))
            }
            Pending::Commands(reply, mut outcomes) => {
                outcomes.iter_mut().for_each(place);
                drop(reply.send(outcomes))
            }
            Pending::Query(reply, answer) => drop(reply.send(answer)),
        }
    }

    /// Refuses the request instead: its batch was not committed.
    fn refuse(self, reason: &'static str) {
        match self {
            Pending::Command(reply, _) => drop(reply.send(Err(Failure::Unavailable(reason)))),
            Pending::Commands(reply, outcomes) => drop(
                reply.send(
                    outcomes
                        .iter()
                        .map(|_| Err(Failure::Unavailable(reason)))
                        .collect(),
                ),
            ),
            Pending::Query(reply, _) => drop(reply.send(Err(Failure::Unavailable(reason)))),
        }
    }
}

/// What the sequencer hands the store: the records to append, the outcomes they release,
/// and possibly a snapshot taken after the batch.
pub(super) struct Batch {
    records: Vec<JournalRecord>,
    /// The events of `records`: where the next record's start in the batch.
    events: usize,
    pending: Vec<Pending>,
    /// Commands and queries applied, for the batch's bound.
    commands: usize,
}

impl Batch {
    fn push_record(&mut self, record: JournalRecord) {
        self.events += record.events.len();
        self.records.push(record);
    }
}

const STORE_FAILED: &str = "the store failed; the exchange is stopped";

/// Journal records deleted after one snapshot, at most.
const PRUNE_RECORDS_MAX: usize = 100_000;

pub(super) fn run_sequencer<B: OrderBook>(
    mut sequencer: Sequencer<B>,
    requests: Receiver<Request>,
    to_store: SyncSender<Batch>,
    shared: &Shared,
    config: &PipelineConfig,
) {
    // Blocks for the first request of each batch; ends when the handle is dropped and
    // every queued request has been applied.
    while let Ok(first) = requests.recv() {
        let mut batch = Batch {
            records: Vec::new(),
            events: 0,
            pending: Vec::new(),
            commands: 0,
        };
        let mut record = JournalRecord::with_capacity(config.record_events_max);
        let mut next = Some(first);
        while let Some(request) = next {
            shared.metrics.taken();
            if shared.failed.load(Ordering::Acquire) {
                // The engine's memory may be ahead of the disk: answer nothing from it.
                refuse(request, STORE_FAILED);
            } else {
                apply(
                    &mut sequencer,
                    request,
                    &mut record,
                    &mut batch,
                    (config.record_events_max, &shared.metrics),
                );
            }
            if batch.commands >= config.batch_requests_max {
                break;
            }
            next = requests.try_recv().ok();
        }
        if !record.events.is_empty() {
            batch.push_record(record);
        }
        shared.metrics.batch.observe(batch.commands as u64);
        if to_store.send(batch).is_err() {
            // The store thread is gone; dropping the batch's replies tells every waiting
            // caller that nothing succeeded.
            break;
        }
    }
}

fn refuse(request: Request, reason: &'static str) {
    match request {
        Request::Command { reply, .. } => drop(reply.send(Err(Failure::Unavailable(reason)))),
        Request::Commands {
            commands, reply, ..
        } => drop(
            reply.send(
                commands
                    .iter()
                    .map(|_| Err(Failure::Unavailable(reason)))
                    .collect(),
            ),
        ),
        Request::Query { reply, .. } => drop(reply.send(Err(Failure::Unavailable(reason)))),
    }
}

/// Applies a request, adding what changed state to `record`, and `record` to the
/// batch each time it holds `record_events_max` events.
fn apply<B: OrderBook>(
    sequencer: &mut Sequencer<B>,
    request: Request,
    record: &mut JournalRecord,
    batch: &mut Batch,
    (record_events_max, metrics): (usize, &PipelineMetrics),
) {
    if let Request::Commands { commands, .. } = &request {
        sequencer.read_ahead(commands.iter());
    }
    let mut applied = |command: Command, timestamp_ms, kept: Events, batch: &mut Batch| {
        let kind = command.kind();
        let kept = (kept == Events::Kept).then_some(batch.events);
        let outcome = apply_command(sequencer, (timestamp_ms, command), kept, record);
        metrics.applied(kind, outcome.is_ok());
        if record.events.len() >= record_events_max {
            let next = JournalRecord::with_capacity(record_events_max);
            batch.push_record(std::mem::replace(record, next));
        }
        batch.commands += 1;
        outcome
    };
    match request {
        Request::Command {
            timestamp_ms,
            command,
            reply,
        } => {
            let outcome = applied(command, timestamp_ms, Events::Kept, batch);
            batch.pending.push(Pending::Command(reply, outcome));
        }
        Request::Commands {
            timestamp_ms,
            commands,
            events: kept,
            reply,
        } => {
            let outcomes = commands
                .into_iter()
                .map(|command| applied(command, timestamp_ms, kept, batch))
                .collect();
            batch.pending.push(Pending::Commands(reply, outcomes));
        }
        Request::Query { query, reply } => {
            let answer = answer(sequencer, query);
            batch.commands += 1;
            batch.pending.push(Pending::Query(reply, answer));
        }
    }
}

/// Applies one command, its events emitted straight into the journal record, and adds
/// the command to the record if it changed state. With `kept_from` (the events the
/// batch's records already hold), the outcome names where in the batch the command's
/// events are.
fn apply_command<B: OrderBook>(
    sequencer: &mut Sequencer<B>,
    (timestamp_ms, command): (u64, Command),
    kept_from: Option<usize>,
    record: &mut JournalRecord,
) -> Outcome {
    let before = record.events.len();
    let result = sequencer.apply(timestamp_ms, &command, &mut record.events);
    let start = kept_from.map(|batch_events| batch_events + before);
    let emitted = record.events.len() - before;
    // A command changed state if and only if it emitted events.
    if emitted > 0 {
        record.push_applied(timestamp_ms, command, emitted);
    }
    result
        .map(|reply| Committed {
            reply,
            events: match start {
                Some(start) => CommandEvents::in_batch(start..start + emitted),
                None => CommandEvents::default(),
            },
        })
        .map_err(Failure::Rejected)
}

fn answer<B: OrderBook>(sequencer: &Sequencer<B>, query: Query) -> Result<Answer, Failure> {
    Ok(match query {
        Query::Balances(account) => Answer::Balances(sequencer.ledger().balances(account)),
        Query::OpenOrders(account) => Answer::Orders(sequencer.open_orders_of(account)),
        Query::OpenOrder { account, order_id } => Answer::Order(
            sequencer
                .open_order(order_id)
                .filter(|order| order.account == account),
        ),
        Query::Book { market, depth } => {
            let book = sequencer.book(market).ok_or(Failure::Rejected(
                crate::error::Reject::NotFound { field: "market" },
            ))?;
            Answer::Book {
                bids: book.levels(Side::Buy, depth),
                asks: book.levels(Side::Sell, depth),
                seq: sequencer.last_seq(),
            }
        }
        Query::Supply => Answer::Supply(sequencer.supply()),
        Query::Prepaid(account) => Answer::Prepaid {
            top_up: sequencer.prepaid().top_up(account).copied(),
            spend_limits: sequencer
                .prepaid()
                .spend_limits_of(account)
                .map(|(service, spend)| (service, *spend))
                .collect(),
        },
        Query::IssuePrices => {
            let ledger = sequencer.ledger();
            Answer::IssuePrices {
                prices: Tier::ALL.map(|tier| ledger.issue_price(tier)),
                changes: ledger.issue_price_changes().iter().copied().collect(),
            }
        }
        Query::AppliedReply(command) => Answer::AppliedReply(
            sequencer
                .applied_reply(&command)
                .map_err(Failure::Rejected)?,
        ),
        Query::OrderByClientId {
            account,
            client_order_id,
        } => Answer::Order(sequencer.order_by_client_id(account, &client_order_id)),
        Query::RestingOrders => Answer::RestingOrders {
            orders: sequencer.resting_orders(),
            seq: sequencer.last_seq(),
        },
    })
}

pub(super) fn run_store<J: Journal>(
    mut journal: J,
    batches: Receiver<Batch>,
    committed: broadcast::Sender<CommittedEvents>,
    to_replica: SyncSender<CommittedCommands>,
    shared: &Shared,
) {
    let mut replica_gone = false;
    while let Ok(first) = batches.recv() {
        // Everything waiting goes into one durable write: group commit.
        let (records, pending) = gather(std::iter::once(first).chain(batches.try_iter()));
        if shared.failed.load(Ordering::Acquire) {
            pending
                .into_iter()
                .for_each(|(_, waiting)| waiting.refuse(STORE_FAILED));
            continue;
        }
        if !records.is_empty() {
            let started = std::time::Instant::now();
            let appended = journal.append(&records);
            shared.metrics.commit.observe_duration(started.elapsed());
            if let Err(error) = appended {
                fail(shared, format!("journal append failed: {error}"));
                pending
                    .into_iter()
                    .for_each(|(_, waiting)| waiting.refuse(STORE_FAILED));
                continue;
            }
        }
        // Sized once: a commit's events run to megabytes, and growing them by doubling
        // copied them over and over into fresh memory the kernel had to zero.
        let mut entries =
            Vec::with_capacity(records.iter().map(|record| record.entries.len()).sum());
        let mut events: Vec<Event> =
            Vec::with_capacity(records.iter().map(|record| record.events.len()).sum());
        for mut record in records {
            entries.append(&mut record.entries);
            events.append(&mut record.events);
        }
        if let Some(last) = events.last() {
            shared.committed_seq.store(last.seq, Ordering::Release);
        }
        let events = std::sync::Arc::new(events);
        if !events.is_empty() {
            // No subscriber is no error: committed events are in the journal regardless.
            let _ = committed.send(std::sync::Arc::clone(&events));
        }
        // Released after the broadcast: once a caller has its answer, the events of its
        // command have been published too.
        for (batch_start, waiting) in pending {
            waiting.release(&events, batch_start);
        }
        if !entries.is_empty() && !replica_gone {
            // Waits only while the replica is REPLICA_QUEUE_GROUPS commits behind.
            let work = CommittedCommands { entries, events };
            if to_replica.send(work).is_err() {
                replica_gone = true;
                tracing::warn!("the snapshot replica is gone; no more snapshots are taken");
            }
        }
    }
}

/// The records of `group`'s batches, in order, and each batch's outcomes with where its
/// events start among the commit's.
fn gather(group: impl Iterator<Item = Batch>) -> (Vec<JournalRecord>, Vec<(usize, Pending)>) {
    let mut records = Vec::new();
    let mut pending = Vec::new();
    let mut group_events = 0;
    for batch in group {
        records.extend(batch.records);
        pending.extend(
            batch
                .pending
                .into_iter()
                .map(|waiting| (group_events, waiting)),
        );
        group_events += batch.events;
    }
    (records, pending)
}

/// What one commit made durable, for the replica: the commands and all their events.
pub(super) struct CommittedCommands {
    entries: Vec<JournalEntry>,
    events: CommittedEvents,
}

/// Commits the replica may be behind before the store thread waits for it: enough to
/// cover the copy of a large state (up to a second or so) at thousands of commits a second.
pub(super) const REPLICA_QUEUE_GROUPS: usize = 4_096;

/// Events between snapshots per record of the state, at least: the encoding's share of
/// the replica's time, against how much a restart replays after the newest snapshot (at
/// most this many events per record). Under one order session at a window of 4,096 with
/// some 600,000 kept client order ids, encoding took 19% of a core at 2 and 10% at 4.
const SNAPSHOT_EVENTS_PER_RECORD: u64 = 4;

/// Bytes a new snapshot buffer has room for per record of the state: a kept client
/// order id, the most numerous record under a high order rate, takes about 45.
const SNAPSHOT_BYTES_PER_RECORD_ROOM: usize = 80;

/// Applies every committed command to a second sequencer, checking that it emits exactly
/// the committed events (as recovery does), and hands a copy of its state to the
/// snapshot writer every so many events. The copy takes this thread's time, not the
/// sequencer's; a replica that disagrees with the journal stops taking snapshots rather
/// than write a state the exchange never had.
pub(super) fn run_replica<B: OrderBook>(
    mut replica: Sequencer<B>,
    committed: Receiver<CommittedCommands>,
    (to_writer, written): (SyncSender<EncodedSnapshot>, Receiver<Vec<u8>>),
    shared: &Shared,
    config: &PipelineConfig,
) {
    let mut scratch: Vec<Event> = Vec::with_capacity(EVENTS_BUFFER_CAPACITY);
    let mut record_order = RecordOrder::default();
    let mut last_snapshot = replica.last_seq();
    while let Ok(work) = committed.recv() {
        let resumes = work.events.first().map(|event| event.seq);
        let replayed = match resumes == Some(replica.last_seq() + 1) {
            true => replay_entries(&mut replica, &work.entries, &work.events, &mut scratch),
            false => Err(format!(
                "the commit resumes at {resumes:?} after event {}",
                replica.last_seq()
            )),
        };
        if let Err(error) = replayed {
            tracing::error!(%error, "the snapshot replica disagrees with the journal; no more snapshots are taken");
            if let Ok(mut failure) = shared.snapshot_failure.lock() {
                *failure = Some(format!(
                    "the snapshot replica disagrees with the journal: {error}"
                ));
            }
            return;
        }
        // Taken no more often than every SNAPSHOT_EVENTS_PER_RECORD events per record of
        // the state, so the encoding's cost per event stays bounded however large the
        // state grows.
        let every = config.snapshot_every_events;
        let since = replica.last_seq() - last_snapshot;
        let records = replica.state_records();
        let state_events = SNAPSHOT_EVENTS_PER_RECORD * records;
        if every > 0 && since >= every && since >= state_events {
            last_snapshot = replica.last_seq();
            // Encoded into the buffer of the snapshot before once the writer is done with
            // it; waits while the snapshot before is still being written. A new buffer
            // has room for the whole snapshot from the start: grown by doubling, a large
            // state's was copied over and over into fresh memory the kernel had to zero
            // (room reserved and never written costs no memory).
            let buffer = written.try_recv().unwrap_or_else(|_| {
                let records = usize::try_from(records).unwrap_or(usize::MAX);
                Vec::with_capacity(records.saturating_mul(SNAPSHOT_BYTES_PER_RECORD_ROOM))
            });
            let started = std::time::Instant::now();
            let snapshot = replica.encoded_snapshot_into(buffer, &mut record_order);
            tracing::info!(
                seq = snapshot.last_seq,
                records,
                bytes = snapshot.body.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "encoded a snapshot"
            );
            if to_writer.send(snapshot).is_err() {
                tracing::warn!("the snapshot writer is gone; no more snapshots are written");
                return;
            }
        }
    }
}

/// Writes each snapshot the replica hands it (of a committed state), then prunes the
/// journal behind it, off the store thread: a large state's snapshot takes seconds to
/// write and would hold up every commit meanwhile.
pub(super) fn run_snapshots(
    mut snapshots: impl SnapshotStore,
    (to_write, written): (Receiver<EncodedSnapshot>, SyncSender<Vec<u8>>),
    shared: &Shared,
    config: &PipelineConfig,
) {
    while let Ok(snapshot) = to_write.recv() {
        let started = std::time::Instant::now();
        let mut result = snapshots.write(&snapshot);
        shared.metrics.snapshot.observe_duration(started.elapsed());
        if result.is_ok() && config.journal_retention_events > 0 {
            // Bounded, so that a long backlog of history is deleted over several
            // snapshots rather than in one long pause.
            result = snapshots
                .prune(
                    config.journal_retention_events,
                    PRUNE_RECORDS_MAX,
                    shared
                        .indexed_seq
                        .load(Ordering::Acquire)
                        .min(shared.held_after_seq.load(Ordering::Acquire)),
                )
                .map(|_| ());
        }
        match &result {
            Ok(()) => tracing::info!(
                seq = snapshot.last_seq,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "wrote a snapshot"
            ),
            Err(error) => {
                tracing::warn!(%error, seq = snapshot.last_seq, "a snapshot was not written")
            }
        }
        if let Ok(mut failure) = shared.snapshot_failure.lock() {
            *failure = result.err().map(|error| error.to_string());
        }
        // The buffer goes back to the replica for the next snapshot; a replica that has
        // one already, or is gone, lets it drop.
        let _ = written.try_send(snapshot.body);
    }
}

fn fail(shared: &Shared, message: String) {
    tracing::error!(
        %message,
        "the store failed: the exchange stops taking commands; restart it to recover"
    );
    shared.failed.store(true, Ordering::Release);
    if let Ok(mut failure) = shared.failure.lock() {
        *failure = Some(message);
    }
    shared.failed_signal.send_replace(true);
}

/// While the exchange commits, the indexer pauses this many times as long as each pass
/// took, unless it is more than [`INDEX_LAG_EVENTS_MAX`] behind.
const INDEX_BUSY_PAUSE_FACTOR: u32 = 4;

/// Events the index may fall behind the commits before it stops pausing for them (about
/// a third of a second of one order session's commits): under a load that lasts, it then
/// takes the time it needs to keep up rather than fall behind without end, so that the
/// history queries that wait for it (an ended order, the list of every order) are
/// answered within a second or two, and a history query scans at most about this much of
/// the journal past it.
const INDEX_LAG_EVENTS_MAX: u64 = 1 << 18;

/// Journal records the indexer reads in one pass, at most. Each pass ends in one sled
/// transaction, which holds sled's process-wide write lock while it applies: commits wait
/// for it, so a pass stays small (a few milliseconds).
const INDEX_RECORDS_MAX: usize = 64;

/// Committed events the indexer indexes in one pass from memory, at most: what a pass of
/// journal records holds at the default record size.
const INDEX_PASS_EVENTS_MAX: usize = 8_192;

/// Events the index may be behind the commits and still keep the commits broadcast since
/// for its passes (a commit's events stay in memory until every receiver has taken it):
/// twice the lag it keeps under load. Further behind (catching up after a start, or
/// failing), it lets them go and reads the journal.
const INDEX_HELD_LAG_EVENTS_MAX: u64 = 2 * INDEX_LAG_EVENTS_MAX;

/// Extends the account index behind the commits: from the committed events the store
/// broadcasts, while they continue the index (nothing read back from the journal), and
/// from the journal when they do not (at start, or after falling behind the broadcast).
pub(super) fn run_indexer(
    history: impl AccountIndex,
    mut live: broadcast::Receiver<CommittedEvents>,
    shared: &Shared,
) {
    let mut last_error: Option<String> = None;
    // Commits received and not wholly indexed yet, oldest first.
    let mut held: std::collections::VecDeque<CommittedEvents> = std::collections::VecDeque::new();
    let mut indexed_seq = shared.indexed_seq.load(Ordering::Acquire);
    while !shared.stopping.load(Ordering::Acquire) {
        receive_committed(&mut live, &mut held);
        let committed = shared.committed_seq.load(Ordering::Acquire);
        let started = std::time::Instant::now();
        let indexed = index_pass(&history, held.make_contiguous(), indexed_seq, committed);
        if let Ok(reached) = history.indexed_seq() {
            indexed_seq = reached;
            shared.indexed_seq.store(reached, Ordering::Release);
        }
        held.retain(|commit| commit.last().is_some_and(|event| event.seq > indexed_seq));
        if committed.saturating_sub(indexed_seq) > INDEX_HELD_LAG_EVENTS_MAX {
            // Too far behind for the commits received to continue the index soon: read
            // from the journal until it is close, and let the broadcast's commits go
            // rather than keep them from being freed.
            held.clear();
            while matches!(
                live.try_recv(),
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_))
            ) {}
        }
        let committed_now = shared.committed_seq.load(Ordering::Acquire);
        std::thread::sleep(index_pause(
            started.elapsed(),
            committed_now != committed,
            committed_now.saturating_sub(indexed_seq),
        ));
        let error = indexed.as_ref().err().map(|error| error.to_string());
        if error.is_some() && error != last_error {
            // Said once per distinct error, not every pass.
            tracing::warn!(
                error = error.as_deref().unwrap_or_default(),
                "the account index did not advance"
            );
        }
        last_error = error.clone();
        if let Ok(mut failure) = shared.index_failure.lock() {
            *failure = error;
        }
        if !matches!(indexed, Ok(count) if count > 0) {
            // Caught up (or failing): look again shortly.
            std::thread::sleep(INDEX_IDLE_POLL);
        }
    }
}

/// How long the indexer pauses after a pass that took `pass`: while the exchange
/// committed during it (`busy`), the index takes at most a fifth of the time, so that the
/// commits have the cores, unless it is more than [`INDEX_LAG_EVENTS_MAX`] events behind
/// (`lag`).
fn index_pause(pass: std::time::Duration, busy: bool, lag: u64) -> std::time::Duration {
    match busy && lag <= INDEX_LAG_EVENTS_MAX {
        true => pass * INDEX_BUSY_PAUSE_FACTOR,
        false => std::time::Duration::ZERO,
    }
}

/// Takes the commits broadcast since, while `held` has fewer than a pass's events. A
/// receiver that fell behind the broadcast goes on from the oldest commit it still holds;
/// the gap is read from the journal.
fn receive_committed(
    live: &mut broadcast::Receiver<CommittedEvents>,
    held: &mut std::collections::VecDeque<CommittedEvents>,
) {
    let mut events: usize = held.iter().map(|commit| commit.len()).sum();
    while events < INDEX_PASS_EVENTS_MAX {
        match live.try_recv() {
            Ok(commit) => {
                events += commit.len();
                held.push_back(commit);
            }
            Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
            Err(_) => return,
        }
    }
}

/// One pass of the index: the held commits' events if they continue it, else journal
/// records up to `committed`. Returns how many events or records it indexed.
fn index_pass(
    history: &impl AccountIndex,
    held: &[CommittedEvents],
    indexed_seq: u64,
    committed: u64,
) -> Result<u64, super::JournalError> {
    match history.index_committed(held, INDEX_PASS_EVENTS_MAX)? {
        Some(events) if events > 0 => Ok(events),
        _ if indexed_seq < committed => history
            .index_pending(committed, INDEX_RECORDS_MAX)
            .map(|records| records as u64),
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_pauses_for_busy_commits_only_while_it_keeps_close() {
        let pass = std::time::Duration::from_millis(3);
        let paused = pass * INDEX_BUSY_PAUSE_FACTOR;
        assert_eq!(index_pause(pass, true, 0), paused);
        assert_eq!(index_pause(pass, true, INDEX_LAG_EVENTS_MAX), paused);
        // Idle exchange: nothing to give way to.
        assert_eq!(index_pause(pass, false, 0), std::time::Duration::ZERO);
        // Too far behind: it takes the time it needs, busy or not, so that it keeps up.
        assert_eq!(
            index_pause(pass, true, INDEX_LAG_EVENTS_MAX + 1),
            std::time::Duration::ZERO
        );
    }
}
