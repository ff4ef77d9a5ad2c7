//! `Wallet`: balances, deposits, withdrawals, purchases from the treasury, the ledger.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::unexpected;
use super::Api;
use crate::api::context::{amount, balance, parse_amount, parse_issue_price, required};
use crate::api::history;
use crate::api::proto;
use crate::api::status::from_reject;
use crate::command::Command;
use crate::event::Reply;
use crate::pipeline::{Answer, Query};
use crate::types::{Asset, FundingSourceKind, Role};

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
            return Err(Status::internal("unexpected answer"));
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
            return Err(Status::internal("unexpected answer"));
        };
        let reply = match applied {
            Some(reply) => reply,
            None => {
                processor
                    .authorize(
                        &message.source_reference,
                        deposited.0,
                        &message.idempotency_key,
                    )
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
}
