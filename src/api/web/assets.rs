//! The page and its files, compiled into the binary: plain HTML, CSS and JavaScript with
//! no build step, and TradingView's Lightweight Charts (Apache-2.0, its licence beside
//! it) for the candles.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The files under `/assets/`: name, content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("page/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("page/style.css"),
    ),
    (
        "lightweight-charts.js",
        "text/javascript; charset=utf-8",
        include_str!("page/lightweight-charts.js"),
    ),
    (
        "LICENSE-lightweight-charts.txt",
        "text/plain; charset=utf-8",
        include_str!("page/LICENSE-lightweight-charts.txt"),
    ),
];

/// `GET /`: the market page.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("page/index.html"),
    )
        .into_response()
}

/// `GET /assets/{file}`.
pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, text)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *text,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
