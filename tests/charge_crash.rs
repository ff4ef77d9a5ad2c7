//! Crash recovery under metering: services charge a holder whose pool tops itself up,
//! through `ChargeSession`s, and `divmid-server` is killed with SIGKILL at random moments.
//! After each kill the store must recover to one state by both ways (snapshot and full
//! replay); once the server is back every acknowledged charge must be there (a retry of
//! its key answers the same seq and changes nothing); and at the end the ledger must show
//! no top-up without the charge that caused it, and the charges must add up to what the
//! issuer counts as spent.
//!
//! `DIVMID_CHARGE_CRASH_CYCLES` sets the number of cycles (6 by default).

#[path = "common/process.rs"]
mod process;

use process::authorized;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use divmid::api::proto::{
    self, charge_session_response::Result as ChargeResult, issuer_client::IssuerClient,
    metering_client::MeteringClient, wallet_client::WalletClient,
};
use divmid::config::EngineConfig;
use divmid::engine::LevelBook;
use divmid::store::{recover_with, Store};
use tonic::transport::Channel;

const ISSUER_TOKEN: &str = "issuer-token-for-the-charge-crash-test";
/// Charges one session carries before the next opens.
const CHARGES_PER_SESSION: u64 = 200;
const CLIENTS: usize = 2;

fn cycles() -> u64 {
    std::env::var("DIVMID_CHARGE_CRASH_CYCLES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(6)
}

async fn connect(address: String) -> Channel {
    Channel::from_shared(address)
        .expect("an address")
        .connect()
        .await
        .expect("connects")
}

/// The holder (id and token), whose pool tops up to 2 DVM below 0.5, and the services'
/// tokens.
async fn set_up(channel: &Channel) -> ((String, String), Vec<String>) {
    process::mint_at_one_dollar(channel, ISSUER_TOKEN, "100000000").await;
    let issuer = IssuerClient::new(channel.clone());
    let create = |name: &str, role: proto::Role| {
        let request = proto::CreateAccountRequest {
            name: name.into(),
            tier: proto::Tier::Public as i32,
            role: role as i32,
        };
        let mut issuer = issuer.clone();
        async move {
            let created = issuer
                .create_account(authorized(ISSUER_TOKEN, request))
                .await
                .expect("created")
                .into_inner();
            (created.account_id, created.api_token)
        }
    };
    let holder = create("holder", proto::Role::Trader).await;
    let mut services = Vec::new();
    for index in 0..CLIENTS {
        services.push(
            create(&format!("service {index}"), proto::Role::Service)
                .await
                .1,
        );
    }
    let mut wallet = WalletClient::new(channel.clone());
    let deposit = proto::DepositRequest {
        source: proto::Source::Card as i32,
        amount: "10000000".into(),
        source_reference: "4111111111111111".into(),
        idempotency_key: "fund".into(),
    };
    wallet
        .deposit(authorized(&holder.1, deposit))
        .await
        .expect("funded");
    let top_up = proto::SetAutoTopUpRequest {
        enabled: true,
        threshold: "0.5".into(),
        target: "2".into(),
        max_price: "1".into(),
        monthly_max_usd: "10000000".into(),
    };
    wallet
        .set_auto_top_up(authorized(&holder.1, top_up))
        .await
        .expect("set");
    (holder, services)
}

fn session_of(holder_id: &str, keys: &[String]) -> Vec<proto::ChargeSessionRequest> {
    keys.iter()
        .enumerate()
        .map(|(index, key)| proto::ChargeSessionRequest {
            request_id: index as u64,
            charge: Some(proto::ChargeRequest {
                account_id: holder_id.to_string(),
                amount: "0.07".into(),
                idempotency_key: key.clone(),
                memo: "click".into(),
            }),
        })
        .collect()
}

/// Sends sessions of charges until the server goes away; records every charge answered
/// `charged`, with its seq, in `acknowledged`.
async fn drive(
    channel: Channel,
    token: String,
    holder_id: String,
    prefix: String,
    acknowledged: Arc<Mutex<Vec<(String, String, u64)>>>,
) {
    let mut metering = MeteringClient::new(channel);
    for session in 0u64.. {
        let keys: Vec<String> = (0..CHARGES_PER_SESSION)
            .map(|index| format!("{prefix}-s{session}-{index}"))
            .collect();
        let requests = tokio_stream::iter(session_of(&holder_id, &keys));
        let Ok(responses) = metering.charge_session(authorized(&token, requests)).await else {
            return;
        };
        let mut responses = responses.into_inner();
        while let Ok(Some(response)) = responses.message().await {
            let key = keys[response.request_id as usize].clone();
            match response.result {
                Some(ChargeResult::Charged(charged)) => acknowledged
                    .lock()
                    .expect("not poisoned")
                    .push((token.clone(), key, charged.seq)),
                other => panic!("charge {key} refused: {other:?}"),
            }
        }
    }
}

/// A retry of every acknowledged key, by the service that charged it, answers its
/// original seq.
async fn check_acknowledged(
    channel: &Channel,
    holder_id: &str,
    acknowledged: &[(String, String, u64)],
) {
    let mut metering = MeteringClient::new(channel.clone());
    let services: std::collections::BTreeSet<&String> =
        acknowledged.iter().map(|(service, ..)| service).collect();
    for service in services {
        let mine: Vec<&(String, String, u64)> = acknowledged
            .iter()
            .filter(|(owner, ..)| owner == service)
            .collect();
        for chunk in mine.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|(_, key, _)| key.clone()).collect();
            let requests = tokio_stream::iter(session_of(holder_id, &keys));
            let responses = metering
                .charge_session(authorized(service, requests))
                .await
                .expect("a session")
                .into_inner();
            check_answers(responses, chunk).await;
        }
    }
}

