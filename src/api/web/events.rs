//! `GET /api/v1/markets/{market}/stream?depth=N`: Server-Sent Events of one market's book
//! and trades. A `book` event with the snapshot first, then `book` events with the level
//! changes and `trade` events; each event's `id` is its sequence number, and a `book`
//! event carries the top-of-book checksum (as `StreamOrderBook`'s).
//!
//! No gap and no duplicate across a reconnection: ids never go down, and an event is sent
//! only once every trade up to its id has been, so the browser's `Last-Event-ID` (or a
//! first `from_seq`) names exactly the trades a reconnection must start after. Those are
//! read from the journal up to the new snapshot, which comes after them. To keep that
//! order, a book view is held until the trade feed has sent everything up to it, and one
//! older than a trade already sent is passed over (a newer one always follows).
//!
//! Bounded like the gRPC streams: counted among the anonymous streams, and a client that
//! stops reading fills its buffer and is ended, to come back with `Last-Event-ID`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::json::{Query, Refusal};
use super::Web;
use crate::api::book_stream::STREAM_DEPTH_MAX;
use crate::api::book_view::{diff, wire, SharedView, Sides};
use crate::api::context::{Context, StreamKind};
use crate::api::journal_pages::PAGE_EVENTS;
use crate::api::proto;
use crate::api::trade_batch::TradeBatch;
use crate::api::trade_feed::EncodedTrades;
use crate::api::trade_stream::{check_resumable, journal_trades, wire_trades};
use crate::types::MarketId;

/// Levels a side when the request names no `depth`.
const DEPTH_DEFAULT: usize = 10;
/// How soon a browser reconnects after the stream ends.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Opens the stream, after `Last-Event-ID` (or `from_seq`) when given.
pub async fn stream(
    State(web): State<Web>,
    Path(market): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Refusal> {
    let query = Query::parse(query);
    let depth = query
        .number("depth", 1, STREAM_DEPTH_MAX)?
        .unwrap_or(DEPTH_DEFAULT);
    // A browser's reconnection says where it stopped; it wins over the URL's from_seq.
    let (from_seq, named) = match headers.get("last-event-id") {
        Some(value) => (
            Some(
                value
                    .to_str()
                    .ok()
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        Refusal::bad_request("Last-Event-ID: must be a sequence number")
                    })?,
            ),
            "Last-Event-ID",
        ),
        None => (query.number("from_seq", 0, u64::MAX)?, "from_seq"),
    };
    let context = web.context()?;
    let market = context.market("market", &market)?.id;
    if let Some(from_seq) = from_seq {
        check_resumable(&context, named, from_seq).await?;
    }
    let permit = context.stream_permit(StreamKind::Anonymous)?;
    let (sender, receiver) = mpsc::channel(context.config.server.stream_buffer_messages.max(2));
    let heartbeat = Duration::from_millis(context.config.server.book_heartbeat_ms);
    tokio::spawn(async move {
        let _permit = permit;
        let mut subscriber = Subscriber {
            context,
            market,
            depth,
            sender,
            last_id: 0,
            through: 0,
            levels: (Vec::new(), Vec::new()),
        };
        // Ends when the client goes, falls behind, or the server stops.
        let _ = subscriber.run(from_seq).await;
    });
    let events = ReceiverStream::new(receiver).map(Ok::<_, std::convert::Infallible>);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat))
        .into_response())
}

/// Why a subscriber's task ends: the client went or fell behind, or the server stops.
struct Ended;

/// One stream's task.
struct Subscriber {
    context: Arc<Context>,
    market: MarketId,
    depth: usize,
    sender: mpsc::Sender<Event>,
    /// The id of the last event sent.
    last_id: u64,
    /// Every trade of the market up to this sequence number has been sent, or came
    /// before the stream's start.
    through: u64,
    /// The levels last sent.
    levels: Sides,
}

impl Subscriber {
    async fn run(&mut self, from_seq: Option<u64>) -> Result<(), Ended> {
        let feed = &self.context.trades;
        // Subscribed before the mark is read: every batch after the mark comes through.
        let mut batches = feed.batches.subscribe();
        let mark = *feed.seq.borrow();
        let mut sent = feed.sent.subscribe();
        let mut views = self.context.book_views.subscribe();
        let mut stopping = self.context.stopping.subscribe();
        // The snapshot must not be older than where the client resumes.
        let floor = from_seq.unwrap_or(0);
        let first = tokio::select! {
            view = views.wait_for(|view| view.as_ref().is_some_and(|shared| shared.view.seq >= floor)) => {
                view.map_err(|_| Ended)?.clone().ok_or(Ended)?
            }
            _ = stopping.wait_for(|stopping| *stopping) => return Err(Ended),
        };
        let start = first.view.seq;
        if let Some(from_seq) = from_seq {
            self.last_id = from_seq;
            self.replay(from_seq, start).await?;
        }
        self.book(&first, true).await?;
        // Committed trades the snapshot reflects but the feed had published before the
        // subscription.
        if mark > start {
            self.replay(start, mark).await?;
        }
        self.through = start.max(mark);
        let mut pending: Option<Arc<SharedView>> = None;
        loop {
            if let Some(view) = pending.clone() {
                let seq = view.view.seq;
                if seq > self.through {
                    // Everything the feed has sent so far is in the receiver now.
                    let reached = *sent.borrow_and_update();
                    self.drain(&mut batches)?;
                    self.through = self.through.max(reached);
                }
                if seq < self.last_id {
                    pending = None;
                } else if seq <= self.through {
                    self.book(&view, false).await?;
                    pending = None;
                }
            }
            let waiting = pending.is_some();
            tokio::select! {
                received = batches.recv() => match received {
                    Ok(batch) => self.take(&batch)?,
                    // Behind the feed: the client resumes from the journal.
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return Err(Ended),
                },
                changed = views.changed() => {
                    changed.map_err(|_| Ended)?;
                    pending = views.borrow_and_update().clone();
                }
                changed = sent.changed(), if waiting => changed.map_err(|_| Ended)?,
                _ = stopping.wait_for(|stopping| *stopping) => return Err(Ended),
                _ = self.sender.closed() => return Err(Ended),
            }
        }
    }

