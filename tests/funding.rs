//! Deposits and their processors: a retried deposit is answered from the exchange without
//! asking the processor again, the processor gets the idempotency key, a deposit the
//! exchange would refuse is not authorized, and with the sandbox switched off every
//! deposit is refused by name.

mod common;

use std::sync::{Arc, Mutex};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_deposit_is_authorized_once() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut config = Config::default();
    config.server.data_dir = directory.path().to_path_buf();
    config.server.issuer_token = Some(ISSUER_TOKEN.to_string());
    let card = Recording::default();
    let funding = FundingSources::new(
        Box::new(card.clone()),
        Box::new(SandboxPaypal),
        Box::new(SandboxEgold),
    );
    let context = open_with(config, None, |store| store, funding).expect("opens");
    let server = Running::serve(context).await;
    let channel = server.channel().await;
    wait_serving(&channel).await;
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let (_, token) = create(
        &mut issuer,
        "olga",
        proto::Tier::Public,
        proto::Role::Trader,
    )
    .await;
    let mut olga = clients(&channel, Some(&token));

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
