//! Scenario tests of the sequencer, each run against both books: exact balances after
//! every fill, every order type, time in force and self-trade prevention mode.
//!
//! DVM-USD figures used throughout: a price of 5,000 ticks is 0.5 USD per DVM, 100 lots
//! are 1 DVM, and a notional in micro-USD is ticks times lots.

use super::{LevelBook, OrderBook, ReferenceBook, Sequencer};
use crate::command::{Command, NewOrder, OrderRef};
use crate::config::EngineConfig;
use crate::error::Reject;
use crate::event::{DoneReason, Event, EventKind, OrderView, Reply};
use crate::types::{
    AccountId, Amount, Asset, FundingSourceKind, IssuePrice, MarketId, OrderId, OrderStatus,
    OrderTerms, OrderType, Price, Quantity, Role, SelfTradePrevention, Side, Tier, TimeInForce,
};

const USD: u64 = 1_000_000;
const DVM: u64 = 1_000_000;
const MARKET: MarketId = MarketId(0);

struct Harness<B: OrderBook> {
    sequencer: Sequencer<B>,
    /// The events of the last command.
    events: Vec<Event>,
    keys: u64,
}

/// `(usd available, usd held, dvm available, dvm held)` in micro-units.
type Holdings = (u64, u64, u64, u64);

/// Every account's balances, both books' levels and the last sequence number.
type Snapshot = (
    Vec<crate::types::Balances>,
    Vec<(u64, u64)>,
    Vec<(u64, u64)>,
    u64,
);

impl<B: OrderBook> Harness<B> {
    fn new() -> Self {
        Self::with_config(EngineConfig::default())
    }

