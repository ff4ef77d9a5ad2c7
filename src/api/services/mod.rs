//! The gRPC services, one file per service as the proto is split: each handler
//! authenticates, converts the request (`convert.rs` for what sessions share), submits
//! it, and converts the outcome. What the services share is here.

mod issuer;
mod market_data;
mod metering;
mod trading;
mod wallet;

use std::sync::Arc;

use tonic::{Request, Status};

use super::auth::Caller;
use super::proto;
use crate::api::context::{parse_id, Context};
use crate::api::status;
use crate::event::{OrderView, Reply};
use crate::types::{AccountId, Role};

/// Events read from the store per step of a history page.
const HISTORY_EVENTS_PER_READ: usize = 256;

/// Events one history page looks at, at most: an account whose history holds few of what
/// is asked for (fills among 140,000 events) answers a shorter page, even an empty one,
/// with the token to go on from, rather than scan its whole history in one call.
pub const HISTORY_EVENTS_SCANNED_MAX: usize = 20_000;

/// The services, sharing one context.
#[derive(Clone)]
pub struct Api {
    context: Arc<Context>,
}

impl Api {
    /// Services over `context`.
    pub fn new(context: Arc<Context>) -> Api {
        Api { context }
    }

    /// The shared context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// `UNAVAILABLE` until the candles and the latest trades have caught up with the
    /// journal since the start.
    pub fn market_data_ready(&self) -> Result<(), Status> {
        if self
            .context
            .market_data
            .ready
            .load(std::sync::atomic::Ordering::Acquire)
        {
            Ok(())
        } else {
            Err(status::unavailable(
                "market data is catching up with the journal; retry shortly",
            ))
        }
    }

    /// The authenticated caller, if it has `role`. A peer that has failed to
    /// authenticate too often this minute is refused whatever it presents.
    fn caller<T>(&self, request: &Request<T>, role: Role) -> Result<Caller, Status> {
        let peer = super::idle::connection_of(request.extensions())
            .and_then(|connection| connection.remote)
            .map(|address| address.ip());
        let failures = &self.context.auth_failures;
        failures.check(peer)?;
        match self.context.tokens.authenticate(request) {
            Ok(caller) => {
                // The access log names the account, permitted or not.
                if let Some(account) = request.extensions().get::<RequestAccount>() {
                    account.set(caller.account);
                }
                caller.require(role)
            }
            Err(status) => {
                failures.record(peer);
                Err(status)
            }
        }
    }
}

use super::metrics::RequestAccount;

pub(super) fn unexpected(reply: &Reply) -> Status {
    status::internal(format!("unexpected reply {reply:?}"))
}

impl Api {
    /// A page of items derived from the account's events, newest first: events are read
    /// from the store (off the async threads) until the page is full, or one more event's
    /// items would take the answer past the message limit, or
    /// [`HISTORY_EVENTS_SCANNED_MAX`] events were looked at, or history ends. An event's
    /// items are never split between pages. The page token is the sequence number of the
    /// last event looked at; it is empty only when history ends.
    async fn page_from_history<T: prost::Message + 'static>(
        &self,
        account: AccountId,
        page_size: u32,
        page_token: &str,
        derive: impl Fn(&crate::event::Event) -> Vec<T> + Send + 'static,
    ) -> Result<(Vec<T>, String), Status> {
        let wanted = self.context.page_size(page_size)?;
        let mut before = if page_token.is_empty() {
            None
        } else {
            Some(parse_id("page_token", page_token)?)
        };
        let bytes_max = self
            .context
            .config
            .server
            .message_bytes_max
            .saturating_sub(ANSWER_HEADROOM_BYTES);
        let history = self.context.history.clone();
        let committed = self.context.pipeline.committed_seq();
        tokio::task::spawn_blocking(move || {
            let mut items = Vec::new();
            let mut bytes = 0;
            let mut scanned = 0;
            let token = |before: Option<u64>| before.map(|seq| seq.to_string()).unwrap_or_default();
            loop {
                if scanned >= HISTORY_EVENTS_SCANNED_MAX {
                    return Ok((items, token(before)));
                }
                let page = history
                    .account_events(account, before, HISTORY_EVENTS_PER_READ, committed)
                    .map_err(|error| status::internal(format!("history: {error}")))?;
                scanned += page.events.len();
                for event in &page.events {
                    let derived = derive(event);
                    // Each item of a repeated field: its bytes, a tag and a length prefix.
                    let derived_bytes: usize =
                        derived.iter().map(|item| item.encoded_len() + 6).sum();
                    if !items.is_empty() && bytes + derived_bytes > bytes_max {
                        return Ok((items, token(before)));
                    }
                    bytes += derived_bytes;
                    items.extend(derived);
                    before = Some(event.seq);
                    if items.len() >= wanted {
                        return Ok((items, token(before)));
                    }
                }
                if page.next.is_none() {
                    return Ok((items, String::new()));
                }
            }
        })
        .await
        .map_err(|_| status::internal("the history reader stopped"))?
    }

    fn order_reply(&self, view: &OrderView) -> proto::Order {
        self.context.market_at(view.terms.market).order(view)
    }

    /// A page of `orders` (`full` when there may be more after them), cut shorter where
    /// more would pass the message limit; the page token is the last order's id.
    fn orders_page(&self, orders: &[OrderView], full: bool) -> proto::ListOrdersResponse {
        let mut converted: Vec<proto::Order> =
            orders.iter().map(|view| self.order_reply(view)).collect();
        let fitting = fitting(&converted, self.context.config.server.message_bytes_max);
        let more = full || fitting < converted.len();
        converted.truncate(fitting);
        let next_page_token = match converted.last() {
            Some(last) if more => last.order_id.clone(),
            _ => String::new(),
        };
        proto::ListOrdersResponse {
            orders: converted,
            next_page_token,
        }
    }
}

/// Room kept in an answer for its page token and framing.
const ANSWER_HEADROOM_BYTES: usize = 256;

/// How many of `items`, from the first, fit the repeated field of one answer within
/// `message_bytes_max` (at least one, which always fits a message limit of 1 KiB or more).
fn fitting<T: prost::Message>(items: &[T], message_bytes_max: usize) -> usize {
    let bytes_max = message_bytes_max.saturating_sub(ANSWER_HEADROOM_BYTES);
    let mut bytes = 0;
    for (index, item) in items.iter().enumerate() {
        // Each item of a repeated field: its bytes, a tag and a length prefix.
        bytes += item.encoded_len() + 6;
        if bytes > bytes_max && index > 0 {
            return index;
        }
    }
    items.len()
}
