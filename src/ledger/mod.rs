//! The issuer ledger: accounts, their balances per asset, and every movement between them.
//!
//! Pure and synchronous: no I/O, no clock. Every movement is double-entry: it takes an
//! amount from one place (an account's available or held funds, or the outside world for
//! deposits and mints) and puts the same amount in another, so for each asset the sum of
//! all balances always equals what entered the system: DVM minted, and USD deposited minus
//! withdrawn. Two accounts exist from genesis: the issuer's treasury, where minted divmids
//! wait to be sold and sale proceeds arrive, and its revenue account, where services'
//! charges go.
//!
//! What this module is not: it knows nothing of orders or markets. The sequencer decides
//! when to hold, release and settle; the ledger makes each of those movements exact and
//! refuses any that would take a balance below zero.

mod account;
mod prepaid;

pub use account::Account;
pub use prepaid::{
    month_start_ms, utc_day, utc_month, AutoTopUp, DailySpend, PrepaidPool, TopUpAccount,
};

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::error::Reject;
use crate::types::{AccountId, Amount, Asset, Balance, Balances, IssuePrice, Role, Tier};

/// The issuer's treasury: minted divmids, and the dollars its sales earn.
pub const TREASURY: AccountId = AccountId(1);
/// The issuer's revenue: divmids that services charged, i.e. spent divmids.
pub const REVENUE: AccountId = AccountId(2);

/// Changes of the issue prices kept: the issuer changes them rarely, and a thousand
/// changes answer in one message of about 40 KB.
pub const ISSUE_PRICE_CHANGES_KEPT: usize = 1_000;

/// One change of a tier's issue price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuePriceChange {
    /// The sequence number of its event.
    pub seq: u64,
    /// The time its command carried, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The tier.
    pub tier: Tier,
    /// The new price.
    pub price: IssuePrice,
}

/// The token hash of an account whose token was revoked: no token hashes to it (finding
/// one would mean inverting SHA-256), and authentication never registers it.
pub const REVOKED_TOKEN_HASH: [u8; 32] = [0; 32];

/// Every account's balances and the totals that entered the system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Accounts in id order: account `n` is at index `n - 1`.
    accounts: Vec<Account>,
    /// The price of the issuer's sales per tier, unset until the issuer sets it.
    issue_prices: [Option<IssuePrice>; 2],
    /// The last [`ISSUE_PRICE_CHANGES_KEPT`] changes of the issue prices, oldest first.
    issue_price_changes: VecDeque<IssuePriceChange>,
    /// Micro-DVM ever minted.
    dvm_minted: u64,
    /// Micro-USD ever deposited.
    usd_deposited: u64,
    /// Micro-USD ever withdrawn.
    usd_withdrawn: u64,
    /// Running sum over all accounts of each asset (available plus held), kept by every
    /// movement so that conservation can be asserted after every command in O(1).
    balance_sums: [u128; 2],
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new()
    }
}

impl Ledger {
    /// A ledger at genesis: the treasury and the revenue account, nothing minted.
    pub fn new() -> Ledger {
        let mut ledger = Ledger {
            accounts: Vec::new(),
            issue_prices: [None, None],
            issue_price_changes: VecDeque::new(),
            dvm_minted: 0,
            usd_deposited: 0,
            usd_withdrawn: 0,
            balance_sums: [0; 2],
        };
        let treasury = ledger.create_account("treasury", Role::Issuer, Tier::Public, [0; 32]);
        let revenue = ledger.create_account("revenue", Role::Issuer, Tier::Public, [0; 32]);
        assert_eq!((treasury, revenue), (TREASURY, REVENUE));
        ledger
    }

    /// How many accounts exist, the issuer's included.
    pub fn account_count(&self) -> u64 {
        self.accounts.len() as u64
    }

    /// The account, if it exists.
    pub fn account(&self, id: AccountId) -> Option<&Account> {
        let index = id.0.checked_sub(1)?;
        self.accounts.get(usize::try_from(index).ok()?)
    }

    /// Every account, in id order.
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    /// The account, which the caller knows to exist.
    fn account_mut(&mut self, id: AccountId) -> &mut Account {
        let index = (id.0 - 1) as usize;
        &mut self.accounts[index]
    }

