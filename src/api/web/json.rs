//! The JSON endpoints: each calls the `MarketData` service, so the answers and refusals
//! are the gRPC API's, and writes the response with protobuf's JSON mapping and the
//! proto's field names (decimal strings as on the wire; 64-bit numbers as strings).
//! Refusals are `{"error": "..."}` naming the parameter, with the HTTP status of their
//! gRPC code.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tonic::{Code, Request, Status};

use super::Web;
use crate::api::context::now_ms;
use crate::api::proto;
use crate::api::proto::market_data_server::MarketData;
use crate::api::services::Api;
use crate::api::status;
use crate::api::trade_stream::{check_resumable, journal_trades, wire_trades};
use crate::market_data::{CANDLES_PER_QUERY_MAX, RECENT_TRADES_MAX};
use crate::types::{DAY_MS, HOUR_MS, MINUTE_MS};

/// Trades a `/trades` answer gives when the request names no `limit`.
const TRADES_LIMIT_DEFAULT: usize = 100;
/// Levels a side a `/book` answer gives when the request names no `depth`.
const BOOK_DEPTH_DEFAULT: u32 = 50;
/// Levels a side a `/book` request may ask for.
const BOOK_DEPTH_MAX: u32 = 1_000;
/// Candles a `/candles` answer spans when the request names no `from_ms`.
const CANDLES_DEFAULT: u64 = 300;

/// A refused request: its HTTP status and what to say.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    pub fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }
}

/// A gRPC refusal as HTTP: its message, and the status that means the same.
impl From<Status> for Refusal {
    fn from(status: Status) -> Refusal {
        let code = match status.code() {
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            // From a sequence number older than the journal keeps: gone for good.
            Code::OutOfRange => StatusCode::GONE,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded | Code::Cancelled => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Refusal {
            status: code,
            message: status.message().to_string(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        (
            self.status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response()
    }
}

/// `message` as a JSON response.
fn json(message: &impl serde::Serialize) -> Result<Response, Refusal> {
    let body = serde_json::to_string(message)
        .map_err(|error| Refusal::from(status::internal(format!("json: {error}"))))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// A query string's parameters. Only numbers and short words are taken, so no
/// percent-decoding is needed: a value that is not what its parameter takes is refused
/// naming the parameter.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<String>) -> Query {
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None => (pair.to_string(), String::new()),
            })
            .collect();
        Query(pairs)
    }

    /// The parameter's value, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The parameter as a whole number within `min..=max`, if given.
    pub fn number<T>(&self, name: &str, min: T, max: T) -> Result<Option<T>, Refusal>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.parse::<T>() {
            Ok(number) if number >= min && number <= max => Ok(Some(number)),
            _ => Err(Refusal::bad_request(format!(
                "{name}: must be a whole number from {min} to {max}, not {value:?}"
            ))),
        }
    }
}

/// Answers a path no route serves.
pub async fn not_found() -> Refusal {
    Refusal {
        status: StatusCode::NOT_FOUND,
        message: "no such path; the API is under /api/v1".into(),
    }
}

/// `GET /api/v1/markets`: every market's assets, grid and limits.
pub async fn markets(State(web): State<Web>) -> Result<Response, Refusal> {
    let api = Api::new(web.context()?);
    let answer = api
        .get_markets(Request::new(proto::GetMarketsRequest {}))
        .await?;
    json(answer.get_ref())
}

