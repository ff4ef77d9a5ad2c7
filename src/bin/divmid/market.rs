//! `divmid market`: markets, books, tickers, candles, trades, and a watched book checked
//! message by message.

use divmid::api::proto;
use divmid::api::proto::market_data_client::MarketDataClient;
use divmid::client::book_copy::BookCopy;
use divmid::market_data::CHECKSUM_LEVELS;
use tonic::transport::Channel;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::*;
use crate::order::side_name;
use crate::{date, next, prepaid, show, status, Caller};

type Client = MarketDataClient<Channel>;

fn print_levels<'a>(side: &str, levels: impl IntoIterator<Item = &'a proto::PriceLevel>) {
    for level in levels {
        println!("  {side} {:>12} {:>14}", level.price, level.quantity);
    }
}

/// The prices of the levels a watch shows.
struct Shown {
    asks: Vec<String>,
    bids: Vec<String>,
}

fn shown_prices(copy: &BookCopy, depth: usize) -> Shown {
    let prices = |levels: &mut dyn Iterator<Item = &proto::PriceLevel>| {
        levels
            .take(depth)
            .map(|level| level.price.clone())
            .collect()
    };
    Shown {
        asks: prices(&mut copy.asks()),
        bids: prices(&mut copy.bids()),
    }
}

/// The changed levels at prices shown before or after the change.
fn visible<'a>(
    changes: &'a [proto::PriceLevel],
    before: &[String],
    after: &[String],
) -> Vec<&'a proto::PriceLevel> {
    changes
        .iter()
        .filter(|level| before.contains(&level.price) || after.contains(&level.price))
        .collect()
}

pub async fn market(client: Client, caller: &Caller, command: MarketCommand) -> Result<(), String> {
    match command {
        MarketCommand::IssuePrices => prepaid::issue_prices(client, caller).await,
        MarketCommand::List => list(client, caller).await,
        MarketCommand::Book { market, depth } => {
            let request = proto::GetOrderBookRequest { market, depth };
            let book = answer(client.clone().get_order_book(request).await)?;
            show(caller, &book, |book| {
                println!("{} at seq {}", book.market, book.seq);
                print_levels("ask", book.asks.iter().rev());
                print_levels("bid", &book.bids);
            });
            Ok(())
        }
        MarketCommand::Ticker { market } => {
            let request = proto::GetTickerRequest { market };
            let ticker = answer(client.clone().get_ticker(request).await)?;
            show(caller, &ticker, print_ticker);
            Ok(())
        }
        MarketCommand::Candles {
            market,
            interval,
            from_ms,
            to_ms,
        } => candles(client, caller, market, interval, (from_ms, to_ms)).await,
        MarketCommand::Trades {
            market,
            from_seq,
            limit,
        } => {
            trades(
                client,
                caller,
                proto::StreamTradesRequest { market, from_seq },
                limit,
            )
            .await
        }
        MarketCommand::Watch {
            market,
            depth,
            messages,
        } => watch(client, caller, market, depth, messages).await,
    }
}

/// The message of an answer, or the server's refusal as the error a person reads.
fn answer<M>(result: Result<tonic::Response<M>, tonic::Status>) -> Result<M, String> {
    result.map(tonic::Response::into_inner).map_err(status)
}

async fn list(mut client: Client, caller: &Caller) -> Result<(), String> {
    let response = answer(client.get_markets(proto::GetMarketsRequest {}).await)?;
    show(caller, &response, |response| {
        for market in &response.markets {
            println!(
                "{}: {} in {}, tick {}, lot {}, quantity {} to {}, price up to {}",
                market.name,
                market.base,
                market.quote,
                market.tick_size,
                market.lot_size,
                market.min_quantity,
                market.max_quantity,
                market.max_price
            );
        }
    });
    Ok(())
}

fn print_ticker(ticker: &proto::GetTickerResponse) {
    let or_none = |text: &str| {
        if text.is_empty() {
            "none".to_string()
        } else {
            text.to_string()
        }
    };
    println!(
        "{} at seq {}: last {}, bid {}, ask {}; 24 h volume {}, high {}, low {}",
        ticker.market,
        ticker.seq,
        or_none(&ticker.last_price),
        or_none(&ticker.best_bid),
        or_none(&ticker.best_ask),
        ticker.volume_24h,
        or_none(&ticker.high_24h),
        or_none(&ticker.low_24h)
    );
}

