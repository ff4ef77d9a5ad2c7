//! The engine's configuration: the markets and every limit the sequencer enforces.
//!
//! Every limit lives here with a default that suits a small exchange, and
//! [`EngineConfig::validate`] refuses a configuration the engine could not honour (a
//! market whose tick times lot is not a whole number of quote micro-units, a zero limit)
//! before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::types::{Amount, Asset, Price, DAY_MS, MICROS_PER_UNIT};

/// One market: which asset is traded for which, and its price and size grid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketSpec {
    /// The market's symbol, e.g. `DVM-USD`.
    pub name: String,
    /// The asset bought and sold; quantities are in lots of it.
    pub base: Asset,
    /// The asset prices are quoted in; buyers pay in it.
    pub quote: Asset,
    /// One tick, in quote micro-units per whole base unit (100 = 0.0001 USD per DVM).
    pub tick_micros: u64,
    /// One lot, in base micro-units (10,000 = 0.01 DVM).
    pub lot_micros: u64,
    /// The smallest order, in lots.
    pub quantity_min_lots: u64,
    /// The largest order, in lots.
    pub quantity_max_lots: u64,
    /// The highest price an order may carry, in ticks.
    pub price_max_ticks: u64,
    /// The largest notional value of one order, in quote micro-units.
    pub notional_max_micros: u64,
}

/// Characters in a market's name, at most.
pub const MARKET_NAME_LENGTH_MAX: usize = 32;

impl MarketSpec {
    /// DVM-USD: tick 0.0001 USD, lot 0.01 DVM, orders of 0.01 to 1,000,000 DVM, prices up
    /// to 10,000 USD and at most 10,000,000 USD notional per order.
    pub fn dvm_usd() -> MarketSpec {
        MarketSpec {
            name: "DVM-USD".to_string(),
            base: Asset::Dvm,
            quote: Asset::Usd,
            tick_micros: 100,
            lot_micros: 10_000,
            quantity_min_lots: 1,
            quantity_max_lots: 100_000_000,
            price_max_ticks: 100_000_000,
            notional_max_micros: 10_000_000 * MICROS_PER_UNIT,
        }
    }

    /// Quote micro-units that one lot costs at a price of one tick. Validation guarantees
    /// it is a whole number, so every notional is exact.
    pub fn quote_micros_per_tick_lot(&self) -> u64 {
        self.tick_micros * self.lot_micros / MICROS_PER_UNIT
    }

    /// Decimal places of a price on this market's tick (4 for a tick of 0.0001).
    pub fn price_decimal_places(&self) -> u32 {
        decimal_places_of(self.tick_micros)
    }

    /// Decimal places of a quantity on this market's lot (2 for a lot of 0.01).
    pub fn quantity_decimal_places(&self) -> u32 {
        decimal_places_of(self.lot_micros)
    }

    /// The numbers matching needs, without the name: cheap to copy on every order.
    pub fn grid(&self) -> MarketGrid {
        MarketGrid {
            base: self.base,
            quote: self.quote,
            lot_micros: self.lot_micros,
            quote_micros_per_tick_lot: self.quote_micros_per_tick_lot(),
            quantity_min_lots: self.quantity_min_lots,
            quantity_max_lots: self.quantity_max_lots,
            price_max_ticks: self.price_max_ticks,
            notional_max_micros: self.notional_max_micros,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |reason: &str| ConfigError::Market {
            market: self.name.clone(),
            reason: reason.to_string(),
        };
        if self.name.is_empty() || self.name.len() > MARKET_NAME_LENGTH_MAX {
            return Err(fail(&format!(
                "name must be 1 to {MARKET_NAME_LENGTH_MAX} characters"
            )));
        }
        if self.base == self.quote {
            return Err(fail("base and quote must differ"));
        }
        if self.tick_micros == 0 || self.lot_micros == 0 {
            return Err(fail("tick and lot must be positive"));
        }
        let product = u128::from(self.tick_micros) * u128::from(self.lot_micros);
        if product % u128::from(MICROS_PER_UNIT) != 0 {
            return Err(fail(
                "tick times lot must be a whole number of quote micro-units",
            ));
        }
        if self.quantity_min_lots == 0 || self.quantity_min_lots > self.quantity_max_lots {
            return Err(fail("quantity limits must satisfy 0 < min <= max"));
        }
        if self.price_max_ticks == 0 || self.notional_max_micros == 0 {
            return Err(fail("price and notional limits must be positive"));
        }
        // The largest notional the grid allows must fit the integer types used for it.
        let largest = u128::from(self.price_max_ticks)
            * u128::from(self.quantity_max_lots)
            * u128::from(self.quote_micros_per_tick_lot());
        if largest > u128::from(u64::MAX) {
            return Err(fail(
                "price_max_ticks times quantity_max_lots overflows 64 bits",
            ));
        }
        Ok(())
    }
}

/// A market's price and size grid as plain numbers, for the matching path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketGrid {
    /// The asset bought and sold.
    pub base: Asset,
    /// The asset prices are quoted in.
    pub quote: Asset,
    /// One lot, in base micro-units.
    pub lot_micros: u64,
    /// Quote micro-units one lot costs at one tick.
    pub quote_micros_per_tick_lot: u64,
    /// The smallest order, in lots.
    pub quantity_min_lots: u64,
    /// The largest order, in lots.
    pub quantity_max_lots: u64,
    /// The highest price, in ticks.
    pub price_max_ticks: u64,
    /// The largest notional of one order, in quote micro-units.
    pub notional_max_micros: u64,
}

