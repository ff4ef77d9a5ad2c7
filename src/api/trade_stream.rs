//! `StreamTrades`: committed trades encoded once and shared by every subscriber.
//!
//! The feed ([`run_feed`]) follows the pipeline's committed batches; for each it converts
//! the fills to wire trades, groups them by market, encodes each market's as `TradeBatch`
//! bytes once (in pieces no larger than half a message), and publishes them to every
//! subscriber through a broadcast of [`EncodedTrades`]. A subscriber ([`start`]) reads
//! what it asked for out of the journal first, then forwards the live pieces of its
//! market: a copy of shared bytes, not an encoding. When it is behind, what has queued for
//! it goes out merged into as few messages as the message limit allows; when it falls
//! further behind than the broadcast keeps, it is ended `ABORTED` with the sequence number
//! to resume from.
//!
//! No gap and no duplicate: the feed records how far it has published before it
//! publishes a batch, and a subscriber subscribes before it reads that mark, so every
//! batch after the mark reaches it and the journal serves everything up to the mark.

use std::sync::{Arc, Weak};

use prost::bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tonic::codegen::BoxStream;
use tonic::Status;

use super::context::{Context, StreamKind};
use super::journal_pages::{self, PAGE_EVENTS};
use super::market_view::{side_to_wire, MarketView};
use super::proto::{self, TradeBatch};
use super::status;
use super::trade_feed::{EncodedTrades, Piece, TradeFeed};
use crate::event::{Event, EventKind, Fill};
use crate::types::MarketId;

/// A market's trade as the wire writes it.
pub fn trade_of(market: MarketView<'_>, event: &Event, fill: &Fill) -> proto::Trade {
    proto::Trade {
        trade_id: fill.trade_id.0.to_string(),
        market: market.spec.name.to_string(),
        price: market.price(fill.price),
        quantity: market.quantity(fill.quantity),
        taker_side: side_to_wire(fill.taker_side) as i32,
        seq: event.seq,
        time_ms: event.timestamp_ms,
    }
}

/// The largest piece of one market's encoded trades: half a message, so that a piece
/// always fits one and two make one that still does.
pub fn piece_bytes(message_bytes_max: usize) -> usize {
    message_bytes_max / 2
}

/// Encodes `trades` into pieces of at most `piece_max` bytes (a single trade larger than
/// that, which the market's limits never allow, makes a piece of its own).
fn encode_pieces(trades: &[proto::Trade], piece_max: usize) -> Vec<Piece> {
    let piece = |trades: &[proto::Trade]| Piece {
        first_seq: trades.first().map_or(0, |trade| trade.seq),
        last_seq: trades.last().map_or(0, |trade| trade.seq),
        bytes: TradeBatch::encode_trades(trades),
    };
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (index, trade) in trades.iter().enumerate() {
        let length = prost::encoding::message::encoded_len(1, trade);
        if size + length > piece_max && index > start {
            pieces.push(piece(&trades[start..index]));
            (start, size) = (index, 0);
        }
        size += length;
    }
    if start < trades.len() {
        pieces.push(piece(&trades[start..]));
    }
    pieces
}

/// The trades of `events`, grouped by market and encoded.
pub fn encode(
    context: &Context,
    events: &[Event],
    piece_max: usize,
) -> Vec<(MarketId, Vec<Piece>)> {
    let mut by_market: Vec<(MarketId, Vec<proto::Trade>)> = Vec::new();
    for event in events {
        let EventKind::Fill(fill) = &event.kind else {
            continue;
        };
        let trade = trade_of(context.market_at(fill.market), event, fill);
        match by_market
            .iter_mut()
            .find(|(market, _)| *market == fill.market)
        {
            Some((_, trades)) => trades.push(trade),
            None => by_market.push((fill.market, vec![trade])),
        }
    }
    by_market
        .into_iter()
        .map(|(market, trades)| (market, encode_pieces(&trades, piece_max)))
        .collect()
}

/// The trades of `piece` after `seq`, as a piece of their own.
fn after_seq(piece: &Piece, seq: u64) -> Piece {
    let mut batch = <TradeBatch as prost::Message>::decode(piece.bytes.clone()).unwrap_or_default();
    batch.trades.retain(|trade| trade.seq > seq);
    Piece {
        first_seq: batch
            .trades
            .first()
            .map_or(piece.last_seq, |trade| trade.seq),
        last_seq: piece.last_seq,
        bytes: TradeBatch::encode_trades(&batch.trades),
    }
}

