//! The perimeter against a client that opens connections and says nothing: with the
//! server's file descriptors nearly all taken by such sockets, silent connections are
//! closed after `handshake_timeout_ms`, the accept loop waits instead of spinning, and a
//! fresh client is served.

mod common;

use std::time::{Duration, Instant};

use common::process::start_server_with;
use divmid::api::proto;
use divmid::api::proto::market_data_client::MarketDataClient;
use tonic::transport::Channel;

const ISSUER_TOKEN: &str = "issuer-token-for-the-perimeter-test-01";

/// Open files the server may have: its store, runtime and a few dozen sockets.
const FILES_MAX: u64 = 96;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_cannot_lock_out_a_fresh_client() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = directory.path().join("divmid.toml");
    std::fs::write(&config, "[server]\nhandshake_timeout_ms = 500\n").expect("written");
    let config = config.to_str().expect("a UTF-8 path").to_string();
    let (mut child, address) = start_server_with(
        &directory.path().join("data"),
        ISSUER_TOKEN,
        &["--config", &config],
        |command| {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; it only lowers the child's own limit.
            unsafe {
                command.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: FILES_MAX,
                        rlim_max: FILES_MAX,
                    };
                    match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                        0 => Ok(()),
                        _ => Err(std::io::Error::last_os_error()),
                    }
                });
            }
        },
    );
    let port = address.rsplit(':').next().expect("a port").to_string();
    let target = format!("127.0.0.1:{port}");
    // More silent sockets than the server has descriptors.
    let mut silent = Vec::new();
    for _ in 0..2 * FILES_MAX {
        silent.push(
            tokio::net::TcpStream::connect(&target)
                .await
                .expect("the kernel accepts into the backlog"),
        );
    }
    let started = Instant::now();
    let served = tokio::time::timeout(Duration::from_secs(30), async {
        let channel = Channel::from_shared(address.clone())
            .expect("an address")
            .connect()
            .await?;
        MarketDataClient::new(channel)
            .get_markets(proto::GetMarketsRequest {})
            .await
            .map_err(|status| -> Box<dyn std::error::Error + Send + Sync> { Box::new(status) })?;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    })
    .await;
    eprintln!(
        "a fresh client beside {} silent sockets: {:?} after {:?}",
        silent.len(),
        served.as_ref().map(|result| result.is_ok()),
        started.elapsed()
    );
    assert!(
        matches!(served, Ok(Ok(()))),
        "a fresh client is served: {served:?}"
    );
    // The silent sockets were closed by the server (after its HTTP/2 settings).
    let first = &mut silent[0];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::AsyncReadExt;
        let mut received = Vec::new();
        first.read_to_end(&mut received).await
    })
    .await;
    assert!(
        matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
        "a silent connection is closed: {closed:?}"
    );
    child.kill().expect("stopped");
    child.wait().expect("reaped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_does_not_wait_for_a_client_that_holds_a_stream_open() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = directory.path().join("divmid.toml");
    std::fs::write(&config, "[server]\nshutdown_grace_ms = 500\n").expect("written");
    let config = config.to_str().expect("a UTF-8 path").to_string();
    let (mut child, address) = start_server_with(
        &directory.path().join("data"),
        ISSUER_TOKEN,
        &["--config", &config],
        |_| {},
    );
    let channel = Channel::from_shared(address)
        .expect("an address")
        .connect()
        .await
        .expect("connects");
    // A reflection stream whose client never finishes sending: the server cannot end it.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    let (_requests, pending) = tokio::sync::mpsc::channel(1);
    let _held = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(pending))
        .await
        .expect("the stream opens");
    let started = Instant::now();
    // SAFETY: kill only sends a signal to the child this test started.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0, "SIGTERM is delivered");
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server still waits for the open stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "stopped {:?} after SIGTERM with a stream held open",
        started.elapsed()
    );
    assert!(status.success(), "a graceful stop exits 0: {status}");
}
