//! The Prometheus endpoint of a real `divmid-server`, scraped over HTTP during a user
//! story: every metric the contract names is there, the counters follow what was done,
//! the histograms have observations.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::process::{start_server_with_metrics, Stopped};
use common::{clients, connect_serving, funded_traders, limit, place_all, ISSUER_TOKEN};
use divmid::api::proto;

/// `GET /metrics` over HTTP/1.0: the status line and the body.
fn scrape(address: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("the metrics port answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: divmid\r\n\r\n")
        .expect("sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The value of the sample `name` (with its labels, as written), if present.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A histogram's buckets, as Prometheus reads them: cumulative, never going down, the
/// `+Inf` one equal to the count of observations.
fn assert_histogram_counts_once(body: &str, histogram: &str) {
    let prefix = format!("{histogram}_bucket{{le=");
    let buckets: Vec<f64> = body
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .map(|line| {
            let (_, count) = line.rsplit_once(' ').expect("a sample");
            count.parse().expect("a number")
        })
        .collect();
    assert!(buckets.len() > 5, "{histogram}: {buckets:?}");
    assert!(
        buckets.windows(2).all(|pair| pair[0] <= pair[1]),
        "{histogram}: {buckets:?}"
    );
    let count = value(body, &format!("{histogram}_count"));
    assert_eq!(
        buckets.last().copied(),
        Some(count),
        "{histogram}: {buckets:?}"
    );
}

fn value(body: &str, name: &str) -> f64 {
    sample(body, name).unwrap_or_else(|| panic!("no {name} in\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_user_story() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = directory.path().join("divmid.toml");
    let settings =
        "[server]\nmetrics_listen = \"127.0.0.1:0\"\n\n[pipeline]\nsnapshot_every_events = 20\n";
    std::fs::write(&config, settings).expect("written");
    let data = directory.path().join("data");
    let config = config.to_str().expect("UTF-8");
    let (server, address, metrics) =
        start_server_with_metrics(&data, ISSUER_TOKEN, &["--config", config]);
    let _server = Stopped(server);
    let channel = connect_serving(&address).await;

    let (status, before) = scrape(&metrics);
    assert!(status.contains("200"), "{status}");
    assert!(
        before.contains("# TYPE divmid_commit_seconds histogram"),
        "{before}"
    );

    // The story: traders funded, a trade, a refused order, a trade stream held open.
    let mut traders = funded_traders(&channel, "1000", &["maker", "taker"], "500", "100").await;
    let mut trades = proto::market_data_client::MarketDataClient::new(channel.clone())
        .stream_trades(proto::StreamTradesRequest {
            market: "DVM-USD".into(),
            ..Default::default()
        })
        .await
        .expect("a trade stream")
        .into_inner();
    let sells = (0..30).map(|_| limit(proto::Side::Sell, "1.0000", "0.01"));
    place_all(&mut traders[0], sells.collect()).await;
    let buys = (0..30).map(|_| limit(proto::Side::Buy, "1.0000", "0.01"));
    place_all(&mut traders[1], buys.collect()).await;
    let refused = traders[1]
        .trading
        .place_order(limit(proto::Side::Buy, "-1", "0.01"))
        .await
        .expect_err("a negative price is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    trades.message().await.expect("streams").expect("a trade");
    let mut issuer = clients(&channel, Some(ISSUER_TOKEN));
    let supply = issuer
        .issuer
        .get_supply(proto::GetSupplyRequest {})
        .await
        .expect("the supply")
        .into_inner();

    // Snapshots are written on a thread of their own, after the commits they cover.
    let mut after = scrape(&metrics).1;
    for _ in 0..100 {
        if value(&after, "divmid_snapshot_seconds_count") > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = scrape(&metrics).1;
    }
    for name in [
        "divmid_seq",
        "divmid_indexed_seq",
        "divmid_commands_total",
        "divmid_commit_seconds",
        "divmid_batch_commands",
        "divmid_queue_depth",
        "divmid_grpc_requests_total",
        "divmid_grpc_request_seconds",
        "divmid_stream_subscribers",
        "divmid_store_bytes",
        "divmid_snapshot_seconds",
    ] {
        let family = name.trim_end_matches("_total");
        assert!(
            after.contains(&format!("# TYPE {family} ")),
            "{name} is missing:\n{after}"
        );
    }
    assert!(value(&after, "divmid_seq") >= supply.seq as f64);
    assert!(value(&after, "divmid_indexed_seq") <= value(&after, "divmid_seq"));
    let placed = "divmid_commands_total{kind=\"place_order\",outcome=\"accepted\"}";
    assert_eq!(value(&before, placed), 0.0);
    assert_eq!(value(&after, placed), 60.0);
    let ok = "divmid_grpc_requests_total{method=\"divmid.v1.Trading/OrderSession\",code=\"OK\"}";
    assert_eq!(value(&after, ok), 2.0, "{after}");
    let invalid =
        "divmid_grpc_requests_total{method=\"divmid.v1.Trading/PlaceOrder\",code=\"INVALID_ARGUMENT\"}";
    assert_eq!(value(&after, invalid), 1.0, "{after}");
    assert!(
        value(&after, "divmid_commit_seconds_count")
            > value(&before, "divmid_commit_seconds_count")
    );
    assert!(value(&after, "divmid_commit_seconds_sum") > 0.0);
    for histogram in [
        "divmid_commit_seconds",
        "divmid_batch_commands",
        "divmid_snapshot_seconds",
    ] {
        assert_histogram_counts_once(&after, histogram);
    }
    assert!(value(&after, "divmid_batch_commands_count") > 0.0);
    assert!(
        value(&after, "divmid_snapshot_seconds_count") > 0.0,
        "{after}"
    );
    let seconds = "divmid_grpc_request_seconds_count{method=\"divmid.v1.Issuer/GetSupply\"}";
    assert_eq!(value(&after, seconds), 1.0);
    let open = "divmid_stream_subscribers{stream=\"market_data\"}";
    assert_eq!(value(&before, open), 0.0);
    assert_eq!(value(&after, open), 1.0);
    assert!(value(&after, "divmid_store_bytes") > value(&before, "divmid_store_bytes"));
    assert_eq!(value(&after, "divmid_queue_depth"), 0.0);

    // A path no route serves makes no label of its own.
    let mut unknown = tonic::client::Grpc::new(channel.clone());
    unknown.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/stranger.Service/Guess");
    let answer: Result<tonic::Response<()>, tonic::Status> = unknown
        .unary(
            tonic::Request::new(()),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_eq!(
        answer.expect_err("no such method").code(),
        tonic::Code::Unimplemented
    );
    let (_, last) = scrape(&metrics);
    assert!(!last.contains("stranger"), "{last}");
    assert_eq!(
        value(
            &last,
            "divmid_grpc_requests_total{method=\"unknown\",code=\"UNIMPLEMENTED\"}"
        ),
        1.0
    );
    assert_monitoring_names_served(&after);
}

/// Every `divmid_…` metric the dashboard and the alert rules use is one the server serves.
fn assert_monitoring_names_served(scraped: &str) {
    let monitoring = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/monitoring");
    let mut named = 0;
    for file in ["grafana-dashboard.json", "alerts.yml"] {
        let text = std::fs::read_to_string(format!("{monitoring}/{file}")).expect("readable");
        for (start, _) in text.match_indices("divmid_") {
            let name: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .fold(name.as_str(), |name, suffix| name.trim_end_matches(suffix));
            assert!(
                scraped.contains(&format!("# TYPE {family} ")),
                "{file} uses {name}, which the server does not serve"
            );
            named += 1;
        }
    }
    assert!(named > 20, "the dashboard and rules name {named} metrics");
}
