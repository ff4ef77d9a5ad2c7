//! The prepaid pool's rules: each holder's automatic top-up and its spending this month,
//! and the daily spend limits a holder sets per service with what each service charged
//! today.
//!
//! Pure data and arithmetic on calendar numbers: the sequencer decides when a top-up
//! happens and moves the money; this module only keeps the settings and the running sums,
//! in maps that encode in a canonical order (a snapshot of the same state gives the same
//! bytes). Months and days are UTC, counted from the command's time, so a replay decides
//! exactly as the live run did.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::{AccountId, Amount, IssuePrice, DAY_MS};

/// A holder's automatic top-up: when a charge would leave fewer than `threshold` divmids
/// available (or could not be paid), the charge's command first buys the pool back up to
/// `target` from the treasury.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoTopUp {
    /// Off: the settings are kept but no top-up happens.
    pub enabled: bool,
    /// Micro-DVM: a charge that would leave less available triggers a top-up.
    pub threshold: Amount,
    /// Micro-DVM the pool is bought back up to.
    pub target: Amount,
    /// The most the holder pays per DVM; a higher issue price refuses the top-up.
    pub max_price: IssuePrice,
    /// Micro-USD the top-ups of one UTC month may cost together, at most.
    pub monthly_max_usd: Amount,
}

/// A holder's top-up settings and what its top-ups cost in the month of the last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUpAccount {
    /// The settings.
    pub settings: AutoTopUp,
    /// The UTC month (months since January 1970) `month_spent_usd` counts.
    pub month: u32,
    /// Micro-USD spent on top-ups in `month`.
    pub month_spent_usd: Amount,
}

impl TopUpAccount {
    /// Micro-USD spent on top-ups in the month of `now_ms`.
    pub fn spent_in_month_of(&self, now_ms: u64) -> Amount {
        if self.month == utc_month(now_ms) {
            self.month_spent_usd
        } else {
            Amount::ZERO
        }
    }
}

/// A holder's daily limit on one service's charges, and what that service charged on the
/// day of its last charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailySpend {
    /// Micro-DVM the service may charge per UTC day.
    pub daily_max: Amount,
    /// The UTC day (days since 1970-01-01) `spent` counts.
    pub day: u32,
    /// Micro-DVM charged on `day`.
    pub spent: Amount,
}

impl DailySpend {
    /// Micro-DVM charged on the day of `now_ms`.
    pub fn spent_on_day_of(&self, now_ms: u64) -> Amount {
        if self.day == utc_day(now_ms) {
            self.spent
        } else {
            Amount::ZERO
        }
    }
}

/// Every holder's top-up settings and spend limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepaidPool {
    /// By holder.
    top_ups: BTreeMap<AccountId, TopUpAccount>,
    /// By `(holder, service)`.
    spend_limits: BTreeMap<(AccountId, AccountId), DailySpend>,
}

impl PrepaidPool {
    /// The holder's top-up settings and month's spending, if it ever set them.
    pub fn top_up(&self, holder: AccountId) -> Option<&TopUpAccount> {
        self.top_ups.get(&holder)
    }

    /// Replaces the holder's settings; the month's spending stays (turning top-ups off
    /// and on again does not reset the monthly cap).
    pub fn set_top_up(&mut self, holder: AccountId, settings: AutoTopUp) {
        self.top_ups
            .entry(holder)
            .and_modify(|account| account.settings = settings)
            .or_insert(TopUpAccount {
                settings,
                month: 0,
                month_spent_usd: Amount::ZERO,
            });
    }

    /// Counts a top-up's cost in the month of `now_ms`; returns the month's spending
    /// afterwards. The holder has settings, and the caller has checked the cap.
    pub fn record_top_up(&mut self, holder: AccountId, cost: Amount, now_ms: u64) -> Amount {
        let account = self
            .top_ups
            .get_mut(&holder)
            .expect("a holder that tops up has settings");
        let spent = account.spent_in_month_of(now_ms);
        account.month = utc_month(now_ms);
        account.month_spent_usd = Amount(spent.0 + cost.0);
        account.month_spent_usd
    }

    /// The holder's limit on the service, if it set one.
    pub fn spend_limit(&self, holder: AccountId, service: AccountId) -> Option<&DailySpend> {
        self.spend_limits.get(&(holder, service))
    }

    /// The holder's limits, by service.
    pub fn spend_limits_of(
        &self,
        holder: AccountId,
    ) -> impl Iterator<Item = (AccountId, &DailySpend)> {
        self.spend_limits
            .range((holder, AccountId(0))..=(holder, AccountId(u64::MAX)))
            .map(|((_, service), spend)| (*service, spend))
    }

    /// Sets (or, with `None`, removes) the holder's limit on a service. A new limit keeps
    /// what the service charged today: lowering the limit below it stops its charges at
    /// once.
    pub fn set_spend_limit(
        &mut self,
        holder: AccountId,
        service: AccountId,
        daily_max: Option<Amount>,
    ) {
        let key = (holder, service);
        match daily_max {
            None => {
                self.spend_limits.remove(&key);
            }
            Some(daily_max) => {
                self.spend_limits
                    .entry(key)
                    .and_modify(|spend| spend.daily_max = daily_max)
                    .or_insert(DailySpend {
                        daily_max,
                        day: 0,
                        spent: Amount::ZERO,
                    });
            }
        }
    }

