//! Bad input over real gRPC: every refusal names its field and changes nothing, for
//! every RPC.

mod common;

use common::{balances, clients, create, limit, Clients, Server, ISSUER_TOKEN};
use divmid::api::proto::{self, market_data_client::MarketDataClient};
use tonic::{Code, Status};

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
