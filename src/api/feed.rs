//! The market-data feed: replays the journal's recent trades and charges into the
//! statistics and the metering usage at start, then applies every committed batch the
//! pipeline broadcasts. A feed that falls
//! behind the broadcast catches up from the journal, so no trade is missed or counted
//! twice.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use super::context::{now_ms, MarketDataState};
use super::journal_pages::{self, PAGE_EVENTS};
use crate::event::{Event, EventKind};
use crate::pipeline::{CommittedEvents, CommittedSeq};
use crate::store::History;

/// Runs until the pipeline stops broadcasting.
pub async fn run(
    state: Arc<MarketDataState>,
    mut live: broadcast::Receiver<CommittedEvents>,
    committed: CommittedSeq,
    history: History,
    retention_days: u64,
) {
    // Start where the retained candles and usage begin rather than at genesis.
    let since = now_ms().saturating_sub(retention_days * crate::types::DAY_MS);
    let start = {
        let history = history.clone();
        tokio::task::spawn_blocking(move || history.seq_before_time(since)).await
    };
    match start {
        Ok(Ok(seq)) => apply_from(&state, seq),
        Ok(Err(error)) => tracing::warn!(%error, "market data: cannot find where to start"),
        Err(_) => return,
    }
    if !catch_up(&state, &history, &committed).await {
        return;
    }
    state.ready.store(true, Ordering::Release);
    tracing::info!("market data caught up with the journal");
    loop {
        match live.recv().await {
            Ok(events) => apply(&state, &events),
            Err(RecvError::Lagged(_)) => {
                if !catch_up(&state, &history, &committed).await {
                    return;
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Marks everything up to `seq` as applied, so the replay starts after it.
fn apply_from(state: &MarketDataState, seq: u64) {
    if let Ok(mut stats) = state.stats.write() {
        stats.skip_to(seq);
    }
    if let Ok(mut usage) = state.usage.write() {
        usage.skip_to(seq);
    }
}

fn apply(state: &MarketDataState, events: &[Event]) {
    if let Ok(mut stats) = state.stats.write() {
        for event in events {
            stats.apply(event);
        }
    }
    if let Ok(mut usage) = state.usage.write() {
        for event in events {
            usage.apply(event);
        }
        // Every event of the batch is counted, charges or not.
        if let Some(last) = events.last() {
            usage.skip_to(last.seq);
        }
    }
}

/// Reads trades from the journal until the statistics reach the committed sequence
/// number. Returns false if the store cannot be read.
async fn catch_up(
    state: &Arc<MarketDataState>,
    history: &History,
    committed: &CommittedSeq,
) -> bool {
    loop {
        let target = committed.get();
        let applied = state
            .stats
            .read()
            .map_or(target, |stats| stats.applied_seq());
        if applied >= target {
            return true;
        }
        let committed_kinds = |event: &Event| {
            matches!(
                event.kind,
                EventKind::Fill(_) | EventKind::Charged { .. } | EventKind::AutoToppedUp { .. }
            )
        };
        let bounds = (applied, target);
        match journal_pages::page(history, bounds, PAGE_EVENTS, committed_kinds).await {
            Ok(page) => {
                apply(state, &page.events);
                // Nothing but trades and charges were kept: move past what the page looked at.
                let reached = page.next.unwrap_or(target);
                apply_from(state, reached);
            }
            Err(status) => {
                tracing::warn!(
                    error = status.message(),
                    "market data: cannot read the journal"
                );
                return false;
            }
        }
    }
}
