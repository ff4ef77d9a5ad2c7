//! The divmid exchange: the issuer ledger and the order book of the platform's prepaid
//! unit.
//!
//! The crate in reading order:
//!
//! - [`types`]: ids, assets, sides, order options, and the integer money types (micro-unit
//!   amounts, prices in ticks, quantities in lots).
//! - [`error`]: the typed rejects a command can get, each naming its field.
//! - [`config`]: markets and limits, validated before anything starts.
//! - [`ledger`]: accounts, balances and double-entry movements; pure.
//! - [`command`] and [`event`]: the sequencer's language in and out, shared by everything
//!   around it so that nothing reaches into the engine.
//! - [`usage`]: metering usage per holder, service and hour, and the top-ups, built from
//!   committed charges; pure and bounded.
//! - [`market_data`]: candles and the ticker, built from committed trades.
//! - [`metrics`]: histograms of atomics for the Prometheus endpoint, which the commit path
//!   adds to without waiting.
//! - [`engine`]: order books and the sequencer that applies commands in order; pure and
//!   deterministic.
//! - [`pipeline`]: the sequencer, store, replica and snapshot threads and the bounded
//!   queues between them: outcomes are released and events broadcast only once committed.
//!   It owns the journal's contract (its record, and the traits the storage implements)
//!   and names no storage.
//! - [`store`]: the journal and snapshots in sled and files, the account index, and
//!   recovery; it implements the pipeline's traits, and is the only module that knows sled.
//! - [`api`]: the gRPC services and the web gateway; the only module that knows tonic,
//!   axum and the proto.
//! - [`client`]: what a client keeps (a market's book from its stream, checked as the
//!   contract says), for the command-line client and the tests.
//!
//! A module uses only modules listed before it (`tests/tidy.rs` keeps it so).

pub mod api;
pub mod client;
pub mod command;
pub mod config;
pub mod engine;
pub mod error;
pub mod event;
pub mod ledger;
pub mod market_data;
pub mod metrics;
pub mod pipeline;
pub mod store;
pub mod types;
pub mod usage;
