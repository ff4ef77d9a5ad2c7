//! What the end-to-end tests share: a real server on 127.0.0.1:0 in this process, clients
//! that carry a bearer token, and the set-up of funded traders.

#![allow(dead_code)]

pub mod http;
pub mod process;

use std::net::SocketAddr;
use std::path::Path;

use divmid::api::proto::wallet_client::WalletClient;
use divmid::api::proto::{self, issuer_client::IssuerClient};
use divmid::api::proto::{metering_client::MeteringClient, trading_client::TradingClient};
use divmid::api::server::{open, run};
use divmid::config::Config;
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

pub const ISSUER_TOKEN: &str = "issuer-token-for-tests-0123456789";

pub struct Server {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, |_| {}).await
    }

    pub async fn start_with(data_dir: &Path, adjust: impl FnOnce(&mut Config)) -> Server {
        let mut config = Config::default();
        adjust(&mut config);
        config.server.data_dir = data_dir.to_path_buf();
        config.server.issuer_token = Some(ISSUER_TOKEN.to_string());
        let context = open(config, None).expect("the exchange opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let address = listener.local_addr().expect("bound");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run(listener, context, async {
                let _ = stopped.await;
            })
            .await
            .expect("the server runs");
        });
        let server = Server {
            address,
            stop: Some(stop),
            task,
        };
        // As a careful client would: history and market data have caught up.
        wait_serving(&server.channel().await).await;
        server
    }

    pub async fn channel(&self) -> Channel {
        channel_to(self.address).await
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.expect("the server task ends");
    }
}

/// A plaintext channel to a server on `address`.
pub async fn channel_to(address: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .expect("an address")
        .connect()
        .await
        .expect("connects")
}

/// An exchange the test opened itself (with its own journal, processors or
/// configuration), served on 127.0.0.1:0 until stopped.
pub struct Running {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), divmid::api::server::ServeError>>,
}

impl Running {
    pub async fn serve(context: std::sync::Arc<divmid::api::context::Context>) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let address = listener.local_addr().expect("bound");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, context, async {
            let _ = stopped.await;
        }));
        Running {
            address,
            stop: Some(stop),
            task,
        }
    }

    pub async fn channel(&self) -> Channel {
        channel_to(self.address).await
    }

    /// Stops the server and returns how it ended.
    pub async fn stop(mut self) -> Result<(), divmid::api::server::ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.expect("the server task ends")
    }

    /// Waits, at most `patience`, for the server to end by itself.
    pub async fn ended(
        self,
        patience: std::time::Duration,
    ) -> Result<(), divmid::api::server::ServeError> {
        let Running { stop, task, .. } = self;
        let ended = tokio::time::timeout(patience, task)
            .await
            .expect("the server stops by itself")
            .expect("the server task ends");
        drop(stop);
        ended
    }
}

/// A channel to the server at `address` (`http://…`), once it reports itself serving.
pub async fn connect_serving(address: &str) -> Channel {
    let channel = Channel::from_shared(address.to_string())
        .expect("a URL")
        .connect()
        .await
        .expect("connects");
    wait_serving(&channel).await;
    channel
}

/// Waits until health reports the whole server `SERVING`.
pub async fn wait_serving(channel: &Channel) {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut statuses = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers")
        .into_inner();
    loop {
        let status = statuses
            .message()
            .await
            .expect("health streams")
            .expect("health does not end while serving");
        if status.status == ServingStatus::Serving as i32 {
            return;
        }
    }
}

pub type Authorized = InterceptedService<Channel, Bearer>;

#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub fn bearer(token: Option<&str>) -> Bearer {
    Bearer(token.map(|token| format!("Bearer {token}").parse().expect("ascii")))
}

pub struct Clients {
    pub token: Option<String>,
    pub issuer: IssuerClient<Authorized>,
    pub wallet: WalletClient<Authorized>,
    pub trading: TradingClient<Authorized>,
    pub metering: MeteringClient<Authorized>,
}

