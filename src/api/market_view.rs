//! A market as the wire sees it: its prices and quantities parsed from and written as
//! decimals on its tick and lot, and its orders and fills as messages.
//!
//! What this is not: a place that knows the exchange's state or the handlers' context;
//! it converts one market's values and nothing else.

use tonic::Status;

use super::decimal::{parse_units, Digits, AMOUNT_PLACES};
use super::proto;
use super::status::{self, from_reject};
use crate::config::MarketSpec;
use crate::error::Reject;
use crate::event::{Event, EventKind, OrderView};
use crate::types::{
    Liquidity, MarketId, OrderId, OrderStatus, OrderType, Price, Quantity, SelfTradePrevention,
    Side, TimeInForce,
};

/// A market and the conversions of its prices and quantities.
#[derive(Clone, Copy)]
pub struct MarketView<'a> {
    /// Its id.
    pub id: MarketId,
    /// Its specification.
    pub spec: &'a MarketSpec,
}

impl MarketView<'_> {
    /// A price from the wire, on the tick.
    pub fn parse_price(&self, field: &'static str, text: &str) -> Result<Price, Status> {
        let ticks = self.parse_steps(field, text, self.spec.tick_micros, || {
            format!("is not on the market's tick of {}", self.price(Price(1)))
        })?;
        Ok(Price(ticks))
    }

    /// A quantity from the wire, on the lot.
    pub fn parse_quantity(&self, field: &'static str, text: &str) -> Result<Quantity, Status> {
        let lots = self.parse_steps(field, text, self.spec.lot_micros, || {
            format!(
                "is not a whole number of the market's lot of {}",
                self.quantity(Quantity(1))
            )
        })?;
        Ok(Quantity(lots))
    }

    /// A wire decimal as a whole number of steps of `step_micros` (a tick or a lot);
    /// `off_step` says what is wrong with a value between two steps.
    fn parse_steps(
        &self,
        field: &'static str,
        text: &str,
        step_micros: u64,
        off_step: impl FnOnce() -> String,
    ) -> Result<u64, Status> {
        // A step is a whole number of micro-units: what a micro-unit cannot hold is off
        // the step, which is what the caller needs to know.
        let micros = match parse_units(field, text, AMOUNT_PLACES) {
            Ok(micros) if micros.is_multiple_of(step_micros) => micros,
            Ok(_) | Err(Reject::TooPrecise { .. }) => {
                return Err(status::invalid(field, off_step()))
            }
            Err(reject) => return Err(from_reject(&reject)),
        };
        Ok(micros / step_micros)
    }

    /// A price for the wire, with exactly the tick's decimals.
    pub fn price(&self, price: Price) -> String {
        self.price_digits(price).as_str().to_owned()
    }

    /// A quantity for the wire, with exactly the lot's decimals.
    pub fn quantity(&self, quantity: Quantity) -> String {
        self.quantity_digits(quantity).as_str().to_owned()
    }

    /// [`MarketView::price`], on the stack.
    pub fn price_digits(&self, price: Price) -> Digits {
        steps_digits(
            price.0,
            self.spec.tick_micros,
            self.spec.price_decimal_places(),
        )
    }

    /// [`MarketView::quantity`], on the stack.
    pub fn quantity_digits(&self, quantity: Quantity) -> Digits {
        steps_digits(
            quantity.0,
            self.spec.lot_micros,
            self.spec.quantity_decimal_places(),
        )
    }

    /// An order for the wire.
    pub fn order(&self, view: &OrderView) -> proto::Order {
        proto::Order {
            order_id: view.order_id.0.to_string(),
            client_order_id: view
                .client_order_id
                .as_deref()
                .unwrap_or_default()
                .to_string(),
            market: self.spec.name.clone(),
            side: side_to_wire(view.terms.side) as i32,
            r#type: order_type_to_wire(view.terms.order_type) as i32,
            price: view
                .terms
                .price
                .map(|price| self.price(price))
                .unwrap_or_default(),
            quantity: self.quantity(view.terms.quantity),
            filled_quantity: self.quantity(view.filled),
            remaining_quantity: self.quantity(view.remaining()),
            status: status_to_wire(view.status) as i32,
            time_in_force: time_in_force_to_wire(view.terms.time_in_force) as i32,
            post_only: view.terms.post_only,
            self_trade_prevention: self_trade_prevention_to_wire(view.terms.self_trade_prevention)
                as i32,
            created_seq: view.created_seq,
        }
    }

    /// The fills among `events` that `order_id` took part in, for the wire.
    /// The order's fills among `events` that fit an answer of `message_bytes_max` bytes
    /// beside the order, and whether some were left out.
    pub fn fills_within(
        &self,
        order_id: OrderId,
        events: &[Event],
        message_bytes_max: usize,
    ) -> (Vec<proto::Fill>, bool) {
        let mut fills = self.fills_of(order_id, events);
        let budget = message_bytes_max.saturating_sub(ORDER_BYTES_MAX);
        let mut size = 0;
        let fitting = fills
            .iter()
            .take_while(|fill| {
                size += prost::encoding::message::encoded_len(2, *fill);
                size <= budget
            })
            .count();
        let truncated = fitting < fills.len();
        fills.truncate(fitting);
        (fills, truncated)
    }

    /// The order's fills among `events`.
    pub fn fills_of(&self, order_id: OrderId, events: &[Event]) -> Vec<proto::Fill> {
        events
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::Fill(fill) => {
                    let liquidity = fill.liquidity_of(order_id)?;
                    let side = match liquidity {
                        Liquidity::Taker => fill.taker_side,
                        Liquidity::Maker => fill.taker_side.opposite(),
                    };
                    Some(proto::Fill {
                        trade_id: fill.trade_id.0.to_string(),
                        order_id: order_id.0.to_string(),
                        market: self.spec.name.clone(),
                        side: side_to_wire(side) as i32,
                        price: self.price(fill.price),
                        quantity: self.quantity(fill.quantity),
                        liquidity: liquidity_to_wire(liquidity) as i32,
                        seq: event.seq,
                        time_ms: event.timestamp_ms,
                    })
                }
                _ => None,
            })
            .collect()
    }
}

