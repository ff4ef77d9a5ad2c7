//! The pipeline: handlers → sequencer thread → store thread → fan-out, joined by bounded
//! queues, so that nobody ever sees what is not durable.
//!
//! - [`Pipeline::submit`] and [`Pipeline::query`] put a request on a bounded queue and
//!   return at once with a receiver for the outcome; a full queue is refused
//!   ([`Failure::Unavailable`]) rather than buffered.
//! - The sequencer thread applies requests in order, in batches of whatever is waiting,
//!   and hands each batch (the journal records of the commands that changed state, and the
//!   outcomes of every request) to the store thread over a small bounded queue. It goes
//!   on with the next batch while the store writes: group commit.
//! - The store thread writes every batch waiting in one atomic, durable journal append,
//!   and only then releases the outcomes (rejections and query answers included, which
//!   may depend on uncommitted state) and broadcasts the committed events.
//! - Fail-stop: if an append fails, the pipeline is marked failed, no waiting caller is
//!   told that anything succeeded, and every later request is refused. A restart
//!   recovers the last committed state.
//!
//! Snapshots are taken by the sequencer thread every so many events and written by the
//! store thread after the journal covers them.

mod journal;
mod metrics;
mod threads;

pub use metrics::PipelineMetrics;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{broadcast, oneshot};

use crate::command::Command;
use crate::engine::{Level, RestingOrder};
use crate::engine::{OrderBook, Sequencer};
use crate::error::Reject;
use crate::event::{Event, OrderView, Reply, Supply};
use crate::ledger::{DailySpend, IssuePriceChange, TopUpAccount};
use crate::types::{AccountId, Balances, IssuePrice, MarketId, OrderId};

pub use crate::config::PipelineConfig;
pub use journal::{
    replay_entries, AccountIndex, FaultyJournal, Journal, JournalEntry, JournalError,
    JournalRecord, SnapshotStore,
};

/// Why a request did not get an answer from the exchange.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The sequencer refused the command; it changed nothing.
    #[error(transparent)]
    Rejected(#[from] Reject),
    /// The exchange cannot take the request now: its queue is full, it is shutting down,
    /// or its store failed.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
}

/// A committed command: its reply and the events it emitted (the fills of an order, the
/// sequence numbers of its changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The sequencer's reply.
    pub reply: Reply,
    /// The events the command emitted, in order.
    pub events: CommandEvents,
}

/// The events one command emitted: its part of the events its commit broadcast, shared
/// with the broadcast rather than copied for the caller. Until the commit, the range
/// counts from the start of the sequencer's batch; the store moves it to its place
/// among the commit's events.
#[derive(Clone, Debug, Default)]
pub struct CommandEvents {
    committed: CommittedEvents,
    range: std::ops::Range<usize>,
}

impl CommandEvents {
    /// The events at `range` of a sequencer batch, not committed yet.
    fn in_batch(range: std::ops::Range<usize>) -> CommandEvents {
        CommandEvents {
            committed: CommittedEvents::default(),
            range,
        }
    }

    /// Points at the committed events, where the batch's start at `batch_start`.
    fn committed(&mut self, committed: &CommittedEvents, batch_start: usize) {
        if self.range.is_empty() {
            return;
        }
        self.committed = Arc::clone(committed);
        self.range = batch_start + self.range.start..batch_start + self.range.end;
    }
}

impl std::ops::Deref for CommandEvents {
    type Target = [Event];

    fn deref(&self) -> &[Event] {
        // Empty until committed; a range always lies within the commit's events.
        self.committed.get(self.range.clone()).unwrap_or_default()
    }
}

impl PartialEq for CommandEvents {
    fn eq(&self, other: &CommandEvents) -> bool {
        **self == **other
    }
}

impl Eq for CommandEvents {}

/// What a command's caller gets once the command is committed.
pub type Outcome = Result<Committed, Failure>;

/// Whether the outcomes of a batch of commands carry their events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Events {
    /// Each outcome carries its command's events (its range of the commit's shared
    /// events).
    Kept,
    /// Outcomes carry only the replies: a caller that needs nothing else does not hold
    /// the commit's events until its answers are written.
    Dropped,
}