    /// The account, if it exists and has `role`; otherwise the reject a caller should see.
    pub fn require(
        &self,
        id: AccountId,
        role: Role,
        field: &'static str,
    ) -> Result<&Account, Reject> {
        let account = self.account(id).ok_or(Reject::NotFound { field })?;
        if account.role != role {
            return Err(Reject::PermissionDenied {
                field,
                reason: "the account's role may not do this",
            });
        }
        Ok(account)
    }

    /// Opens an account with no funds and returns its id.
    pub fn create_account(
        &mut self,
        name: &str,
        role: Role,
        tier: Tier,
        token_hash: [u8; 32],
    ) -> AccountId {
        let id = AccountId(self.accounts.len() as u64 + 1);
        self.accounts.push(Account {
            id,
            name: name.into(),
            role,
            tier,
            token_hash,
            balances: Balances::default(),
        });
        id
    }

    /// Replaces an account's token hash. The account exists.
    pub fn set_token_hash(&mut self, id: AccountId, token_hash: [u8; 32]) {
        let index = (id.0 - 1) as usize;
        let account = self.accounts.get_mut(index).expect("the account exists");
        account.token_hash = token_hash;
    }

    /// One account's holding of one asset (zero for an unknown account).
    pub fn balance(&self, id: AccountId, asset: Asset) -> Balance {
        self.account(id)
            .map(|account| account.balance(asset))
            .unwrap_or_default()
    }

    /// One account's holdings (zero for an unknown account).
    pub fn balances(&self, id: AccountId) -> Balances {
        self.account(id)
            .map(|account| account.balances)
            .unwrap_or_default()
    }

    /// The sale price for a tier, once set.
    pub fn issue_price(&self, tier: Tier) -> Option<IssuePrice> {
        self.issue_prices[tier.index()]
    }

    /// Sets the sale price for a tier, and keeps the change (the oldest kept is forgotten
    /// beyond [`ISSUE_PRICE_CHANGES_KEPT`]).
    pub fn set_issue_price(&mut self, change: IssuePriceChange) {
        self.issue_prices[change.tier.index()] = Some(change.price);
        if self.issue_price_changes.len() == ISSUE_PRICE_CHANGES_KEPT {
            self.issue_price_changes.pop_front();
        }
        self.issue_price_changes.push_back(change);
    }

    /// The last changes of the issue prices, oldest first.
    pub fn issue_price_changes(&self) -> &VecDeque<IssuePriceChange> {
        &self.issue_price_changes
    }

    /// New divmids into the treasury, from outside. Refused if the supply would overflow.
    pub fn mint(&mut self, amount: Amount) -> Result<Balance, Reject> {
        self.dvm_minted = self
            .dvm_minted
            .checked_add(amount.0)
            .ok_or(Reject::LimitExceeded {
                field: "amount",
                limit: u64::MAX,
            })?;
        Ok(self.credit_available(TREASURY, Asset::Dvm, amount))
    }

    /// Dollars into an account, from outside. Refused if the dollars in the system would
    /// overflow.
    pub fn deposit(&mut self, id: AccountId, amount: Amount) -> Result<Balance, Reject> {
        let in_system = self.usd_deposited - self.usd_withdrawn;
        in_system
            .checked_add(amount.0)
            .ok_or(Reject::LimitExceeded {
                field: "amount",
                limit: u64::MAX,
            })?;
        self.usd_deposited += amount.0;
        Ok(self.credit_available(id, Asset::Usd, amount))
    }

    /// Dollars out of an account's available funds, to outside.
    pub fn withdraw(&mut self, id: AccountId, amount: Amount) -> Result<Balance, Reject> {
        let after = self.debit_available(id, Asset::Usd, amount, "amount")?;
        self.usd_withdrawn += amount.0;
        Ok(after)
    }

    /// Moves available funds from one account to another's available funds, and returns
    /// both balances afterwards.
    pub fn transfer(
        &mut self,
        from: AccountId,
        to: AccountId,
        asset: Asset,
        amount: Amount,
        field: &'static str,
    ) -> Result<(Balance, Balance), Reject> {
        let from_after = self.debit_available(from, asset, amount, field)?;
        let to_after = self.credit_available(to, asset, amount);
        Ok((from_after, to_after))
    }

