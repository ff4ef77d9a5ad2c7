//! `OrderSession`: order commands over one bidirectional stream, for high rates.
//!
//! Commands are converted and submitted to the pipeline in the order they arrive, without
//! waiting for the previous one to commit; a second task awaits their outcomes in the
//! same order and writes the responses. Both hand-offs are bounded, so a client that sends
//! faster than the exchange commits is slowed down, never buffered without end.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::codegen::BoxStream;
use tonic::{Status, Streaming};

use super::auth::Caller;
use super::context::{now_ms, parse_id};
use super::proto::order_session_response::Result as SessionResult;
use super::proto::{self, order_session_request::Command as SessionCommand};
use super::services::Api;
use super::status::from_failure;
use crate::command::Command;
use crate::event::Reply;
use crate::pipeline::{Answer, Outcome, Query};
use crate::types::OrderId;

/// Commands submitted and not yet answered, per session, at most.
const IN_FLIGHT_MAX: usize = 1_024;

/// What kind of response an outcome becomes.
#[derive(Clone, Copy)]
enum Kind {
    Place,
    Cancel,
    CancelAll,
    Amend,
}

/// A command on its way: submitted (with its outcome to await) or already refused.
struct Submitted {
    request_id: u64,
    kind: Kind,
    outcome: Result<oneshot::Receiver<Outcome>, Status>,
}

/// Starts the session's two tasks and returns the response stream.
pub fn start(
    api: Api,
    caller: Caller,
    requests: Streaming<proto::OrderSessionRequest>,
) -> BoxStream<proto::OrderSessionResponse> {
    let (submitted, pending) = mpsc::channel::<Submitted>(IN_FLIGHT_MAX);
    let (responses, output) = mpsc::channel(IN_FLIGHT_MAX);
    let api = Arc::new(api);
    tokio::spawn(read(
        Arc::clone(&api),
        caller,
        requests,
        submitted,
        responses.clone(),
    ));
    tokio::spawn(answer(api, pending, responses));
    Box::pin(ReceiverStream::new(output))
}

