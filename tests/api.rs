//! The gRPC API end to end: a real server on 127.0.0.1:0 over real gRPC, driven through
//! the user story, bad input, the authorization matrix, idempotency, and a graceful
//! shutdown followed by a restart.

mod common;

use common::{
    balances, book_stream, clients, create, funded_traders, limit, top_of_book, Clients, Server,
    ISSUER_TOKEN,
};
use divmid::api::proto::{self, market_data_client::MarketDataClient};
use divmid::client::book_copy::BookCopy;
use tonic::transport::Channel;
use tonic::{Code, Status};

fn owned(values: (&str, &str, &str, &str)) -> (String, String, String, String) {
    (
        values.0.into(),
        values.1.into(),
        values.2.into(),
        values.3.into(),
    )
}

#[tokio::test]
async fn the_user_story_with_exact_balances_and_a_restart() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (_, alice_token) = create(
        &mut issuer,
        "alice",
        proto::Tier::Public,
        proto::Role::Trader,
    )
    .await;
    let (bob_id, bob_token) = create(
        &mut issuer,
        "bob",
        proto::Tier::Subscriber,
        proto::Role::Trader,
    )
    .await;
    let (_, service_token) = create(
        &mut issuer,
        "search",
        proto::Tier::Public,
        proto::Role::Service,
    )
    .await;
    let mut alice = clients(&channel, Some(&alice_token));
    let mut bob = clients(&channel, Some(&bob_token));
    let mut service = clients(&channel, Some(&service_token));

    let minted = issuer
        .issuer
        .mint(proto::MintRequest {
            amount: "1000000".into(),
            memo: "launch".into(),
            idempotency_key: "mint-1".into(),
        })
        .await
        .expect("minted")
        .into_inner();
    assert_eq!(minted.total_supply, "1000000.000000");
    for (tier, price) in [
        (proto::Tier::Public, "0.60"),
        (proto::Tier::Subscriber, "0.5"),
    ] {
        issuer
            .issuer
            .set_issue_price(proto::SetIssuePriceRequest {
                tier: tier as i32,
                price: price.into(),
            })
            .await
            .expect("price set");
    }

    // Deposits through each funding source; a repeated key applies once.
    let deposit =
        |source: proto::Source, amount: &str, reference: &str, key: &str| proto::DepositRequest {
            source: source as i32,
            amount: amount.into(),
            source_reference: reference.into(),
            idempotency_key: key.into(),
        };
    for _ in 0..2 {
        alice
            .wallet
            .deposit(deposit(
                proto::Source::Card,
                "1000",
                "4111111111111111",
                "d-1",
            ))
            .await
            .expect("deposited");
    }
    bob.wallet
        .deposit(deposit(
            proto::Source::Paypal,
            "300",
            "bob@example.com",
            "d-1",
        ))
        .await
        .expect("deposited");
    bob.wallet
        .deposit(deposit(proto::Source::Egold, "200", "123456", "d-2"))
        .await
        .expect("deposited");
    let declined = bob
        .wallet
        .deposit(deposit(proto::Source::Card, "5", "4000000000000002", "d-3"))
        .await
        .expect_err("declined");
    assert_eq!(declined.code(), Code::FailedPrecondition);
    assert!(
        declined.message().contains("card declined"),
        "{}",
        declined.message()
    );
    assert_eq!(
        balances(&mut alice).await,
        owned(("1000.000000", "0.000000", "0.000000", "0.000000"))
    );
    assert_eq!(
        balances(&mut bob).await,
        owned(("500.000000", "0.000000", "0.000000", "0.000000"))
    );

    // Each buys 100 DVM at its tier's price.
    let buy = |key: &str| proto::BuyDivmidsRequest {
        quantity: "100".into(),
        max_price: "1".into(),
        idempotency_key: key.into(),
    };
    let bought = alice
        .wallet
        .buy_divmids(buy("b-1"))
        .await
        .expect("bought")
        .into_inner();
    assert_eq!(bought.cost, "60.000000");
    bob.wallet.buy_divmids(buy("b-1")).await.expect("bought");
    assert_eq!(
        balances(&mut alice).await,
        owned(("940.000000", "0.000000", "100.000000", "0.000000"))
    );
    assert_eq!(
        balances(&mut bob).await,
        owned(("450.000000", "0.000000", "100.000000", "0.000000"))
    );

    // Alice offers 50 DVM at 0.70; Bob bids 20 at 0.75 and trades at Alice's price.
    let ask = alice
        .trading
        .place_order(limit(proto::Side::Sell, "0.7000", "50"))
        .await
        .expect("placed")
        .into_inner();
    let ask_order = ask.order.expect("an order");
    assert_eq!(ask_order.status, proto::OrderStatus::Open as i32);
    assert_eq!(
        balances(&mut alice).await,
        owned(("940.000000", "0.000000", "50.000000", "50.000000"))
    );
    let bid = bob
        .trading
        .place_order(limit(proto::Side::Buy, "0.75", "20.00"))
        .await
        .expect("placed")
        .into_inner();
    assert_eq!(
        bid.order.expect("an order").status,
        proto::OrderStatus::Filled as i32
    );
    assert_eq!(bid.fills.len(), 1);
    assert_eq!(
        (bid.fills[0].price.as_str(), bid.fills[0].quantity.as_str()),
        ("0.7000", "20.00")
    );
    assert_eq!(bid.fills[0].liquidity, proto::Liquidity::Taker as i32);
    assert_eq!(
        balances(&mut bob).await,
        owned(("436.000000", "0.000000", "120.000000", "0.000000"))
    );
    assert_eq!(
        balances(&mut alice).await,
        owned(("954.000000", "0.000000", "50.000000", "30.000000"))
    );

    // The ticker and candles know the trade.
    let ticker = ticker(&channel).await;
    assert_eq!(
        (
            ticker.last_price.as_str(),
            ticker.best_ask.as_str(),
            ticker.best_bid.as_str()
        ),
        ("0.7000", "0.7000", "")
    );
    assert_eq!(
        (ticker.volume_24h.as_str(), ticker.high_24h.as_str()),
        ("20.00", "0.7000")
    );
    assert_eq!(minute_volumes(&channel).await, vec!["20.00".to_string()]);

    // Alice amends her ask down to 40 in all (10 left) and then cancels it.
    let amended = alice
        .trading
        .amend_order(proto::AmendOrderRequest {
            order_id: ask_order.order_id.clone(),
            quantity: "30".into(),
            price: String::new(),
        })
        .await
        .expect("amended")
        .into_inner()
        .order
        .expect("an order");
    assert_eq!(
        (
            amended.quantity.as_str(),
            amended.remaining_quantity.as_str()
        ),
        ("30.00", "10.00")
    );
    // Bob may not touch Alice's order.
    let foreign = bob
        .trading
        .cancel_order(proto::CancelOrderRequest {
            order_id: ask_order.order_id.clone(),
            client_order_id: String::new(),
        })
        .await
        .expect_err("not his");
    assert_eq!(foreign.code(), Code::NotFound);
    alice
        .trading
        .cancel_order(proto::CancelOrderRequest {
            order_id: ask_order.order_id.clone(),
            client_order_id: String::new(),
        })
        .await
        .expect("canceled");
    assert_eq!(
        balances(&mut alice).await,
        owned(("954.000000", "0.000000", "80.000000", "0.000000"))
    );

    // A service charges Bob a micro-amount; Bob withdraws dollars.
    service
        .metering
        .charge(proto::ChargeRequest {
            account_id: bob_id.clone(),
            amount: "0.000123".into(),
            idempotency_key: "c-1".into(),
            memo: "search".into(),
        })
        .await
        .expect("charged");
    bob.wallet
        .withdraw(proto::WithdrawRequest {
            amount: "36.5".into(),
            destination: "bank".into(),
            idempotency_key: "w-1".into(),
        })
        .await
        .expect("withdrawn");
    assert_eq!(
        balances(&mut bob).await,
        owned(("399.500000", "0.000000", "119.999877", "0.000000"))
    );
    let supply = issuer
        .issuer
        .get_supply(proto::GetSupplyRequest {})
        .await
        .expect("supply")
        .into_inner();
    assert_eq!(
        (
            supply.minted.as_str(),
            supply.treasury.as_str(),
            supply.circulating.as_str(),
            supply.spent.as_str()
        ),
        ("1000000.000000", "999800.000000", "199.999877", "0.000123")
    );

    // History: Bob's fills, and Alice's ledger entries, which account for every
    // movement: the changes per asset add up to her balances, and the newest entry of each
    // asset shows the balance she has.
    let fills = bob
        .trading
        .list_fills(proto::ListFillsRequest {
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .expect("fills")
        .into_inner()
        .fills;
    assert_eq!(fills.len(), 1);
    assert_eq!(
        (fills[0].price.as_str(), fills[0].quantity.as_str()),
        ("0.7000", "20.00")
    );
    let mut entries = Vec::new();
    let mut token = String::new();
    loop {
        let page = alice
            .wallet
            .list_ledger_entries(proto::ListLedgerEntriesRequest {
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .expect("entries")
            .into_inner();
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let micros = |text: &str| -> i64 {
        let negative = text.starts_with('-');
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let value: i64 = digits.parse().expect("a number");
        if negative {
            -value
        } else {
            value
        }
    };
    for (asset, available, held) in [
        ("USD", "954.000000", "0.000000"),
        ("DVM", "80.000000", "0.000000"),
    ] {
        let of_asset: Vec<_> = entries
            .iter()
            .filter(|entry| entry.asset == asset)
            .collect();
        let newest = of_asset.first().expect("entries of each asset");
        assert_eq!(
            (newest.available_after.as_str(), newest.held_after.as_str()),
            (available, held),
            "{asset}"
        );
        let total: i64 = of_asset
            .iter()
            .map(|entry| micros(&entry.available_change) + micros(&entry.held_change))
            .sum();
        assert_eq!(
            total,
            micros(available) + micros(held),
            "{asset} changes add up"
        );
    }
    assert!(
        entries.windows(2).all(|pair| pair[0].seq >= pair[1].seq),
        "newest first"
    );

    // A graceful stop and a restart keep everything.
    drop((alice, bob, service, issuer));
    drop(channel);
    server.stop().await;
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut bob = clients(&channel, Some(&bob_token));
    assert_eq!(
        balances(&mut bob).await,
        owned(("399.500000", "0.000000", "119.999877", "0.000000"))
    );
    // Candles are rebuilt from the journal.
    assert_eq!(minute_volumes(&channel).await, vec!["20.00".to_string()]);
    server.stop().await;
}

/// The ticker, once market data has caught up.
async fn ticker(channel: &Channel) -> proto::GetTickerResponse {
    let mut market = MarketDataClient::new(channel.clone());
    for _ in 0..500 {
        match market
            .get_ticker(proto::GetTickerRequest {
                market: "DVM-USD".into(),
            })
            .await
        {
            Ok(response) => return response.into_inner(),
            Err(status) if status.code() == Code::Unavailable => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(status) => panic!("ticker: {status}"),
        }
    }
    panic!("market data never caught up");
}

/// The volumes of the last hour's one-minute candles.
async fn minute_volumes(channel: &Channel) -> Vec<String> {
    ticker(channel).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as u64;
    let candles = MarketDataClient::new(channel.clone())
        .get_candles(proto::GetCandlesRequest {
            market: "DVM-USD".into(),
            interval: proto::CandleInterval::CandleInterval1m as i32,
            from_ms: now - 3_600_000,
            to_ms: now + 60_000,
        })
        .await
        .expect("candles")
        .into_inner()
        .candles;
    candles.into_iter().map(|candle| candle.volume).collect()
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (_, token) = create(
        &mut issuer,
        "carol",
        proto::Tier::Public,
        proto::Role::Trader,
    )
    .await;
    let mut carol = clients(&channel, Some(&token));
    carol
        .wallet
        .deposit(proto::DepositRequest {
            source: proto::Source::Card as i32,
            amount: "100".into(),
            source_reference: "4111111111111111".into(),
            idempotency_key: "d".into(),
        })
        .await
        .expect("deposited");
    let before = balances(&mut carol).await;
    // Refused for every number field; then each field's own off-grid values.
    let numbers = [
        "abc",
        "-1",
        "0",
        "1e3",
        "NaN",
        "",
        " 1",
        "1234567890123456789012345678901234567890",
        "0.0000001",
    ];
    for (price, quantity) in [("0.00001", "0.001"), ("0.50001", "1.005")] {
        let status = carol
            .trading
            .place_order(limit(proto::Side::Buy, price, "1"))
            .await
            .expect_err("off tick");
        assert!(
            status.message().starts_with("price: "),
            "{price}: {}",
            status.message()
        );
        let status = carol
            .trading
            .place_order(limit(proto::Side::Buy, "0.5", quantity))
            .await
            .expect_err("off lot");
        assert!(
            status.message().starts_with("quantity: "),
            "{quantity}: {}",
            status.message()
        );
    }
    for bad in numbers {
        let status = carol
            .trading
            .place_order(limit(proto::Side::Buy, bad, "1"))
            .await
            .expect_err(bad);
        assert_eq!(status.code(), Code::InvalidArgument, "price {bad:?}");
        assert!(
            status.message().starts_with("price: "),
            "{bad:?}: {}",
            status.message()
        );
        let status = carol
            .trading
            .place_order(limit(proto::Side::Buy, "0.5", bad))
            .await
            .expect_err(bad);
        assert_eq!(status.code(), Code::InvalidArgument, "quantity {bad:?}");
        assert!(
            status.message().starts_with("quantity: "),
            "{bad:?}: {}",
            status.message()
        );
        let status = carol
            .wallet
            .withdraw(proto::WithdrawRequest {
                amount: bad.into(),
                destination: "bank".into(),
                idempotency_key: format!("w-{bad}"),
            })
            .await
            .expect_err(bad);
        assert!(
            status.message().starts_with("amount: "),
            "{bad:?}: {}",
            status.message()
        );
    }
    let mut unknown_market = limit(proto::Side::Buy, "0.5", "1");
    unknown_market.market = "BTC-USD".into();
    let status = carol
        .trading
        .place_order(unknown_market)
        .await
        .expect_err("unknown market");
    assert_eq!(status.code(), Code::NotFound);
    let mut unspecified = limit(proto::Side::Buy, "0.5", "1");
    unspecified.side = 0;
    let status = carol
        .trading
        .place_order(unspecified)
        .await
        .expect_err("no side");
    assert!(
        status.message().starts_with("side: "),
        "{}",
        status.message()
    );
    let mut long_id = limit(proto::Side::Buy, "0.5", "1");
    long_id.client_order_id = "x".repeat(65);
    let status = carol
        .trading
        .place_order(long_id)
        .await
        .expect_err("too long");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "client_order_id: is longer than 64 characters"
    );
    assert_eq!(balances(&mut carol).await, before);
    let book = MarketDataClient::new(channel.clone())
        .get_order_book(proto::GetOrderBookRequest {
            market: "DVM-USD".into(),
            depth: 10,
        })
        .await
        .expect("the book")
        .into_inner();
    assert!(
        book.bids.is_empty() && book.asks.is_empty(),
        "nothing reached the book"
    );
    server.stop().await;
}

#[tokio::test]
async fn calls_are_refused_without_a_token_with_a_bad_one_or_with_the_wrong_role() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (_, trader_token) = create(
        &mut issuer,
        "dave",
        proto::Tier::Public,
        proto::Role::Trader,
    )
    .await;
    let (_, service_token) = create(
        &mut issuer,
        "svc",
        proto::Tier::Public,
        proto::Role::Service,
    )
    .await;
    let mint = || proto::MintRequest {
        amount: "1".into(),
        memo: String::new(),
        idempotency_key: "m".into(),
    };
    for (token, code) in [
        (None, Code::Unauthenticated),
        (Some("not-a-token"), Code::Unauthenticated),
        (Some(trader_token.as_str()), Code::PermissionDenied),
        (Some(service_token.as_str()), Code::PermissionDenied),
    ] {
        let mut caller = clients(&channel, token);
        let status = caller.issuer.mint(mint()).await.expect_err("refused");
        assert_eq!(status.code(), code, "{token:?} minting");
        if token != Some(trader_token.as_str()) {
            let status = caller
                .trading
                .place_order(limit(proto::Side::Buy, "0.5", "1"))
                .await
                .expect_err("refused");
            assert!(matches!(
                status.code(),
                Code::Unauthenticated | Code::PermissionDenied
            ));
            let status = caller
                .wallet
                .get_balances(proto::GetBalancesRequest {})
                .await
                .expect_err("refused");
            assert!(matches!(
                status.code(),
                Code::Unauthenticated | Code::PermissionDenied
            ));
        }
    }
    let mut trader = clients(&channel, Some(&trader_token));
    let status = trader
        .metering
        .charge(proto::ChargeRequest {
            account_id: "3".into(),
            amount: "1".into(),
            idempotency_key: "c".into(),
            memo: String::new(),
        })
        .await
        .expect_err("a trader cannot charge");
    assert_eq!(status.code(), Code::PermissionDenied);
    // Market data needs no token.
    let markets = MarketDataClient::new(channel.clone())
        .get_markets(proto::GetMarketsRequest {})
        .await
        .expect("markets")
        .into_inner()
        .markets;
    assert_eq!(markets[0].name, "DVM-USD");
    assert_eq!(
        (markets[0].tick_size.as_str(), markets[0].lot_size.as_str()),
        ("0.0001", "0.01")
    );
    server.stop().await;
}

#[tokio::test]
async fn an_order_session_answers_every_command_in_order() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut traders = funded_traders(&channel, "1000", &["erin"], "500", "100").await;
    let mut erin = traders.remove(0);
    // 200 resting orders on both sides, one malformed command in the middle, then a
    // cancel-all.
    let mut requests = Vec::new();
    for index in 0..200u64 {
        let (side, price) = if index % 2 == 0 {
            (proto::Side::Buy, format!("0.{:04}", 4_000 + index))
        } else {
            (proto::Side::Sell, format!("0.{:04}", 6_000 + index))
        };
        let place = if index == 100 {
            limit(side, "-1", "1")
        } else {
            limit(side, &price, "0.5")
        };
        requests.push(proto::OrderSessionRequest {
            request_id: index,
            command: Some(proto::order_session_request::Command::Place(place)),
        });
    }
    requests.push(proto::OrderSessionRequest {
        request_id: 999,
        command: Some(proto::order_session_request::Command::CancelAll(
            proto::CancelAllOrdersRequest {
                market: String::new(),
            },
        )),
    });
    let mut responses = erin
        .trading
        .order_session(tokio_stream::iter(requests))
        .await
        .expect("a session")
        .into_inner();
    let mut seen = Vec::new();
    while let Some(response) = responses.message().await.expect("a response") {
        seen.push(response);
        if seen.len() == 201 {
            break;
        }
    }
    let ids: Vec<u64> = seen.iter().map(|response| response.request_id).collect();
    let mut expected: Vec<u64> = (0..200).collect();
    expected.push(999);
    assert_eq!(ids, expected, "answers come in command order");
    use proto::order_session_response::Result as SessionResult;
    match &seen[100].result {
        Some(SessionResult::Error(error)) => {
            assert_eq!(error.code, Code::InvalidArgument as i32);
            assert!(error.message.starts_with("price: "), "{}", error.message);
        }
        other => panic!("the malformed command got {other:?}"),
    }
    assert!(seen[..100]
        .iter()
        .all(|response| matches!(response.result, Some(SessionResult::Placed(_)))));
    match &seen[200].result {
        Some(SessionResult::CanceledAll(canceled)) => assert_eq!(canceled.canceled_count, 199),
        other => panic!("cancel-all got {other:?}"),
    }
    assert_eq!(
        balances(&mut erin).await,
        owned(("400.000000", "0.000000", "100.000000", "0.000000"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_charge_session_answers_every_charge_in_order_and_once_per_key() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    common::process::mint_at_one_dollar(&channel, ISSUER_TOKEN, "1000").await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (holder_id, holder_token) =
        create(&mut issuer, "hal", proto::Tier::Public, proto::Role::Trader).await;
    let (_, service_token) = create(
        &mut issuer,
        "svc",
        proto::Tier::Public,
        proto::Role::Service,
    )
    .await;
    let mut holder = clients(&channel, Some(&holder_token));
    common::fund(&mut holder, "hal", "10", "1").await;
    // 300 clicks of a thousandth, one malformed amount, and a retry of the first key.
    let charge = |request_id: u64, amount: &str, key: String| proto::ChargeSessionRequest {
        request_id,
        charge: Some(proto::ChargeRequest {
            account_id: holder_id.clone(),
            amount: amount.into(),
            idempotency_key: key,
            memo: "click".into(),
        }),
    };
    let mut requests: Vec<_> = (0..300)
        .map(|index| charge(index, "0.001", format!("click-{index}")))
        .collect();
    requests.push(charge(300, "-1", "bad".into()));
    requests.push(charge(301, "0.001", "click-0".into()));
    let mut service = clients(&channel, Some(&service_token));
    let mut responses = service
        .metering
        .charge_session(tokio_stream::iter(requests))
        .await
        .expect("a session")
        .into_inner();
    let mut seen = Vec::new();
    while let Some(response) = responses.message().await.expect("a response") {
        seen.push(response);
    }
    let ids: Vec<u64> = seen.iter().map(|response| response.request_id).collect();
    assert_eq!(
        ids,
        (0..302).collect::<Vec<_>>(),
        "answered in order, each once"
    );
    use proto::charge_session_response::Result as ChargeResult;
    let charged_seq = |index: usize| match &seen[index].result {
        Some(ChargeResult::Charged(charged)) => {
            assert_eq!(charged.amount, "0.001000");
            charged.seq
        }
        other => panic!("charge {index} got {other:?}"),
    };
    let seqs: Vec<u64> = (0..300).map(charged_seq).collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "committed in order"
    );
    match &seen[300].result {
        Some(ChargeResult::Error(error)) => {
            assert_eq!(error.code, Code::InvalidArgument as i32);
            assert!(error.message.starts_with("amount: "), "{}", error.message);
        }
        other => panic!("the malformed charge got {other:?}"),
    }
    assert_eq!(
        charged_seq(301),
        seqs[0],
        "a retried key answers the original seq"
    );
    assert_eq!(
        balances(&mut holder).await,
        owned(("9.000000", "0.000000", "0.700000", "0.000000")),
        "300 thousandths charged once each"
    );
    server.stop().await;
}

/// Calls every authenticated RPC with `caller`'s token and returns each status code, named.
async fn every_rpc(channel: &Channel, token: Option<&str>) -> Vec<(&'static str, Code)> {
    let mut c = clients(channel, token);
    let code = |result: Result<(), Status>| result.err().map_or(Code::Ok, |status| status.code());
    macro_rules! call {
        ($client:expr, $method:ident, $request:expr) => {
            code($client.$method($request).await.map(|_| ()))
        };
    }
    vec![
        (
            "CreateAccount",
            call!(
                c.issuer,
                create_account,
                proto::CreateAccountRequest::default()
            ),
        ),
        ("Mint", call!(c.issuer, mint, proto::MintRequest::default())),
        (
            "SetIssuePrice",
            call!(
                c.issuer,
                set_issue_price,
                proto::SetIssuePriceRequest::default()
            ),
        ),
        (
            "GetSupply",
            call!(c.issuer, get_supply, proto::GetSupplyRequest::default()),
        ),
        (
            "RotateToken",
            call!(c.issuer, rotate_token, proto::RotateTokenRequest::default()),
        ),
        (
            "RevokeToken",
            call!(c.issuer, revoke_token, proto::RevokeTokenRequest::default()),
        ),
        (
            "GetBalances",
            call!(c.wallet, get_balances, proto::GetBalancesRequest::default()),
        ),
        (
            "Deposit",
            call!(c.wallet, deposit, proto::DepositRequest::default()),
        ),
        (
            "Withdraw",
            call!(c.wallet, withdraw, proto::WithdrawRequest::default()),
        ),
        (
            "BuyDivmids",
            call!(c.wallet, buy_divmids, proto::BuyDivmidsRequest::default()),
        ),
        (
            "ListLedgerEntries",
            call!(
                c.wallet,
                list_ledger_entries,
                proto::ListLedgerEntriesRequest::default()
            ),
        ),
        (
            "SetAutoTopUp",
            call!(
                c.wallet,
                set_auto_top_up,
                proto::SetAutoTopUpRequest::default()
            ),
        ),
        (
            "GetAutoTopUp",
            call!(
                c.wallet,
                get_auto_top_up,
                proto::GetAutoTopUpRequest::default()
            ),
        ),
        (
            "SetSpendLimit",
            call!(
                c.wallet,
                set_spend_limit,
                proto::SetSpendLimitRequest::default()
            ),
        ),
        (
            "ListSpendLimits",
            call!(
                c.wallet,
                list_spend_limits,
                proto::ListSpendLimitsRequest::default()
            ),
        ),
        (
            "GetUsage",
            call!(c.wallet, get_usage, proto::GetUsageRequest::default()),
        ),
        (
            "GetServiceUsage",
            call!(
                c.metering,
                get_service_usage,
                proto::GetServiceUsageRequest::default()
            ),
        ),
        (
            "Charge",
            call!(c.metering, charge, proto::ChargeRequest::default()),
        ),
        (
            "ChargeSession",
            call!(
                c.metering,
                charge_session,
                tokio_stream::iter(Vec::<proto::ChargeSessionRequest>::new())
            ),
        ),
        (
            "PlaceOrder",
            call!(c.trading, place_order, proto::PlaceOrderRequest::default()),
        ),
        (
            "CancelOrder",
            call!(
                c.trading,
                cancel_order,
                proto::CancelOrderRequest::default()
            ),
        ),
        (
            "CancelAllOrders",
            call!(
                c.trading,
                cancel_all_orders,
                proto::CancelAllOrdersRequest::default()
            ),
        ),
        (
            "AmendOrder",
            call!(c.trading, amend_order, proto::AmendOrderRequest::default()),
        ),
        (
            "GetOrder",
            call!(c.trading, get_order, proto::GetOrderRequest::default()),
        ),
        (
            "ListOrders",
            call!(c.trading, list_orders, proto::ListOrdersRequest::default()),
        ),
        (
            "ListFills",
            call!(c.trading, list_fills, proto::ListFillsRequest::default()),
        ),
        (
            "OrderSession",
            call!(
                c.trading,
                order_session,
                tokio_stream::iter(Vec::<proto::OrderSessionRequest>::new())
            ),
        ),
        (
            "StreamOrderUpdates",
            call!(
                c.trading,
                stream_order_updates,
                proto::StreamOrderUpdatesRequest::default()
            ),
        ),
    ]
}

#[tokio::test]
async fn the_authorization_matrix_covers_every_rpc() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    // Every RPC is called with no token and with an unknown one, all from one address:
    // more failures than a peer is allowed a minute by default.
    let server = Server::start_with(directory.path(), |config| {
        config.server.auth_failures_per_minute_max = 1_000;
    })
    .await;
    let channel = server.channel().await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (_, trader) = create(
        &mut issuer,
        "gail",
        proto::Tier::Public,
        proto::Role::Trader,
    )
    .await;
    let (_, service) = create(
        &mut issuer,
        "svc",
        proto::Tier::Public,
        proto::Role::Service,
    )
    .await;
    let issuer_rpcs = [
        "CreateAccount",
        "Mint",
        "SetIssuePrice",
        "GetSupply",
        "RotateToken",
        "RevokeToken",
    ];
    let service_rpcs = ["Charge", "ChargeSession", "GetServiceUsage"];
    for (name, code) in every_rpc(&channel, None).await {
        assert_eq!(code, Code::Unauthenticated, "{name} without a token");
    }
    for (name, code) in every_rpc(&channel, Some("dvm_not-a-real-token")).await {
        assert_eq!(code, Code::Unauthenticated, "{name} with an unknown token");
    }
    for (token, role, allowed) in [
        (ISSUER_TOKEN, "issuer", &issuer_rpcs[..]),
        (service.as_str(), "service", &service_rpcs[..]),
        (trader.as_str(), "trader", &[][..]),
    ] {
        for (name, code) in every_rpc(&channel, Some(token)).await {
            let trader_rpc = !issuer_rpcs.contains(&name) && !service_rpcs.contains(&name);
            if allowed.contains(&name) || (role == "trader" && trader_rpc) {
                assert_ne!(code, Code::PermissionDenied, "{name} as {role}");
                assert_ne!(code, Code::Unauthenticated, "{name} as {role}");
            } else {
                assert_eq!(code, Code::PermissionDenied, "{name} as {role}");
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn retries_with_the_same_key_or_client_order_id_apply_once() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (henry_id, token) = create(
        &mut issuer,
        "henry",
        proto::Tier::Public,
        proto::Role::Trader,
    )
    .await;
    let (_, service_token) = create(
        &mut issuer,
        "svc",
        proto::Tier::Public,
        proto::Role::Service,
    )
    .await;
    let mut henry = clients(&channel, Some(&token));
    let mut service = clients(&channel, Some(&service_token));
    let mint = proto::MintRequest {
        amount: "1000".into(),
        memo: String::new(),
        idempotency_key: "m".into(),
    };
    for _ in 0..3 {
        let minted = issuer
            .issuer
            .mint(mint.clone())
            .await
            .expect("minted")
            .into_inner();
        assert_eq!(minted.total_supply, "1000.000000");
    }
    let mut other = mint.clone();
    other.amount = "5".into();
    assert_eq!(
        issuer.issuer.mint(other).await.expect_err("reused").code(),
        Code::AlreadyExists
    );
    issuer
        .issuer
        .set_issue_price(proto::SetIssuePriceRequest {
            tier: proto::Tier::Public as i32,
            price: "1".into(),
        })
        .await
        .expect("priced");
    henry
        .wallet
        .deposit(proto::DepositRequest {
            source: proto::Source::Card as i32,
            amount: "100".into(),
            source_reference: "4111111111111111".into(),
            idempotency_key: "d".into(),
        })
        .await
        .expect("deposited");
    let buy = proto::BuyDivmidsRequest {
        quantity: "10".into(),
        max_price: "1".into(),
        idempotency_key: "b".into(),
    };
    for _ in 0..3 {
        henry.wallet.buy_divmids(buy.clone()).await.expect("bought");
    }
    let charge = proto::ChargeRequest {
        account_id: henry_id.clone(),
        amount: "0.5".into(),
        idempotency_key: "c".into(),
        memo: String::new(),
    };
    let mut charges = Vec::new();
    for _ in 0..3 {
        let charged = service
            .metering
            .charge(charge.clone())
            .await
            .expect("charged")
            .into_inner();
        charges.push(charged);
    }
    assert!(charges[0].seq > 0, "{charges:?}");
    assert!(
        charges.iter().all(|charged| *charged == charges[0]),
        "a retried charge answers as the first did: {charges:?}"
    );
    let mut order = limit(proto::Side::Sell, "2.0000", "1");
    order.client_order_id = "retry-me".into();
    let first = henry
        .trading
        .place_order(order.clone())
        .await
        .expect("placed")
        .into_inner();
    for _ in 0..2 {
        let again = henry
            .trading
            .place_order(order.clone())
            .await
            .expect("a retry")
            .into_inner();
        assert_eq!(
            again.order, first.order,
            "the retry returns the original order"
        );
    }
    // The open order, looked up by either id.
    let placed = first.order.clone().expect("an order");
    for (order_id, client_order_id) in [(placed.order_id.as_str(), ""), ("", "retry-me")] {
        let found = henry
            .trading
            .get_order(proto::GetOrderRequest {
                order_id: order_id.to_string(),
                client_order_id: client_order_id.into(),
            })
            .await
            .expect("found")
            .into_inner();
        assert_eq!(found.order.as_ref(), Some(&placed));
    }
    let mut changed = order.clone();
    changed.quantity = "2".into();
    let status = henry
        .trading
        .place_order(changed)
        .await
        .expect_err("reused id");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(
        balances(&mut henry).await,
        owned(("90.000000", "0.000000", "8.500000", "1.000000"))
    );
    server.stop().await;
}

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
async fn stock_tools_see_health_and_reflection_in_both_versions() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "divmid.v1.Trading".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // Health and reflection keep the API's message limit (64 KiB), not tonic's 4 MB.
    let oversized = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "x".repeat(100 * 1024),
        })
        .await
        .expect_err("over the message limit");
    assert_eq!(oversized.code(), Code::OutOfRange, "{oversized:?}");

    use tonic_reflection::pb::{v1, v1alpha};
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .expect("v1alpha reflection answers")
            .into_inner();
    let response = responses.message().await.expect("a response").expect("one");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("services were listed");
    };
    let names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    for expected in [
        "divmid.v1.Issuer",
        "divmid.v1.Wallet",
        "divmid.v1.Metering",
        "divmid.v1.Trading",
        "divmid.v1.MarketData",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} in {names:?}"
        );
    }
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "divmid.v1.Trading".into(),
            ),
        ),
    };
    let mut responses = v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("v1 reflection answers")
        .into_inner();
    let response = responses.message().await.expect("a response").expect("one");
    assert!(matches!(
        response.message_response,
        Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
    ));
    server.stop().await;
}

