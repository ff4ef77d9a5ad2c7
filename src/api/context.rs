//! What every handler shares: the pipeline, the configuration, the tokens, history, the
//! funding sources, and the conversions between wire values and domain values. Built once
//! in `main` (or by a test) and passed to the services; there are no globals.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tonic::Status;

use super::auth::Tokens;
use super::decimal::{format_units, parse_units, AMOUNT_PLACES};
use super::funding::FundingSources;
use super::market_view::MarketView;
use super::proto;
use super::status::{self, from_failure, from_reject};
use crate::command::Command;
use crate::config::Config;
use crate::error::Reject;
use crate::market_data::TradeStats;
use crate::pipeline::{Answer, Committed, Pipeline, Query};
use crate::store::History;
use crate::types::{Amount, Asset, Balance, IssuePrice, MarketId};

/// Everything the handlers share.
pub struct Context {
    /// The running pipeline.
    pub pipeline: Pipeline,
    /// The configuration it runs with.
    pub config: Config,
    /// Bearer tokens.
    pub tokens: Tokens,
    /// Failed authentications per peer address.
    pub auth_failures: super::auth::AuthFailures,
    /// History in the store.
    pub history: History,
    /// What backups are read from.
    pub backups: crate::store::BackupSource,
    /// Deposit processors.
    pub funding: FundingSources,
    /// Candles and ticker figures, kept current by the market-data feed.
    pub market_data: Arc<MarketDataState>,
    /// Becomes true when the server stops taking requests, so that long-lived streams
    /// end and the graceful shutdown does not wait for them.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// One permit per open authenticated stream (a trader's order updates):
    /// `stream_subscribers_max` of them.
    pub stream_slots: Arc<tokio::sync::Semaphore>,
    /// One permit per open anonymous market-data stream (trades, book):
    /// `anonymous_streams_max` of them, counted apart so that strangers cannot take the
    /// places of account holders.
    pub anonymous_stream_slots: Arc<tokio::sync::Semaphore>,
    /// Committed trades, encoded once for every `StreamTrades` subscriber.
    pub trades: super::trade_feed::TradeFeed,
    /// The newest top-of-book view of every market, for book streams.
    pub book_views: super::book_view::Views,
}

/// Who may open a stream, for counting it against its own limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// Market data, with no token.
    Anonymous,
    /// An account holder's own stream.
    Authenticated,
}

/// Trade statistics and whether they have caught up with the journal since the start.
pub struct MarketDataState {
    /// The statistics.
    pub stats: std::sync::RwLock<TradeStats>,
    /// Metering usage per holder, service and hour, and the top-ups.
    pub usage: std::sync::RwLock<crate::usage::Usage>,
    /// Set once the feed has replayed the journal up to the committed state.
    pub ready: std::sync::atomic::AtomicBool,
}

impl Context {
    /// A place for one more stream of its kind, or `RESOURCE_EXHAUSTED` naming the limit
    /// when they are all taken.
    pub fn stream_permit(
        &self,
        kind: StreamKind,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        let (slots, name, limit) = match kind {
            StreamKind::Authenticated => (
                &self.stream_slots,
                "stream_subscribers_max",
                self.config.server.stream_subscribers_max,
            ),
            StreamKind::Anonymous => (
                &self.anonymous_stream_slots,
                "anonymous_streams_max",
                self.config.server.anonymous_streams_max,
            ),
        };
        Arc::clone(slots).try_acquire_owned().map_err(|_| {
            status::limit_reached(name, format!("the limit of {limit} streams is reached"))
        })
    }

    /// Submits a command and waits for it to be committed.
    pub async fn command(&self, command: Command) -> Result<Committed, Status> {
        let receiver = self
            .pipeline
            .submit(now_ms(), command)
            .map_err(|failure| from_failure(&failure))?;
        let outcome = receiver.await.map_err(|_| status::exchange_stopped())?;
        outcome.map_err(|failure| from_failure(&failure))
    }

    /// Asks a question of committed state.
    pub async fn query(&self, query: Query) -> Result<Answer, Status> {
        let receiver = self
            .pipeline
            .query(query)
            .map_err(|failure| from_failure(&failure))?;
        let answer = receiver.await.map_err(|_| status::exchange_stopped())?;
        answer.map_err(|failure| from_failure(&failure))
    }

    /// Waits until the history indexes reach every event committed when it was called, so
    /// that what they answer is current. Refuses with `UNAVAILABLE` if they fall too far
    /// behind.
    pub async fn wait_indexed(&self) -> Result<(), Status> {
        let target = self.pipeline.committed_seq();
        let deadline = tokio::time::Instant::now() + INDEX_WAIT_MAX;
        loop {
            let indexed = self
                .history
                .indexed_seq()
                .map_err(|error| status::internal(format!("history: {error}")))?;
            if indexed >= target {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(status::unavailable("history is catching up; retry shortly"));
            }
            tokio::time::sleep(INDEX_POLL).await;
        }
    }