    /// Reserves available funds (available to held) for an order.
    pub fn hold(
        &mut self,
        id: AccountId,
        asset: Asset,
        amount: Amount,
        field: &'static str,
    ) -> Result<Balance, Reject> {
        let balance = &mut self.account_mut(id).balances[asset.index()];
        let available = balance.available.0;
        let Some(rest) = available.checked_sub(amount.0) else {
            return Err(Reject::InsufficientFunds {
                field,
                asset,
                needed: amount.0,
                available,
            });
        };
        balance.available = Amount(rest);
        balance.held = Amount(balance.held.0 + amount.0);
        Ok(*balance)
    }

    /// Returns reserved funds to available. The caller releases only what it held, so a
    /// shortfall is a broken invariant.
    pub fn release(&mut self, id: AccountId, asset: Asset, amount: Amount) -> Balance {
        let balance = &mut self.account_mut(id).balances[asset.index()];
        balance.held = balance
            .held
            .checked_sub(amount)
            .expect("released more than the account held");
        balance.available = Amount(balance.available.0 + amount.0);
        *balance
    }

    /// Settles one trade: the seller's held base asset goes to the buyer, the price goes
    /// from the buyer to the seller, and what the buyer held for these lots beyond the
    /// price goes back to its available funds. A buyer that held nothing (a market buy)
    /// pays out of available funds, which the caller has checked. Money moves inside the
    /// system, so the running sums do not change. Returns the buyer's and the seller's
    /// balances afterwards.
    pub fn settle_trade(&mut self, trade: &Settlement) -> (Balances, Balances) {
        assert!(trade.buyer != trade.seller, "an account traded with itself");
        let buyer_index = (trade.buyer.0 - 1) as usize;
        let seller_index = (trade.seller.0 - 1) as usize;
        let [buyer, seller] = self
            .accounts
            .get_disjoint_mut([buyer_index, seller_index])
            .expect("both parties of a trade exist");
        let (base, quote) = (trade.base.index(), trade.quote.index());
        let seller_base = &mut seller.balances[base];
        seller_base.held = seller_base
            .held
            .checked_sub(trade.delivered)
            .expect("a seller delivers what it held");
        buyer.balances[base].available =
            Amount(buyer.balances[base].available.0 + trade.delivered.0);
        let buyer_quote = &mut buyer.balances[quote];
        if trade.buyer_held.is_zero() {
            buyer_quote.available = buyer_quote
                .available
                .checked_sub(trade.paid)
                .expect("a market buyer pays what it has");
        } else {
            let refund = trade
                .buyer_held
                .checked_sub(trade.paid)
                .expect("a buyer pays at most what it held");
            buyer_quote.held = buyer_quote
                .held
                .checked_sub(trade.buyer_held)
                .expect("a buyer pays out of what it held");
            buyer_quote.available = Amount(buyer_quote.available.0 + refund.0);
        }
        seller.balances[quote].available =
            Amount(seller.balances[quote].available.0 + trade.paid.0);
        (buyer.balances, seller.balances)
    }

    /// Pays `amount` out of `from`'s held funds into `to`'s available funds: the
    /// settlement of one side of a trade. Money moves inside the system, so the running
    /// sums do not change.
    pub fn settle_held(&mut self, from: AccountId, to: AccountId, asset: Asset, amount: Amount) {
        let balance = &mut self.account_mut(from).balances[asset.index()];
        balance.held = balance
            .held
            .checked_sub(amount)
            .expect("settled more than the account held");
        self.add_available(to, asset, amount);
    }

    /// Pays `amount` out of `from`'s available funds into `to`'s available funds. The
    /// caller has checked the funds, so a shortfall is a broken invariant.
    pub fn settle_available(
        &mut self,
        from: AccountId,
        to: AccountId,
        asset: Asset,
        amount: Amount,
    ) {
        let balance = &mut self.account_mut(from).balances[asset.index()];
        balance.available = balance
            .available
            .checked_sub(amount)
            .expect("settled more than the account had available");
        self.add_available(to, asset, amount);
    }

    /// Adds to an account's available funds what was just taken from another account.
    fn add_available(&mut self, id: AccountId, asset: Asset, amount: Amount) {
        let balance = &mut self.account_mut(id).balances[asset.index()];
        // Every balance is at most what entered the system, which mint and deposit keep
        // within 64 bits, so this cannot overflow.
        balance.available = Amount(balance.available.0 + amount.0);
    }

