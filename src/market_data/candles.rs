//! One-minute candles per market, from which every interval and the rolling 24-hour
//! ticker are aggregated, and each market's latest trades. Memory is bounded: minutes
//! older than the retention are dropped, and trades beyond the last
//! [`RECENT_TRADES_MAX`].

use std::collections::{BTreeMap, VecDeque};

use crate::event::{Event, EventKind};
use crate::types::{MarketId, Price, DAY_MS, MINUTE_MS};

/// Candles one query returns, at most.
pub const CANDLES_PER_QUERY_MAX: usize = 1_000;
/// Trades kept per market for the latest trades.
pub const RECENT_TRADES_MAX: usize = 1_000;

/// Open, high, low, close and volume (in lots) over an interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candle {
    /// The interval's start, in milliseconds since the Unix epoch.
    pub open_time_ms: u64,
    /// The first trade's price.
    pub open: Price,
    /// The highest trade price.
    pub high: Price,
    /// The lowest trade price.
    pub low: Price,
    /// The last trade's price.
    pub close: Price,
    /// Lots traded.
    pub volume: u64,
}

impl Candle {
    fn merge(&mut self, later: &Candle) {
        self.high = self.high.max(later.high);
        self.low = self.low.min(later.low);
        self.close = later.close;
        self.volume += later.volume;
    }
}

/// The ticker's trade figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ticker {
    /// The last trade's price.
    pub last_price: Option<Price>,
    /// Lots traded in the last 24 hours (to the minute).
    pub volume_24h: u64,
    /// The highest trade price of the last 24 hours.
    pub high_24h: Option<Price>,
    /// The lowest trade price of the last 24 hours.
    pub low_24h: Option<Price>,
}

#[derive(Clone, Debug, Default)]
struct MarketTrades {
    minutes: BTreeMap<u64, Candle>,
    last_price: Option<Price>,
    /// The latest fills, oldest first, at most [`RECENT_TRADES_MAX`].
    recent: VecDeque<Event>,
}

/// Trade statistics of every market.
#[derive(Clone, Debug)]
pub struct TradeStats {
    markets: Vec<MarketTrades>,
    /// How long one-minute candles are kept, in milliseconds.
    retention_ms: u64,
    /// The sequence number of the last event applied.
    applied_seq: u64,
}

impl TradeStats {
    /// Statistics for `markets` markets, keeping candles for `retention_days`.
    pub fn new(markets: usize, retention_days: u64) -> TradeStats {
        assert!(retention_days > 0, "candles are kept for a day at least");
        TradeStats {
            markets: vec![MarketTrades::default(); markets],
            retention_ms: retention_days * DAY_MS,
            applied_seq: 0,
        }
    }

    /// The sequence number of the last event applied.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// Counts every event up to `seq` as applied (the statistics start there).
    pub fn skip_to(&mut self, seq: u64) {
        self.applied_seq = self.applied_seq.max(seq);
    }

    /// Takes in a committed event; events at or before the last applied one are ignored,
    /// so a replay that overlaps the live feed counts nothing twice.
    pub fn apply(&mut self, event: &Event) {
        if event.seq <= self.applied_seq {
            return;
        }
        self.applied_seq = event.seq;
        let EventKind::Fill(fill) = &event.kind else {
            return;
        };
        let Some(market) = self.markets.get_mut(usize::from(fill.market.0)) else {
            return;
        };
        let minute = event.timestamp_ms - event.timestamp_ms % MINUTE_MS;
        let trade = Candle {
            open_time_ms: minute,
            open: fill.price,
            high: fill.price,
            low: fill.price,
            close: fill.price,
            volume: fill.quantity.0,
        };
        market
            .minutes
            .entry(minute)
            .and_modify(|candle| candle.merge(&trade))
            .or_insert(trade);
        market.last_price = Some(fill.price);
        if market.recent.len() == RECENT_TRADES_MAX {
            market.recent.pop_front();
        }
        market.recent.push_back(event.clone());
        let oldest_kept = minute.saturating_sub(self.retention_ms);
        while market
            .minutes
            .first_key_value()
            .is_some_and(|(start, _)| *start < oldest_kept)
        {
            market.minutes.pop_first();
        }
    }

    /// The market's last `limit` trades (fill events), oldest first; at most
    /// [`RECENT_TRADES_MAX`].
    pub fn recent_trades(&self, market: MarketId, limit: usize) -> Vec<Event> {
        let Some(market) = self.markets.get(usize::from(market.0)) else {
            return Vec::new();
        };
        let skipped = market.recent.len().saturating_sub(limit);
        market.recent.iter().skip(skipped).cloned().collect()
    }

