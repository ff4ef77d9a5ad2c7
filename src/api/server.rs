//! Starting the exchange: recovering the store, building the context, and serving gRPC
//! until a shutdown signal, then committing everything accepted.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::Router;
use tonic::transport::Server;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tower_layer::{Identity, Stack};

use super::auth::{issuer_token, IssuerTokenSource, Tokens};
use super::context::{now_ms, Context, MarketDataState};
use super::deadline::DeadlineLayer;
use super::funding::FundingSources;
use super::health::Readiness;
use super::idle::{IdleLayer, PartialBytes};
use super::metrics::{GrpcMetrics, MetricsLayer};
use super::proto;
use super::services::Api;
use crate::config::Config;
use crate::engine::LevelBook;
use crate::market_data::TradeStats;
use crate::pipeline::Journal;
use crate::pipeline::Pipeline;
use crate::store::{record_engine, recover, Store};
use crate::usage::Usage;

/// Why the exchange could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::error::ConfigError),
    /// The store could not be opened or recovered.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A file or socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The issuer's token cannot be used.
    #[error(transparent)]
    Token(#[from] super::auth::TokenError),
    /// The gRPC server failed.
    #[error("grpc: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// TLS could not be set up: a file named in `[server.tls]` is missing or unusable.
    #[error("tls: {0}")]
    Tls(String),
    /// The store failed while serving (fail-stop); a restart recovers the committed state.
    #[error("the store failed ({0}); restart the server to recover")]
    StoreFailed(String),
}

/// Opens the store in the configured data directory, recovers it, checks it, and starts
/// the pipeline; `environment_token` is the value of `DIVMID_ISSUER_TOKEN`, if set.
pub fn open(config: Config, environment_token: Option<String>) -> Result<Arc<Context>, ServeError> {
    open_with_journal(config, environment_token, |store| store)
}

/// As [`open`], with the pipeline writing through `journal(store)`: tests wrap the store
/// in a journal that fails on purpose.
pub fn open_with_journal<J: Journal>(
    config: Config,
    environment_token: Option<String>,
    journal: impl FnOnce(Store) -> J,
) -> Result<Arc<Context>, ServeError> {
    let funding = match config.server.funding_sandbox {
        true => FundingSources::sandbox(),
        false => FundingSources::disabled(),
    };
    open_with(config, environment_token, journal, funding)
}

/// As [`open_with_journal`], with the deposit processors given: a real processor, or a
/// test's.
pub fn open_with<J: Journal>(
    config: Config,
    environment_token: Option<String>,
    journal: impl FnOnce(Store) -> J,
    funding: FundingSources,
) -> Result<Arc<Context>, ServeError> {
    config.validate()?;
    let data_dir = config.server.data_dir.clone();
    let (token, source) = issuer_token(
        config.server.issuer_token.as_deref(),
        environment_token,
        &data_dir,
    )?;
    log_token_source(source);
    let mut store = Store::open_with_cache(&data_dir, config.server.store_cache_bytes)?;
    let started = std::time::Instant::now();
    let recovered = recover::<LevelBook>(&store, config.engine.clone())?;
    tracing::info!(
        seq = recovered.sequencer.last_seq(),
        snapshot_seq = recovered.snapshot_seq,
        replayed = recovered.commands_replayed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered the store; conservation and the books check out"
    );
    let mut sequencer = recovered.sequencer;
    let before = sequencer.config().clone();
    if let Some(seq) = record_engine(&mut store, &mut sequencer, &config.engine, now_ms())? {
        match before == config.engine {
            true => tracing::info!(seq, "recorded the engine configuration in the journal"),
            false => tracing::warn!(
                seq,
                "the engine configuration changed since the data was written: commands are \
                 decided under the new limits from this sequence number on"
            ),
        }
    }
    let tokens = Tokens::new(&token, sequencer.ledger().accounts());
    let trades =
        super::trade_feed::TradeFeed::new(sequencer.last_seq(), config.pipeline.broadcast_capacity);
    let history = store.history()?;
    let backups = store.backup_source();
    let mut pipeline = Pipeline::start(sequencer, journal(store), config.pipeline.clone());
    pipeline.start_indexer(history.clone());
    let stream_subscribers_max = config.server.stream_subscribers_max;
    let anonymous_streams_max = config.server.anonymous_streams_max;
    let auth_failures = super::auth::AuthFailures::new(config.server.auth_failures_per_minute_max);
    let market_data = market_data_state(&config);
    Ok(Arc::new(Context {
        pipeline,
        config,
        tokens,
        auth_failures,
        history,
        backups,
        funding,
        market_data,
        stopping: tokio::sync::watch::Sender::new(false),
        stream_slots: Arc::new(tokio::sync::Semaphore::new(stream_subscribers_max)),
        anonymous_stream_slots: Arc::new(tokio::sync::Semaphore::new(anonymous_streams_max)),
        book_views: tokio::sync::watch::Sender::new(None),
        trades,
    }))
}

