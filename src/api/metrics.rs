//! The Prometheus endpoint (`[server] metrics_listen`): `/metrics` in the OpenMetrics text
//! format, on an address of its own, built at each scrape from figures the parts keep in
//! atomics (`prometheus_client`'s collector, no global registry). Also the tower layer
//! that counts gRPC requests by method and status code, times them, and writes the
//! access log (target `divmid::access`: method, account, outcome).
//!
//! What this is not: a place that takes time from the commit path. The pipeline's figures
//! are relaxed atomic additions on its threads; everything else is read here.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tonic::body::Body;
use tonic::codegen::{http, Bytes, Service};

use super::context::Context;
use crate::command::Command;
use crate::metrics::{Histogram, LATENCY_BOUNDS_NS};

/// gRPC status codes by number, as label values.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Methods counted apart, at most: every route the server has fits many times over; a
/// path that no route serves is counted as `unknown` and never makes a label.
const METHODS_MAX: usize = 256;

/// Requests of one method.
#[derive(Debug)]
struct MethodFigures {
    codes: [AtomicU64; CODES.len()],
    seconds: Histogram,
}

/// gRPC requests by method and code, and their durations (a stream's: until it ends).
#[derive(Debug, Default)]
pub struct GrpcMetrics {
    methods: RwLock<HashMap<Box<str>, Arc<MethodFigures>>>,
}

impl GrpcMetrics {
    fn figures(&self, method: &str) -> Option<Arc<MethodFigures>> {
        if let Some(figures) = self.methods.read().ok()?.get(method) {
            return Some(Arc::clone(figures));
        }
        let mut methods = self.methods.write().ok()?;
        if methods.len() >= METHODS_MAX {
            return None;
        }
        let figures = methods.entry(method.into()).or_insert_with(|| {
            Arc::new(MethodFigures {
                codes: std::array::from_fn(|_| AtomicU64::new(0)),
                seconds: Histogram::new(LATENCY_BOUNDS_NS),
            })
        });
        Some(Arc::clone(figures))
    }

    fn record(&self, path: &str, code: usize, started: Instant) {
        // UNIMPLEMENTED is what a path no route serves gets: a stranger's paths make no
        // labels.
        let method = match code {
            12 => "unknown",
            _ => path.trim_start_matches('/'),
        };
        if let Some(figures) = self.figures(method) {
            figures.codes[code.min(CODES.len() - 1)].fetch_add(1, Ordering::Relaxed);
            figures.seconds.observe_duration(started.elapsed());
        }
    }
}

/// Counts and times every gRPC request.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    /// Where the figures go.
    pub metrics: Arc<GrpcMetrics>,
}

impl<S> tower_layer::Layer<S> for MetricsLayer {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Measured<S> {
        Measured {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct Measured<S> {
    inner: S,
    metrics: Arc<GrpcMetrics>,
}

impl<S, B> Service<http::Request<Body>> for Measured<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = MeasuredFuture<S::Future>;

    fn poll_ready(&mut self, context: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let account = RequestAccount::default();
        request.extensions_mut().insert(account.clone());
        let measure = Measure {
            metrics: Arc::clone(&self.metrics),
            path: request.uri().path().into(),
            started: Instant::now(),
            code: None,
            account,
        };
        MeasuredFuture {
            inner: self.inner.call(request),
            measure: Some(measure),
        }
    }
}

/// The account a request authenticated as, set by the handler once it knows it, for the
/// access log.
#[derive(Clone, Debug, Default)]
pub struct RequestAccount(Arc<AtomicU64>);

/// No account: the request carried no valid token, or needs none.
const NO_ACCOUNT: u64 = 0;

impl RequestAccount {
    /// Records the account.
    pub fn set(&self, account: crate::types::AccountId) {
        self.0.store(account.0, Ordering::Relaxed);
    }

    fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|account| *account != NO_ACCOUNT)
    }
}

/// One request being measured: recorded once, when its response ends or is dropped.
struct Measure {
    metrics: Arc<GrpcMetrics>,
    path: Box<str>,
    started: Instant,
    /// The status, once seen in the headers (an error answered at once) or trailers.
    code: Option<usize>,
    account: RequestAccount,
}

