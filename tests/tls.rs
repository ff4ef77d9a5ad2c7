//! TLS over real gRPC, with certificates made at test time: a TLS server serves the user
//! story to a client that trusts its CA; a plaintext client gets nothing; under mutual
//! TLS a client certificate signed by another CA is refused and one signed by the
//! configured CA is served; and a server without TLS refuses to listen beyond loopback.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{clients, limit, Running, ISSUER_TOKEN};
use divmid::api::proto;
use divmid::api::server::open;
use divmid::api::tls::client_config;
use divmid::config::{Config, TlsConfig};
use divmid::error::ConfigError;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};

/// A CA, and what it signs.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).expect("self-signed").pem();
        Authority {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A certificate for `names`, and its key, as PEM.
    fn sign(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("a key");
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let params = CertificateParams::new(names).expect("parameters");
        let certificate = params.signed_by(&key, &self.issuer).expect("signed");
        (certificate.pem(), key.serialize_pem())
    }
}

fn write(directory: &Path, name: &str, text: &str) -> PathBuf {
    let path = directory.join(name);
    std::fs::write(&path, text).expect("written");
    path
}

/// A server with TLS (and client certificates signed by `client_ca`, if given).
async fn start(directory: &Path, authority: &Authority, client_ca: Option<&Authority>) -> Running {
    let (certificate, key) = authority.sign(&["localhost", "127.0.0.1"]);
    let mut config = Config::default();
    config.server.data_dir = directory.join("data");
    config.server.issuer_token = Some(ISSUER_TOKEN.to_string());
    config.server.handshake_timeout_ms = 1_000;
    config.server.tls = Some(TlsConfig {
        cert_file: write(directory, "server.pem", &certificate),
        key_file: write(directory, "server.key", &key),
        client_ca_file: client_ca.map(|ca| write(directory, "client-ca.pem", &ca.pem)),
    });
    let context = open(config, None).expect("the exchange opens");
    Running::serve(context).await
}

/// A TLS channel trusting `ca`, with a client certificate when given.
async fn connect(
    directory: &Path,
    address: std::net::SocketAddr,
    ca: &Authority,
    identity: Option<(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let ca_file = write(directory, "ca.pem", &ca.pem);
    let identity = identity.map(|(certificate, key)| {
        (
            write(directory, "client.pem", &certificate),
            write(directory, "client.key", &key),
        )
    });
    let identity = identity
        .as_ref()
        .map(|(cert, key)| (cert.as_path(), key.as_path()));
    let tls = client_config(Some(&ca_file), identity).expect("client TLS");
    Endpoint::from_shared(format!("https://localhost:{}", address.port()))
        .expect("an address")
        .tls_config(tls)
        .expect("TLS")
        .connect()
        .await
}

async fn supply(channel: &Channel) -> Result<String, tonic::Status> {
    Ok(clients(channel, Some(ISSUER_TOKEN))
        .issuer
        .get_supply(proto::GetSupplyRequest {})
        .await?
        .into_inner()
        .minted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_serves_the_story_and_refuses_plaintext() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let authority = Authority::new("divmid test CA");
    let server = start(directory.path(), &authority, None).await;
    let address = server.address;
    let channel = connect(directory.path(), address, &authority, None)
        .await
        .expect("a TLS connection");
    common::wait_serving(&channel).await;
    let mut traders = common::funded_traders(&channel, "100", &["ada", "bob"], "50", "10").await;
    let (mut bob, mut ada) = (traders.pop().expect("bob"), traders.pop().expect("ada"));
    common::trade(&mut ada, &mut bob, 3).await;
    let book = ada
        .trading
        .place_order(limit(proto::Side::Sell, "2.0000", "1"))
        .await
        .expect("placed over TLS")
        .into_inner();
    assert!(book.order.is_some());
    assert_eq!(supply(&channel).await.expect("the supply"), "100.000000");

    // A plaintext client gets no answer from a TLS-only server.
    let plaintext = Endpoint::from_shared(format!("http://127.0.0.1:{}", address.port()))
        .expect("an address")
        .connect()
        .await;
    if let Ok(plaintext) = plaintext {
        assert!(supply(&plaintext).await.is_err(), "plaintext was served");
    }
    // Nor does a client that does not trust the server's CA.
    let stranger = Authority::new("another CA");
    let untrusted = connect(directory.path(), address, &stranger, None).await;
    if let Ok(untrusted) = untrusted {
        assert!(
            supply(&untrusted).await.is_err(),
            "an unverified server was trusted"
        );
    }
    // A TLS record header of a ClientHello, and then nothing: the handshake stalls half
    // way and the server closes the connection.
    let mut stalled = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("written");
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        let mut received = Vec::new();
        stalled.read_to_end(&mut received).await
    })
    .await;
    assert!(closed.is_ok(), "a stalled TLS handshake is closed");
    server.stop().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_serves_only_clients_signed_by_the_configured_ca() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let authority = Authority::new("divmid test CA");
    let client_ca = Authority::new("divmid clients CA");
    let server = start(directory.path(), &authority, Some(&client_ca)).await;
    let address = server.address;

    let signed = connect(
        directory.path(),
        address,
        &authority,
        Some(client_ca.sign(&["trading-desk"])),
    )
    .await
    .expect("a TLS connection");
    common::wait_serving(&signed).await;
    assert_eq!(supply(&signed).await.expect("served"), "0.000000");

    let impostor = Authority::new("impostor CA");
    let refused = connect(
        directory.path(),
        address,
        &authority,
        Some(impostor.sign(&["trading-desk"])),
    )
    .await;
    if let Ok(refused) = refused {
        assert!(
            supply(&refused).await.is_err(),
            "a foreign client certificate was served"
        );
    }
    let anonymous = connect(directory.path(), address, &authority, None).await;
    if let Ok(anonymous) = anonymous {
        assert!(
            supply(&anonymous).await.is_err(),
            "a client without a certificate was served"
        );
    }
    server.stop().await.expect("stops cleanly");
}

