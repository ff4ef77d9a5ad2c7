//! The journal read a page at a time by everything that replays it (order-update and
//! trade streams, the trade feed's catch-up, the candle and usage feed, the NATS
//! publisher, the book replica): one page size, and a bound on the events one page looks
//! at, so that a page of rare events (one market's fills) stops and says where.

use tonic::Status;

use super::status;
use crate::event::Event;
use crate::store::{History, Page};

/// Events in one page of the journal, at most.
pub const PAGE_EVENTS: usize = 1_024;

/// Events one page looks at, at most.
pub const PAGE_SCAN_MAX: usize = 64 * PAGE_EVENTS;

/// The events after `after` and up to `until` that `keep` accepts, at most `limit` (which
/// must be at most [`PAGE_EVENTS`]: callers check what a client asks for), looking at no
/// more than [`PAGE_SCAN_MAX`]; read on a blocking thread. The page's `next` says where to
/// go on from.
pub async fn page(
    history: &History,
    (after, until): (u64, u64),
    limit: usize,
    keep: impl Fn(&Event) -> bool + Send + 'static,
) -> Result<Page, Status> {
    let history = history.clone();
    assert!(
        limit <= PAGE_EVENTS,
        "a journal page holds {PAGE_EVENTS} events at most"
    );
    status::from_history_read(
        tokio::task::spawn_blocking(move || {
            history.events_after(after, limit, PAGE_SCAN_MAX, until, keep)
        })
        .await,
    )
}
