//! Metering and the prepaid pool in the sequencer: a service's charge, with the holder's
//! daily limit on that service and its automatic top-up, and the commands that set both.
//!
//! A charge is one command: the limit is checked, then, when the charge would leave the
//! pool below the holder's threshold, divmids are bought from the treasury back up to the
//! target, then the charge applies. Every check runs before the first change, so a refused
//! charge changes nothing, and a retried one (same key) replays the reply without buying
//! again. The month of the top-up cap and the day of the spend limit come from the
//! sequencer's clock (the commands' own time, never moving back), so a replay decides as
//! the live run did.

use super::book::OrderBook;
use super::sequencer::Sequencer;
use crate::error::Reject;
use crate::event::{Event, EventKind, Reply};
use crate::ledger::{sale_cost, AutoTopUp, REVENUE, TREASURY};
use crate::types::{AccountId, Amount, Asset, IssuePrice, Role};

/// A purchase the charge's command makes before the charge.
struct TopUp {
    quantity: Amount,
    price: IssuePrice,
    cost: Amount,
}

impl<B: OrderBook> Sequencer<B> {
    pub(super) fn charge(
        &mut self,
        service: AccountId,
        account: AccountId,
        amount: Amount,
        memo: &str,
        idempotency_key: &str,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        self.require_positive("amount", amount)?;
        self.check_text("memo", memo, self.config.limits.memo_length_max, false)?;
        self.ledger.require(service, Role::Service, "service")?;
        match self.ledger.account(account) {
            Some(charged) if charged.role == Role::Trader => {}
            Some(_) => {
                return Err(Reject::invalid(
                    "account_id",
                    "only a trader account can be charged",
                ))
            }
            None => {
                return Err(Reject::NotFound {
                    field: "account_id",
                })
            }
        }
        let now_ms = self.now_ms();
        if let Some(limit) = self.prepaid.spend_limit(account, service) {
            let spent = limit.spent_on_day_of(now_ms);
            if spent.0.saturating_add(amount.0) > limit.daily_max.0 {
                return Err(Reject::FailedPrecondition {
                    field: "amount",
                    reason:
                        "spend limit: the holder's daily limit for this service would be passed",
                });
            }
        }
        let available = self.ledger.balance(account, Asset::Dvm).available;
        match self.plan_top_up(account, amount, available) {
            Ok(Some(top_up)) => self.top_up(account, top_up, events),
            Ok(None) => {}
            // The top-up could not happen: the charge still applies if the pool pays it.
            Err(reason) if available < amount => {
                return Err(Reject::FailedPrecondition {
                    field: "amount",
                    reason,
                })
            }
            Err(_) => {}
        }
        let (balance_after, revenue_after) =
            self.ledger
                .transfer(account, REVENUE, Asset::Dvm, amount, "amount")?;
        self.prepaid.record_spend(account, service, amount, now_ms);
        self.emit(events, || EventKind::Charged {
            service,
            account,
            amount,
            memo: memo.into(),
            idempotency_key: idempotency_key.into(),
            balance_after,
            revenue_after,
        });
        Ok(Reply::Charged {
            seq: self.last_seq(),
        })
    }

