//! Streams over real gRPC: order updates, trades and books replayed from history and
//! then live, with no gap and no duplicate, and their limits.

mod common;

use common::{book_stream, funded_traders, limit, top_of_book, Server};
use divmid::api::proto::{self, market_data_client::MarketDataClient};
use divmid::client::book_copy::BookCopy;
use tonic::Code;

#[tokio::test]
async fn order_updates_replay_history_then_go_live_without_gap_or_duplicate() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "100", &["ivy", "jack"], "50", "10").await;
    let (mut jack, mut ivy) = (traders.pop().expect("jack"), traders.pop().expect("ivy"));
    let first = ivy
        .trading
        .place_order(limit(proto::Side::Sell, "1.5000", "4"))
        .await
        .expect("placed")
        .into_inner()
        .order
        .expect("an order");
    // From just before the first order: it is replayed, then what follows is live.
    let mut replayed = ivy
        .trading
        .stream_order_updates(proto::StreamOrderUpdatesRequest {
            from_seq: Some(first.created_seq - 1),
        })
        .await
        .expect("a stream")
        .into_inner();
    let mut live_only = ivy
        .trading
        .stream_order_updates(proto::StreamOrderUpdatesRequest { from_seq: None })
        .await
        .expect("a stream")
        .into_inner();
    let second = ivy
        .trading
        .place_order(limit(proto::Side::Sell, "1.6000", "2"))
        .await
        .expect("placed")
        .into_inner()
        .order
        .expect("an order");
    jack.trading
        .place_order(limit(proto::Side::Buy, "1.5000", "1"))
        .await
        .expect("crossed");
    use proto::order_update::Update;
    let describe = |update: &proto::OrderUpdate| match &update.update {
        Some(Update::Order(order)) => format!("order {} {}", order.order_id, order.filled_quantity),
        Some(Update::Fill(fill)) => format!("fill {} {}", fill.order_id, fill.quantity),
        None => "nothing".to_string(),
    };
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let update = replayed.message().await.expect("an update").expect("open");
        seen.push((update.seq, describe(&update)));
    }
    assert_eq!(
        seen.iter()
            .map(|(_, what)| what.as_str())
            .collect::<Vec<_>>(),
        vec![
            format!("order {} 0.00", first.order_id).as_str(),
            format!("order {} 0.00", second.order_id).as_str(),
            format!("fill {} 1.00", first.order_id).as_str(),
        ]
    );
    assert!(
        seen.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "in sequence order: {seen:?}"
    );
    assert_eq!(seen[0].0, first.created_seq);
    let update = live_only.message().await.expect("an update").expect("open");
    assert_eq!(
        describe(&update),
        format!("order {} 0.00", second.order_id),
        "live only"
    );
    server.stop().await;
}

#[tokio::test]
async fn trades_stream_from_history_then_live_and_streams_are_limited() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start_with(directory.path(), |config| {
        config.server.anonymous_streams_max = 2;
        config.server.stream_subscribers_max = 1;
    })
    .await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "100", &["lee", "max"], "50", "10").await;
    let (mut max, mut lee) = (traders.pop().expect("max"), traders.pop().expect("lee"));
    // Two trades before anyone subscribes.
    lee.trading
        .place_order(limit(proto::Side::Sell, "1.1000", "5"))
        .await
        .expect("placed");
    for _ in 0..2 {
        max.trading
            .place_order(limit(proto::Side::Buy, "1.1000", "1"))
            .await
            .expect("crossed");
    }
    let mut market = MarketDataClient::new(channel.clone());
    let mut from_start = market
        .stream_trades(proto::StreamTradesRequest {
            market: "DVM-USD".into(),
            from_seq: Some(0),
        })
        .await
        .expect("a stream")
        .into_inner();
    let mut live = market
        .stream_trades(proto::StreamTradesRequest {
            market: "DVM-USD".into(),
            from_seq: None,
        })
        .await
        .expect("a stream")
        .into_inner();
    // A third stream is over the limit of two.
    let refused = market
        .stream_trades(proto::StreamTradesRequest {
            market: "DVM-USD".into(),
            from_seq: None,
        })
        .await
        .expect_err("over the limit");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().starts_with("anonymous_streams_max"),
        "{}",
        refused.message()
    );
    // Strangers holding every anonymous place take none of the account holders'.
    let _updates = max
        .trading
        .stream_order_updates(proto::StreamOrderUpdatesRequest { from_seq: None })
        .await
        .expect("an account holder's stream is counted apart")
        .into_inner();
    let refused = lee
        .trading
        .stream_order_updates(proto::StreamOrderUpdatesRequest { from_seq: None })
        .await
        .expect_err("over the account holders' limit of one");
    assert!(
        refused.message().starts_with("stream_subscribers_max"),
        "{}",
        refused.message()
    );
    // One more trade, live.
    max.trading
        .place_order(limit(proto::Side::Buy, "1.1000", "2"))
        .await
        .expect("crossed");
    let mut replayed = Vec::new();
    while replayed.len() < 3 {
        let batch = from_start.message().await.expect("a trade").expect("open");
        replayed.extend(
            batch
                .trades
                .into_iter()
                .map(|trade| (trade.seq, trade.quantity)),
        );
    }
    assert_eq!(
        replayed
            .iter()
            .map(|(_, quantity)| quantity.as_str())
            .collect::<Vec<_>>(),
        vec!["1.00", "1.00", "2.00"],
        "history then live, each once"
    );
    assert!(replayed.windows(2).all(|pair| pair[0].0 < pair[1].0));
    let batch = live.message().await.expect("a trade").expect("open");
    let [trade] = batch.trades.as_slice() else {
        panic!("one trade: {batch:?}");
    };
    assert_eq!(
        (trade.quantity.as_str(), trade.price.as_str()),
        ("2.00", "1.1000")
    );
    assert_eq!(trade.seq, replayed[2].0);
    server.stop().await;
}

#[tokio::test]
async fn a_book_stream_replayed_on_its_snapshot_equals_the_book_and_its_checksums() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "1000", &["nina", "omar"], "500", "100").await;
    let (mut omar, mut nina) = (traders.pop().expect("omar"), traders.pop().expect("nina"));
    let mut stream = book_stream(&channel).await;
    let mut copy = BookCopy::default();
    for round in 0..24u64 {
        // Orders on both sides, some crossing, from two traders.
        let (trader, side, price) = match round % 4 {
            0 => (
                &mut nina,
                proto::Side::Buy,
                format!("0.{:04}", 9_000 + round * 10),
            ),
            1 => (&mut omar, proto::Side::Sell, format!("1.{:04}", round * 10)),
            2 => (
                &mut omar,
                proto::Side::Sell,
                format!("0.{:04}", 9_900 - round),
            ),
            _ => (&mut nina, proto::Side::Buy, format!("1.{:04}", round)),
        };
        let placed = trader
            .trading
            .place_order(limit(side, &price, "1.5"))
            .await
            .expect("placed")
            .into_inner();
        let target = placed
            .fills
            .last()
            .map_or(placed.order.expect("an order").created_seq, |fill| fill.seq);
        while copy.book_seq < target {
            let message = stream.message().await.expect("a message").expect("open");
            copy.apply(&message)
                .expect("each message follows and its checksum matches");
        }
        let book = top_of_book(&channel).await;
        assert!(copy.equals(&book), "round {round}");
    }
    server.stop().await;
}