async fn candles(
    mut client: Client,
    caller: &Caller,
    market: String,
    interval: IntervalArgument,
    (from_ms, to_ms): (Option<u64>, Option<u64>),
) -> Result<(), String> {
    let to_ms = match to_ms {
        Some(to_ms) => to_ms,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the system clock is before 1970".to_string())?
            .as_millis()
            .try_into()
            .map_err(|_| "the system clock is too far ahead".to_string())?,
    };
    let from_ms =
        from_ms.unwrap_or_else(|| to_ms.saturating_sub(CANDLES_DEFAULT * interval.milliseconds()));
    let request = proto::GetCandlesRequest {
        market,
        interval: interval.proto() as i32,
        from_ms,
        to_ms,
    };
    let response = answer(client.get_candles(request).await)?;
    show(caller, &response, |response| {
        if response.candles.is_empty() {
            println!("no trades from {} to {}", date(from_ms), date(to_ms));
        }
        for candle in &response.candles {
            println!(
                "{}  open {} high {} low {} close {} volume {}",
                date(candle.open_time_ms),
                candle.open,
                candle.high,
                candle.low,
                candle.close,
                candle.volume
            );
        }
    });
    Ok(())
}

async fn trades(
    mut client: Client,
    caller: &Caller,
    request: proto::StreamTradesRequest,
    limit: Option<u64>,
) -> Result<(), String> {
    let mut batches = answer(client.stream_trades(request).await)?;
    // Each message holds a committed batch's trades; one line per trade, `limit` of them.
    let mut left = limit.unwrap_or(u64::MAX);
    while left > 0 {
        let batch = next(&mut batches).await?;
        for trade in batch
            .trades
            .iter()
            .take(usize::try_from(left).unwrap_or(usize::MAX))
        {
            left -= 1;
            show(caller, trade, |trade| {
                println!(
                    "trade {} {} {} @ {} taker {} seq {} at {}",
                    trade.trade_id,
                    trade.market,
                    trade.quantity,
                    trade.price,
                    side_name(trade.taker_side),
                    trade.seq,
                    date(trade.time_ms)
                )
            });
        }
    }
    Ok(())
}

/// Follows the book, every message checked against the copy kept here; prints the shown
/// levels' changes (or, with `--output json`, each message as received once checked).
async fn watch(
    mut client: Client,
    caller: &Caller,
    market: String,
    depth: u32,
    messages: Option<u64>,
) -> Result<(), String> {
    // The checksum covers the top levels of each side: a copy of fewer could not be
    // checked, so at least that many are followed and `depth` are shown.
    let followed = depth.max(CHECKSUM_LEVELS as u32);
    let shown = depth as usize;
    let request = proto::StreamOrderBookRequest {
        market,
        depth: followed,
    };
    let mut stream = answer(client.stream_order_book(request).await)?;
    let mut copy = BookCopy::default();
    for _ in 0..messages.unwrap_or(u64::MAX) {
        let message = next(&mut stream).await?;
        let shown_before = shown_prices(&copy, shown);
        copy.apply(&message)
            .map_err(|error| format!("{error}: resubscribe for a fresh snapshot"))?;
        show(caller, &message, |message| {
            print_watched(&copy, message, shown, &shown_before)
        });
    }
    Ok(())
}

/// What one book message changed among the levels shown, and the best prices.
fn print_watched(copy: &BookCopy, message: &proto::BookUpdate, shown: usize, before: &Shown) {
    match &message.update {
        Some(proto::book_update::Update::Snapshot(snapshot)) => {
            println!("snapshot at seq {}", snapshot.book_seq);
            let asks: Vec<_> = copy.asks().take(shown).collect();
            print_levels("ask", asks.into_iter().rev());
            print_levels("bid", copy.bids().take(shown));
        }
        Some(proto::book_update::Update::Changes(changes)) => {
            // Only the changes to levels shown before or after this message.
            let after = shown_prices(copy, shown);
            let asks = visible(&changes.asks, &before.asks, &after.asks);
            let bids = visible(&changes.bids, &before.bids, &after.bids);
            if asks.is_empty() && bids.is_empty() {
                return;
            }
            println!("changes at seq {}", changes.book_seq);
            print_levels("ask", asks);
            print_levels("bid", bids);
        }
        // Idle: nothing changed, nothing to show.
        _ => return,
    }
    let best = |level: Option<&proto::PriceLevel>| {
        level.map_or("none".to_string(), |level| {
            format!("{} x {}", level.price, level.quantity)
        })
    };
    println!(
        "  best bid {} | best ask {} (checksum {} verified)",
        best(copy.bids().next()),
        best(copy.asks().next()),
        message.checksum
    );
}
