//! `Wallet`: balances, deposits, withdrawals, purchases from the treasury, the ledger, and
//! the prepaid pool's settings (automatic top-up, spend limits) and usage.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::unexpected;
use super::Api;
use crate::api::context::{
    amount, balance, issue_price, now_ms, parse_amount, parse_id, parse_issue_price, required,
};
use crate::api::history;
use crate::api::proto;
use crate::api::status::{self, from_reject};
use crate::api::usage::{self, Owner};
use crate::command::Command;
use crate::event::Reply;
use crate::ledger::AutoTopUp;
use crate::pipeline::{Answer, Query};
use crate::types::{AccountId, Amount, Asset, FundingSourceKind, IssuePrice, Role};

#[tonic::async_trait]
impl proto::wallet_server::Wallet for Api {
    async fn get_balances(
        &self,
        request: Request<proto::GetBalancesRequest>,
    ) -> Result<Response<proto::GetBalancesResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let Answer::Balances(balances) =
            self.context.query(Query::Balances(caller.account)).await?
        else {
            return Err(status::unexpected_answer());
        };
        Ok(Response::new(proto::GetBalancesResponse {
            balances: Asset::ALL
                .iter()
                .map(|asset| balance(*asset, balances[asset.index()]))
                .collect(),
        }))
    }

    async fn deposit(
        &self,
        request: Request<proto::DepositRequest>,
    ) -> Result<Response<proto::DepositResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let source = required(
            "source",
            message.source,
            |value| match proto::Source::try_from(value).ok()? {
                proto::Source::Card => Some(FundingSourceKind::Card),
                proto::Source::Paypal => Some(FundingSourceKind::Paypal),
                proto::Source::Egold => Some(FundingSourceKind::Egold),
                proto::Source::Unspecified => None,
            },
        )?;
        let deposited = parse_amount("amount", &message.amount)?;
        // Checked here as the sequencer would, before the processor is asked: a deposit
        // the exchange would refuse must not be authorized.
        let key_length_max = self.context.config.engine.limits.key_length_max;
        crate::error::check_text(
            "idempotency_key",
            &message.idempotency_key,
            key_length_max,
            true,
        )
        .map_err(|reject| from_reject(&reject))?;
        let processor = self.context.funding.of(source);
        // Only what may be kept goes on: a card number stops here.
        let source_reference = processor.stored_reference(&message.source_reference);
        let command = Command::Deposit {
            account: caller.account,
            source,
            amount: deposited,
            source_reference: source_reference.into(),
            idempotency_key: message.idempotency_key.clone().into(),
        };
        // A retry of an applied deposit is answered without asking the processor again.
        let Answer::AppliedReply(applied) = self
            .context
            .query(Query::AppliedReply(Box::new(command.clone())))
            .await?
        else {
            return Err(status::unexpected_answer());
        };
        let reply = match applied {
            Some(reply) => reply,
            None => {
                // A processor answers over the network, in its own time: it is asked on a
                // blocking thread, so that a slow one holds up only this deposit, not the
                // calls this worker would serve meanwhile.
                let (reference, key) = (message.source_reference, message.idempotency_key);
                tokio::task::spawn_blocking(move || {
                    processor.authorize(&reference, deposited.0, &key)
                })
                .await
                .map_err(|_| status::internal("the funding processor failed"))?
                .map_err(|reject| from_reject(&reject))?;
                self.context.command(command).await?.reply
            }
        };
        let Reply::Funds(after) = reply else {
            return Err(unexpected(&reply));
        };
        Ok(Response::new(proto::DepositResponse {
            balance: Some(balance(Asset::Usd, after)),
        }))
    }

    async fn withdraw(
        &self,
        request: Request<proto::WithdrawRequest>,
    ) -> Result<Response<proto::WithdrawResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let committed = self
            .context
            .command(Command::Withdraw {
                account: caller.account,
                amount: parse_amount("amount", &message.amount)?,
                destination: message.destination.into(),
                idempotency_key: message.idempotency_key.into(),
            })
            .await?;
        let Reply::Funds(after) = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        Ok(Response::new(proto::WithdrawResponse {
            balance: Some(balance(Asset::Usd, after)),
        }))
    }

    async fn buy_divmids(
        &self,
        request: Request<proto::BuyDivmidsRequest>,
    ) -> Result<Response<proto::BuyDivmidsResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let committed = self
            .context
            .command(Command::BuyDivmids {
                account: caller.account,
                quantity: parse_amount("quantity", &message.quantity)?,
                max_price: parse_issue_price("max_price", &message.max_price)?,
                idempotency_key: message.idempotency_key.into(),
            })
            .await?;
        let Reply::DivmidsBought { cost, balances } = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        Ok(Response::new(proto::BuyDivmidsResponse {
            cost: amount(cost),
            balances: Asset::ALL
                .iter()
                .map(|asset| balance(*asset, balances[asset.index()]))
                .collect(),
        }))
    }

    async fn list_ledger_entries(
        &self,
        request: Request<proto::ListLedgerEntriesRequest>,
    ) -> Result<Response<proto::ListLedgerEntriesResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let context = Arc::clone(&self.context);
        let (entries, next) = self
            .page_from_history(
                caller.account,
                message.page_size,
                &message.page_token,
                move |event| history::ledger_entries(&context, caller.account, event),
            )
            .await?;
        Ok(Response::new(proto::ListLedgerEntriesResponse {
            entries,
            next_page_token: next,
        }))
    }

    async fn set_auto_top_up(
        &self,
        request: Request<proto::SetAutoTopUpRequest>,
    ) -> Result<Response<proto::SetAutoTopUpResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let settings = AutoTopUp {
            enabled: message.enabled,
            threshold: amount_or_zero("threshold", &message.threshold)?,
            target: amount_or_zero("target", &message.target)?,
            max_price: match is_zero(&message.max_price) {
                true => IssuePrice(0),
                false => parse_issue_price("max_price", &message.max_price)?,
            },
            monthly_max_usd: amount_or_zero("monthly_max_usd", &message.monthly_max_usd)?,
        };
        let committed = self
            .context
            .command(Command::SetAutoTopUp {
                account: caller.account,
                settings,
            })
            .await?;
        Ok(Response::new(proto::SetAutoTopUpResponse {
            seq: last_seq(&committed.events),
        }))
    }

    async fn get_auto_top_up(
        &self,
        request: Request<proto::GetAutoTopUpRequest>,
    ) -> Result<Response<proto::GetAutoTopUpResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let Answer::Prepaid { top_up, .. } =
            self.context.query(Query::Prepaid(caller.account)).await?
        else {
            return Err(status::unexpected_answer());
        };
        let settings = top_up.map(|account| account.settings);
        let settings = settings.unwrap_or(AutoTopUp {
            enabled: false,
            threshold: Amount::ZERO,
            target: Amount::ZERO,
            max_price: IssuePrice(0),
            monthly_max_usd: Amount::ZERO,
        });
        let spent = top_up.map_or(Amount::ZERO, |account| account.spent_in_month_of(now_ms()));
        Ok(Response::new(proto::GetAutoTopUpResponse {
            enabled: settings.enabled,
            threshold: amount(settings.threshold),
            target: amount(settings.target),
            max_price: issue_price(settings.max_price),
            monthly_max_usd: amount(settings.monthly_max_usd),
            month_spent_usd: amount(spent),
        }))
    }

    async fn set_spend_limit(
        &self,
        request: Request<proto::SetSpendLimitRequest>,
    ) -> Result<Response<proto::SetSpendLimitResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let service = AccountId(parse_id("service_account_id", &message.service_account_id)?);
        let daily_max = match message.daily_max.is_empty() {
            true => None,
            false => Some(amount_or_zero("daily_max", &message.daily_max)?),
        };
        let committed = self
            .context
            .command(Command::SetSpendLimit {
                account: caller.account,
                service,
                daily_max,
            })
            .await?;
        Ok(Response::new(proto::SetSpendLimitResponse {
            seq: last_seq(&committed.events),
        }))
    }

    async fn list_spend_limits(
        &self,
        request: Request<proto::ListSpendLimitsRequest>,
    ) -> Result<Response<proto::ListSpendLimitsResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let Answer::Prepaid { spend_limits, .. } =
            self.context.query(Query::Prepaid(caller.account)).await?
        else {
            return Err(status::unexpected_answer());
        };
        let now = now_ms();
        let limits = spend_limits
            .into_iter()
            .map(|(service, spend)| proto::SpendLimit {
                service_account_id: service.to_string(),
                daily_max: amount(spend.daily_max),
                spent_today: amount(spend.spent_on_day_of(now)),
            })
            .collect();
        Ok(Response::new(proto::ListSpendLimitsResponse { limits }))
    }

    async fn get_usage(
        &self,
        request: Request<proto::GetUsageRequest>,
    ) -> Result<Response<proto::GetUsageResponse>, Status> {
        let caller = self.caller(&request, Role::Trader)?;
        let message = request.into_inner();
        let asked = usage::asked_of!(message);
        let answer = usage::answer(&self.context, Owner::Holder(caller.account), asked).await?;
        let (top_ups, top_ups_truncated) = answer.top_ups;
        Ok(Response::new(proto::GetUsageResponse {
            rows: answer
                .rows
                .into_iter()
                .map(|(start_ms, service, sum)| proto::UsageRow {
                    service_account_id: service.to_string(),
                    interval_start_ms: start_ms,
                    charges: sum.charges,
                    amount: amount(sum.amount),
                })
                .collect(),
            top_ups: top_ups
                .into_iter()
                .map(|record| proto::TopUp {
                    seq: record.seq,
                    time_ms: record.time_ms,
                    quantity: amount(record.quantity),
                    cost: amount(record.cost),
                })
                .collect(),
            top_ups_truncated,
            next_page_token: answer.next_page_token,
            seq: answer.seq,
            kept_from_ms: answer.kept_from_ms,
        }))
    }
}

/// Whether a wire decimal is zero ("0", "0.00"); empty counts as zero.
fn is_zero(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    text.is_empty()
        || (whole == "0" && !fraction.is_empty() && fraction.bytes().all(|byte| byte == b'0'))
}

/// An amount that may be zero (or empty, meaning zero); otherwise as `parse_amount`.
fn amount_or_zero(field: &'static str, text: &str) -> Result<Amount, Status> {
    match is_zero(text) {
        true => Ok(Amount::ZERO),
        false => parse_amount(field, text),
    }
}

/// The sequence number of a command's last event.
fn last_seq(events: &[crate::event::Event]) -> u64 {
    events.last().map_or(0, |event| event.seq)
}
