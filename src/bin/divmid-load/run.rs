//! The three shapes of load: unary calls with N in flight, order sessions with a window,
//! and unary charges. Each worker keeps its own tally; they are merged at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use divmid::api::proto;
use divmid::api::proto::metering_client::MeteringClient;
use divmid::api::proto::trading_client::TradingClient;
use hdrhistogram::Histogram;
use tokio::sync::{mpsc, Semaphore};
use tonic::transport::Channel;

use crate::flow::{Flow, Step};

/// When a run measures: after its warm-up, until its end.
#[derive(Clone, Copy)]
pub struct Window {
    pub measure_from: Instant,
    pub until: Instant,
}

/// What a run's workers saw.
pub struct Tally {
    /// Latency from send to answer, in microseconds, of the measured answers.
    pub latency_us: Histogram<u64>,
    /// Measured answers that the target accepted.
    pub acknowledged: u64,
    /// Measured answers that it refused, by gRPC code number.
    pub refused: BTreeMap<i32, u64>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            // One microsecond to a minute, three significant figures.
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            acknowledged: 0,
            refused: BTreeMap::new(),
        }
    }

    fn record(&mut self, window: &Window, sent: Instant, refused: Option<tonic::Code>) {
        let now = Instant::now();
        if sent < window.measure_from || now > window.until {
            return;
        }
        let micros = now.duration_since(sent).as_micros() as u64;
        let _ = self.latency_us.record(micros.clamp(1, 60_000_000));
        match refused {
            None => self.acknowledged += 1,
            Some(code) => *self.refused.entry(code as i32).or_default() += 1,
        }
    }

    pub fn merge(&mut self, other: Tally) {
        let _ = self.latency_us.add(&other.latency_us);
        self.acknowledged += other.acknowledged;
        for (code, count) in other.refused {
            *self.refused.entry(code).or_default() += count;
        }
    }
}

/// Adds the bearer token to every request.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    pub fn new(token: &str) -> Result<Bearer, String> {
        format!("Bearer {token}")
            .parse()
            .map(|value| Bearer(Some(value)))
            .map_err(|_| "the token is not valid in a header".to_string())
    }

    pub fn none() -> Bearer {
        Bearer(None)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// `in_flight` workers, each placing and canceling orders one call at a time.
pub async fn unary_orders(
    channel: Channel,
    bearer: Bearer,
    in_flight: usize,
    window: Window,
    progress: Arc<AtomicU64>,
) -> Tally {
    let workers = (0..in_flight).map(|worker| {
        let mut client = TradingClient::with_interceptor(channel.clone(), bearer.clone());
        let progress = Arc::clone(&progress);
        tokio::spawn(async move {
            let mut tally = Tally::new();
            let mut flow = Flow::new(worker as u64);
            while Instant::now() < window.until {
                let sent = Instant::now();
                let refused = match flow.next_step() {
                    Step::Place(order) => client.place_order(order).await.err(),
                    Step::Cancel(cancel) => client.cancel_order(cancel).await.err(),
                };
                tally.record(&window, sent, refused.map(|status| status.code()));
                progress.fetch_add(1, Ordering::Relaxed);
            }
            tally
        })
    });
    gather(workers.collect()).await
}

/// `in_flight` workers, each charging `account_id` a millionth of a divmid a call.
pub async fn unary_charges(
    channel: Channel,
    bearer: Bearer,
    account_id: String,
    in_flight: usize,
    window: Window,
    progress: Arc<AtomicU64>,
) -> Tally {
    let run = std::process::id();
    let workers = (0..in_flight).map(|worker| {
        let mut client = MeteringClient::with_interceptor(channel.clone(), bearer.clone());
        let progress = Arc::clone(&progress);
        let account_id = account_id.clone();
        tokio::spawn(async move {
            let mut tally = Tally::new();
            let mut count = 0u64;
            while Instant::now() < window.until {
                count += 1;
                let charge = proto::ChargeRequest {
                    account_id: account_id.clone(),
                    amount: "0.000001".to_string(),
                    idempotency_key: format!("load-{run}-{worker}-{count}"),
                    memo: String::new(),
                };
                let sent = Instant::now();
                let refused = client.charge(charge).await.err();
                tally.record(&window, sent, refused.map(|status| status.code()));
                progress.fetch_add(1, Ordering::Relaxed);
            }
            tally
        })
    });
    gather(workers.collect()).await
}

/// `streams` order sessions, each with at most `window` commands unanswered.
pub async fn sessions(
    channel: Channel,
    bearer: Bearer,
    streams: usize,
    session_window: usize,
    window: Window,
    progress: Arc<AtomicU64>,
) -> Tally {
    let workers = (0..streams).map(|worker| {
        let mut client = TradingClient::with_interceptor(channel.clone(), bearer.clone());
        tokio::spawn(session(
            OrderShape(Flow::new(1_000 + worker as u64)),
            move |requests| async move {
                client
                    .order_session(requests)
                    .await
                    .map(tonic::Response::into_inner)
            },
            session_window,
            window,
            Arc::clone(&progress),
        ))
    });
    gather(workers.collect()).await
}

/// What a session run needs to know of its messages.
trait SessionShape: Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    /// The next request, with its id.
    fn next_request(&mut self, request_id: u64) -> Self::Request;
    /// The id a response answers, and its refusal code if it is an error.
    fn answer(response: &Self::Response) -> (u64, Option<tonic::Code>);
}