/// Publishes a batch: the mark first, then the batch, then the mark of what is sent.
/// The batch is encoded only when someone is subscribed to it: every subscriber (a trade
/// stream, the web gateway, the NATS publisher) subscribes before it reads the mark, so
/// one that subscribes after the count was read finds the mark at this batch or beyond
/// and reads these trades out of the journal.
fn publish(feed: &TradeFeed, last_seq: u64, markets: impl FnOnce() -> Vec<(MarketId, Vec<Piece>)>) {
    feed.seq.send_replace(last_seq);
    if feed.batches.receiver_count() > 0 {
        let markets = markets();
        if !markets.is_empty() {
            // A subscriber gone since the count is no error.
            let _ = feed
                .batches
                .send(Arc::new(EncodedTrades { last_seq, markets }));
        }
    }
    feed.sent.send_replace(last_seq);
}

/// Messages waiting between a subscriber's task and its client, at most (fewer when
/// `stream_buffer_messages` says so). What queues beyond them is merged into messages of up
/// to `message_bytes_max`, so a few slots hold plenty; each slot of a client that stops
/// reading costs memory (measured: 256 slots made 1,000 such subscribers cost the server
/// 83 MiB; 16 made them cost 40).
const HANDOFF_MESSAGES_MAX: usize = 16;