pub fn clients(channel: &Channel, token: Option<&str>) -> Clients {
    Clients {
        token: token.map(str::to_string),
        issuer: IssuerClient::with_interceptor(channel.clone(), bearer(token)),
        wallet: WalletClient::with_interceptor(channel.clone(), bearer(token)),
        trading: TradingClient::with_interceptor(channel.clone(), bearer(token)),
        metering: MeteringClient::with_interceptor(channel.clone(), bearer(token)),
    }
}

impl Clients {
    /// The same caller's clients on another channel, e.g. to a restarted server.
    pub fn on(&self, channel: &Channel) -> Clients {
        clients(channel, self.token.as_deref())
    }
}

pub async fn create(
    issuer: &mut Clients,
    name: &str,
    tier: proto::Tier,
    role: proto::Role,
) -> (String, String) {
    let created = issuer
        .issuer
        .create_account(proto::CreateAccountRequest {
            name: name.into(),
            tier: tier as i32,
            role: role as i32,
        })
        .await
        .expect("created")
        .into_inner();
    (created.account_id, created.api_token)
}

pub fn limit(side: proto::Side, price: &str, quantity: &str) -> proto::PlaceOrderRequest {
    proto::PlaceOrderRequest {
        market: "DVM-USD".into(),
        side: side as i32,
        r#type: proto::OrderType::Limit as i32,
        price: price.into(),
        quantity: quantity.into(),
        time_in_force: proto::TimeInForce::Gtc as i32,
        ..Default::default()
    }
}

/// Mints `supply` DVM at a public price of 1 USD, then creates one trader per name, each
/// depositing `usd` by card and buying `dvm` from the treasury.
pub async fn funded_traders(
    channel: &Channel,
    supply: &str,
    names: &[&str],
    usd: &str,
    dvm: &str,
) -> Vec<Clients> {
    process::mint_at_one_dollar(channel, ISSUER_TOKEN, supply).await;
    let mut issuer = clients(channel, Some(ISSUER_TOKEN));
    let mut traders = Vec::new();
    for name in names {
        let (_, token) = create(&mut issuer, name, proto::Tier::Public, proto::Role::Trader).await;
        let mut trader = clients(channel, Some(&token));
        fund(&mut trader, name, usd, dvm).await;
        traders.push(trader);
    }
    traders
}

/// Deposits `usd` by card and buys `dvm` from the treasury at up to 1 USD, under keys
/// named after `name`.
pub async fn fund(trader: &mut Clients, name: &str, usd: &str, dvm: &str) {
    trader
        .wallet
        .deposit(proto::DepositRequest {
            source: proto::Source::Card as i32,
            amount: usd.into(),
            source_reference: "4111111111111111".into(),
            idempotency_key: format!("{name}-deposit"),
        })
        .await
        .expect("deposited");
    trader
        .wallet
        .buy_divmids(proto::BuyDivmidsRequest {
            quantity: dvm.into(),
            max_price: "1".into(),
            idempotency_key: format!("{name}-buy"),
        })
        .await
        .expect("bought");
}

/// `lots` hundredths of a divmid as the wire writes a quantity.
pub fn lots(lots: usize) -> String {
    format!("{}.{:02}", lots / 100, lots % 100)
}

/// `trades` trades of 0.01 DVM at 1 USD: the maker rests one sell for all of them, then
/// the taker sends that many buys through one order session without waiting for each
/// answer. Every buy must be accepted.
pub async fn trade(maker: &mut Clients, taker: &mut Clients, trades: usize) {
    maker
        .trading
        .place_order(limit(proto::Side::Sell, "1.0000", &lots(trades)))
        .await
        .expect("the maker's sell rests");
    let buys = (0..trades).map(|_| limit(proto::Side::Buy, "1.0000", "0.01"));
    place_all(taker, buys.collect()).await;
}