#[tokio::test]
async fn every_rpc_refuses_bad_fields_by_name_and_changes_nothing() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (kim_id, token) =
        create(&mut issuer, "kim", proto::Tier::Public, proto::Role::Trader).await;
    let (_, service_token) = create(
        &mut issuer,
        "svc",
        proto::Tier::Public,
        proto::Role::Service,
    )
    .await;
    let mut kim = clients(&channel, Some(&token));
    let mut service = clients(&channel, Some(&service_token));
    let mut market = MarketDataClient::new(channel.clone());
    kim.wallet
        .deposit(proto::DepositRequest {
            source: proto::Source::Card as i32,
            amount: "10".into(),
            source_reference: "4111111111111111".into(),
            idempotency_key: "d".into(),
        })
        .await
        .expect("deposited");
    let order = kim
        .trading
        .place_order(limit(proto::Side::Buy, "0.5", "1"))
        .await
        .expect("placed")
        .into_inner()
        .order
        .expect("an order");
    let supply = |issuer: &mut Clients| {
        let mut client = issuer.issuer.clone();
        async move {
            client
                .get_supply(proto::GetSupplyRequest {})
                .await
                .expect("supply")
                .into_inner()
        }
    };
    let before = (balances(&mut kim).await, supply(&mut issuer).await);
    let long = "x".repeat(300);
    let mut failures: Vec<(String, Status)> = Vec::new();
    macro_rules! refused {
        ($field:expr, $call:expr) => {
            failures.push(($field.to_string(), $call.await.expect_err($field)))
        };
    }
    refused!(
        "amount",
        issuer.issuer.mint(proto::MintRequest {
            amount: "1.0000001".into(),
            memo: String::new(),
            idempotency_key: "m".into()
        })
    );
    refused!(
        "idempotency_key",
        issuer.issuer.mint(proto::MintRequest {
            amount: "1".into(),
            memo: String::new(),
            idempotency_key: long.clone()
        })
    );
    refused!(
        "memo",
        issuer.issuer.mint(proto::MintRequest {
            amount: "1".into(),
            memo: long.clone(),
            idempotency_key: "m2".into()
        })
    );
    refused!(
        "price",
        issuer.issuer.set_issue_price(proto::SetIssuePriceRequest {
            tier: proto::Tier::Public as i32,
            price: "0".into()
        })
    );
    refused!(
        "tier",
        issuer.issuer.set_issue_price(proto::SetIssuePriceRequest {
            tier: 0,
            price: "1".into()
        })
    );
    refused!(
        "name",
        issuer.issuer.create_account(proto::CreateAccountRequest {
            name: String::new(),
            tier: proto::Tier::Public as i32,
            role: proto::Role::Trader as i32
        })
    );
    refused!(
        "name",
        issuer.issuer.create_account(proto::CreateAccountRequest {
            name: long.clone(),
            tier: proto::Tier::Public as i32,
            role: proto::Role::Trader as i32
        })
    );
    refused!(
        "role",
        issuer.issuer.create_account(proto::CreateAccountRequest {
            name: "x".into(),
            tier: proto::Tier::Public as i32,
            role: 0
        })
    );
    refused!(
        "role",
        issuer.issuer.create_account(proto::CreateAccountRequest {
            name: "x".into(),
            tier: proto::Tier::Public as i32,
            role: proto::Role::Issuer as i32
        })
    );
    refused!(
        "source",
        kim.wallet.deposit(proto::DepositRequest {
            source: 0,
            amount: "1".into(),
            source_reference: "4111111111111111".into(),
            idempotency_key: "d2".into()
        })
    );
    refused!(
        "amount",
        kim.wallet.deposit(proto::DepositRequest {
            source: proto::Source::Card as i32,
            amount: "1e2".into(),
            source_reference: "4111111111111111".into(),
            idempotency_key: "d3".into()
        })
    );
    refused!(
        "source_reference",
        kim.wallet.deposit(proto::DepositRequest {
            source: proto::Source::Egold as i32,
            amount: "1".into(),
            source_reference: "12a456".into(),
            idempotency_key: "d4".into()
        })
    );
    refused!(
        "destination",
        kim.wallet.withdraw(proto::WithdrawRequest {
            amount: "1".into(),
            destination: String::new(),
            idempotency_key: "w".into()
        })
    );
    refused!(
        "quantity",
        kim.wallet.buy_divmids(proto::BuyDivmidsRequest {
            quantity: "-5".into(),
            max_price: "1".into(),
            idempotency_key: "b".into()
        })
    );
    refused!(
        "max_price",
        kim.wallet.buy_divmids(proto::BuyDivmidsRequest {
            quantity: "5".into(),
            max_price: "NaN".into(),
            idempotency_key: "b2".into()
        })
    );
    refused!(
        "page_size",
        kim.wallet
            .list_ledger_entries(proto::ListLedgerEntriesRequest {
                page_size: 5_000,
                page_token: String::new()
            })
    );
    refused!(
        "page_token",
        kim.wallet
            .list_ledger_entries(proto::ListLedgerEntriesRequest {
                page_size: 5,
                page_token: "abc".into()
            })
    );
    refused!(
        "amount",
        service.metering.charge(proto::ChargeRequest {
            account_id: kim_id.clone(),
            amount: "0".into(),
            idempotency_key: "c".into(),
            memo: String::new()
        })
    );
    refused!(
        "account_id",
        service.metering.charge(proto::ChargeRequest {
            account_id: "kim".into(),
            amount: "1".into(),
            idempotency_key: "c2".into(),
            memo: String::new()
        })
    );
    refused!(
        "type",
        kim.trading.place_order(proto::PlaceOrderRequest {
            r#type: 0,
            ..limit(proto::Side::Buy, "0.5", "1")
        })
    );
    refused!(
        "market",
        kim.trading.place_order(proto::PlaceOrderRequest {
            market: String::new(),
            ..limit(proto::Side::Buy, "0.5", "1")
        })
    );
    refused!(
        "quantity",
        kim.trading.amend_order(proto::AmendOrderRequest {
            order_id: order.order_id.clone(),
            quantity: "0.001".into(),
            price: String::new()
        })
    );
    refused!(
        "price",
        kim.trading.amend_order(proto::AmendOrderRequest {
            order_id: order.order_id.clone(),
            quantity: String::new(),
            price: "0.12345".into()
        })
    );
    refused!(
        "order_id",
        kim.trading.amend_order(proto::AmendOrderRequest {
            order_id: "one".into(),
            quantity: "1".into(),
            price: String::new()
        })
    );
    refused!(
        "order_id",
        kim.trading.cancel_order(proto::CancelOrderRequest {
            order_id: String::new(),
            client_order_id: String::new()
        })
    );
    refused!(
        "order_id",
        kim.trading.get_order(proto::GetOrderRequest {
            order_id: "1".into(),
            client_order_id: "both".into()
        })
    );
    refused!(
        "depth",
        market.get_order_book(proto::GetOrderBookRequest {
            market: "DVM-USD".into(),
            depth: 5_000
        })
    );
    refused!(
        "interval",
        market.get_candles(proto::GetCandlesRequest {
            market: "DVM-USD".into(),
            interval: 0,
            from_ms: 0,
            to_ms: 1
        })
    );
    refused!(
        "to_ms",
        market.get_candles(proto::GetCandlesRequest {
            market: "DVM-USD".into(),
            interval: proto::CandleInterval::CandleInterval1m as i32,
            from_ms: 10,
            to_ms: 5
        })
    );
    for (field, status) in &failures {
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            status.message().starts_with(&format!("{field}: ")),
            "{field}: {}",
            status.message()
        );
    }
    assert_eq!(
        (balances(&mut kim).await, supply(&mut issuer).await),
        before,
        "nothing changed"
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

#[tokio::test]
async fn a_peer_that_keeps_failing_to_authenticate_is_refused_for_the_minute() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start_with(directory.path(), |config| {
        config.server.auth_failures_per_minute_max = 5;
    })
    .await;
    let channel = server.channel().await;
    let mut guesser = clients(&channel, Some("a-guessed-token-that-is-not-right-0123"));
    for _ in 0..5 {
        let refused = guesser
            .issuer
            .get_supply(proto::GetSupplyRequest {})
            .await
            .expect_err("unknown token");
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
    // Now even the right token from that address waits for the minute to pass.
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let refused = issuer
        .issuer
        .get_supply(proto::GetSupplyRequest {})
        .await
        .expect_err("the address is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .starts_with("auth_failures_per_minute_max"),
        "{}",
        refused.message()
    );
    // Market data needs no token and stays open.
    MarketDataClient::new(channel.clone())
        .get_markets(proto::GetMarketsRequest {})
        .await
        .expect("market data is served");
    server.stop().await;
}

/// Whether a wallet call with `token` is served, or its refusal's code.
async fn balances_with(channel: &Channel, token: &str) -> Result<(), Code> {
    clients(channel, Some(token))
        .wallet
        .get_balances(proto::GetBalancesRequest {})
        .await
        .map(|_| ())
        .map_err(|status| status.code())
}

#[tokio::test]
async fn the_issuer_rotates_and_revokes_tokens_and_a_restart_keeps_them() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (account_id, first) = create(
        &mut issuer,
        "nora",
        proto::Tier::Public,
        proto::Role::Trader,
    )
    .await;
    assert_eq!(balances_with(&channel, &first).await, Ok(()));
    let rotated = issuer
        .issuer
        .rotate_token(proto::RotateTokenRequest {
            account_id: account_id.clone(),
        })
        .await
        .expect("rotated")
        .into_inner()
        .api_token;
    assert_ne!(rotated, first);
    assert_eq!(
        balances_with(&channel, &first).await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(balances_with(&channel, &rotated).await, Ok(()));
    // The issuer's own accounts and unknown ones have no token to rotate.
    for account_id in ["1", "2", "999"] {
        let refused = issuer
            .issuer
            .rotate_token(proto::RotateTokenRequest {
                account_id: account_id.into(),
            })
            .await
            .expect_err("not a trader or service");
        assert_eq!(refused.code(), Code::NotFound, "{account_id}");
    }
    // Only the issuer may rotate.
    let mut nora = clients(&channel, Some(&rotated));
    let refused = nora
        .issuer
        .rotate_token(proto::RotateTokenRequest {
            account_id: account_id.clone(),
        })
        .await
        .expect_err("the issuer's call");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // After a restart the rotated token works and the first does not.
    server.stop().await;
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    assert_eq!(
        balances_with(&channel, &first).await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(balances_with(&channel, &rotated).await, Ok(()));
    issuer
        .issuer
        .revoke_token(proto::RevokeTokenRequest {
            account_id: account_id.clone(),
        })
        .await
        .expect("revoked");
    assert_eq!(
        balances_with(&channel, &rotated).await,
        Err(Code::Unauthenticated)
    );
    server.stop().await;
    let server = Server::start(directory.path()).await;
    let channel = server.channel().await;
    assert_eq!(
        balances_with(&channel, &rotated).await,
        Err(Code::Unauthenticated),
        "still revoked after a restart"
    );
    server.stop().await;
}
