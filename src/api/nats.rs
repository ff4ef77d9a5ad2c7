//! Market data onward to NATS JetStream (`[market_data.nats]`): committed trades on
//! `PREFIX.trades.MARKET` as `TradeBatch` messages, book changes on `PREFIX.book.MARKET`
//! as `BookUpdate` messages, each with its `Nats-Msg-Id` (`trades.MARKET.SEQ`,
//! `book.MARKET.SEQ`, SEQ the last sequence number it carries).
//!
//! Off the commit path: the publisher reads the trade feed's shared encodings and the
//! journal, never the sequencer or the store thread, and a slow or absent NATS slows
//! nothing but itself. No gap and no duplicate across restarts of either side: each
//! (re)connection reads from JetStream the last trade message of every market, publishes
//! the journal's trades after it, then follows the feed; a publisher that falls behind
//! the feed reads the journal again. JetStream's duplicate window drops a message id it
//! has already stored. Every publish waits for JetStream's acknowledgement before the
//! next, so what JetStream holds is always a prefix of each market's trades.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use prost::bytes::Bytes;
use prost::Message;
use tokio::sync::broadcast::error::RecvError;

use super::book_stream::STREAM_DEPTH_MAX;
use super::book_view::{diff, wire};
use super::context::Context;
use super::journal_pages::{self, PAGE_EVENTS};
use super::proto;
use super::trade_feed::Piece;
use super::trade_stream::{encode, is_fill};
use crate::config::NatsConfig;
use crate::engine::Level;
use crate::market_data::checksum;
use crate::types::MarketId;

/// The largest message published: well under NATS's default payload limit of 1 MiB.
const MESSAGE_BYTES_MAX: usize = 512 * 1024;

/// Pieces are cut at this size; messages gather pieces up to [`MESSAGE_BYTES_MAX`].
const PIECE_BYTES: usize = 64 * 1024;

/// The longest wait between two attempts to reach NATS.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The first wait after NATS is lost; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// How long one attempt to connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes until the server stops, reconnecting whenever NATS is lost.
pub async fn run(context: std::sync::Weak<Context>, config: NatsConfig) {
    let mut wait = RETRY_FIRST;
    loop {
        let Some(strong) = context.upgrade() else {
            return;
        };
        if *strong.stopping.borrow() {
            return;
        }
        let mut stopping = strong.stopping.subscribe();
        let outcome = tokio::select! {
            outcome = session(&strong, &config, &mut wait) => outcome,
            _ = stopping.wait_for(|stopping| *stopping) => return,
        };
        drop(strong);
        match outcome {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, url = %config.url, retry_in_ms = wait.as_millis() as u64, "NATS publishing interrupted");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// One connection's work: ends `Ok` when the exchange stops, `Err` when NATS is lost.
async fn session(
    context: &Context,
    config: &NatsConfig,
    wait: &mut Duration,
) -> Result<(), Failure> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(CONNECT_TIMEOUT)
        .connect(config.url.as_str())
        .await?;
    let jetstream = jetstream::new(client);
    let stream = jetstream
        .get_or_create_stream(stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let mut publisher = Publisher {
        context,
        jetstream,
        prefix: config.subject_prefix.clone(),
        published: Vec::new(),
        books: Vec::new(),
    };
    for index in 0..context.config.engine.markets.len() {
        let subject = publisher.subject("trades", MarketId(index as u16));
        let last = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => last_seq_of(&message.headers).ok_or_else(|| {
                format!("the last message on {subject} has no divmid Nats-Msg-Id")
            })?,
            Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => 0,
            Err(error) => return Err(error.into()),
        };
        publisher.published.push(last);
    }
    tracing::info!(url = %config.url, stream = %config.stream, resume = ?publisher.published, "publishing market data to NATS JetStream");
    *wait = RETRY_FIRST;
    let mut views = context.book_views.subscribe();
    loop {
        let mut live = context.trades.batches.subscribe();
        let mark = *context.trades.seq.borrow();
        publisher.replay(mark).await?;
        loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(batch) if batch.last_seq > mark => {
                        for (market, pieces) in &batch.markets {
                            publisher.trades(*market, pieces).await?;
                        }
                    }
                    Ok(_) => {}
                    // Behind the feed: the journal has what was missed.
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return Ok(()),
                },
                changed = views.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let view = views.borrow_and_update().clone();
                    if let Some(shared) = view {
                        publisher.books(&shared.view).await?;
                    }
                }
            }
        }
    }
}

/// The sequence number a `trades.MARKET.SEQ` or `book.MARKET.SEQ` message id ends with.
fn last_seq_of(headers: &async_nats::HeaderMap) -> Option<u64> {
    let id = headers.get(async_nats::header::NATS_MESSAGE_ID)?.as_str();
    id.rsplit_once('.')?.1.parse().ok()
}

struct Publisher<'a> {
    context: &'a Context,
    jetstream: jetstream::Context,
    prefix: String,
    /// Per market, the last trade's sequence number JetStream holds.
    published: Vec<u64>,
    /// Per market, the levels last published (none yet: a snapshot goes first).
    books: Vec<Option<(Vec<Level>, Vec<Level>)>>,
}