/// `steps` of `step_micros` as a decimal with `places` decimals (those of the step).
fn steps_digits(steps: u64, step_micros: u64, places: u32) -> Digits {
    let micros = steps * step_micros;
    Digits::of(micros / 10u64.pow(AMOUNT_PLACES - places), places)
}

/// A side for the wire.
pub fn side_to_wire(side: Side) -> proto::Side {
    match side {
        Side::Buy => proto::Side::Buy,
        Side::Sell => proto::Side::Sell,
    }
}

/// An order type for the wire.
pub fn order_type_to_wire(order_type: OrderType) -> proto::OrderType {
    match order_type {
        OrderType::Limit => proto::OrderType::Limit,
        OrderType::Market => proto::OrderType::Market,
    }
}

/// A time in force for the wire.
pub fn time_in_force_to_wire(time_in_force: TimeInForce) -> proto::TimeInForce {
    match time_in_force {
        TimeInForce::GoodTillCanceled => proto::TimeInForce::Gtc,
        TimeInForce::ImmediateOrCancel => proto::TimeInForce::Ioc,
        TimeInForce::FillOrKill => proto::TimeInForce::Fok,
    }
}

/// A self-trade prevention for the wire.
pub fn self_trade_prevention_to_wire(
    prevention: SelfTradePrevention,
) -> proto::SelfTradePrevention {
    match prevention {
        SelfTradePrevention::CancelTaker => proto::SelfTradePrevention::CancelTaker,
        SelfTradePrevention::CancelMaker => proto::SelfTradePrevention::CancelMaker,
        SelfTradePrevention::CancelBoth => proto::SelfTradePrevention::CancelBoth,
        SelfTradePrevention::Decrement => proto::SelfTradePrevention::Decrement,
    }
}

/// A fill's liquidity for the wire.
pub fn liquidity_to_wire(liquidity: Liquidity) -> proto::Liquidity {
    match liquidity {
        Liquidity::Maker => proto::Liquidity::Maker,
        Liquidity::Taker => proto::Liquidity::Taker,
    }
}

/// An order's status for the wire.
pub fn status_to_wire(status: OrderStatus) -> proto::OrderStatus {
    match status {
        OrderStatus::Open => proto::OrderStatus::Open,
        OrderStatus::PartiallyFilled => proto::OrderStatus::PartiallyFilled,
        OrderStatus::Filled => proto::OrderStatus::Filled,
        OrderStatus::Canceled => proto::OrderStatus::Canceled,
        OrderStatus::Rejected => proto::OrderStatus::Rejected,
        OrderStatus::Expired => proto::OrderStatus::Expired,
    }
}

/// Room kept for an order beside its fills in an answer: an order's encoding is a few
/// hundred bytes (its client order id at most 64).
pub const ORDER_BYTES_MAX: usize = 2 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::MICROS_PER_UNIT;

    #[test]
    fn market_values_round_trip_with_the_grid_decimals() {
        let spec = MarketSpec::dvm_usd();
        let market = MarketView {
            id: MarketId(0),
            spec: &spec,
        };
        let price = market.parse_price("price", "0.6001").expect("on tick");
        assert_eq!(price, Price(6_001));
        assert_eq!(market.price(price), "0.6001");
        let quantity = market.parse_quantity("quantity", "12.5").expect("on lot");
        assert_eq!(quantity, Quantity(1_250));
        assert_eq!(market.quantity(quantity), "12.50");
        for (text, field) in [("0.60005", "price"), ("abc", "price")] {
            let status = market.parse_price(field, text).expect_err(text);
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(
                status.message().starts_with("price: "),
                "{}",
                status.message()
            );
        }
        let status = market
            .parse_quantity("quantity", "0.005")
            .expect_err("off lot");
        assert_eq!(
            status.message(),
            "quantity: is not a whole number of the market's lot of 0.01"
        );
        let status = market
            .parse_price("price", "0.60005")
            .expect_err("off tick");
        assert_eq!(
            status.message(),
            "price: is not on the market's tick of 0.0001"
        );
        // Past a micro-unit's places, the same: what the caller needs is the tick.
        for text in ["0.6000001", "0.60000000001"] {
            let status = market.parse_price("price", text).expect_err(text);
            assert_eq!(
                status.message(),
                "price: is not on the market's tick of 0.0001"
            );
        }
        let status = market
            .parse_quantity("quantity", "1.0000005")
            .expect_err("past a micro-unit");
        assert_eq!(
            status.message(),
            "quantity: is not a whole number of the market's lot of 0.01"
        );
        assert_eq!(MICROS_PER_UNIT, 10u64.pow(AMOUNT_PLACES));
    }
}