/// A question about the state, answered from state that is committed by the time the
/// answer is released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// An account's balances.
    Balances(AccountId),
    /// An account's open orders.
    OpenOrders(AccountId),
    /// One open order, if the account owns it.
    OpenOrder {
        /// The owner.
        account: AccountId,
        /// The order.
        order_id: OrderId,
    },
    /// The reply a keyed command already got, if its key was applied (within retention)
    /// to the same command; `Rejected(AlreadyExists)` if to another.
    AppliedReply(Box<Command>),
    /// The account's order with this client order id while the id is kept: open, or ended
    /// within the retention window.
    OrderByClientId {
        /// The owner.
        account: AccountId,
        /// The owner's id for the order.
        client_order_id: Box<str>,
    },
    /// A market's aggregated levels.
    Book {
        /// The market.
        market: MarketId,
        /// Levels per side.
        depth: usize,
    },
    /// The divmid supply.
    Supply,
    /// Every resting order of every market, to seed a replica of the books.
    RestingOrders,
    /// A holder's top-up settings and spend limits.
    Prepaid(AccountId),
    /// The issue prices now and their last changes.
    IssuePrices,
}

/// The answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An account's balances.
    Balances(Balances),
    /// Open orders.
    Orders(Vec<OrderView>),
    /// One open order, if found.
    Order(Option<OrderView>),
    /// A market's levels, best first, at sequence number `seq`.
    Book {
        /// Bid levels, highest first.
        bids: Vec<Level>,
        /// Ask levels, lowest first.
        asks: Vec<Level>,
        /// The sequence number the book reflects.
        seq: u64,
    },
    /// The divmid supply.
    Supply(Supply),
    /// The reply a keyed command already got, if its key was applied.
    AppliedReply(Option<Reply>),
    /// Every resting order per market (bids then asks, each in priority order), at
    /// sequence number `seq`.
    RestingOrders {
        /// Per market, indexed by market id.
        orders: Vec<Vec<RestingOrder>>,
        /// The sequence number they reflect.
        seq: u64,
    },
    /// A holder's top-up settings (if it ever set them) and spend limits by service.
    Prepaid {
        /// The settings and the month's spending.
        top_up: Option<TopUpAccount>,
        /// Per service.
        spend_limits: Vec<(AccountId, DailySpend)>,
    },
    /// The issue price per tier (indexed by [`crate::types::Tier::index`]) and the last
    /// changes, oldest first.
    IssuePrices {
        /// Per tier, once set.
        prices: [Option<IssuePrice>; 2],
        /// Oldest first.
        changes: Vec<IssuePriceChange>,
    },
}

/// Events committed in one store write, in sequence order.
pub type CommittedEvents = Arc<Vec<Event>>;

/// A request on its way to the sequencer thread.
enum Request {
    Command {
        timestamp_ms: u64,
        command: Command,
        reply: oneshot::Sender<Outcome>,
    },
    /// Commands of one session, applied in order, answered together.
    Commands {
        timestamp_ms: u64,
        commands: Vec<Command>,
        events: Events,
        reply: oneshot::Sender<Vec<Outcome>>,
    },
    Query {
        query: Query,
        reply: oneshot::Sender<Result<Answer, Failure>>,
    },
}

/// State the threads share with the handle.
struct Shared {
    /// Set once an append fails; never cleared.
    failed: AtomicBool,
    /// The sequence number of the last committed event.
    committed_seq: AtomicU64,
    /// What failed, for the operator.
    failure: Mutex<Option<String>>,
    /// The last snapshot write error, if the last attempt failed.
    snapshot_failure: Mutex<Option<String>>,
    /// Tells helper threads (the indexer) to stop.
    stopping: AtomicBool,
    /// How far the account index has read the journal: retention never deletes what it
    /// has not read. The largest number while no indexer runs.
    indexed_seq: AtomicU64,
    /// While a backup is read, 0: retention deletes nothing; the largest number while none
    /// is.
    held_after_seq: AtomicU64,
    /// The last account-index error, if the last attempt failed.
    index_failure: Mutex<Option<String>>,
    /// Becomes `true` when `failed` is set, for the server to stop on.
    failed_signal: tokio::sync::watch::Sender<bool>,
    /// What the threads measure.
    metrics: PipelineMetrics,
}

impl Shared {
    fn new(committed_seq: u64) -> Shared {
        Shared {
            failed: AtomicBool::new(false),
            committed_seq: AtomicU64::new(committed_seq),
            failure: Mutex::new(None),
            snapshot_failure: Mutex::new(None),
            stopping: AtomicBool::new(false),
            indexed_seq: AtomicU64::new(u64::MAX),
            held_after_seq: AtomicU64::new(u64::MAX),
            metrics: PipelineMetrics::default(),
            index_failure: Mutex::new(None),
            failed_signal: tokio::sync::watch::Sender::new(false),
        }
    }
}

/// Reads the pipeline's last committed sequence number.
#[derive(Clone)]
pub struct CommittedSeq(Arc<Shared>);