impl MarketGrid {
    /// What `lots` at `price` come to in quote micro-units. Exact: validation keeps the
    /// largest price times the largest order within 64 bits.
    pub fn notional(&self, price: Price, lots: u64) -> Amount {
        Amount(price.0 * lots * self.quote_micros_per_tick_lot)
    }

    /// `lots` in base micro-units.
    pub fn base_amount(&self, lots: u64) -> Amount {
        Amount(lots * self.lot_micros)
    }
}

/// Decimal places of a power-of-ten micro-unit step (1 for 100,000; 6 for 1).
fn decimal_places_of(step_micros: u64) -> u32 {
    let mut places = 6;
    let mut step = step_micros;
    while step.is_multiple_of(10) && places > 0 {
        step /= 10;
        places -= 1;
    }
    places
}

/// Limits the sequencer enforces on every account and book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineLimits {
    /// Open orders one account may have across all markets.
    pub open_orders_per_account_max: u32,
    /// Resting orders at one price level of one side.
    pub orders_per_level_max: u32,
    /// Accounts on the ledger.
    pub accounts_max: u64,
    /// Characters in an account name.
    pub name_length_max: usize,
    /// Characters in an idempotency key or client order id.
    pub key_length_max: usize,
    /// Characters in a memo, source reference or destination.
    pub memo_length_max: usize,
    /// How long an idempotency key, and the client order id of an ended order, is kept,
    /// in milliseconds of the commands' own time: within it a retry applies at most once;
    /// after it the key is free again.
    pub idempotency_retention_ms: u64,
    /// Idempotency keys one account (or service) may hold within the retention window; a
    /// command under a new key beyond it is refused (`RESOURCE_EXHAUSTED`). Expired keys
    /// are released by the next command that changes state (the clock moves only with
    /// journaled commands, so that a replay releases exactly the same).
    pub idempotency_keys_per_account_max: u32,
    /// Client order ids one account may hold (its live orders', and its ended orders'
    /// within the retention window); an order with a new client order id beyond it is
    /// refused (`RESOURCE_EXHAUSTED`), while orders without one are still taken. Each
    /// kept id costs memory and every snapshot's time, so a client that ends orders with
    /// fresh ids at a high rate cannot grow the state without end.
    pub client_order_ids_per_account_max: u32,
    /// Services one holder may set a daily spend limit on.
    pub spend_limits_per_account_max: u32,
    /// How long a charge's idempotency key is kept, in milliseconds of the commands' own
    /// time: within it a retried charge applies at most once. Charges come at click rate,
    /// and every key kept costs about 200 bytes, so a service charging N times a second
    /// holds N times this many keys (bounded by `idempotency_keys_per_account_max`): 7 days
    /// by default, like every other key; a deployment metering at click rate sets it to
    /// the longest time its services retry in (a minute holds 18M keys, 3.6 GB, at 300k
    /// charges a second).
    pub charge_key_retention_ms: u64,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            open_orders_per_account_max: 100_000,
            orders_per_level_max: 100_000,
            accounts_max: 10_000_000,
            name_length_max: 128,
            key_length_max: 64,
            memo_length_max: 256,
            idempotency_retention_ms: 7 * DAY_MS,
            idempotency_keys_per_account_max: 1_000_000,
            client_order_ids_per_account_max: 1_000_000,
            spend_limits_per_account_max: 1_000,
            charge_key_retention_ms: 7 * DAY_MS,
        }
    }
}