/// Runs the feed until the pipeline stops: encodes each committed batch once. Holds the
/// exchange only while it handles a batch, so that a stopping server is not kept.
pub async fn run_feed(
    context: Weak<Context>,
    mut live: broadcast::Receiver<crate::pipeline::CommittedEvents>,
) {
    // What was committed before `live` was subscribed to, if anything.
    if let Some(context) = context.upgrade() {
        let piece_max = piece_bytes(context.config.server.message_bytes_max);
        if let Err(error) = catch_up(&context, piece_max).await {
            tracing::error!(%error, "the trade feed cannot read the journal; trade streams stop");
            return;
        }
    }
    loop {
        let received = live.recv().await;
        let Some(context) = context.upgrade() else {
            return;
        };
        let piece_max = piece_bytes(context.config.server.message_bytes_max);
        let feed = &context.trades;
        match received {
            Ok(events) => {
                // Events come in sequence order: those after the mark are a suffix.
                let published = *feed.seq.borrow();
                let fresh = &events[events.partition_point(|event| event.seq <= published)..];
                if let Some(last) = fresh.last() {
                    publish(feed, last.seq, || encode(&context, fresh, piece_max));
                }
            }
            // Behind the pipeline: what was missed is read from the journal.
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "the trade feed fell behind the committed batches; catching up from the journal"
                );
                live = context.pipeline.subscribe();
                if let Err(error) = catch_up(&context, piece_max).await {
                    tracing::error!(%error, "the trade feed cannot read the journal; trade streams stop");
                    return;
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Publishes the trades committed since the feed's mark, out of the journal.
async fn catch_up(context: &Context, piece_max: usize) -> Result<(), String> {
    let until = context.pipeline.committed_seq();
    loop {
        let after = *context.trades.seq.borrow();
        if after >= until {
            return Ok(());
        }
        let page = journal_pages::page(&context.history, (after, until), PAGE_EVENTS, is_fill)
            .await
            .map_err(|status| status.message().to_string())?;
        let reached = page.next.unwrap_or(until);
        publish(&context.trades, reached, || {
            encode(context, &page.events, piece_max)
        });
    }
}

pub fn is_fill(event: &Event) -> bool {
    matches!(event.kind, EventKind::Fill(_))
}

/// Starts a subscriber's stream of `market`'s trades after `from_seq` (live only
/// without it).
pub fn start(
    context: Arc<Context>,
    market: MarketId,
    from_seq: Option<u64>,
) -> Result<BoxStream<TradeBatch>, Status> {
    if let Some(from_seq) = from_seq {
        context.check_from_seq("from_seq", from_seq)?;
    }
    let permit = context.stream_permit(StreamKind::Anonymous)?;
    let buffered = context
        .config
        .server
        .stream_buffer_messages
        .clamp(1, HANDOFF_MESSAGES_MAX);
    let (sender, receiver) = mpsc::channel(buffered);
    tokio::spawn(async move {
        let _permit = permit;
        let mut subscriber = Subscriber {
            market,
            sender,
            message_max: context.config.server.message_bytes_max,
            last_sent: 0,
        };
        if let Err(status) = subscriber.run(&context, from_seq).await {
            let _ = subscriber.sender.send(Err(Box::new(status))).await;
        }
    });
    let messages = tokio_stream::wrappers::ReceiverStream::new(receiver);
    Ok(Box::pin(tokio_stream::StreamExt::map(
        messages,
        |message| message.map_err(|status| *status),
    )))
}

/// One subscriber's task.
struct Subscriber {
    market: MarketId,
    /// The subscriber's messages on their way to its client. The status is boxed: a
    /// subscriber whose client stops reading fills every slot of this queue, and a slot is
    /// as large as its largest variant (a `Status` is about four times a `TradeBatch`).
    sender: mpsc::Sender<Result<TradeBatch, Box<Status>>>,
    message_max: usize,
    /// The last sequence number the subscriber has been given everything up to: where it
    /// resumes if it is ended.
    last_sent: u64,
}

/// What a subscriber has taken from the feed and not yet sent: pieces of its market's
/// encoded trades, each with the sequence number reached once it is sent (a piece reaches
/// its last trade's, a batch's last piece the batch's last sequence number; a batch
/// without trades of the market is a marker with no piece).
#[derive(Default)]
struct Queued {
    entries: std::collections::VecDeque<(u64, Option<Bytes>)>,
    bytes: usize,
    /// The last batch's sequence number taken from the feed.
    seq: u64,
}

impl Queued {
    /// The next message: pieces from the front, as many as fit `message_max` bytes (at
    /// least one); `last_sent` moves to the sequence number they reach.
    fn take_message(&mut self, message_max: usize, last_sent: &mut u64) -> TradeBatch {
        let mut pieces = Vec::new();
        let mut size = 0;
        while let Some((seq, piece)) = self.entries.front() {
            let length = piece.as_ref().map_or(0, Bytes::len);
            if size + length > message_max && !pieces.is_empty() {
                break;
            }
            size += length;
            *last_sent = *seq;
            if let Some(piece) = piece {
                pieces.push(piece.clone());
            }
            self.entries.pop_front();
        }
        self.bytes -= size;
        TradeBatch::from_encoded(pieces)
    }
}

impl Subscriber {
    async fn run(&mut self, context: &Arc<Context>, from_seq: Option<u64>) -> Result<(), Status> {
        let mut live = context.trades.batches.subscribe();
        let start = *context.trades.seq.borrow();
        self.last_sent = from_seq.unwrap_or(start);
        if !self.replay(context, start).await? {
            return Ok(());
        }
        let mut stopping = context.stopping.subscribe();
        let mut queued = Queued {
            seq: self.last_sent,
            ..Queued::default()
        };
        loop {
            self.pass_markers(&mut queued);
            if queued.entries.is_empty() {
                let batch = tokio::select! {
                    received = live.recv() => self.received(received)?,
                    _ = stopping.wait_for(|stopping| *stopping) => return Err(self.stopped()),
                };
                self.queue(&batch, &mut queued);
                continue;
            }
            // Something to send: sent as soon as the client has room, and while it has
            // none, more batches are taken and merged, up to one message's worth.
            let room = queued.bytes < self.message_max;
            tokio::select! {
                biased;
                permit = self.sender.reserve() => {
                    let Ok(permit) = permit else {
                        return Ok(());
                    };
                    let message = queued.take_message(self.message_max, &mut self.last_sent);
                    permit.send(Ok(message));
                }
                received = live.recv(), if room => {
                    let batch = self.received(received)?;
                    self.queue(&batch, &mut queued);
                }
                _ = stopping.wait_for(|stopping| *stopping) => return Err(self.stopped()),
            }
        }
    }

    /// A batch from the feed, or how the stream ends: `ABORTED` when the subscriber has
    /// fallen further behind than the feed keeps.
    fn received(
        &self,
        received: Result<Arc<EncodedTrades>, RecvError>,
    ) -> Result<Arc<EncodedTrades>, Status> {
        received.map_err(|error| match error {
            RecvError::Lagged(_) => status::fell_behind(format!(
                "the stream fell behind; resubscribe with from_seq = {}",
                self.last_sent
            )),
            RecvError::Closed => status::unavailable(format!(
                "the exchange is stopping; resubscribe with from_seq = {}",
                self.last_sent
            )),
        })
    }

    fn stopped(&self) -> Status {
        status::unavailable(format!(
            "the server is shutting down; resubscribe with from_seq = {}",
            self.last_sent
        ))
    }

    /// Takes the subscriber's market's pieces of a batch from the feed: those after what
    /// it has taken (a `from_seq` inside a batch, met before the feed's mark passed it,
    /// cuts a piece, decoded and encoded again for this subscriber alone).
    fn queue(&self, batch: &EncodedTrades, queued: &mut Queued) {
        if batch.last_seq <= queued.seq {
            return;
        }
        let mine = batch
            .markets
            .iter()
            .find(|(market, _)| *market == self.market);
        let pieces: Vec<Piece> = mine
            .map(|(_, pieces)| pieces.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|piece| piece.last_seq > queued.seq)
            .map(|piece| match piece.first_seq > queued.seq {
                true => piece.clone(),
                false => after_seq(piece, queued.seq),
            })
            .collect();
        match pieces.split_last() {
            None => queued.entries.push_back((batch.last_seq, None)),
            Some((last, before)) => {
                // Sent, a piece has given everything up to its last trade.
                for piece in before {
                    queued.bytes += piece.bytes.len();
                    let entry = (piece.last_seq, Some(piece.bytes.clone()));
                    queued.entries.push_back(entry);
                }
                queued.bytes += last.bytes.len();
                let entry = (batch.last_seq, Some(last.bytes.clone()));
                queued.entries.push_back(entry);
            }
        }
        queued.seq = batch.last_seq;
    }

    /// Moves past the batches at the front that had no trades of the market.
    fn pass_markers(&mut self, queued: &mut Queued) {
        while let Some((seq, None)) = queued.entries.front() {
            self.last_sent = *seq;
            queued.entries.pop_front();
        }
    }

    async fn send(&self, batch: TradeBatch) -> bool {
        self.sender.send(Ok(batch)).await.is_ok()
    }

    /// Sends the market's trades from the journal, after `last_sent` up to `until`.
    /// False once the client has gone.
    async fn replay(&mut self, context: &Context, until: u64) -> Result<bool, Status> {
        if self.last_sent >= until {
            return Ok(true);
        }
        check_retained(context, self.last_sent).await?;
        let piece_max = piece_bytes(self.message_max);
        while self.last_sent < until {
            let page =
                journal_trades(context, self.market, self.last_sent, until, PAGE_EVENTS).await?;
            for (_, pieces) in encode(context, &page.events, piece_max) {
                for piece in pieces {
                    if !self.send(TradeBatch::from_encoded(vec![piece.bytes])).await {
                        return Ok(false);
                    }
                }
            }
            // Where the page stopped looking; the end of the replay when nothing is left.
            self.last_sent = page.next.unwrap_or(until);
        }
        Ok(true)
    }
}

/// Checks that a stream or a page can start after `from_seq` (`field` names where the
/// client said it): `INVALID_ARGUMENT` beyond the last committed sequence number, which is
/// returned otherwise, and `OUT_OF_RANGE` once the journal no longer holds what follows.
pub async fn check_resumable(context: &Context, field: &str, from_seq: u64) -> Result<u64, Status> {
    let committed = context.check_from_seq(field, from_seq)?;
    check_retained(context, from_seq).await?;
    Ok(committed)
}

/// `market`'s trades among `events`, as the wire writes them.
pub fn wire_trades(market: MarketView<'_>, events: &[Event]) -> Vec<proto::Trade> {
    events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::Fill(fill) if fill.market == market.id => {
                Some(trade_of(market, event, fill))
            }
            _ => None,
        })
        .collect()
}

/// `OUT_OF_RANGE` (naming `from_seq`) unless the journal still holds every event after
/// `after`.
pub async fn check_retained(context: &Context, after: u64) -> Result<(), Status> {
    let history = context.history.clone();
    let first =
        status::from_history_read(tokio::task::spawn_blocking(move || history.first_seq()).await)?;
    match first.filter(|first| *first > after + 1) {
        Some(first) => Err(status::out_of_range(
            "from_seq",
            format!(
                "the journal keeps events from sequence number {first} on; resubscribe \
                 with from_seq = {} or later",
                first - 1
            ),
        )),
        None => Ok(()),
    }
}

/// `market`'s trades (fill events) after `after` up to `until`, out of the journal, off
/// the async threads: at most `limit`, looking at no more than 64 pages' worth of events;
/// the page's `next` is where the read stopped (`None`: it reached `until`).
pub async fn journal_trades(
    context: &Context,
    market: MarketId,
    after: u64,
    until: u64,
    limit: usize,
) -> Result<crate::store::Page, Status> {
    let keep =
        move |event: &Event| matches!(&event.kind, EventKind::Fill(fill) if fill.market == market);
    journal_pages::page(&context.history, (after, until), limit, keep).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(seq: u64) -> proto::Trade {
        proto::Trade {
            trade_id: seq.to_string(),
            market: "DVM-USD".into(),
            seq,
            ..Default::default()
        }
    }

    #[test]
    fn pieces_stay_under_their_size_and_a_resume_inside_one_cuts_it() {
        // Three-digit ids, two-byte varints: every trade encodes to the same length.
        let trades: Vec<proto::Trade> = (201..=240).map(trade).collect();
        let one = prost::encoding::message::encoded_len(1, &trades[0]);
        let pieces = encode_pieces(&trades, one * 10);
        assert_eq!(pieces.len(), 4);
        assert!(pieces.iter().all(|piece| piece.bytes.len() <= one * 10));
        assert_eq!((pieces[1].first_seq, pieces[1].last_seq), (211, 220));
        let cut = after_seq(&pieces[1], 216);
        let decoded = <TradeBatch as prost::Message>::decode(cut.bytes).expect("decodes");
        let seqs: Vec<u64> = decoded.trades.iter().map(|trade| trade.seq).collect();
        assert_eq!(seqs, [217, 218, 219, 220]);
        assert_eq!((cut.first_seq, cut.last_seq), (217, 220));
    }
}
