//! Market data built from committed trades: the last price, rolling 24-hour figures and
//! OHLCV candles. `candles.rs` is pure (it is fed events and asked questions); the feed
//! that keeps it current from the pipeline's broadcast lives in the API, which owns the
//! async runtime.

mod candles;

pub use candles::{Candle, Ticker, TradeStats, CANDLES_PER_QUERY_MAX, MINUTE_MS};