/// Opens an `OrderSession` of `trader`'s that sends `requests` as the server takes them;
/// returns its answers, unread.
pub async fn order_session(
    trader: &mut Clients,
    requests: impl Iterator<Item = proto::OrderSessionRequest> + Send + 'static,
) -> tonic::Streaming<proto::OrderSessionResponse> {
    trader
        .trading
        .order_session(tokio_stream::iter(requests))
        .await
        .expect("a session")
        .into_inner()
}

/// Places every order through one order session without waiting for each answer; every
/// order must be accepted. Returns the orders as accepted.
pub async fn place_all(
    trader: &mut Clients,
    orders: Vec<proto::PlaceOrderRequest>,
) -> Vec<proto::Order> {
    let count = orders.len();
    let mut placed = Vec::with_capacity(count);
    let requests =
        orders
            .into_iter()
            .enumerate()
            .map(|(index, order)| proto::OrderSessionRequest {
                request_id: index as u64,
                command: Some(proto::order_session_request::Command::Place(order)),
            });
    let mut answers = order_session(trader, requests).await;
    for index in 0..count {
        let answer = answers
            .message()
            .await
            .expect("an answer")
            .expect("the session stays open");
        assert_eq!(answer.request_id, index as u64);
        match answer.result {
            Some(proto::order_session_response::Result::Placed(proto::PlaceOrderResponse {
                order: Some(order),
                ..
            })) => placed.push(order),
            other => panic!("order {index}: {other:?}"),
        }
    }
    placed
}

/// The DVM-USD book stream at depth 10, what the checksum covers and `BookCopy` checks.
pub async fn book_stream(channel: &Channel) -> tonic::Streaming<proto::BookUpdate> {
    divmid::api::proto::market_data_client::MarketDataClient::new(channel.clone())
        .stream_order_book(proto::StreamOrderBookRequest {
            market: "DVM-USD".into(),
            depth: 10,
        })
        .await
        .expect("a book stream")
        .into_inner()
}

/// The DVM-USD book's top 10 levels per side, from `GetOrderBook`.
pub async fn top_of_book(channel: &Channel) -> proto::GetOrderBookResponse {
    divmid::api::proto::market_data_client::MarketDataClient::new(channel.clone())
        .get_order_book(proto::GetOrderBookRequest {
            market: "DVM-USD".into(),
            depth: 10,
        })
        .await
        .expect("the book")
        .into_inner()
}

/// `(usd available, usd held, dvm available, dvm held)` as the wire writes them.
pub async fn balances(client: &mut Clients) -> (String, String, String, String) {
    let balances = client
        .wallet
        .get_balances(proto::GetBalancesRequest {})
        .await
        .expect("balances")
        .into_inner()
        .balances;
    let find = |asset: &str| {
        balances
            .iter()
            .find(|balance| balance.asset == asset)
            .map(|balance| (balance.available.clone(), balance.held.clone()))
            .expect("every asset is listed")
    };
    let (usd, dvm) = (find("USD"), find("DVM"));
    (usd.0, usd.1, dvm.0, dvm.1)
}

/// The first `count` DVM-USD trades (at least), from `StreamTrades` from 0.
pub async fn streamed_trades(channel: &Channel, count: usize) -> Vec<proto::Trade> {
    let mut stream = proto::market_data_client::MarketDataClient::new(channel.clone())
        .stream_trades(proto::StreamTradesRequest {
            market: "DVM-USD".into(),
            from_seq: Some(0),
        })
        .await
        .expect("a trade stream")
        .into_inner();
    let mut trades = Vec::new();
    while trades.len() < count {
        let batch = tokio::time::timeout(std::time::Duration::from_secs(30), stream.message())
            .await
            .expect("trades within 30 s")
            .expect("the stream stays open")
            .expect("a batch");
        trades.extend(batch.trades);
    }
    trades
}

/// Four balance figures as owned strings, to compare with `balances`.
pub fn owned(values: (&str, &str, &str, &str)) -> (String, String, String, String) {
    (
        values.0.into(),
        values.1.into(),
        values.2.into(),
        values.3.into(),
    )
}
