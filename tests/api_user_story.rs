//! The user story over real gRPC on 127.0.0.1:0, with exact balances after every step, a
//! graceful shutdown and a restart; and what stock tools see of the server (health,
//! reflection).

mod common;

use common::{balances, clients, create, limit, owned, Server, ISSUER_TOKEN};
use divmid::api::proto::{self, market_data_client::MarketDataClient};
use divmid::store::EngineStatus;
use tonic::transport::Channel;
use tonic::Code;

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

/// Five resting buys of 0.01 DVM at 0.50 USD by one trader, through `server`.
async fn five_resting_orders(server: &Server) -> common::Clients {
    let channel = server.channel().await;
    let mut traders = common::funded_traders(&channel, "100", &["alice"], "10", "1").await;
    let mut alice = traders.remove(0);
    for _ in 0..5 {
        alice
            .trading
            .place_order(limit(proto::Side::Buy, "0.5000", "0.01"))
            .await
            .expect("rests");
    }
    alice
}

async fn open_orders(trader: &mut common::Clients) -> usize {
    let listed = trader
        .trading
        .list_orders(proto::ListOrdersRequest {
            open_only: true,
            ..Default::default()
        })
        .await
        .expect("listed")
        .into_inner();
    listed.orders.len()
}

#[tokio::test]
async fn a_restart_under_tighter_limits_keeps_what_was_accepted_and_applies_them_from_then_on() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let alice = five_resting_orders(&server).await;
    server.stop().await;

    // Three open orders per account from now on: the five accepted under the old limit
    // were decided under it, and a replay decides them the same way.
    let tighten = |config: &mut divmid::config::Config| {
        config.engine.limits.open_orders_per_account_max = 3;
    };
    for restart in 0..2 {
        let server = Server::start_with(directory.path(), tighten).await;
        let mut alice = alice.on(&server.channel().await);
        assert_eq!(open_orders(&mut alice).await, 5, "restart {restart}");
        let refused = alice
            .trading
            .place_order(limit(proto::Side::Buy, "0.5000", "0.01"))
            .await
            .expect_err("a sixth open order is over the new limit");
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert!(
            refused.message().contains("open_orders_per_account_max"),
            "{}",
            refused.message()
        );
        server.stop().await;
    }

    // An offline check replays every command under the limits it was decided under,
    // whichever configuration it is given, and says what a start with it would do.
    let mut tightened = divmid::config::Config::default();
    tighten(&mut tightened);
    for (config, engine) in [
        (tightened.engine, EngineStatus::InForce),
        (
            divmid::config::EngineConfig::default(),
            EngineStatus::Changes,
        ),
    ] {
        let report = divmid::store::check(directory.path(), &config).expect("checks out");
        assert!(report.replayed_from_genesis);
        assert_eq!(report.engine, engine);
    }
}

#[tokio::test]
async fn a_restart_that_changes_a_markets_tick_is_refused_and_changes_nothing() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path()).await;
    let alice = five_resting_orders(&server).await;
    server.stop().await;

    // Prices are kept in ticks: under a tick ten times as large, a resting buy at 0.5000
    // would become one at 5.000.
    let mut config = divmid::config::Config::default();
    config.server.data_dir = directory.path().to_path_buf();
    config.server.issuer_token = Some(common::ISSUER_TOKEN.to_string());
    config.engine.markets[0].tick_micros *= 10;
    let error = match divmid::api::server::open(config, None) {
        Ok(_) => panic!("a server that reads the stored ticks under another tick starts"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("DVM-USD") && error.contains("tick_micros"),
        "{error}"
    );
    // An offline check with that configuration says the same.
    let mut ticked = divmid::config::EngineConfig::default();
    ticked.markets[0].tick_micros *= 10;
    let refused = divmid::store::check(directory.path(), &ticked).expect_err("refused");
    assert!(refused.to_string().contains("tick_micros"), "{refused}");

    let server = Server::start(directory.path()).await;
    let mut alice = alice.on(&server.channel().await);
    assert_eq!(open_orders(&mut alice).await, 5);
    let book = common::top_of_book(&server.channel().await).await;
    assert_eq!(book.bids[0].price, "0.5000");
    assert_eq!(book.bids[0].quantity, "0.05");
    server.stop().await;
}
