//! `divmid-soak`: drives the durable pipeline on a data directory with a deterministic
//! random workload, and prints every outcome as soon as it is committed.
//!
//! It is the subject of the crash tests: a test starts it, kills it with SIGKILL at a
//! random moment, and then checks the data directory against what it printed. Every
//! command acknowledged with an `ack` line must be in the recovered state (applying it
//! again must be recognised as a retry and change nothing).
//!
//! Output, one line per event, flushed at once:
//! - `recovered <last_seq> <state hash>` once the store is recovered;
//! - `ack <hex>` for a committed command that carries an idempotency key or client
//!   order id, with its postcard encoding in hex;
//! - `ok` for any other committed command, `rejected <reason>` for a refused one;
//! - `done` when the workload is finished and the pipeline has shut down.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use divmid::command::{Command, NewOrder, OrderRef};
use divmid::config::EngineConfig;
use divmid::engine::LevelBook;
use divmid::event::Reply;
use divmid::pipeline::{Outcome, Pipeline, PipelineConfig};
use divmid::store::{recover, Store};
use divmid::types::{
    AccountId, Amount, FundingSourceKind, IssuePrice, MarketId, OrderTerms, OrderType, Price,
    Quantity, Role, SelfTradePrevention, Side, Tier, TimeInForce,
};
use tokio::sync::oneshot;

/// Drive the durable pipeline with a deterministic random workload (for crash tests).
#[derive(Parser, Debug)]
#[command(version)]
struct Arguments {
    /// The data directory (created if missing).
    #[arg(long, default_value = "./soak-data")]
    data_dir: PathBuf,
    /// Seeds the workload; use a different one for every run on the same directory.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Commands to run after the set-up.
    #[arg(long, default_value_t = 100_000)]
    commands: u64,
    /// Commands submitted but not yet committed at any moment, at most.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    in_flight: u64,
    /// Events between snapshots.
    #[arg(long, default_value_t = 5_000)]
    snapshot_every: u64,
}

/// A small xorshift generator: the workload must be the same for the same seed.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % bound
    }
}

/// Commands submitted and not yet committed, oldest first, with their outcome receivers.
type InFlight = VecDeque<(Command, oneshot::Receiver<Outcome>)>;

struct Soak {
    pipeline: Pipeline,
    in_flight: InFlight,
    in_flight_max: usize,
    output: std::io::Stdout,
}

impl Soak {
    /// Submits a command, first waiting for the oldest to commit if too many are in
    /// flight. A full queue is waited out, not skipped.
    fn submit(&mut self, command: Command) -> Result<(), String> {
        while self.in_flight.len() >= self.in_flight_max {
            self.settle_oldest()?;
        }
        loop {
            match self.pipeline.submit(0, command.clone()) {
                Ok(receiver) => {
                    self.in_flight.push_back((command, receiver));
                    return Ok(());
                }
                Err(failure) if self.in_flight.is_empty() => return Err(failure.to_string()),
                Err(_) => {
                    self.settle_oldest()?;
                }
            }
        }
    }

    /// Waits for the oldest command in flight and prints its outcome.
    fn settle_oldest(&mut self) -> Result<Option<Reply>, String> {
        let Some((command, receiver)) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        let outcome = receiver
            .blocking_recv()
            .map_err(|_| "the pipeline stopped".to_string())?;
        let line = match &outcome {
            Ok(_) if is_retry_safe(&command) => {
                let bytes = postcard::to_allocvec(&command).map_err(|error| error.to_string())?;
                format!("ack {}", hex(&bytes))
            }
            Ok(_) => "ok".to_string(),
            Err(failure) => format!("rejected {failure}"),
        };
        writeln!(self.output, "{line}").map_err(|error| error.to_string())?;
        self.output.flush().map_err(|error| error.to_string())?;
        Ok(outcome.ok().map(|committed| committed.reply))
    }

    /// Submits a command and waits for everything in flight, returning its reply.
    fn run(&mut self, command: Command) -> Result<Reply, String> {
        self.submit(command)?;
        let mut last = None;
        while !self.in_flight.is_empty() {
            last = self.settle_oldest()?;
        }
        last.ok_or_else(|| "a set-up command was refused".to_string())
    }
}

/// Whether applying the command again is recognised as a retry: it carries an
/// idempotency key, or is an order with a client order id.
fn is_retry_safe(command: &Command) -> bool {
    match command {
        Command::PlaceOrder(order) => order.client_order_id.is_some(),
        Command::Mint { .. }
        | Command::BuyDivmids { .. }
        | Command::Deposit { .. }
        | Command::Withdraw { .. }
        | Command::Charge { .. } => true,
        _ => false,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    match soak(&arguments) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("divmid-soak: {error}");
            ExitCode::FAILURE
        }
    }
}

