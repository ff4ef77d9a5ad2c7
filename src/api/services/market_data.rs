//! `MarketData`: markets, books, trades, tickers, candles and the issue prices, for anyone.

use std::sync::Arc;

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::Api;
use crate::api::book_stream::{STREAM_DEPTH_DEFAULT, STREAM_DEPTH_MAX};
use crate::api::context::{issue_price, micros_to_units, required};
use crate::api::proto;
use crate::api::status;
use crate::market_data::CANDLES_PER_QUERY_MAX;
use crate::pipeline::{Answer, Query};
use crate::types::{Tier, DAY_MS, HOUR_MS, MINUTE_MS};

/// Levels per side `GetOrderBook` answers with when the request names no depth.
const BOOK_DEPTH_DEFAULT: usize = 50;

/// Levels per side `GetOrderBook` answers with, at most.
const BOOK_DEPTH_MAX: usize = 1_000;

#[tonic::async_trait]
impl proto::market_data_server::MarketData for Api {
    async fn get_issue_prices(
        &self,
        _request: Request<proto::GetIssuePricesRequest>,
    ) -> Result<Response<proto::GetIssuePricesResponse>, Status> {
        let Answer::IssuePrices { prices, changes } =
            self.context.query(Query::IssuePrices).await?
        else {
            return Err(status::unexpected_answer());
        };
        let tier_to_wire = |tier: Tier| match tier {
            Tier::Public => proto::Tier::Public as i32,
            Tier::Subscriber => proto::Tier::Subscriber as i32,
        };
        Ok(Response::new(proto::GetIssuePricesResponse {
            prices: Tier::ALL
                .into_iter()
                .filter_map(|tier| {
                    Some(proto::IssuePriceNow {
                        tier: tier_to_wire(tier),
                        price: issue_price(prices[tier.index()]?),
                    })
                })
                .collect(),
            changes: changes
                .into_iter()
                .map(|change| proto::IssuePriceChange {
                    seq: change.seq,
                    time_ms: change.time_ms,
                    tier: tier_to_wire(change.tier),
                    price: issue_price(change.price),
                })
                .collect(),
        }))
    }

    async fn get_markets(
        &self,
        _request: Request<proto::GetMarketsRequest>,
    ) -> Result<Response<proto::GetMarketsResponse>, Status> {
        let markets = (0..self.context.config.engine.markets.len())
            .map(|index| {
                let market = self.context.market_at(crate::types::MarketId(index as u16));
                let spec = market.spec;
                proto::Market {
                    name: spec.name.clone(),
                    base: spec.base.symbol().to_string(),
                    quote: spec.quote.symbol().to_string(),
                    tick_size: market.price(crate::types::Price(1)),
                    lot_size: market.quantity(crate::types::Quantity(1)),
                    min_quantity: market.quantity(crate::types::Quantity(spec.quantity_min_lots)),
                    max_quantity: market.quantity(crate::types::Quantity(spec.quantity_max_lots)),
                    max_price: market.price(crate::types::Price(spec.price_max_ticks)),
                    max_notional: micros_to_units(spec.notional_max_micros),
                }
            })
            .collect();
        Ok(Response::new(proto::GetMarketsResponse { markets }))
    }

    async fn get_order_book(
        &self,
        request: Request<proto::GetOrderBookRequest>,
    ) -> Result<Response<proto::GetOrderBookResponse>, Status> {
        let message = request.into_inner();
        let market = self.context.market("market", &message.market)?;
        let depth = match message.depth as usize {
            0 => BOOK_DEPTH_DEFAULT,
            depth @ 1..=BOOK_DEPTH_MAX => depth,
            _ => {
                return Err(status::invalid(
                    "depth",
                    format!("at most {BOOK_DEPTH_MAX}"),
                ))
            }
        };
        let Answer::Book { bids, asks, seq } = self
            .context
            .query(Query::Book {
                market: market.id,
                depth,
            })
            .await?
        else {
            return Err(status::unexpected_answer());
        };
        let level = |level: &crate::engine::Level| proto::PriceLevel {
            price: market.price(level.price),
            quantity: market.quantity(level.quantity),
        };
        Ok(Response::new(proto::GetOrderBookResponse {
            market: market.spec.name.clone(),
            bids: bids.iter().map(level).collect(),
            asks: asks.iter().map(level).collect(),
            seq,
        }))
    }

