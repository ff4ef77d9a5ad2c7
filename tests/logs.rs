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