/// Checks that a setting lies in `min..=max`, naming it if not.
fn range(
    field: &'static str,
    value: impl TryInto<u64>,
    min: u64,
    max: u64,
) -> Result<(), ConfigError> {
    let value = value.try_into().unwrap_or(u64::MAX);
    match (min..=max).contains(&value) {
        true => Ok(()),
        false => Err(ConfigError::OutOfRange {
            field,
            value,
            min,
            max,
        }),
    }
}

/// The longest idempotency retention: 366 days.
pub const IDEMPOTENCY_RETENTION_MS_MAX: u64 = 366 * DAY_MS;

/// Everything the sequencer is configured with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// The markets, in id order: a command names a market by its index here.
    pub markets: Vec<MarketSpec>,
    /// Limits on accounts, orders and strings.
    pub limits: EngineLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            markets: vec![MarketSpec::dvm_usd()],
            limits: EngineLimits::default(),
        }
    }
}

impl EngineConfig {
    /// Refuses a configuration the engine could not honour, naming what is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.markets.is_empty() || self.markets.len() > usize::from(u16::MAX) {
            return Err(ConfigError::Limit("there must be 1 to 65535 markets"));
        }
        for (index, market) in self.markets.iter().enumerate() {
            market.validate()?;
            if self.markets[..index].iter().any(|m| m.name == market.name) {
                return Err(ConfigError::Market {
                    market: market.name.clone(),
                    reason: "configured twice".to_string(),
                });
            }
        }
        let limits = &self.limits;
        // A table: one setting a line. The issuer's two accounts and one user at least.
        #[rustfmt::skip]
        let key_ranges = [
            range("engine.limits.open_orders_per_account_max", limits.open_orders_per_account_max, 1, 10_000_000),
            range("engine.limits.orders_per_level_max", limits.orders_per_level_max, 1, 10_000_000),
            range("engine.limits.accounts_max", limits.accounts_max, 3, 1 << 32),
            range("engine.limits.name_length_max", limits.name_length_max, 1, 1_024),
            range("engine.limits.key_length_max", limits.key_length_max, 1, 1_024),
            range("engine.limits.memo_length_max", limits.memo_length_max, 0, 4_096),
            range("engine.limits.idempotency_retention_ms", limits.idempotency_retention_ms, 1, IDEMPOTENCY_RETENTION_MS_MAX),
            range("engine.limits.idempotency_keys_per_account_max", limits.idempotency_keys_per_account_max, 1, 100_000_000),
            range("engine.limits.client_order_ids_per_account_max", limits.client_order_ids_per_account_max, 1, 100_000_000),
            range("engine.limits.spend_limits_per_account_max", limits.spend_limits_per_account_max, 1, 1_000_000),
            range("engine.limits.charge_key_retention_ms", limits.charge_key_retention_ms, 1, IDEMPOTENCY_RETENTION_MS_MAX),
        ];
        key_ranges.into_iter().collect()
    }

    /// Whether state kept under `self` may continue under `next`: the same markets in the
    /// same order, each with the same name, assets, tick and lot, since the journal, the
    /// snapshots and the books hold prices in ticks and quantities in lots, and commands
    /// name a market by its index. Order sizes and every limit may change: they decide
    /// only which commands are accepted from the change on. The error names the market
    /// and the setting that may not change.
    pub fn check_change(&self, next: &EngineConfig) -> Result<(), String> {
        if self.markets.len() != next.markets.len() {
            return Err(format!(
                "the data has {} markets and the configuration {}: markets cannot be added or removed",
                self.markets.len(),
                next.markets.len()
            ));
        }
        for (kept, wanted) in self.markets.iter().zip(&next.markets) {
            #[rustfmt::skip]
            let fixed = [
                ("name", kept.name.clone(), wanted.name.clone()),
                ("base", kept.base.symbol().to_string(), wanted.base.symbol().to_string()),
                ("quote", kept.quote.symbol().to_string(), wanted.quote.symbol().to_string()),
                ("tick_micros", kept.tick_micros.to_string(), wanted.tick_micros.to_string()),
                ("lot_micros", kept.lot_micros.to_string(), wanted.lot_micros.to_string()),
            ];
            if let Some((setting, was, now)) = fixed.into_iter().find(|(_, was, now)| was != now) {
                return Err(format!(
                    "market {}: {setting} is {was} in the data and {now} in the configuration; \
                     prices are kept in ticks and quantities in lots, so a market's name, \
                     assets, tick and lot cannot change once it has data",
                    kept.name
                ));
            }
        }
        Ok(())
    }
}

