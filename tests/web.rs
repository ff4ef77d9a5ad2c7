//! The web gateway over real HTTP against a running server: the JSON endpoints' answers
//! (equal to the gRPC API's) and refusals, the event stream's resumption from
//! `Last-Event-ID` with no gap and no duplicate, and the page in a real headless Chromium
//! driven through ChromeDriver. In CI, `.ci/run` installs Debian's `chromium` and
//! `chromium-driver` and sets `DIVMID_REQUIRE_CHROMIUM=1`, which makes a missing browser a
//! failure; elsewhere the browser test says it did not run and how to install them.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{self, get, get_json, get_with, Event, Events};
use common::process::{start_server_with_http, Stopped};
use common::{
    connect_serving, funded_traders, limit, streamed_trades, top_of_book, trade, Clients,
    ISSUER_TOKEN,
};
use divmid::api::proto::{self, market_data_client::MarketDataClient};
use serde_json::{json, Value};
use tonic::transport::Channel;

const STREAM: &str = "/api/v1/markets/DVM-USD/stream?depth=10";

/// A server with the web gateway on, killed when the test ends.
struct Gateway {
    _server: Stopped,
    channel: Channel,
    /// The gateway's `host:port`.
    http: String,
    _directory: tempfile::TempDir,
}

/// Starts a server whose `[server]` table has the gateway on and `extra` lines.
async fn start_gateway(extra: &str) -> Gateway {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = directory.path().join("divmid.toml");
    let settings = format!("[server]\nhttp_listen = \"127.0.0.1:0\"\n{extra}");
    std::fs::write(&config, settings).expect("written");
    let config = config.to_str().expect("UTF-8").to_string();
    let (server, grpc, http) = start_server_with_http(
        &directory.path().join("data"),
        ISSUER_TOKEN,
        &["--config", &config],
    );
    let server = Stopped(server);
    let channel = connect_serving(&grpc).await;
    Gateway {
        _server: server,
        channel,
        http,
        _directory: directory,
    }
}

/// Two funded traders: a maker and a taker.
async fn traders(channel: &Channel) -> (Clients, Clients) {
    let mut traders = funded_traders(channel, "2000", &["ann", "bob"], "900", "400").await;
    let taker = traders.pop().expect("two");
    let maker = traders.pop().expect("two");
    (maker, taker)
}

/// A gRPC answer as protobuf's JSON mapping writes it (what the gateway must answer).
fn as_json(message: &impl serde::Serialize) -> Value {
    serde_json::to_value(message).expect("JSON")
}

/// Every DVM-USD trade after `after`, oldest first, out of `/trades` page by page.
async fn journal_trades(http: &str, after: u64, limit: usize) -> Vec<Value> {
    let mut trades = Vec::new();
    let mut from = after;
    loop {
        let path = format!("/api/v1/markets/DVM-USD/trades?from_seq={from}&limit={limit}");
        let page = get_json(http, &path).await;
        let next: u64 = page["next_from_seq"]
            .as_str()
            .expect("a string")
            .parse()
            .expect("a number");
        let got = page["trades"].as_array().expect("trades").clone();
        assert!(got.len() <= limit, "{path} gave {} trades", got.len());
        let done = got.is_empty() && next == from;
        trades.extend(got);
        if done {
            return trades;
        }
        assert!(next > from, "{path}: next_from_seq {next} does not move on");
        from = next;
    }
}

fn seq_of(value: &Value) -> u64 {
    value.as_str().expect("a string").parse().expect("a number")
}

