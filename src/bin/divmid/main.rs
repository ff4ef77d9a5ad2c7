//! `divmid`: the command-line client. Everything a trader, a service or the issuer can do,
//! one subcommand per RPC (but `OrderSession`, a stream for programs placing orders at high
//! rates); the token comes from `--token` or `DIVMID_TOKEN`. The streams are followed until
//! interrupted or until the `--limit` given.
//!
//! `cli.rs` is the command line's shape; `issuer.rs`, `wallet.rs`, `order.rs`,
//! `market.rs` and `prepaid.rs` make each group's calls and print their answers.

/// Calls `$client.$method` with `$request` under `$caller`'s token and gives the answer's
/// message,
/// or returns the server's refusal (or a token that is not ASCII) as the error a person
/// reads.
macro_rules! call {
    ($client:expr, $method:ident, $caller:expr, $request:expr) => {
        $client
            .$method($crate::authorized(&$caller.token, $request)?)
            .await
            .map_err($crate::status)?
            .into_inner()
    };
}

mod cli;
mod issuer;
mod market;
mod order;
mod prepaid;
mod profile;
mod shell;
mod wallet;

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use clap::Parser;
use divmid::api::proto;
use divmid::api::proto::issuer_client::IssuerClient;
use divmid::api::proto::market_data_client::MarketDataClient;
use divmid::api::proto::metering_client::MeteringClient;
use divmid::api::proto::trading_client::TradingClient;
use divmid::api::proto::wallet_client::WalletClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

use cli::{Arguments, Top};
use profile::Reach;

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("divmid: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = if matches!(arguments.command, Top::Shell) {
        // The options given with `shell` apply to every line typed in it.
        let mut globals: Vec<String> = std::env::args().skip(1).collect();
        if let Some(index) = globals.iter().position(|word| word == "shell") {
            globals.remove(index);
        }
        shell::run(&runtime, globals)
    } else {
        runtime.block_on(run(arguments))
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("divmid: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Who calls, and how the answers are printed.
pub struct Caller {
    /// The bearer token, if any.
    pub token: Option<String>,
    /// JSON for scripts, or text for people.
    pub json: bool,
}

/// Prints an answer: as one line of JSON with `--output json`, otherwise as `text` writes it.
pub fn show<M: serde::Serialize>(caller: &Caller, message: &M, text: impl FnOnce(&M)) {
    if caller.json {
        match serde_json::to_string(message) {
            Ok(line) => println!("{line}"),
            Err(error) => eprintln!("divmid: the answer does not encode as JSON: {error}"),
        }
    } else {
        text(message);
    }
}

/// Adds the bearer token to a request.
fn authorized<T>(token: &Option<String>, message: T) -> Result<Request<T>, String> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        let value: MetadataValue<_> = format!("Bearer {token}")
            .parse()
            .map_err(|_| "the token is not printable ASCII".to_string())?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// A refusal as a person reads it: the code, the server's message (which names the field
/// at fault), and what to do where something fits.
fn status(status: tonic::Status) -> String {
    let hint = match status.code() {
        tonic::Code::Unauthenticated if status.message().contains("is required") => {
            "\n  no token was sent: save one in a profile (divmid profile add NAME --server URL \
             --token-file FILE), or pass --token or DIVMID_TOKEN"
        }
        tonic::Code::Unauthenticated => {
            "\n  the token was not accepted: it may have been rotated or revoked; ask the issuer \
             for a new one"
        }
        tonic::Code::PermissionDenied => {
            "\n  this token's account may not do this: check the profile in use (divmid profile \
             list) or use --profile"
        }
        tonic::Code::Unavailable => "\n  the exchange is unavailable or stopping: retry shortly",
        _ => "",
    };
    format!("{:?}: {}{hint}", status.code(), status.message())
}

/// An error and every error under it, one after the other: a transport error's own text
/// ("transport error") says nothing a person can act on; its causes do.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The endpoint of the server to reach, with TLS for an `https://` address.
fn endpoint(arguments: &Arguments, reach: &Reach) -> Result<tonic::transport::Endpoint, String> {
    let endpoint =
        Channel::from_shared(reach.server.clone()).map_err(|error| format!("--server: {error}"))?;
    let tls_options = reach.ca_file.is_some() || arguments.cert_file.is_some();
    if !reach.server.starts_with("https://") {
        if tls_options {
            return Err(format!(
                "--ca-file and --cert-file are for https:// addresses; the server is {}",
                reach.server
            ));
        }
        return Ok(endpoint);
    }
    let identity = arguments
        .cert_file
        .as_deref()
        .zip(arguments.key_file.as_deref());
    let tls = divmid::api::tls::client_config(reach.ca_file.as_deref(), identity)?;
    endpoint
        .tls_config(tls)
        .map_err(|error| format!("--server: {error}"))
}

pub async fn run(arguments: Arguments) -> Result<(), String> {
    if let Top::Completions { shell } = arguments.command {
        // Static scripts: every subcommand, flag and listed value. Values that only the
        // server knows (order ids, accounts) are not completed: that would need clap's
        // unstable dynamic completion and a call to the server on every Tab.
        let mut command = <Arguments as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "divmid", &mut std::io::stdout());
        return Ok(());
    }
    let json = arguments.json || arguments.output == cli::OutputFormat::Json;
    if let Top::Profile(command) = arguments.command {
        return profile::command(command, json);
    }
    let reach = profile::reach(&arguments)?;
    let channel = endpoint(&arguments, &reach)?
        .connect()
        .await
        .map_err(|error| format!("cannot reach {}: {}", reach.server, causes(&error)))?;
    let caller = Caller {
        token: reach.token,
        json,
    };
    match arguments.command {
        Top::Issuer(command) => issuer::issuer(IssuerClient::new(channel), &caller, command).await,
        Top::Wallet(command) => wallet::wallet(WalletClient::new(channel), &caller, command).await,
        Top::Order(command) => order::order(TradingClient::new(channel), &caller, command).await,
        Top::Charge { session: true, .. } => {
            prepaid::charge_session(MeteringClient::new(channel), &caller).await
        }
        Top::Charge {
            account,
            amount,
            key,
            memo,
            ..
        } => {
            let request = proto::ChargeRequest {
                account_id: account.unwrap_or_default(),
                amount: amount.unwrap_or_default(),
                idempotency_key: key.unwrap_or_default(),
                memo,
            };
            let response = call!(MeteringClient::new(channel), charge, &caller, request);
            show(&caller, &response, |response| {
                println!("charged {} DVM (seq {})", response.amount, response.seq)
            });
            Ok(())
        }
        Top::Market(command) => {
            market::market(MarketDataClient::new(channel), &caller, command).await
        }
        Top::Completions { .. } | Top::Profile(_) | Top::Shell => {
            unreachable!("answered before connecting")
        }
    }
}

/// A stream's next message. These streams end only when the server stops or refuses to go
/// on, which is an error here.
async fn next<T>(stream: &mut tonic::Streaming<T>) -> Result<T, String> {
    stream
        .message()
        .await
        .map_err(status)?
        .ok_or_else(|| "the server ended the stream".to_string())
}

/// A time in milliseconds since the Unix epoch, as an HTTP date (in UTC, to the second).
fn date(time_ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(time_ms))
}
