//! The sequencer: the one writer. It takes commands in order, applies them to the ledger
//! and the books, and emits events stamped with consecutive sequence numbers.
//!
//! It does no I/O, reads no clock (time comes in with each command) and uses no
//! randomness, so the same commands in the same order always give the same events. A
//! rejected command changes nothing and emits nothing: every check runs before the first
//! change. After every command it asserts that each asset is conserved.
//!
//! The ledger commands are here; the order commands are in `matching.rs`.

use super::book::{OrderBook, RestingOrder};
use super::level_book::LevelBook;
use crate::command::Command;
use crate::config::{EngineConfig, MarketGrid, MarketSpec};
use crate::error::Reject;
use crate::event::{Event, EventKind, OrderView, Reply, Supply};

use super::client_orders::ClientOrders;
use super::idempotency::IdempotencyRecords;
use crate::ledger::{
    sale_cost, IssuePriceChange, Ledger, PrepaidPool, REVOKED_TOKEN_HASH, TREASURY,
};
use crate::types::{
    AccountId, Amount, Asset, ClientKey, FundingSourceKind, MarketId, OrderId, OrderStatus, Role,
    Side,
};

/// The ledger, the books of every market, and the counters that number what they emit.
#[derive(Debug)]
pub struct Sequencer<B: OrderBook = LevelBook> {
    /// The configuration commands are decided under: changed only by a `Configure`
    /// command, so a replay decides each command as it was first decided.
    pub(super) config: EngineConfig,
    /// Whether the journal or the snapshot the state came from records `config`; a server
    /// journals a `Configure` before serving when not.
    pub(super) engine_recorded: bool,
    pub(super) ledger: Ledger,
    /// Holders' automatic top-ups and spend limits.
    pub(super) prepaid: PrepaidPool,
    pub(super) idempotency: IdempotencyRecords,
    /// Each market's grid, indexed by [`MarketId`], copied out of the configuration for
    /// the matching path.
    pub(super) grids: Vec<MarketGrid>,
    /// One book per configured market, indexed by [`MarketId`].
    pub(super) books: Vec<B>,
    /// Open orders per account over all markets, indexed by account id: the limit on
    /// open orders reads it. Each book lists the orders themselves.
    pub(super) open_orders: Vec<u32>,
    /// Client order ids kept: live orders', and ended orders' within the retention window.
    pub(super) client_orders: ClientOrders,
    /// The clock: the largest timestamp of the commands that changed state. Retention is
    /// judged by it, so a replay of the journal expires exactly what was expired live.
    pub(super) clock_ms: u64,
    /// The sequence number the next event gets.
    pub(super) next_seq: u64,
    pub(super) next_order_id: u64,
    pub(super) next_trade_id: u64,
    /// The time the command being applied carried.
    pub(super) timestamp_ms: u64,
}

impl<B: OrderBook> Sequencer<B> {
    /// A sequencer at genesis. The configuration must be valid: every notional exact and
    /// within 64 bits, every limit in range (`EngineConfig::validate`).
    pub fn new(config: EngineConfig) -> Sequencer<B> {
        assert_eq!(
            config.validate(),
            Ok(()),
            "the engine's configuration is valid"
        );
        let books = config.markets.iter().map(|_| B::default()).collect();
        let grids = config.markets.iter().map(MarketSpec::grid).collect();
        Sequencer {
            config,
            engine_recorded: false,
            grids,
            ledger: Ledger::new(),
            prepaid: PrepaidPool::default(),
            idempotency: IdempotencyRecords::default(),
            books,
            open_orders: Vec::new(),
            client_orders: ClientOrders::default(),
            clock_ms: 0,
            next_seq: 1,
            next_order_id: 1,
            next_trade_id: 1,
            timestamp_ms: 0,
        }
    }

    /// Applies one command, appending its events to `events`. A rejected command has
    /// appended nothing and changed nothing. The command stays the caller's: the pipeline
    /// journals it after.
    pub fn apply(
        &mut self,
        timestamp_ms: u64,
        command: &Command,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        self.timestamp_ms = timestamp_ms;
        let events_before = events.len();
        let result = self.dispatch(command, events);
        if result.is_err() {
            assert_eq!(
                events.len(),
                events_before,
                "a rejected command emitted events"
            );
        }
        if events.len() > events_before {
            // Only a command that changed state is journaled, so only such a command moves
            // the clock and expires what retention no longer keeps.
            self.clock_ms = self.now_ms();
            self.expire();
        }
        self.ledger.assert_conserved();
        result
    }