impl CommittedSeq {
    /// The sequence number of the last committed event.
    pub fn get(&self) -> u64 {
        self.0.committed_seq.load(Ordering::Acquire)
    }
}

/// Keeps the whole journal from retention while a backup reads it; released when dropped.
pub struct JournalHold(Arc<Shared>);

impl Drop for JournalHold {
    fn drop(&mut self) {
        self.0.held_after_seq.store(u64::MAX, Ordering::Release);
    }
}

/// The running pipeline.
pub struct Pipeline {
    requests: Option<SyncSender<Request>>,
    shared: Arc<Shared>,
    committed: broadcast::Sender<CommittedEvents>,
    threads: Vec<JoinHandle<()>>,
}

/// Config::validate refuses these; a PipelineConfig built in code must not pass them.
fn assert_sizes(config: &PipelineConfig) {
    for (name, size) in [
        ("queue_capacity", config.queue_capacity),
        ("store_queue_capacity", config.store_queue_capacity),
        ("broadcast_capacity", config.broadcast_capacity),
        ("batch_requests_max", config.batch_requests_max),
        ("record_events_max", config.record_events_max),
    ] {
        assert!(size > 0, "pipeline.{name} is at least 1");
    }
}

/// Starts one of the pipeline's threads, named, with the shared state and configuration.
fn spawn(
    name: &str,
    shared: &Arc<Shared>,
    config: &PipelineConfig,
    run: impl FnOnce(&Shared, &PipelineConfig) + Send + 'static,
) -> JoinHandle<()> {
    let shared = Arc::clone(shared);
    let config = config.clone();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || run(&shared, &config))
        .unwrap_or_else(|error| panic!("the {name} thread starts: {error}"))
}

impl Pipeline {
    /// Starts the sequencer, store, replica and snapshot threads on a recovered sequencer
    /// and its journal.
    pub fn start<B, J>(sequencer: Sequencer<B>, journal: J, config: PipelineConfig) -> Pipeline
    where
        B: OrderBook + Send + 'static,
        J: Journal,
    {
        assert_sizes(&config);
        let shared = Arc::new(Shared::new(sequencer.last_seq()));
        // The replica starts from a copy of the recovered state.
        let replica =
            Sequencer::<B>::from_snapshot(sequencer.config().clone(), sequencer.snapshot())
                .expect("a sequencer's own snapshot restores");
        let (requests, request_receiver) = mpsc::sync_channel(config.queue_capacity);
        let (to_store, store_receiver) = mpsc::sync_channel(config.store_queue_capacity);
        let (committed, _) = broadcast::channel(config.broadcast_capacity);
        let (to_replica, replica_receiver) = mpsc::sync_channel(threads::REPLICA_QUEUE_GROUPS);
        // One snapshot waits while another is written, at most.
        let (to_writer, writer_receiver) = mpsc::sync_channel(1);
        // The written snapshot's buffer, returned to be encoded into again.
        let (written, written_receiver) = mpsc::sync_channel(1);
        let snapshots = journal.snapshots();
        let threads = vec![
            spawn("sequencer", &shared, &config, move |shared, config| {
                threads::run_sequencer(sequencer, request_receiver, to_store, shared, config)
            }),
            spawn("store", &shared, &config, {
                let committed = committed.clone();
                move |shared, _| {
                    threads::run_store(journal, store_receiver, committed, to_replica, shared)
                }
            }),
            spawn("replica", &shared, &config, move |shared, config| {
                threads::run_replica(
                    replica,
                    replica_receiver,
                    (to_writer, written_receiver),
                    shared,
                    config,
                )
            }),
            spawn("snapshots", &shared, &config, move |shared, config| {
                threads::run_snapshots(snapshots, (writer_receiver, written), shared, config)
            }),
        ];
        Pipeline {
            requests: Some(requests),
            shared,
            committed,
            threads,
        }
    }

    /// Queues a command; the receiver gets its outcome once it is committed.
    pub fn submit(
        &self,
        timestamp_ms: u64,
        command: Command,
    ) -> Result<oneshot::Receiver<Outcome>, Failure> {
        let (reply, receiver) = oneshot::channel();
        self.send(Request::Command {
            timestamp_ms,
            command,
            reply,
        })?;
        Ok(receiver)
    }