/// The server's certificate and key, and, for client certificates (mutual TLS), the CA
/// that must have signed them. All PEM files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// When set, every client must present a certificate signed by this CA.
    pub client_ca_file: Option<PathBuf>,
}

/// The server: where it listens, where it keeps its data, and the limits of its API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The address the gRPC server listens on.
    pub listen: SocketAddr,
    /// The data directory: the sled store, snapshots and the generated issuer token.
    pub data_dir: PathBuf,
    /// The issuer's bearer token; when unset (and `DIVMID_ISSUER_TOKEN` is unset too), the
    /// first start generates one into `<data_dir>/issuer-token`.
    pub issuer_token: Option<String>,
    /// Logs as JSON lines instead of human-readable text.
    pub log_json: bool,
    /// Serves Prometheus metrics at `/metrics` on this address when set (off by default).
    /// No authentication: bind it to loopback or a network only the monitoring reaches.
    pub metrics_listen: Option<SocketAddr>,
    /// Serves the web page and the HTTP/JSON market data (`/`, `/api/v1/...`) on this
    /// address when set (off by default). Plain HTTP always: on a loopback address, or
    /// behind a proxy that terminates TLS (`allow_plaintext`).
    pub http_listen: Option<SocketAddr>,
    /// The origin allowed to read the HTTP API from another site's pages
    /// (`Access-Control-Allow-Origin`); unset, no cross-origin reads (CORS off).
    pub http_allow_origin: Option<String>,
    /// TLS: with it the server speaks only TLS.
    pub tls: Option<TlsConfig>,
    /// Without TLS the server listens only on a loopback address, unless this is set:
    /// behind a proxy that terminates TLS on the same host or a private network.
    pub allow_plaintext: bool,
    /// The largest request or response, in bytes.
    pub message_bytes_max: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub concurrent_streams_max: u32,
    /// Requests served at once per connection.
    pub requests_per_connection_max: usize,
    /// The longest a request may take before it is answered `DEADLINE_EXCEEDED`, in
    /// milliseconds.
    pub request_timeout_ms: u64,
    /// Entries per page of a list, at most.
    pub page_size_max: u32,
    /// Days of one-minute candles kept (and rebuilt from the journal at start).
    pub candle_retention_days: u64,
    /// Days of metering usage (charges per holder, service and hour, and top-ups) kept,
    /// and rebuilt from the journal at start.
    pub usage_retention_days: u64,
    /// Usage rows (one per holder, service and hour with a charge) kept, at most: about
    /// 110 bytes each. Beyond it the oldest hours are forgotten first, and answers say
    /// from when usage is kept.
    pub usage_rows_max: usize,
    /// Account holders' streams (order updates) open at once, at most.
    pub stream_subscribers_max: usize,
    /// Connections open at once, at most; more wait in the kernel's backlog until one
    /// closes. The file limit (systemd's `LimitNOFILE`) must leave room for them.
    pub connections_max: usize,
    /// How long a new connection has, from its accept to its first request (the TLS and
    /// HTTP/2 handshakes and the request's headers), before it is closed, in
    /// milliseconds: a socket that stays silent, or stalls half way through a handshake,
    /// gives its place back.
    pub handshake_timeout_ms: u64,
    /// How long a connection may have no request open (HTTP/2 pings do not count)
    /// before it is closed, in milliseconds. A client's next call opens a new one.
    pub idle_timeout_ms: u64,
    /// How long an open request may send no bytes (a stream of orders or charges with no
    /// new message, or a message sent half way) before it is ended with
    /// `DEADLINE_EXCEEDED`, in milliseconds; what it was holding is freed.
    pub stream_idle_timeout_ms: u64,
    /// Bytes of messages received in part (sent half way, or still arriving), over all
    /// requests, at most; a request whose message would go beyond it is ended with
    /// `RESOURCE_EXHAUSTED`. At least `message_bytes_max`.
    pub partial_messages_bytes_max: usize,
    /// HTTP/2 flow-control window of each connection (and each of its streams), in bytes:
    /// what a client may send that the server has not read yet. Bytes waiting on the
    /// server are at most `connections_max` times this.
    pub receive_window_bytes: u32,
    /// Whether deposits go to the sandbox processors (which accept test references, see
    /// the contract); when false, every deposit is refused until a real processor is
    /// built in.
    pub funding_sandbox: bool,
    /// Failed authentications one peer address may make in a minute; beyond it the
    /// address is refused (`RESOURCE_EXHAUSTED`) for the rest of the minute.
    pub auth_failures_per_minute_max: u32,
    /// How often an HTTP/2 ping (and a TCP keepalive) checks a connection that is quiet,
    /// in milliseconds.
    pub keepalive_interval_ms: u64,
    /// How long a ping may go unanswered before the connection is closed, in milliseconds.
    pub keepalive_timeout_ms: u64,
    /// Anonymous market-data streams (trades, book) open at once, at most: counted apart,
    /// so that clients without a token cannot take account holders' places.
    pub anonymous_streams_max: usize,
    /// Messages waiting for one stream subscriber, at most. A subscriber that reads
    /// slower than events commit fills this, then falls behind the pipeline's broadcast
    /// (`pipeline.broadcast_capacity` batches) and is ended with `ABORTED` and the
    /// sequence number to resume from.
    pub stream_buffer_messages: usize,
    /// The store's page cache, in bytes: what the server keeps in memory of its sled
    /// store, at most (about).
    pub store_cache_bytes: u64,
    /// A book stream with nothing to report sends a heartbeat this often, in milliseconds.
    pub book_heartbeat_ms: u64,
    /// How long a stopping server waits for its connections to finish what they are doing
    /// (a client may hold a health watch or a stream open for ever), in milliseconds;
    /// then it closes them. Every accepted command is committed either way.
    pub shutdown_grace_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("./data"),
            issuer_token: None,
            log_json: false,
            metrics_listen: None,
            http_listen: None,
            http_allow_origin: None,
            tls: None,
            allow_plaintext: false,
            message_bytes_max: 64 * 1024,
            concurrent_streams_max: 256,
            requests_per_connection_max: 1_024,
            request_timeout_ms: 30_000,
            page_size_max: 1_000,
            candle_retention_days: 31,
            usage_retention_days: 31,
            usage_rows_max: 1_000_000,
            stream_subscribers_max: 4_096,
            anonymous_streams_max: 4_096,
            connections_max: 10_000,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            stream_idle_timeout_ms: 300_000,
            partial_messages_bytes_max: 64 << 20,
            receive_window_bytes: 256 << 10,
            funding_sandbox: true,
            auth_failures_per_minute_max: 30,
            keepalive_interval_ms: 30_000,
            keepalive_timeout_ms: 10_000,
            stream_buffer_messages: 256,
            store_cache_bytes: STORE_CACHE_BYTES_DEFAULT,
            book_heartbeat_ms: 1_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// Market data published beyond the server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarketDataConfig {
    /// NATS JetStream, when set: committed trades and book changes published onward.
    pub nats: Option<NatsConfig>,
}

