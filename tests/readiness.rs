//! Health says `SERVING` only once every read is served: after a restart on a journal
//! that the history index has not reached, health is `NOT_SERVING` until it has, and a
//! client that waited for `SERVING` reads its whole history at once.

mod common;

use common::{clients, wait_serving, Running, ISSUER_TOKEN};
use divmid::api::auth::hash_token;
use divmid::api::proto;
use divmid::api::server::open;
use divmid::command::{Command, NewOrder};
use divmid::config::{Config, EngineConfig};
use divmid::engine::LevelBook;
use divmid::pipeline::{Pipeline, PipelineConfig};
use divmid::store::{recover, Store};
use divmid::types::{
    AccountId, Amount, FundingSourceKind, MarketId, OrderTerms, OrderType, Price, Quantity, Role,
    SelfTradePrevention, Side, Tier, TimeInForce,
};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const TRADER_TOKEN: &str = "trader-token-for-readiness-0123456789";
const TRADER: AccountId = AccountId(3);
const ORDERS: u64 = 40_000;

/// Writes a journal of `ORDERS` resting bids by one trader, with no history index (the
/// pipeline runs without its indexer), as a server stopped before indexing would leave.
fn journal_without_index(directory: &std::path::Path) {
    let store = Store::open(directory).expect("the store opens");
    let recovered = recover::<LevelBook>(&store, EngineConfig::default()).expect("recovers");
    let pipeline = Pipeline::start(recovered.sequencer, store, PipelineConfig::default());
    let mut commands = vec![
        Command::CreateAccount {
            name: "trader".into(),
            role: Role::Trader,
            tier: Tier::Public,
            token_hash: hash_token(TRADER_TOKEN),
        },
        Command::Deposit {
            account: TRADER,
            source: FundingSourceKind::Card,
            amount: Amount(1_000_000_000_000),
            source_reference: "4111111111111111".into(),
            idempotency_key: "deposit".into(),
        },
    ];
    commands.extend((0..ORDERS).map(|index| {
        Command::PlaceOrder(NewOrder {
            account: TRADER,
            terms: OrderTerms {
                market: MarketId(0),
                side: Side::Buy,
                order_type: OrderType::Limit,
                price: Some(Price(1_000 + index % 100)),
                quantity: Quantity(1),
                time_in_force: TimeInForce::GoodTillCanceled,
                post_only: false,
                self_trade_prevention: SelfTradePrevention::CancelTaker,
            },
            client_order_id: None,
        })
    }));
    for wave in commands.chunks(10_000) {
        let receivers: Vec<_> = wave
            .iter()
            .map(|command| pipeline.submit(1, command.clone()).expect("queued"))
            .collect();
        for receiver in receivers {
            receiver
                .blocking_recv()
                .expect("an outcome")
                .expect("accepted");
        }
    }
    pipeline.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_serving_only_once_history_has_caught_up() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().to_path_buf();
    tokio::task::spawn_blocking(move || journal_without_index(&path))
        .await
        .expect("the journal is written");

    let mut config = Config::default();
    config.server.data_dir = directory.path().to_path_buf();
    config.server.issuer_token = Some(ISSUER_TOKEN.to_string());
    let context = open(config, None).expect("the exchange opens");
    let history = context.history.clone();
    let recovered_seq = context.pipeline.committed_seq();
    let server = Running::serve(context).await;
    let channel = server.channel().await;
    let first = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "divmid.v1.Trading".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        first.status,
        ServingStatus::NotServing as i32,
        "{ORDERS} orders are not indexed yet"
    );

    wait_serving(&channel).await;
    assert!(
        history.indexed_seq().expect("readable") >= recovered_seq,
        "SERVING before the history index reached the recovered journal"
    );
    let mut trader = clients(&channel, Some(TRADER_TOKEN));
    let page = trader
        .trading
        .list_orders(proto::ListOrdersRequest {
            open_only: false,
            page_size: 1_000,
            page_token: String::new(),
        })
        .await
        .expect("history answers once health says SERVING")
        .into_inner();
    assert_eq!(page.orders.len(), 1_000);
    let entries = trader
        .wallet
        .list_ledger_entries(proto::ListLedgerEntriesRequest {
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .expect("the ledger answers at once")
        .into_inner();
    assert_eq!(entries.entries.len(), 10);
    server.stop().await.expect("the server stops cleanly");
}
