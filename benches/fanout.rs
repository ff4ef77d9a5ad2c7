//! Fan-out of the trade stream, measured against a running `divmid-server` (started here as
//! a child process on a free loopback port, on a fresh data directory).
//!
//! 1. `subscribers` live `StreamTrades` subscribers, spread over connections of 200
//!    streams each, wait idle; then an order session makes `rate` trades per second for
//!    `seconds`. Reported: the trades made, how many subscribers received every one, and
//!    the lag from each trade's timestamp (taken when its command entered the exchange,
//!    so it includes the commit) to its receipt: p50, p99 and max, over every message.
//! 2. The same trading with no subscriber, for what the server grows by anyway (the
//!    store's cache, the account index); then the same number of subscribers that never
//!    read, through the same trading: how many are ended `ABORTED` with a sequence number
//!    to resume from, and how much more the server grew than without them.
//!
//! The server's resident memory (VmRSS) is reported at each step, and its peak (VmHWM).
//! Subscribers decode only each trade's timestamp (the other fields are skipped without
//! allocating), so that the clients, on the same two cores, take as little of them as
//! they can from the servers being measured.
//!
//! ```text
//! cargo bench --bench fanout -- --subscribers 1000 --rate 20000 --seconds 10
//! ```
//!
//! Under `cargo test` (no `--bench` argument) it makes one small pass: 4 subscribers,
//! 200 trades per second for one second.

#[path = "../tests/common/process.rs"]
mod process;

use process::authorized;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use divmid::api::proto::{
    self, issuer_client::IssuerClient, trading_client::TradingClient, wallet_client::WalletClient,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Code;

const ISSUER_TOKEN: &str = "issuer-token-for-the-fanout-bench-01";
/// Streams per connection (the server allows 256 by default).
const STREAMS_PER_CONNECTION: usize = 200;
/// Lag buckets of one millisecond; the last one holds everything slower.
const LAG_BUCKETS: usize = 10_001;
/// How long subscribers may take to receive the last trade once trading has stopped.
const DRAIN: Duration = Duration::from_secs(60);

struct Options {
    /// Under `cargo bench`; otherwise a small pass that must deliver everything.
    benchmarking: bool,
    subscribers: usize,
    rate: u64,
    seconds: u64,
}

fn options() -> Options {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let benchmarking = arguments.iter().any(|argument| argument == "--bench");
    let mut options = if benchmarking {
        Options {
            benchmarking,
            subscribers: 1_000,
            rate: 20_000,
            seconds: 10,
        }
    } else {
        Options {
            benchmarking,
            subscribers: 4,
            rate: 200,
            seconds: 1,
        }
    };
    let mut index = 0;
    while index < arguments.len() {
        let value: Option<u64> = arguments
            .get(index + 1)
            .and_then(|value| value.parse().ok());
        match (arguments[index].as_str(), value) {
            ("--subscribers", Some(value)) => options.subscribers = value as usize,
            ("--rate", Some(value)) => options.rate = value.max(1),
            ("--seconds", Some(value)) => options.seconds = value.max(1),
            // `--bench` (from `cargo bench`) and anything else are no options here.
            _ => {
                index += 1;
                continue;
            }
        }
        index += 2;
    }
    options
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// The server's resident and peak memory in MiB, from `/proc`.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Creates a trader holding `usd` dollars and `dvm` divmids; returns its token.
async fn trader(channel: &Channel, name: &str, usd: u64, dvm: u64) -> String {
    let created = IssuerClient::new(channel.clone())
        .create_account(authorized(
            ISSUER_TOKEN,
            proto::CreateAccountRequest {
                name: name.into(),
                tier: proto::Tier::Public as i32,
                role: proto::Role::Trader as i32,
            },
        ))
        .await
        .expect("an account")
        .into_inner();
    let token = created.api_token;
    let mut wallet = WalletClient::new(channel.clone());
    wallet
        .deposit(authorized(
            &token,
            proto::DepositRequest {
                source: proto::Source::Card as i32,
                amount: (usd + dvm).to_string(),
                source_reference: "4111111111111111".into(),
                idempotency_key: format!("{name}-deposit"),
            },
        ))
        .await
        .expect("a deposit");
    if dvm > 0 {
        wallet
            .buy_divmids(authorized(
                &token,
                proto::BuyDivmidsRequest {
                    quantity: dvm.to_string(),
                    max_price: "1".into(),
                    idempotency_key: format!("{name}-buy"),
                },
            ))
            .await
            .expect("divmids");
    }
    token
}

fn place(side: proto::Side, quantity: String) -> proto::PlaceOrderRequest {
    proto::PlaceOrderRequest {
        market: "DVM-USD".into(),
        side: side as i32,
        r#type: proto::OrderType::Limit as i32,
        price: "1.0000".into(),
        quantity,
        time_in_force: proto::TimeInForce::Gtc as i32,
        ..Default::default()
    }
}

/// Makes about `rate` trades of 0.01 DVM per second for `seconds`: the maker rests one sell
/// for all of them, the taker's buys go through one order session at that pace. Returns
/// the trades made and how long it took.
async fn make_trades(
    channel: &Channel,
    maker: &str,
    taker: &str,
    rate: u64,
    seconds: u64,
) -> (u64, Duration) {
    let trades = rate * seconds;
    let mut trading = TradingClient::new(channel.clone());
    trading
        .place_order(authorized(
            maker,
            place(
                proto::Side::Sell,
                format!("{}.{:02}", trades / 100, trades % 100),
            ),
        ))
        .await
        .expect("the maker's sell rests");
    let (requests, outgoing) = mpsc::channel(4_096);
    let mut answers = trading
        .order_session(authorized(taker, ReceiverStream::new(outgoing)))
        .await
        .expect("a session")
        .into_inner();
    let started = Instant::now();
    let pacer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut sent = 0;
        while sent < trades {
            tick.tick().await;
            let due = (started.elapsed().as_millis() as u64 * rate / 1_000).min(trades);
            while sent < due {
                let request = proto::OrderSessionRequest {
                    request_id: sent,
                    command: Some(proto::order_session_request::Command::Place(place(
                        proto::Side::Buy,
                        "0.01".into(),
                    ))),
                };
                if requests.send(request).await.is_err() {
                    return;
                }
                sent += 1;
            }
        }
    });
    let mut made = 0;
    while made < trades {
        match answers.message().await {
            Ok(Some(answer)) => match answer.result {
                Some(proto::order_session_response::Result::Placed(_)) => made += 1,
                other => panic!("a buy was refused: {other:?}"),
            },
            _ => break,
        }
    }
    let elapsed = started.elapsed();
    let _ = pacer.await;
    (made, elapsed)
}

