//! Sessions: commands over one bidirectional stream, for high rates (`OrderSession`,
//! `ChargeSession`), each a [`Protocol`] over one engine.
//!
//! The reader takes every request already received (up to `BATCH_MAX`), converts them,
//! and submits them to the pipeline as one batch with one reply channel; the answerer
//! awaits the batches in order and writes each batch's responses to the stream
//! together. No task, channel operation or oneshot per command. A request converted with
//! a question to the exchange (an amend asks about its order) first submits the batch
//! before it, so the question sees what that batch did. Both hand-offs are bounded
//! (`BATCHES_IN_FLIGHT_MAX` batches of at most `BATCH_MAX` commands), so a client that
//! sends faster than the exchange commits is slowed down, never buffered without end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::{Stream, StreamExt};
use tonic::codegen::BoxStream;
use tonic::{Status, Streaming};

use super::auth::Caller;
use super::context::{amount, now_ms, parse_amount, parse_id, Context};
use super::order_encoding::{write_answer, Answer};
use super::proto;
use super::proto::charge_session_response::Result as ChargeResult;
use super::proto::order_session_request::Command as SessionCommand;
use super::proto::order_session_response::Result as SessionResult;
use super::status::{self, from_failure};
use crate::command::Command;
use crate::event::Reply;
use crate::pipeline::{Committed, Events, Outcome};
use crate::types::{AccountId, Amount};

/// Commands submitted as one batch, at most.
const BATCH_MAX: usize = 1_024;

/// Batches submitted and not yet answered, per session, at most. A batch holds what had
/// arrived when the reader woke, about 470 commands under one stream at a window of
/// 4,096: four such batches held under half of that window inside the exchange.
const BATCHES_IN_FLIGHT_MAX: usize = 8;

/// What a session speaks: its messages, how a request becomes a command, and how its
/// outcome becomes a response.
pub trait Protocol: Send + Sync + 'static {
    /// A request on the stream.
    type Request: Send + 'static;
    /// A response on the stream.
    type Response: Send + 'static;
    /// What building a request's response needs to know of it besides its outcome.
    type Kind: Send + 'static;
    /// Whether a response is built from the command's events as well as its reply: when
    /// not, the sequencer does not copy them for the session.
    const EVENTS: Events;

    /// The id the request's response echoes.
    fn request_id(request: &Self::Request) -> u64;

    /// Converts a request into a command, at once or with a question to the exchange.
    fn convert(
        context: &Arc<Context>,
        caller: Caller,
        request: Self::Request,
    ) -> (Self::Kind, Conversion);

    /// The response to a request: its committed outcome, or why it was refused.
    fn respond(
        context: &Context,
        request_id: u64,
        kind: Self::Kind,
        outcome: Result<Committed, Status>,
    ) -> Self::Response;
}

/// A request converted into a command.
pub enum Conversion {
    /// Converted from the request alone.
    Ready(Result<Command, Status>),
    /// Converted with a question to the exchange, which must follow the commands the
    /// session submitted before it.
    Asking(Pin<Box<dyn Future<Output = Result<Command, Status>> + Send>>),
}

/// A request of a batch: submitted (its outcome is the batch's next) or refused first.
struct Entry<K> {
    request_id: u64,
    kind: K,
    refused: Option<Status>,
}

/// A batch on its way: its requests, the outcomes of those submitted, and the status
/// that ends the stream after it, if the client's stream broke.
struct Submitted<K> {
    entries: Vec<Entry<K>>,
    outcomes: Option<Result<oneshot::Receiver<Vec<Outcome>>, Status>>,
    then_end: Option<Status>,
}

type Responses<R> = Vec<Result<R, Status>>;

/// Starts a session's two tasks and returns the response stream.
pub fn start<P: Protocol>(
    context: Arc<Context>,
    caller: Caller,
    requests: Streaming<P::Request>,
) -> BoxStream<P::Response> {
    let (submitted, pending) = mpsc::channel::<Submitted<P::Kind>>(BATCHES_IN_FLIGHT_MAX);
    let (responses, output) = mpsc::channel(BATCHES_IN_FLIGHT_MAX);
    tokio::spawn(read::<P>(Arc::clone(&context), caller, requests, submitted));
    tokio::spawn(answer::<P>(context, pending, responses));
    Box::pin(Batches {
        receiver: output,
        current: Vec::new().into_iter(),
    })
}

/// A batch being gathered: the requests and the commands to submit.
struct Gathered<K> {
    entries: Vec<Entry<K>>,
    commands: Vec<Command>,
}

impl<K> Gathered<K> {
    /// Room for `requests` requests, so that gathering a batch of them grows nothing.
    fn with_capacity(requests: usize) -> Gathered<K> {
        Gathered {
            entries: Vec::with_capacity(requests),
            commands: Vec::with_capacity(requests),
        }
    }