    fn credit_available(&mut self, id: AccountId, asset: Asset, amount: Amount) -> Balance {
        let balance = &mut self.account_mut(id).balances[asset.index()];
        // Every balance is at most what entered the system, which mint and deposit keep
        // within 64 bits, so this cannot overflow.
        balance.available = Amount(balance.available.0 + amount.0);
        let after = *balance;
        self.balance_sums[asset.index()] += u128::from(amount.0);
        after
    }

    fn debit_available(
        &mut self,
        id: AccountId,
        asset: Asset,
        amount: Amount,
        field: &'static str,
    ) -> Result<Balance, Reject> {
        let balance = &mut self.account_mut(id).balances[asset.index()];
        let available = balance.available.0;
        let rest = available
            .checked_sub(amount.0)
            .ok_or(Reject::InsufficientFunds {
                field,
                asset,
                needed: amount.0,
                available,
            })?;
        balance.available = Amount(rest);
        let after = *balance;
        self.balance_sums[asset.index()] -= u128::from(amount.0);
        Ok(after)
    }

    /// Asserts that, for each asset, the running sum of all balances equals what entered
    /// the system. O(1): the sequencer calls it after every command, and a failure stops
    /// the process before a wrong balance can be written.
    pub fn assert_conserved(&self) {
        let entered = self.entered();
        for asset in Asset::ALL {
            assert_eq!(
                self.balance_sums[asset.index()],
                u128::from(entered[asset.index()]),
                "{} is not conserved",
                asset.symbol()
            );
        }
    }

    /// Micro-units of each asset that entered the system and have not left it.
    pub fn entered(&self) -> [u64; 2] {
        let mut entered = [0; 2];
        entered[Asset::Dvm.index()] = self.dvm_minted;
        entered[Asset::Usd.index()] = self.usd_deposited - self.usd_withdrawn;
        entered
    }

    /// The divmid supply: minted, in the treasury, with users, and spent.
    pub fn supply(&self) -> Supply {
        let treasury = self.balance(TREASURY, Asset::Dvm);
        let spent = self.balance(REVENUE, Asset::Dvm);
        // Conservation (asserted after every command) makes this subtraction exact.
        let circulating =
            self.dvm_minted - treasury.available.0 - treasury.held.0 - spent.available.0;
        Supply {
            minted: Amount(self.dvm_minted),
            treasury: treasury.available,
            circulating: Amount(circulating),
            spent: spent.available,
        }
    }

    /// Sums every balance and compares with what entered the system. O(accounts): run
    /// after every command by tests and debug builds, and by recovery before serving.
    pub fn check_conservation(&self) -> Result<(), String> {
        let mut sums = [0u128; 2];
        for account in &self.accounts {
            for asset in Asset::ALL {
                sums[asset.index()] += account.balance(asset).total();
            }
        }
        let entered = self.entered();
        for asset in Asset::ALL {
            if sums[asset.index()] != self.balance_sums[asset.index()] {
                return Err(format!(
                    "{}: balances sum to {} micro-units but the running sum says {}",
                    asset.symbol(),
                    sums[asset.index()],
                    self.balance_sums[asset.index()]
                ));
            }
            if sums[asset.index()] != u128::from(entered[asset.index()]) {
                return Err(format!(
                    "{}: balances sum to {} micro-units but {} entered the system",
                    asset.symbol(),
                    sums[asset.index()],
                    entered[asset.index()]
                ));
            }
        }
        let supply = self.supply();
        let parts = u128::from(supply.treasury.0)
            + u128::from(supply.circulating.0)
            + u128::from(supply.spent.0);
        if parts != u128::from(supply.minted.0) {
            return Err("minted differs from treasury + circulating + spent".to_string());
        }
        Ok(())
    }
}