/// A trade as the subscribers read it: only its timestamp. Decoding skips the other
/// fields without allocating their strings, so that the subscribers, which share the two
/// cores with the server, cost as little as a client can: what is measured is the
/// servers' fan-out, not protobuf decoding in the clients. Both servers are read the same
/// way.
#[derive(Clone, PartialEq, prost::Message)]
struct TradeTime {
    #[prost(uint64, tag = "7")]
    time_ms: u64,
}

/// `TradeBatch` as the subscribers read it.
#[derive(Clone, PartialEq, prost::Message)]
struct TradeTimes {
    #[prost(message, repeated, tag = "1")]
    trades: Vec<TradeTime>,
}

/// A live trade stream.
async fn live_trades(channel: Channel) -> tonic::Streaming<TradeTimes> {
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.expect("the connection is ready");
    let request = proto::StreamTradesRequest {
        market: "DVM-USD".into(),
        from_seq: None,
    };
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/divmid.v1.MarketData/StreamTrades");
    client
        .server_streaming(
            tonic::Request::new(request),
            path,
            tonic_prost::ProstCodec::<proto::StreamTradesRequest, TradeTimes>::default(),
        )
        .await
        .expect("a trade stream")
        .into_inner()
}

/// What one subscriber saw.
struct Received {
    trades: u64,
    lags: Vec<u64>,
    ended: Option<Code>,
}

/// Reads a live trade stream until it has `expected` trades (known once trading stops),
/// recording each one's lag.
async fn subscriber(
    channel: Channel,
    mut expected: watch::Receiver<u64>,
    ready: Arc<AtomicU64>,
) -> Received {
    let mut stream = live_trades(channel).await;
    ready.fetch_add(1, Ordering::Relaxed);
    let mut received = Received {
        trades: 0,
        lags: vec![0; LAG_BUCKETS],
        ended: None,
    };
    loop {
        let goal = *expected.borrow();
        if goal > 0 && received.trades >= goal {
            return received;
        }
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(batch)) => {
                    let now = now_ms();
                    for trade in &batch.trades {
                        let lag = now.saturating_sub(trade.time_ms) as usize;
                        received.lags[lag.min(LAG_BUCKETS - 1)] += 1;
                    }
                    received.trades += batch.trades.len() as u64;
                }
                Ok(None) => return received,
                Err(status) => {
                    received.ended = Some(status.code());
                    return received;
                }
            },
            changed = expected.changed() => if changed.is_err() {
                return received;
            },
        }
    }
}

