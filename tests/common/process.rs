//! `divmid-server` as a child process on a free loopback port, for tests and benches that
//! kill it or measure it from outside, and the bearer token their requests carry.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use divmid::api::proto;
use divmid::api::proto::issuer_client::IssuerClient;
use tonic::transport::Channel;
use tonic::Request;

/// Starts the server on `data_dir` with the issuer token `issuer_token` and the extra
/// arguments `args`, and returns it with the address it listens on (`http://…`).
pub fn start_server(data_dir: &Path, issuer_token: &str, args: &[&str]) -> (Child, String) {
    start_server_with(data_dir, issuer_token, args, |_| {})
}

/// As [`start_server`], with the command adjusted by `adjust` before it starts.
pub fn start_server_with(
    data_dir: &Path,
    issuer_token: &str,
    args: &[&str],
    adjust: impl FnOnce(&mut Process),
) -> (Child, String) {
    let (child, lines) = spawn(data_dir, issuer_token, args, adjust);
    let address = address_in(&lines, "serving gRPC");
    (child, address)
}

/// As [`start_server`], serving metrics too (`metrics_listen` set in the configuration
/// `args` give); returns the metrics endpoint's address (`host:port`) as well.
#[allow(dead_code)] // Not every test that includes this module serves metrics.
pub fn start_server_with_metrics(
    data_dir: &Path,
    issuer_token: &str,
    args: &[&str],
) -> (Child, String, String) {
    start_server_also(data_dir, issuer_token, args, "serving metrics")
}

/// As [`start_server`], serving the web gateway too (`http_listen` set in the
/// configuration `args` give); returns the gateway's address (`host:port`) as well.
#[allow(dead_code)] // Not every test that includes this module serves the web gateway.
pub fn start_server_with_http(
    data_dir: &Path,
    issuer_token: &str,
    args: &[&str],
) -> (Child, String, String) {
    start_server_also(data_dir, issuer_token, args, "serving HTTP")
}

/// Starts the server; returns it, its gRPC address and the `host:port` of the other
/// endpoint its log announces with `what`.
fn start_server_also(
    data_dir: &Path,
    issuer_token: &str,
    args: &[&str],
    what: &str,
) -> (Child, String, String) {
    let (child, lines) = spawn(data_dir, issuer_token, args, |_| {});
    let address = address_in(&lines, "serving gRPC");
    let other = address_in(&lines, what);
    (
        child,
        address,
        other.trim_start_matches("http://").to_string(),
    )
}

/// A server process killed when the test ends, whether it passes or not.
#[allow(dead_code)]
pub struct Stopped(pub Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server and returns it with its log's lines.
fn spawn(
    data_dir: &Path,
    issuer_token: &str,
    args: &[&str],
    adjust: impl FnOnce(&mut Process),
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut command = Process::new(env!("CARGO_BIN_EXE_divmid-server"));
    adjust(&mut command);
    let mut child = command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .args(args)
        .env("DIVMID_ISSUER_TOKEN", issuer_token)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let stderr = child.stderr.take().expect("piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // DIVMID_SERVER_LOG=1 shows the server's log, for a bench or test being looked into.
        let shown = std::env::var_os("DIVMID_SERVER_LOG").is_some();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if shown {
                eprintln!("server: {line}");
            }
            let _ = sender.send(line);
        }
    });
    (child, receiver)
}

/// The loopback address (`http://…`) on the first line of `lines` that says `what`.
fn address_in(lines: &std::sync::mpsc::Receiver<String>, what: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server says where it is {what}"));
        if !line.contains(what) {
            continue;
        }
        if let Some(start) = line.find("127.0.0.1:") {
            let address: String = line[start..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            return format!("http://{address}");
        }
    }
}

/// A request carrying `token` as its bearer token.
pub fn authorized<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

/// As the issuer (`issuer_token`), mints `amount` DVM and sets the public issue price to
/// 1 USD, so that traders can buy what a test or bench needs.
pub async fn mint_at_one_dollar(channel: &Channel, issuer_token: &str, amount: &str) {
    let mut issuer = IssuerClient::new(channel.clone());
    issuer
        .mint(authorized(
            issuer_token,
            proto::MintRequest {
                amount: amount.into(),
                memo: String::new(),
                idempotency_key: "supply".into(),
            },
        ))
        .await
        .expect("minted");
    issuer
        .set_issue_price(authorized(
            issuer_token,
            proto::SetIssuePriceRequest {
                tier: proto::Tier::Public as i32,
                price: "1".into(),
            },
        ))
        .await
        .expect("priced");
}