    /// Reads ahead, all at once, what applying `commands` in turn will read first of the
    /// kept client order ids and idempotency keys, and of as many of those next due to
    /// expire (each one kept is expired once): under a high rate they are mostly cold, and
    /// each cache miss would otherwise wait for the one before. Changes nothing; a batch
    /// of commands is applied faster after it.
    pub fn read_ahead<'a>(&self, commands: impl Iterator<Item = &'a Command> + Clone) {
        let ids = commands.clone().filter_map(|command| match command {
            Command::PlaceOrder(order) => Some((order.account, order.client_order_id.as_deref()?)),
            _ => None,
        });
        let keys = commands.filter_map(Self::key_of);
        let read = self.client_orders.read_ahead(ids.clone(), ids.count())
            ^ self.idempotency.read_ahead(keys.clone(), keys.count());
        std::hint::black_box(read);
    }

    /// The time a command is judged at: the clock, or the command's own time if later.
    pub(super) fn now_ms(&self) -> u64 {
        self.clock_ms.max(self.timestamp_ms)
    }

    /// Forgets idempotency keys and ended orders' client order ids that retention no
    /// longer keeps: each is popped once from a queue in expiry order.
    fn expire(&mut self) {
        let now_ms = self.clock_ms;
        self.idempotency.expire(now_ms);
        self.client_orders.expire(now_ms);
    }

    fn dispatch(&mut self, command: &Command, events: &mut Vec<Event>) -> Result<Reply, Reject> {
        match *command {
            Command::PlaceOrder(ref order) => self.place_order(order, events),
            Command::CancelOrder {
                account,
                ref target,
            } => self.cancel_order(account, target, events),
            Command::CancelAllOrders { account, market } => {
                self.cancel_all_orders(account, market, events)
            }
            Command::AmendOrder {
                account,
                order_id,
                quantity,
                price,
            } => self.amend_order(account, order_id, quantity, price, events),
            Command::CreateAccount {
                ref name,
                role,
                tier,
                token_hash,
            } => self.create_account(name, role, tier, token_hash, events),
            Command::SetToken {
                account,
                token_hash,
            } => self.set_token(account, token_hash, events),
            Command::SetIssuePrice { tier, price } => {
                if price.0 == 0 {
                    return Err(Reject::invalid("price", "must be positive"));
                }
                self.ledger.set_issue_price(IssuePriceChange {
                    seq: self.next_seq,
                    time_ms: self.timestamp_ms,
                    tier,
                    price,
                });
                self.emit(events, || EventKind::IssuePriceSet { tier, price });
                Ok(Reply::IssuePriceSet)
            }
            Command::SetAutoTopUp { account, settings } => {
                self.set_auto_top_up(account, settings, events)
            }
            Command::SetSpendLimit {
                account,
                service,
                daily_max,
            } => self.set_spend_limit(account, service, daily_max, events),
            Command::Configure(ref next) => self.configure(next, events),
            _ => self.apply_keyed(command, events),
        }
    }

    /// Continues under `next`, a configuration [`EngineConfig::check_change`] allows.
    fn configure(&mut self, next: &EngineConfig, events: &mut Vec<Event>) -> Result<Reply, Reject> {
        if next.validate().is_err() {
            return Err(Reject::invalid("engine", "is not a valid configuration"));
        }
        if self.config.check_change(next).is_err() {
            return Err(Reject::invalid(
                "engine.markets",
                "a market's name, assets, tick and lot cannot change",
            ));
        }
        self.grids = next.markets.iter().map(MarketSpec::grid).collect();
        self.config = next.clone();
        self.engine_recorded = true;
        self.emit(events, || EventKind::EngineConfigured);
        Ok(Reply::Configured)
    }

    /// Whether the state's engine configuration is recorded where a replay finds it (see
    /// [`Command::Configure`]).
    pub fn engine_recorded(&self) -> bool {
        self.engine_recorded
    }

    /// The reply a keyed command already got under its key, if the key was applied (within
    /// retention) to the same command; `AlreadyExists` if to another; `None` for a new key
    /// or a command that takes none. Changes nothing: a handler asks before it does
    /// anything outside the exchange (a card authorization) that a retry must not repeat.
    pub fn applied_reply(&self, command: &Command) -> Result<Option<Reply>, Reject> {
        let Some((scope, key)) = Self::key_of(command) else {
            return Ok(None);
        };
        self.idempotency.replay(scope, key, command, self.clock_ms)
    }

    /// The scope and idempotency key of a keyed command.
    fn key_of(command: &Command) -> Option<(AccountId, &str)> {
        Some(match command {
            Command::Mint {
                idempotency_key, ..
            } => (TREASURY, &**idempotency_key),
            Command::BuyDivmids {
                account,
                idempotency_key,
                ..
            }
            | Command::Deposit {
                account,
                idempotency_key,
                ..
            }
            | Command::Withdraw {
                account,
                idempotency_key,
                ..
            } => (*account, &**idempotency_key),
            Command::Charge {
                service,
                idempotency_key,
                ..
            } => (*service, &**idempotency_key),
            _ => return None,
        })
    }

    /// Applies a money-moving ledger command under its idempotency key: a repeat with the
    /// same parameters replies as the first did and changes nothing.
    fn apply_keyed(&mut self, command: &Command, events: &mut Vec<Event>) -> Result<Reply, Reject> {
        let (scope, key) = Self::key_of(command).expect("only keyed commands reach apply_keyed");
        self.check_text(
            "idempotency_key",
            key,
            self.config.limits.key_length_max,
            true,
        )?;
        if let Some(reply) = self
            .idempotency
            .replay(scope, key, command, self.now_ms())?
        {
            return Ok(reply);
        }
        let keys_max = self.config.limits.idempotency_keys_per_account_max;
        self.idempotency.check_room(scope, keys_max)?;
        let reply = match *command {
            Command::Mint {
                amount,
                ref memo,
                ref idempotency_key,
            } => self.mint(amount, memo, idempotency_key, events)?,
            Command::BuyDivmids {
                account,
                quantity,
                max_price,
                ref idempotency_key,
            } => self.buy_divmids(account, quantity, max_price, idempotency_key, events)?,
            Command::Deposit {
                account,
                source,
                amount,
                ref source_reference,
                ref idempotency_key,
            } => self.deposit(
                account,
                (source, source_reference),
                amount,
                idempotency_key,
                events,
            )?,
            Command::Withdraw {
                account,
                amount,
                ref destination,
                ref idempotency_key,
            } => self.withdraw(account, amount, destination, idempotency_key, events)?,
            Command::Charge {
                service,
                account,
                amount,
                ref memo,
                ref idempotency_key,
            } => self.charge(service, account, amount, memo, idempotency_key, events)?,
            _ => unreachable!("only keyed commands reach apply_keyed"),
        };
        let limits = &self.config.limits;
        let retention_ms = match command {
            Command::Charge { .. } => limits.charge_key_retention_ms,
            _ => limits.idempotency_retention_ms,
        };
        let now_ms = self.now_ms();
        self.idempotency
            .record(scope, key, command, &reply, now_ms, retention_ms);
        Ok(reply)
    }

    /// Dollars a funding source accepted, credited to a trader.
    fn deposit(
        &mut self,
        account: AccountId,
        (source, source_reference): (FundingSourceKind, &str),
        amount: Amount,
        idempotency_key: &str,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        self.require_positive("amount", amount)?;
        self.ledger.require(account, Role::Trader, "account_id")?;
        let limit = self.config.limits.memo_length_max;
        self.check_text("source_reference", source_reference, limit, true)?;
        let balance_after = self.ledger.deposit(account, amount)?;
        self.emit(events, || EventKind::Deposited {
            account,
            amount,
            source,
            source_reference: source_reference.into(),
            idempotency_key: idempotency_key.into(),
            balance_after,
        });
        Ok(Reply::Funds(balance_after))
    }

    /// Dollars out of a trader's available funds.
    fn withdraw(
        &mut self,
        account: AccountId,
        amount: Amount,
        destination: &str,
        idempotency_key: &str,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        self.require_positive("amount", amount)?;
        self.ledger.require(account, Role::Trader, "account_id")?;
        let limit = self.config.limits.memo_length_max;
        self.check_text("destination", destination, limit, true)?;
        let balance_after = self.ledger.withdraw(account, amount)?;
        self.emit(events, || EventKind::Withdrawn {
            account,
            amount,
            destination: destination.into(),
            idempotency_key: idempotency_key.into(),
            balance_after,
        });
        Ok(Reply::Funds(balance_after))
    }

    fn create_account(
        &mut self,
        name: &str,
        role: Role,
        tier: crate::types::Tier,
        token_hash: [u8; 32],
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        self.check_text("name", name, self.config.limits.name_length_max, true)?;
        if role == Role::Issuer {
            return Err(Reject::invalid(
                "role",
                "must be ROLE_TRADER or ROLE_SERVICE",
            ));
        }
        if self.ledger.account_count() >= self.config.limits.accounts_max {
            return Err(Reject::LimitExceeded {
                field: "accounts_max",
                limit: self.config.limits.accounts_max,
            });
        }
        let account = self.ledger.create_account(name, role, tier, token_hash);
        self.emit(events, || EventKind::AccountCreated {
            account,
            name: name.into(),
            role,
            tier,
            token_hash,
        });
        Ok(Reply::AccountCreated { account })
    }

    /// Replaces (or, without a hash, revokes) a trader's or service's token.
    fn set_token(
        &mut self,
        account: AccountId,
        token_hash: Option<[u8; 32]>,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        let role = match self.ledger.account(account) {
            Some(found) if found.role != Role::Issuer => found.role,
            _ => {
                return Err(Reject::NotFound {
                    field: "account_id",
                })
            }
        };
        let revoked = token_hash.is_none();
        self.ledger
            .set_token_hash(account, token_hash.unwrap_or(REVOKED_TOKEN_HASH));
        self.emit(events, || EventKind::TokenChanged { account, revoked });
        Ok(Reply::TokenChanged { account, role })
    }

    fn mint(
        &mut self,
        amount: Amount,
        memo: &str,
        idempotency_key: &str,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        self.require_positive("amount", amount)?;
        self.check_text("memo", memo, self.config.limits.memo_length_max, false)?;
        let treasury_after = self.ledger.mint(amount)?;
        self.emit(events, || EventKind::Minted {
            amount,
            memo: memo.into(),
            idempotency_key: idempotency_key.into(),
            treasury_after,
        });
        Ok(Reply::Minted(self.ledger.supply()))
    }

    fn buy_divmids(
        &mut self,
        account: AccountId,
        quantity: Amount,
        max_price: crate::types::IssuePrice,
        idempotency_key: &str,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        self.require_positive("quantity", quantity)?;
        if max_price.0 == 0 {
            return Err(Reject::invalid("max_price", "must be positive"));
        }
        let tier = self
            .ledger
            .require(account, Role::Trader, "account_id")?
            .tier;
        let price = self
            .ledger
            .issue_price(tier)
            .ok_or(Reject::FailedPrecondition {
                field: "tier",
                reason: "the issuer has not set a price for this tier",
            })?;
        if price > max_price {
            return Err(Reject::FailedPrecondition {
                field: "max_price",
                reason: "the issue price is above max_price",
            });
        }
        let cost = sale_cost(quantity, price).ok_or(Reject::invalid("quantity", "too large"))?;
        let treasury = self.ledger.balance(TREASURY, Asset::Dvm).available;
        if treasury < quantity {
            return Err(Reject::FailedPrecondition {
                field: "quantity",
                reason: "the treasury holds fewer divmids than asked",
            });
        }
        // The buyer's dollars are checked by the first transfer; the treasury's divmids
        // were checked above, so the second cannot fail.
        self.ledger
            .transfer(account, TREASURY, Asset::Usd, cost, "quantity")?;
        self.ledger
            .transfer(TREASURY, account, Asset::Dvm, quantity, "quantity")
            .expect("the treasury's divmids were checked");
        let account_after = self.ledger.balances(account);
        let treasury_after = self.ledger.balances(TREASURY);
        self.emit(events, || EventKind::DivmidsBought {
            account,
            quantity,
            price,
            cost,
            idempotency_key: idempotency_key.into(),
            account_after,
            treasury_after,
        });
        Ok(Reply::DivmidsBought {
            cost,
            balances: account_after,
        })
    }

    /// Appends an event with the next sequence number. The event is built by `kind`
    /// once there is room for it (`extend` reserves before it asks), so it is written
    /// straight into `events` instead of being built aside and copied: a copy of 168 bytes
    /// per event, a `memcpy` call where the build unwinds on panic.
    pub(super) fn emit(&mut self, events: &mut Vec<Event>, kind: impl FnOnce() -> EventKind) {
        let (seq, timestamp_ms) = (self.next_seq, self.timestamp_ms);
        events.extend(std::iter::once_with(|| Event {
            seq,
            timestamp_ms,
            kind: kind(),
        }));
        self.next_seq += 1;
    }

    pub(super) fn require_positive(
        &self,
        field: &'static str,
        amount: Amount,
    ) -> Result<(), Reject> {
        if amount.is_zero() {
            return Err(Reject::invalid(field, "must be positive"));
        }
        Ok(())
    }

    pub(super) fn check_text(
        &self,
        field: &'static str,
        text: &str,
        length_max: usize,
        required: bool,
    ) -> Result<(), Reject> {
        crate::error::check_text(field, text, length_max, required)
    }

    /// The market's specification.
    pub fn market(&self, market: MarketId) -> Option<&MarketSpec> {
        self.config.markets.get(usize::from(market.0))
    }

    /// The market's book.
    pub fn book(&self, market: MarketId) -> Option<&B> {
        self.books.get(usize::from(market.0))
    }

    /// The configuration it applies commands under.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Holders' automatic top-ups and spend limits.
    pub fn prepaid(&self) -> &PrepaidPool {
        &self.prepaid
    }

    /// The divmid supply.
    pub fn supply(&self) -> Supply {
        self.ledger.supply()
    }

    /// Idempotency keys held: those within the retention window, bounded by it.
    pub fn idempotency_keys_held(&self) -> usize {
        self.idempotency.len()
    }

    /// Client order ids held: those of live orders, and of orders ended within the
    /// retention window.
    pub fn client_order_ids_held(&self) -> usize {
        self.client_orders.len()
    }

    /// The sequence number of the last event, 0 before any.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The account's order with this client order id while the id is kept: open, or ended
    /// within the retention window (then as it ended).
    pub fn order_by_client_id(
        &self,
        account: AccountId,
        client_order_id: &str,
    ) -> Option<OrderView> {
        let entry = self
            .client_orders
            .get(account, client_order_id)
            .filter(|entry| entry.kept_at(self.clock_ms))?;
        match entry.ended_view(account, client_order_id) {
            None => self.open_order_in(entry.placed.market, entry.order_id),
            ended => ended,
        }
    }

    /// An open order's current state.
    pub fn open_order(&self, order_id: OrderId) -> Option<OrderView> {
        self.books.iter().enumerate().find_map(|(index, book)| {
            let order = book.get(order_id)?;
            Some(self.resting_view(MarketId(index as u16), order))
        })
    }

    /// The account's open orders, by order id.
    pub fn open_orders_of(&self, account: AccountId) -> Vec<OrderView> {
        self.live_orders_of(account, None)
            .into_iter()
            .filter_map(|(id, market)| {
                let order = self.books[usize::from(market.0)].get(id)?;
                Some(self.resting_view(market, order))
            })
            .collect()
    }

    /// How many open orders the account has.
    pub(super) fn open_count(&self, account: AccountId) -> u32 {
        self.open_orders
            .get(account.0 as usize)
            .copied()
            .unwrap_or(0)
    }

    /// The account's orders resting on a book (on `market` only, when given), by id.
    pub(super) fn live_orders_of(
        &self,
        account: AccountId,
        market: Option<MarketId>,
    ) -> Vec<(OrderId, MarketId)> {
        let mut live: Vec<(OrderId, MarketId)> = self
            .books
            .iter()
            .enumerate()
            .map(|(index, book)| (MarketId(index as u16), book))
            .filter(|(book_market, _)| market.is_none_or(|m| m == *book_market))
            .flat_map(|(book_market, book)| {
                book.orders_of(account)
                    .into_iter()
                    .map(move |id| (id, book_market))
            })
            .collect();
        live.sort();
        live
    }

    /// Counts a new open order of the account.
    pub(super) fn track(&mut self, account: AccountId) {
        let index = account.0 as usize;
        if self.open_orders.len() <= index {
            self.open_orders.resize(index + 1, 0);
        }
        self.open_orders[index] += 1;
    }

    /// Counts one open order of the account less.
    pub(super) fn untrack(&mut self, account: AccountId) {
        let open = &mut self.open_orders[account.0 as usize];
        *open = open.checked_sub(1).expect("an untracked order was open");
    }

    /// The market of the account's open order, if it has one with that id.
    pub(super) fn owned_order(
        &self,
        account: AccountId,
        order_id: OrderId,
        field: &'static str,
    ) -> Result<MarketId, Reject> {
        self.books
            .iter()
            .position(|book| {
                book.get(order_id)
                    .is_some_and(|order| order.account == account)
            })
            .map(|index| MarketId(index as u16))
            .ok_or(Reject::NotFound { field })
    }

    /// The client order id of a live order, if it was placed with one.
    pub(super) fn client_order_id_of(&self, order_id: OrderId, has_one: bool) -> Option<ClientKey> {
        if !has_one {
            return None;
        }
        let id = self
            .client_orders
            .live_id(order_id)
            .expect("a live order's client order id is kept");
        Some(id.clone())
    }

    /// The state of a resting order as the caller sees it.
    pub(super) fn resting_view(&self, market: MarketId, order: &RestingOrder) -> OrderView {
        OrderView {
            order_id: order.id,
            account: order.account,
            client_order_id: self.client_order_id_of(order.id, order.has_client_order_id),
            terms: order.terms(market),
            filled: order.filled,
            status: if order.filled.is_zero() {
                OrderStatus::Open
            } else {
                OrderStatus::PartiallyFilled
            },
            created_seq: order.created_seq,
        }
    }

    /// Checks every invariant the long way: conservation summed over all accounts, no
    /// crossed book, every open order on its book and holding exactly what it should.
    /// O(accounts + orders): tests run it after every command, and recovery before
    /// serving.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.ledger.check_conservation()?;
        let accounts = self.ledger.account_count() as usize + 1;
        let mut held = vec![[0u64; 2]; accounts];
        let mut resting_per_account: Vec<Vec<(OrderId, MarketId)>> = vec![Vec::new(); accounts];
        let mut with_client_order_id = 0;
        for (index, book) in self.books.iter().enumerate() {
            self.check_uncrossed(index)?;
            let grid = &self.grids[index];
            for side in [Side::Buy, Side::Sell] {
                book.visit_in_priority(side, &mut |order| {
                    let (asset, amount) = resting_hold(grid, order);
                    held[order.account.0 as usize][asset.index()] += amount.0;
                    resting_per_account[order.account.0 as usize]
                        .push((order.id, MarketId(index as u16)));
                    with_client_order_id += usize::from(order.has_client_order_id);
                    true
                });
            }
        }
        self.check_holds(&held)?;
        if with_client_order_id != self.client_orders.live_len() {
            return Err(format!(
                "{with_client_order_id} resting orders have a client order id but {} are kept",
                self.client_orders.live_len()
            ));
        }
        self.check_open_orders(resting_per_account)
    }

    /// The market's best bid is below its best ask.
    fn check_uncrossed(&self, market: usize) -> Result<(), String> {
        let book = &self.books[market];
        if let (Some(bid), Some(ask)) = (book.best_price(Side::Buy), book.best_price(Side::Sell)) {
            if bid >= ask {
                let name = &self.config.markets[market].name;
                return Err(format!("{name} is crossed: bid {} >= ask {}", bid.0, ask.0));
            }
        }
        Ok(())
    }

    /// Each account holds exactly what its resting orders need (`held`, by account and
    /// asset).
    fn check_holds(&self, held: &[[u64; 2]]) -> Result<(), String> {
        for account in self.ledger.accounts() {
            for asset in Asset::ALL {
                let expected = held[account.id.0 as usize][asset.index()];
                if account.balance(asset).held.0 != expected {
                    return Err(format!(
                        "account {} holds {} {} but its orders need {}",
                        account.id,
                        account.balance(asset).held,
                        asset.symbol(),
                        expected
                    ));
                }
            }
        }
        Ok(())
    }

    /// Each account's count and list of open orders agree with the books (`resting`, by
    /// account).
    fn check_open_orders(&self, mut resting: Vec<Vec<(OrderId, MarketId)>>) -> Result<(), String> {
        for (index, resting) in resting.iter_mut().enumerate() {
            let account = AccountId(index as u64);
            resting.sort();
            let tracked = self.open_count(account) as usize;
            let listed = self.live_orders_of(account, None);
            if tracked != resting.len() || listed != *resting {
                return Err(format!(
                    "account {account}: {} orders rest, {tracked} counted, {} listed{}",
                    resting.len(),
                    listed.len(),
                    if listed.len() == resting.len() {
                        " (not the same orders)"
                    } else {
                        ""
                    }
                ));
            }
        }
        Ok(())
    }
}

/// What a resting order holds: price times remaining quantity of the quote asset for a
/// bid, the remaining quantity of the base asset for an ask.
pub(super) fn resting_hold(spec: &MarketGrid, order: &RestingOrder) -> (Asset, Amount) {
    match order.side {
        Side::Buy => (spec.quote, spec.notional(order.price, order.remaining().0)),
        Side::Sell => (spec.base, spec.base_amount(order.remaining().0)),
    }
}
