//! `divmid`: the command-line client. Everything a trader, a service or the issuer can do,
//! one subcommand per RPC (but `OrderSession`, a stream for programs placing orders at high
//! rates); the token comes from `--token` or `DIVMID_TOKEN`. The streams are followed until
//! interrupted or until the `--limit` given.

mod prepaid;

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};
use divmid::api::book_copy::BookCopy;
use divmid::api::proto;
use divmid::api::proto::issuer_client::IssuerClient;
use divmid::api::proto::market_data_client::MarketDataClient;
use divmid::api::proto::metering_client::MeteringClient;
use divmid::api::proto::trading_client::TradingClient;
use divmid::api::proto::wallet_client::WalletClient;
use divmid::market_data::CHECKSUM_LEVELS;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

/// The divmid exchange's command-line client. Amounts, prices and quantities are decimal
/// strings (`12.5`), checked by the server, which names the field of a bad one.
#[derive(Parser, Debug)]
#[command(version)]
struct Arguments {
    /// The server's address: `https://HOST:PORT` for TLS, `http://` for plaintext (a
    /// server on this machine, or behind a proxy).
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "DIVMID_SERVER")]
    server: String,
    /// For `https://`: a PEM file of the CA that signed the server's certificate, when it
    /// is not one the system trusts.
    #[arg(long, env = "DIVMID_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// For a server that requires client certificates: your certificate (PEM).
    #[arg(long, env = "DIVMID_CERT_FILE", requires = "key_file")]
    cert_file: Option<std::path::PathBuf>,
    /// The private key of `--cert-file` (PEM).
    #[arg(long, env = "DIVMID_KEY_FILE", requires = "cert_file")]
    key_file: Option<std::path::PathBuf>,
    /// Your bearer token (the issuer's, a trader's or a service's).
    #[arg(long, env = "DIVMID_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand, Debug)]