    /// Counts a charge against the holder's limit on the service, if it has one. The
    /// caller has checked the limit.
    pub fn record_spend(
        &mut self,
        holder: AccountId,
        service: AccountId,
        amount: Amount,
        now_ms: u64,
    ) {
        if let Some(spend) = self.spend_limits.get_mut(&(holder, service)) {
            let spent = spend.spent_on_day_of(now_ms);
            spend.day = utc_day(now_ms);
            spend.spent = Amount(spent.0 + amount.0);
        }
    }

    /// How many top-up settings and spend limits are kept: records a snapshot copies.
    pub fn len(&self) -> usize {
        self.top_ups.len() + self.spend_limits.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The UTC day of a time: days since 1970-01-01.
pub fn utc_day(time_ms: u64) -> u32 {
    // u32 days reach beyond the year 11 million.
    (time_ms / DAY_MS) as u32
}

/// The UTC month of a time: months since January 1970.
pub fn utc_month(time_ms: u64) -> u32 {
    let (year, month) = civil_year_month(i64::from(utc_day(time_ms)));
    ((year - 1970) * 12 + i64::from(month) - 1) as u32
}

/// The first millisecond of a UTC month (months since January 1970).
pub fn month_start_ms(month: u32) -> u64 {
    let year = 1970 + i64::from(month / 12);
    let month_of_year = month % 12 + 1;
    days_from_civil(year, month_of_year) as u64 * DAY_MS
}

/// The year and month (1 to 12) of a day counted from 1970-01-01: Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch.
fn civil_year_month(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32)
}

/// Days from 1970-01-01 to the first of a month: Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: i64, month: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-04T00:00:00Z.
    const DEC_4_2026_MS: u64 = 1_796_342_400_000;

    #[test]
    fn months_and_days_are_utc_calendar_ones() {
        assert_eq!(utc_month(0), 0);
        assert_eq!(utc_month(31 * DAY_MS - 1), 0);
        assert_eq!(utc_month(31 * DAY_MS), 1, "February 1970");
        let december_2026 = (2026 - 1970) * 12 + 11;
        assert_eq!(utc_month(DEC_4_2026_MS), december_2026);
        assert_eq!(month_start_ms(december_2026), DEC_4_2026_MS - 3 * DAY_MS);
        // 2024 was a leap year: 29 February belongs to February, 1 March to March.
        let february_2024 = (2024 - 1970) * 12 + 1;
        let march_1_2024 = month_start_ms(february_2024 + 1);
        assert_eq!(march_1_2024 - month_start_ms(february_2024), 29 * DAY_MS);
        assert_eq!(utc_month(march_1_2024 - 1), february_2024);
        assert_eq!(utc_month(march_1_2024), february_2024 + 1);
        for month in 0..1_200 {
            assert_eq!(utc_month(month_start_ms(month)), month);
            assert_eq!(utc_month(month_start_ms(month + 1) - 1), month);
        }
        assert_eq!(utc_day(DEC_4_2026_MS + DAY_MS - 1), utc_day(DEC_4_2026_MS));
    }

    #[test]
    fn sums_reset_with_the_month_and_the_day() {
        let (holder, service) = (AccountId(3), AccountId(4));
        let mut pool = PrepaidPool::default();
        let settings = AutoTopUp {
            enabled: true,
            threshold: Amount(1),
            target: Amount(2),
            max_price: IssuePrice(1),
            monthly_max_usd: Amount(100),
        };
        pool.set_top_up(holder, settings);
        assert_eq!(
            pool.record_top_up(holder, Amount(5), DEC_4_2026_MS),
            Amount(5)
        );
        assert_eq!(
            pool.record_top_up(holder, Amount(5), DEC_4_2026_MS),
            Amount(10)
        );
        let january = month_start_ms(utc_month(DEC_4_2026_MS) + 1);
        let account = pool.top_up(holder).copied().expect("set");
        assert_eq!(account.spent_in_month_of(january - 1), Amount(10));
        assert_eq!(account.spent_in_month_of(january), Amount::ZERO);
        assert_eq!(pool.record_top_up(holder, Amount(7), january), Amount(7));

        pool.set_spend_limit(holder, service, Some(Amount(100)));
        pool.record_spend(holder, service, Amount(60), DEC_4_2026_MS);
        let spend = *pool.spend_limit(holder, service).expect("set");
        assert_eq!(
            spend.spent_on_day_of(DEC_4_2026_MS + DAY_MS - 1),
            Amount(60)
        );
        assert_eq!(spend.spent_on_day_of(DEC_4_2026_MS + DAY_MS), Amount::ZERO);
        assert_eq!(pool.spend_limits_of(holder).count(), 1);
        pool.set_spend_limit(holder, service, None);
        assert!(pool.spend_limit(holder, service).is_none());
    }
}