/// `GET /api/v1/markets/{market}/book?depth=N`: levels best first, and the `seq` they
/// reflect.
pub async fn book(
    State(web): State<Web>,
    Path(market): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Refusal> {
    let query = Query::parse(query);
    let depth = query
        .number("depth", 1, BOOK_DEPTH_MAX)?
        .unwrap_or(BOOK_DEPTH_DEFAULT);
    let api = Api::new(web.context()?);
    let request = proto::GetOrderBookRequest { market, depth };
    let answer = api.get_order_book(Request::new(request)).await?;
    json(answer.get_ref())
}

/// `GET /api/v1/markets/{market}/trades?from_seq=S&limit=N`: the trades after `from_seq`
/// out of the journal, oldest first, or without it the latest `limit`; `next_from_seq` is
/// where to go on from (the last sequence number the answer looked at).
pub async fn trades(
    State(web): State<Web>,
    Path(market): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Refusal> {
    let query = Query::parse(query);
    let limit = query
        .number("limit", 1, RECENT_TRADES_MAX)?
        .unwrap_or(TRADES_LIMIT_DEFAULT);
    let from_seq = query.number("from_seq", 0, u64::MAX)?;
    let context = web.context()?;
    let market = context.market("market", &market)?;
    let (events, next_from_seq) = match from_seq {
        Some(from_seq) => {
            let committed = check_resumable(&context, "from_seq", from_seq).await?;
            let page = journal_trades(&context, market.id, from_seq, committed, limit).await?;
            (page.events, page.next.unwrap_or(committed))
        }
        None => {
            Api::new(Arc::clone(&context)).market_data_ready()?;
            let stats = context
                .market_data
                .stats
                .read()
                .map_err(|_| status::market_data_unavailable())?;
            (stats.recent_trades(market.id, limit), stats.applied_seq())
        }
    };
    let trades = wire_trades(market, &events);
    json(&serde_json::json!({
        "market": market.spec.name,
        "trades": trades,
        "next_from_seq": next_from_seq.to_string(),
    }))
}

/// `GET /api/v1/markets/{market}/candles?interval=5m&from_ms=A&to_ms=B`: OHLCV candles,
/// oldest first; by default the last 300 intervals.
pub async fn candles(
    State(web): State<Web>,
    Path(market): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Refusal> {
    let query = Query::parse(query);
    let (interval, interval_ms) = match query.get("interval").unwrap_or("1m") {
        "1m" => (proto::CandleInterval::CandleInterval1m, MINUTE_MS),
        "5m" => (proto::CandleInterval::CandleInterval5m, 5 * MINUTE_MS),
        "1h" => (proto::CandleInterval::CandleInterval1h, HOUR_MS),
        "1d" => (proto::CandleInterval::CandleInterval1d, DAY_MS),
        other => {
            return Err(Refusal::bad_request(format!(
                "interval: must be 1m, 5m, 1h or 1d, not {other:?}"
            )))
        }
    };
    let to_ms = query
        .number("to_ms", 1, u64::MAX)?
        .unwrap_or_else(|| now_ms() + 1);
    let span_max = interval_ms * CANDLES_PER_QUERY_MAX as u64;
    let from_ms = query
        .number("from_ms", 0, u64::MAX)?
        .unwrap_or_else(|| to_ms.saturating_sub(interval_ms * CANDLES_DEFAULT));
    if to_ms > from_ms && to_ms - from_ms > span_max {
        return Err(Refusal::bad_request(format!(
            "from_ms: the range spans more than {CANDLES_PER_QUERY_MAX} candles"
        )));
    }
    let api = Api::new(web.context()?);
    let request = proto::GetCandlesRequest {
        market,
        interval: interval as i32,
        from_ms,
        to_ms,
    };
    let answer = api.get_candles(Request::new(request)).await?;
    json(answer.get_ref())
}

/// `GET /api/v1/markets/{market}/ticker`: last price, best bid and ask, 24 hours' figures.
pub async fn ticker(
    State(web): State<Web>,
    Path(market): Path<String>,
) -> Result<Response, Refusal> {
    let api = Api::new(web.context()?);
    let answer = api
        .get_ticker(Request::new(proto::GetTickerRequest { market }))
        .await?;
    json(answer.get_ref())
}

/// `GET /api/v1/issue-prices`: the issuer's price per tier and its last changes.
pub async fn issue_prices(State(web): State<Web>) -> Result<Response, Refusal> {
    let api = Api::new(web.context()?);
    let answer = api
        .get_issue_prices(Request::new(proto::GetIssuePricesRequest {}))
        .await?;
    json(answer.get_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_out_of_its_range_is_refused_by_name() {
        let query = Query::parse(Some("depth=0&limit=20&interval=5m&flag".into()));
        assert_eq!(query.number("limit", 1, 1_000).ok().flatten(), Some(20));
        assert_eq!(query.get("interval"), Some("5m"));
        assert_eq!(query.get("flag"), Some(""));
        assert_eq!(query.number::<u32>("absent", 1, 5).ok().flatten(), None);
        let refused = query.number::<u32>("depth", 1, 1_000).expect_err("0 < 1");
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(
            refused.message.starts_with("depth: "),
            "{}",
            refused.message
        );
        let refused = Query::parse(Some("limit=ten".into()))
            .number::<usize>("limit", 1, 1_000)
            .expect_err("not a number");
        assert!(refused.message.contains("limit"), "{}", refused.message);
    }

    #[test]
    fn grpc_codes_become_the_http_statuses_that_mean_the_same() {
        let status = |code| Refusal::from(Status::new(code, "m")).status;
        assert_eq!(status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(status(Code::OutOfRange), StatusCode::GONE);
        assert_eq!(
            status(Code::ResourceExhausted),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(status(Code::Unavailable), StatusCode::SERVICE_UNAVAILABLE);
    }
}