    type StreamOrderBookStream = BoxStream<proto::BookUpdate>;

    async fn stream_order_book(
        &self,
        request: Request<proto::StreamOrderBookRequest>,
    ) -> Result<Response<Self::StreamOrderBookStream>, Status> {
        let message = request.into_inner();
        let market = self.context.market("market", &message.market)?;
        let depth = match message.depth as usize {
            0 => STREAM_DEPTH_DEFAULT,
            depth @ 1..=STREAM_DEPTH_MAX => depth,
            _ => {
                return Err(status::invalid(
                    "depth",
                    format!("at most {STREAM_DEPTH_MAX}"),
                ))
            }
        };
        let stream = crate::api::book_stream::start(Arc::clone(&self.context), market.id, depth)?;
        Ok(Response::new(stream))
    }

    type StreamTradesStream = BoxStream<proto::TradeBatch>;

    async fn stream_trades(
        &self,
        request: Request<proto::StreamTradesRequest>,
    ) -> Result<Response<Self::StreamTradesStream>, Status> {
        let message = request.into_inner();
        let market = self.context.market("market", &message.market)?.id;
        let stream =
            crate::api::trade_stream::start(Arc::clone(&self.context), market, message.from_seq)?;
        Ok(Response::new(stream))
    }

    async fn get_ticker(
        &self,
        request: Request<proto::GetTickerRequest>,
    ) -> Result<Response<proto::GetTickerResponse>, Status> {
        let message = request.into_inner();
        let market = self.context.market("market", &message.market)?;
        self.market_data_ready()?;
        let Answer::Book { bids, asks, seq } = self
            .context
            .query(Query::Book {
                market: market.id,
                depth: 1,
            })
            .await?
        else {
            return Err(status::unexpected_answer());
        };
        let ticker = self
            .context
            .market_data
            .stats
            .read()
            .map_err(|_| status::market_data_unavailable())?
            .ticker(market.id, crate::api::context::now_ms());
        let price = |price: Option<crate::types::Price>| {
            price.map(|price| market.price(price)).unwrap_or_default()
        };
        Ok(Response::new(proto::GetTickerResponse {
            market: market.spec.name.clone(),
            last_price: price(ticker.last_price),
            best_bid: price(bids.first().map(|level| level.price)),
            best_ask: price(asks.first().map(|level| level.price)),
            volume_24h: market.quantity(crate::types::Quantity(ticker.volume_24h)),
            high_24h: price(ticker.high_24h),
            low_24h: price(ticker.low_24h),
            seq,
        }))
    }

    async fn get_candles(
        &self,
        request: Request<proto::GetCandlesRequest>,
    ) -> Result<Response<proto::GetCandlesResponse>, Status> {
        let message = request.into_inner();
        let market = self.context.market("market", &message.market)?;
        let interval_ms =
            required(
                "interval",
                message.interval,
                |value| match proto::CandleInterval::try_from(value).ok()? {
                    proto::CandleInterval::CandleInterval1m => Some(MINUTE_MS),
                    proto::CandleInterval::CandleInterval5m => Some(5 * MINUTE_MS),
                    proto::CandleInterval::CandleInterval1h => Some(HOUR_MS),
                    proto::CandleInterval::CandleInterval1d => Some(DAY_MS),
                    proto::CandleInterval::Unspecified => None,
                },
            )?;
        if message.to_ms <= message.from_ms {
            return Err(status::invalid("to_ms", "must be after from_ms"));
        }
        if (message.to_ms - message.from_ms) / interval_ms > CANDLES_PER_QUERY_MAX as u64 {
            return Err(status::invalid(
                "to_ms",
                format!("the range spans more than {CANDLES_PER_QUERY_MAX} candles"),
            ));
        }
        self.market_data_ready()?;
        let candles = self
            .context
            .market_data
            .stats
            .read()
            .map_err(|_| status::market_data_unavailable())?
            .candles(market.id, interval_ms, message.from_ms, message.to_ms);
        Ok(Response::new(proto::GetCandlesResponse {
            candles: candles
                .iter()
                .map(|candle| proto::Candle {
                    open_time_ms: candle.open_time_ms,
                    open: market.price(candle.open),
                    high: market.price(candle.high),
                    low: market.price(candle.low),
                    close: market.price(candle.close),
                    volume: market.quantity(crate::types::Quantity(candle.volume)),
                })
                .collect(),
        }))
    }
}