/// Orders from the flow.
struct OrderShape(Flow);

impl SessionShape for OrderShape {
    type Request = proto::OrderSessionRequest;
    type Response = proto::OrderSessionResponse;

    fn next_request(&mut self, request_id: u64) -> Self::Request {
        let command = match self.0.next_step() {
            Step::Place(order) => proto::order_session_request::Command::Place(order),
            Step::Cancel(cancel) => proto::order_session_request::Command::Cancel(cancel),
        };
        proto::OrderSessionRequest {
            request_id,
            command: Some(command),
        }
    }

    fn answer(response: &Self::Response) -> (u64, Option<tonic::Code>) {
        let refused = match &response.result {
            Some(proto::order_session_response::Result::Error(error)) => {
                Some(tonic::Code::from_i32(error.code))
            }
            _ => None,
        };
        (response.request_id, refused)
    }
}

/// Charges of a millionth of a divmid to one account, each under its own key.
struct ChargeShape {
    account_id: String,
    keys: String,
}

impl SessionShape for ChargeShape {
    type Request = proto::ChargeSessionRequest;
    type Response = proto::ChargeSessionResponse;

    fn next_request(&mut self, request_id: u64) -> Self::Request {
        proto::ChargeSessionRequest {
            request_id,
            charge: Some(proto::ChargeRequest {
                account_id: self.account_id.clone(),
                amount: "0.000001".to_string(),
                idempotency_key: format!("{}-{request_id}", self.keys),
                memo: String::new(),
            }),
        }
    }

    fn answer(response: &Self::Response) -> (u64, Option<tonic::Code>) {
        let refused = match &response.result {
            Some(proto::charge_session_response::Result::Error(error)) => {
                Some(tonic::Code::from_i32(error.code))
            }
            _ => None,
        };
        (response.request_id, refused)
    }
}

/// `streams` charge sessions, each with at most `window` charges unanswered.
pub async fn charge_sessions(
    channel: Channel,
    bearer: Bearer,
    account_id: String,
    streams: usize,
    session_window: usize,
    window: Window,
    progress: Arc<AtomicU64>,
) -> Tally {
    let run = std::process::id();
    let workers = (0..streams).map(|worker| {
        let mut client = MeteringClient::with_interceptor(channel.clone(), bearer.clone());
        let shape = ChargeShape {
            account_id: account_id.clone(),
            keys: format!("load-{run}-session-{worker}"),
        };
        let progress = Arc::clone(&progress);
        tokio::spawn(session(
            shape,
            move |requests| async move {
                client
                    .charge_session(requests)
                    .await
                    .map(tonic::Response::into_inner)
            },
            session_window,
            window,
            progress,
        ))
    });
    gather(workers.collect()).await
}

/// One session: a writer keeps at most `session_window` requests unanswered while the
/// reader records each answer's latency.
async fn session<S, Open, Opened>(
    mut shape: S,
    open: Open,
    session_window: usize,
    window: Window,
    progress: Arc<AtomicU64>,
) -> Tally
where
    S: SessionShape,
    Open: FnOnce(tokio_stream::wrappers::ReceiverStream<S::Request>) -> Opened,
    Opened: std::future::Future<Output = Result<tonic::Streaming<S::Response>, tonic::Status>>,
{
    let mut tally = Tally::new();
    let (requests, outgoing) = mpsc::channel(session_window);
    let permits = Arc::new(Semaphore::new(session_window));
    let base = Instant::now();
    // When each unanswered request was sent, in nanoseconds since `base`, by request id
    // modulo the window (never more than the window is unanswered).
    let sent_at: Arc<[AtomicU64]> = (0..session_window).map(|_| AtomicU64::new(0)).collect();
    let writer = {
        let permits = Arc::clone(&permits);
        let sent_at = Arc::clone(&sent_at);
        tokio::spawn(async move {
            let mut request_id = 0u64;
            while Instant::now() < window.until {
                let Ok(permit) = permits.acquire().await else {
                    return;
                };
                permit.forget();
                request_id += 1;
                let request = shape.next_request(request_id);
                let slot = (request_id % sent_at.len() as u64) as usize;
                sent_at[slot].store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                if requests.send(request).await.is_err() {
                    return;
                }
            }
        })
    };
    let mut responses = match open(tokio_stream::wrappers::ReceiverStream::new(outgoing)).await {
        Ok(responses) => responses,
        Err(status) => {
            eprintln!("divmid-load: the session did not open: {status}");
            writer.abort();
            return tally;
        }
    };
    loop {
        let response = match responses.message().await {
            Ok(Some(response)) => response,
            Ok(None) => break,
            Err(status) => {
                eprintln!("divmid-load: the session ended: {status}");
                break;
            }
        };
        let (request_id, refused) = S::answer(&response);
        let slot = (request_id % sent_at.len() as u64) as usize;
        let sent = base + Duration::from_nanos(sent_at[slot].load(Ordering::Relaxed));
        tally.record(&window, sent, refused);
        progress.fetch_add(1, Ordering::Relaxed);
        permits.add_permits(1);
    }
    writer.abort();
    tally
}

async fn gather(workers: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut total = Tally::new();
    for worker in workers {
        if let Ok(tally) = worker.await {
            total.merge(tally);
        }
    }
    total
}