impl Publisher<'_> {
    fn subject(&self, kind: &str, market: MarketId) -> String {
        let name = &self.context.market_at(market).spec.name;
        format!("{}.{kind}.{name}", self.prefix)
    }

    /// Publishes one message with its id and waits for JetStream to store it.
    async fn publish(&self, subject: String, id: String, payload: Bytes) -> Result<(), Failure> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        self.jetstream
            .publish_with_headers(subject, headers, payload)
            .await?
            .await?;
        Ok(())
    }

    /// Publishes a market's pieces not yet in JetStream, gathered into messages.
    async fn trades(&mut self, market: MarketId, pieces: &[Piece]) -> Result<(), Failure> {
        let index = usize::from(market.0);
        let fresh: Vec<&Piece> = pieces
            .iter()
            .filter(|piece| piece.last_seq > self.published[index])
            .collect();
        let mut start = 0;
        while start < fresh.len() {
            let mut end = start + 1;
            let mut size = fresh[start].bytes.len();
            while end < fresh.len() && size + fresh[end].bytes.len() <= MESSAGE_BYTES_MAX {
                size += fresh[end].bytes.len();
                end += 1;
            }
            let mut payload = Vec::with_capacity(size);
            for piece in &fresh[start..end] {
                payload.extend_from_slice(&piece.bytes);
            }
            let last = fresh[end - 1].last_seq;
            let name = &self.context.market_at(market).spec.name;
            let id = format!("trades.{name}.{last}");
            self.publish(self.subject("trades", market), id, payload.into())
                .await?;
            self.published[index] = last;
            start = end;
        }
        Ok(())
    }

    /// Publishes, out of the journal, every market's trades JetStream lacks up to `mark`.
    async fn replay(&mut self, mark: u64) -> Result<(), Failure> {
        let mut after = self.published.iter().copied().min().unwrap_or(mark);
        let history = self.context.history.clone();
        let first_kept = tokio::task::spawn_blocking(move || history.first_seq()).await??;
        if let Some(first_kept) = first_kept.filter(|first| after < mark && *first > after + 1) {
            // Retention pruned trades JetStream never got: nothing to do but say so.
            tracing::error!(
                after,
                first_kept,
                "the journal no longer holds trades JetStream lacks"
            );
        }
        while after < mark {
            let page =
                journal_pages::page(&self.context.history, (after, mark), PAGE_EVENTS, is_fill)
                    .await?;
            // Each market resumes after its own last message: a trade JetStream holds is
            // never encoded again, so no message straddles what it holds.
            let unpublished: Vec<_> = page
                .events
                .into_iter()
                .filter(|event| match &event.kind {
                    crate::event::EventKind::Fill(fill) => {
                        event.seq > self.published[usize::from(fill.market.0)]
                    }
                    _ => false,
                })
                .collect();
            for (market, pieces) in encode(self.context, &unpublished, PIECE_BYTES) {
                self.trades(market, &pieces).await?;
            }
            after = page.next.unwrap_or(mark);
        }
        Ok(())
    }

    /// Publishes each market's book changes since the last view (a snapshot first).
    async fn books(&mut self, view: &crate::market_data::BookView) -> Result<(), Failure> {
        self.books.resize(view.markets.len(), None);
        for (index, (bids, asks)) in view.markets.iter().enumerate() {
            let market = MarketId(index as u16);
            let market_view = self.context.market_at(market);
            let bids: Vec<Level> = bids.iter().take(STREAM_DEPTH_MAX).copied().collect();
            let asks: Vec<Level> = asks.iter().take(STREAM_DEPTH_MAX).copied().collect();
            let update = match &self.books[index] {
                None => proto::book_update::Update::Snapshot(proto::BookSnapshot {
                    bids: wire(&market_view, &bids),
                    asks: wire(&market_view, &asks),
                    book_seq: view.seq,
                }),
                Some((old_bids, old_asks)) => {
                    let (changed_bids, changed_asks) =
                        (diff(old_bids, &bids), diff(old_asks, &asks));
                    if changed_bids.is_empty() && changed_asks.is_empty() {
                        continue;
                    }
                    proto::book_update::Update::Changes(proto::LevelChanges {
                        bids: wire(&market_view, &changed_bids),
                        asks: wire(&market_view, &changed_asks),
                        book_seq: view.seq,
                    })
                }
            };
            let sum = checksum(
                &asks,
                &bids,
                |price| market_view.price(price),
                |quantity| market_view.quantity(quantity),
            );
            let message = proto::BookUpdate::new(view.seq, update, sum);
            let id = format!("book.{}.{}", market_view.spec.name, view.seq);
            self.publish(
                self.subject("book", market),
                id,
                message.encode_to_vec().into(),
            )
            .await?;
            self.books[index] = Some((bids, asks));
        }
        Ok(())
    }
}

/// Shares the context for the publisher's task.
pub fn start(context: &Arc<Context>) -> Option<tokio::task::JoinHandle<()>> {
    let config = context.config.market_data.nats.clone()?;
    Some(tokio::spawn(run(Arc::downgrade(context), config)))
}
