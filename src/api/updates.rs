//! `StreamOrderUpdates`: a trader's order changes and fills, those after `from_seq` out
//! of the journal, then live ones from the pipeline's broadcast, with no gap and no
//! duplicate: the broadcast is subscribed to before the journal is read, and every event is
//! sent once, in sequence order.
//!
//! Memory is bounded: the hand-off to the client is a bounded channel, and a subscriber
//! that falls behind the broadcast is ended with `ABORTED` and the sequence number to
//! resume from.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::Status;

use super::context::Context;
use super::proto;
use crate::event::{AcceptedOrder, Event, EventKind, OrderView};
use crate::store::accounts_of;
use crate::types::{AccountId, OrderId, OrderStatus, Quantity};

/// Updates waiting for the client, at most.
const BUFFERED_MAX: usize = 1_024;
/// Events read from the journal per step of the replay.
const EVENTS_PER_READ: usize = 1_024;

/// Starts the stream for `account` from after `from_seq` (live only when 0).
pub fn start(
    context: Arc<Context>,
    account: AccountId,
    from_seq: u64,
) -> BoxStream<proto::OrderUpdate> {
    let (sender, receiver) = mpsc::channel(BUFFERED_MAX);
    tokio::spawn(async move {
        if let Err(status) = run(&context, account, from_seq, &sender).await {
            let _ = sender.send(Err(status)).await;
        }
    });
    Box::pin(ReceiverStream::new(receiver))
}

type Sender = mpsc::Sender<Result<proto::OrderUpdate, Status>>;

/// What the stream knows of the orders it reports: their fixed parameters, from their
/// acceptance (in the stream or in history).
#[derive(Default)]
struct Orders {
    known: HashMap<OrderId, OrderView>,
}

async fn run(
    context: &Arc<Context>,
    account: AccountId,
    from_seq: u64,
    sender: &Sender,
) -> Result<(), Status> {
    let mut live = context.pipeline.subscribe();
    let start = context.pipeline.committed_seq();
    let mut orders = Orders::default();
    let mut last_sent = if from_seq == 0 { start } else { from_seq };
    // The journal from `from_seq` up to where the live feed starts.
    while last_sent < start {
        let history = context.history.clone();
        let after = last_sent;
        let page = tokio::task::spawn_blocking(move || {
            history.events_after(
                after,
                EVENTS_PER_READ,
                EVENTS_PER_READ * 64,
                start,
                move |event| accounts_of(event).contains(&account),
            )
        })
        .await
        .map_err(|_| Status::internal("the history reader stopped"))?
        .map_err(|error| Status::internal(format!("history: {error}")))?;
        for event in &page.events {
            if !send(context, account, event, &mut orders, sender).await {
                return Ok(());
            }
        }
        // Where the page stopped looking; the end of the replay when nothing is left.
        last_sent = page.next.unwrap_or(start);
    }
    let mut stopping = context.stopping.subscribe();
    loop {
        let received = tokio::select! {
            received = live.recv() => received,
            _ = stopping.wait_for(|stopping| *stopping) => {
                return Err(Status::unavailable(format!(
                    "the server is shutting down; resubscribe with from_seq = {last_sent}"
                )));
            }
        };
        match received {
            Ok(events) => {
                for event in events.iter() {
                    if event.seq <= last_sent {
                        continue;
                    }
                    if accounts_of(event).contains(&account)
                        && !send(context, account, event, &mut orders, sender).await
                    {
                        return Ok(());
                    }
                    last_sent = event.seq;
                }
            }
            Err(RecvError::Lagged(_)) => {
                return Err(Status::aborted(format!(
                    "the stream fell behind; resubscribe with from_seq = {last_sent}"
                )));
            }
            Err(RecvError::Closed) => return Err(Status::unavailable("the exchange is stopping")),
        }
    }
}

/// Sends the updates one event makes; false once the client is gone.
async fn send(
    context: &Context,
    account: AccountId,
    event: &Event,
    orders: &mut Orders,
    sender: &Sender,
) -> bool {
    for update in updates(context, account, event, orders) {
        if sender.send(Ok(update)).await.is_err() {
            return false;
        }
    }
    true
}

fn updates(
    context: &Context,
    account: AccountId,
    event: &Event,
    orders: &mut Orders,
) -> Vec<proto::OrderUpdate> {
    let order_update = |view: &OrderView| proto::OrderUpdate {
        seq: event.seq,
        update: Some(proto::order_update::Update::Order(
            context.market_at(view.market).order(view),
        )),
    };
    match &event.kind {
        EventKind::OrderAccepted(accepted) => {
            let view = accepted_view(accepted, event.seq);
            let update = order_update(&view);
            orders.known.insert(accepted.order_id, view);
            vec![update]
        }
        EventKind::Fill(fill) => {
            let mut updates = Vec::new();
            for (order_id, owner, filled) in [
                (fill.maker_order, fill.maker_account, fill.maker_filled),
                (fill.taker_order, fill.taker_account, fill.taker_filled),
            ] {
                if owner != account {
                    continue;
                }
                let market = context.market_at(fill.market);
                updates.extend(
                    market
                        .fills_of(order_id, std::slice::from_ref(event))
                        .into_iter()
                        .map(|fill| proto::OrderUpdate {
                            seq: event.seq,
                            update: Some(proto::order_update::Update::Fill(fill)),
                        }),
                );
                if let Some(view) = orders.view(context, order_id) {
                    view.filled = filled;
                    if !view.status.is_final() {
                        view.status = OrderStatus::PartiallyFilled;
                    }
                }
            }
            updates
        }
        EventKind::OrderReduced {
            order_id,
            quantity_after,
            ..
        } => orders
            .view(context, *order_id)
            .map(|view| {
                view.quantity = *quantity_after;
                vec![order_update(view)]
            })
            .unwrap_or_default(),
        EventKind::OrderReplaced {
            order_id,
            price,
            quantity,
            ..
        } => orders
            .view(context, *order_id)
            .map(|view| {
                view.price = Some(*price);
                view.quantity = *quantity;
                vec![order_update(view)]
            })
            .unwrap_or_default(),
        EventKind::OrderDone {
            order_id,
            status,
            quantity,
            filled,
            ..
        } => {
            let update = orders.view(context, *order_id).map(|view| {
                view.status = *status;
                view.quantity = *quantity;
                view.filled = *filled;
                order_update(view)
            });
            orders.known.remove(order_id);
            update.into_iter().collect()
        }
        _ => Vec::new(),
    }
}

impl Orders {
    /// The order's state as this stream knows it, fetching its fixed parameters from
    /// history when the stream began after its acceptance.
    fn view(&mut self, context: &Context, order_id: OrderId) -> Option<&mut OrderView> {
        match self.known.entry(order_id) {
            std::collections::hash_map::Entry::Occupied(entry) => Some(entry.into_mut()),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let view = context.history.order(order_id).ok().flatten()?;
                Some(entry.insert(view))
            }
        }
    }
}

fn accepted_view(accepted: &AcceptedOrder, seq: u64) -> OrderView {
    OrderView {
        order_id: accepted.order_id,
        account: accepted.account,
        client_order_id: accepted.client_order_id.clone(),
        market: accepted.market,
        side: accepted.side,
        order_type: accepted.order_type,
        price: accepted.price,
        quantity: accepted.quantity,
        filled: Quantity::ZERO,
        status: OrderStatus::Open,
        time_in_force: accepted.time_in_force,
        post_only: accepted.post_only,
        self_trade_prevention: accepted.self_trade_prevention,
        created_seq: seq,
    }
}