fn soak(arguments: &Arguments) -> Result<(), String> {
    let store = Store::open(&arguments.data_dir).map_err(|error| error.to_string())?;
    let recovered =
        recover::<LevelBook>(&store, EngineConfig::default()).map_err(|error| error.to_string())?;
    let hash: [u8; 32] = recovered.sequencer.state_hash();
    let mut output = std::io::stdout();
    writeln!(
        output,
        "recovered {} {}",
        recovered.sequencer.last_seq(),
        hex(&hash)
    )
    .and_then(|()| output.flush())
    .map_err(|error| error.to_string())?;
    let config = PipelineConfig {
        snapshot_every_events: arguments.snapshot_every,
        ..PipelineConfig::default()
    };
    let mut soak = Soak {
        pipeline: Pipeline::start(recovered.sequencer, store, config),
        in_flight: VecDeque::new(),
        in_flight_max: arguments.in_flight as usize,
        output,
    };
    let seed = arguments.seed;
    let (traders, service) = set_up(&mut soak, seed)?;
    let mut random = Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for index in 0..arguments.commands {
        let command = workload_command(&mut random, seed, index, &traders, service);
        soak.submit(command)?;
    }
    while !soak.in_flight.is_empty() {
        soak.settle_oldest()?;
    }
    soak.pipeline.shutdown();
    println!("done");
    Ok(())
}

/// Opens three funded traders and a service for this run.
fn set_up(soak: &mut Soak, seed: u64) -> Result<(Vec<AccountId>, AccountId), String> {
    soak.run(Command::Mint {
        amount: Amount(1_000_000_000_000),
        memo: "soak".into(),
        idempotency_key: format!("s{seed}-mint").into(),
    })?;
    soak.run(Command::SetIssuePrice {
        tier: Tier::Public,
        price: IssuePrice(IssuePrice::UNITS_PER_USD),
    })?;
    let mut open = |role| match soak.run(Command::CreateAccount {
        name: format!("soak {seed}").into(),
        role,
        tier: Tier::Public,
        token_hash: [0; 32],
    }) {
        Ok(Reply::AccountCreated { account }) => Ok(account),
        other => Err(format!("creating an account gave {other:?}")),
    };
    let traders = vec![
        open(Role::Trader)?,
        open(Role::Trader)?,
        open(Role::Trader)?,
    ];
    let service = open(Role::Service)?;
    for (index, trader) in traders.iter().enumerate() {
        soak.run(Command::Deposit {
            account: *trader,
            source: FundingSourceKind::Card,
            amount: Amount(200_000_000_000),
            source_reference: "4111111111111111".into(),
            idempotency_key: format!("s{seed}-fund-{index}").into(),
        })?;
        soak.run(Command::BuyDivmids {
            account: *trader,
            quantity: Amount(100_000_000_000),
            max_price: IssuePrice(IssuePrice::UNITS_PER_USD),
            idempotency_key: format!("s{seed}-buy-{index}").into(),
        })?;
    }
    Ok((traders, service))
}

fn workload_command(
    random: &mut Random,
    seed: u64,
    index: u64,
    traders: &[AccountId],
    service: AccountId,
) -> Command {
    let trader = traders[random.below(traders.len() as u64) as usize];
    let roll = random.below(100);
    let order = |random: &mut Random, order_type, time_in_force, prefix: &str| {
        Command::PlaceOrder(NewOrder {
            account: trader,
            terms: OrderTerms {
                market: MarketId(0),
                side: if random.below(2) == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                },
                order_type,
                price: Some(Price(9_990 + random.below(21))),
                quantity: Quantity(1 + random.below(50)),
                time_in_force,
                post_only: false,
                self_trade_prevention: SelfTradePrevention::CancelTaker,
            },
            client_order_id: Some(format!("s{seed}-{prefix}{index}").into()),
        })
    };
    match roll {
        0..50 => order(random, OrderType::Limit, TimeInForce::GoodTillCanceled, "o"),
        50..65 => Command::CancelOrder {
            account: trader,
            target: OrderRef::Client(format!("s{seed}-o{}", random.below(index + 1)).into()),
        },
        65..75 => Command::Deposit {
            account: trader,
            source: FundingSourceKind::Paypal,
            amount: Amount(1 + random.below(1_000_000)),
            source_reference: "soak@example.com".into(),
            idempotency_key: format!("s{seed}-d{index}").into(),
        },
        75..85 => Command::Charge {
            service,
            account: trader,
            amount: Amount(1 + random.below(1_000)),
            memo: "usage".into(),
            idempotency_key: format!("s{seed}-c{index}").into(),
        },
        85..92 => Command::Withdraw {
            account: trader,
            amount: Amount(1 + random.below(100_000)),
            destination: "bank".into(),
            idempotency_key: format!("s{seed}-w{index}").into(),
        },
        _ => order(
            random,
            OrderType::Market,
            TimeInForce::ImmediateOrCancel,
            "m",
        ),
    }
}