impl Measure {
    fn see(&mut self, headers: &http::HeaderMap) {
        if let Some(code) = headers
            .get("grpc-status")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
        {
            self.code = Some(code);
        }
    }
}

impl Drop for Measure {
    fn drop(&mut self) {
        // A response dropped before its status was sent: the client went away.
        let code = self.code.unwrap_or(1);
        self.metrics.record(&self.path, code, self.started);
        access_log(self, code);
    }
}

/// One line per request: its method, account and outcome. Refusals and failures at info,
/// successes at debug (`RUST_LOG=info,divmid::access=debug` shows every request): at
/// tens of thousands of calls a second a line each would cost more than the calls.
fn access_log(measure: &Measure, code: usize) {
    let method = measure.path.trim_start_matches('/');
    let outcome = CODES[code.min(CODES.len() - 1)];
    let account = measure.account.get();
    let elapsed_us = measure.started.elapsed().as_micros() as u64;
    if code == 0 {
        tracing::debug!(target: "divmid::access", method, account, outcome, elapsed_us, "request");
    } else {
        tracing::info!(target: "divmid::access", method, account, outcome, elapsed_us, "request");
    }
}

pin_project_lite::pin_project! {
    /// A response on its way.
    pub struct MeasuredFuture<F> {
        #[pin]
        inner: F,
        measure: Option<Measure>,
    }
}