    /// The top-up a charge of `amount` needs first: none when the holder has none enabled
    /// or the charge leaves at least the threshold; otherwise the purchase back up to the
    /// target (or to what the charge needs, for a charge larger than the target), or why
    /// it cannot happen. Changes nothing.
    fn plan_top_up(
        &self,
        account: AccountId,
        amount: Amount,
        available: Amount,
    ) -> Result<Option<TopUp>, &'static str> {
        let Some(pool) = self.prepaid.top_up(account) else {
            return Ok(None);
        };
        let settings = pool.settings;
        let after = available.0.checked_sub(amount.0);
        if !settings.enabled || after.is_some_and(|after| after >= settings.threshold.0) {
            return Ok(None);
        }
        let wanted = settings.target.max(amount);
        let quantity = Amount(wanted.0.saturating_sub(available.0));
        if quantity.is_zero() {
            return Ok(None);
        }
        let tier = self
            .ledger
            .account(account)
            .expect("the holder exists")
            .tier;
        let price = self
            .ledger
            .issue_price(tier)
            .ok_or("auto top-up: the issuer has not set a price for the holder's tier")?;
        if price > settings.max_price {
            return Err("auto top-up: the issue price is above the holder's max_price");
        }
        let cost = sale_cost(quantity, price).ok_or("auto top-up: the purchase is too large")?;
        let month_spent = pool.spent_in_month_of(self.now_ms());
        if month_spent.0.saturating_add(cost.0) > settings.monthly_max_usd.0 {
            return Err("auto top-up: this month's top-ups would pass monthly_max_usd");
        }
        if self.ledger.balance(account, Asset::Usd).available < cost {
            return Err("auto top-up: the holder's available USD falls short of the top-up");
        }
        if self.ledger.balance(TREASURY, Asset::Dvm).available < quantity {
            return Err("auto top-up: the treasury holds fewer divmids than the top-up");
        }
        Ok(Some(TopUp {
            quantity,
            price,
            cost,
        }))
    }

    /// Makes a planned top-up: USD from the holder to the treasury, DVM back. Both were
    /// checked by the plan, so neither transfer can fail.
    fn top_up(&mut self, account: AccountId, top_up: TopUp, events: &mut Vec<Event>) {
        let TopUp {
            quantity,
            price,
            cost,
        } = top_up;
        self.ledger
            .transfer(account, TREASURY, Asset::Usd, cost, "amount")
            .expect("the holder's dollars were checked");
        self.ledger
            .transfer(TREASURY, account, Asset::Dvm, quantity, "amount")
            .expect("the treasury's divmids were checked");
        let month_spent_usd = self.prepaid.record_top_up(account, cost, self.now_ms());
        let account_after = self.ledger.balances(account);
        let treasury_after = self.ledger.balances(TREASURY);
        self.emit(events, || EventKind::AutoToppedUp {
            account,
            quantity,
            price,
            cost,
            month_spent_usd,
            account_after,
            treasury_after,
        });
    }

    pub(super) fn set_auto_top_up(
        &mut self,
        account: AccountId,
        settings: AutoTopUp,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        self.ledger.require(account, Role::Trader, "account_id")?;
        if settings.enabled {
            if settings.target.is_zero() {
                return Err(Reject::invalid("target", "must be positive"));
            }
            if settings.threshold > settings.target {
                return Err(Reject::invalid("threshold", "must be at most target"));
            }
            if settings.max_price.0 == 0 {
                return Err(Reject::invalid("max_price", "must be positive"));
            }
            if settings.monthly_max_usd.is_zero() {
                return Err(Reject::invalid("monthly_max_usd", "must be positive"));
            }
        }
        self.prepaid.set_top_up(account, settings);
        self.emit(events, || EventKind::AutoTopUpSet { account, settings });
        Ok(Reply::PrepaidSettingsSet)
    }

    pub(super) fn set_spend_limit(
        &mut self,
        account: AccountId,
        service: AccountId,
        daily_max: Option<Amount>,
        events: &mut Vec<Event>,
    ) -> Result<Reply, Reject> {
        self.ledger.require(account, Role::Trader, "account_id")?;
        match self.ledger.account(service) {
            Some(found) if found.role == Role::Service => {}
            Some(_) => {
                return Err(Reject::invalid(
                    "service_account_id",
                    "is not a service account",
                ))
            }
            None => {
                return Err(Reject::NotFound {
                    field: "service_account_id",
                })
            }
        }
        let limits_max = self.config.limits.spend_limits_per_account_max;
        let is_new = self.prepaid.spend_limit(account, service).is_none();
        if daily_max.is_some()
            && is_new
            && self.prepaid.spend_limits_of(account).count() >= limits_max as usize
        {
            return Err(Reject::LimitExceeded {
                field: "spend_limits_per_account_max",
                limit: u64::from(limits_max),
            });
        }
        self.prepaid.set_spend_limit(account, service, daily_max);
        self.emit(events, || EventKind::SpendLimitSet {
            account,
            service,
            daily_max,
        });
        Ok(Reply::PrepaidSettingsSet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::config::EngineConfig;
    use crate::engine::LevelBook;
    use crate::types::DAY_MS;
    use crate::types::{FundingSourceKind, Tier};

    const UNIT: u64 = 1_000_000;
    /// 2026-12-04T00:00:00Z.
    const DECEMBER_4: u64 = 1_796_342_400_000;
    /// 2027-01-01T00:00:00Z.
    const JANUARY_1: u64 = 1_798_761_600_000;
    /// 0.5 USD per DVM.
    const HALF_A_DOLLAR: IssuePrice = IssuePrice(IssuePrice::UNITS_PER_USD / 2);

    /// A sequencer with a treasury of 1,000 DVM at 0.5 USD, a service and a holder.
    struct Pool {
        sequencer: Sequencer<LevelBook>,
        service: AccountId,
        holder: AccountId,
        keys: u64,
    }

    impl Pool {
        fn new() -> Pool {
            Pool::with_config(EngineConfig::default())
        }

        fn with_config(config: EngineConfig) -> Pool {
            let mut sequencer = Sequencer::new(config);
            let mut run = |command: Command| {
                sequencer
                    .apply(DECEMBER_4, &command, &mut Vec::new())
                    .expect("accepted")
            };
            run(Command::Mint {
                amount: Amount(1_000 * UNIT),
                memo: "".into(),
                idempotency_key: "mint".into(),
            });
            run(Command::SetIssuePrice {
                tier: Tier::Public,
                price: HALF_A_DOLLAR,
            });
            let mut create = |role| match run(Command::CreateAccount {
                name: "someone".into(),
                role,
                tier: Tier::Public,
                token_hash: [7; 32],
            }) {
                Reply::AccountCreated { account } => account,
                other => panic!("unexpected {other:?}"),
            };
            let (service, holder) = (create(Role::Service), create(Role::Trader));
            let mut pool = Pool {
                sequencer,
                service,
                holder,
                keys: 0,
            };
            pool.deposit(100 * UNIT);
            pool
        }

        fn apply(&mut self, time_ms: u64, command: Command) -> Result<(Reply, Vec<Event>), Reject> {
            let mut events = Vec::new();
            let reply = self.sequencer.apply(time_ms, &command, &mut events);
            self.sequencer
                .check_invariants()
                .expect("every invariant holds after every command");
            reply.map(|reply| (reply, events))
        }

        fn deposit(&mut self, usd: u64) {
            let command = Command::Deposit {
                account: self.holder,
                source: FundingSourceKind::Card,
                amount: Amount(usd),
                source_reference: "card ending 1111".into(),
                idempotency_key: format!("deposit-{usd}-{}", self.keys).into(),
            };
            self.keys += 1;
            self.apply(DECEMBER_4, command).expect("deposited");
        }

        fn charge_command(&mut self, dvm: u64) -> Command {
            self.keys += 1;
            Command::Charge {
                service: self.service,
                account: self.holder,
                amount: Amount(dvm),
                memo: "".into(),
                idempotency_key: format!("charge-{}", self.keys).into(),
            }
        }

        fn charge(&mut self, time_ms: u64, dvm: u64) -> Result<Vec<Event>, Reject> {
            let command = self.charge_command(dvm);
            self.apply(time_ms, command).map(|(_, events)| events)
        }

        fn set_top_up(
            &mut self,
            threshold: u64,
            target: u64,
            max_price: IssuePrice,
            monthly_max_usd: u64,
        ) {
            let settings = AutoTopUp {
                enabled: true,
                threshold: Amount(threshold),
                target: Amount(target),
                max_price,
                monthly_max_usd: Amount(monthly_max_usd),
            };
            let command = Command::SetAutoTopUp {
                account: self.holder,
                settings,
            };
            self.apply(DECEMBER_4, command).expect("set");
        }

        /// `(usd, dvm)` available to the holder.
        fn holdings(&self) -> (u64, u64) {
            let balances = self.sequencer.ledger().balances(self.holder);
            (
                balances[Asset::Usd.index()].available.0,
                balances[Asset::Dvm.index()].available.0,
            )
        }
    }

    /// The quantity and cost of the top-up among `events`, if one happened.
    fn top_up_of(events: &[Event]) -> Option<(u64, u64)> {
        events.iter().find_map(|event| match event.kind {
            EventKind::AutoToppedUp { quantity, cost, .. } => Some((quantity.0, cost.0)),
            _ => None,
        })
    }

    fn failed_precondition(result: Result<Vec<Event>, Reject>) -> &'static str {
        match result {
            Err(Reject::FailedPrecondition { reason, .. }) => reason,
            other => panic!("expected a failed precondition, got {other:?}"),
        }
    }

    #[test]
    fn a_charge_that_crosses_the_threshold_tops_up_to_the_target_first() {
        let mut pool = Pool::new();
        pool.set_top_up(10 * UNIT, 50 * UNIT, HALF_A_DOLLAR, 100 * UNIT);
        // An empty pool: a charge of 1 DVM buys 50 DVM (25 USD), then pays 1.
        let events = pool.charge(DECEMBER_4, UNIT).expect("charged");
        assert_eq!(top_up_of(&events), Some((50 * UNIT, 25 * UNIT)));
        assert!(matches!(events[1].kind, EventKind::Charged { .. }));
        assert_eq!(pool.holdings(), (75 * UNIT, 49 * UNIT));
        // Down to 10 DVM exactly: no top-up; then below it: back up to 50.
        assert_eq!(
            top_up_of(&pool.charge(DECEMBER_4, 39 * UNIT).expect("charged")),
            None
        );
        assert_eq!(pool.holdings(), (75 * UNIT, 10 * UNIT));
        let events = pool.charge(DECEMBER_4, 3 * UNIT).expect("charged");
        assert_eq!(top_up_of(&events), Some((40 * UNIT, 20 * UNIT)));
        assert_eq!(pool.holdings(), (55 * UNIT, 47 * UNIT));
        // A charge larger than the target buys what it needs.
        let events = pool.charge(DECEMBER_4, 60 * UNIT).expect("charged");
        assert_eq!(top_up_of(&events), Some((13 * UNIT, 6_500_000)));
        assert_eq!(pool.holdings(), (48_500_000, 0));
        let supply = pool.sequencer.supply();
        assert_eq!(supply.spent, Amount(103 * UNIT));
        assert_eq!(
            supply.minted.0,
            supply.treasury.0 + supply.circulating.0 + supply.spent.0
        );
    }

    #[test]
    fn the_monthly_cap_refuses_top_ups_until_the_next_utc_month() {
        let mut pool = Pool::new();
        // Each top-up to 20 DVM from nothing costs 10 USD; the cap allows two.
        pool.set_top_up(UNIT, 20 * UNIT, HALF_A_DOLLAR, 20 * UNIT);
        pool.charge(DECEMBER_4, 20 * UNIT).expect("first top-up");
        pool.charge(DECEMBER_4 + DAY_MS, 20 * UNIT)
            .expect("second top-up");
        let before = (pool.holdings(), pool.sequencer.last_seq());
        let reason = failed_precondition(pool.charge(JANUARY_1 - 1, 5 * UNIT));
        assert!(reason.contains("monthly_max_usd"), "{reason}");
        assert_eq!(
            (pool.holdings(), pool.sequencer.last_seq()),
            before,
            "nothing changed"
        );
        // The next month the cap starts again.
        let events = pool.charge(JANUARY_1, 5 * UNIT).expect("a new month");
        assert_eq!(top_up_of(&events), Some((20 * UNIT, 10 * UNIT)));
        let top_up = pool
            .sequencer
            .prepaid()
            .top_up(pool.holder)
            .copied()
            .expect("set");
        assert_eq!(top_up.spent_in_month_of(JANUARY_1), Amount(10 * UNIT));
    }

    #[test]
    fn a_pool_that_pays_is_charged_even_when_no_top_up_can_happen() {
        let mut pool = Pool::new();
        pool.set_top_up(10 * UNIT, 20 * UNIT, HALF_A_DOLLAR, 100 * UNIT);
        pool.charge(DECEMBER_4, UNIT).expect("tops up to 20");
        // The issuer raises the price above the holder's max_price.
        pool.apply(
            DECEMBER_4,
            Command::SetIssuePrice {
                tier: Tier::Public,
                price: IssuePrice(IssuePrice::UNITS_PER_USD),
            },
        )
        .expect("price set");
        let events = pool.charge(DECEMBER_4, 15 * UNIT).expect("the pool pays");
        assert_eq!(top_up_of(&events), None);
        assert_eq!(pool.holdings().1, 4 * UNIT);
        let reason = failed_precondition(pool.charge(DECEMBER_4, 5 * UNIT));
        assert!(reason.contains("max_price"), "{reason}");
    }

    #[test]
    fn too_few_dollars_or_divmids_in_the_treasury_refuse_the_top_up() {
        let mut pool = Pool::new();
        pool.set_top_up(UNIT, 300 * UNIT, HALF_A_DOLLAR, 1_000 * UNIT);
        // 300 DVM cost 150 USD; the holder has 100.
        let reason = failed_precondition(pool.charge(DECEMBER_4, UNIT));
        assert!(reason.contains("USD"), "{reason}");
        pool.deposit(1_000 * UNIT);
        pool.set_top_up(UNIT, 1_500 * UNIT, HALF_A_DOLLAR, 1_000 * UNIT);
        let reason = failed_precondition(pool.charge(DECEMBER_4, UNIT));
        assert!(reason.contains("treasury"), "{reason}");
        assert_eq!(pool.holdings(), (1_100 * UNIT, 0));
    }

    #[test]
    fn a_spend_limit_refuses_the_charge_that_would_pass_it_until_the_next_utc_day() {
        let mut pool = Pool::new();
        pool.set_top_up(0, 100 * UNIT, HALF_A_DOLLAR, 1_000 * UNIT);
        let command = Command::SetSpendLimit {
            account: pool.holder,
            service: pool.service,
            daily_max: Some(Amount(5 * UNIT)),
        };
        pool.apply(DECEMBER_4, command).expect("set");
        pool.charge(DECEMBER_4, 3 * UNIT).expect("within the limit");
        let before = (pool.holdings(), pool.sequencer.last_seq());
        let reason = failed_precondition(pool.charge(DECEMBER_4 + DAY_MS - 1, 3 * UNIT));
        assert!(reason.contains("spend limit"), "{reason}");
        assert_eq!(
            (pool.holdings(), pool.sequencer.last_seq()),
            before,
            "nothing changed"
        );
        pool.charge(DECEMBER_4 + DAY_MS - 1, 2 * UNIT)
            .expect("up to the limit");
        pool.charge(DECEMBER_4 + DAY_MS, 5 * UNIT)
            .expect("a new day");
        // A service that is not limited still charges; a removed limit no longer refuses.
        let command = Command::SetSpendLimit {
            account: pool.holder,
            service: pool.service,
            daily_max: None,
        };
        pool.apply(DECEMBER_4 + DAY_MS, command).expect("removed");
        pool.charge(DECEMBER_4 + DAY_MS, 50 * UNIT)
            .expect("no limit");
    }

    #[test]
    fn a_retried_charge_that_topped_up_applies_once() {
        let mut pool = Pool::new();
        pool.set_top_up(10 * UNIT, 50 * UNIT, HALF_A_DOLLAR, 100 * UNIT);
        let command = pool.charge_command(UNIT);
        let (first, events) = pool.apply(DECEMBER_4, command.clone()).expect("charged");
        assert!(top_up_of(&events).is_some());
        let after = pool.holdings();
        let (retried, events) = pool.apply(DECEMBER_4 + 1_000, command).expect("replayed");
        assert_eq!((retried, events.len()), (first, 0));
        assert_eq!(pool.holdings(), after);
    }

    #[test]
    fn settings_are_checked_and_survive_a_snapshot() {
        let mut pool = Pool::new();
        let settings = AutoTopUp {
            enabled: true,
            threshold: Amount(20 * UNIT),
            target: Amount(10 * UNIT),
            max_price: HALF_A_DOLLAR,
            monthly_max_usd: Amount(UNIT),
        };
        let command = Command::SetAutoTopUp {
            account: pool.holder,
            settings,
        };
        assert_eq!(
            pool.apply(DECEMBER_4, command).map(|_| ()),
            Err(Reject::invalid("threshold", "must be at most target"))
        );
        let command = Command::SetSpendLimit {
            account: pool.holder,
            service: pool.holder,
            daily_max: Some(Amount(1)),
        };
        assert!(pool.apply(DECEMBER_4, command).is_err());
        pool.set_top_up(UNIT, 10 * UNIT, HALF_A_DOLLAR, UNIT * 100);
        pool.charge(DECEMBER_4, UNIT).expect("charged");
        let restored = Sequencer::<LevelBook>::from_snapshot(
            EngineConfig::default(),
            pool.sequencer.snapshot(),
        )
        .expect("restores");
        assert_eq!(restored.state_hash(), pool.sequencer.state_hash());
        assert_eq!(restored.prepaid(), pool.sequencer.prepaid());
        assert_eq!(restored.ledger().issue_price_changes().len(), 1);
    }

    #[test]
    fn charge_keys_are_kept_for_their_own_retention() {
        let mut config = EngineConfig::default();
        config.limits.charge_key_retention_ms = 1_000;
        let mut pool = Pool::with_config(config);
        pool.set_top_up(UNIT, 10 * UNIT, HALF_A_DOLLAR, 100 * UNIT);
        let command = pool.charge_command(UNIT);
        let (first, _) = pool.apply(DECEMBER_4, command.clone()).expect("charged");
        let (retried, events) = pool
            .apply(DECEMBER_4 + 999, command.clone())
            .expect("retried");
        assert_eq!(
            (retried, events.len()),
            (first.clone(), 0),
            "within its retention"
        );
        let (again, events) = pool.apply(DECEMBER_4 + 1_000, command).expect("anew");
        assert_ne!(again, first, "after it the key is free: a new charge");
        assert_eq!(events.len(), 1);
        // The deposit's key, made at the start, is kept the default seven days.
        let deposit = Command::Deposit {
            account: pool.holder,
            source: FundingSourceKind::Card,
            amount: Amount(100 * UNIT),
            source_reference: "card ending 1111".into(),
            idempotency_key: "deposit-100000000-0".into(),
        };
        let (_, events) = pool.apply(DECEMBER_4 + DAY_MS, deposit).expect("replayed");
        assert!(events.is_empty(), "the deposit's key is still kept");
        // The mint's and the deposit's keys, and the charge's: the next charge moves the
        // clock, and the expired one goes.
        assert_eq!(pool.sequencer.idempotency_keys_held(), 3);
        pool.charge(DECEMBER_4 + DAY_MS, UNIT).expect("charged");
        assert_eq!(pool.sequencer.idempotency_keys_held(), 3);
    }
}
