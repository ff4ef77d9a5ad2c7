//! The sequencer's input language: one [`Command`] per state-changing request, already
//! authenticated, parsed into integers and checked field by field by the API.
//!
//! The caller's account travels in the command: the sequencer still checks that the
//! account exists and has the role the command needs, so a wrong command can never move
//! money even if an edge forgot a check.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::EngineConfig;
use crate::ledger::AutoTopUp;
use crate::types::{
    AccountId, Amount, FundingSourceKind, IssuePrice, MarketId, OrderId, OrderTerms, OrderType,
    Price, Quantity, Role, SelfTradePrevention, Side, Tier, TimeInForce,
};

/// A request to change state, applied by the sequencer in arrival order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// The issuer opens an account. The API generates the bearer token and passes only
    /// its hash, so no token is ever stored in clear.
    CreateAccount {
        /// Shown in listings; at most `name_length_max` characters.
        name: Box<str>,
        /// Trader or service (there is one issuer, created at genesis).
        role: Role,
        /// Decides the issue price the account buys at.
        tier: Tier,
        /// SHA-256 of the account's bearer token.
        token_hash: [u8; 32],
    },
    /// The issuer creates divmids in its treasury.
    Mint {
        /// Micro-DVM to create.
        amount: Amount,
        /// Why, for the record.
        memo: Box<str>,
        /// Makes a retried mint apply once.
        idempotency_key: Box<str>,
    },
    /// The issuer sets the USD price per DVM of its sales to one tier.
    SetIssuePrice {
        /// The tier the price applies to.
        tier: Tier,
        /// The new price.
        price: IssuePrice,
    },
    /// A trader buys divmids from the treasury at its tier's price, paying available USD.
    BuyDivmids {
        /// The buyer.
        account: AccountId,
        /// Micro-DVM to buy.
        quantity: Amount,
        /// The most the buyer accepts to pay per DVM; a higher issue price refuses the sale.
        max_price: IssuePrice,
        /// Makes a retried purchase apply once.
        idempotency_key: Box<str>,
    },
    /// Dollars a funding source has already accepted are credited to a trader.
    Deposit {
        /// The account credited.
        account: AccountId,
        /// Which kind of funding source accepted them.
        source: FundingSourceKind,
        /// Micro-USD deposited.
        amount: Amount,
        /// The card number, e-mail address or account number the money came from.
        source_reference: Box<str>,
        /// Makes a retried deposit apply once.
        idempotency_key: Box<str>,
    },
    /// A trader takes dollars out of the system.
    Withdraw {
        /// The account debited.
        account: AccountId,
        /// Micro-USD withdrawn.
        amount: Amount,
        /// Where the dollars go.
        destination: Box<str>,
        /// Makes a retried withdrawal apply once.
        idempotency_key: Box<str>,
    },
    /// A service charges an account for usage: divmids move to the issuer's revenue.
    Charge {
        /// The service charging.
        service: AccountId,
        /// The account charged.
        account: AccountId,
        /// Micro-DVM charged.
        amount: Amount,
        /// What for, for the record.
        memo: Box<str>,
        /// Makes a retried charge apply once (scoped to the service).
        idempotency_key: Box<str>,
    },
    /// A holder sets its automatic top-up.
    SetAutoTopUp {
        /// The holder (a trader).
        account: AccountId,
        /// The new settings.
        settings: AutoTopUp,
    },
    /// A holder limits what one service may charge it per UTC day, or lifts the limit.
    SetSpendLimit {
        /// The holder (a trader).
        account: AccountId,
        /// The service limited.
        service: AccountId,
        /// Micro-DVM per UTC day; `None` removes the limit.
        daily_max: Option<Amount>,
    },
    /// A trader places an order.
    PlaceOrder(NewOrder),
    /// A trader cancels one of its orders.
    CancelOrder {
        /// The owner.
        account: AccountId,
        /// Which order.
        target: OrderRef,
    },
    /// A trader cancels all its open orders, optionally on one market only.
    CancelAllOrders {
        /// The owner.
        account: AccountId,
        /// Only this market's orders, when set.
        market: Option<MarketId>,
    },
    /// A trader changes the quantity and/or price of an open order.
    AmendOrder {
        /// The owner.
        account: AccountId,
        /// Which order.
        order_id: OrderId,
        /// The new total quantity, filled part included.
        quantity: Option<Quantity>,
        /// The new limit price.
        price: Option<Price>,
    },
    /// The issuer gives an account a new bearer token (its hash), or revokes its token
    /// (`token_hash: None`); the old token stops working at once.
    SetToken {
        /// The trader or service account.
        account: AccountId,
        /// SHA-256 of the new token; `None` revokes.
        token_hash: Option<[u8; 32]>,
    },
    /// The server starts under an engine configuration other than the one the state was
    /// kept under (or one not recorded yet): commands after this one are decided under
    /// it, so a replay decides each command under the limits it was first decided under.
    /// Only a configuration [`EngineConfig::check_change`] allows. Its stored form is
    /// `EngineConfig`'s fields in order: a new setting needs a new variant.
    Configure(Box<EngineConfig>),
}