async fn check_answers(
    mut responses: tonic::Streaming<proto::ChargeSessionResponse>,
    expected: &[&(String, String, u64)],
) {
    let mut answered = 0;
    while let Some(response) = responses.message().await.expect("answered") {
        let (_, key, seq) = expected[response.request_id as usize];
        match response.result {
            Some(ChargeResult::Charged(charged)) => {
                assert_eq!(
                    charged.seq, *seq,
                    "acknowledged charge {key} is lost or changed"
                )
            }
            other => panic!("acknowledged charge {key}: {other:?}"),
        }
        answered += 1;
    }
    assert_eq!(answered, expected.len());
}

/// Every ledger entry of the holder, newest first.
async fn ledger(channel: &Channel, token: &str) -> Vec<proto::LedgerEntry> {
    let mut wallet = WalletClient::new(channel.clone());
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = proto::ListLedgerEntriesRequest {
            page_size: 1_000,
            page_token,
        };
        let page = wallet
            .list_ledger_entries(authorized(token, request))
            .await
            .expect("entries")
            .into_inner();
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return entries;
        }
        page_token = page.next_page_token;
    }
}

fn micros(text: &str) -> u64 {
    let (whole, fraction) = text
        .trim_start_matches('-')
        .split_once('.')
        .expect("places");
    whole.parse::<u64>().expect("digits") * 1_000_000 + fraction.parse::<u64>().expect("digits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_charge_and_top_up_survives_kill_9() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut accounts = None;
    let mut random: u64 = 0x2545_F491_4F6C_DD1D;
    let mut checked = 0;
    for cycle in 0..cycles() {
        let (mut child, address) = process::start_server(directory.path(), ISSUER_TOKEN, &[]);
        let channel = connect(address).await;
        if accounts.is_none() {
            accounts = Some(set_up(&channel).await);
        }
        let ((holder_id, _), services) = accounts.clone().expect("set up");
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let clients: Vec<_> = services
            .iter()
            .enumerate()
            .map(|(client, token)| {
                tokio::spawn(drive(
                    channel.clone(),
                    token.clone(),
                    holder_id.clone(),
                    format!("c{cycle}-{client}"),
                    Arc::clone(&acknowledged),
                ))
            })
            .collect();
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        tokio::time::sleep(Duration::from_millis(100 + random % 400)).await;
        child.kill().expect("SIGKILL is delivered");
        child.wait().expect("reaped");
        for client in clients {
            client
                .await
                .expect("a client ends without a refused charge");
        }
        drop(channel);
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
        let (mut child, address) = process::start_server(directory.path(), ISSUER_TOKEN, &[]);
        let channel = connect(address).await;
        let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("not poisoned"));
        check_acknowledged(&channel, &holder_id, &acknowledged).await;
        checked += acknowledged.len();
        child.kill().expect("stopped");
        child.wait().expect("reaped");
    }
    assert!(checked > 0, "nothing was acknowledged");

    let ((_, holder_token), _) = accounts.expect("set up");
    let (mut child, address) = process::start_server(directory.path(), ISSUER_TOKEN, &[]);
    let channel = connect(address).await;
    let entries = ledger(&channel, &holder_token).await;
    let charge_seqs: std::collections::BTreeSet<u64> = entries
        .iter()
        .filter(|entry| entry.kind == "charge")
        .map(|entry| entry.seq)
        .collect();
    let top_ups: Vec<u64> = entries
        .iter()
        .filter(|entry| entry.kind == "auto_top_up" && entry.asset == "DVM")
        .map(|entry| entry.seq)
        .collect();
    assert!(top_ups.len() > 1, "the pool topped up");
    for seq in &top_ups {
        assert!(
            charge_seqs.contains(&(seq + 1)),
            "the top-up at seq {seq} has no charge"
        );
    }
    let charged: u64 = entries
        .iter()
        .filter(|entry| entry.kind == "charge")
        .map(|entry| micros(&entry.available_change))
        .sum();
    let supply = IssuerClient::new(channel.clone())
        .get_supply(authorized(ISSUER_TOKEN, proto::GetSupplyRequest {}))
        .await
        .expect("supply")
        .into_inner();
    assert_eq!(
        micros(&supply.spent),
        charged,
        "spent is what the ledger charged"
    );
    assert!(
        charge_seqs.len() >= checked,
        "fewer charges than acknowledged"
    );
    child.kill().expect("stopped");
    child.wait().expect("reaped");
}
