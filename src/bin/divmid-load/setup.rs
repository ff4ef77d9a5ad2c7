//! Accounts for a run, made with the issuer's token: a maker that quotes deep levels on
//! both sides of the mid (so that a worker's marketable orders always fill), a taker for
//! the workers' orders, and a service that charges the taker.

use divmid::api::proto;
use divmid::api::proto::issuer_client::IssuerClient;
use divmid::api::proto::trading_client::TradingClient;
use divmid::api::proto::wallet_client::WalletClient;
use tonic::transport::Channel;

use crate::flow::{price, MAKER_LEVELS, MID_TICKS};
use crate::run::Bearer;

/// What the workers use.
pub struct Accounts {
    /// The taker's token: orders are placed with it.
    pub taker_token: String,
    /// The taker's account id: charges are made to it.
    pub taker_account: String,
    /// The service's token: charges are made with it.
    pub service_token: String,
}

/// The divmids each maker level offers (and bids for).
const MAKER_LEVEL_DVM: u64 = 100_000;

type Failed = Box<dyn std::error::Error>;

/// Creates and funds the accounts of one run: `round` of this process's, which their
/// names carry beside its id.
pub async fn accounts(
    channel: &Channel,
    issuer_token: &str,
    round: usize,
) -> Result<Accounts, Failed> {
    let run = format!("{}-{round}", std::process::id());
    let mut issuer = IssuerClient::with_interceptor(channel.clone(), Bearer::new(issuer_token)?);
    issuer
        .set_issue_price(proto::SetIssuePriceRequest {
            tier: proto::Tier::Public as i32,
            price: "1.00".to_string(),
        })
        .await?;
    issuer
        .mint(proto::MintRequest {
            amount: "3000000".to_string(),
            memo: "divmid-load".to_string(),
            idempotency_key: format!("load-mint-{run}-{}", divmid::api::context::now_ms()),
        })
        .await?;
    let create = |name: String, role: proto::Role| {
        let mut issuer = issuer.clone();
        async move {
            let created = issuer
                .create_account(proto::CreateAccountRequest {
                    name,
                    tier: proto::Tier::Public as i32,
                    role: role as i32,
                })
                .await?
                .into_inner();
            Ok::<_, Failed>((created.account_id, created.api_token))
        }
    };
    let (_, maker_token) = create(format!("load-maker-{run}"), proto::Role::Trader).await?;
    let (taker_account, taker_token) =
        create(format!("load-taker-{run}"), proto::Role::Trader).await?;
    let (_, service_token) = create(format!("load-service-{run}"), proto::Role::Service).await?;
    fund(channel, &maker_token, "2000000", "1000000").await?;
    fund(channel, &taker_token, "1000000", "500000").await?;
    quote(channel, &maker_token).await?;
    Ok(Accounts {
        taker_token,
        taker_account,
        service_token,
    })
}

/// Deposits `usd` by card and buys `dvm` from the treasury.
async fn fund(channel: &Channel, token: &str, usd: &str, dvm: &str) -> Result<(), Failed> {
    let mut wallet = WalletClient::with_interceptor(channel.clone(), Bearer::new(token)?);
    wallet
        .deposit(proto::DepositRequest {
            source: proto::Source::Card as i32,
            amount: usd.to_string(),
            source_reference: "4111111111111111".to_string(),
            idempotency_key: "load-deposit".to_string(),
        })
        .await?;
    wallet
        .buy_divmids(proto::BuyDivmidsRequest {
            quantity: dvm.to_string(),
            max_price: "1.00".to_string(),
            idempotency_key: "load-buy".to_string(),
        })
        .await?;
    Ok(())
}

/// The maker's levels: `MAKER_LEVELS` a side, one tick apart from the mid.
async fn quote(channel: &Channel, token: &str) -> Result<(), Failed> {
    let mut trading = TradingClient::with_interceptor(channel.clone(), Bearer::new(token)?);
    for level in 1..=MAKER_LEVELS {
        for (side, ticks) in [
            (proto::Side::Buy, MID_TICKS - level),
            (proto::Side::Sell, MID_TICKS + level),
        ] {
            trading
                .place_order(proto::PlaceOrderRequest {
                    market: "DVM-USD".to_string(),
                    side: side as i32,
                    r#type: proto::OrderType::Limit as i32,
                    price: price(ticks),
                    quantity: MAKER_LEVEL_DVM.to_string(),
                    time_in_force: proto::TimeInForce::Gtc as i32,
                    ..Default::default()
                })
                .await?;
        }
    }
    Ok(())
}

/// Resting orders one seeding account places, at most (under the exchange's default
/// `open_orders_per_account_max` of 100,000).
const RESTING_PER_ACCOUNT: u64 = 90_000;

/// Price levels the resting orders are spread over, below everything the flow trades.
const RESTING_LEVELS: u64 = 1_000;

/// Places `count` buy orders far below the flow's prices (0.4000 to 0.4999), each of one
/// lot and without a client order id, through one order session per seeding account:
/// state for the exchange to carry while the flow runs.
pub async fn resting(channel: &Channel, issuer_token: &str, count: u64) -> Result<(), Failed> {
    let run = std::process::id();
    let mut issuer = IssuerClient::with_interceptor(channel.clone(), Bearer::new(issuer_token)?);
    let mut placed = 0;
    let mut account = 0;
    while placed < count {
        account += 1;
        let created = issuer
            .create_account(proto::CreateAccountRequest {
                name: format!("load-resting-{run}-{account}"),
                tier: proto::Tier::Public as i32,
                role: proto::Role::Trader as i32,
            })
            .await?
            .into_inner();
        let mut wallet =
            WalletClient::with_interceptor(channel.clone(), Bearer::new(&created.api_token)?);
        wallet
            .deposit(proto::DepositRequest {
                source: proto::Source::Card as i32,
                amount: "1000".to_string(),
                source_reference: "4111111111111111".to_string(),
                idempotency_key: "load-deposit".to_string(),
            })
            .await?;
        let orders = RESTING_PER_ACCOUNT.min(count - placed);
        let requests = (0..orders).map(|index| proto::OrderSessionRequest {
            request_id: index,
            command: Some(proto::order_session_request::Command::Place(
                proto::PlaceOrderRequest {
                    market: "DVM-USD".to_string(),
                    side: proto::Side::Buy as i32,
                    r#type: proto::OrderType::Limit as i32,
                    price: price(4_000 + index % RESTING_LEVELS),
                    quantity: "0.01".to_string(),
                    time_in_force: proto::TimeInForce::Gtc as i32,
                    ..Default::default()
                },
            )),
        });
        let mut trading =
            TradingClient::with_interceptor(channel.clone(), Bearer::new(&created.api_token)?);
        let mut answers = trading
            .order_session(tokio_stream::iter(requests))
            .await?
            .into_inner();
        while let Some(answer) = answers.message().await? {
            if let Some(proto::order_session_response::Result::Error(error)) = answer.result {
                return Err(format!("a resting order was refused: {}", error.message).into());
            }
            placed += 1;
        }
    }
    Ok(())
}