impl<F, B, E> Future for MeasuredFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, context: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(context))?;
        let mut measure = this.measure.take();
        if let Some(measure) = &mut measure {
            measure.see(response.headers());
        }
        Poll::Ready(Ok(response.map(|body| match measure {
            Some(measure) => Body::new(MeasuredBody {
                inner: body,
                measure,
            }),
            None => Body::new(body),
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that reads the status from its trailers; the request is recorded
    /// when the body is dropped.
    struct MeasuredBody<B> {
        #[pin]
        inner: B,
        measure: Measure,
    }
}

impl<B: HttpBody> HttpBody for MeasuredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(context));
        if let Some(Ok(frame)) = &frame {
            if let Some(trailers) = frame.trailers_ref() {
                this.measure.see(trailers);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Everything `/metrics` shows, read at each scrape.
struct Exchange {
    /// Weak, so that a scrape never keeps a stopping exchange from closing.
    context: std::sync::Weak<Context>,
    grpc: Arc<GrpcMetrics>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("the exchange's metrics")
    }
}

/// Nanoseconds per second, for histograms kept in nanoseconds and shown in seconds.
const NANOS: f64 = 1e9;

impl Collector for Exchange {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(context) = self.context.upgrade() else {
            return Ok(());
        };
        let pipeline = context.pipeline.metrics();
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64| {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&value)
        };
        let seq = context.pipeline.committed_seq();
        gauge(
            &mut encoder,
            "divmid_seq",
            "The last committed sequence number.",
            seq,
        )?;
        if let Some(indexed) = context.pipeline.indexed_seq() {
            let help = "The last sequence number the history index reaches (history queries \
                        wait up to 5 s for it to reach the committed one).";
            gauge(&mut encoder, "divmid_indexed_seq", help, indexed)?;
        }
        let failed = u64::from(context.pipeline.is_failed());
        let help = "1 once the store failed (the exchange stops; restart it to recover).";
        gauge(&mut encoder, "divmid_store_failed", help, failed)?;
        let depth = pipeline.queue_depth();
        let help = "Requests waiting in the sequencer's queue.";
        gauge(&mut encoder, "divmid_queue_depth", help, depth)?;
        let help = "The sequencer's queue capacity (pipeline.queue_capacity).";
        let capacity = context.config.pipeline.queue_capacity as u64;
        gauge(&mut encoder, "divmid_queue_capacity", help, capacity)?;
        let bytes = directory_bytes(&context.config.server.data_dir);
        let help = "Bytes of the data directory: the journal, the account index, snapshots.";
        gauge(&mut encoder, "divmid_store_bytes", help, bytes)?;
        encode_commands(&context, &mut encoder)?;
        let histograms = [
            (
                "divmid_commit_seconds",
                "Durable journal writes (append, flush, fsync).",
                &pipeline.commit,
                NANOS,
            ),
            (
                "divmid_batch_commands",
                "Commands and queries per batch handed to the store.",
                &pipeline.batch,
                1.0,
            ),
            (
                "divmid_snapshot_seconds",
                "Snapshot writes.",
                &pipeline.snapshot,
                NANOS,
            ),
        ];
        for (name, help, histogram, scale) in histograms {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            histogram.encode(scale, metric)?;
        }
        encode_streams(&context, &mut encoder)?;
        self.encode_grpc(&mut encoder)
    }
}

fn encode_commands(context: &Context, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
    let pipeline = context.pipeline.metrics();
    let help = "Commands applied by the sequencer, by kind and outcome.";
    let mut metric =
        encoder.encode_descriptor("divmid_commands", help, None, MetricType::Counter)?;
    for (kind, name) in Command::KINDS.iter().enumerate() {
        let (accepted, refused) = pipeline.commands(kind);
        for (outcome, value) in [("accepted", accepted), ("refused", refused)] {
            counter(&mut metric, &[("kind", *name), ("outcome", outcome)], value)?;
        }
    }
    Ok(())
}

fn encode_streams(context: &Context, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
    let config = &context.config.server;
    let streams = [
        (
            "market_data",
            config.anonymous_streams_max,
            context.anonymous_stream_slots.available_permits(),
        ),
        (
            "order_updates",
            config.stream_subscribers_max,
            context.stream_slots.available_permits(),
        ),
    ];
    let help = "Open subscriber streams: market data (trades, book) and order updates.";
    let mut metric =
        encoder.encode_descriptor("divmid_stream_subscribers", help, None, MetricType::Gauge)?;
    for (stream, max, available) in streams {
        let open = max.saturating_sub(available) as u64;
        metric
            .encode_family(&[("stream", stream)])?
            .encode_gauge(&open)?;
    }
    Ok(())
}

impl Exchange {
    fn encode_grpc(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let methods: Vec<(Box<str>, Arc<MethodFigures>)> = match self.grpc.methods.read() {
            Ok(methods) => methods
                .iter()
                .map(|(method, figures)| (method.clone(), Arc::clone(figures)))
                .collect(),
            Err(_) => Vec::new(),
        };
        let help = "gRPC requests by method and status code (a stream counts when it ends).";
        let mut metric =
            encoder.encode_descriptor("divmid_grpc_requests", help, None, MetricType::Counter)?;
        for (method, figures) in &methods {
            for (code, count) in figures.codes.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    counter(
                        &mut metric,
                        &[("method", &**method), ("code", CODES[code])],
                        count,
                    )?;
                }
            }
        }
        let help = "gRPC request durations by method (a stream's: until it ends).";
        let mut metric = encoder.encode_descriptor(
            "divmid_grpc_request_seconds",
            help,
            None,
            MetricType::Histogram,
        )?;
        for (method, figures) in &methods {
            figures
                .seconds
                .encode_in(NANOS, &[("method", &**method)], &mut metric)?;
        }
        Ok(())
    }
}

fn counter(metric: &mut MetricEncoder, labels: &[(&str, &str)], value: u64) -> std::fmt::Result {
    metric
        .encode_family(&labels)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// The bytes of the files under `directory`, its subdirectories included.
fn directory_bytes(directory: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |metadata| metadata.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Serves `/metrics` on `listener` until the server stops.
pub async fn serve(
    listener: tokio::net::TcpListener,
    context: Arc<Context>,
    grpc: Arc<GrpcMetrics>,
) -> std::io::Result<()> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exchange {
        context: Arc::downgrade(&context),
        grpc,
    }));
    let registry = Arc::new(registry);
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = Arc::clone(&registry);
            async move { scrape(&registry) }
        }),
    );
    let mut stopping = context.stopping.subscribe();
    drop(context);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        })
        .await
}

/// The registry's text, or a 500 saying why it could not be written.
fn scrape(registry: &Registry) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => (
            [(
                http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded",
        )
            .into_response(),
    }
}