/// Where and how market data goes to NATS JetStream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The NATS server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The JetStream stream, created (over `SUBJECT_PREFIX.>`) if missing.
    #[serde(default = "NatsConfig::default_stream")]
    pub stream: String,
    /// Trades go to `SUBJECT_PREFIX.trades.MARKET`, book changes to
    /// `SUBJECT_PREFIX.book.MARKET`.
    #[serde(default = "NatsConfig::default_subject_prefix")]
    pub subject_prefix: String,
}

impl NatsConfig {
    fn default_stream() -> String {
        "DIVMID".to_string()
    }

    fn default_subject_prefix() -> String {
        "divmid".to_string()
    }

    /// Refuses names NATS would not take: a stream name with spaces, dots or wildcards, a
    /// prefix that is empty or holds spaces or wildcards.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |text: &str, extra: &[char]| {
            text.is_empty()
                || text
                    .chars()
                    .any(|c| c.is_whitespace() || c == '*' || c == '>' || extra.contains(&c))
        };
        if self.url.is_empty() {
            return Err(ConfigError::Limit("market_data.nats.url is required"));
        }
        if bad(&self.stream, &['.', '/', '\\']) {
            return Err(ConfigError::Limit(
                "market_data.nats.stream must be a name without spaces, dots or wildcards",
            ));
        }
        if bad(&self.subject_prefix, &[]) || self.subject_prefix.split('.').any(str::is_empty) {
            return Err(ConfigError::Limit(
                "market_data.nats.subject_prefix must be subject tokens without spaces or wildcards",
            ));
        }
        Ok(())
    }
}