    /// Candles of `interval_ms` (a multiple of a minute) starting in `[from_ms, to_ms)`,
    /// oldest first; intervals without trades are left out.
    pub fn candles(
        &self,
        market: MarketId,
        interval_ms: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> Vec<Candle> {
        let Some(trades) = self.markets.get(usize::from(market.0)) else {
            return Vec::new();
        };
        let interval_ms = interval_ms.max(MINUTE_MS);
        let first = from_ms - from_ms % interval_ms;
        let mut candles: Vec<Candle> = Vec::new();
        for (start, minute) in trades.minutes.range(first..to_ms) {
            let bucket = start - start % interval_ms;
            if bucket < from_ms - from_ms % interval_ms {
                continue;
            }
            match candles.last_mut() {
                Some(candle) if candle.open_time_ms == bucket => candle.merge(minute),
                _ => {
                    if candles.len() == CANDLES_PER_QUERY_MAX {
                        break;
                    }
                    candles.push(Candle {
                        open_time_ms: bucket,
                        ..*minute
                    });
                }
            }
        }
        candles
    }

    /// The market's last price and its figures over the 24 hours before `now_ms`.
    pub fn ticker(&self, market: MarketId, now_ms: u64) -> Ticker {
        let Some(trades) = self.markets.get(usize::from(market.0)) else {
            return Ticker::default();
        };
        let since = now_ms.saturating_sub(DAY_MS);
        let mut ticker = Ticker {
            last_price: trades.last_price,
            ..Ticker::default()
        };
        for minute in trades.minutes.range(since..).map(|(_, candle)| candle) {
            ticker.volume_24h += minute.volume;
            ticker.high_24h = Some(
                ticker
                    .high_24h
                    .map_or(minute.high, |high| high.max(minute.high)),
            );
            ticker.low_24h = Some(ticker.low_24h.map_or(minute.low, |low| low.min(minute.low)));
        }
        ticker
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Fill;
    use crate::types::{AccountId, Amount, OrderId, Quantity, Side, TradeId};

    fn trade(seq: u64, time_ms: u64, price: u64, lots: u64) -> Event {
        Event {
            seq,
            timestamp_ms: time_ms,
            kind: EventKind::Fill(Fill {
                trade_id: TradeId(seq),
                market: MarketId(0),
                price: Price(price),
                quantity: Quantity(lots),
                taker_side: Side::Buy,
                maker_order: OrderId(1),
                maker_account: AccountId(3),
                taker_order: OrderId(2),
                taker_account: AccountId(4),
                taker_released: Amount::ZERO,
                taker_paid_from_available: false,
                maker_filled: Quantity(lots),
                taker_filled: Quantity(lots),
                maker_after: Default::default(),
                taker_after: Default::default(),
            }),
        }
    }

    #[test]
    fn the_latest_trades_are_the_last_applied_and_bounded() {
        let mut stats = TradeStats::new(1, 7);
        let total = RECENT_TRADES_MAX as u64 + 5;
        for seq in 1..=total {
            stats.apply(&trade(seq, 1_000 * seq, 100, 1));
        }
        stats.apply(&trade(3, 3_000, 100, 1)); // replayed: ignored
        let seqs = |events: Vec<Event>| events.iter().map(|event| event.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(stats.recent_trades(MarketId(0), 3)),
            [total - 2, total - 1, total]
        );
        let all = stats.recent_trades(MarketId(0), usize::MAX);
        assert_eq!(all.len(), RECENT_TRADES_MAX);
        assert_eq!(all[0].seq, 6);
        assert!(stats.recent_trades(MarketId(7), 10).is_empty());
    }

    #[test]
    fn candles_aggregate_minutes_into_intervals() {
        let mut stats = TradeStats::new(1, 7);
        let base = 1_700_000_000_000 - 1_700_000_000_000 % (5 * MINUTE_MS);
        stats.apply(&trade(1, base + 1_000, 100, 2));
        stats.apply(&trade(2, base + MINUTE_MS + 5, 120, 1));
        stats.apply(&trade(3, base + 2 * MINUTE_MS, 90, 4));
        stats.apply(&trade(4, base + 5 * MINUTE_MS, 95, 1));
        stats.apply(&trade(2, base + MINUTE_MS, 999, 9)); // replayed: ignored
        let minutes = stats.candles(MarketId(0), MINUTE_MS, base, base + 10 * MINUTE_MS);
        assert_eq!(minutes.len(), 4);
        let five = stats.candles(MarketId(0), 5 * MINUTE_MS, base, base + 10 * MINUTE_MS);
        assert_eq!(
            five[0],
            Candle {
                open_time_ms: base,
                open: Price(100),
                high: Price(120),
                low: Price(90),
                close: Price(90),
                volume: 7,
            }
        );
        assert_eq!(
            (five[1].open_time_ms, five[1].volume),
            (base + 5 * MINUTE_MS, 1)
        );
        assert!(stats
            .candles(
                MarketId(0),
                MINUTE_MS,
                base + 10 * MINUTE_MS,
                base + 20 * MINUTE_MS
            )
            .is_empty());
    }

    #[test]
    fn the_ticker_covers_the_last_day_and_old_minutes_are_dropped() {
        let mut stats = TradeStats::new(1, 1);
        let now = 10 * DAY_MS;
        stats.apply(&trade(1, now - 2 * DAY_MS, 50, 5));
        stats.apply(&trade(2, now - DAY_MS / 2, 70, 3));
        stats.apply(&trade(3, now - 1_000, 60, 1));
        let ticker = stats.ticker(MarketId(0), now);
        assert_eq!(ticker.last_price, Some(Price(60)));
        assert_eq!(ticker.volume_24h, 4);
        assert_eq!(
            (ticker.high_24h, ticker.low_24h),
            (Some(Price(70)), Some(Price(60)))
        );
        // The two-day-old minute is past the one-day retention.
        assert!(stats.candles(MarketId(0), MINUTE_MS, 0, now).len() == 2);
    }
}
