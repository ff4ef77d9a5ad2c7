//! `Issuer`: accounts, minting, issue prices, the supply, tokens.

use tonic::{Request, Response, Status};

use super::unexpected;
use super::Api;
use crate::api::auth::{generate_token, hash_token, Caller};
use crate::api::context::{amount, parse_amount, parse_id, parse_issue_price, required};
use crate::api::proto;
use crate::api::status;
use crate::command::Command;
use crate::event::Reply;
use crate::pipeline::{Answer, Query};
use crate::types::{AccountId, Role, Tier};

impl Api {
    /// Commits an account's new token hash (or its revocation), then makes the
    /// authentication table follow: the old token stops working once this returns.
    async fn set_token(
        &self,
        account: crate::types::AccountId,
        token_hash: Option<[u8; 32]>,
    ) -> Result<(), Status> {
        let committed = self
            .context
            .command(Command::SetToken {
                account,
                token_hash,
            })
            .await?;
        let Reply::TokenChanged { account, role } = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        let seq = committed.events.last().map_or(0, |event| event.seq);
        self.context
            .tokens
            .set(Caller { account, role }, token_hash, seq);
        Ok(())
    }
}

fn tier(value: i32) -> Result<Tier, Status> {
    required("tier", value, |value| {
        match proto::Tier::try_from(value).ok()? {
            proto::Tier::Public => Some(Tier::Public),
            proto::Tier::Subscriber => Some(Tier::Subscriber),
            proto::Tier::Unspecified => None,
        }
    })
}

#[tonic::async_trait]
impl proto::issuer_server::Issuer for Api {
    async fn create_account(
        &self,
        request: Request<proto::CreateAccountRequest>,
    ) -> Result<Response<proto::CreateAccountResponse>, Status> {
        self.caller(&request, Role::Issuer)?;
        let message = request.into_inner();
        let tier = tier(message.tier)?;
        let role = required("role", message.role, |value| {
            match proto::Role::try_from(value).ok()? {
                proto::Role::Trader => Some(Role::Trader),
                proto::Role::Service => Some(Role::Service),
                proto::Role::Issuer => Some(Role::Issuer),
                proto::Role::Unspecified => None,
            }
        })?;
        let token = generate_token().map_err(|_| status::internal("no randomness for a token"))?;
        let token_hash = hash_token(&token);
        let committed = self
            .context
            .command(Command::CreateAccount {
                name: message.name.into(),
                role,
                tier,
                token_hash,
            })
            .await?;
        let Reply::AccountCreated { account } = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        self.context
            .tokens
            .register(token_hash, Caller { account, role });
        Ok(Response::new(proto::CreateAccountResponse {
            account_id: account.0.to_string(),
            api_token: token,
        }))
    }

    async fn rotate_token(
        &self,
        request: Request<proto::RotateTokenRequest>,
    ) -> Result<Response<proto::RotateTokenResponse>, Status> {
        self.caller(&request, Role::Issuer)?;
        let account = AccountId(parse_id("account_id", &request.get_ref().account_id)?);
        let token = generate_token().map_err(|_| status::internal("no randomness for a token"))?;
        self.set_token(account, Some(hash_token(&token))).await?;
        Ok(Response::new(proto::RotateTokenResponse {
            api_token: token,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<proto::RevokeTokenRequest>,
    ) -> Result<Response<proto::RevokeTokenResponse>, Status> {
        self.caller(&request, Role::Issuer)?;
        let account = AccountId(parse_id("account_id", &request.get_ref().account_id)?);
        self.set_token(account, None).await?;
        Ok(Response::new(proto::RevokeTokenResponse {}))
    }

    type BackupStream = tonic::codegen::BoxStream<proto::BackupChunk>;

    async fn backup(
        &self,
        request: Request<proto::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        self.caller(&request, Role::Issuer)?;
        Ok(Response::new(crate::api::backup::start(&self.context)?))
    }

    async fn mint(
        &self,
        request: Request<proto::MintRequest>,
    ) -> Result<Response<proto::MintResponse>, Status> {
        self.caller(&request, Role::Issuer)?;
        let message = request.into_inner();
        let committed = self
            .context
            .command(Command::Mint {
                amount: parse_amount("amount", &message.amount)?,
                memo: message.memo.into(),
                idempotency_key: message.idempotency_key.into(),
            })
            .await?;
        let Reply::Minted(supply) = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        Ok(Response::new(proto::MintResponse {
            total_supply: amount(supply.minted),
        }))
    }

    async fn set_issue_price(
        &self,
        request: Request<proto::SetIssuePriceRequest>,
    ) -> Result<Response<proto::SetIssuePriceResponse>, Status> {
        self.caller(&request, Role::Issuer)?;
        let message = request.into_inner();
        let tier = tier(message.tier)?;
        let price = parse_issue_price("price", &message.price)?;
        self.context
            .command(Command::SetIssuePrice { tier, price })
            .await?;
        Ok(Response::new(proto::SetIssuePriceResponse {}))
    }

    async fn get_supply(
        &self,
        request: Request<proto::GetSupplyRequest>,
    ) -> Result<Response<proto::GetSupplyResponse>, Status> {
        self.caller(&request, Role::Issuer)?;
        let Answer::Supply(supply) = self.context.query(Query::Supply).await? else {
            return Err(status::unexpected_answer());
        };
        Ok(Response::new(proto::GetSupplyResponse {
            minted: amount(supply.minted),
            treasury: amount(supply.treasury),
            circulating: amount(supply.circulating),
            spent: amount(supply.spent),
            seq: self.context.pipeline.committed_seq(),
        }))
    }
}