enum Top {
    /// The issuer's commands.
    #[command(subcommand)]
    Issuer(IssuerCommand),
    /// A trader's money.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// A trader's orders.
    #[command(subcommand)]
    Order(OrderCommand),
    /// A service charges a trader for usage: one charge, or with --session every line
    /// of standard input (`ACCOUNT AMOUNT KEY [MEMO]`) through one stream, as the lines
    /// come, so a service can pipe its clicks in.
    Charge {
        /// The account charged.
        #[arg(long, required_unless_present = "session", conflicts_with = "session")]
        account: Option<String>,
        /// DVM, down to 0.000001.
        #[arg(long, allow_hyphen_values = true, required_unless_present = "session")]
        amount: Option<String>,
        /// Makes a retry apply once.
        #[arg(long, required_unless_present = "session")]
        key: Option<String>,
        #[arg(long, default_value = "")]
        memo: String,
        /// Reads charges from standard input, one a line, and answers each in order.
        #[arg(long)]
        session: bool,
    },
    /// Public market data.
    #[command(subcommand)]
    Market(MarketCommand),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TierArgument {
    Public,
    Subscriber,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoleArgument {
    Trader,
    Service,
}

#[derive(Subcommand, Debug)]
enum IssuerCommand {
    /// Opens an account and prints its token (shown only once).
    CreateAccount {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        tier: TierArgument,
        #[arg(long, value_enum)]
        role: RoleArgument,
    },
    /// Mints divmids into the treasury.
    Mint {
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        #[arg(long)]
        key: String,
        #[arg(long, default_value = "")]
        memo: String,
    },
    /// Sets a tier's USD price per DVM.
    SetPrice {
        #[arg(long, value_enum)]
        tier: TierArgument,
        #[arg(long, allow_hyphen_values = true)]
        price: String,
    },
    /// Prints the divmid supply.
    Supply,
    /// Gives an account a new token and prints it (shown only once); the old one stops
    /// working at once.
    RotateToken {
        #[arg(long)]
        account: String,
    },
    /// Revokes an account's token until it is rotated; balances and orders stay.
    RevokeToken {
        #[arg(long)]
        account: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SourceArgument {
    Card,
    Paypal,
    Egold,
}

#[derive(Subcommand, Debug)]
enum WalletCommand {
    /// Prints available and held balances.
    Balances,
    /// Deposits USD from a funding source.
    Deposit {
        #[arg(long, value_enum)]
        source: SourceArgument,
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// Card number, e-mail address or e-gold account number.
        #[arg(long)]
        reference: String,
        #[arg(long)]
        key: String,
    },
    /// Withdraws USD.
    Withdraw {
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        #[arg(long)]
        destination: String,
        #[arg(long)]
        key: String,
    },
    /// Buys divmids from the issuer at your tier's price.
    Buy {
        #[arg(long, allow_hyphen_values = true)]
        quantity: String,
        #[arg(long, allow_hyphen_values = true)]
        max_price: String,
        #[arg(long)]
        key: String,
    },
    /// Prints your ledger entries, newest first.
    Ledger {
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Prints your automatic top-up, or sets it (--threshold, --target, --max-price and
    /// --monthly-max-usd together), or turns it --off.
    AutoTopUp(prepaid::AutoTopUpArguments),
    /// Lists your daily spend limits per service, or sets one (--service with
    /// --daily-max) or removes one (--service with --remove).
    SpendLimit(prepaid::SpendLimitArguments),
    /// Prints the charges made to you per service and day (or hour), and your top-ups.
    Usage(prepaid::UsageArguments),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SideArgument {
    Buy,
    Sell,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TypeArgument {
    Limit,
    Market,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TimeInForceArgument {
    Gtc,
    Ioc,
    Fok,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StpArgument {
    CancelTaker,
    CancelMaker,
    CancelBoth,
    Decrement,
}

#[derive(Subcommand, Debug)]
enum OrderCommand {
    /// Places an order.
    Place {
        #[arg(long, default_value = "DVM-USD")]
        market: String,
        #[arg(long, value_enum)]
        side: SideArgument,
        #[arg(long = "type", value_enum, default_value = "limit")]
        order_type: TypeArgument,
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        price: String,
        #[arg(long, allow_hyphen_values = true)]
        quantity: String,
        #[arg(long, value_enum)]
        time_in_force: Option<TimeInForceArgument>,
        #[arg(long)]
        post_only: bool,
        #[arg(long, default_value = "")]
        client_order_id: String,
        #[arg(long, value_enum)]
        self_trade_prevention: Option<StpArgument>,
    },
    /// Cancels an order by id or client order id.
    Cancel {
        #[arg(long, default_value = "")]
        order_id: String,
        #[arg(long, default_value = "")]
        client_order_id: String,
    },
    /// Cancels all your open orders (on one market with --market).
    CancelAll {
        #[arg(long, default_value = "")]
        market: String,
    },
    /// Changes an open order's total quantity and/or price.
    Amend {
        #[arg(long)]
        order_id: String,
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        quantity: String,
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        price: String,
    },
    /// Prints one order.
    Get {
        #[arg(long, default_value = "")]
        order_id: String,
        #[arg(long, default_value = "")]
        client_order_id: String,
    },
    /// Lists your orders, newest first.
    List {
        #[arg(long)]
        open_only: bool,
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Lists your fills, newest first.
    Fills {
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Follows your order changes and fills as they are committed, until interrupted.
    Updates {
        /// Replay the updates after this sequence number first (0: from the first);
        /// without it, only new ones.
        #[arg(long)]
        from_seq: Option<u64>,
        /// Stop after this many updates.
        #[arg(long)]
        limit: Option<u64>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum IntervalArgument {
    #[value(name = "1m")]
    Minute,
    #[value(name = "5m")]
    FiveMinutes,
    #[value(name = "1h")]
    Hour,
    #[value(name = "1d")]
    Day,
}

impl IntervalArgument {
    fn proto(self) -> proto::CandleInterval {
        match self {
            IntervalArgument::Minute => proto::CandleInterval::CandleInterval1m,
            IntervalArgument::FiveMinutes => proto::CandleInterval::CandleInterval5m,
            IntervalArgument::Hour => proto::CandleInterval::CandleInterval1h,
            IntervalArgument::Day => proto::CandleInterval::CandleInterval1d,
        }
    }

    fn milliseconds(self) -> u64 {
        let minute = divmid::market_data::MINUTE_MS;
        match self {
            IntervalArgument::Minute => minute,
            IntervalArgument::FiveMinutes => 5 * minute,
            IntervalArgument::Hour => 60 * minute,
            IntervalArgument::Day => 24 * 60 * minute,
        }
    }
}

/// How many intervals back `market candles` reaches by default (the server answers at most
/// `CANDLES_PER_QUERY_MAX` per query).
const CANDLES_DEFAULT: u64 = 100;
const _: () = assert!(CANDLES_DEFAULT as usize <= divmid::market_data::CANDLES_PER_QUERY_MAX);

#[derive(Subcommand, Debug)]
enum MarketCommand {
    /// Lists the markets.
    List,
    /// Prints the issuer's price per tier now, and every change of it.
    IssuePrices,
    /// Prints a market's book.
    Book {
        #[arg(long, default_value = "DVM-USD")]
        market: String,
        #[arg(long, default_value_t = 10)]
        depth: u32,
    },
    /// Prints the last price, the best bid and ask, and the last 24 hours' volume, high
    /// and low.
    Ticker {
        #[arg(long, default_value = "DVM-USD")]
        market: String,
    },
    /// Prints OHLCV candles, oldest first.
    Candles {
        #[arg(long, default_value = "DVM-USD")]
        market: String,
        #[arg(long, value_enum, default_value = "1m")]
        interval: IntervalArgument,
        /// Start of the range, in milliseconds since the Unix epoch [default: 100
        /// intervals before --to-ms].
        #[arg(long)]
        from_ms: Option<u64>,
        /// End of the range (excluded) [default: now].
        #[arg(long)]
        to_ms: Option<u64>,
    },
    /// Follows the market's trades as they are committed, until interrupted.
    Trades {
        #[arg(long, default_value = "DVM-USD")]
        market: String,
        /// Replay the trades after this sequence number first (0: from the first);
        /// without it, only new ones.
        #[arg(long)]
        from_seq: Option<u64>,
        /// Stop after this many trades.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Follows the book: a snapshot, then each change, every message checked against
    /// the copy kept here (sequence and top-of-book checksum), until interrupted.
    Watch {
        #[arg(long, default_value = "DVM-USD")]
        market: String,
        /// Levels shown per side (the copy follows at least the 10 the checksum covers).
        #[arg(long, default_value_t = 10)]
        depth: u32,
        /// Stop after this many messages received (the snapshot, idle heartbeats and
        /// changes to levels not shown count too).
        #[arg(long)]
        messages: Option<u64>,
    },
}

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
    match runtime.block_on(run(arguments)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("divmid: {message}");
            ExitCode::FAILURE
        }
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

fn status(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
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

/// The endpoint of `--server`, with TLS for an `https://` address.
fn endpoint(arguments: &Arguments) -> Result<tonic::transport::Endpoint, String> {
    let endpoint = Channel::from_shared(arguments.server.clone())
        .map_err(|error| format!("--server: {error}"))?;
    let tls_options = arguments.ca_file.is_some() || arguments.cert_file.is_some();
    if !arguments.server.starts_with("https://") {
        if tls_options {
            return Err(format!(
                "--ca-file and --cert-file are for https:// addresses; --server is {}",
                arguments.server
            ));
        }
        return Ok(endpoint);
    }
    let identity = arguments
        .cert_file
        .as_deref()
        .zip(arguments.key_file.as_deref());
    let tls = divmid::api::tls::client_config(arguments.ca_file.as_deref(), identity)?;
    endpoint
        .tls_config(tls)
        .map_err(|error| format!("--server: {error}"))
}

async fn run(arguments: Arguments) -> Result<(), String> {
    let channel = endpoint(&arguments)?
        .connect()
        .await
        .map_err(|error| format!("cannot reach {}: {}", arguments.server, causes(&error)))?;
    let token = arguments.token;
    match arguments.command {
        Top::Issuer(command) => issuer(IssuerClient::new(channel), &token, command).await,
        Top::Wallet(command) => wallet(WalletClient::new(channel), &token, command).await,
        Top::Order(command) => order(TradingClient::new(channel), &token, command).await,
        Top::Charge { session: true, .. } => {
            prepaid::charge_session(MeteringClient::new(channel), &token).await
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
            let response = MeteringClient::new(channel)
                .charge(authorized(&token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            println!("charged {} DVM (seq {})", response.amount, response.seq);
            Ok(())
        }
        Top::Market(command) => market(MarketDataClient::new(channel), command).await,
    }
}

fn tier(tier: TierArgument) -> i32 {
    match tier {
        TierArgument::Public => proto::Tier::Public as i32,
        TierArgument::Subscriber => proto::Tier::Subscriber as i32,
    }
}

async fn issuer(
    mut client: IssuerClient<Channel>,
    token: &Option<String>,
    command: IssuerCommand,
) -> Result<(), String> {
    match command {
        IssuerCommand::CreateAccount {
            name,
            tier: t,
            role,
        } => {
            let role = match role {
                RoleArgument::Trader => proto::Role::Trader,
                RoleArgument::Service => proto::Role::Service,
            } as i32;
            let request = proto::CreateAccountRequest {
                name,
                tier: tier(t),
                role,
            };
            let created = client
                .create_account(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            println!(
                "account_id: {}\napi_token: {}",
                created.account_id, created.api_token
            );
        }
        IssuerCommand::Mint { amount, key, memo } => {
            let request = proto::MintRequest {
                amount,
                memo,
                idempotency_key: key,
            };
            let minted = client
                .mint(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            println!("total supply: {} DVM", minted.total_supply);
        }
        IssuerCommand::SetPrice { tier: t, price } => {
            let request = proto::SetIssuePriceRequest {
                tier: tier(t),
                price,
            };
            client
                .set_issue_price(authorized(token, request)?)
                .await
                .map_err(status)?;
            println!("price set");
        }
        IssuerCommand::Supply => {
            let supply = client
                .get_supply(authorized(token, proto::GetSupplyRequest {})?)
                .await
                .map_err(status)?
                .into_inner();
            println!(
                "minted: {}\ntreasury: {}\ncirculating: {}\nspent: {}\nseq: {}",
                supply.minted, supply.treasury, supply.circulating, supply.spent, supply.seq
            );
        }
        IssuerCommand::RotateToken { account } => {
            change_token(client, token, account, true).await?
        }
        IssuerCommand::RevokeToken { account } => {
            change_token(client, token, account, false).await?
        }
    }
    Ok(())
}

/// Rotates an account's token and prints the new one, or revokes it.
async fn change_token(
    mut client: IssuerClient<Channel>,
    token: &Option<String>,
    account_id: String,
    rotate: bool,
) -> Result<(), String> {
    if rotate {
        let request = proto::RotateTokenRequest { account_id };
        let rotated = client
            .rotate_token(authorized(token, request)?)
            .await
            .map_err(status)?
            .into_inner();
        println!("api_token: {}", rotated.api_token);
    } else {
        let request = proto::RevokeTokenRequest { account_id };
        client
            .revoke_token(authorized(token, request)?)
            .await
            .map_err(status)?;
        println!("token revoked");
    }
    Ok(())
}

fn print_balances(balances: &[proto::Balance]) {
    for balance in balances {
        println!(
            "{}: available {} held {}",
            balance.asset, balance.available, balance.held
        );
    }
}

async fn wallet(
    mut client: WalletClient<Channel>,
    token: &Option<String>,
    command: WalletCommand,
) -> Result<(), String> {
    match command {
        WalletCommand::Balances => {
            let response = client
                .get_balances(authorized(token, proto::GetBalancesRequest {})?)
                .await
                .map_err(status)?
                .into_inner();
            print_balances(&response.balances);
        }
        WalletCommand::Deposit {
            source,
            amount,
            reference,
            key,
        } => {
            let source = match source {
                SourceArgument::Card => proto::Source::Card,
                SourceArgument::Paypal => proto::Source::Paypal,
                SourceArgument::Egold => proto::Source::Egold,
            } as i32;
            let request = proto::DepositRequest {
                source,
                amount,
                source_reference: reference,
                idempotency_key: key,
            };
            let response = client
                .deposit(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            print_balances(response.balance.as_slice());
        }
        WalletCommand::Withdraw {
            amount,
            destination,
            key,
        } => {
            let request = proto::WithdrawRequest {
                amount,
                destination,
                idempotency_key: key,
            };
            let response = client
                .withdraw(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            print_balances(response.balance.as_slice());
        }
        WalletCommand::Buy {
            quantity,
            max_price,
            key,
        } => {
            let request = proto::BuyDivmidsRequest {
                quantity,
                max_price,
                idempotency_key: key,
            };
            let response = client
                .buy_divmids(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            println!("cost: {} USD", response.cost);
            print_balances(&response.balances);
        }
        WalletCommand::AutoTopUp(arguments) => {
            return prepaid::auto_top_up(client, token, arguments).await
        }
        WalletCommand::SpendLimit(arguments) => {
            return prepaid::spend_limit(client, token, arguments).await
        }
        WalletCommand::Usage(arguments) => return prepaid::usage(client, token, arguments).await,
        WalletCommand::Ledger {
            page_size,
            page_token,
        } => {
            let request = proto::ListLedgerEntriesRequest {
                page_size,
                page_token,
            };
            let response = client
                .list_ledger_entries(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            for entry in &response.entries {
                println!(
                    "seq {} {} {} {} available {:>+} held {:>+} -> {} / {} ({})",
                    entry.seq,
                    date(entry.time_ms),
                    entry.kind,
                    entry.asset,
                    entry.available_change,
                    entry.held_change,
                    entry.available_after,
                    entry.held_after,
                    entry.reference
                );
            }
            if !response.next_page_token.is_empty() {
                println!("next page: --page-token {}", response.next_page_token);
            }
        }
    }
    Ok(())
}

/// A side's wire name, or `?` for a value this client does not know.
fn side_name(side: i32) -> &'static str {
    proto::Side::try_from(side)
        .map(|side| side.as_str_name())
        .unwrap_or("?")
}

fn print_order(order: &proto::Order) {
    let status = proto::OrderStatus::try_from(order.status)
        .map(|status| status.as_str_name())
        .unwrap_or("?");
    let side = side_name(order.side);
    println!(
        "order {} {} {} {} @ {} filled {} remaining {} {}{}",
        order.order_id,
        order.market,
        side,
        order.quantity,
        if order.price.is_empty() {
            "market"
        } else {
            &order.price
        },
        order.filled_quantity,
        order.remaining_quantity,
        status,
        if order.client_order_id.is_empty() {
            String::new()
        } else {
            format!(" (client id {})", order.client_order_id)
        }
    );
}

fn print_fill(fill: &proto::Fill) {
    println!(
        "fill {} of order {}: {} @ {} ({}) seq {}",
        fill.trade_id,
        fill.order_id,
        fill.quantity,
        fill.price,
        proto::Liquidity::try_from(fill.liquidity)
            .map(|liquidity| liquidity.as_str_name())
            .unwrap_or("?"),
        fill.seq
    );
}

async fn order(
    mut client: TradingClient<Channel>,
    token: &Option<String>,
    command: OrderCommand,
) -> Result<(), String> {
    match command {
        OrderCommand::Place {
            market,
            side,
            order_type,
            price,
            quantity,
            time_in_force,
            post_only,
            client_order_id,
            self_trade_prevention,
        } => {
            let request = proto::PlaceOrderRequest {
                market,
                side: match side {
                    SideArgument::Buy => proto::Side::Buy,
                    SideArgument::Sell => proto::Side::Sell,
                } as i32,
                r#type: match order_type {
                    TypeArgument::Limit => proto::OrderType::Limit,
                    TypeArgument::Market => proto::OrderType::Market,
                } as i32,
                price,
                quantity,
                time_in_force: match time_in_force {
                    None => proto::TimeInForce::Unspecified,
                    Some(TimeInForceArgument::Gtc) => proto::TimeInForce::Gtc,
                    Some(TimeInForceArgument::Ioc) => proto::TimeInForce::Ioc,
                    Some(TimeInForceArgument::Fok) => proto::TimeInForce::Fok,
                } as i32,
                post_only,
                client_order_id,
                self_trade_prevention: match self_trade_prevention {
                    None => proto::SelfTradePrevention::Unspecified,
                    Some(StpArgument::CancelTaker) => proto::SelfTradePrevention::CancelTaker,
                    Some(StpArgument::CancelMaker) => proto::SelfTradePrevention::CancelMaker,
                    Some(StpArgument::CancelBoth) => proto::SelfTradePrevention::CancelBoth,
                    Some(StpArgument::Decrement) => proto::SelfTradePrevention::Decrement,
                } as i32,
            };
            let response = client
                .place_order(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            response.order.iter().for_each(print_order);
            response.fills.iter().for_each(print_fill);
        }
        OrderCommand::Cancel {
            order_id,
            client_order_id,
        } => {
            let request = proto::CancelOrderRequest {
                order_id,
                client_order_id,
            };
            let response = client
                .cancel_order(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            response.order.iter().for_each(print_order);
        }
        OrderCommand::CancelAll { market } => {
            let request = proto::CancelAllOrdersRequest { market };
            let response = client
                .cancel_all_orders(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            let count = response.canceled_count;
            println!(
                "canceled {count} order{}",
                if count == 1 { "" } else { "s" }
            );
        }
        OrderCommand::Amend {
            order_id,
            quantity,
            price,
        } => {
            let request = proto::AmendOrderRequest {
                order_id,
                quantity,
                price,
            };
            let response = client
                .amend_order(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            response.order.iter().for_each(print_order);
            response.fills.iter().for_each(print_fill);
        }
        OrderCommand::Get {
            order_id,
            client_order_id,
        } => {
            let request = proto::GetOrderRequest {
                order_id,
                client_order_id,
            };
            let response = client
                .get_order(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            response.order.iter().for_each(print_order);
        }
        OrderCommand::List {
            open_only,
            page_size,
            page_token,
        } => {
            let request = proto::ListOrdersRequest {
                open_only,
                page_size,
                page_token,
            };
            let response = client
                .list_orders(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            response.orders.iter().for_each(print_order);
            if !response.next_page_token.is_empty() {
                println!("next page: --page-token {}", response.next_page_token);
            }
        }
        OrderCommand::Fills {
            page_size,
            page_token,
        } => {
            let request = proto::ListFillsRequest {
                page_size,
                page_token,
            };
            let response = client
                .list_fills(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            response.fills.iter().for_each(print_fill);
            if !response.next_page_token.is_empty() {
                println!("next page: --page-token {}", response.next_page_token);
            }
        }
        OrderCommand::Updates { from_seq, limit } => {
            let request = proto::StreamOrderUpdatesRequest { from_seq };
            let mut updates = client
                .stream_order_updates(authorized(token, request)?)
                .await
                .map_err(status)?
                .into_inner();
            for _ in 0..limit.unwrap_or(u64::MAX) {
                let update = next(&mut updates).await?;
                print!("seq {}: ", update.seq);
                match update.update {
                    Some(proto::order_update::Update::Order(order)) => print_order(&order),
                    Some(proto::order_update::Update::Fill(fill)) => print_fill(&fill),
                    None => println!("(empty update)"),
                }
            }
        }
    }
    Ok(())
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

fn print_levels<'a>(side: &str, levels: impl IntoIterator<Item = &'a proto::PriceLevel>) {
    for level in levels {
        println!("  {side} {:>12} {:>14}", level.price, level.quantity);
    }
}

/// The prices of the levels a watch shows.
struct Shown {
    asks: Vec<String>,
    bids: Vec<String>,
}

fn shown_prices(copy: &BookCopy, depth: usize) -> Shown {
    let prices = |levels: &mut dyn Iterator<Item = &proto::PriceLevel>| {
        levels
            .take(depth)
            .map(|level| level.price.clone())
            .collect()
    };
    Shown {
        asks: prices(&mut copy.asks()),
        bids: prices(&mut copy.bids()),
    }
}

/// The changed levels at prices shown before or after the change.
fn visible<'a>(
    changes: &'a [proto::PriceLevel],
    before: &[String],
    after: &[String],
) -> Vec<&'a proto::PriceLevel> {
    changes
        .iter()
        .filter(|level| before.contains(&level.price) || after.contains(&level.price))
        .collect()
}

async fn market(
    mut client: MarketDataClient<Channel>,
    command: MarketCommand,
) -> Result<(), String> {
    match command {
        MarketCommand::IssuePrices => return prepaid::issue_prices(client).await,
        MarketCommand::List => {
            let response = client
                .get_markets(proto::GetMarketsRequest {})
                .await
                .map_err(status)?
                .into_inner();
            for market in response.markets {
                println!(
                    "{}: {} in {}, tick {}, lot {}, quantity {} to {}, price up to {}",
                    market.name,
                    market.base,
                    market.quote,
                    market.tick_size,
                    market.lot_size,
                    market.min_quantity,
                    market.max_quantity,
                    market.max_price
                );
            }
        }
        MarketCommand::Book { market, depth } => {
            let book = client
                .get_order_book(proto::GetOrderBookRequest { market, depth })
                .await
                .map_err(status)?
                .into_inner();
            println!("{} at seq {}", book.market, book.seq);
            print_levels("ask", book.asks.iter().rev());
            print_levels("bid", &book.bids);
        }
        MarketCommand::Ticker { market } => {
            let ticker = client
                .get_ticker(proto::GetTickerRequest { market })
                .await
                .map_err(status)?
                .into_inner();
            let or_none = |text: &str| {
                if text.is_empty() {
                    "none".to_string()
                } else {
                    text.to_string()
                }
            };
            println!(
                "{} at seq {}: last {}, bid {}, ask {}; 24 h volume {}, high {}, low {}",
                ticker.market,
                ticker.seq,
                or_none(&ticker.last_price),
                or_none(&ticker.best_bid),
                or_none(&ticker.best_ask),
                ticker.volume_24h,
                or_none(&ticker.high_24h),
                or_none(&ticker.low_24h)
            );
        }
        MarketCommand::Candles {
            market,
            interval,
            from_ms,
            to_ms,
        } => {
            let to_ms = match to_ms {
                Some(to_ms) => to_ms,
                None => SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_err(|_| "the system clock is before 1970".to_string())?
                    .as_millis()
                    .try_into()
                    .map_err(|_| "the system clock is too far ahead".to_string())?,
            };
            let from_ms = from_ms
                .unwrap_or_else(|| to_ms.saturating_sub(CANDLES_DEFAULT * interval.milliseconds()));
            let request = proto::GetCandlesRequest {
                market,
                interval: interval.proto() as i32,
                from_ms,
                to_ms,
            };
            let candles = client
                .get_candles(request)
                .await
                .map_err(status)?
                .into_inner()
                .candles;
            if candles.is_empty() {
                println!("no trades from {} to {}", date(from_ms), date(to_ms));
            }
            for candle in candles {
                println!(
                    "{}  open {} high {} low {} close {} volume {}",
                    date(candle.open_time_ms),
                    candle.open,
                    candle.high,
                    candle.low,
                    candle.close,
                    candle.volume
                );
            }
        }
        MarketCommand::Trades {
            market,
            from_seq,
            limit,
        } => {
            let request = proto::StreamTradesRequest { market, from_seq };
            let mut trades = client
                .stream_trades(request)
                .await
                .map_err(status)?
                .into_inner();
            for _ in 0..limit.unwrap_or(u64::MAX) {
                let trade = next(&mut trades).await?;
                let taker = side_name(trade.taker_side);
                println!(
                    "trade {} {} {} @ {} taker {} seq {} at {}",
                    trade.trade_id,
                    trade.market,
                    trade.quantity,
                    trade.price,
                    taker,
                    trade.seq,
                    date(trade.time_ms)
                );
            }
        }
        MarketCommand::Watch {
            market,
            depth,
            messages,
        } => {
            // The checksum covers the top levels of each side: a copy of fewer could not
            // be checked, so at least that many are followed and `depth` are shown.
            let followed = depth.max(CHECKSUM_LEVELS as u32);
            let shown = depth as usize;
            let request = proto::StreamOrderBookRequest {
                market,
                depth: followed,
            };
            let mut stream = client
                .stream_order_book(request)
                .await
                .map_err(status)?
                .into_inner();
            let mut copy = BookCopy::default();
            for _ in 0..messages.unwrap_or(u64::MAX) {
                let message = next(&mut stream).await?;
                let shown_before = shown_prices(&copy, shown);
                copy.apply(&message)
                    .map_err(|error| format!("{error}: resubscribe for a fresh snapshot"))?;
                match &message.update {
                    Some(proto::book_update::Update::Snapshot(snapshot)) => {
                        println!("snapshot at seq {}", snapshot.book_seq);
                        print_levels(
                            "ask",
                            copy.asks()
                                .take(shown)
                                .collect::<Vec<_>>()
                                .into_iter()
                                .rev(),
                        );
                        print_levels("bid", copy.bids().take(shown));
                    }
                    Some(proto::book_update::Update::Changes(changes)) => {
                        // Only the changes to levels shown before or after this message.
                        let shown_after = shown_prices(&copy, shown);
                        let asks = visible(&changes.asks, &shown_before.asks, &shown_after.asks);
                        let bids = visible(&changes.bids, &shown_before.bids, &shown_after.bids);
                        if asks.is_empty() && bids.is_empty() {
                            continue;
                        }
                        println!("changes at seq {}", changes.book_seq);
                        print_levels("ask", asks);
                        print_levels("bid", bids);
                    }
                    // Idle: nothing changed, nothing to show.
                    _ => continue,
                }
                let best = |level: Option<&proto::PriceLevel>| {
                    level.map_or("none".to_string(), |level| {
                        format!("{} x {}", level.price, level.quantity)
                    })
                };
                println!(
                    "  best bid {} | best ask {} (checksum {} verified)",
                    best(copy.bids().next()),
                    best(copy.asks().next()),
                    message.checksum
                );
            }
        }
    }
    Ok(())
}