/// A subscriber that never reads until told how many trades were made, then reads them
/// or to the end of its stream.
async fn sleeper(
    channel: Channel,
    mut made: watch::Receiver<u64>,
    ready: Arc<AtomicU64>,
) -> Received {
    let mut stream = live_trades(channel).await;
    ready.fetch_add(1, Ordering::Relaxed);
    let made = made
        .wait_for(|made| *made > 0)
        .await
        .map_or(0, |made| *made);
    let mut received = Received {
        trades: 0,
        lags: Vec::new(),
        ended: None,
    };
    while received.trades < made {
        match tokio::time::timeout(DRAIN, stream.message()).await {
            Ok(Ok(Some(batch))) => received.trades += batch.trades.len() as u64,
            Ok(Err(status)) => {
                received.ended = Some(status.code());
                break;
            }
            Ok(Ok(None)) | Err(_) => break,
        }
    }
    received
}

async fn connections(address: &str, count: usize) -> Vec<Channel> {
    let mut channels = Vec::new();
    for _ in 0..count.div_ceil(STREAMS_PER_CONNECTION) {
        channels.push(
            Channel::from_shared(address.to_string())
                .expect("an address")
                .connect()
                .await
                .expect("connects"),
        );
    }
    channels
}

async fn wait_for(ready: &AtomicU64, count: usize) {
    while (ready.load(Ordering::Relaxed) as usize) < count {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn percentile(lags: &[u64], total: u64, fraction: f64) -> usize {
    let rank = ((total as f64) * fraction).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (lag, count) in lags.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return lag;
        }
    }
    LAG_BUCKETS - 1
}

/// What subscribers that keep up got from one server.
struct Delivery {
    made: u64,
    /// Subscribers that received every trade.
    complete: usize,
    /// Trades received, over all subscribers.
    delivered: u64,
    /// Delivered trades per second, from the first trade made to the last received.
    per_second: f64,
    lags: Vec<u64>,
}

impl Delivery {
    fn print(&self, subscribers: usize) {
        println!(
            "  delivered: {} of {subscribers} subscribers received every one of {} trades ({} trades delivered, {:.0}/s)",
            self.complete, self.made, self.delivered, self.per_second
        );
        println!(
            "  lag from a trade's command to its receipt: p50 {} ms, p99 {} ms, max {} ms{}",
            percentile(&self.lags, self.delivered, 0.50),
            percentile(&self.lags, self.delivered, 0.99),
            self.lags.iter().rposition(|count| *count > 0).unwrap_or(0),
            if self.lags[LAG_BUCKETS - 1] > 0 {
                "+"
            } else {
                ""
            }
        );
    }
}

/// `subscribers` live subscribers to `address`, then trades at `rate` for `seconds`
/// through an order session of `taker` against `maker`'s sell.
async fn deliver(
    address: &str,
    (maker, taker): (&str, &str),
    options: &Options,
    pid: u32,
) -> Delivery {
    let channel = Channel::from_shared(address.to_string())
        .expect("an address")
        .connect()
        .await
        .expect("connects");
    let channels = connections(address, options.subscribers).await;
    let (expected, expected_watch) = watch::channel(0);
    let ready = Arc::new(AtomicU64::new(0));
    let subscribers: Vec<_> = (0..options.subscribers)
        .map(|index| {
            tokio::spawn(subscriber(
                channels[index / STREAMS_PER_CONNECTION].clone(),
                expected_watch.clone(),
                Arc::clone(&ready),
            ))
        })
        .collect();
    wait_for(&ready, options.subscribers).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, _) = memory(pid);
    println!(
        "  server memory with {} idle subscribers: {rss} MiB",
        options.subscribers
    );
    let started = Instant::now();
    let (made, elapsed) = make_trades(&channel, maker, taker, options.rate, options.seconds).await;
    let _ = expected.send(made);
    println!(
        "  trades made: {made} in {:.1} s ({:.0}/s)",
        elapsed.as_secs_f64(),
        made as f64 / elapsed.as_secs_f64()
    );
    let mut lags = vec![0u64; LAG_BUCKETS];
    let (mut complete, mut delivered) = (0, 0u64);
    let deadline = tokio::time::Instant::now() + DRAIN;
    for task in subscribers {
        let Ok(Ok(received)) = tokio::time::timeout_at(deadline, task).await else {
            continue;
        };
        complete += usize::from(received.trades == made);
        delivered += received.trades;
        for (total, count) in lags.iter_mut().zip(&received.lags) {
            *total += count;
        }
    }
    let per_second = delivered as f64 / started.elapsed().as_secs_f64();
    let (rss, peak) = memory(pid);
    println!("  server memory after: {rss} MiB (peak {peak} MiB)");
    Delivery {
        made,
        complete,
        delivered,
        per_second,
        lags,
    }
}

