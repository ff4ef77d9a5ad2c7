//! `Metering`: charges by platform services, and their usage.

use std::sync::Arc;

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use super::unexpected;
use super::Api;
use crate::api::context::amount;
use crate::api::proto;
use crate::api::usage::{self, Owner};
use crate::event::Reply;
use crate::types::Role;

#[tonic::async_trait]
impl proto::metering_server::Metering for Api {
    async fn charge(
        &self,
        request: Request<proto::ChargeRequest>,
    ) -> Result<Response<proto::ChargeResponse>, Status> {
        let caller = self.caller(&request, Role::Service)?;
        let (charged, command) = crate::api::session::charge_command(caller, request.into_inner())?;
        let committed = self.context.command(command).await?;
        let Reply::Charged { seq, .. } = committed.reply else {
            return Err(unexpected(&committed.reply));
        };
        Ok(Response::new(proto::ChargeResponse {
            amount: amount(charged),
            seq,
        }))
    }

    type ChargeSessionStream = BoxStream<proto::ChargeSessionResponse>;

    async fn charge_session(
        &self,
        request: Request<Streaming<proto::ChargeSessionRequest>>,
    ) -> Result<Response<Self::ChargeSessionStream>, Status> {
        let caller = self.caller(&request, Role::Service)?;
        Ok(Response::new(crate::api::session::start::<
            crate::api::session::Charges,
        >(
            Arc::clone(&self.context),
            caller,
            request.into_inner(),
        )))
    }

    async fn get_service_usage(
        &self,
        request: Request<proto::GetServiceUsageRequest>,
    ) -> Result<Response<proto::GetServiceUsageResponse>, Status> {
        let caller = self.caller(&request, Role::Service)?;
        let message = request.into_inner();
        let asked = usage::asked_of!(message);
        let answer = usage::answer(&self.context, Owner::Service(caller.account), asked).await?;
        Ok(Response::new(proto::GetServiceUsageResponse {
            rows: answer
                .rows
                .into_iter()
                .map(|(start_ms, holder, sum)| proto::ServiceUsageRow {
                    account_id: holder.to_string(),
                    interval_start_ms: start_ms,
                    charges: sum.charges,
                    amount: amount(sum.amount),
                })
                .collect(),
            next_page_token: answer.next_page_token,
            seq: answer.seq,
            kept_from_ms: answer.kept_from_ms,
        }))
    }
}
