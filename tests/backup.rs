//! Backups of a running exchange (`divmid issuer backup`), their restore into a new data
//! directory (`divmid-server restore`) and the offline checks (`divmid-server check`), all
//! through the real binaries.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::process::start_server;
use common::{clients, connect_serving, funded_traders, limit, place_all, Clients, ISSUER_TOKEN};
use divmid::api::proto;
use tonic::transport::Channel;

/// Runs `divmid-server` with `args`.
fn server_command(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_divmid-server"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("divmid-server runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The value after `label` on a line of a report, e.g. "seq 12" gives "12".
fn field(report: &str, label: &str) -> String {
    report
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no {label:?} in {report}"))
        .to_string()
}

/// Stops a server process with SIGTERM and waits for it.
fn stop(mut server: std::process::Child) {
    // SAFETY: kill has no memory preconditions; the pid is the child's, not yet reaped.
    let sent = unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0, "SIGTERM is delivered");
    let status = server.wait().expect("the server ends");
    assert!(status.success(), "the server stopped cleanly: {status:?}");
}

/// Trades in rounds of order sessions until `stop` is set: the taker's buys at 1 USD
/// take the maker's sells, a third of the maker's orders rest below. Returns every order
/// acknowledged, the trader's token beside it.
async fn trade_until(
    mut maker: Clients,
    mut taker: Clients,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<(String, proto::Order)> {
    let mut acknowledged = Vec::new();
    while !*stop.borrow() {
        let sells = (0..60).map(|index| match index % 3 {
            0 => limit(proto::Side::Buy, "0.5000", "0.01"),
            _ => limit(proto::Side::Sell, "1.0000", "0.01"),
        });
        let buys = (0..40).map(|_| limit(proto::Side::Buy, "1.0000", "0.01"));
        let (sold, bought) = tokio::join!(
            place_all(&mut maker, sells.collect()),
            place_all(&mut taker, buys.collect())
        );
        let maker_token = maker.token.clone().expect("a token");
        let taker_token = taker.token.clone().expect("a token");
        acknowledged.extend(sold.into_iter().map(|order| (maker_token.clone(), order)));
        acknowledged.extend(bought.into_iter().map(|order| (taker_token.clone(), order)));
    }
    acknowledged
}

/// Takes a backup with the CLI and returns the seq it holds.
fn backup_with_the_cli(address: &str, file: &Path) -> u64 {
    let output = Command::new(env!("CARGO_BIN_EXE_divmid"))
        .args([
            "--server",
            address,
            "--token",
            ISSUER_TOKEN,
            "issuer",
            "backup",
        ])
        .arg("--out")
        .arg(file)
        .env("DIVMID_CONFIG_DIR", file.with_extension("profiles"))
        .output()
        .expect("divmid runs");
    let said = text(&output.stdout);
    assert!(output.status.success(), "{said}{}", text(&output.stderr));
    said.strip_prefix("backup of seq ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|seq| seq.parse().ok())
        .unwrap_or_else(|| panic!("no seq in {said:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_sessions_trade_restores_the_state_at_its_seq() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let data = directory.path().join("data");
    let config = directory.path().join("divmid.toml");
    // Snapshots every few hundred events, so that the backup is a snapshot and a journal.
    std::fs::write(&config, "[pipeline]\nsnapshot_every_events = 300\n").expect("written");
    let config = config.to_str().expect("UTF-8").to_string();
    let (server, address) = start_server(&data, ISSUER_TOKEN, &["--config", &config]);
    let channel = connect_serving(&address).await;
    let traders = funded_traders(&channel, "100000", &["maker", "taker"], "50000", "10000").await;
    let [maker, taker]: [Clients; 2] = traders.try_into().ok().expect("two traders");
    let (stop_trading, stopped) = tokio::sync::watch::channel(false);
    let trading = tokio::spawn(trade_until(maker, taker, stopped));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let file = directory.path().join("exchange.backup");
    let backup_address = address.clone();
    let backup_file = file.clone();
    let seq =
        tokio::task::spawn_blocking(move || backup_with_the_cli(&backup_address, &backup_file))
            .await
            .expect("the backup ran");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_trading.send_replace(true);
    let acknowledged = trading.await.expect("trading ran");
    // Another account's token cannot take one.
    let mut trader = clients(&channel, Some(&acknowledged[0].0));
    let refused = trader
        .issuer
        .backup(proto::BackupRequest {})
        .await
        .expect_err("a trader is refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    stop(server);

    // The backup checks out on its own and restores into a new directory...
    let checked = server_command(&["check", "--backup", file.to_str().expect("UTF-8")]);
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    let restored_dir = directory.path().join("restored");
    let restored = server_command(&[
        "restore",
        "--from",
        file.to_str().expect("UTF-8"),
        "--data-dir",
        restored_dir.to_str().expect("UTF-8"),
    ]);
    let report = text(&restored.stdout);
    assert!(
        restored.status.success(),
        "{report}{}",
        text(&restored.stderr)
    );
    assert_eq!(field(&report, "seq"), seq.to_string(), "{report}");
    let snapshot: u64 = field(&report, "recovered from snapshot")
        .split(' ')
        .next()
        .and_then(|seq| seq.parse().ok())
        .expect("a snapshot seq");
    assert!(
        snapshot > 0,
        "the backup holds a snapshot and the journal after it: {report}"
    );
    // ... with the very state the source had at that seq, rebuilt from its whole journal.
    let source = server_command(&[
        "check",
        "--data-dir",
        data.to_str().expect("UTF-8"),
        "--at-seq",
        &seq.to_string(),
    ]);
    let source_report = text(&source.stdout);
    assert!(source.status.success(), "{}", text(&source.stderr));
    assert_eq!(
        field(&report, "state hash"),
        field(&source_report, "state hash")
    );
    assert_eq!(
        field(&checked_report(&checked), "state hash"),
        field(&report, "state hash")
    );

    // Served, the restored exchange has every order acknowledged up to the backup's seq,
    // and none accepted after it.
    let (server, address) = start_server(&restored_dir, ISSUER_TOKEN, &[]);
    let channel = connect_serving(&address).await;
    let (before, after): (Vec<_>, Vec<_>) = acknowledged
        .iter()
        .partition(|(_, order)| order.created_seq <= seq);
    assert!(
        before.len() > 100 && !after.is_empty(),
        "{} / {}",
        before.len(),
        after.len()
    );
    let mut lookups = tokio::task::JoinSet::new();
    for chunk in before.chunks(before.len().div_ceil(16)) {
        let (channel, chunk): (_, Vec<_>) = (
            channel.clone(),
            chunk
                .iter()
                .map(|(token, order)| ((*token).clone(), (*order).clone()))
                .collect(),
        );
        lookups.spawn(async move {
            for (token, order) in chunk {
                let mut owner = clients(&channel, Some(&token));
                let found = owner
                    .trading
                    .get_order(proto::GetOrderRequest {
                        order_id: order.order_id.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|error| panic!("order {} is there: {error}", order.order_id));
                let created = found.into_inner().order.map(|order| order.created_seq);
                assert_eq!(created, Some(order.created_seq));
            }
        });
    }
    while let Some(looked_up) = lookups.join_next().await {
        looked_up.expect("every order acknowledged before the backup is there");
    }
    for (token, order) in after.iter().take(20) {
        let mut owner = clients(&channel, Some(token));
        let missing = owner
            .trading
            .get_order(proto::GetOrderRequest {
                order_id: order.order_id.clone(),
                ..Default::default()
            })
            .await
            .expect_err("an order after the backup is not in it");
        assert_eq!(missing.code(), tonic::Code::NotFound);
    }
    stop(server);
}

fn checked_report(output: &Output) -> String {
    text(&output.stdout)
}

/// Takes a backup over gRPC into memory.
async fn backup_bytes(channel: &Channel) -> Vec<u8> {
    let mut issuer = clients(channel, Some(ISSUER_TOKEN));
    let mut chunks = issuer
        .issuer
        .backup(proto::BackupRequest {})
        .await
        .expect("a backup")
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = chunks.message().await.expect("the backup streams") {
        bytes.extend_from_slice(&chunk.data);
        if !chunk.sha256.is_empty() {
            assert!(chunks.message().await.expect("ends").is_none());
            return bytes;
        }
    }
    panic!("the backup ended without its last chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_or_backup_is_named_and_refused() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let data = directory.path().join("data");
    let config = directory.path().join("divmid.toml");
    // Retention deletes the journal behind the older of the two snapshots kept.
    let settings = "[pipeline]\nsnapshot_every_events = 20\njournal_retention_events = 1\n";
    std::fs::write(&config, settings).expect("written");
    let config = config.to_str().expect("UTF-8").to_string();
    let (server, address) = start_server(&data, ISSUER_TOKEN, &["--config", &config]);
    let channel = connect_serving(&address).await;
    let mut traders = funded_traders(&channel, "1000", &["maker"], "500", "100").await;
    let bids = || (1..=60).map(|tick| limit(proto::Side::Buy, &format!("0.{tick:02}"), "0.01"));
    // Enough events for a few snapshots, sixty orders resting at the end.
    for _ in 0..5 {
        place_all(&mut traders[0], bids().collect()).await;
        traders[0]
            .trading
            .cancel_all_orders(proto::CancelAllOrdersRequest::default())
            .await
            .expect("canceled");
    }
    place_all(&mut traders[0], bids().collect()).await;
    let bytes = backup_bytes(&channel).await;
    stop(server);

    let sound = directory.path().join("sound.backup");
    std::fs::write(&sound, &bytes).expect("written");
    let checked = server_command(&["check", "--backup", sound.to_str().expect("UTF-8")]);
    let report = text(&checked.stdout);
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    assert_eq!(field(&report, "open orders"), "60", "{report}");

    let cut = directory.path().join("cut.backup");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).expect("written");
    let altered = directory.path().join("altered.backup");
    let mut changed = bytes.clone();
    changed[bytes.len() / 2] ^= 0x01;
    std::fs::write(&altered, &changed).expect("written");
    for damaged in [cut, altered] {
        let name = damaged.to_str().expect("UTF-8");
        let checked = server_command(&["check", "--backup", name]);
        let said = text(&checked.stderr);
        assert!(!checked.status.success());
        assert!(said.contains("does not match its SHA-256"), "{said}");
        let target = directory.path().join("restored");
        let restored = server_command(&[
            "restore",
            "--from",
            name,
            "--data-dir",
            target.to_str().expect("UTF-8"),
        ]);
        assert!(!restored.status.success());
        assert!(text(&restored.stderr).contains("does not match its SHA-256"));
        assert!(
            !target.exists(),
            "nothing is restored from a damaged backup"
        );
    }
    // A directory that is not empty is refused, and left as it was.
    let restored = server_command(&[
        "restore",
        "--from",
        sound.to_str().expect("UTF-8"),
        "--data-dir",
        data.to_str().expect("UTF-8"),
    ]);
    assert!(!restored.status.success());
    assert!(text(&restored.stderr).contains("is not empty"));

    // A flipped byte in a snapshot: the server would pass it over for an older one and the
    // journal, but the check names it.
    let sound_check = server_command(&["check", "--data-dir", data.to_str().expect("UTF-8")]);
    assert!(
        sound_check.status.success(),
        "{}",
        text(&sound_check.stderr)
    );
    let snapshots = data.join("snapshots");
    let newest = std::fs::read_dir(&snapshots)
        .expect("snapshots were written")
        .map(|entry| entry.expect("an entry").path())
        .max()
        .expect("a snapshot");
    let mut snapshot = std::fs::read(&newest).expect("readable");
    let middle = snapshot.len() / 2;
    snapshot[middle] ^= 0x01;
    std::fs::write(&newest, &snapshot).expect("written");
    let checked = server_command(&["check", "--data-dir", data.to_str().expect("UTF-8")]);
    let said = text(&checked.stderr);
    assert!(!checked.status.success());
    assert!(
        said.contains(&format!("{} fails its checksum", newest.display())),
        "{said}"
    );
}
