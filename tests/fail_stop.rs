//! Fail-stop that a supervisor sees: when the store cannot commit, health reports
//! `NOT_SERVING` for every service, requests are answered `UNAVAILABLE`, the server stops
//! with an error (a non-zero exit status for `divmid-server`), and a restart recovers
//! every acknowledged command. Once with a journal that fails on purpose, in process;
//! once with a real full disk (a small tmpfs), where the test can mount one.

mod common;

use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use common::process::{authorized, start_server};
use common::{clients, wait_serving, Running, Server, ISSUER_TOKEN};
use divmid::api::health::SERVICES;
use divmid::api::proto;
use divmid::api::proto::issuer_client::IssuerClient;
use divmid::api::server::{open_with_journal, ServeError};
use divmid::config::Config;
use divmid::pipeline::FaultyJournal;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

type Statuses = tonic::Streaming<HealthCheckResponse>;

/// A health `Watch` on every service, each first seen `SERVING`.
async fn watch_every_service(channel: &Channel) -> Vec<Statuses> {
    let mut watches = Vec::new();
    for service in SERVICES {
        let mut statuses = HealthClient::new(channel.clone())
            .watch(HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .expect("health answers")
            .into_inner();
        let first = statuses.message().await.expect("a status").expect("one");
        assert_eq!(first.status, ServingStatus::Serving as i32, "{service:?}");
        watches.push(statuses);
    }
    watches
}

/// The next status of every watch is `NOT_SERVING`.
async fn expect_not_serving(watches: &mut [Statuses]) {
    for (service, statuses) in SERVICES.iter().zip(watches) {
        let next = tokio::time::timeout(Duration::from_secs(30), statuses.message())
            .await
            .expect("health reports a change")
            .expect("a status")
            .expect("one");
        assert_eq!(next.status, ServingStatus::NotServing as i32, "{service:?}");
    }
}

/// Mints one DVM at a time under fresh keys until the server refuses; returns how many
/// were acknowledged and the refusal.
async fn mint_until_refused(channel: &Channel, limit: u64) -> (u64, tonic::Status) {
    let mut issuer = IssuerClient::new(channel.clone());
    for index in 0..limit {
        let minted = issuer
            .mint(authorized(
                ISSUER_TOKEN,
                proto::MintRequest {
                    amount: "1".into(),
                    memo: "m".repeat(200),
                    idempotency_key: format!("mint-{index}"),
                },
            ))
            .await;
        if let Err(status) = minted {
            return (index, status);
        }
    }
    panic!("{limit} mints were all acknowledged; the store never failed");
}

/// The DVM minted, as the restarted server reports it.
async fn minted(channel: &Channel) -> String {
    clients(channel, Some(ISSUER_TOKEN))
        .issuer
        .get_supply(proto::GetSupplyRequest {})
        .await
        .expect("the supply answers")
        .into_inner()
        .minted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_journal_turns_health_not_serving_and_stops_the_server_with_an_error() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut config = Config::default();
    config.server.data_dir = directory.path().to_path_buf();
    config.server.issuer_token = Some(ISSUER_TOKEN.to_string());
    // The fifth append fails: four mints are acknowledged first.
    let context = open_with_journal(config, None, |store| FaultyJournal::new(store, 5))
        .expect("the exchange opens");
    let server = Running::serve(context).await;
    let channel = server.channel().await;
    wait_serving(&channel).await;
    let mut watches = watch_every_service(&channel).await;

    let (acknowledged, refusal) = mint_until_refused(&channel, 100).await;
    assert_eq!(acknowledged, 4);
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal:?}");
    assert!(refusal.message().contains("store failed"), "{refusal:?}");
    expect_not_serving(&mut watches).await;
    match server.ended(Duration::from_secs(30)).await {
        Err(error @ ServeError::StoreFailed(_)) => {
            assert!(error.to_string().contains("injected fault"), "{error}")
        }
        other => panic!("expected the server to stop with the store's failure: {other:?}"),
    }

    let restarted = Server::start(directory.path()).await;
    assert_eq!(minted(&restarted.channel().await).await, "4.000000");
    restarted.stop().await;
}

/// A channel to `address`, once health says the server is serving.
async fn serving_channel(address: String) -> Channel {
    let channel = Channel::from_shared(address)
        .expect("an address")
        .connect()
        .await
        .expect("connects");
    wait_serving(&channel).await;
    channel
}

/// A tmpfs of `megabytes` mounted on `path`, unmounted when dropped.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(path: &'a Path, megabytes: u64) -> Result<Tmpfs<'a>, String> {
        let output = Process::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|error| format!("mount: {error}"))?;
        match output.status.success() {
            true => Ok(Tmpfs(path)),
            false => Err(String::from_utf8_lossy(&output.stderr).trim().to_string()),
        }
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg(self.0).status();
    }
}

/// Writes `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("the filler is created");
    let block = vec![0xAB; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_turns_health_not_serving_and_the_server_exits_non_zero() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let disk = directory.path().join("disk");
    std::fs::create_dir(&disk).expect("a mount point");
    let _tmpfs = match Tmpfs::mount(&disk, 24) {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!(
                "a_full_disk_turns_health_not_serving_and_the_server_exits_non_zero DID NOT RUN: \
                 it mounts a small tmpfs, which needs root (or CAP_SYS_ADMIN): {why}. \
                 The in-process test with a failing journal ran instead."
            );
            return;
        }
    };
    let data_dir = disk.join("data");
    let (mut child, address) = start_server(&data_dir, ISSUER_TOKEN, &[]);
    let channel = serving_channel(address).await;
    let mut watches = watch_every_service(&channel).await;

    fill(&disk.join("filler"));
    let (acknowledged, refusal) = mint_until_refused(&channel, 1_000_000).await;
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal:?}");
    expect_not_serving(&mut watches).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            break status;
        }
        assert!(Instant::now() < deadline, "the server exits by itself");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "a failed store exits non-zero: {status}");

    // A restart needs a few MiB free; then every acknowledged mint is there.
    std::fs::remove_file(disk.join("filler")).expect("the filler is removed");
    let (mut child, address) = start_server(&data_dir, ISSUER_TOKEN, &[]);
    let channel = serving_channel(address).await;
    // The refused mint may have reached the disk before the failure: it was never
    // acknowledged, so either is right, as after a crash.
    let restarted = minted(&channel).await;
    let expected = [acknowledged, acknowledged + 1].map(|count| format!("{count}.000000"));
    assert!(
        expected.contains(&restarted),
        "{restarted} after {acknowledged} acknowledged"
    );
    child.kill().expect("stopped");
    child.wait().expect("reaped");
}
