//! What the standard health service reports, for load balancers and supervisors.
//!
//! - At start every service (and the whole server, `""`) is `NOT_SERVING` until every read
//!   can be answered: the history index has reached the last event recovered and market
//!   data has caught up with the journal. A client that waited for `SERVING` is not then
//!   told that history is catching up.
//! - When the store fails (fail-stop) every service turns `NOT_SERVING` at once; after
//!   [`FAIL_STOP_LINGER`], so that probes and `Watch` streams see it, the server stops
//!   and exits with an error, so that a supervisor restarts it.
//!
//! One task owns the reporter, so a late "caught up" can never turn a failed server back
//! to `SERVING`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use tonic::server::NamedService;

use super::context::MarketDataState;
use super::proto;
use super::services::Api;
use crate::store::History;

/// How long a failed server keeps answering (`NOT_SERVING` to health, `UNAVAILABLE` to
/// everything else) before it stops.
pub const FAIL_STOP_LINGER: Duration = Duration::from_secs(1);

/// How often readiness is looked at until the server is ready.
const READINESS_POLL: Duration = Duration::from_millis(20);

/// Every name health answers for: the whole server and each service of the API.
pub const SERVICES: [&str; 6] = [
    "",
    <proto::issuer_server::IssuerServer<Api> as NamedService>::NAME,
    <proto::wallet_server::WalletServer<Api> as NamedService>::NAME,
    <proto::metering_server::MeteringServer<Api> as NamedService>::NAME,
    <proto::trading_server::TradingServer<Api> as NamedService>::NAME,
    <proto::market_data_server::MarketDataServer<Api> as NamedService>::NAME,
];

/// What must have caught up before the server reports `SERVING`.
pub struct Readiness {
    /// The history indexes, which must reach `recovered_seq`.
    pub history: History,
    /// The last sequence number recovered at start.
    pub recovered_seq: u64,
    /// Candles and the ticker, which must have caught up with the journal.
    pub market_data: Arc<MarketDataState>,
}

impl Readiness {
    fn ready(&self) -> bool {
        let indexed = self.history.indexed_seq().unwrap_or(0);
        indexed >= self.recovered_seq && self.market_data.ready.load(Ordering::Acquire)
    }
}

/// Sets every name's status. The server calls it with `NOT_SERVING` before it serves:
/// tonic's reporter starts with the whole server (`""`) `SERVING`, and every service must
/// answer (not "not registered") from the first request on.
pub async fn report_all(reporter: &HealthReporter, status: ServingStatus) {
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Owns the health statuses until the server stops: `NOT_SERVING`, then `SERVING` once
/// ready, then `NOT_SERVING` for good if the store fails, after which `stop` is sent
/// (once [`FAIL_STOP_LINGER`] has passed). When `stopping` turns true every status is
/// cleared, which ends the clients' `Watch` streams so that the drain does not wait for
/// them.
pub async fn report(
    mut reporter: HealthReporter,
    readiness: Readiness,
    mut failed: watch::Receiver<bool>,
    mut stopping: watch::Receiver<bool>,
    stop: oneshot::Sender<()>,
) {
    report_all(&reporter, ServingStatus::NotServing).await;
    // Whether readiness is settled: reported `SERVING`, or overridden by a failure.
    let mut settled = false;
    let mut stop = Some(stop);
    loop {
        tokio::select! {
            gone = async { failed.wait_for(|failed| *failed).await.is_err() }, if stop.is_some() => {
                if !gone {
                    report_all(&reporter, ServingStatus::NotServing).await;
                    settled = true;
                    tracing::error!("health: NOT_SERVING; the server stops because its store failed");
                    tokio::time::sleep(FAIL_STOP_LINGER).await;
                }
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
            }
            _ = async { stopping.wait_for(|stopping| *stopping).await.is_err() } => break,
            _ = tokio::time::sleep(READINESS_POLL), if !settled => {
                if readiness.ready() {
                    settled = true;
                    report_all(&reporter, ServingStatus::Serving).await;
                    tracing::info!("health: SERVING; history and market data have caught up");
                }
            }
        }
    }
    for service in SERVICES {
        reporter.clear_service_status(service).await;
    }
}