/// One trade's settlement, for [`Ledger::settle_trade`].
#[derive(Clone, Copy, Debug)]
pub struct Settlement {
    /// Receives the base asset, pays the quote asset.
    pub buyer: AccountId,
    /// Delivers the base asset, receives the quote asset.
    pub seller: AccountId,
    /// The asset traded.
    pub base: Asset,
    /// The asset paid.
    pub quote: Asset,
    /// Base micro-units delivered, out of the seller's held funds.
    pub delivered: Amount,
    /// Quote micro-units paid.
    pub paid: Amount,
    /// Quote micro-units the buyer held for these lots (at least `paid`), or zero when the
    /// buyer pays out of available funds.
    pub buyer_held: Amount,
}

/// Micro-USD that `quantity` micro-DVM cost at `price`, rounded up to the micro-dollar (in
/// the house's favour), or `None` if it does not fit 64 bits.
pub fn sale_cost(quantity: Amount, price: IssuePrice) -> Option<Amount> {
    let exact = u128::from(quantity.0) * u128::from(price.0);
    // quantity is in 10^-6 DVM and price in 10^-12 USD per DVM, so the product is in
    // 10^-18 USD: divide by 10^12 for micro-dollars.
    let divisor = u128::from(IssuePrice::UNITS_PER_USD);
    let micros = exact.div_ceil(divisor);
    u64::try_from(micros).ok().map(Amount)
}

/// The issuer's view of the divmid supply. `minted = treasury + circulating + spent` at
/// every sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supply {
    /// Every divmid ever minted.
    pub minted: Amount,
    /// Divmids in the treasury, not yet sold.
    pub treasury: Amount,
    /// Divmids users hold, available and held by orders.
    pub circulating: Amount,
    /// Divmids services charged, in the issuer's revenue account.
    pub spent: Amount,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_has_the_issuers_two_accounts_and_balances() {
        let ledger = Ledger::new();
        assert_eq!(ledger.account_count(), 2);
        assert_eq!(ledger.account(TREASURY).map(|a| a.role), Some(Role::Issuer));
        assert_eq!(ledger.check_conservation(), Ok(()));
    }

    #[test]
    fn sale_cost_rounds_up_to_the_micro_dollar() {
        // 0.000001 DVM at 0.6 USD costs 0.0000006 USD: the house charges 0.000001.
        let price = IssuePrice(600_000_000_000);
        assert_eq!(sale_cost(Amount(1), price), Some(Amount(1)));
        // 2 DVM at 0.6 USD is exactly 1.2 USD.
        assert_eq!(sale_cost(Amount(2_000_000), price), Some(Amount(1_200_000)));
        // A price with places beyond the micro-dollar: 1 DVM at 0.0000015 USD.
        assert_eq!(
            sale_cost(Amount(1_000_000), IssuePrice(1_500_000)),
            Some(Amount(2))
        );
        assert_eq!(sale_cost(Amount(u64::MAX), IssuePrice(u64::MAX)), None);
    }

    #[test]
    fn holds_refuse_what_is_not_available_and_change_nothing() {
        let mut ledger = Ledger::new();
        let trader = ledger.create_account("t", Role::Trader, Tier::Public, [1; 32]);
        ledger.deposit(trader, Amount(100)).unwrap();
        let refused = ledger.hold(trader, Asset::Usd, Amount(101), "price");
        assert!(matches!(
            refused,
            Err(Reject::InsufficientFunds {
                needed: 101,
                available: 100,
                ..
            })
        ));
        assert_eq!(ledger.balance(trader, Asset::Usd).available, Amount(100));
        let held = ledger
            .hold(trader, Asset::Usd, Amount(60), "price")
            .unwrap();
        assert_eq!((held.available, held.held), (Amount(40), Amount(60)));
        let released = ledger.release(trader, Asset::Usd, Amount(10));
        assert_eq!(
            (released.available, released.held),
            (Amount(50), Amount(50))
        );
        assert_eq!(ledger.check_conservation(), Ok(()));
    }

    #[test]
    fn withdrawals_leave_the_system_and_keep_it_balanced() {
        let mut ledger = Ledger::new();
        let trader = ledger.create_account("t", Role::Trader, Tier::Public, [1; 32]);
        ledger.deposit(trader, Amount(500)).unwrap();
        assert!(ledger.withdraw(trader, Amount(501)).is_err());
        ledger.withdraw(trader, Amount(200)).unwrap();
        assert_eq!(ledger.entered()[Asset::Usd.index()], 300);
        assert_eq!(ledger.check_conservation(), Ok(()));
    }
}