    /// Queues commands to be applied one after the other, with nothing between them; the
    /// receiver gets their outcomes, in order, once all are committed. One queue entry
    /// and one reply for the lot: what a session submits at a time.
    pub fn submit_all(
        &self,
        timestamp_ms: u64,
        commands: Vec<Command>,
        events: Events,
    ) -> Result<oneshot::Receiver<Vec<Outcome>>, Failure> {
        let (reply, receiver) = oneshot::channel();
        self.send(Request::Commands {
            timestamp_ms,
            commands,
            events,
            reply,
        })?;
        Ok(receiver)
    }

    /// Queues a query; the receiver gets the answer once the state it reflects is
    /// committed.
    pub fn query(
        &self,
        query: Query,
    ) -> Result<oneshot::Receiver<Result<Answer, Failure>>, Failure> {
        let (reply, receiver) = oneshot::channel();
        self.send(Request::Query { query, reply })?;
        Ok(receiver)
    }

    fn send(&self, request: Request) -> Result<(), Failure> {
        if self.is_failed() {
            return Err(Failure::Unavailable(
                "the store failed; the exchange is stopped",
            ));
        }
        let requests = self
            .requests
            .as_ref()
            .ok_or(Failure::Unavailable("the exchange is shutting down"))?;
        requests.try_send(request).map_err(|error| match error {
            TrySendError::Full(_) => Failure::Unavailable("the exchange is busy; retry shortly"),
            TrySendError::Disconnected(_) => Failure::Unavailable("the exchange is stopped"),
        })?;
        self.shared.metrics.queued();
        Ok(())
    }

    /// What the pipeline's threads measure.
    pub fn metrics(&self) -> &PipelineMetrics {
        &self.shared.metrics
    }

    /// A receiver of every committed event batch from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CommittedEvents> {
        self.committed.subscribe()
    }

    /// A handle that reads the last committed sequence number, for tasks that must not
    /// keep the pipeline itself alive.
    pub fn committed_handle(&self) -> CommittedSeq {
        CommittedSeq(Arc::clone(&self.shared))
    }

    /// The sequence number of the last committed event.
    pub fn committed_seq(&self) -> u64 {
        self.shared.committed_seq.load(Ordering::Acquire)
    }

    /// Whether the store failed and the pipeline stopped taking requests.
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// A receiver that sees `true` once the store has failed: the server then reports
    /// itself not serving and exits with an error, so that a supervisor restarts it.
    pub fn failed_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shared.failed_signal.subscribe()
    }

    /// What made the store fail, if it did.
    pub fn failure(&self) -> Option<String> {
        self.shared
            .failure
            .lock()
            .map(|failure| failure.clone())
            .unwrap_or(None)
    }

    /// The error of the last snapshot write, if it failed.
    pub fn snapshot_failure(&self) -> Option<String> {
        self.shared
            .snapshot_failure
            .lock()
            .map(|failure| failure.clone())
            .unwrap_or(None)
    }

    /// Keeps the whole journal from retention until the hold is dropped, for a backup that
    /// reads it; `None` while another backup holds it.
    pub fn hold_journal(&self) -> Option<JournalHold> {
        self.shared
            .held_after_seq
            .compare_exchange(u64::MAX, 0, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(JournalHold(Arc::clone(&self.shared)))
    }

    /// Starts a thread that extends the account index behind the commits, so that history
    /// queries read the index rather than the journal.
    pub fn start_indexer(&mut self, history: impl AccountIndex) {
        // Until its first pass, the index is where it was when the store was opened.
        let indexed = history.indexed_seq().unwrap_or(0);
        self.shared.indexed_seq.store(indexed, Ordering::Release);
        let shared = Arc::clone(&self.shared);
        let live = self.committed.subscribe();
        let thread = std::thread::Builder::new()
            .name("indexer".to_string())
            .spawn(move || threads::run_indexer(history, live, &shared))
            .expect("the indexer thread starts");
        self.threads.push(thread);
    }

    /// The last sequence number the account index reaches, once an indexer runs.
    pub fn indexed_seq(&self) -> Option<u64> {
        let indexed = self.shared.indexed_seq.load(Ordering::Acquire);
        (indexed != u64::MAX).then_some(indexed)
    }

    /// The error of the last account-index pass, if it failed (history queries then scan
    /// more of the journal; nothing is lost).
    pub fn index_failure(&self) -> Option<String> {
        self.shared
            .index_failure
            .lock()
            .map(|failure| failure.clone())
            .unwrap_or(None)
    }

    /// Stops taking requests, lets every request already queued be applied and committed
    /// (or refused, after a store failure), and waits for both threads to finish.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.requests = None;
        self.shared.stopping.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            // A thread that panicked has already reported it; there is nothing to add.
            let _ = thread.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop();
    }
}