/// Says where the issuer's token came from.
fn log_token_source(source: IssuerTokenSource) {
    match source {
        IssuerTokenSource::Generated(path) => tracing::warn!(
            path = %path.display(),
            "generated the issuer token; it is in this file, readable only by its owner"
        ),
        IssuerTokenSource::File(path) => {
            tracing::info!(path = %path.display(), "issuer token read from file")
        }
        IssuerTokenSource::Configuration => tracing::info!("issuer token from the configuration"),
        IssuerTokenSource::Environment => tracing::info!("issuer token from DIVMID_ISSUER_TOKEN"),
    }
}

/// Candles, the ticker and usage, empty until the feed has read the journal.
fn market_data_state(config: &Config) -> Arc<MarketDataState> {
    Arc::new(MarketDataState {
        stats: std::sync::RwLock::new(TradeStats::new(
            config.engine.markets.len(),
            config.server.candle_retention_days,
        )),
        usage: std::sync::RwLock::new(Usage::new(
            config.server.usage_retention_days * crate::usage::DAY_MS,
            config.server.usage_rows_max,
        )),
        ready: std::sync::atomic::AtomicBool::new(false),
    })
}

/// A message limit of `$size` bytes, both ways, on a generated server.
macro_rules! limited {
    ($server:expr, $size:expr) => {
        $server
            .max_decoding_message_size($size)
            .max_encoding_message_size($size)
    };
}

/// How long a stopping server waits for its streams' tasks to end.
const STREAMS_GRACE: Duration = Duration::from_secs(5);

/// How often the shutdown looks whether the streams' tasks have let go of the exchange.
const RELEASE_POLL: Duration = Duration::from_millis(5);

/// Serves the API on `listener` until `shutdown` completes, then stops taking requests,
/// lets those in flight finish, and commits everything accepted before returning.
pub async fn run(
    listener: TcpListener,
    context: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let limits = context.config.server.clone();
    let feeds = start_feeds(&context);
    // Ends by itself once the server is stopping.
    let _nats = super::nats::start(&context);
    let api = Api::new(Arc::clone(&context));
    let (health_service, health_task, failed_stopped) = start_health(&context).await;
    let address = listener.local_addr()?;
    tracing::info!(%address, "serving gRPC");
    let grpc_metrics = start_metrics(&context).await?;
    start_web(&context).await?;
    let drained = drain_deadline(&context, limits.shutdown_grace_ms);
    let size = limits.message_bytes_max;
    // Health and reflection too: tonic's default of 4 MB would let a client that sends
    // half of a large message hold that much memory per stream.
    let routes = server_builder(&limits, grpc_metrics)?.add_service(limited!(health_service, size));
    let serving = with_api(routes, api, size)?.serve_with_incoming_shutdown(
        super::listener::incoming(listener, limits.connections_max, timeouts(&limits)),
        {
            let stopping = context.stopping.clone();
            async move {
                tokio::select! {
                    _ = shutdown => {}
                    // Sent after health has reported the failure for a moment.
                    Ok(()) = failed_stopped => {}
                }
                // Streams end now; the server then waits only for unary calls in flight.
                stopping.send_replace(true);
            }
        },
    );
    let forced = tokio::select! {
        served = serving => {
            served?;
            false
        }
        _ = drained => {
            tracing::warn!(
                drain_ms = limits.shutdown_grace_ms,
                "connections still open after the drain deadline are closed"
            );
            true
        }
    };
    tracing::info!("stopped taking requests; committing what was accepted");
    let _ = health_task.await;
    let failure = context
        .pipeline
        .is_failed()
        .then(|| context.pipeline.failure().unwrap_or_default());
    let grace = if forced {
        // Connections' tasks still hold the exchange: there is nothing to wait for.
        Duration::ZERO
    } else {
        STREAMS_GRACE
    };
    close(context, grace, feeds).await;
    match failure {
        Some(failure) => Err(ServeError::StoreFailed(failure)),
        None => Ok(()),
    }
}

