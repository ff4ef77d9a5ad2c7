//! Requests on the wire to the sequencer's commands: what the unary handlers and the
//! order session share. Every refusal names the field.

use tonic::Status;

use super::auth::Caller;
use super::context::{parse_id, required, Context};
use super::proto;
use super::status;
use crate::command::{Command, NewOrder, OrderRef};
use crate::pipeline::{Answer, Query};
use crate::types::{OrderId, OrderTerms, OrderType, SelfTradePrevention, Side, TimeInForce};

/// A new order from `PlaceOrderRequest`, placed by `caller`.
pub fn new_order(
    context: &Context,
    caller: Caller,
    message: proto::PlaceOrderRequest,
) -> Result<NewOrder, Status> {
    let market = context.market("market", &message.market)?;
    let side = required("side", message.side, |value| {
        match proto::Side::try_from(value).ok()? {
            proto::Side::Buy => Some(Side::Buy),
            proto::Side::Sell => Some(Side::Sell),
            proto::Side::Unspecified => None,
        }
    })?;
    let order_type = required(
        "type",
        message.r#type,
        |value| match proto::OrderType::try_from(value).ok()? {
            proto::OrderType::Limit => Some(OrderType::Limit),
            proto::OrderType::Market => Some(OrderType::Market),
            proto::OrderType::Unspecified => None,
        },
    )?;
    let time_in_force = match proto::TimeInForce::try_from(message.time_in_force) {
        Ok(proto::TimeInForce::Unspecified) => match order_type {
            OrderType::Limit => TimeInForce::GoodTillCanceled,
            OrderType::Market => TimeInForce::ImmediateOrCancel,
        },
        Ok(proto::TimeInForce::Gtc) => TimeInForce::GoodTillCanceled,
        Ok(proto::TimeInForce::Ioc) => TimeInForce::ImmediateOrCancel,
        Ok(proto::TimeInForce::Fok) => TimeInForce::FillOrKill,
        Err(_) => return Err(status::invalid("time_in_force", "unknown value")),
    };
    let self_trade_prevention =
        match proto::SelfTradePrevention::try_from(message.self_trade_prevention) {
            Ok(
                proto::SelfTradePrevention::Unspecified | proto::SelfTradePrevention::CancelTaker,
            ) => SelfTradePrevention::CancelTaker,
            Ok(proto::SelfTradePrevention::CancelMaker) => SelfTradePrevention::CancelMaker,
            Ok(proto::SelfTradePrevention::CancelBoth) => SelfTradePrevention::CancelBoth,
            Ok(proto::SelfTradePrevention::Decrement) => SelfTradePrevention::Decrement,
            Err(_) => return Err(status::invalid("self_trade_prevention", "unknown value")),
        };
    let price = match (order_type, message.price.is_empty()) {
        (OrderType::Market, true) => None,
        _ => Some(market.parse_price("price", &message.price)?),
    };
    Ok(NewOrder {
        account: caller.account,
        terms: OrderTerms {
            market: market.id,
            side,
            order_type,
            price,
            quantity: market.parse_quantity("quantity", &message.quantity)?,
            time_in_force,
            post_only: message.post_only,
            self_trade_prevention,
        },
        client_order_id: (!message.client_order_id.is_empty())
            .then(|| message.client_order_id.into_boxed_str()),
    })
}

/// The order a cancel names: by the exchange's id or the caller's, exactly one.
pub fn order_target(order_id: &str, client_order_id: &str) -> Result<OrderRef, Status> {
    match (order_id.is_empty(), client_order_id.is_empty()) {
        (false, true) => Ok(OrderRef::Id(OrderId(parse_id("order_id", order_id)?))),
        (true, false) => Ok(OrderRef::Client(client_order_id.into())),
        _ => Err(status::invalid(
            "order_id",
            "give exactly one of order_id and client_order_id",
        )),
    }
}

/// An amend from `AmendOrderRequest`: the order must be one of the caller's open orders
/// (asked of the exchange, in order after what the caller submitted before), whose
/// market's grid the new quantity and price must fit.
pub async fn amend_order(
    context: &Context,
    caller: Caller,
    message: proto::AmendOrderRequest,
) -> Result<Command, Status> {
    let order_id = OrderId(parse_id("order_id", &message.order_id)?);
    let Answer::Order(Some(current)) = context
        .query(Query::OpenOrder {
            account: caller.account,
            order_id,
        })
        .await?
    else {
        return Err(status::not_found(
            "order_id",
            "no open order of yours has this id",
        ));
    };
    let market = context.market_at(current.terms.market);
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
