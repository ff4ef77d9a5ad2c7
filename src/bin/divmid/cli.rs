//! The command line's shape: every subcommand, flag and value, as clap reads them. The
//! calls they make are in the files named after each command group.

use clap::{Args, Parser, Subcommand, ValueEnum};
use divmid::api::proto;

/// The heading of the options that say which exchange to reach and as whom.
const CONNECTION: &str = "Connection";
/// The heading of the options that say how answers are printed.
const OUTPUT: &str = "Output";

/// The divmid exchange's command-line client. Amounts, prices and quantities are decimal
/// strings (`12.5`), checked by the server, which names the field of a bad one.
#[derive(Parser, Debug)]
#[command(version)]
pub struct Arguments {
    /// The server's address: `https://HOST:PORT` for TLS, `http://` for plaintext (a
    /// server on this machine, or behind a proxy) [default: the profile's, else
    /// http://127.0.0.1:50051].
    #[arg(long, env = "DIVMID_SERVER", global = true, help_heading = CONNECTION)]
    pub server: Option<String>,
    /// The profile to use (see `divmid profile`) [default: the one in use].
    #[arg(long, env = "DIVMID_PROFILE", global = true, help_heading = CONNECTION)]
    pub profile: Option<String>,
    /// How answers are printed: `text` for people, `json` for scripts (one JSON object per
    /// answer, one per line for streams, with the proto's field names).
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "DIVMID_OUTPUT",
        global = true,
        help_heading = OUTPUT
    )]
    pub output: OutputFormat,
    /// Short for `--output json`.
    #[arg(long, global = true, help_heading = OUTPUT)]
    pub json: bool,
    /// For `https://`: a PEM file of the CA that signed the server's certificate, when it
    /// is not one the system trusts.
    #[arg(long, env = "DIVMID_CA_FILE", global = true, help_heading = CONNECTION)]
    pub ca_file: Option<std::path::PathBuf>,
    /// For a server that requires client certificates: your certificate (PEM).
    #[arg(
        long,
        env = "DIVMID_CERT_FILE",
        requires = "key_file",
        global = true,
        help_heading = CONNECTION
    )]
    pub cert_file: Option<std::path::PathBuf>,
    /// The private key of `--cert-file` (PEM).
    #[arg(
        long,
        env = "DIVMID_KEY_FILE",
        requires = "cert_file",
        global = true,
        help_heading = CONNECTION
    )]
    pub key_file: Option<std::path::PathBuf>,
    /// Your bearer token (the issuer's, a trader's or a service's).
    #[arg(
        long,
        env = "DIVMID_TOKEN",
        hide_env_values = true,
        global = true,
        help_heading = CONNECTION
    )]
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
        /// A key of your choosing, unique per charge: a retry with the same key applies
        /// once (kept 7 days by default).
        #[arg(long, required_unless_present = "session")]
        key: Option<String>,
        /// What the charge is for, kept with it in the exchange's journal (at most 256
        /// characters by default).
        #[arg(long, default_value = "", hide_default_value = true)]
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
        /// The shell to write the script for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TierArgument {
    /// The issuer's price for everyone.
    Public,
    /// The reduced price for existing subscribers.
    Subscriber,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArgument {
    /// Holds USD and DVM, buys from the issuer, trades on the book.
    Trader,
    /// A platform service: charges holders for their usage.
    Service,
}

