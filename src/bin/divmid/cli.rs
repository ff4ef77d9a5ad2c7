//! The command line's shape: every subcommand, flag and value, as clap reads them. The
//! calls they make are in the files named after each command group.

use clap::{Args, Parser, Subcommand, ValueEnum};
use divmid::api::proto;

/// The divmid exchange's command-line client. Amounts, prices and quantities are decimal
/// strings (`12.5`), checked by the server, which names the field of a bad one.
#[derive(Parser, Debug)]
#[command(version)]
pub struct Arguments {
    /// The server's address: `https://HOST:PORT` for TLS, `http://` for plaintext (a
    /// server on this machine, or behind a proxy) [default: the profile's, else
    /// http://127.0.0.1:50051].
    #[arg(long, env = "DIVMID_SERVER", global = true)]
    pub server: Option<String>,
    /// The profile to use (see `divmid profile`) [default: the one in use].
    #[arg(long, env = "DIVMID_PROFILE", global = true)]
    pub profile: Option<String>,
    /// How answers are printed: `text` for people, `json` for scripts (one JSON object per
    /// answer, one per line for streams, with the proto's field names).
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "DIVMID_OUTPUT",
        global = true
    )]
    pub output: OutputFormat,
    /// Short for `--output json`.
    #[arg(long, global = true)]
    pub json: bool,
    /// For `https://`: a PEM file of the CA that signed the server's certificate, when it
    /// is not one the system trusts.
    #[arg(long, env = "DIVMID_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// For a server that requires client certificates: your certificate (PEM).
    #[arg(long, env = "DIVMID_CERT_FILE", requires = "key_file")]
    pub cert_file: Option<std::path::PathBuf>,
    /// The private key of `--cert-file` (PEM).
    #[arg(long, env = "DIVMID_KEY_FILE", requires = "cert_file")]
    pub key_file: Option<std::path::PathBuf>,
    /// Your bearer token (the issuer's, a trader's or a service's).
    #[arg(long, env = "DIVMID_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Top,
}

