//! The server's log, written to a pipe (a file, a journal), carries no colour escapes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn a_log_that_is_not_a_terminal_has_no_colour_escapes() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_divmid-server"))
        .arg("--data-dir")
        .arg(directory.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .env(
            "DIVMID_ISSUER_TOKEN",
            "issuer-token-for-the-log-test-0123456",
        )
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let stderr = child.stderr.take().expect("piped");
    let mut log = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("a line of log");
        log.push_str(&line);
        log.push('\n');
        if line.contains("127.0.0.1:") {
            break;
        }
    }
    child.kill().expect("stopped");
    child.wait().expect("reaped");
    assert!(log.contains("INFO"), "the log was read: {log}");
    assert!(!log.contains('\u{1b}'), "no escape sequences: {log:?}");
}

/// The JSON log's access lines: one per request, with its method, account and outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_name_each_request_s_method_account_and_outcome() {
    use divmid::api::proto::{self, issuer_client::IssuerClient};
    let directory = tempfile::tempdir().expect("a temporary directory");
    let token = "issuer-token-for-the-log-test-0123456";
    let mut child = Command::new(env!("CARGO_BIN_EXE_divmid-server"))
        .arg("--data-dir")
        .arg(directory.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--log-json"])
        .env("DIVMID_ISSUER_TOKEN", token)
        .env("RUST_LOG", "info,divmid::access=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let (lines, received) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let next = || {
        let line = received
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a log line");
        serde_json::from_str::<serde_json::Value>(&line)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
    };
    let address = loop {
        let line = next();
        if line["fields"]["message"] == "serving gRPC" {
            break line["fields"]["address"]
                .as_str()
                .expect("an address")
                .to_string();
        }
    };
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .expect("a URL")
        .connect()
        .await
        .expect("connects");
    let authorized = |token: &str| {
        let mut request = tonic::Request::new(proto::GetSupplyRequest {});
        let value = format!("Bearer {token}").parse().expect("ASCII");
        request.metadata_mut().insert("authorization", value);
        request
    };
    let mut issuer = IssuerClient::new(channel);
    issuer
        .get_supply(authorized(token))
        .await
        .expect("the supply");
    let refused = issuer
        .get_supply(authorized("not-a-token-of-this-exchange-at-all"))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let mut access = Vec::new();
    while access.len() < 2 {
        let line = next();
        if line["target"] == "divmid::access" {
            access.push(line);
        }
    }
    child.kill().expect("stopped");
    child.wait().expect("reaped");
    let fields = |line: &serde_json::Value| {
        let fields = &line["fields"];
        (
            fields["method"].as_str().map(str::to_string),
            fields["account"].as_u64(),
            fields["outcome"].as_str().map(str::to_string),
        )
    };
    let method = Some("divmid.v1.Issuer/GetSupply".to_string());
    // The issuer's account is the treasury, account 1.
    assert_eq!(
        fields(&access[0]),
        (method.clone(), Some(1), Some("OK".into()))
    );
    assert_eq!(access[0]["level"], "DEBUG");
    assert_eq!(
        fields(&access[1]),
        (method, None, Some("UNAUTHENTICATED".into()))
    );
    assert_eq!(access[1]["level"], "INFO");
}