    /// The market of that name.
    pub fn market(&self, field: &'static str, name: &str) -> Result<MarketView<'_>, Status> {
        if name.is_empty() {
            return Err(from_reject(&Reject::invalid(field, "is required")));
        }
        self.config
            .engine
            .markets
            .iter()
            .position(|market| market.name == name)
            .map(|index| self.market_at(MarketId(index as u16)))
            .ok_or_else(|| from_reject(&Reject::NotFound { field }))
    }

    /// `INVALID_ARGUMENT` naming `field` when `from_seq` is beyond the last committed
    /// sequence number, which is returned otherwise.
    pub fn check_from_seq(&self, field: &str, from_seq: u64) -> Result<u64, Status> {
        let committed = self.pipeline.committed_seq();
        if from_seq > committed {
            return Err(status::invalid(
                field,
                format!("{from_seq} is beyond the last committed sequence number, {committed}"),
            ));
        }
        Ok(committed)
    }

    /// The market with that id, which exists.
    pub fn market_at(&self, id: MarketId) -> MarketView<'_> {
        MarketView {
            id,
            spec: &self.config.engine.markets[usize::from(id.0)],
        }
    }

    /// A page size from the wire: 0 means 100, more than the configured maximum is
    /// refused.
    pub fn page_size(&self, requested: u32) -> Result<usize, Status> {
        let maximum = self.config.server.page_size_max;
        match requested {
            0 => Ok(PAGE_SIZE_DEFAULT.min(maximum) as usize),
            size if size <= maximum => Ok(size as usize),
            _ => Err(status::invalid("page_size", format!("at most {maximum}"))),
        }
    }
}

/// How long a read of history waits for the indexes to catch up before it is refused.
const INDEX_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a read waiting for the indexes looks again.
const INDEX_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// Digits in an id on the wire, at most: `u64::MAX` has 20.
const ID_DIGITS_MAX: usize = 20;

/// Items in a page when the request names no page size (or the configured maximum, if
/// lower).
pub const PAGE_SIZE_DEFAULT: u32 = 100;

/// The latest time a request may name: the last millisecond of the year 9999, so that
/// rounding a range to whole intervals cannot overflow.
pub const TIME_MS_MAX: u64 = 253_402_300_799_999;

/// Milliseconds since the Unix epoch, the time a command carries.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// An amount of an asset from the wire: up to six decimal places, positive.
pub fn parse_amount(field: &'static str, text: &str) -> Result<Amount, Status> {
    parse_units(field, text, AMOUNT_PLACES)
        .map(Amount)
        .map_err(|reject| from_reject(&reject))
}

/// An issue price from the wire: USD per DVM, up to twelve decimal places, positive.
pub fn parse_issue_price(field: &'static str, text: &str) -> Result<IssuePrice, Status> {
    parse_units(field, text, IssuePrice::DECIMAL_PLACES)
        .map(IssuePrice)
        .map_err(|reject| from_reject(&reject))
}

/// An issue price for the wire: USD per DVM with six decimals, or up to twelve where it
/// has them ("0.600000", "0.000001500000" is "0.0000015").
pub fn issue_price(price: IssuePrice) -> String {
    let mut text = format_units(price.0, IssuePrice::DECIMAL_PLACES);
    let places_min = text.len() - (IssuePrice::DECIMAL_PLACES - AMOUNT_PLACES) as usize;
    while text.len() > places_min && text.ends_with('0') {
        text.pop();
    }
    text
}

/// An amount for the wire, with six decimals.
pub fn amount(amount: Amount) -> String {
    format_units(amount.0, AMOUNT_PLACES)
}

/// A balance for the wire.
pub fn balance(asset: Asset, balance: Balance) -> proto::Balance {
    proto::Balance {
        asset: asset.symbol().to_string(),
        available: amount(balance.available),
        held: amount(balance.held),
    }
}

/// An id from the wire: decimal digits.
pub fn parse_id(field: &'static str, text: &str) -> Result<u64, Status> {
    if text.is_empty() {
        return Err(status::invalid(field, "is required"));
    }
    if text.len() > ID_DIGITS_MAX || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(status::invalid(field, "must be decimal digits"));
    }
    text.parse()
        .map_err(|_| status::invalid(field, "is out of range"))
}

/// A required enum: unspecified or unknown values are refused, naming the field.
pub fn required<T>(
    field: &'static str,
    value: i32,
    convert: impl Fn(i32) -> Option<T>,
) -> Result<T, Status> {
    if value == 0 {
        return Err(status::invalid(field, "must be specified"));
    }
    convert(value).ok_or_else(|| status::invalid(field, format!("unknown value {value}")))
}

/// A whole number of micro-units as the wire's decimal of a market's quote asset per
/// base unit: used for notional limits.
pub fn micros_to_units(micros: u64) -> String {
    format_units(micros, AMOUNT_PLACES)
}
