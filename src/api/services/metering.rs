//! `Metering`: charges by platform services.

use tonic::{Request, Response, Status};

use super::unexpected;
use super::Api;
use crate::api::context::{amount, parse_amount, parse_id};
use crate::api::proto;
use crate::command::Command;
use crate::event::Reply;
use crate::types::{AccountId, Role};

#[tonic::async_trait]
impl proto::metering_server::Metering for Api {
    async fn charge(
        &self,
        request: Request<proto::ChargeRequest>,
    ) -> Result<Response<proto::ChargeResponse>, Status> {
        let caller = self.caller(&request, Role::Service)?;
        let message = request.into_inner();
        let charged = parse_amount("amount", &message.amount)?;
        let committed = self
            .context
            .command(Command::Charge {
                service: caller.account,
                account: AccountId(parse_id("account_id", &message.account_id)?),
                amount: charged,
                memo: message.memo.into(),
                idempotency_key: message.idempotency_key.into(),
            })
            .await?;
        let Reply::Charged { seq, .. } = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        Ok(Response::new(proto::ChargeResponse {
            amount: amount(charged),
            seq,
        }))
    }
}