/// The whole configuration file (TOML): `[server]`, `[engine]` (with `[[engine.markets]]`
/// and `[engine.limits]`), `[pipeline]` and `[market_data]`. Every field has a default;
/// unknown fields are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The server.
    pub server: ServerConfig,
    /// Markets and limits.
    pub engine: EngineConfig,
    /// Queues, batches and snapshots.
    pub pipeline: PipelineConfig,
    /// Market data beyond the server (NATS JetStream).
    pub market_data: MarketDataConfig,
}

impl Config {
    /// Parses a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::File(error.to_string()))
    }

    /// Refuses a configuration the server could not honour.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.engine.validate()?;
        self.check_ranges()?;
        let server = &self.server;
        if server.tls.is_none() && !server.allow_plaintext && !server.listen.ip().is_loopback() {
            return Err(ConfigError::Plaintext(server.listen));
        }
        if let Some(http) = server.http_listen {
            // The gateway has no TLS of its own: only a proxy in front may expose it.
            if !server.allow_plaintext && !http.ip().is_loopback() {
                return Err(ConfigError::PlaintextHttp(http));
            }
        }
        if let Some(origin) = &server.http_allow_origin {
            let valid = origin == "*"
                || ((origin.starts_with("https://") || origin.starts_with("http://"))
                    && origin.bytes().all(|byte| byte.is_ascii_graphic())
                    && !origin.ends_with('/'));
            if !valid {
                return Err(ConfigError::Limit(
                    "server.http_allow_origin must be \"*\" or an origin such as \"https://example.com\"",
                ));
            }
        }
        if let Some(token) = &server.issuer_token {
            if token.chars().count() < 32 {
                return Err(ConfigError::Limit(
                    "server.issuer_token must be at least 32 characters",
                ));
            }
        }
        if let Some(nats) = &self.market_data.nats {
            nats.validate()?;
        }
        Ok(())
    }

    /// Every server and pipeline limit against its range.
    fn check_ranges(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        let pipeline = &self.pipeline;
        let hour_ms = 60 * 60 * 1_000;
        // A table: one setting a line.
        #[rustfmt::skip]
        let ranges = [
            range("server.message_bytes_max", server.message_bytes_max, 1_024, 64 << 20),
            range("server.concurrent_streams_max", server.concurrent_streams_max, 1, 10_000),
            range("server.requests_per_connection_max", server.requests_per_connection_max, 1, 100_000),
            range("server.request_timeout_ms", server.request_timeout_ms, 1, hour_ms),
            range("server.page_size_max", server.page_size_max, 1, 100_000),
            range("server.candle_retention_days", server.candle_retention_days, 1, 3_660),
            range("server.usage_retention_days", server.usage_retention_days, 1, 3_660),
            range("server.usage_rows_max", server.usage_rows_max, 1, 100_000_000),
            range("server.stream_subscribers_max", server.stream_subscribers_max, 1, 1_000_000),
            range("server.connections_max", server.connections_max, 1, 1_000_000),
            range("server.handshake_timeout_ms", server.handshake_timeout_ms, 100, hour_ms),
            range("server.idle_timeout_ms", server.idle_timeout_ms, 100, 24 * hour_ms),
            range("server.stream_idle_timeout_ms", server.stream_idle_timeout_ms, 100, 24 * hour_ms),
            range("server.receive_window_bytes", server.receive_window_bytes, 65_535, 16 << 20),
            range("server.partial_messages_bytes_max", server.partial_messages_bytes_max, server.message_bytes_max as u64, 1 << 40),
            range("server.auth_failures_per_minute_max", server.auth_failures_per_minute_max, 1, 1_000_000),
            range("server.keepalive_interval_ms", server.keepalive_interval_ms, 100, hour_ms),
            range("server.keepalive_timeout_ms", server.keepalive_timeout_ms, 100, hour_ms),
            range("server.anonymous_streams_max", server.anonymous_streams_max, 1, 1_000_000),
            range("server.stream_buffer_messages", server.stream_buffer_messages, 1, 1_000_000),
            range("server.store_cache_bytes", server.store_cache_bytes, 1 << 20, 1 << 40),
            range("server.book_heartbeat_ms", server.book_heartbeat_ms, 1, hour_ms),
            range("server.shutdown_grace_ms", server.shutdown_grace_ms, 1, hour_ms),
            range("pipeline.queue_capacity", pipeline.queue_capacity, 1, 1_000_000),
            range("pipeline.batch_requests_max", pipeline.batch_requests_max, 1, 1_000_000),
            range("pipeline.record_events_max", pipeline.record_events_max, 1, 1_000_000),
            range("pipeline.store_queue_capacity", pipeline.store_queue_capacity, 1, 1_000),
            range("pipeline.broadcast_capacity", pipeline.broadcast_capacity, 1, 1_000_000),
        ];
        ranges.into_iter().collect()
    }
}