/// How long a connection may take to make its first request, and stay idle.
fn timeouts(limits: &crate::config::ServerConfig) -> super::listener::Timeouts {
    super::listener::Timeouts {
        handshake: Duration::from_millis(limits.handshake_timeout_ms),
        idle: Duration::from_millis(limits.idle_timeout_ms),
    }
}

/// Serves `/metrics` when `metrics_listen` is set (a wrong address stops the start), and
/// returns where the gRPC layer keeps its figures.
async fn start_metrics(context: &Arc<Context>) -> Result<Arc<GrpcMetrics>, ServeError> {
    let grpc_metrics = Arc::new(GrpcMetrics::default());
    if let Some(address) = context.config.server.metrics_listen {
        // A wrong address stops the start with its reason.
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        tracing::info!(%address, "serving metrics at /metrics");
        let serving =
            super::metrics::serve(listener, Arc::clone(context), Arc::clone(&grpc_metrics));
        tokio::spawn(async move {
            if let Err(error) = serving.await {
                tracing::error!(%error, "the metrics endpoint stopped");
            }
        });
    }
    Ok(grpc_metrics)
}

/// Serves the web page and the HTTP/JSON market data when `http_listen` is set (a wrong
/// address stops the start).
async fn start_web(context: &Arc<Context>) -> Result<(), ServeError> {
    let Some(address) = context.config.server.http_listen else {
        return Ok(());
    };
    let listener = TcpListener::bind(address).await?;
    let address = listener.local_addr()?;
    tracing::info!("serving HTTP at http://{address}/");
    let serving = super::web::serve(
        listener,
        Arc::clone(context),
        timeouts(&context.config.server),
    );
    tokio::spawn(async move {
        if let Err(error) = serving.await {
            tracing::error!(%error, "the web gateway stopped");
        }
    });
    Ok(())
}

/// The tasks that keep market data (candles and the ticker, the books' views) current
/// from the committed events.
fn start_feeds(context: &Arc<Context>) -> [tokio::task::JoinHandle<()>; 3] {
    let market_data_feed = tokio::spawn(super::feed::run(
        Arc::clone(&context.market_data),
        context.pipeline.subscribe(),
        context.pipeline.committed_handle(),
        context.history.clone(),
        context
            .config
            .server
            .candle_retention_days
            .max(context.config.server.usage_retention_days),
    ));
    let book_feed = tokio::spawn(super::book_stream::feed(
        Arc::clone(context),
        context.book_views.clone(),
    ));
    let trade_feed = tokio::spawn(super::trade_stream::run_feed(
        Arc::downgrade(context),
        context.pipeline.subscribe(),
    ));
    [market_data_feed, book_feed, trade_feed]
}

/// Completes `grace_ms` after the server starts stopping: the drain's deadline.
fn drain_deadline(context: &Context, grace_ms: u64) -> impl Future<Output = ()> {
    let mut stopping = context.stopping.subscribe();
    async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(Duration::from_millis(grace_ms)).await;
    }
}

