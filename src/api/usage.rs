//! `Wallet.GetUsage` and `Metering.GetServiceUsage`: the request's range, interval and
//! page checked, the answer read from the usage kept by the market-data feed once it has
//! counted every charge committed when the call arrived.

use std::time::Duration;

use tonic::Status;

use super::context::{now_ms, parse_id, Context, PAGE_SIZE_DEFAULT, TIME_MS_MAX};
use super::status::{self, from_reject};
use crate::error::Reject;
use crate::types::AccountId;
use crate::usage::{Interval, TopUpRecord, Usage, UsageRow};

/// Rows per page, at most: a page of 500 rows is about 30 KB, well within one message.
pub const ROWS_PER_PAGE_MAX: u32 = 500;
/// Top-ups in one answer, at most.
pub const TOP_UPS_PER_ANSWER_MAX: usize = 500;
/// How long a call waits for the feed to count what was committed when it arrived.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// How often a read waiting for usage to catch up looks again.
const CATCH_UP_POLL: Duration = Duration::from_millis(2);

/// Whose usage: a holder's (rows per service) or a service's (rows per holder).
#[derive(Clone, Copy, Debug)]
pub enum Owner {
    /// A holder.
    Holder(AccountId),
    /// A service.
    Service(AccountId),
}

/// A usage request as it came over the wire.
pub struct Asked<'a> {
    /// The range's start.
    pub from_ms: u64,
    /// The range's end (exclusive), 0 for now.
    pub to_ms: u64,
    /// The wire's `UsageInterval`.
    pub interval: i32,
    /// Rows per page, 0 for 100.
    pub page_size: u32,
    /// The previous page's token.
    pub page_token: &'a str,
}

/// The [`Asked`] of a `GetUsageRequest` or a `GetServiceUsageRequest`: the two messages
/// have the same fields.
macro_rules! asked_of {
    ($message:expr) => {
        $crate::api::usage::Asked {
            from_ms: $message.from_ms,
            to_ms: $message.to_ms,
            interval: $message.interval,
            page_size: $message.page_size,
            page_token: &$message.page_token,
        }
    };
}
pub(crate) use asked_of;

/// One page of usage.
pub struct Answer {
    /// By interval, then the other party.
    pub rows: Vec<UsageRow>,
    /// A holder's top-ups in the range (the first page only), and whether more are.
    pub top_ups: (Vec<TopUpRecord>, bool),
    /// Where the next page starts; empty on the last.
    pub next_page_token: String,
    /// Every charge up to this sequence number is counted.
    pub seq: u64,
    /// Nothing before this time is kept.
    pub kept_from_ms: u64,
}

/// Answers a usage request of `owner`.
pub async fn answer(context: &Context, owner: Owner, asked: Asked<'_>) -> Result<Answer, Status> {
    let interval = super::context::required("interval", asked.interval, |value| {
        match super::proto::UsageInterval::try_from(value).ok()? {
            super::proto::UsageInterval::Hour => Some(Interval::Hour),
            super::proto::UsageInterval::Day => Some(Interval::Day),
            super::proto::UsageInterval::Unspecified => None,
        }
    })?;
    let to_ms = if asked.to_ms == 0 {
        now_ms()
    } else {
        asked.to_ms
    };
    for (field, time_ms) in [("from_ms", asked.from_ms), ("to_ms", to_ms)] {
        if time_ms > TIME_MS_MAX {
            return Err(from_reject(&Reject::invalid(
                field,
                "is after the year 9999",
            )));
        }
    }
    if asked.from_ms >= to_ms {
        return Err(from_reject(&Reject::invalid(
            "from_ms",
            "must be before to_ms",
        )));
    }
    let limit = match asked.page_size {
        0 => PAGE_SIZE_DEFAULT as usize,
        size if size <= ROWS_PER_PAGE_MAX => size as usize,
        _ => {
            return Err(status::invalid(
                "page_size",
                format!("at most {ROWS_PER_PAGE_MAX}"),
            ))
        }
    };
    let after = page_token(asked.page_token)?;
    let usage = &context.market_data.usage;
    wait_counted(context, usage).await;
    let usage = usage
        .read()
        .map_err(|_| status::internal("usage: a writer panicked"))?;
    let range = (asked.from_ms, to_ms);
    let (rows, more) = match owner {
        Owner::Holder(holder) => usage.holder_rows(holder, range, interval, after, limit),
        Owner::Service(service) => usage.service_rows(service, range, interval, after, limit),
    };
    let top_ups = match owner {
        Owner::Holder(holder) if after.is_none() => {
            usage.top_ups_of(holder, range, TOP_UPS_PER_ANSWER_MAX)
        }
        _ => (Vec::new(), false),
    };
    let next_page_token = match rows.last() {
        Some((start_ms, other, _)) if more => format!("{start_ms}.{other}"),
        _ => String::new(),
    };
    Ok(Answer {
        rows,
        top_ups,
        next_page_token,
        seq: usage.applied_seq(),
        kept_from_ms: usage.kept_from_ms(),
    })
}

/// Waits, a bounded time, until the usage counts every event committed on arrival.
async fn wait_counted(context: &Context, usage: &std::sync::RwLock<Usage>) {
    let target = context.pipeline.committed_seq();
    let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
    while tokio::time::Instant::now() < deadline {
        let applied = usage.read().map_or(target, |usage| usage.applied_seq());
        if applied >= target {
            return;
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}

/// The row a page token names: `interval_start_ms.account_id`.
fn page_token(token: &str) -> Result<Option<(u64, AccountId)>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let (start, other) = token
        .split_once('.')
        .ok_or_else(|| status::invalid("page_token", "not a token this server gave"))?;
    Ok(Some((
        parse_id("page_token", start)?,
        AccountId(parse_id("page_token", other)?),
    )))
}