#[test]
fn plaintext_beyond_loopback_is_refused_naming_both_ways_out() {
    let mut config = Config::default();
    config.server.listen = "0.0.0.0:50051".parse().expect("an address");
    let error = config.validate().expect_err("refused");
    assert!(matches!(error, ConfigError::Plaintext(_)));
    let message = error.to_string();
    assert!(message.contains("[server.tls]"), "{message}");
    assert!(message.contains("allow_plaintext"), "{message}");
    config.server.allow_plaintext = true;
    assert_eq!(config.validate(), Ok(()));
    config.server.allow_plaintext = false;
    config.server.tls = Some(TlsConfig {
        cert_file: "server.pem".into(),
        key_file: "server.key".into(),
        client_ca_file: None,
    });
    assert_eq!(config.validate(), Ok(()));
}

/// Runs the command-line client; returns whether it succeeded and what it printed.
fn divmid(arguments: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_divmid"))
        .env(
            "DIVMID_CONFIG_DIR",
            std::env::temp_dir().join(format!(
                "divmid-tls-test-no-profiles-{}",
                std::process::id()
            )),
        )
        .args(arguments)
        .env_remove("DIVMID_CA_FILE")
        .env("DIVMID_TOKEN", ISSUER_TOKEN)
        .output()
        .expect("divmid runs");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), printed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_client_speaks_tls_with_a_ca_file() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let authority = Authority::new("divmid test CA");
    let exchange = start(directory.path(), &authority, None).await;
    let address = exchange.address;
    let ca_file = write(directory.path(), "ca.pem", &authority.pem);
    let ca_file = ca_file.to_str().expect("a UTF-8 path");
    let server = format!("https://localhost:{}", address.port());
    let (ok, printed) = tokio::task::spawn_blocking({
        let (server, ca_file) = (server.clone(), ca_file.to_string());
        move || divmid(&["--server", &server, "--ca-file", &ca_file, "market", "list"])
    })
    .await
    .expect("ran");
    assert!(ok, "{printed}");
    assert!(printed.contains("DVM-USD"), "{printed}");

    let (ok, printed) = tokio::task::spawn_blocking({
        let server = server.clone();
        move || divmid(&["--server", &server, "issuer", "supply"])
    })
    .await
    .expect("ran");
    assert!(!ok, "a server whose CA is not trusted was used: {printed}");

    let plain = format!("http://127.0.0.1:{}", address.port());
    let ca_file = ca_file.to_string();
    let (ok, printed) = tokio::task::spawn_blocking(move || {
        divmid(&["--server", &plain, "--ca-file", &ca_file, "market", "list"])
    })
    .await
    .expect("ran");
    assert!(!ok);
    assert!(printed.contains("--ca-file"), "{printed}");
    exchange.stop().await.expect("stops cleanly");
}
