//! Market data built from committed events: a replica of every book with its top-of-book
//! checksum (`book.rs`), and from trades the last price, rolling 24-hour figures and OHLCV
//! candles (`candles.rs`). Both are pure (it is fed events and asked questions); the feed
//! that keeps it current from the pipeline's broadcast lives in the API, which owns the
//! async runtime.

mod book;
mod candles;

pub use book::{checksum, checksum_of_written, BookReplica, BookView, CHECKSUM_LEVELS};
pub use candles::{Candle, Ticker, TradeStats, CANDLES_PER_QUERY_MAX, RECENT_TRADES_MAX};
