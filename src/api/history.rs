//! An account's history for the wire: its ledger entries (every movement of every asset,
//! with the balance after it) and its fills, derived from the events the store keeps.

use super::context::{amount, Context};
use super::decimal::format_units;
use super::decimal::AMOUNT_PLACES;
use super::proto;
use crate::event::{Event, EventKind};
use crate::types::{AccountId, Amount, Asset, Balance, Side};

/// The fills among an account's events, for the wire.
pub fn fills(context: &Context, account: AccountId, events: &[Event]) -> Vec<proto::Fill> {
    events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::Fill(fill) => {
                let order = if fill.taker_account == account {
                    fill.taker_order
                } else {
                    fill.maker_order
                };
                context
                    .market_at(fill.market)
                    .fills_of(order, std::slice::from_ref(event))
                    .pop()
            }
            _ => None,
        })
        .collect()
}

/// A signed change of micro-units for the wire (`"-1.500000"`).
fn signed(change: i128) -> String {
    let magnitude = u64::try_from(change.unsigned_abs()).unwrap_or(u64::MAX);
    let text = format_units(magnitude, AMOUNT_PLACES);
    if change < 0 {
        format!("-{text}")
    } else {
        text
    }
}

fn entry(
    event: &Event,
    kind: &str,
    asset: Asset,
    available_change: i128,
    held_change: i128,
    after: Balance,
    reference: String,
) -> proto::LedgerEntry {
    proto::LedgerEntry {
        seq: event.seq,
        time_ms: event.timestamp_ms,
        kind: kind.to_string(),
        asset: asset.symbol().to_string(),
        available_change: signed(available_change),
        held_change: signed(held_change),
        available_after: amount(after.available),
        held_after: amount(after.held),
        reference,
    }
}

fn plus(value: Amount) -> i128 {
    i128::from(value.0)
}

fn minus(value: Amount) -> i128 {
    -i128::from(value.0)
}

/// The two entries of a purchase from the treasury (`kind` "purchase" or "auto_top_up"):
/// the dollars paid and the divmids bought.
fn purchase_entries(
    event: &Event,
    kind: &str,
    (quantity, cost): (Amount, Amount),
    after: &crate::types::Balances,
    reference: &str,
) -> Vec<proto::LedgerEntry> {
    vec![
        entry(
            event,
            kind,
            Asset::Usd,
            minus(cost),
            0,
            after[Asset::Usd.index()],
            reference.to_string(),
        ),
        entry(
            event,
            kind,
            Asset::Dvm,
            plus(quantity),
            0,
            after[Asset::Dvm.index()],
            reference.to_string(),
        ),
    ]
}

/// The ledger entries one event makes in `account`, newest last.
pub fn ledger_entries(
    context: &Context,
    account: AccountId,
    event: &Event,
) -> Vec<proto::LedgerEntry> {
    match &event.kind {
        EventKind::Fill(fill) => fill_entries(context, account, event, fill),
        EventKind::OrderAccepted(_)
        | EventKind::OrderReduced { .. }
        | EventKind::OrderDone { .. }
        | EventKind::OrderReplaced { .. } => order_entries(event),
        EventKind::DivmidsBought { .. } | EventKind::AutoToppedUp { .. } => {
            purchases_of(account, event)
        }
        _ => money_entries(account, event),
    }
}

/// The entries of a purchase from the treasury, by the buyer or by its automatic top-up,
/// in the buyer's account (the treasury's side is not listed).
fn purchases_of(account: AccountId, event: &Event) -> Vec<proto::LedgerEntry> {
    match &event.kind {
        EventKind::DivmidsBought {
            account: buyer,
            quantity,
            cost,
            idempotency_key,
            account_after,
            ..
        } if *buyer == account => purchase_entries(
            event,
            "purchase",
            (*quantity, *cost),
            account_after,
            idempotency_key,
        ),
        EventKind::AutoToppedUp {
            account: holder,
            quantity,
            cost,
            account_after,
            ..
        } if *holder == account => {
            purchase_entries(event, "auto_top_up", (*quantity, *cost), account_after, "")
        }
        _ => Vec::new(),
    }
}

