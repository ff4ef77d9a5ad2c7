//! The web gateway (`[server] http_listen`): the market's page at `/`, and market data as
//! JSON and Server-Sent Events under `/api/v1`, over HTTP/1.1 beside gRPC, from the same
//! committed state (the handlers call the `MarketData` service and read the same feeds).
//!
//! The perimeter is the gRPC server's: the same bounded accept loop (`connections_max`,
//! the handshake and idle timeouts), event streams counted among the anonymous streams,
//! every response with security headers, and no cross-origin reads unless
//! `http_allow_origin` names an origin. Plain HTTP only: the configuration keeps it on
//! loopback unless a proxy in front terminates TLS.
//!
//! What this is not: an API for accounts. Nothing here takes a token or changes state.

mod assets;
mod events;
mod json;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::context::Context;
use super::listener::{Connection, ConnectionInfo, Timeouts};

/// What every handler is given: the exchange, held weakly so that an open connection
/// never keeps a stopping server's store open.
#[derive(Clone)]
struct Web {
    context: Weak<Context>,
    /// `Access-Control-Allow-Origin` for the API's responses, when configured.
    allow_origin: Option<HeaderValue>,
}

impl Web {
    /// The exchange, or 503 once it is stopping.
    fn context(&self) -> Result<Arc<Context>, json::Refusal> {
        self.context
            .upgrade()
            .ok_or_else(|| json::Refusal::unavailable("the server is stopping"))
    }
}

/// Serves the gateway on `listener` until the server stops.
pub async fn serve(
    listener: TcpListener,
    context: Arc<Context>,
    timeouts: Timeouts,
) -> io::Result<()> {
    let limits = &context.config.server;
    let local = listener.local_addr()?;
    let incoming = super::listener::incoming(listener, limits.connections_max, timeouts);
    let web = Web {
        context: Arc::downgrade(&context),
        allow_origin: limits
            .http_allow_origin
            .as_deref()
            .and_then(|origin| HeaderValue::from_str(origin).ok()),
    };
    let mut stopping = context.stopping.subscribe();
    drop(context);
    let router = routes(web);
    axum::serve(
        Gateway { incoming, local },
        router.into_make_service_with_connect_info::<ConnectionInfo>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    })
    .await
}

fn routes(web: Web) -> Router {
    Router::new()
        .route("/", get(assets::page))
        .route("/assets/{file}", get(assets::file))
        .route("/api/v1/markets", get(json::markets))
        .route("/api/v1/markets/{market}/book", get(json::book))
        .route("/api/v1/markets/{market}/trades", get(json::trades))
        .route("/api/v1/markets/{market}/candles", get(json::candles))
        .route("/api/v1/markets/{market}/ticker", get(json::ticker))
        .route("/api/v1/markets/{market}/stream", get(events::stream))
        .route("/api/v1/issue-prices", get(json::issue_prices))
        .fallback(json::not_found)
        .layer(axum::middleware::from_fn_with_state(web.clone(), perimeter))
        .with_state(web)
}

/// Counts the request open on its connection until its response has been sent (so the
/// connection's idle timeout starts after it), and adds the security headers.
async fn perimeter(State(web): State<Web>, request: Request, next: Next) -> Response {
    let open = request
        .extensions()
        .get::<ConnectInfo<ConnectionInfo>>()
        .map(|info| info.0.activity.begin());
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let security = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in security {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let (true, Some(origin)) = (api, &web.allow_origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    match open {
        Some(open) => {
            response.map(|body| axum::body::Body::new(super::idle::CountedBody::new(body, open)))
        }
        None => response,
    }
}

/// The bounded accept loop of `listener.rs`, as axum's listener.
struct Gateway {
    incoming: ReceiverStream<io::Result<Connection>>,
    local: SocketAddr,
}

impl axum::serve::Listener for Gateway {
    type Io = Connection;
    type Addr = Option<SocketAddr>;

    async fn accept(&mut self) -> (Connection, Option<SocketAddr>) {
        loop {
            match self.incoming.next().await {
                Some(Ok(connection)) => {
                    let remote = connection.info().remote;
                    return (connection, remote);
                }
                Some(Err(_)) => continue,
                // The socket failed for good: nothing more to accept until the server stops.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Option<SocketAddr>> {
        Ok(Some(self.local))
    }
}

impl Connected<axum::serve::IncomingStream<'_, Gateway>> for ConnectionInfo {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Gateway>) -> ConnectionInfo {
        stream.io().info().clone()
    }
}
