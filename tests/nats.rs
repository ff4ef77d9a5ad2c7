//! Market data onward to NATS JetStream, with a real `nats-server`: every committed trade
//! reaches JetStream exactly once across a restart of divmid (killed) and a restart of
//! NATS, and a consumer reading JetStream rebuilds the trade history equal to
//! `StreamTrades` from 0. `.ci/run` installs Debian's `nats-server` and sets
//! `DIVMID_REQUIRE_NATS=1`, which makes a missing `nats-server` a failure; elsewhere the
//! test says it did not run and how to install it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::process::start_server;
use common::{clients, connect_serving, funded_traders, trade, Clients, ISSUER_TOKEN};
use divmid::api::proto;
use prost::Message;
use tonic::transport::Channel;

const SUBJECT_PREFIX: &str = "test.divmid";

/// The `nats-server` binary, if this machine has one.
fn nats_binary() -> Option<&'static str> {
    ["nats-server", "/usr/sbin/nats-server"]
        .into_iter()
        .find(|binary| {
            Command::new(binary)
                .arg("--version")
                .output()
                .is_ok_and(|output| output.status.success())
        })
}

/// A `nats-server` with JetStream, its store in `store`, on `port` (0: any free port).
struct Nats {
    child: Child,
    port: u16,
}

impl Nats {
    fn start(binary: &str, store: &Path, port: u16) -> Nats {
        let port_argument = if port == 0 {
            "-1".to_string()
        } else {
            port.to_string()
        };
        let mut child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port_argument, "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server starts");
        let stderr = child.stderr.take().expect("piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, address)) = line.split_once("client connections on ") {
                    let port = address
                        .rsplit(':')
                        .next()
                        .and_then(|port| port.trim().parse().ok());
                    let _ = sender.send(port);
                }
            }
        });
        let port = receiver
            .recv_timeout(Duration::from_secs(30))
            .ok()
            .flatten()
            .expect("nats-server says where it listens");
        Nats { child, port }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every trade in history, as `StreamTrades` from 0 gives it: (seq, trade id).
async fn streamed_trades(channel: &Channel, count: usize) -> Vec<(u64, String)> {
    common::streamed_trades(channel, count)
        .await
        .into_iter()
        .map(|trade| (trade.seq, trade.trade_id))
        .collect()
}

/// What JetStream holds on the trade subjects, in order: (seq, trade id) of each trade,
/// and each message's id with the last seq it carries.
async fn jetstream_trades(url: &str) -> (Vec<(u64, String)>, Vec<(String, u64)>) {
    let client = async_nats::connect(url).await.expect("NATS answers");
    let jetstream = async_nats::jetstream::new(client);
    let mut stream = jetstream
        .get_stream("DIVMID")
        .await
        .expect("the stream exists");
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let (mut trades, mut ids) = (Vec::new(), Vec::new());
    for sequence in 1..=last {
        let message = stream.get_raw_message(sequence).await.expect("a message");
        if !message
            .subject
            .starts_with(&format!("{SUBJECT_PREFIX}.trades."))
        {
            continue;
        }
        let batch = proto::TradeBatch::decode(message.payload).expect("a TradeBatch");
        let id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .expect("a message id")
            .as_str()
            .to_string();
        let last_seq = batch.trades.last().expect("trades").seq;
        trades.extend(
            batch
                .trades
                .into_iter()
                .map(|trade| (trade.seq, trade.trade_id)),
        );
        ids.push((id, last_seq));
    }
    (trades, ids)
}

/// Waits until JetStream holds `count` trades, and returns them.
async fn wait_for_jetstream(url: &str, count: usize) -> (Vec<(u64, String)>, Vec<(String, u64)>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let held = jetstream_trades(url).await;
        if held.0.len() >= count || tokio::time::Instant::now() > deadline {
            return held;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn kill(mut server: Child) {
    let _ = server.kill();
    let _ = server.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trade_reaches_jetstream_once_across_restarts_of_divmid_and_nats() {
    let Some(binary) = nats_binary() else {
        let required = std::env::var("DIVMID_REQUIRE_NATS").is_ok_and(|value| value == "1");
        assert!(
            !required,
            "nats-server is required here (DIVMID_REQUIRE_NATS=1)"
        );
        eprintln!(
            "NOT RUN: nats-server is not installed; install it (apt-get install nats-server) \
             to run the NATS JetStream test"
        );
        return;
    };
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = directory.path().join("nats");
    let nats = Nats::start(binary, &store, 0);
    let config = directory.path().join("divmid.toml");
    let settings = format!(
        "[market_data.nats]\nurl = \"{}\"\nstream = \"DIVMID\"\nsubject_prefix = \"{SUBJECT_PREFIX}\"\n",
        nats.url()
    );
    std::fs::write(&config, settings).expect("written");
    let config = config.to_str().expect("UTF-8").to_string();
    let data = directory.path().join("data");
    let arguments = ["--config", config.as_str()];

    let (server, address) = start_server(&data, ISSUER_TOKEN, &arguments);
    let channel = connect_serving(&address).await;
    let traders = funded_traders(&channel, "1000", &["uma", "vic"], "300", "100").await;
    let [mut maker, mut taker]: [Clients; 2] = traders.try_into().ok().expect("two");
    trade(&mut maker, &mut taker, 300).await;
    // Killed with trades committed: some may not have reached JetStream.
    kill(server);

    let (server, address) = start_server(&data, ISSUER_TOKEN, &arguments);
    let channel = connect_serving(&address).await;
    let (mut maker, mut taker) = (maker.on(&channel), taker.on(&channel));
    trade(&mut maker, &mut taker, 200).await;
    // NATS goes away and comes back on the same port with the same store; trading goes on
    // meanwhile.
    let port = nats.port;
    nats.stop();
    trade(&mut maker, &mut taker, 100).await;
    let nats = Nats::start(binary, &store, port);
    trade(&mut maker, &mut taker, 150).await;
    let total = 750;

    let (held, ids) = wait_for_jetstream(&nats.url(), total).await;
    let streamed = streamed_trades(&channel, total).await;
    assert_eq!(held.len(), total, "JetStream holds every trade, each once");
    assert_eq!(
        held, streamed,
        "a JetStream consumer rebuilds StreamTrades from 0"
    );
    for (id, last_seq) in &ids {
        assert_eq!(id, &format!("trades.DVM-USD.{last_seq}"));
    }
    // Book changes are published too.
    let client = async_nats::connect(nats.url()).await.expect("NATS answers");
    let stream = async_nats::jetstream::new(client)
        .get_stream("DIVMID")
        .await
        .expect("the stream");
    let book = stream
        .get_last_raw_message_by_subject(&format!("{SUBJECT_PREFIX}.book.DVM-USD"))
        .await
        .expect("a book message");
    let update = proto::BookUpdate::decode(book.payload).expect("a BookUpdate");
    assert!(update.update.is_some());
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let supply = issuer
        .issuer
        .get_supply(proto::GetSupplyRequest {})
        .await
        .expect("the supply")
        .into_inner();
    assert!(update.seq <= supply.seq);
    kill(server);
}