/// Rests a few orders so that the book has levels on both sides.
async fn rest_levels(maker: &mut Clients) {
    for (side, price, quantity) in [
        (proto::Side::Buy, "0.9000", "1.00"),
        (proto::Side::Buy, "0.8500", "0.50"),
        (proto::Side::Sell, "1.1000", "2.00"),
        (proto::Side::Sell, "1.2500", "0.25"),
    ] {
        maker
            .trading
            .place_order(limit(side, price, quantity))
            .await
            .expect("rests");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_endpoints_answer_as_the_grpc_api_and_refuse_bad_input_by_name() {
    let gateway = start_gateway("").await;
    let http = gateway.http.as_str();
    let (mut maker, mut taker) = traders(&gateway.channel).await;
    trade(&mut maker, &mut taker, 30).await;
    rest_levels(&mut maker).await;
    let mut market_data = MarketDataClient::new(gateway.channel.clone());

    // Markets, the book, the ticker and the issue prices: the gRPC answers, as JSON.
    let markets = market_data
        .get_markets(proto::GetMarketsRequest {})
        .await
        .expect("markets")
        .into_inner();
    assert_eq!(get_json(http, "/api/v1/markets").await, as_json(&markets));
    let book = get_json(http, "/api/v1/markets/DVM-USD/book?depth=10").await;
    assert_eq!(book, as_json(&top_of_book(&gateway.channel).await));
    assert_eq!(
        book["bids"][0],
        json!({"price": "0.9000", "quantity": "1.00"})
    );
    assert_eq!(
        book["asks"][1],
        json!({"price": "1.2500", "quantity": "0.25"})
    );
    let top = get_json(http, "/api/v1/markets/DVM-USD/book?depth=1").await;
    assert_eq!(top["bids"].as_array().map(Vec::len), Some(1));
    let ticker = get_json(http, "/api/v1/markets/DVM-USD/ticker").await;
    assert_eq!(
        (
            &ticker["last_price"],
            &ticker["best_bid"],
            &ticker["best_ask"]
        ),
        (&json!("1.0000"), &json!("0.9000"), &json!("1.1000"))
    );
    assert_eq!(ticker["volume_24h"], "0.30");
    let prices = market_data
        .get_issue_prices(proto::GetIssuePricesRequest {})
        .await
        .expect("prices")
        .into_inner();
    assert_eq!(
        get_json(http, "/api/v1/issue-prices").await,
        as_json(&prices)
    );
    assert_eq!(prices.prices.len(), 1);

    // Trades: every one once, in order, page by page, equal to StreamTrades from 0.
    let paged = journal_trades(http, 0, 7).await;
    let streamed = streamed_trades(&gateway.channel, 30).await;
    assert_eq!(paged, streamed.iter().map(as_json).collect::<Vec<_>>());
    let latest = get_json(http, "/api/v1/markets/DVM-USD/trades?limit=5").await;
    assert_eq!(
        latest["trades"].as_array().expect("trades")[..],
        paged[25..]
    );
    assert_eq!(latest["trades"][4]["price"], "1.0000");

    // Candles over an explicit range, equal to GetCandles; their volume is the trades'.
    let to_ms = now_ms() + 60_000;
    let from_ms = to_ms - 3 * 60 * 60 * 1_000;
    let path =
        format!("/api/v1/markets/DVM-USD/candles?interval=5m&from_ms={from_ms}&to_ms={to_ms}");
    let candles = get_json(http, &path).await;
    let expected = market_data
        .get_candles(proto::GetCandlesRequest {
            market: "DVM-USD".into(),
            interval: proto::CandleInterval::CandleInterval5m as i32,
            from_ms,
            to_ms,
        })
        .await
        .expect("candles")
        .into_inner();
    assert_eq!(candles, as_json(&expected));
    let lots: u64 = expected
        .candles
        .iter()
        .map(|candle| candle.volume.replace('.', "").parse::<u64>().expect("lots"))
        .sum();
    assert_eq!(lots, 30);
    let default_range = get_json(http, "/api/v1/markets/DVM-USD/candles").await;
    assert!(!default_range["candles"]
        .as_array()
        .expect("candles")
        .is_empty());

    // Bad input: 400 naming the parameter; an unknown market 404; nothing changed.
    let seq_before = book["seq"].clone();
    for (path, parameter) in [
        ("/api/v1/markets/DVM-USD/book?depth=0", "depth"),
        ("/api/v1/markets/DVM-USD/book?depth=1001", "depth"),
        ("/api/v1/markets/DVM-USD/book?depth=ten", "depth"),
        ("/api/v1/markets/DVM-USD/trades?limit=0", "limit"),
        ("/api/v1/markets/DVM-USD/trades?from_seq=-1", "from_seq"),
        (
            "/api/v1/markets/DVM-USD/trades?from_seq=99999999",
            "from_seq",
        ),
        ("/api/v1/markets/DVM-USD/candles?interval=2m", "interval"),
        ("/api/v1/markets/DVM-USD/stream?depth=101", "depth"),
    ] {
        let answer = get(http, path).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        let error = answer.json()["error"]
            .as_str()
            .expect("an error")
            .to_string();
        assert!(
            error.starts_with(&format!("{parameter}: ")),
            "{path}: {error}"
        );
    }
    for path in ["book", "trades", "candles", "ticker", "stream"] {
        let answer = get(http, &format!("/api/v1/markets/NOPE-USD/{path}")).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert!(answer.json()["error"]
            .as_str()
            .expect("an error")
            .contains("market"));
    }
    let answer = get(http, "/api/v1/no-such-thing").await;
    assert_eq!(answer.status, 404);
    assert!(answer.json()["error"].is_string());
    let after = get_json(http, "/api/v1/markets/DVM-USD/book?depth=10").await;
    assert_eq!(after["seq"], seq_before);

    // Security headers on everything; no cross-origin reads unless configured.
    for path in ["/", "/api/v1/markets", "/assets/app.js"] {
        let answer = get(http, path).await;
        assert_eq!(answer.status, 200, "{path}");
        let header = |name: &str| {
            answer
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        assert_eq!(header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(header("x-frame-options"), Some("DENY"), "{path}");
        let policy = header("content-security-policy").expect("a policy");
        assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
        assert_eq!(header("access-control-allow-origin"), None, "{path}");
    }
    let page = get(http, "/").await;
    assert!(page.body.contains("/assets/app.js") && page.body.contains("lightweight-charts"));
    let chart = get(http, "/assets/lightweight-charts.js").await;
    assert!(chart.body.contains("Licensed under Apache License 2.0"));
    let licence = get(http, "/assets/LICENSE-lightweight-charts.txt").await;
    assert!(licence.body.contains("Apache License"));
    assert_eq!(get(http, "/assets/nothing.js").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resumes_after_last_event_id_with_no_gap_and_no_duplicate() {
    let gateway = start_gateway("http_allow_origin = \"https://example.com\"\n").await;
    let http = gateway.http.as_str();
    let (mut maker, mut taker) = traders(&gateway.channel).await;
    rest_levels(&mut maker).await;

    let mut first = http::events(http, STREAM, None).await;
    assert_eq!(first.status, 200);
    let header = |name: &str| {
        first
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    assert_eq!(header("content-type"), Some("text/event-stream"));
    assert_eq!(
        header("access-control-allow-origin"),
        Some("https://example.com")
    );
    let mut copy = BookCopy::default();
    let snapshot = next(&mut first).await;
    assert_eq!(snapshot.event, "book");
    copy.apply(&snapshot);
    let start = snapshot.id.expect("an id");

    // Trades while connected; then the connection is dropped part way.
    trade(&mut maker, &mut taker, 20).await;
    let mut seen = Vec::new();
    let mut last_id = start;
    read_trades(&mut first, &mut copy, &mut seen, &mut last_id, 20).await;
    drop(first);

    // Trades while away; then back with Last-Event-ID, and more trades live.
    trade(&mut maker, &mut taker, 15).await;
    let mut second = http::events(http, STREAM, Some(last_id)).await;
    assert_eq!(second.status, 200);
    trade(&mut maker, &mut taker, 10).await;
    let mut resumed = BookCopy::default();
    let mut snapshot_seen = false;
    while seen.len() < 45 {
        let event = next(&mut second).await;
        let id = event.id.expect("an id");
        assert!(id >= last_id, "id {id} after {last_id}");
        last_id = id;
        match event.event.as_str() {
            "trade" => {
                assert_eq!(seq_of(&event.json()["seq"]), id);
                seen.push(event.json());
            }
            "book" => {
                assert!(snapshot_seen || event.json().get("snapshot").is_some());
                snapshot_seen = true;
                resumed.apply(&event);
            }
            other => panic!("an event {other}"),
        }
    }
    // Every trade after the first snapshot exactly once, in order: what the journal holds.
    assert_eq!(seen, journal_trades(http, start, 1_000).await);

    // The book copy kept from the stream is the exchange's book.
    let book = top_of_book(&gateway.channel).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while resumed.levels() != book_levels(&book) {
        assert!(
            Instant::now() < deadline,
            "the stream's book never reached the exchange's"
        );
        if let Some(event) = second.next(Duration::from_secs(5)).await {
            if event.event == "book" {
                resumed.apply(&event);
            }
        }
    }

    // Where the stream cannot resume from: refused, naming why.
    let answer = get_with(http, STREAM, &[("last-event-id", "99999999")]).await;
    assert_eq!(answer.status, 400);
    assert!(answer.json()["error"]
        .as_str()
        .expect("an error")
        .starts_with("Last-Event-ID: "));
    let answer = get_with(http, STREAM, &[("last-event-id", "soon")]).await;
    assert_eq!(answer.status, 400);
}

/// Reads events until `seen` holds `count` trades, checking each book event's checksum
/// and that ids never go down.
async fn read_trades(
    events: &mut Events,
    copy: &mut BookCopy,
    seen: &mut Vec<Value>,
    last_id: &mut u64,
    count: usize,
) {
    while seen.len() < count {
        let event = next(events).await;
        let id = event.id.expect("an id");
        assert!(id >= *last_id, "id {id} after {last_id}");
        *last_id = id;
        match event.event.as_str() {
            "trade" => {
                assert_eq!(seq_of(&event.json()["seq"]), id);
                seen.push(event.json());
            }
            "book" => copy.apply(&event),
            other => panic!("an event {other}"),
        }
    }
}

async fn next(events: &mut Events) -> Event {
    events
        .next(Duration::from_secs(30))
        .await
        .expect("an event within 30 s")
}

/// A copy of the book from `book` events, each checked against its checksum.
#[derive(Default)]
struct BookCopy {
    /// Price in ticks -> (price, quantity) as written.
    bids: BTreeMap<u64, (String, String)>,
    asks: BTreeMap<u64, (String, String)>,
}

type Levels = (Vec<(String, String)>, Vec<(String, String)>);

impl BookCopy {
    fn apply(&mut self, event: &Event) {
        let update = event.json();
        let (levels, is_snapshot) = match update.get("snapshot") {
            Some(snapshot) => (snapshot, true),
            None => (&update["changes"], false),
        };
        if is_snapshot {
            self.bids.clear();
            self.asks.clear();
        }
        assert_eq!(seq_of(&levels["book_seq"]), event.id.expect("an id"));
        for (side, name) in [(&mut self.bids, "bids"), (&mut self.asks, "asks")] {
            for level in levels[name].as_array().expect("levels") {
                let price = level["price"].as_str().expect("a price").to_string();
                let quantity = level["quantity"].as_str().expect("a quantity").to_string();
                let ticks: u64 = price.replace('.', "").parse().expect("ticks");
                if quantity.trim_start_matches(['0', '.']).is_empty() {
                    side.remove(&ticks);
                } else {
                    side.insert(ticks, (price, quantity));
                }
            }
        }
        let (bids, asks) = self.levels();
        let expected = divmid::market_data::checksum_of_written(asks, bids);
        assert_eq!(
            update["checksum"], expected,
            "the checksum after {}",
            event.data
        );
    }

    /// Bids best first, asks best first.
    fn levels(&self) -> Levels {
        (
            self.bids.values().rev().cloned().collect(),
            self.asks.values().cloned().collect(),
        )
    }
}

fn book_levels(book: &proto::GetOrderBookResponse) -> Levels {
    let written = |levels: &[proto::PriceLevel]| {
        levels
            .iter()
            .map(|level| (level.price.clone(), level.quantity.clone()))
            .collect()
    };
    (written(&book.bids), written(&book.asks))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// ChromeDriver and Chromium, if this machine has both.
fn browser() -> Option<(&'static str, &'static str)> {
    let runs = |binary: &str| {
        Command::new(binary)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
    };
    let driver = ["chromedriver", "/usr/bin/chromedriver"]
        .into_iter()
        .find(|b| runs(b))?;
    let chromium = ["/usr/bin/chromium", "chromium"]
        .into_iter()
        .find(|b| runs(b))?;
    Some((driver, chromium))
}

/// A ChromeDriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    address: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(binary: &str) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        address: format!("127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(&driver.address)
            .await
            .is_ok()
        {
            let status = http::get(&driver.address, "/status").await;
            if status.json()["value"]["ready"] == true {
                return driver;
            }
        }
        assert!(Instant::now() < deadline, "chromedriver never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One WebDriver command; its answer's `value`.
async fn webdriver(driver: &Driver, path: &str, body: Option<Value>) -> Value {
    let answer = match body {
        Some(body) => http::post_json(&driver.address, path, &body).await,
        None => http::get(&driver.address, path).await,
    };
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    answer.json()["value"].clone()
}

/// What the page shows, read from its DOM.
const PAGE_STATE: &str = r##"
const rows = (id) => [...document.querySelectorAll(`#${id} tr`)]
  .map((row) => [row.dataset.price, row.dataset.quantity]);
const trade = document.querySelector("#trades tr");
return {
  state: document.body.dataset.state,
  checks: Number(document.getElementById("checksum-state").dataset.checks),
  candles: Number(document.getElementById("candles").dataset.count),
  chart: document.querySelector("#chart canvas") !== null,
  bids: rows("bids"),
  asks: rows("asks").reverse(),
  trade: trade ? { seq: trade.dataset.seq, price: trade.dataset.price } : null,
  status: document.getElementById("status").textContent,
};
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_headless_chromium_shows_the_book_the_last_trade_and_a_candle() {
    let Some((driver_binary, chromium)) = browser() else {
        let required = std::env::var("DIVMID_REQUIRE_CHROMIUM").is_ok_and(|value| value == "1");
        assert!(
            !required,
            "chromium and chromedriver are required here (DIVMID_REQUIRE_CHROMIUM=1)"
        );
        eprintln!(
            "NOT RUN: chromium and chromedriver are not installed; install them \
             (apt-get install chromium chromium-driver) to run the browser test"
        );
        return;
    };
    let gateway = start_gateway("").await;
    let http_address = gateway.http.clone();
    let (mut maker, mut taker) = traders(&gateway.channel).await;
    rest_levels(&mut maker).await;
    trade(&mut maker, &mut taker, 5).await;

    let driver = start_driver(driver_binary).await;
    let profile = tempfile::tempdir().expect("a profile directory");
    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        },
    }}});
    let session = webdriver(&driver, "/session", Some(capabilities)).await["sessionId"]
        .as_str()
        .expect("a session")
        .to_string();
    let url = format!("http://{http_address}/");
    webdriver(
        &driver,
        &format!("/session/{session}/url"),
        Some(json!({ "url": url })),
    )
    .await;

    // Trades go on while the page is open, at several prices: it must follow them live.
    let trading = tokio::spawn(async move {
        for price in [
            "1.0100", "1.0300", "0.9800", "1.0200", "0.9900", "1.0400", "1.0100",
        ] {
            maker
                .trading
                .place_order(limit(proto::Side::Sell, price, "0.03"))
                .await
                .expect("the maker's sell rests");
            for _ in 0..3 {
                let buy = limit(proto::Side::Buy, price, "0.01");
                taker
                    .trading
                    .place_order(buy)
                    .await
                    .expect("the buy trades");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        (maker, taker)
    });
    let read_page = || async {
        let script = json!({ "script": PAGE_STATE, "args": [] });
        webdriver(
            &driver,
            &format!("/session/{session}/execute/sync"),
            Some(script),
        )
        .await
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = read_page().await;
        if shown["state"] == "live"
            && shown["checks"].as_u64() > Some(1)
            && !shown["trade"].is_null()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page never went live: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut maker, _taker) = trading.await.expect("the trades are placed");

    // A copy gone wrong (a level the exchange does not have) fails the next checksum:
    // the page says it is resyncing, then is live again from a fresh snapshot.
    let corrupt = json!({ "script": "page.bids.set('0.0001', '5.00'); return true;", "args": [] });
    webdriver(
        &driver,
        &format!("/session/{session}/execute/sync"),
        Some(corrupt),
    )
    .await;
    maker
        .trading
        .place_order(limit(proto::Side::Buy, "0.8000", "0.10"))
        .await
        .expect("rests");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = read_page().await;
        if shown["state"] == "resyncing" {
            assert!(shown["status"]
                .as_str()
                .is_some_and(|status| status.contains("checksum")));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page never noticed its wrong copy: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Once trading stops, the page shows the exchange's book, its latest trade, a candle.
    let book = top_of_book(&gateway.channel).await;
    let (bids, asks) = book_levels(&book);
    let latest = get_json(&http_address, "/api/v1/markets/DVM-USD/trades?limit=1").await;
    let latest = &latest["trades"][0];
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = loop {
        let shown = read_page().await;
        let pairs = |side: &Value| -> Vec<(String, String)> {
            serde_json::from_value(side.clone()).expect("pairs")
        };
        if pairs(&shown["bids"]) == bids
            && pairs(&shown["asks"]) == asks
            && shown["trade"]["seq"] == latest["seq"]
        {
            break shown;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed the book {book:?} and the trade {latest}: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(shown["trade"]["price"], latest["price"]);
    assert!(shown["candles"].as_u64() >= Some(1), "{shown}");
    assert_eq!(shown["chart"], true, "the candle chart is drawn: {shown}");
    assert_eq!(shown["state"], "live", "{shown}");

    let screenshot = webdriver(&driver, &format!("/session/{session}/screenshot"), None).await;
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        screenshot.as_str().expect("base64"),
    )
    .expect("a PNG");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("market-page.png");
    std::fs::write(&path, png).expect("the screenshot is written");
    eprintln!("the page's screenshot: {}", path.display());
    http::delete(&driver.address, &format!("/session/{session}")).await;
}
