//! Crash recovery of the real server: `divmid-server` is driven over gRPC by concurrent
//! clients and killed with SIGKILL at random moments. After each kill the data directory
//! must recover (the journal replays to exactly its recorded events, conservation holds,
//! and the newest snapshot gives the same state as a replay of the whole journal), and once
//! the server is back every acknowledged order must be found and every acknowledged deposit
//! must be recognised as already applied.
//!
//! `DIVMID_SERVER_CRASH_CYCLES` sets the number of cycles (10 by default).

#[path = "common/process.rs"]
mod process;

use process::authorized;

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use divmid::api::proto::{
    self, issuer_client::IssuerClient, trading_client::TradingClient, wallet_client::WalletClient,
};
use divmid::config::EngineConfig;
use divmid::engine::LevelBook;
use divmid::store::{recover_with, Store};
use tonic::transport::Channel;

const ISSUER_TOKEN: &str = "issuer-token-for-the-crash-test-0123";

fn cycles() -> u64 {
    std::env::var("DIVMID_SERVER_CRASH_CYCLES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10)
}

/// Starts the server on a free port and returns it with its address.
fn start(data_dir: &std::path::Path) -> (Child, String) {
    process::start_server(data_dir, ISSUER_TOKEN, &[])
}

/// What the clients were told succeeded.
#[derive(Default)]
struct Acknowledged {
    orders: Vec<(String, String)>,
    deposits: Vec<(String, proto::DepositRequest)>,
}

async fn set_up(channel: &Channel) -> Vec<String> {
    process::mint_at_one_dollar(channel, ISSUER_TOKEN, "1000000").await;
    let mut issuer = IssuerClient::new(channel.clone());
    let mut tokens = Vec::new();
    for index in 0..4 {
        let created = issuer
            .create_account(authorized(
                ISSUER_TOKEN,
                proto::CreateAccountRequest {
                    name: format!("trader {index}"),
                    tier: proto::Tier::Public as i32,
                    role: proto::Role::Trader as i32,
                },
            ))
            .await
            .expect("created")
            .into_inner();
        let mut wallet = WalletClient::new(channel.clone());
        wallet
            .deposit(authorized(
                &created.api_token,
                proto::DepositRequest {
                    source: proto::Source::Card as i32,
                    amount: "100000".into(),
                    source_reference: "4111111111111111".into(),
                    idempotency_key: "fund".into(),
                },
            ))
            .await
            .expect("funded");
        wallet
            .buy_divmids(authorized(
                &created.api_token,
                proto::BuyDivmidsRequest {
                    quantity: "10000".into(),
                    max_price: "1".into(),
                    idempotency_key: "buy".into(),
                },
            ))
            .await
            .expect("bought");
        tokens.push(created.api_token);
    }
    tokens
}

/// One client: orders and deposits until the server goes away.
async fn drive(
    channel: Channel,
    token: String,
    cycle: u64,
    client: usize,
    acknowledged: Arc<Mutex<Acknowledged>>,
) {
    let mut trading = TradingClient::new(channel.clone());
    let mut wallet = WalletClient::new(channel);
    for index in 0u64.. {
        if index % 5 == 4 {
            let deposit = proto::DepositRequest {
                source: proto::Source::Egold as i32,
                amount: "1.25".into(),
                source_reference: "123456".into(),
                idempotency_key: format!("c{cycle}-{client}-d{index}"),
            };
            match wallet.deposit(authorized(&token, deposit.clone())).await {
                Ok(_) => acknowledged
                    .lock()
                    .expect("not poisoned")
                    .deposits
                    .push((token.clone(), deposit)),
                Err(_) => return,
            }
            continue;
        }
        let client_order_id = format!("c{cycle}-{client}-o{index}");
        let (side, price) = if index % 2 == 0 {
            (
                proto::Side::Buy,
                format!("0.{:04}", 9_950 + (index * 7 + client as u64) % 60),
            )
        } else {
            (
                proto::Side::Sell,
                format!("0.{:04}", 9_960 + (index * 11 + client as u64) % 60),
            )
        };
        let order = proto::PlaceOrderRequest {
            market: "DVM-USD".into(),
            side: side as i32,
            r#type: proto::OrderType::Limit as i32,
            price,
            quantity: "1.5".into(),
            time_in_force: proto::TimeInForce::Gtc as i32,
            client_order_id: client_order_id.clone(),
            ..Default::default()
        };
        match trading.place_order(authorized(&token, order)).await {
            Ok(_) => acknowledged
                .lock()
                .expect("not poisoned")
                .orders
                .push((token.clone(), client_order_id)),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {}
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_request_survives_kill_9_of_the_server() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut tokens: Vec<String> = Vec::new();
    let mut random: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut checked = 0;
    for cycle in 0..cycles() {
        let (mut child, address) = start(directory.path());
        let channel = Channel::from_shared(address)
            .expect("an address")
            .connect()
            .await
            .expect("connects");
        if tokens.is_empty() {
            tokens = set_up(&channel).await;
        }
        let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
        let clients: Vec<_> = tokens
            .iter()
            .enumerate()
            .map(|(client, token)| {
                tokio::spawn(drive(
                    channel.clone(),
                    token.clone(),
                    cycle,
                    client,
                    Arc::clone(&acknowledged),
                ))
            })
            .collect();
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        tokio::time::sleep(Duration::from_millis(50 + random % 250)).await;
        child.kill().expect("SIGKILL is delivered");
        child.wait().expect("reaped");
        for client in clients {
            let _ = client.await;
        }
        drop(channel);

        // Offline: the store recovers and both ways of recovering agree.
        {
            let store = Store::open(directory.path()).expect("the store opens");
            let from_snapshot = recover_with::<LevelBook>(&store, EngineConfig::default(), true)
                .unwrap_or_else(|error| panic!("cycle {cycle}: recovery failed: {error}"));
            let from_genesis = recover_with::<LevelBook>(&store, EngineConfig::default(), false)
                .unwrap_or_else(|error| panic!("cycle {cycle}: full replay failed: {error}"));
            assert_eq!(
                from_snapshot.sequencer.state_hash(),
                from_genesis.sequencer.state_hash()
            );
        }

        // Back online: everything acknowledged is there.
        let (mut child, address) = start(directory.path());
        let channel = Channel::from_shared(address)
            .expect("an address")
            .connect()
            .await
            .expect("connects");
        let mut trading = TradingClient::new(channel.clone());
        let mut wallet = WalletClient::new(channel.clone());
        let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("not poisoned"));
        for (token, client_order_id) in &acknowledged.orders {
            let found = trading
                .get_order(authorized(
                    token,
                    proto::GetOrderRequest {
                        order_id: String::new(),
                        client_order_id: client_order_id.clone(),
                    },
                ))
                .await;
            assert!(
                found.is_ok(),
                "cycle {cycle}: acknowledged order {client_order_id} is lost: {found:?}"
            );
            checked += 1;
        }
        for (token, deposit) in &acknowledged.deposits {
            let before = wallet
                .get_balances(authorized(token, proto::GetBalancesRequest {}))
                .await
                .expect("balances")
                .into_inner();
            wallet
                .deposit(authorized(token, deposit.clone()))
                .await
                .expect("a retry of an applied deposit succeeds");
            let after = wallet
                .get_balances(authorized(token, proto::GetBalancesRequest {}))
                .await
                .expect("balances")
                .into_inner();
            assert_eq!(
                before, after,
                "cycle {cycle}: deposit {} was not applied before",
                deposit.idempotency_key
            );
            checked += 1;
        }
        child.kill().expect("stopped");
        child.wait().expect("reaped");
    }
    assert!(checked > 0, "nothing was acknowledged");
}
