//! `divmid-load`: drives a running exchange with orders or charges and reports what it
//! answered, how fast and how quickly, beside a raw tonic echo server measured in the
//! same run (`--baseline`), so that the figures can be read on a shared machine whose
//! speed moves from one hour to the next.
//!
//! It creates its own accounts with the issuer's token (a maker quoting ten levels a side,
//! a taker, a service), so point it at a test exchange, never at one holding real money.

mod disk;
mod echo;
mod flow;
mod report;
mod run;
mod setup;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tonic::transport::{Channel, Endpoint};

use report::{ProcessSample, Row};
use run::{Bearer, Window};

/// Load for a divmid exchange, with a raw tonic baseline measured in the same run.
///
/// Creates and funds its own accounts with the issuer's token: use it on a test exchange.
#[derive(Parser, Clone)]
#[command(name = "divmid-load", version)]
struct Arguments {
    #[command(subcommand)]
    shape: Shape,
    /// The exchange's address (`https://` for TLS).
    #[arg(
        long,
        global = true,
        env = "DIVMID_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// The issuer's token, to create the run's accounts.
    #[arg(
        long,
        global = true,
        env = "DIVMID_ISSUER_TOKEN",
        hide_env_values = true
    )]
    issuer_token: Option<String>,
    /// A CA certificate (PEM) that signed the exchange's certificate.
    #[arg(long, global = true, env = "DIVMID_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// How long to measure, in seconds.
    #[arg(long, global = true, default_value_t = 10)]
    seconds: u64,
    /// How long to run before measuring, in seconds. A fresh server's first seconds
    /// include filling its state (kept client order ids fill their retention window) and
    /// touching the memory that holds it; a longer warm-up measures the steady state.
    #[arg(long, global = true, default_value_t = 2)]
    warmup_seconds: u64,
    /// Also run the same load against a raw tonic echo server started by this command,
    /// and print the exchange's figures as a ratio of it.
    #[arg(long, global = true)]
    baseline: bool,
    /// Measure only the baseline (no exchange needed).
    #[arg(long, global = true, conflicts_with = "baseline")]
    baseline_only: bool,
    /// Resting orders to place before the run (far from the flow's prices, one lot each,
    /// over as many seeding accounts as the open-order limit needs): state the exchange
    /// carries while it is measured.
    #[arg(long, global = true, default_value_t = 0)]
    resting: u64,
    /// The exchange's process id, when it runs on this machine: its CPU (in all and per
    /// thread name) and memory are reported, with its CPU and the load's own per answer
    /// and the most answers a second the two allow on the cores they share. With
    /// --baseline, each baseline run waits until the exchange is idle, so that the
    /// exchange's work left over from the run before does not share its cores.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Runs the load this many times (with --baseline, the baseline and the exchange in
    /// turn, each round's ratio read from two runs minutes apart at most, and one more
    /// baseline at the end), each round with accounts of its own, then prints every
    /// round's ratio and their median, both against the round's baseline and against the
    /// mean of the baselines before and after it: on a machine whose speed moves from
    /// minute to minute, one pair of runs can mislead. The disk shape runs once.
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    rounds: u16,
}