    fn push(&mut self, request_id: u64, kind: K, command: Result<Command, Status>) {
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
        (then_end, events): (Option<Status>, Events),
        submitted: &mpsc::Sender<Submitted<K>>,
    ) -> bool {
        let Gathered { entries, commands } = std::mem::replace(self, Gathered::with_capacity(0));
        if entries.is_empty() && then_end.is_none() {
            return true;
        }
        let outcomes = (!commands.is_empty()).then(|| {
            context
                .pipeline
                .submit_all(now_ms(), commands, events)
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
async fn read<P: Protocol>(
    context: Arc<Context>,
    caller: Caller,
    mut requests: Streaming<P::Request>,
    submitted: mpsc::Sender<Submitted<P::Kind>>,
) {
    let mut stopping = context.stopping.subscribe();
    // Kept from one batch to the next: the requests are moved out of it, and its room
    // stays, so that receiving a batch does not grow it again.
    let mut received = Vec::new();
    loop {
        let first = tokio::select! {
            next = requests.next() => next,
            // The server is stopping: take no more commands; those submitted are answered.
            _ = stopping.wait_for(|stopping| *stopping) => return,
        };
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
        let mut gathered = Gathered::with_capacity(received.len());
        for request in received.drain(..) {
            let request_id = P::request_id(&request);
            match P::convert(&context, caller, request) {
                (kind, Conversion::Ready(command)) => gathered.push(request_id, kind, command),
                (kind, Conversion::Asking(command)) => {
                    // The question must follow the commands before it.
                    if !gathered
                        .submit(&context, (None, P::EVENTS), &submitted)
                        .await
                    {
                        return;
                    }
                    gathered.push(request_id, kind, command.await);
                }
            }
        }
        let broken = then_end.is_some();
        if !gathered
            .submit(&context, (then_end, P::EVENTS), &submitted)
            .await
            || broken
            || ended
        {
            return;
        }
    }
}

/// Moves every request already received (up to `BATCH_MAX` in all) into `received`,
/// without waiting; says whether the client ended its stream, or how it broke.
async fn drain<T>(requests: &mut Streaming<T>, received: &mut Vec<T>) -> (bool, Option<Status>) {
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

/// Awaits the batches' outcomes in submission order and writes each batch's responses.
async fn answer<P: Protocol>(
    context: Arc<Context>,
    mut pending: mpsc::Receiver<Submitted<P::Kind>>,
    responses: mpsc::Sender<Responses<P::Response>>,
) {
    while let Some(batch) = pending.recv().await {
        let outcomes = match batch.outcomes {
            None => Ok(Vec::new()),
            Some(Err(status)) => Err(status),
            Some(Ok(receiver)) => receiver.await.map_err(|_| status::exchange_stopped()),
        };
        let mut outcomes = outcomes.map(Vec::into_iter);
        let mut written = Vec::with_capacity(batch.entries.len() + 1);
        for entry in batch.entries {
            let outcome = match (entry.refused, &mut outcomes) {
                (Some(status), _) => Err(status),
                (None, Err(status)) => Err(status.clone()),
                (None, Ok(outcomes)) => match outcomes.next() {
                    Some(Ok(committed)) => Ok(committed),
                    Some(Err(failure)) => Err(from_failure(&failure)),
                    None => Err(status::internal("a command of the batch has no outcome")),
                },
            };
            written.push(Ok(P::respond(
                &context,
                entry.request_id,
                entry.kind,
                outcome,
            )));
        }
        written.extend(batch.then_end.map(Err));
        if responses.send(written).await.is_err() {
            return;
        }
    }
}

/// The response stream: the answerer's batches, one response at a time.
struct Batches<R> {
    receiver: mpsc::Receiver<Responses<R>>,
    current: std::vec::IntoIter<Result<R, Status>>,
}

// Nothing in it is pinned: the receiver and the iterator move freely.
impl<R> Unpin for Batches<R> {}

impl<R> Stream for Batches<R> {
    type Item = Result<R, Status>;

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

/// A session error for the wire.
fn session_error(status: &Status) -> proto::SessionError {
    proto::SessionError {
        code: status.code() as i32,
        message: status.message().to_string(),
    }
}

/// `OrderSession`: places, cancels, cancels all and amends.
pub struct Orders;

/// What kind of response an order command's outcome becomes.
#[derive(Clone, Copy)]
pub enum Kind {
    Place,
    Cancel,
    CancelAll,
    Amend,
}

impl Protocol for Orders {
    type Request = proto::OrderSessionRequest;
    type Response = proto::OrderSessionResponse;
    type Kind = Kind;
    /// A new order's state and fills are rebuilt from its events.
    const EVENTS: Events = Events::Kept;

    fn request_id(request: &Self::Request) -> u64 {
        request.request_id
    }

    fn convert(
        context: &Arc<Context>,
        caller: Caller,
        request: Self::Request,
    ) -> (Kind, Conversion) {
        match request.command {
            None => (
                Kind::Place,
                Conversion::Ready(Err(status::invalid(
                    "command",
                    "one of place, cancel, cancel_all or amend is required",
                ))),
            ),
            Some(SessionCommand::Amend(message)) => {
                let context = Arc::clone(context);
                (
                    Kind::Amend,
                    Conversion::Asking(Box::pin(async move {
                        super::convert::amend_order(&context, caller, message).await
                    })),
                )
            }
            Some(command) => {
                let (kind, command) = convert(context, caller, command);
                (kind, Conversion::Ready(command))
            }
        }
    }

    fn respond(
        context: &Context,
        request_id: u64,
        kind: Kind,
        outcome: Result<Committed, Status>,
    ) -> Self::Response {
        match outcome {
            Ok(committed) => respond(context, (request_id, kind), &committed),
            Err(status) => proto::OrderSessionResponse::of(
                request_id,
                SessionResult::Error(session_error(&status)),
            ),
        }
    }
}

/// `ChargeSession`: charges by the calling service.
pub struct Charges;

impl Protocol for Charges {
    type Request = proto::ChargeSessionRequest;
    type Response = proto::ChargeSessionResponse;
    /// The amount charged, echoed in the response.
    type Kind = Amount;
    /// The reply holds the charge's seq, all a response needs.
    const EVENTS: Events = Events::Dropped;

    fn request_id(request: &Self::Request) -> u64 {
        request.request_id
    }

    fn convert(
        _context: &Arc<Context>,
        caller: Caller,
        request: Self::Request,
    ) -> (Amount, Conversion) {
        let Some(charge) = request.charge else {
            return (
                Amount::ZERO,
                Conversion::Ready(Err(status::invalid("charge", "is required"))),
            );
        };
        match charge_command(caller, charge) {
            Ok((charged, command)) => (charged, Conversion::Ready(Ok(command))),
            Err(status) => (Amount::ZERO, Conversion::Ready(Err(status))),
        }
    }

    fn respond(
        _context: &Context,
        request_id: u64,
        charged: Amount,
        outcome: Result<Committed, Status>,
    ) -> Self::Response {
        let result = match outcome.map(|committed| committed.reply) {
            Ok(Reply::Charged { seq, .. }) => ChargeResult::Charged(proto::ChargeResponse {
                amount: amount(charged),
                seq,
            }),
            Ok(other) => ChargeResult::Error(session_error(&status::internal(format!(
                "unexpected reply {other:?}"
            )))),
            Err(status) => ChargeResult::Error(session_error(&status)),
        };
        proto::ChargeSessionResponse {
            request_id,
            result: Some(result),
        }
    }
}

/// A charge by `caller` (a service) from `ChargeRequest`, and the amount it charges.
pub fn charge_command(
    caller: Caller,
    message: proto::ChargeRequest,
) -> Result<(Amount, Command), Status> {
    let charged = parse_amount("amount", &message.amount)?;
    let command = Command::Charge {
        service: caller.account,
        account: AccountId(parse_id("account_id", &message.account_id)?),
        amount: charged,
        memo: message.memo.into(),
        idempotency_key: message.idempotency_key.into(),
    };
    Ok((charged, command))
}

/// Converts an order command other than an amend.
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
            Err(status::internal("an amend is converted with a query")),
        ),
    }
}

/// The answer to a committed order command: an order's written straight from its view
/// and events (`order_encoding.rs`).
fn respond(
    context: &Context,
    (request_id, kind): (u64, Kind),
    committed: &Committed,
) -> proto::OrderSessionResponse {
    let internal = |message: String| {
        proto::OrderSessionResponse::of(
            request_id,
            SessionResult::Error(proto::SessionError {
                code: tonic::Code::Internal as i32,
                message,
            }),
        )
    };
    match (kind, &committed.reply) {
        (Kind::CancelAll, Reply::CanceledCount(count)) => proto::OrderSessionResponse::of(
            request_id,
            SessionResult::CanceledAll(proto::CancelAllOrdersResponse {
                canceled_count: *count,
            }),
        ),
        (_, reply @ (Reply::Order(_) | Reply::Placed(_))) => {
            let events = &committed.events;
            let Some(view) = reply.order(events) else {
                return internal(format!("no order in the events of reply {reply:?}"));
            };
            let answer = match kind {
                Kind::Place => Answer::Placed,
                Kind::Amend => Answer::Amended,
                Kind::Cancel | Kind::CancelAll => Answer::Canceled,
            };
            let market = context.market_at(view.terms.market);
            let size = context.config.server.message_bytes_max;
            proto::OrderSessionResponse::encoded(request_id, |buffer| {
                write_answer(&market, answer, (&view, events), size, buffer);
            })
        }
        (_, other) => internal(format!("unexpected reply {other:?}")),
    }
}