#[derive(Subcommand, Debug)]
pub enum IssuerCommand {
    /// Opens an account and prints its token (shown only once).
    CreateAccount {
        /// A name for people to know the account by (at most 128 characters by default).
        #[arg(long)]
        name: String,
        /// The issuer's price the account buys divmids at.
        #[arg(long, value_enum)]
        tier: TierArgument,
        /// What the account may do.
        #[arg(long, value_enum)]
        role: RoleArgument,
    },
    /// Mints divmids into the treasury.
    Mint {
        /// DVM to create, down to 0.000001.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// A key of your choosing, unique per request: a retry with the same key applies
        /// once (kept 7 days by default).
        #[arg(long)]
        key: String,
        /// What the mint is for, kept with it in the exchange's journal.
        #[arg(long, default_value = "", hide_default_value = true)]
        memo: String,
    },
    /// Sets a tier's USD price per DVM.
    SetPrice {
        /// The tier whose price changes.
        #[arg(long, value_enum)]
        tier: TierArgument,
        /// USD per DVM, from now on.
        #[arg(long, allow_hyphen_values = true)]
        price: String,
    },
    /// Prints the divmid supply.
    Supply,
    /// Gives an account a new token and prints it (shown only once); the old one stops
    /// working at once.
    RotateToken {
        /// The account's id.
        #[arg(long)]
        account: String,
    },
    /// Revokes an account's token until it is rotated; balances and orders stay.
    RevokeToken {
        /// The account's id.
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
    /// A card, by its number.
    Card,
    /// A PayPal account, by its e-mail address.
    Paypal,
    /// An e-gold account, by its number (6 to 12 digits).
    Egold,
}

#[derive(Subcommand, Debug)]
pub enum WalletCommand {
    /// Prints available and held balances.
    Balances,
    /// Deposits USD from a funding source.
    Deposit {
        /// Where the USD comes from.
        #[arg(long, value_enum)]
        source: SourceArgument,
        /// USD, down to 0.000001.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// Card number, e-mail address or e-gold account number.
        #[arg(long)]
        reference: String,
        /// A key of your choosing, unique per request: a retry with the same key applies
        /// once (kept 7 days by default).
        #[arg(long)]
        key: String,
    },
    /// Withdraws USD.
    Withdraw {
        /// USD, down to 0.000001, at most what is available.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// Where the USD is paid out to.
        #[arg(long)]
        destination: String,
        /// A key of your choosing, unique per request: a retry with the same key applies
        /// once (kept 7 days by default).
        #[arg(long)]
        key: String,
    },
    /// Buys divmids from the issuer at your tier's price.
    Buy {
        /// DVM to buy, down to 0.000001.
        #[arg(long, allow_hyphen_values = true)]
        quantity: String,
        /// USD per DVM, the most you pay: the purchase is refused if your tier's price is
        /// above it (see `divmid market issue-prices`).
        #[arg(long, allow_hyphen_values = true)]
        max_price: String,
        /// A key of your choosing, unique per request: a retry with the same key applies
        /// once (kept 7 days by default).
        #[arg(long)]
        key: String,
    },
    /// Prints your ledger entries, newest first.
    Ledger {
        /// Entries per page (the server allows at most 1,000 by default).
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        /// The next page's token, printed under the page before it.
        #[arg(long, default_value = "", hide_default_value = true)]
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
    /// Buys DVM with USD.
    Buy,
    /// Sells DVM for USD.
    Sell,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TypeArgument {
    /// At --price or better; what does not fill at once rests on the book (with gtc).
    Limit,
    /// At the best prices on the book, never resting; --price, if given, caps how far
    /// it walks the book.
    Market,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TimeInForceArgument {
    /// Good till canceled: what does not fill at once rests (a limit order's default).
    Gtc,
    /// Immediate or cancel: what does not fill at once is canceled (a market order's).
    Ioc,
    /// Fill or kill: fills entirely at once, or changes nothing.
    Fok,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StpArgument {
    /// This order is canceled where it would trade with one of yours (the default).
    CancelTaker,
    /// Your resting order is canceled instead.
    CancelMaker,
    /// Both are canceled.
    CancelBoth,
    /// Both are reduced by the smaller one's remaining quantity, without a trade.
    Decrement,
}

#[derive(Subcommand, Debug)]
pub enum OrderCommand {
    /// Places an order.
    Place {
        /// The market (see `divmid market list`).
        #[arg(long, default_value = "DVM-USD")]
        market: String,
        /// Which way the order trades.
        #[arg(long, value_enum)]
        side: SideArgument,
        /// How the order is priced.
        #[arg(long = "type", value_enum, default_value = "limit")]
        order_type: TypeArgument,
        /// USD per DVM, on the market's tick (required for a limit order).
        #[arg(
            long,
            default_value = "",
            hide_default_value = true,
            allow_hyphen_values = true
        )]
        price: String,
        /// DVM, in the market's lots.
        #[arg(long, allow_hyphen_values = true)]
        quantity: String,
        /// How long the order lasts [default: gtc for a limit order, ioc for a market
        /// order].
        #[arg(long, value_enum)]
        time_in_force: Option<TimeInForceArgument>,
        /// Refuses the whole order if any of it would trade at once: it only adds to the
        /// book.
        #[arg(long)]
        post_only: bool,
        /// Your own id for the order, unique among your orders (at most 64 characters by
        /// default): a retry with the same id and terms places nothing twice, and
        /// `order cancel` and `order get` find the order by it.
        #[arg(long, default_value = "", hide_default_value = true)]
        client_order_id: String,
        /// What happens where the order would trade with one of your own.
        #[arg(long, value_enum)]
        self_trade_prevention: Option<StpArgument>,
    },
    /// Cancels an order by id or client order id.
    Cancel {
        /// The order's id, as the exchange gave it.
        #[arg(long, default_value = "", hide_default_value = true)]
        order_id: String,
        /// Or the client order id you gave it.
        #[arg(long, default_value = "", hide_default_value = true)]
        client_order_id: String,
    },
    /// Cancels all your open orders (on one market with --market).
    CancelAll {
        /// Only on this market [default: every market].
        #[arg(long, default_value = "", hide_default_value = true)]
        market: String,
    },
    /// Changes an open order's total quantity and/or price.
    Amend {
        /// The order's id, as the exchange gave it.
        #[arg(long)]
        order_id: String,
        /// The new total quantity, filled part included: a smaller one keeps the order's
        /// place in the queue, and one at or below what is filled ends it.
        #[arg(
            long,
            default_value = "",
            hide_default_value = true,
            allow_hyphen_values = true
        )]
        quantity: String,
        /// The new price: the order goes to the back of its new level and may trade at
        /// once.
        #[arg(
            long,
            default_value = "",
            hide_default_value = true,
            allow_hyphen_values = true
        )]
        price: String,
    },
    /// Prints one order.
    Get {
        /// The order's id, as the exchange gave it.
        #[arg(long, default_value = "", hide_default_value = true)]
        order_id: String,
        /// Or the client order id you gave it.
        #[arg(long, default_value = "", hide_default_value = true)]
        client_order_id: String,
    },
    /// Lists your orders, newest first.
    List {
        /// Only orders that are open or partly filled.
        #[arg(long)]
        open_only: bool,
        /// Entries per page (the server allows at most 1,000 by default).
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        /// The next page's token, printed under the page before it.
        #[arg(long, default_value = "", hide_default_value = true)]
        page_token: String,
    },
    /// Lists your fills, newest first.
    Fills {
        /// Entries per page (the server allows at most 1,000 by default).
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        /// The next page's token, printed under the page before it.
        #[arg(long, default_value = "", hide_default_value = true)]
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
    /// One minute.
    #[value(name = "1m")]
    Minute,
    /// Five minutes.
    #[value(name = "5m")]
    FiveMinutes,
    /// One hour.
    #[value(name = "1h")]
    Hour,
    /// One UTC day.
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
        /// The market (see `divmid market list`).
        #[arg(long, default_value = "DVM-USD")]
        market: String,
        /// Price levels per side (at most 1,000).
        #[arg(long, default_value_t = 10)]
        depth: u32,
    },
    /// Prints the last price, the best bid and ask, and the last 24 hours' volume, high
    /// and low.
    Ticker {
        /// The market (see `divmid market list`).
        #[arg(long, default_value = "DVM-USD")]
        market: String,
    },
    /// Prints OHLCV candles, oldest first.
    Candles {
        /// The market (see `divmid market list`).
        #[arg(long, default_value = "DVM-USD")]
        market: String,
        /// Each candle's span.
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
        /// The market (see `divmid market list`).
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
        /// The market (see `divmid market list`).
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
    /// Per clock hour, UTC.
    Hour,
    /// Per UTC day.
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
    /// What the charges are summed over.
    #[arg(long, value_enum, default_value = "day")]
    pub interval: UsageIntervalArgument,
}

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// Saves a profile (replacing one of the same name); the first one saved is used.
    Add {
        /// The profile's name.
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
    Use {
        /// The profile's name.
        name: String,
    },
    /// Forgets a profile.
    Remove {
        /// The profile's name.
        name: String,
    },
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag and argument of `command` and its subcommands without a help text,
    /// and every named value without its meaning, by the path that reaches it.
    fn undocumented(command: &clap::Command, path: &str, found: &mut Vec<String>) {
        for argument in command.get_arguments() {
            let id = argument.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if argument.get_help().is_none() {
                found.push(format!("{path} --{id}"));
            }
            for value in argument.get_possible_values() {
                if value.get_help().is_none() && !value.is_hide_set() {
                    found.push(format!("{path} --{id} {}", value.get_name()));
                }
            }
        }
        for subcommand in command.get_subcommands() {
            if subcommand.get_name() == "help" {
                continue;
            }
            if subcommand.get_about().is_none() {
                found.push(format!("{path} {}", subcommand.get_name()));
            }
            let path = format!("{path} {}", subcommand.get_name());
            undocumented(subcommand, &path, found);
        }
    }

    #[test]
    fn every_command_flag_and_value_says_what_it_is_for() {
        let mut command = Arguments::command();
        command.build();
        let mut found = Vec::new();
        undocumented(&command, "divmid", &mut found);
        // The shells are clap_complete's own names.
        found.retain(|path| !path.starts_with("divmid completions --shell "));
        assert!(found.is_empty(), "no help text: {found:#?}");
    }

    #[test]
    fn the_connection_flags_are_taken_after_the_subcommand_too() {
        let arguments = Arguments::try_parse_from([
            "divmid",
            "wallet",
            "balances",
            "--server",
            "https://exchange.example:443",
            "--token",
            "a-token",
            "--ca-file",
            "ca.pem",
            "--json",
        ])
        .expect("parsed");
        assert_eq!(arguments.token.as_deref(), Some("a-token"));
        assert_eq!(
            arguments.server.as_deref(),
            Some("https://exchange.example:443")
        );
        assert_eq!(
            arguments.ca_file.as_deref(),
            Some(std::path::Path::new("ca.pem"))
        );
        assert!(arguments.json);
    }
}
