//! The gRPC API and the web gateway beside it: the only module that knows tonic, axum and
//! the proto.
//!
//! Handlers authenticate the caller, turn wire values into domain values (decimal strings
//! into integer units, `INVALID_ARGUMENT` naming the field for anything malformed), submit
//! commands and queries to the pipeline, and turn outcomes into responses; `status.rs`
//! maps every refusal to a gRPC status in one place.

pub mod auth;
pub mod backup;
pub mod book_stream;
pub mod book_update;
pub mod book_view;
pub mod codec;
pub mod context;
pub mod convert;
pub mod deadline;
pub mod decimal;
pub mod feed;
pub mod funding;
pub mod health;
pub mod history;
pub mod idle;
pub mod journal_pages;
pub mod listener;
pub mod market_view;
pub mod metrics;
pub mod nats;
pub mod order_encoding;
pub mod proto;
pub mod server;
pub mod services;
pub mod session;
pub mod session_response;
pub mod status;
pub mod streams;
pub mod tls;
pub mod trade_batch;
pub mod trade_feed;
pub mod trade_stream;
pub mod updates;
pub mod usage;
pub mod web;