/// The entries of money entering, leaving or spent: deposits, withdrawals and charges.
fn money_entries(account: AccountId, event: &Event) -> Vec<proto::LedgerEntry> {
    match &event.kind {
        EventKind::Deposited {
            amount: deposited,
            idempotency_key,
            balance_after,
            ..
        } => vec![entry(
            event,
            "deposit",
            Asset::Usd,
            plus(*deposited),
            0,
            *balance_after,
            idempotency_key.to_string(),
        )],
        EventKind::Withdrawn {
            amount: withdrawn,
            idempotency_key,
            balance_after,
            ..
        } => vec![entry(
            event,
            "withdrawal",
            Asset::Usd,
            minus(*withdrawn),
            0,
            *balance_after,
            idempotency_key.to_string(),
        )],
        EventKind::Charged {
            account: charged,
            amount: taken,
            idempotency_key,
            balance_after,
            ..
        } if *charged == account => vec![entry(
            event,
            "charge",
            Asset::Dvm,
            minus(*taken),
            0,
            *balance_after,
            idempotency_key.to_string(),
        )],
        EventKind::Minted { .. }
        | EventKind::AccountCreated { .. }
        | EventKind::TokenChanged { .. }
        | EventKind::IssuePriceSet { .. }
        | EventKind::EngineConfigured
        | EventKind::DivmidsBought { .. }
        | EventKind::AutoToppedUp { .. }
        | EventKind::AutoTopUpSet { .. }
        | EventKind::SpendLimitSet { .. }
        | EventKind::Charged { .. }
        | EventKind::OrderAccepted(_)
        | EventKind::OrderReduced { .. }
        | EventKind::OrderReplaced { .. }
        | EventKind::OrderRested { .. }
        | EventKind::OrderDone { .. }
        | EventKind::Fill(_) => Vec::new(),
    }
}

/// The entries of an order's holds and releases.
fn order_entries(event: &Event) -> Vec<proto::LedgerEntry> {
    match &event.kind {
        EventKind::OrderAccepted(order) if !order.hold.is_zero() => vec![entry(
            event,
            "order_hold",
            order.hold_asset,
            minus(order.hold),
            plus(order.hold),
            order.balance_after,
            order.order_id.to_string(),
        )],
        EventKind::OrderReduced {
            order_id,
            asset,
            released,
            balance_after,
            ..
        }
        | EventKind::OrderDone {
            order_id,
            asset,
            released,
            balance_after,
            ..
        } if !released.is_zero() => vec![entry(
            event,
            "order_release",
            *asset,
            plus(*released),
            minus(*released),
            *balance_after,
            order_id.to_string(),
        )],
        EventKind::OrderReplaced {
            order_id,
            asset,
            hold_before,
            hold_after,
            balance_after,
            ..
        } if hold_before != hold_after => {
            let change = plus(*hold_after) - plus(*hold_before);
            vec![entry(
                event,
                "order_hold",
                *asset,
                -change,
                change,
                *balance_after,
                order_id.to_string(),
            )]
        }
        _ => Vec::new(),
    }
}

/// The two entries of a trade in `account`: the base asset and the quote asset.
fn fill_entries(
    context: &Context,
    account: AccountId,
    event: &Event,
    fill: &crate::event::Fill,
) -> Vec<proto::LedgerEntry> {
    let spec = &context.config.engine.markets[usize::from(fill.market.0)];
    let grid = spec.grid();
    let notional = i128::from(grid.notional(fill.price, fill.quantity.0).0);
    let delivered = i128::from(grid.base_amount(fill.quantity.0).0);
    let is_taker = fill.taker_account == account;
    let after = if is_taker {
        fill.taker_after
    } else {
        fill.maker_after
    };
    let side = if is_taker {
        fill.taker_side
    } else {
        fill.taker_side.opposite()
    };
    let reference = fill.trade_id.to_string();
    let (base, quote) = (spec.base, spec.quote);
    let (base_change, quote_change) = match side {
        // A resting bid paid its own price out of its hold; an incoming limit bid
        // paid out of a hold at its limit and got the difference back; a market
        // buy paid out of available funds.
        Side::Buy if !is_taker => ((delivered, 0), (0, -notional)),
        Side::Buy if fill.taker_paid_from_available => ((delivered, 0), (-notional, 0)),
        Side::Buy => {
            let released = i128::from(fill.taker_released.0);
            ((delivered, 0), (released, -(notional + released)))
        }
        Side::Sell => ((0, -delivered), (notional, 0)),
    };
    vec![
        entry(
            event,
            "trade",
            base,
            base_change.0,
            base_change.1,
            after[base.index()],
            reference.clone(),
        ),
        entry(
            event,
            "trade",
            quote,
            quote_change.0,
            quote_change.1,
            after[quote.index()],
            reference,
        ),
    ]
}