#[derive(Subcommand, Debug)]
pub enum Top {
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
    /// An interactive prompt for every command, with tab completion and a history.
    Shell,
    /// Saved ways to reach an exchange: address, token file, CA.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Prints a completion script for SHELL (bash, zsh, fish, powershell or elvish): see
    /// the README for where each shell reads it.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TierArgument {
    Public,
    Subscriber,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArgument {
    Trader,
    Service,
}

#[derive(Subcommand, Debug)]
pub enum IssuerCommand {
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
    /// Takes a consistent backup of the running exchange into a file, trading going on
    /// meanwhile; `divmid-server restore --from FILE --data-dir NEW_DIR` restores it.
    Backup {
        /// The file to write (readable by its owner only); it must not exist yet.
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SourceArgument {
    Card,
    Paypal,
    Egold,
}

#[derive(Subcommand, Debug)]
pub enum WalletCommand {
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
    AutoTopUp(AutoTopUpArguments),
    /// Lists your daily spend limits per service, or sets one (--service with
    /// --daily-max) or removes one (--service with --remove).
    SpendLimit(SpendLimitArguments),
    /// Prints the charges made to you per service and day (or hour), and your top-ups.
    Usage(UsageArguments),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SideArgument {
    Buy,
    Sell,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TypeArgument {
    Limit,
    Market,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TimeInForceArgument {
    Gtc,
    Ioc,
    Fok,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StpArgument {
    CancelTaker,
    CancelMaker,
    CancelBoth,
    Decrement,
}

#[derive(Subcommand, Debug)]
pub enum OrderCommand {
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
pub enum IntervalArgument {
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
    pub fn proto(self) -> proto::CandleInterval {
        match self {
            IntervalArgument::Minute => proto::CandleInterval::CandleInterval1m,
            IntervalArgument::FiveMinutes => proto::CandleInterval::CandleInterval5m,
            IntervalArgument::Hour => proto::CandleInterval::CandleInterval1h,
            IntervalArgument::Day => proto::CandleInterval::CandleInterval1d,
        }
    }

    pub fn milliseconds(self) -> u64 {
        let minute = divmid::types::MINUTE_MS;
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
pub const CANDLES_DEFAULT: u64 = 100;
const _: () = assert!(CANDLES_DEFAULT as usize <= divmid::market_data::CANDLES_PER_QUERY_MAX);

#[derive(Subcommand, Debug)]
pub enum MarketCommand {
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

/// `wallet auto-top-up`: with no flags, prints the settings.
#[derive(Args, Debug)]
pub struct AutoTopUpArguments {
    /// DVM: a charge that would leave less available buys the pool back up to --target.
    #[arg(long, requires_all = ["target", "max_price", "monthly_max_usd"])]
    pub threshold: Option<String>,
    /// DVM the pool is bought back up to.
    #[arg(long, requires = "threshold")]
    pub target: Option<String>,
    /// USD per DVM, the most a top-up pays.
    #[arg(long, requires = "threshold")]
    pub max_price: Option<String>,
    /// USD all top-ups of one UTC month may cost together.
    #[arg(long, requires = "threshold")]
    pub monthly_max_usd: Option<String>,
    /// Turns automatic top-up off.
    #[arg(long, conflicts_with = "threshold")]
    pub off: bool,
}

/// `wallet spend-limit`: with no flags, lists the limits.
#[derive(Args, Debug)]
pub struct SpendLimitArguments {
    /// The service's account id.
    #[arg(long)]
    pub service: Option<String>,
    /// DVM the service may charge you per UTC day.
    #[arg(long, requires = "service", conflicts_with = "remove")]
    pub daily_max: Option<String>,
    /// Removes the limit on --service.
    #[arg(long, requires = "service")]
    pub remove: bool,
}

/// The interval usage is summed over.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum UsageIntervalArgument {
    Hour,
    Day,
}

/// `wallet usage`.
#[derive(Args, Debug)]
pub struct UsageArguments {
    /// Start of the range, in milliseconds since the Unix epoch [default: 30 days ago].
    #[arg(long)]
    pub from_ms: Option<u64>,
    /// End of the range (excluded) [default: now].
    #[arg(long)]
    pub to_ms: Option<u64>,
    #[arg(long, value_enum, default_value = "day")]
    pub interval: UsageIntervalArgument,
}

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// Saves a profile (replacing one of the same name); the first one saved is used.
    Add {
        name: String,
        /// The exchange's address.
        #[arg(long)]
        server: String,
        /// A file whose first line is your token (the profile keeps the path, not the
        /// token).
        #[arg(long)]
        token_file: Option<std::path::PathBuf>,
        /// For https://: the CA of the server's certificate.
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
    },
    /// Lists the profiles; `*` marks the one in use.
    List,
    /// Uses a profile from now on.
    Use { name: String },
    /// Forgets a profile.
    Remove { name: String },
}

/// How answers are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people.
    Text,
    /// One JSON object per answer (per message, for streams), one per line.
    Json,
}

impl SideArgument {
    /// The wire's value.
    pub fn wire(self) -> i32 {
        let wire = match self {
            SideArgument::Buy => proto::Side::Buy,
            SideArgument::Sell => proto::Side::Sell,
        };
        wire as i32
    }
}

impl TypeArgument {
    /// The wire's value.
    pub fn wire(self) -> i32 {
        let wire = match self {
            TypeArgument::Limit => proto::OrderType::Limit,
            TypeArgument::Market => proto::OrderType::Market,
        };
        wire as i32
    }
}

impl TimeInForceArgument {
    /// The wire's value; unset lets the server choose its default.
    pub fn wire(argument: Option<Self>) -> i32 {
        let wire = match argument {
            None => proto::TimeInForce::Unspecified,
            Some(TimeInForceArgument::Gtc) => proto::TimeInForce::Gtc,
            Some(TimeInForceArgument::Ioc) => proto::TimeInForce::Ioc,
            Some(TimeInForceArgument::Fok) => proto::TimeInForce::Fok,
        };
        wire as i32
    }
}

impl StpArgument {
    /// The wire's value; unset lets the server choose its default.
    pub fn wire(argument: Option<Self>) -> i32 {
        let wire = match argument {
            None => proto::SelfTradePrevention::Unspecified,
            Some(StpArgument::CancelTaker) => proto::SelfTradePrevention::CancelTaker,
            Some(StpArgument::CancelMaker) => proto::SelfTradePrevention::CancelMaker,
            Some(StpArgument::CancelBoth) => proto::SelfTradePrevention::CancelBoth,
            Some(StpArgument::Decrement) => proto::SelfTradePrevention::Decrement,
        };
        wire as i32
    }
}

impl SourceArgument {
    /// The wire's value.
    pub fn wire(self) -> i32 {
        let wire = match self {
            SourceArgument::Card => proto::Source::Card,
            SourceArgument::Paypal => proto::Source::Paypal,
            SourceArgument::Egold => proto::Source::Egold,
        };
        wire as i32
    }
}