#[derive(Subcommand, Clone)]
enum Shape {
    /// PlaceOrder and CancelOrder calls, IN_FLIGHT at a time.
    Unary {
        /// Calls sent at a time: each next one is sent as one is answered.
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
    },
    /// OrderSession streams, each with at most WINDOW commands unanswered.
    Session {
        /// Streams at once, all over one connection.
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// The most requests a stream has sent and not yet had answered.
        #[arg(long, default_value_t = 1_024)]
        window: usize,
    },
    /// Charge calls (a millionth of a divmid each), IN_FLIGHT at a time.
    Charge {
        /// Calls sent at a time: each next one is sent as one is answered.
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
    },
    /// ChargeSession streams, each with at most WINDOW charges unanswered.
    ChargeSession {
        /// Streams at once, all over one connection.
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// The most requests a stream has sent and not yet had answered.
        #[arg(long, default_value_t = 1_024)]
        window: usize,
    },
    /// The disk's time to make a write and a commit durable, and the unary ceiling that
    /// sets. Needs no exchange.
    ///
    /// How fast the disk under DIR makes a 4 KiB write durable, the exchange's commit of
    /// two such writes (the journal's, then the acknowledged mark's), and two one-write
    /// commits under way at once, with the CPU each write costs; and the most IN_FLIGHT
    /// calls, each answered after its commit, can then be served at: with --baseline,
    /// against the raw unary baseline measured in the same run.
    Disk {
        /// A directory on the disk the exchange's data is on.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Durable writes timed of each kind.
        #[arg(long, default_value_t = 2_000)]
        writes: usize,
        /// The calls in flight the ceiling is given for, as `unary --in-flight`.
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
    },
    /// Serves the baseline: a raw tonic server answering orders and charges at once.
    #[command(hide = true)]
    EchoServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

impl Shape {
    fn describe(&self) -> String {
        match self {
            Shape::Unary { in_flight } => format!("place/cancel, {in_flight} in flight"),
            Shape::Session { streams, window } => {
                format!("OrderSession x{streams}, window {window}")
            }
            Shape::Charge { in_flight } => format!("Charge, {in_flight} in flight"),
            Shape::ChargeSession { streams, window } => {
                format!("ChargeSession x{streams}, window {window}")
            }
            Shape::Disk { .. } => "disk".to_string(),
            Shape::EchoServer { .. } => "echo server".to_string(),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let arguments = Arguments::parse();
    let result = match &arguments.shape {
        Shape::EchoServer { listen } => serve_echo(*listen).await,
        Shape::Disk {
            dir,
            writes,
            in_flight,
        } => measure_disk(&arguments, dir, *writes, *in_flight).await,
        _ => measure(&arguments).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("divmid-load: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_echo(listen: SocketAddr) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| format!("--listen {listen}: {error}"))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    println!("listening on {address}");
    echo::serve(listener)
        .await
        .map_err(|error| error.to_string())
}

async fn measure(arguments: &Arguments) -> Result<(), String> {
    let rounds = usize::from(arguments.rounds);
    let mut baselines = Vec::new();
    let mut exchanges = Vec::new();
    for round in 1..=rounds {
        if rounds > 1 {
            println!("round {round} of {rounds}");
        }
        let mut rows = Vec::new();
        if arguments.baseline || arguments.baseline_only {
            let row = measure_idle_baseline(arguments).await?;
            baselines.push(report::Figures::of(&row));
            rows.push(row);
        }
        if !arguments.baseline_only {
            let row = measure_exchange(arguments, round).await?;
            exchanges.push(report::Figures::of(&row));
            rows.push(row);
        }
        report::print(&rows);
    }
    if rounds == 1 {
        return Ok(());
    }
    // Each round's exchange against its own round's baseline, when both ran.
    let ratios: Vec<report::Ratio> = exchanges
        .iter()
        .zip(&baselines)
        .map(|(exchange, baseline)| exchange.over(*baseline))
        .collect();
    // Each round's exchange is also read against the baseline of the round after it, and
    // the last round's against one more baseline run.
    if arguments.baseline {
        println!("closing baseline");
        let row = measure_idle_baseline(arguments).await?;
        report::print(std::slice::from_ref(&row));
        baselines.push(report::Figures::of(&row));
    }
    let bracketed: Vec<report::Ratio> = exchanges
        .iter()
        .zip(baselines.windows(2))
        .map(|(exchange, around)| report::Ratio::bracketed(around[0], *exchange, around[1]))
        .collect();
    report::print_rounds(&ratios, &bracketed);
    Ok(())
}

/// Measures the baseline, once a local exchange is idle (see [`wait_until_idle`]).
async fn measure_idle_baseline(arguments: &Arguments) -> Result<Row, String> {
    if let (Some(pid), false) = (arguments.server_pid, arguments.baseline_only) {
        wait_until_idle(pid).await;
    }
    measure_baseline(arguments).await
}

/// The most of one core a process may use and still count as idle.
const IDLE_CPU_PERCENT: f64 = 5.0;

/// How long to wait for the exchange to become idle before measuring anyway.
const IDLE_WAIT_MAX: Duration = Duration::from_secs(60);

/// Waits until the process `pid` has used less than `IDLE_CPU_PERCENT` of a core over
/// half a second (its snapshots, index and replica done with the last run's commands),
/// or says on stderr that it did not within `IDLE_WAIT_MAX`.
async fn wait_until_idle(pid: u32) {
    let started = Instant::now();
    let Some(mut before) = ProcessSample::take(pid) else {
        return;
    };
    while started.elapsed() < IDLE_WAIT_MAX {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(now) = ProcessSample::take(pid) else {
            return;
        };
        if now.since(&before).cpu_percent < IDLE_CPU_PERCENT {
            return;
        }
        before = now;
    }
    eprintln!(
        "the exchange (pid {pid}) was still busy after {} s; measuring the baseline beside it",
        IDLE_WAIT_MAX.as_secs()
    );
}

async fn measure_disk(
    arguments: &Arguments,
    directory: &std::path::Path,
    writes: usize,
    in_flight: usize,
) -> Result<(), String> {
    let directory = directory.to_path_buf();
    let latency = tokio::task::spawn_blocking({
        let directory = directory.clone();
        move || disk::Disk::measure(&directory, writes)
    })
    .await
    .map_err(|error| error.to_string())??;
    latency.print(&directory);
    if arguments.baseline || arguments.baseline_only {
        let mut unary = arguments.clone();
        unary.shape = Shape::Unary { in_flight };
        let row = measure_baseline(&unary).await?;
        latency.print_ceiling(in_flight, row.tally.acknowledged / arguments.seconds.max(1));
    }
    Ok(())
}

/// Starts the echo server as a child process (so that it has its own runtime, as the
/// exchange does) and measures it.
async fn measure_baseline(arguments: &Arguments) -> Result<Row, String> {
    let program = std::env::current_exe().map_err(|error| error.to_string())?;
    let mut child = std::process::Command::new(program)
        .args(["echo-server", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start the echo server: {error}"))?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("the echo server has no output")?;
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|error| error.to_string())?;
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("the echo server said {line:?}"))?
        .to_string();
    let channel =
        connect(Endpoint::from_shared(format!("http://{address}")).map_err(|e| e.to_string())?)
            .await?;
    let pid = child.id();
    let row = load(
        arguments,
        "baseline",
        channel,
        Bearer::none(),
        Bearer::none(),
        "1".into(),
        Some(pid),
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    Ok(row)
}

/// Measures the exchange with accounts made for `round`; resting orders are placed in
/// the first round only.
async fn measure_exchange(arguments: &Arguments, round: usize) -> Result<Row, String> {
    let issuer_token = arguments
        .issuer_token
        .as_deref()
        .ok_or("the issuer's token is needed to create the run's accounts: --issuer-token or DIVMID_ISSUER_TOKEN")?;
    let channel = connect(endpoint(arguments)?).await?;
    let accounts = setup::accounts(&channel, issuer_token, round)
        .await
        .map_err(|error| format!("setting up the run's accounts: {error}"))?;
    if arguments.resting > 0 && round == 1 {
        let started = Instant::now();
        setup::resting(&channel, issuer_token, arguments.resting)
            .await
            .map_err(|error| format!("placing the resting orders: {error}"))?;
        eprintln!(
            "placed {} resting orders in {:.1} s",
            arguments.resting,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(load(
        arguments,
        "divmid",
        channel,
        Bearer::new(&accounts.taker_token)?,
        Bearer::new(&accounts.service_token)?,
        accounts.taker_account,
        arguments.server_pid,
    )
    .await)
}

fn endpoint(arguments: &Arguments) -> Result<Endpoint, String> {
    let endpoint = Channel::from_shared(arguments.server.clone())
        .map_err(|error| format!("--server: {error}"))?;
    if !arguments.server.starts_with("https://") {
        return Ok(endpoint);
    }
    let tls = divmid::api::tls::client_config(arguments.ca_file.as_deref(), None)?;
    endpoint
        .tls_config(tls)
        .map_err(|error| format!("--server: {error}"))
}

async fn connect(endpoint: Endpoint) -> Result<Channel, String> {
    let address = endpoint.uri().to_string();
    endpoint
        .connect()
        .await
        .map_err(|error| format!("cannot reach {address}: {error}"))
}

/// Runs the shape against one target and returns its row.
async fn load(
    arguments: &Arguments,
    target: &str,
    channel: Channel,
    trader: Bearer,
    service: Bearer,
    charged_account: String,
    pid: Option<u32>,
) -> Row {
    let started = Instant::now();
    let window = Window {
        measure_from: started + Duration::from_secs(arguments.warmup_seconds),
        until: started + Duration::from_secs(arguments.warmup_seconds + arguments.seconds),
    };
    let answers = Arc::new(AtomicU64::new(0));
    let label = format!("{target} {}", arguments.shape.describe());
    let progress = report::progress(label, Arc::clone(&answers), window.until);
    // The target's use and, beside it, this process's own (the load's side of the
    // machine they share), over the same seconds.
    let sampler = pid.map(|pid| {
        tokio::spawn(async move {
            let load = std::process::id();
            tokio::time::sleep_until(window.measure_from.into()).await;
            let first = ProcessSample::take(pid).zip(ProcessSample::take(load));
            tokio::time::sleep_until(window.until.into()).await;
            let last = ProcessSample::take(pid).zip(ProcessSample::take(load));
            first
                .zip(last)
                .map(|((target, load), (target_now, load_now))| {
                    (target_now.since(&target), load_now.since(&load))
                })
        })
    });
    let tally = run_shape(
        arguments.shape.clone(),
        Target {
            channel,
            trader,
            service,
            charged_account,
        },
        window,
        answers,
    )
    .await;
    let _ = progress.await;
    let (process, load_process) = match sampler {
        Some(sampler) => sampler.await.ok().flatten().unzip(),
        None => (None, None),
    };
    Row {
        target: target.to_string(),
        shape: arguments.shape.describe(),
        seconds: arguments.seconds as f64,
        tally,
        process,
        load_process,
    }
}

/// Where a shape's load goes, and as whom.
struct Target {
    channel: Channel,
    /// The taker's token, for orders.
    trader: Bearer,
    /// The service's token, for charges.
    service: Bearer,
    /// The account charges are made to.
    charged_account: String,
}

/// Runs `shape` against `target` until `window` ends.
async fn run_shape(
    shape: Shape,
    target: Target,
    window: Window,
    answers: Arc<AtomicU64>,
) -> run::Tally {
    let Target {
        channel,
        trader,
        service,
        charged_account,
    } = target;
    match shape {
        Shape::Unary { in_flight } => {
            run::unary_orders(channel, trader, in_flight, window, answers).await
        }
        Shape::Session {
            streams,
            window: session_window,
        } => run::sessions(channel, trader, streams, session_window, window, answers).await,
        Shape::Charge { in_flight } => {
            run::unary_charges(
                channel,
                service,
                charged_account,
                in_flight,
                window,
                answers,
            )
            .await
        }
        Shape::ChargeSession {
            streams,
            window: session_window,
        } => {
            run::charge_sessions(
                channel,
                service,
                charged_account,
                streams,
                session_window,
                window,
                answers,
            )
            .await
        }
        Shape::Disk { .. } | Shape::EchoServer { .. } => run::Tally::new(),
    }
}
