//! Who may call what: calls without a token, with a bad one or with the wrong role, the
//! authorization matrix of every RPC, a peer that keeps failing to authenticate, and
//! tokens rotated and revoked across a restart.

mod common;

use common::{clients, create, limit, Server, ISSUER_TOKEN};
use divmid::api::proto::{self, market_data_client::MarketDataClient};
use tonic::transport::Channel;
use tonic::{Code, Status};

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

/// Calls every authenticated RPC with `token` and returns each status code, named.
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