    /// Sends the market's trades after `after` up to `until`, out of the journal, waiting
    /// for the client to take them.
    async fn replay(&mut self, mut after: u64, until: u64) -> Result<(), Ended> {
        while after < until {
            let page = journal_trades(&self.context, self.market, after, until, PAGE_EVENTS)
                .await
                .map_err(|_| Ended)?;
            let market = self.context.market_at(self.market);
            for trade in wire_trades(market, &page.events) {
                let event = self.trade_event(&trade)?;
                self.sender.send(event).await.map_err(|_| Ended)?;
            }
            after = page.next.unwrap_or(until);
        }
        Ok(())
    }

    /// Takes every batch already in the receiver.
    fn drain(
        &mut self,
        batches: &mut broadcast::Receiver<Arc<EncodedTrades>>,
    ) -> Result<(), Ended> {
        loop {
            match batches.try_recv() {
                Ok(batch) => self.take(&batch)?,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(_) => return Err(Ended),
            }
        }
    }

    /// Sends the market's trades of a batch from the feed that were not sent yet.
    fn take(&mut self, batch: &EncodedTrades) -> Result<(), Ended> {
        if batch.last_seq <= self.through {
            return Ok(());
        }
        let pieces = batch
            .markets
            .iter()
            .find(|(market, _)| *market == self.market)
            .map(|(_, pieces)| pieces.as_slice())
            .unwrap_or_default();
        let through = self.through;
        for piece in pieces.iter().filter(|piece| piece.last_seq > through) {
            let decoded =
                <TradeBatch as prost::Message>::decode(piece.bytes.clone()).map_err(|_| Ended)?;
            for trade in decoded.trades.iter().filter(|trade| trade.seq > through) {
                let event = self.trade_event(trade)?;
                self.push(event)?;
            }
        }
        self.through = batch.last_seq;
        Ok(())
    }

    /// A `trade` event; its id moves the stream's last id.
    fn trade_event(&mut self, trade: &proto::Trade) -> Result<Event, Ended> {
        let data = serde_json::to_string(trade).map_err(|_| Ended)?;
        self.last_id = self.last_id.max(trade.seq);
        Ok(Event::default()
            .event("trade")
            .id(trade.seq.to_string())
            .data(data))
    }

    /// Sends a `book` event for `shared`: the snapshot, or the changes from the levels
    /// last sent (nothing when none changed).
    async fn book(&mut self, shared: &SharedView, snapshot: bool) -> Result<(), Ended> {
        let market = self.context.market_at(self.market);
        let now = shared.sides(self.market, self.depth);
        let seq = shared.view.seq;
        let checksum = shared.checksum(market);
        let data = if snapshot {
            let snapshot = proto::BookSnapshot {
                bids: wire(&market, &now.0),
                asks: wire(&market, &now.1),
                book_seq: seq,
            };
            serde_json::json!({ "snapshot": snapshot, "checksum": checksum })
        } else {
            let bids = diff(&self.levels.0, &now.0);
            let asks = diff(&self.levels.1, &now.1);
            if bids.is_empty() && asks.is_empty() {
                return Ok(());
            }
            let changes = proto::LevelChanges {
                bids: wire(&market, &bids),
                asks: wire(&market, &asks),
                book_seq: seq,
            };
            serde_json::json!({ "changes": changes, "checksum": checksum })
        };
        self.levels = now;
        self.last_id = self.last_id.max(seq);
        let event = Event::default()
            .event("book")
            .id(seq.to_string())
            .data(data.to_string());
        if snapshot {
            // The first event tells the browser how soon to come back after an end.
            let event = event.retry(RECONNECT_AFTER);
            return self.sender.send(event).await.map_err(|_| Ended);
        }
        self.push(event)
    }

    /// Queues a live event, or ends the stream when the client has not taken what is
    /// queued: it reconnects from the last event it has.
    fn push(&self, event: Event) -> Result<(), Ended> {
        self.sender.try_send(event).map_err(|_| Ended)
    }
}
