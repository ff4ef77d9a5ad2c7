//! Deposits and their processors: a retried deposit is answered from the exchange without
//! asking the processor again, the processor gets the idempotency key, a deposit the
//! exchange would refuse is not authorized, a slow processor holds up only its own deposit,
//! and with the sandbox switched off every deposit is refused by name.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::{clients, create, wait_serving, Running, Server, ISSUER_TOKEN};
use divmid::api::funding::{
    FundingSource, FundingSources, SandboxCard, SandboxEgold, SandboxPaypal,
};
use divmid::api::proto;
use divmid::api::server::open_with;
use divmid::config::Config;
use divmid::error::Reject;
use tonic::Code;

/// A card processor that records every authorization it is asked for.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<(String, u64, String)>>>);

impl FundingSource for Recording {
    fn authorize(&self, reference: &str, amount: u64, key: &str) -> Result<(), Reject> {
        if let Ok(mut asked) = self.0.lock() {
            asked.push((reference.to_string(), amount, key.to_string()));
        }
        SandboxCard.authorize(reference, amount, key)
    }

    fn stored_reference(&self, reference: &str) -> String {
        SandboxCard.stored_reference(reference)
    }
}

fn deposit(key: &str) -> proto::DepositRequest {
    proto::DepositRequest {
        source: proto::Source::Card as i32,
        amount: "25".into(),
        source_reference: "4111111111111111".into(),
        idempotency_key: key.into(),
    }
}

/// A server on `data_dir` whose card processor is `card` (the others the sandbox's), a
/// channel to it once it serves, and a trader named `name`'s clients.
async fn serve_with_card(
    data_dir: &std::path::Path,
    card: impl FundingSource + 'static,
    name: &str,
) -> (Running, tonic::transport::Channel, common::Clients) {
    let mut config = Config::default();
    config.server.data_dir = data_dir.to_path_buf();
    config.server.issuer_token = Some(ISSUER_TOKEN.to_string());
    let funding = FundingSources::new(
        Box::new(card),
        Box::new(SandboxPaypal),
        Box::new(SandboxEgold),
    );
    let context = open_with(config, None, |store| store, funding).expect("opens");
    let server = Running::serve(context).await;
    let channel = server.channel().await;
    wait_serving(&channel).await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (_, token) = create(&mut issuer, name, proto::Tier::Public, proto::Role::Trader).await;
    let trader = clients(&channel, Some(&token));
    (server, channel, trader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_deposit_is_authorized_once() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let card = Recording::default();
    let (server, _, mut olga) = serve_with_card(directory.path(), card.clone(), "olga").await;

    let first = olga
        .wallet
        .deposit(deposit("pay-1"))
        .await
        .expect("deposited");
    let retry = olga
        .wallet
        .deposit(deposit("pay-1"))
        .await
        .expect("a retry");
    assert_eq!(
        first.into_inner(),
        retry.into_inner(),
        "the retry answers as the first"
    );
    // A key the exchange would refuse is never sent to the processor.
    let refused = olga
        .wallet
        .deposit(deposit(&"k".repeat(65)))
        .await
        .expect_err("too long");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("idempotency_key"),
        "{refused:?}"
    );
    let asked = card.0.lock().expect("recorded").clone();
    assert_eq!(
        asked,
        vec![(
            "4111111111111111".to_string(),
            25_000_000,
            "pay-1".to_string()
        )],
        "one authorization, with the deposit's key"
    );
    server.stop().await.expect("stops cleanly");
}

/// A card processor that holds each authorization until it is released (or 5 s pass),
/// as a real one waits on the network.
struct Stalled {
    asked: Arc<AtomicBool>,
    release: Mutex<mpsc::Receiver<()>>,
    released: Arc<AtomicBool>,
}

impl FundingSource for Stalled {
    fn authorize(&self, reference: &str, amount: u64, key: &str) -> Result<(), Reject> {
        self.asked.store(true, Ordering::Release);
        if let Ok(release) = self.release.lock() {
            let released = release.recv_timeout(Duration::from_secs(5)).is_ok();
            self.released.store(released, Ordering::Release);
        }
        SandboxCard.authorize(reference, amount, key)
    }
}

// One runtime thread for the server and its clients: a processor asked on it would stop
// every other call until it answered.
#[tokio::test]
async fn a_slow_processor_holds_up_only_its_own_deposit() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let (release, waiting) = mpsc::channel();
    let (asked, released) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let card = Stalled {
        asked: Arc::clone(&asked),
        release: Mutex::new(waiting),
        released: Arc::clone(&released),
    };
    let (server, channel, mut ida) = serve_with_card(directory.path(), card, "ida").await;

    let deposit = tokio::spawn(async move { ida.wallet.deposit(deposit("slow-1")).await });
    while !asked.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // While the processor holds the deposit, another caller is answered.
    let mut other = clients(&channel, Some(ISSUER_TOKEN));
    other
        .issuer
        .get_supply(proto::GetSupplyRequest {})
        .await
        .expect("answered while a deposit waits on its processor");
    release.send(()).expect("the processor waits");
    let deposited = deposit
        .await
        .expect("the deposit's task")
        .expect("deposited");
    assert_eq!(
        deposited
            .into_inner()
            .balance
            .map(|balance| balance.available),
        Some("25.000000".to_string())
    );
    assert!(
        released.load(Ordering::Acquire),
        "the other call was answered only after the processor gave up waiting"
    );
    server.stop().await.expect("stops cleanly");
}

#[tokio::test]
async fn with_the_sandbox_off_every_deposit_is_refused_by_name() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start_with(directory.path(), |config| {
        config.server.funding_sandbox = false;
    })
    .await;
    let channel = server.channel().await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (_, token) = create(&mut issuer, "pia", proto::Tier::Public, proto::Role::Trader).await;
    let mut pia = clients(&channel, Some(&token));
    let refused = pia
        .wallet
        .deposit(deposit("pay-1"))
        .await
        .expect_err("no processor");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused
            .message()
            .contains("no card processor is configured"),
        "{refused:?}"
    );
    server.stop().await;
}