    fn with_config(config: EngineConfig) -> Self {
        let mut harness = Harness {
            sequencer: Sequencer::new(config),
            events: Vec::new(),
            keys: 0,
        };
        harness.run(Command::Mint {
            amount: Amount(1_000_000 * DVM),
            memo: "genesis".into(),
            idempotency_key: "mint-genesis".into(),
        });
        harness.run(Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(IssuePrice::UNITS_PER_USD),
        });
        harness
    }

    fn try_run(&mut self, command: Command) -> Result<Reply, Reject> {
        self.events.clear();
        self.sequencer
            .apply(1_700_000_000_000, &command, &mut self.events)
    }

    fn run(&mut self, command: Command) -> Reply {
        self.try_run(command).expect("the command is accepted")
    }

    fn key(&mut self) -> String {
        self.keys += 1;
        format!("key-{}", self.keys)
    }

    fn account(&mut self, role: Role) -> AccountId {
        match self.run(Command::CreateAccount {
            name: "someone".into(),
            role,
            tier: Tier::Public,
            token_hash: [7; 32],
        }) {
            Reply::AccountCreated { account } => account,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// A trader holding exactly `usd` and `dvm` micro-units, available.
    fn trader(&mut self, usd: u64, dvm: u64) -> AccountId {
        let account = self.account(Role::Trader);
        // The issue price is 1 USD per DVM, so buying `dvm` costs `dvm` micro-USD.
        if usd + dvm > 0 {
            let idempotency_key = self.key();
            self.run(Command::Deposit {
                account,
                source: FundingSourceKind::Card,
                amount: Amount(usd + dvm),
                source_reference: "4111111111111111".into(),
                idempotency_key: idempotency_key.into(),
            });
        }
        if dvm > 0 {
            let idempotency_key = self.key();
            self.run(Command::BuyDivmids {
                account,
                quantity: Amount(dvm),
                max_price: IssuePrice(IssuePrice::UNITS_PER_USD),
                idempotency_key: idempotency_key.into(),
            });
        }
        assert_eq!(self.holdings(account), (usd, 0, dvm, 0));
        account
    }

    fn holdings(&self, account: AccountId) -> Holdings {
        let balances = self.sequencer.ledger().balances(account);
        let usd = balances[Asset::Usd.index()];
        let dvm = balances[Asset::Dvm.index()];
        (usd.available.0, usd.held.0, dvm.available.0, dvm.held.0)
    }

    fn try_place(&mut self, order: NewOrder) -> Result<OrderView, Reject> {
        let reply = self.try_run(Command::PlaceOrder(order))?;
        match reply.order(&self.events) {
            Some(view) => Ok(view),
            None => panic!("unexpected reply {reply:?}"),
        }
    }

    fn place(&mut self, order: NewOrder) -> OrderView {
        self.try_place(order).expect("the order is accepted")
    }

    fn limit(&mut self, account: AccountId, side: Side, price: u64, lots: u64) -> OrderView {
        self.place(limit(account, side, price, lots))
    }

    /// `(maker, taker, price, lots)` of the last command's fills, in order.
    fn fills(&self) -> Vec<(OrderId, OrderId, u64, u64)> {
        self.events
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::Fill(fill) => Some((
                    fill.maker_order,
                    fill.taker_order,
                    fill.price.0,
                    fill.quantity.0,
                )),
                _ => None,
            })
            .collect()
    }

    fn done(&self, order: OrderId) -> Option<(OrderStatus, DoneReason)> {
        self.events.iter().find_map(|event| match &event.kind {
            EventKind::OrderDone {
                order_id,
                status,
                reason,
                ..
            } if *order_id == order => Some((*status, *reason)),
            _ => None,
        })
    }

    fn levels(&self, side: Side) -> Vec<(u64, u64)> {
        self.sequencer
            .book(MARKET)
            .expect("the market exists")
            .levels(side, 100)
            .into_iter()
            .map(|level| (level.price.0, level.quantity.0))
            .collect()
    }

    fn cancel(&mut self, account: AccountId, order: OrderId) -> Result<Reply, Reject> {
        self.try_run(Command::CancelOrder {
            account,
            target: OrderRef::Id(order),
        })
    }

    fn amend(
        &mut self,
        account: AccountId,
        order_id: OrderId,
        quantity: Option<u64>,
        price: Option<u64>,
    ) -> Result<OrderView, Reject> {
        match self.try_run(Command::AmendOrder {
            account,
            order_id,
            quantity: quantity.map(Quantity),
            price: price.map(Price),
        })? {
            Reply::Order(view) => Ok(view),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Runs a command that must be rejected, and checks it changed nothing.
    fn rejected(&mut self, command: Command) -> Reject {
        let before = self.snapshot();
        let reject = self.try_run(command).expect_err("the command is rejected");
        assert!(self.events.is_empty(), "a rejected command emitted events");
        assert_eq!(self.snapshot(), before, "a rejected command changed state");
        reject
    }

    fn snapshot(&self) -> Snapshot {
        let balances = self
            .sequencer
            .ledger()
            .accounts()
            .iter()
            .map(|account| account.balances)
            .collect();
        (
            balances,
            self.levels(Side::Buy),
            self.levels(Side::Sell),
            self.sequencer.last_seq(),
        )
    }
}

fn limit(account: AccountId, side: Side, price: u64, lots: u64) -> NewOrder {
    NewOrder {
        account,
        terms: OrderTerms {
            market: MARKET,
            side,
            order_type: OrderType::Limit,
            price: Some(Price(price)),
            quantity: Quantity(lots),
            time_in_force: TimeInForce::GoodTillCanceled,
            post_only: false,
            self_trade_prevention: SelfTradePrevention::CancelTaker,
        },
        client_order_id: None,
    }
}

/// `order` with its terms changed by `change`.
fn with_terms(mut order: NewOrder, change: impl FnOnce(&mut OrderTerms)) -> NewOrder {
    change(&mut order.terms);
    order
}

fn market(account: AccountId, side: Side, lots: u64) -> NewOrder {
    with_terms(limit(account, side, 1, lots), |terms| {
        terms.order_type = OrderType::Market;
        terms.price = None;
        terms.time_in_force = TimeInForce::ImmediateOrCancel;
    })
}

/// Runs each scenario against both books.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod level_book {
            $(#[test] fn $name() { super::$name::<super::LevelBook>(); })*
        }
        mod reference_book {
            $(#[test] fn $name() { super::$name::<super::ReferenceBook>(); })*
        }
    };
}

mod amend_cancel;
mod ledger;
mod orders;
mod self_trade;
mod time_in_force;

#[test]
fn both_books_stay_identical_through_a_scenario() {
    let mut fast = Harness::<LevelBook>::new();
    let mut reference = Harness::<ReferenceBook>::new();
    for h in [&mut fast as &mut dyn Drive, &mut reference] {
        h.drive();
    }
    assert_eq!(fast.events, reference.events);
    assert_eq!(fast.levels(Side::Buy), reference.levels(Side::Buy));
    assert_eq!(fast.levels(Side::Sell), reference.levels(Side::Sell));
}

trait Drive {
    fn drive(&mut self);
}

impl<B: OrderBook> Drive for Harness<B> {
    fn drive(&mut self) {
        let seller = self.trader(0, 100 * DVM);
        let buyer = self.trader(1_000 * USD, 0);
        for (index, price) in [5_000, 5_100, 4_900, 5_000, 5_200].into_iter().enumerate() {
            self.limit(seller, Side::Sell, price, 100 + index as u64);
        }
        self.limit(buyer, Side::Buy, 5_100, 450);
    }
}