/// Starts `divmid-load`'s raw tonic server (its echo server, which serves `StreamTrades`
/// as a plain tonic application does) and returns it with its address.
fn start_baseline() -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_divmid-load"))
        .args(["echo-server", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the baseline server starts");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped");
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the baseline says where it listens");
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the baseline said {line:?}"))
        .to_string();
    (child, format!("http://{address}"))
}

async fn run(options: Options) {
    let machine = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    println!(
        "fan-out: {} subscribers, {} trades/s for {} s, {machine} cores shared by server and clients",
        options.subscribers, options.rate, options.seconds
    );
    // 0. The baseline: a plain tonic server, each subscriber encoding its own copy.
    let (mut baseline, address) = start_baseline();
    println!("baseline (a plain tonic server: one broadcast a millisecond, each subscriber encodes its copy)");
    let plain = deliver(&address, ("maker", "taker"), &options, baseline.id()).await;
    plain.print(options.subscribers);
    let _ = baseline.kill();
    let _ = baseline.wait();

    let directory = tempfile::tempdir().expect("a temporary directory");
    let (mut server, address) = process::start_server(directory.path(), ISSUER_TOKEN, &[]);
    let pid = server.id();
    let channel = Channel::from_shared(address.clone())
        .expect("an address")
        .connect()
        .await
        .expect("connects");
    // Enough for both runs (the slow subscribers' one below too).
    let trades_per_run = options.rate * options.seconds;
    let dvm = trades_per_run / 100 + 1;
    process::mint_at_one_dollar(&channel, ISSUER_TOKEN, &(4 * dvm).to_string()).await;
    let maker = trader(&channel, "maker", 0, 3 * dvm).await;
    let taker = trader(&channel, "taker", 3 * dvm, 0).await;
    let (rss, _) = memory(pid);
    println!("divmid-server");
    println!("  server memory at start: {rss} MiB");

    // 1. Subscribers that keep up.
    let divmid = deliver(&address, (&maker, &taker), &options, pid).await;
    divmid.print(options.subscribers);
    println!(
        "  delivered trades/s against the baseline's: {:.2}",
        divmid.per_second / plain.per_second.max(1.0)
    );
    let complete = divmid.complete;

    // 2. The same trading with no subscriber, what the server grows by without them (the
    // store's cache, the index), then subscribers that never read.
    let (alone_before, _) = memory(pid);
    make_trades(&channel, &maker, &taker, options.rate, options.seconds).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (alone_after, _) = memory(pid);
    println!(
        "no subscriber, same trading: server memory {alone_before} -> {alone_after} MiB (+{})",
        alone_after.saturating_sub(alone_before)
    );
    let channels = connections(&address, options.subscribers).await;
    let (wake, wake_watch) = watch::channel(0);
    let ready = Arc::new(AtomicU64::new(0));
    let sleepers: Vec<_> = (0..options.subscribers)
        .map(|index| {
            tokio::spawn(sleeper(
                channels[index / STREAMS_PER_CONNECTION].clone(),
                wake_watch.clone(),
                Arc::clone(&ready),
            ))
        })
        .collect();
    wait_for(&ready, options.subscribers).await;
    let (rss, _) = memory(pid);
    println!(
        "slow: {} subscribers that do not read, same trading",
        options.subscribers
    );
    println!("  server memory with them idle: {rss} MiB");
    let idle = rss;
    let (made, _) = make_trades(&channel, &maker, &taker, options.rate, options.seconds).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, peak) = memory(pid);
    println!(
        "  server memory after: {rss} MiB (peak {peak} MiB): +{} over the idle figure, +{} more than without them",
        rss.saturating_sub(idle),
        rss.saturating_sub(idle).saturating_sub(alone_after.saturating_sub(alone_before))
    );
    let _ = wake.send(made);
    let (mut aborted, mut whole, mut buffered) = (0, 0, 0u64);
    for task in sleepers {
        if let Ok(received) = task.await {
            aborted += usize::from(received.ended == Some(Code::Aborted));
            whole += usize::from(received.trades == made);
            buffered += received.trades;
        }
    }
    println!(
        "  {made} trades made; {aborted} of {} ended ABORTED with from_seq, after {} trades each on average; {whole} received every trade",
        options.subscribers,
        buffered / options.subscribers.max(1) as u64
    );
    if !options.benchmarking {
        assert_eq!(
            complete, options.subscribers,
            "every subscriber that keeps up gets every trade"
        );
        assert_eq!(
            aborted + whole,
            options.subscribers,
            "a slow subscriber gets every trade or is told where to resume"
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}

fn main() {
    let options = options();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run(options));
}
