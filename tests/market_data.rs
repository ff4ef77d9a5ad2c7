//! The market-data streams' promises over real gRPC: the switch from stored to live
//! trades under concurrent trading has no gap and no duplicate; a subscriber too slow for
//! the exchange gets merged messages, then is ended with the sequence number to resume
//! from and resumes without loss; a restart in between resumes from `from_seq`; the book stream stays exact under
//! two concurrent order sessions. (The book feed's catch-up from the journal after it
//! falls behind is tested in `pipeline.rs`.)

mod common;

use std::time::Duration;

use common::{book_stream, funded_traders, limit, place_all, top_of_book, trade, Server};
use divmid::api::proto::{self, market_data_client::MarketDataClient};
use divmid::client::book_copy::BookCopy;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

/// Long enough for any of these flows on a slow machine; only a hang reaches it.
const PATIENCE: Duration = Duration::from_secs(60);

/// What a subscriber keeps of a trade: its sequence number and id.
type Seen = (u64, String);

/// A trade stream, read a trade at a time: its messages are batches.
struct Trades {
    stream: Streaming<proto::TradeBatch>,
    batch: std::vec::IntoIter<proto::Trade>,
    /// Messages received.
    messages: usize,
}

/// A trade stream: live only without `from_seq`.
async fn subscribe(channel: &Channel, from_seq: Option<u64>) -> Trades {
    let stream = MarketDataClient::new(channel.clone())
        .stream_trades(proto::StreamTradesRequest {
            market: "DVM-USD".into(),
            from_seq,
        })
        .await
        .expect("a trade stream")
        .into_inner();
    Trades {
        stream,
        batch: Vec::new().into_iter(),
        messages: 0,
    }
}

/// The stream's next trade, or how it ended.
async fn next(trades: &mut Trades) -> Result<proto::Trade, Status> {
    loop {
        if let Some(trade) = trades.batch.next() {
            return Ok(trade);
        }
        let batch = tokio::time::timeout(PATIENCE, trades.stream.message())
            .await
            .expect("the stream answers")
            .and_then(|batch| batch.ok_or_else(|| Status::ok("the stream ended")))?;
        assert!(
            !batch.trades.is_empty(),
            "a message holds at least one trade"
        );
        trades.messages += 1;
        trades.batch = batch.trades.into_iter();
    }
}

/// Reads `count` trades, requiring each to arrive.
async fn read(stream: &mut Trades, count: usize) -> Vec<Seen> {
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        let trade = next(stream).await.unwrap_or_else(|status| {
            panic!(
                "trade {} of {count}: the stream ended: {status}",
                seen.len()
            )
        });
        seen.push((trade.seq, trade.trade_id));
    }
    seen
}

/// Every trade so far, replayed out of the store from sequence number 0.
async fn all_trades(channel: &Channel, count: usize) -> Vec<Seen> {
    let trades = read(&mut subscribe(channel, Some(0)).await, count).await;
    assert!(
        trades.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "in sequence order, each once"
    );
    trades
}