/// Reads commands, converts and submits them in order.
async fn read(
    api: Arc<Api>,
    caller: Caller,
    mut requests: Streaming<proto::OrderSessionRequest>,
    submitted: mpsc::Sender<Submitted>,
    responses: mpsc::Sender<Result<proto::OrderSessionResponse, Status>>,
) {
    let mut stopping = api.context().stopping.subscribe();
    loop {
        let next = tokio::select! {
            next = requests.next() => next,
            // The server is stopping: take no more commands; those submitted are answered.
            _ = stopping.wait_for(|stopping| *stopping) => return,
        };
        let Some(request) = next else { return };
        let request = match request {
            Ok(request) => request,
            Err(status) => {
                // The client's stream broke; say so and stop reading.
                let _ = responses.send(Err(status)).await;
                return;
            }
        };
        let request_id = request.request_id;
        let (kind, outcome) = match request.command {
            None => (
                Kind::Place,
                Err(Status::invalid_argument(
                    "command: one of place, cancel, cancel_all or amend is required",
                )),
            ),
            Some(command) => submit(&api, caller, command).await,
        };
        if submitted
            .send(Submitted {
                request_id,
                kind,
                outcome,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn submit(
    api: &Api,
    caller: Caller,
    command: SessionCommand,
) -> (Kind, Result<oneshot::Receiver<Outcome>, Status>) {
    let context = api.context();
    let (kind, command) = match command {
        SessionCommand::Place(message) => (
            Kind::Place,
            api.new_order(caller, message).map(Command::PlaceOrder),
        ),
        SessionCommand::Cancel(message) => (
            Kind::Cancel,
            Api::order_target(&message.order_id, &message.client_order_id).map(|target| {
                Command::CancelOrder {
                    account: caller.account,
                    target,
                }
            }),
        ),
        SessionCommand::CancelAll(message) => (
            Kind::CancelAll,
            if message.market.is_empty() {
                Ok(None)
            } else {
                context
                    .market("market", &message.market)
                    .map(|market| Some(market.id))
            }
            .map(|market| Command::CancelAllOrders {
                account: caller.account,
                market,
            }),
        ),
        SessionCommand::Amend(message) => (Kind::Amend, amend_command(api, caller, message).await),
    };
    let receiver = command.and_then(|command| {
        context
            .pipeline
            .submit(now_ms(), command)
            .map_err(|failure| from_failure(&failure))
    });
    (kind, receiver)
}

async fn amend_command(
    api: &Api,
    caller: Caller,
    message: proto::AmendOrderRequest,
) -> Result<Command, Status> {
    let context = api.context();
    let order_id = OrderId(parse_id("order_id", &message.order_id)?);
    let Answer::Order(Some(current)) = context
        .query(Query::OpenOrder {
            account: caller.account,
            order_id,
        })
        .await?
    else {
        return Err(Status::not_found(
            "order_id: no open order of yours has this id",
        ));
    };
    let market = context.market_at(current.market);
    let quantity = (!message.quantity.is_empty())
        .then(|| market.parse_quantity("quantity", &message.quantity))
        .transpose()?;
    let price = (!message.price.is_empty())
        .then(|| market.parse_price("price", &message.price))
        .transpose()?;
    Ok(Command::AmendOrder {
        account: caller.account,
        order_id,
        quantity,
        price,
    })
}

/// Awaits outcomes in submission order and writes the responses.
async fn answer(
    api: Arc<Api>,
    mut pending: mpsc::Receiver<Submitted>,
    responses: mpsc::Sender<Result<proto::OrderSessionResponse, Status>>,
) {
    while let Some(submitted) = pending.recv().await {
        let result = match submitted.outcome {
            Err(status) => Err(status),
            Ok(receiver) => match receiver.await {
                Err(_) => Err(Status::unavailable("the exchange stopped before answering")),
                Ok(Err(failure)) => Err(from_failure(&failure)),
                Ok(Ok(committed)) => Ok(respond(
                    &api,
                    submitted.kind,
                    &committed.reply,
                    &committed.events,
                )),
            },
        };
        let result = match result {
            Ok(result) => result,
            Err(status) => SessionResult::Error(proto::SessionError {
                code: status.code() as i32,
                message: status.message().to_string(),
            }),
        };
        let response = proto::OrderSessionResponse {
            request_id: submitted.request_id,
            result: Some(result),
        };
        if responses.send(Ok(response)).await.is_err() {
            return;
        }
    }
}

fn respond(api: &Api, kind: Kind, reply: &Reply, events: &[crate::event::Event]) -> SessionResult {
    let context = api.context();
    match (kind, reply) {
        (Kind::CancelAll, Reply::CanceledCount(count)) => {
            SessionResult::CanceledAll(proto::CancelAllOrdersResponse {
                canceled_count: *count,
            })
        }
        (_, reply @ (Reply::Order(_) | Reply::Placed(_))) => {
            let Some(view) = reply.order(events) else {
                return SessionResult::Error(proto::SessionError {
                    code: tonic::Code::Internal as i32,
                    message: format!("no order in the events of reply {reply:?}"),
                });
            };
            let market = context.market_at(view.market);
            let order = Some(market.order(&view));
            let fills = market.fills_of(view.order_id, events);
            match kind {
                Kind::Place => SessionResult::Placed(proto::PlaceOrderResponse { order, fills }),
                Kind::Amend => SessionResult::Amended(proto::AmendOrderResponse { order, fills }),
                Kind::Cancel | Kind::CancelAll => {
                    SessionResult::Canceled(proto::CancelOrderResponse { order })
                }
            }
        }
        (_, other) => SessionResult::Error(proto::SessionError {
            code: tonic::Code::Internal as i32,
            message: format!("unexpected reply {other:?}"),
        }),
    }
}