/// The store's page cache unless configured: a quarter of sled's own default.
pub const STORE_CACHE_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;

/// Sizes of the pipeline's queues and batches.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Requests waiting for the sequencer before more are refused.
    pub queue_capacity: usize,
    /// Requests the sequencer applies before it hands a batch to the store.
    pub batch_requests_max: usize,
    /// Events in one journal record (one sled value).
    pub record_events_max: usize,
    /// Batches waiting for the store before the sequencer waits for it.
    pub store_queue_capacity: usize,
    /// Committed event batches a subscriber may fall behind before it misses some.
    pub broadcast_capacity: usize,
    /// Events between snapshots, at least; 0 takes none. The interval is also at least
    /// four times the state's records (accounts, resting orders, kept idempotency keys and
    /// client order ids), so that snapshots of a large state cost a bounded share of the
    /// replica's time; a restart then replays at most that many events.
    pub snapshot_every_events: u64,
    /// Events of journal history kept before the newest snapshot, for history queries and
    /// market-data replay; 0 keeps the whole journal.
    pub journal_retention_events: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            queue_capacity: 65_536,
            batch_requests_max: 4_096,
            record_events_max: 128,
            store_queue_capacity: 8,
            broadcast_capacity: 1_024,
            snapshot_every_events: 1_000_000,
            journal_retention_events: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_file_overrides_defaults_and_refuses_unknown_fields() {
        let config = Config::from_toml(
            "[server]\nlisten = \"127.0.0.1:6000\"\n[engine.limits]\norders_per_level_max = 7\n",
        )
        .expect("parses");
        assert_eq!(config.server.listen.port(), 6000);
        assert_eq!(config.engine.limits.orders_per_level_max, 7);
        assert_eq!(config.engine.markets, vec![MarketSpec::dvm_usd()]);
        assert_eq!(config.validate(), Ok(()));
        let error = Config::from_toml("[server]\nlisten_port = 1\n").expect_err("unknown field");
        assert!(error.to_string().contains("listen_port"), "{error}");
        let market = "[[engine.markets]]\nname = \"DVM-USD\"\nbase = \"DVM\"\nquote = \"USD\"\n\
            tick_micros = 100\nlot_micros = 10000\nquantity_min_lots = 1\nquantity_max_lots = 1000\n\
            price_max_ticks = 1000000\nnotional_max_micros = 1000000000000\n";
        let config = Config::from_toml(market).expect("parses");
        assert_eq!(config.engine.markets[0].quantity_max_lots, 1_000);
    }

    #[test]
    fn the_example_configuration_parses_to_the_defaults_with_the_web_gateway_on() {
        let text = include_str!("../deploy/divmid.toml");
        let mut config = Config::from_toml(text).expect("the example parses");
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            config.server.http_listen.take(),
            Some("127.0.0.1:8080".parse().expect("an address"))
        );
        assert_eq!(config, Config::default());
    }

    #[test]
    fn a_zero_where_one_at_least_is_needed_is_refused_naming_the_setting() {
        // Each of these was once raised to 1 where it was used, silently.
        for (section, field) in [
            ("server", "candle_retention_days"),
            ("server", "usage_retention_days"),
            ("server", "usage_rows_max"),
            ("pipeline", "queue_capacity"),
            ("pipeline", "store_queue_capacity"),
            ("pipeline", "broadcast_capacity"),
            ("pipeline", "batch_requests_max"),
            ("pipeline", "record_events_max"),
        ] {
            let text = format!("[{section}]\n{field} = 0\n");
            let error = Config::from_toml(&text)
                .expect("parses")
                .validate()
                .expect_err(&text);
            assert!(
                error.to_string().contains(&format!("{section}.{field}")),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn the_web_gateway_stays_on_loopback_without_a_proxy_and_cors_names_an_origin() {
        let refused = |text: &str, field: &str| {
            let error = Config::from_toml(text)
                .expect("parses")
                .validate()
                .expect_err(text);
            assert!(error.to_string().contains(field), "{text}: {error}");
        };
        refused(
            "[server]\nhttp_listen = \"0.0.0.0:8080\"\n",
            "server.http_listen",
        );
        refused(
            "[server]\nhttp_allow_origin = \"example.com\"\n",
            "server.http_allow_origin",
        );
        refused(
            "[server]\nhttp_allow_origin = \"https://example.com/\"\n",
            "server.http_allow_origin",
        );
        for fine in [
            "[server]\nhttp_listen = \"0.0.0.0:8080\"\nallow_plaintext = true\n",
            "[server]\nhttp_allow_origin = \"https://example.com\"\n",
            "[server]\nhttp_allow_origin = \"*\"\n",
        ] {
            let config = Config::from_toml(fine).expect("parses");
            assert_eq!(config.validate(), Ok(()), "{fine}");
        }
    }

    #[test]
    fn a_nats_section_takes_defaults_and_refuses_names_nats_would_not() {
        let config = Config::from_toml("[market_data.nats]\nurl = \"nats://127.0.0.1:4222\"\n")
            .expect("parses");
        let nats = config.market_data.nats.clone().expect("set");
        assert_eq!(
            (nats.stream.as_str(), nats.subject_prefix.as_str()),
            ("DIVMID", "divmid")
        );
        assert_eq!(config.validate(), Ok(()));
        for (setting, field) in [
            ("stream = \"DIV.MID\"", "market_data.nats.stream"),
            (
                "subject_prefix = \"divmid.>\"",
                "market_data.nats.subject_prefix",
            ),
            (
                "subject_prefix = \"a..b\"",
                "market_data.nats.subject_prefix",
            ),
        ] {
            let text = format!("[market_data.nats]\nurl = \"nats://x\"\n{setting}\n");
            let error = Config::from_toml(&text)
                .expect("parses")
                .validate()
                .expect_err(setting);
            assert!(error.to_string().contains(field), "{setting}: {error}");
        }
    }

    #[test]
    fn the_container_configuration_listens_everywhere_with_tls_only() {
        let config = Config::from_toml(include_str!("../deploy/container.toml")).expect("parses");
        assert!(!config.server.listen.ip().is_loopback());
        assert!(config.server.tls.is_some() && !config.server.allow_plaintext);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn the_default_configuration_is_valid() {
        assert_eq!(EngineConfig::default().validate(), Ok(()));
        let market = MarketSpec::dvm_usd();
        assert_eq!(market.quote_micros_per_tick_lot(), 1);
        assert_eq!(market.price_decimal_places(), 4);
        assert_eq!(market.quantity_decimal_places(), 2);
    }

    #[test]
    fn a_grid_with_fractional_notionals_is_refused() {
        let mut config = EngineConfig::default();
        config.markets[0].tick_micros = 1;
        config.markets[0].lot_micros = 10;
        let error = config.validate().unwrap_err();
        assert!(error.to_string().contains("whole number"), "{error}");
    }

    #[test]
    fn duplicate_markets_and_zero_limits_are_refused() {
        let mut config = EngineConfig::default();
        config.markets.push(MarketSpec::dvm_usd());
        assert!(config.validate().is_err());
        let mut config = EngineConfig::default();
        config.limits.orders_per_level_max = 0;
        assert!(config.validate().is_err());
    }

    #[test]
    fn every_limit_has_an_upper_bound_named_in_the_refusal() {
        let cases: Vec<(&str, &str)> = vec![
            ("server", "stream_buffer_messages = 4611686018427387904"),
            ("server", "stream_subscribers_max = 100000000"),
            ("server", "message_bytes_max = 1000000000"),
            ("server", "request_timeout_ms = 100000000000"),
            ("server", "shutdown_grace_ms = 100000000000"),
            ("pipeline", "queue_capacity = 1000000000"),
            ("pipeline", "broadcast_capacity = 1000000000"),
            ("engine.limits", "open_orders_per_account_max = 1000000000"),
            ("engine.limits", "idempotency_retention_ms = 0"),
            ("engine.limits", "idempotency_keys_per_account_max = 0"),
        ];
        for (section, line) in cases {
            let config = Config::from_toml(&format!("[{section}]\n{line}\n")).expect("parses");
            let error = config.validate().expect_err(line).to_string();
            let field = line.split(' ').next().expect("a name");
            assert!(error.contains(&format!("{section}.{field} = ")), "{error}");
            assert!(error.contains("is outside"), "{error}");
        }
    }
}
