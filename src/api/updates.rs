//! `StreamOrderUpdates`: a trader's order changes and fills, through the event streams of
//! `streams.rs` (the journal after `from_seq`, then live; no gap, no duplicate; bounded).

use std::collections::HashMap;
use std::sync::Arc;

use tonic::codegen::BoxStream;
use tonic::Status;

use super::context::Context;
use super::proto;
use crate::event::{Event, EventKind, OrderView};
use crate::store::accounts_of;
use crate::types::{AccountId, OrderId};

/// Starts the stream for `account` from after `from_seq` (live only without it).
pub fn start(
    context: Arc<Context>,
    account: AccountId,
    from_seq: Option<u64>,
) -> Result<BoxStream<proto::OrderUpdate>, Status> {
    let mut orders = Orders::default();
    let converter = Arc::clone(&context);
    super::streams::start(
        context,
        super::context::StreamKind::Authenticated,
        from_seq,
        move |event: &Event| accounts_of(event).any(|of| of == account),
        move |event: &Event| updates(&converter, account, event, &mut orders),
    )
}

/// What the stream knows of the orders it reports: their fixed parameters, from their
/// acceptance (in the stream or in history).
#[derive(Default)]
struct Orders {
    known: HashMap<OrderId, OrderView>,
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
            context.market_at(view.terms.market).order(view),
        )),
    };
    match &event.kind {
        EventKind::OrderAccepted(accepted) => {
            let view = accepted.view(event.seq);
            let update = order_update(&view);
            orders.known.insert(accepted.order_id, view);
            vec![update]
        }
        EventKind::Fill(fill) => {
            let mut updates = Vec::new();
            for (order_id, owner) in [
                (fill.maker_order, fill.maker_account),
                (fill.taker_order, fill.taker_account),
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
                    view.apply(&event.kind);
                }
            }
            updates
        }
        EventKind::OrderReduced { order_id, .. } | EventKind::OrderReplaced { order_id, .. } => {
            orders
                .view(context, *order_id)
                .map(|view| {
                    view.apply(&event.kind);
                    vec![order_update(view)]
                })
                .unwrap_or_default()
        }
        EventKind::OrderDone { order_id, .. } => {
            let update = orders.view(context, *order_id).map(|view| {
                view.apply(&event.kind);
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