/// The health service, every name `NOT_SERVING` before anything is served (tonic's
/// reporter starts with the whole server `SERVING`), and the task that owns the statuses
/// from then on; the receiver completes when a failed store should stop the server.
async fn start_health(
    context: &Arc<Context>,
) -> (
    HealthServer<HealthService>,
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Receiver<()>,
) {
    let health = HealthReporter::new();
    let service = HealthServer::new(HealthService::from_health_reporter(health.clone()));
    super::health::report_all(&health, tonic_health::ServingStatus::NotServing).await;
    let (failed_stop, failed_stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(super::health::report(
        health,
        Readiness {
            history: context.history.clone(),
            recovered_seq: context.pipeline.committed_seq(),
            market_data: Arc::clone(&context.market_data),
        },
        context.pipeline.failed_signal(),
        context.stopping.subscribe(),
        failed_stop,
    ));
    (service, task, failed_stopped)
}

/// The transport with the configured TLS, connection and request limits.
/// The layers every request goes through: its idleness and partial bytes, then its
/// figures.
type Layers = Stack<DeadlineLayer, Stack<MetricsLayer, Stack<IdleLayer, Identity>>>;

fn server_builder(
    limits: &crate::config::ServerConfig,
    metrics: Arc<GrpcMetrics>,
) -> Result<Server<Layers>, ServeError> {
    let mut builder = Server::builder();
    if let Some(tls) = &limits.tls {
        let config = super::tls::server_config(tls).map_err(ServeError::Tls)?;
        builder = builder
            .tls_config(config)
            .map_err(|error| ServeError::Tls(error.to_string()))?;
        let client_certificates = tls.client_ca_file.is_some();
        tracing::info!(client_certificates, "TLS only");
    }
    let keepalive = Duration::from_millis(limits.keepalive_interval_ms);
    Ok(builder
        .concurrency_limit_per_connection(limits.requests_per_connection_max)
        .max_concurrent_streams(limits.concurrent_streams_max)
        .initial_connection_window_size(limits.receive_window_bytes)
        .initial_stream_window_size(limits.receive_window_bytes)
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(Duration::from_millis(limits.keepalive_timeout_ms)))
        .tcp_keepalive(Some(keepalive))
        .layer(IdleLayer {
            stream_idle: Duration::from_millis(limits.stream_idle_timeout_ms),
            partial: Arc::new(PartialBytes::new(limits.partial_messages_bytes_max)),
        })
        .layer(MetricsLayer { metrics })
        .layer(DeadlineLayer {
            timeout: Duration::from_millis(limits.request_timeout_ms),
        }))
}

/// `routes` with reflection (v1 and v1alpha) and the five services of the API, each
/// limited to messages of `size` bytes.
fn with_api(routes: Router<Layers>, api: Api, size: usize) -> Result<Router<Layers>, ServeError> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let unbuilt = |error: tonic_reflection::server::Error| std::io::Error::other(error.to_string());
    let reflection_v1 = reflection().build_v1().map_err(unbuilt)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(unbuilt)?;
    Ok(routes
        .add_service(limited!(reflection_v1, size))
        .add_service(limited!(reflection_v1alpha, size))
        .add_service(limited!(
            proto::issuer_server::IssuerServer::new(api.clone()),
            size
        ))
        .add_service(limited!(
            proto::wallet_server::WalletServer::new(api.clone()),
            size
        ))
        .add_service(limited!(
            proto::metering_server::MeteringServer::new(api.clone()),
            size
        ))
        .add_service(limited!(
            proto::trading_server::TradingServer::new(api.clone()),
            size
        ))
        .add_service(limited!(
            proto::market_data_server::MarketDataServer::new(api),
            size
        )))
}

/// Shuts the exchange down once the server has stopped: waits up to `grace` for the
/// streams' tasks to let go of it, commits everything accepted, and waits for the feeds,
/// so that the store is closed and the data directory can be opened again at once.
async fn close(context: Arc<Context>, grace: Duration, feeds: [tokio::task::JoinHandle<()>; 3]) {
    let deadline = tokio::time::Instant::now() + grace;
    while Arc::strong_count(&context) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(RELEASE_POLL).await;
    }
    match Arc::try_unwrap(context) {
        Ok(context) => {
            let Context {
                pipeline, history, ..
            } = context;
            pipeline.shutdown();
            drop(history);
            // The feeds end with the pipeline's broadcast; the store is closed once they
            // have, so the same data directory can be opened again at once.
            for feed in feeds {
                let _ = feed.await;
            }
        }
        // Someone still holds the context; dropping the last reference shuts the
        // pipeline down the same way.
        Err(context) => {
            tracing::warn!("a task still holds the exchange; it stops when that task ends");
            drop(context);
        }
    }
}