impl Command {
    /// Every command's name, as metrics and logs write it, in the order of [`Command::kind`].
    pub const KINDS: [&'static str; 15] = [
        "create_account",
        "mint",
        "set_issue_price",
        "buy_divmids",
        "deposit",
        "withdraw",
        "charge",
        "set_auto_top_up",
        "set_spend_limit",
        "place_order",
        "cancel_order",
        "cancel_all_orders",
        "amend_order",
        "set_token",
        "configure",
    ];

    /// The command's index in [`Command::KINDS`].
    pub fn kind(&self) -> usize {
        match self {
            Command::CreateAccount { .. } => 0,
            Command::Mint { .. } => 1,
            Command::SetIssuePrice { .. } => 2,
            Command::BuyDivmids { .. } => 3,
            Command::Deposit { .. } => 4,
            Command::Withdraw { .. } => 5,
            Command::Charge { .. } => 6,
            Command::SetAutoTopUp { .. } => 7,
            Command::SetSpendLimit { .. } => 8,
            Command::PlaceOrder(_) => 9,
            Command::CancelOrder { .. } => 10,
            Command::CancelAllOrders { .. } => 11,
            Command::AmendOrder { .. } => 12,
            Command::SetToken { .. } => 13,
            Command::Configure(_) => 14,
        }
    }
}

// The sequencer reads a stream of commands: each fits in one 64-byte cache line (text is
// `Box<str>`, 16 bytes, rather than `String`, 24).
const _: () = assert!(std::mem::size_of::<Command>() <= 64);

/// An order as placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    /// The owner.
    pub account: AccountId,
    /// What it asks for.
    pub terms: OrderTerms,
    /// The caller's own id, unique among its live orders; makes a retry place nothing.
    pub client_order_id: Option<Box<str>>,
}

/// How a [`NewOrder`] is stored: its fields in the order the journal and snapshots have
/// always held them (the client order id between two of the terms), so that data
/// directories already written stay readable (`store::journal`'s tests check the bytes).
#[derive(Serialize, Deserialize)]
#[serde(rename = "NewOrder")]
struct NewOrderLayout<Text> {
    account: AccountId,
    market: MarketId,
    side: Side,
    order_type: OrderType,
    price: Option<Price>,
    quantity: Quantity,
    time_in_force: TimeInForce,
    post_only: bool,
    client_order_id: Option<Text>,
    self_trade_prevention: SelfTradePrevention,
}

/// A [`NewOrder`] borrowed in parts, where its owner and client order id are kept apart
/// from its terms: it encodes to the same bytes as the order.
struct NewOrderParts<'a> {
    /// The owner.
    pub account: AccountId,
    /// What it asks for.
    pub terms: &'a OrderTerms,
    /// The caller's own id.
    pub client_order_id: Option<&'a str>,
}

impl Serialize for NewOrder {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        NewOrderParts {
            account: self.account,
            terms: &self.terms,
            client_order_id: self.client_order_id.as_deref(),
        }
        .serialize(serializer)
    }
}

impl Serialize for NewOrderParts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let OrderTerms {
            market,
            side,
            order_type,
            price,
            quantity,
            time_in_force,
            post_only,
            self_trade_prevention,
        } = *self.terms;
        NewOrderLayout {
            account: self.account,
            market,
            side,
            order_type,
            price,
            quantity,
            time_in_force,
            post_only,
            client_order_id: self.client_order_id,
            self_trade_prevention,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for NewOrder {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let NewOrderLayout {
            account,
            market,
            side,
            order_type,
            price,
            quantity,
            time_in_force,
            post_only,
            client_order_id,
            self_trade_prevention,
        } = NewOrderLayout::<Box<str>>::deserialize(deserializer)?;
        let terms = OrderTerms {
            market,
            side,
            order_type,
            price,
            quantity,
            time_in_force,
            post_only,
            self_trade_prevention,
        };
        Ok(NewOrder {
            account,
            terms,
            client_order_id,
        })
    }
}

/// How a cancel names its order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderRef {
    /// By the exchange's order id.
    Id(OrderId),
    /// By the caller's client order id.
    Client(Box<str>),
}
