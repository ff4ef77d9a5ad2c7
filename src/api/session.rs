//! `OrderSession`: order commands over one bidirectional stream, for high rates.
//!
//! The reader takes every request already received (up to `BATCH_MAX`), converts them,
//! and submits them to the pipeline as one batch with one reply channel; the answerer
//! awaits the batches in order and writes each batch's responses to the stream
//! together. No task, channel operation or oneshot per command. An amend is converted
//! with a query about its order, so the batch before it is submitted first and the
//! query sees what that batch did. Both hand-offs are bounded (`BATCHES_IN_FLIGHT_MAX`
//! batches of at most `BATCH_MAX` commands), so a client that sends faster than the
//! exchange commits is slowed down, never buffered without end.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::{Stream, StreamExt};
use tonic::codegen::BoxStream;
use tonic::{Status, Streaming};

use super::auth::Caller;
use super::context::now_ms;
use super::context::Context;
use super::proto::order_session_response::Result as SessionResult;
use super::proto::{self, order_session_request::Command as SessionCommand};
use super::status::from_failure;
use crate::command::Command;
use crate::event::Reply;
use crate::pipeline::Outcome;

/// Commands submitted as one batch, at most.
const BATCH_MAX: usize = 1_024;

/// Batches submitted and not yet answered, per session, at most.
const BATCHES_IN_FLIGHT_MAX: usize = 4;

/// What kind of response an outcome becomes.
#[derive(Clone, Copy)]
enum Kind {
    Place,
    Cancel,
    CancelAll,
    Amend,
}

/// A request of a batch: submitted (its outcome is the batch's next) or refused first.
struct Entry {
    request_id: u64,
    kind: Kind,
    refused: Option<Status>,
}

/// A batch on its way: its requests, the outcomes of those submitted, and the status
/// that ends the stream after it, if the client's stream broke.
struct Submitted {
    entries: Vec<Entry>,
    outcomes: Option<Result<oneshot::Receiver<Vec<Outcome>>, Status>>,
    then_end: Option<Status>,
}

type Responses = Vec<Result<proto::OrderSessionResponse, Status>>;

/// Starts the session's two tasks and returns the response stream.
pub fn start(
    context: Arc<Context>,
    caller: Caller,
    requests: Streaming<proto::OrderSessionRequest>,
) -> BoxStream<proto::OrderSessionResponse> {
    let (submitted, pending) = mpsc::channel::<Submitted>(BATCHES_IN_FLIGHT_MAX);
    let (responses, output) = mpsc::channel(BATCHES_IN_FLIGHT_MAX);
    tokio::spawn(read(Arc::clone(&context), caller, requests, submitted));
    tokio::spawn(answer(context, pending, responses));
    Box::pin(Batches {
        receiver: output,
        current: Vec::new().into_iter(),
    })
}

/// A batch being gathered: the requests and the commands to submit.
#[derive(Default)]
struct Gathered {
    entries: Vec<Entry>,
    commands: Vec<Command>,
}

impl Gathered {
    fn push(&mut self, request_id: u64, kind: Kind, command: Result<Command, Status>) {
        let refused = match command {
            Ok(command) => {
                self.commands.push(command);
                None
            }
            Err(status) => Some(status),
        };
        self.entries.push(Entry {
            request_id,
            kind,
            refused,
        });
    }

    /// Submits the commands as one batch and hands the batch to the answerer; false when
    /// the answerer is gone.
    async fn submit(
        &mut self,
        context: &Context,
        then_end: Option<Status>,
        submitted: &mpsc::Sender<Submitted>,
    ) -> bool {
        let Gathered { entries, commands } = std::mem::take(self);
        if entries.is_empty() && then_end.is_none() {
            return true;
        }
        let outcomes = (!commands.is_empty()).then(|| {
            context
                .pipeline
                .submit_all(now_ms(), commands)
                .map_err(|failure| from_failure(&failure))
        });
        let batch = Submitted {
            entries,
            outcomes,
            then_end,
        };
        submitted.send(batch).await.is_ok()
    }
}