/// The `from_seq` a status tells the subscriber to resume from.
fn resume_seq(status: &Status) -> u64 {
    let (_, number) = status
        .message()
        .rsplit_once("from_seq = ")
        .unwrap_or_else(|| panic!("no from_seq in {status}"));
    let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a sequence number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_from_stored_to_live_under_concurrent_trading_has_no_gap_or_duplicate() {
    const TRADES: usize = 2_000;
    const EVERY: usize = 250;
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "1000", &["mia", "noa"], "200", "100").await;
    let (mut taker, mut maker) = (traders.pop().expect("noa"), traders.pop().expect("mia"));
    // Live from before the first trade: sees every one as it commits.
    let mut watcher = subscribe(&channel, None).await;
    let trading = tokio::spawn(async move { trade(&mut maker, &mut taker, TRADES).await });
    // While trades commit, new subscribers replay the store and switch to live: half from
    // the start, half from the trade the watcher has just seen.
    let mut watched = Vec::with_capacity(TRADES);
    let mut subscribers = Vec::new();
    while watched.len() < TRADES {
        let trade = next(&mut watcher).await.expect("the watcher keeps up");
        watched.push((trade.seq, trade.trade_id));
        if watched.len() % EVERY == 0 && watched.len() < TRADES {
            for (skip, from_seq) in [(0, 0), (watched.len(), trade.seq)] {
                let mut stream = subscribe(&channel, Some(from_seq)).await;
                subscribers.push((
                    skip,
                    from_seq,
                    tokio::spawn(async move { read(&mut stream, TRADES - skip).await }),
                ));
            }
        }
    }
    trading.await.expect("the trading task");
    assert_eq!(subscribers.len(), 2 * (TRADES / EVERY - 1));
    let stored = all_trades(&channel, TRADES).await;
    assert_eq!(watched, stored, "the live stream equals the stored trades");
    for (skip, from_seq, subscriber) in subscribers {
        let seen = subscriber.await.expect("a subscriber");
        assert_eq!(
            seen,
            stored[skip..],
            "the subscriber from seq {from_seq} sees every later trade once, in order"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_cut_off_and_resumes_without_loss() {
    const TRADES: usize = 5_000;
    let directory = tempfile::tempdir().expect("a temporary directory");
    // Small buffers, so that a subscriber that does not read falls behind soon.
    let server = Server::start_with(directory.path(), |config| {
        config.server.stream_buffer_messages = 8;
        config.pipeline.broadcast_capacity = 8;
        config.pipeline.batch_requests_max = 4;
    })
    .await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "1000", &["ola", "pia"], "200", "100").await;
    let (mut taker, mut maker) = (traders.pop().expect("pia"), traders.pop().expect("ola"));
    // The slow subscriber's own connection takes at most 64 KiB in flight.
    let slow_channel = Endpoint::from_shared(format!("http://{}", server.address))
        .expect("an address")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connects");
    let mut slow = subscribe(&slow_channel, None).await;
    let mut prompt = subscribe(&channel, None).await;
    // It reads nothing while all the trades commit, in many batches (a session submits
    // what it has received as one); another subscriber reads them as they come.
    let reading = tokio::spawn(async move {
        let seen = read(&mut prompt, TRADES).await;
        (seen, prompt.messages)
    });
    for _ in 0..TRADES / 100 {
        trade(&mut maker, &mut taker, 100).await;
    }
    let (promptly, prompt_messages) = reading.await.expect("the prompt subscriber read");
    let mut seen: Vec<Seen> = Vec::new();
    let cut_off = loop {
        match next(&mut slow).await {
            Ok(trade) => seen.push((trade.seq, trade.trade_id)),
            Err(status) => break status,
        }
    };
    assert_eq!(cut_off.code(), Code::Aborted, "{cut_off}");
    // Behind, it got what it missed merged into fewer, larger messages than a subscriber
    // that kept up (one message per committed batch).
    assert!(
        seen.len() * prompt_messages > promptly.len() * slow.messages,
        "{} trades in {} messages, against {} in {}",
        seen.len(),
        slow.messages,
        promptly.len(),
        prompt_messages
    );
    assert!(
        seen.len() < TRADES,
        "cut off before the end, after {} trades",
        seen.len()
    );
    let from_seq = resume_seq(&cut_off);
    assert!(
        seen.last().is_none_or(|(seq, _)| *seq <= from_seq),
        "resumes after what it was sent"
    );
    let mut resumed = subscribe(&channel, Some(from_seq)).await;
    seen.extend(read(&mut resumed, TRADES - seen.len()).await);
    assert_eq!(
        seen,
        all_trades(&channel, TRADES).await,
        "before and after the cut, every trade once"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_between_resumes_from_from_seq() {
    const BEFORE: usize = 300;
    const AFTER: usize = 200;
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "1000", &["quin", "ray"], "200", "100").await;
    let (taker, maker) = (traders.pop().expect("ray"), traders.pop().expect("quin"));
    let mut stream = subscribe(&channel, None).await;
    trade(&mut maker.on(&channel), &mut taker.on(&channel), BEFORE).await;
    let mut seen = read(&mut stream, BEFORE / 2).await;
    // The server stops while the subscriber is half way: the stream ends UNAVAILABLE.
    server.stop().await;
    let stopped = loop {
        match next(&mut stream).await {
            Ok(trade) => seen.push((trade.seq, trade.trade_id)),
            Err(status) => break status,
        }
    };
    assert_eq!(stopped.code(), Code::Unavailable, "{stopped}");
    // The subscriber resumes after the last trade it received, on the restarted server,
    // and goes on live while trading resumes.
    let last_seq = seen.last().map_or(0, |(seq, _)| *seq);
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut resumed = subscribe(&channel, Some(last_seq)).await;
    trade(&mut maker.on(&channel), &mut taker.on(&channel), AFTER).await;
    seen.extend(read(&mut resumed, BEFORE + AFTER - seen.len()).await);
    assert_eq!(seen, all_trades(&channel, BEFORE + AFTER).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_book_stream_equals_the_book_after_concurrent_order_sessions() {
    const ORDERS: u64 = 1_500;
    let directory = tempfile::tempdir().expect("a temporary directory");
    // Room for only two committed batches in the broadcast: a feed that falls behind must
    // catch up without changing what subscribers see.
    let server = Server::start_with(directory.path(), |config| {
        config.pipeline.broadcast_capacity = 2;
        config.pipeline.batch_requests_max = 1;
    })
    .await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "1000", &["sam", "tia"], "300", "150").await;
    let (mut buyer, mut seller) = (traders.pop().expect("tia"), traders.pop().expect("sam"));
    let mut stream = book_stream(&channel).await;
    // Two order sessions at once over 50 prices each, overlapping, so many orders cross.
    let order = |side, base: u64, index: u64| {
        let price = base + index * 7 % 50;
        limit(
            side,
            &format!("{}.{:04}", price / 10_000, price % 10_000),
            &common::lots(1 + (index % 5) as usize),
        )
    };
    let sells = (0..ORDERS).map(|index| order(proto::Side::Sell, 9_980, index));
    let buys = (0..ORDERS).map(|index| order(proto::Side::Buy, 9_970, index));
    tokio::join!(
        place_all(&mut seller, sells.collect()),
        place_all(&mut buyer, buys.collect())
    );
    let book = top_of_book(&channel).await;
    let mut copy = BookCopy::default();
    while copy.book_seq < book.seq {
        let message = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .expect("the stream answers")
            .expect("a message")
            .expect("the stream stays open");
        copy.apply(&message)
            .expect("each message follows and its checksum matches");
    }
    assert_eq!(copy.book_seq, book.seq);
    assert!(
        copy.equals(&book),
        "the streamed copy {copy:?} equals the book {book:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_from_seq_the_exchange_cannot_serve_is_refused_naming_it() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    // Snapshots every 100 events, keeping only 50 events of journal before the newest.
    let server = Server::start_with(directory.path(), |config| {
        config.pipeline.snapshot_every_events = 100;
        config.pipeline.journal_retention_events = 50;
    })
    .await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "1000", &["uma", "vic"], "200", "100").await;
    let (mut taker, mut maker) = (traders.pop().expect("vic"), traders.pop().expect("uma"));
    trade(&mut maker, &mut taker, 300).await;
    // Answered after everything before it is committed, and its snapshots written.
    taker
        .wallet
        .get_balances(proto::GetBalancesRequest {})
        .await
        .expect("balances");
    let mut market = MarketDataClient::new(channel.clone());
    // Beyond what is committed: refused at once.
    let beyond = market
        .stream_trades(proto::StreamTradesRequest {
            market: "DVM-USD".into(),
            from_seq: Some(1_000_000),
        })
        .await
        .expect_err("beyond the last committed sequence number");
    assert_eq!(beyond.code(), Code::InvalidArgument, "{beyond}");
    assert!(beyond.message().starts_with("from_seq"), "{beyond}");
    // Older than the journal keeps: the stream ends OUT_OF_RANGE with where it can start.
    // Retention deletes only what the account index has read, and the index runs on idle
    // time: more trades (and snapshots) follow until it has caught up enough.
    let mut rounds = 0;
    let status = loop {
        let mut pruned = subscribe(&channel, Some(0)).await;
        match next(&mut pruned).await {
            Err(status) => break status,
            Ok(_) if rounds < 50 => {
                rounds += 1;
                trade(&mut maker, &mut taker, 100).await;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Ok(trade) => panic!("history is still kept from seq {}", trade.seq),
        }
    };
    assert_eq!(status.code(), Code::OutOfRange, "{status}");
    assert!(status.message().starts_with("from_seq"), "{status}");
    let first_kept = resume_seq(&status);
    assert!(first_kept > 0, "{status}");
    // From there, the stream replays what the journal keeps.
    let mut kept = subscribe(&channel, Some(first_kept)).await;
    let trade = next(&mut kept).await.expect("a kept trade");
    assert!(trade.seq > first_kept);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_work_with_the_largest_buffer_the_configuration_allows() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start_with(directory.path(), |config| {
        config.server.stream_buffer_messages = 1_000_000;
        assert_eq!(config.validate(), Ok(()), "the largest buffer is allowed");
    })
    .await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "100", &["kim", "lee"], "50", "10").await;
    let (mut lee, mut kim) = (traders.pop().expect("lee"), traders.pop().expect("kim"));
    let mut book = book_stream(&channel).await;
    let snapshot = tokio::time::timeout(PATIENCE, book.message())
        .await
        .expect("the book stream answers");
    assert!(matches!(snapshot, Ok(Some(_))), "{snapshot:?}");
    let mut trades = subscribe(&channel, Some(0)).await;
    trade(&mut kim, &mut lee, 2).await;
    assert_eq!(read(&mut trades, 2).await.len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_too_large_for_one_message_arrives_whole_over_several() {
    const FILLS: usize = 2_000;
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "1000", &["sam", "tia"], "500", "100").await;
    let (mut taker, mut maker) = (traders.pop().expect("tia"), traders.pop().expect("sam"));
    let sells = (0..FILLS).map(|_| limit(proto::Side::Sell, "1.0000", "0.01"));
    place_all(&mut maker, sells.collect()).await;
    let mut live = subscribe(&channel, None).await;
    // One order takes every sell: one command, 2,000 trades, about 100 KB of them, more
    // than the 64 KiB a message may hold.
    let swept = taker
        .trading
        .place_order(limit(proto::Side::Buy, "1.0000", &common::lots(FILLS)))
        .await
        .expect("the sweep is accepted, its answer within the message limit")
        .into_inner();
    // The answer holds as many fills as fit and says there were more.
    assert!(swept.fills_truncated);
    assert!(
        !swept.fills.is_empty() && swept.fills.len() < FILLS,
        "{}",
        swept.fills.len()
    );
    let order = swept.order.expect("the order");
    assert_eq!(order.filled_quantity, common::lots(FILLS));
    let seen = read(&mut live, FILLS).await;
    assert!(live.messages > 1, "split over {} messages", live.messages);
    assert!(
        seen.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "in order, each once"
    );
    assert_eq!(seen, all_trades(&channel, FILLS).await);
    server.stop().await;
}
