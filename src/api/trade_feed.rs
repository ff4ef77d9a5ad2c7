//! The shared side of the trade feed: each committed batch's trades encoded once, by
//! market, and how far the feed has published them. The feed (`trade_stream.rs`) fills
//! it; the trade streams, the web gateway and the NATS publisher read it.
//!
//! What this is not: the feed itself nor a subscriber; it holds the channels they share.

use std::sync::Arc;

use prost::bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::types::MarketId;

/// One committed batch's trades, encoded, by market.
#[derive(Debug)]
pub struct EncodedTrades {
    /// The batch's last sequence number.
    pub last_seq: u64,
    /// Each market's trades as `TradeBatch` encodings, in order; markets without trades
    /// are left out.
    pub markets: Vec<(MarketId, Vec<Piece>)>,
}

/// Trades of one market encoded as a `TradeBatch`, and the last one's sequence number.
#[derive(Clone, Debug)]
pub struct Piece {
    /// The sequence number of the first trade in it.
    pub first_seq: u64,
    /// The sequence number of the last trade in it.
    pub last_seq: u64,
    /// The encoding.
    pub bytes: Bytes,
}

/// The shared side of the trade feed: the batches, and how far they go.
pub struct TradeFeed {
    /// Encoded batches, to every subscriber.
    pub batches: broadcast::Sender<Arc<EncodedTrades>>,
    /// The last sequence number published (or passed: batches without trades move it
    /// too), set before the batch is sent.
    pub seq: watch::Sender<u64>,
    /// The same mark, set after the batch is sent: a subscriber that has read it and then
    /// drained its receiver holds every batch up to it (the web gateway orders trades and
    /// book changes by it).
    pub sent: watch::Sender<u64>,
}

impl TradeFeed {
    /// A feed that has published everything up to `seq`, keeping `capacity` batches for
    /// subscribers that are behind.
    pub fn new(seq: u64, capacity: usize) -> TradeFeed {
        TradeFeed {
            batches: broadcast::channel(capacity).0,
            seq: watch::Sender::new(seq),
            sent: watch::Sender::new(seq),
        }
    }
}