/// Reads requests, every one already received at a time, converts them and submits them
/// in order.
async fn read(
    context: Arc<Context>,
    caller: Caller,
    mut requests: Streaming<proto::OrderSessionRequest>,
    submitted: mpsc::Sender<Submitted>,
) {
    let mut stopping = context.stopping.subscribe();
    loop {
        let first = tokio::select! {
            next = requests.next() => next,
            // The server is stopping: take no more commands; those submitted are answered.
            _ = stopping.wait_for(|stopping| *stopping) => return,
        };
        let mut received = Vec::new();
        let mut then_end = None;
        let mut ended = false;
        match first {
            None => return,
            Some(Ok(request)) => received.push(request),
            // The client's stream broke: say so after what came before, and stop reading.
            Some(Err(status)) => then_end = Some(status),
        }
        if then_end.is_none() {
            (ended, then_end) = drain(&mut requests, &mut received).await;
        }
        let mut gathered = Gathered::default();
        for request in received {
            let request_id = request.request_id;
            match request.command {
                None => gathered.push(
                    request_id,
                    Kind::Place,
                    Err(Status::invalid_argument(
                        "command: one of place, cancel, cancel_all or amend is required",
                    )),
                ),
                Some(SessionCommand::Amend(message)) => {
                    // The query about the order must follow the commands before it.
                    if !gathered.submit(&context, None, &submitted).await {
                        return;
                    }
                    let command = super::convert::amend_order(&context, caller, message).await;
                    gathered.push(request_id, Kind::Amend, command);
                }
                Some(command) => {
                    let (kind, command) = convert(&context, caller, command);
                    gathered.push(request_id, kind, command);
                }
            }
        }
        let broken = then_end.is_some();
        if !gathered.submit(&context, then_end, &submitted).await || broken || ended {
            return;
        }
    }
}

/// Moves every request already received (up to `BATCH_MAX` in all) into `received`,
/// without waiting; says whether the client ended its stream, or how it broke.
async fn drain(
    requests: &mut Streaming<proto::OrderSessionRequest>,
    received: &mut Vec<proto::OrderSessionRequest>,
) -> (bool, Option<Status>) {
    std::future::poll_fn(|context| {
        while received.len() < BATCH_MAX {
            match Pin::new(&mut *requests).poll_next(context) {
                Poll::Ready(Some(Ok(request))) => received.push(request),
                Poll::Ready(Some(Err(status))) => return Poll::Ready((false, Some(status))),
                Poll::Ready(None) => return Poll::Ready((true, None)),
                Poll::Pending => break,
            }
        }
        Poll::Ready((false, None))
    })
    .await
}

/// Converts a command other than an amend.
fn convert(
    context: &Context,
    caller: Caller,
    command: SessionCommand,
) -> (Kind, Result<Command, Status>) {
    match command {
        SessionCommand::Place(message) => (
            Kind::Place,
            super::convert::new_order(context, caller, message).map(Command::PlaceOrder),
        ),
        SessionCommand::Cancel(message) => (
            Kind::Cancel,
            super::convert::order_target(&message.order_id, &message.client_order_id).map(
                |target| Command::CancelOrder {
                    account: caller.account,
                    target,
                },
            ),
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
        SessionCommand::Amend(_) => (
            Kind::Amend,
            Err(Status::internal("an amend is converted with a query")),
        ),
    }
}

/// Awaits the batches' outcomes in submission order and writes each batch's responses.
async fn answer(
    context: Arc<Context>,
    mut pending: mpsc::Receiver<Submitted>,
    responses: mpsc::Sender<Responses>,
) {
    while let Some(batch) = pending.recv().await {
        let outcomes = match batch.outcomes {
            None => Ok(Vec::new()),
            Some(Err(status)) => Err(status),
            Some(Ok(receiver)) => receiver
                .await
                .map_err(|_| Status::unavailable("the exchange stopped before answering")),
        };
        let mut outcomes = outcomes.map(Vec::into_iter);
        let mut written: Responses = Vec::with_capacity(batch.entries.len() + 1);
        for entry in batch.entries {
            let result = match (entry.refused, &mut outcomes) {
                (Some(status), _) => Err(status),
                (None, Err(status)) => Err(status.clone()),
                (None, Ok(outcomes)) => match outcomes.next() {
                    Some(Ok(committed)) => Ok(respond(
                        &context,
                        entry.kind,
                        &committed.reply,
                        &committed.events,
                    )),
                    Some(Err(failure)) => Err(from_failure(&failure)),
                    None => Err(Status::internal("a command of the batch has no outcome")),
                },
            };
            let result = result.unwrap_or_else(|status| {
                SessionResult::Error(proto::SessionError {
                    code: status.code() as i32,
                    message: status.message().to_string(),
                })
            });
            written.push(Ok(proto::OrderSessionResponse {
                request_id: entry.request_id,
                result: Some(result),
            }));
        }
        written.extend(batch.then_end.map(Err));
        if responses.send(written).await.is_err() {
            return;
        }
    }
}

/// The response stream: the answerer's batches, one response at a time.
struct Batches {
    receiver: mpsc::Receiver<Responses>,
    current: std::vec::IntoIter<Result<proto::OrderSessionResponse, Status>>,
}

impl Stream for Batches {
    type Item = Result<proto::OrderSessionResponse, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(response) = self.current.next() {
                return Poll::Ready(Some(response));
            }
            match std::task::ready!(self.receiver.poll_recv(context)) {
                Some(batch) => self.current = batch.into_iter(),
                None => return Poll::Ready(None),
            }
        }
    }
}

fn respond(
    context: &Context,
    kind: Kind,
    reply: &Reply,
    events: &[crate::event::Event],
) -> SessionResult {
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
