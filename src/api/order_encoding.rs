//! An order command's answer written as protobuf bytes straight from the committed view
//! and events: the bytes prost writes for the `PlaceOrderResponse`, `CancelOrderResponse`
//! or `AmendOrderResponse` that [`MarketView::order`] and [`MarketView::fills_within`]
//! build, without a `String` per field to allocate, encode and free. A session answers
//! hundreds of thousands of commands a second this way (`session_response.rs`); the
//! tests below hold the bytes equal to prost's.
//!
//! What this is not: a general protobuf writer. It writes these three messages, each
//! field as proto3 does (a default value is left out, fields in tag order).

use prost::encoding::{encode_key, encode_varint, WireType};

use super::decimal::Digits;
use super::market_view::{
    liquidity_to_wire, order_type_to_wire, self_trade_prevention_to_wire, side_to_wire,
    status_to_wire, time_in_force_to_wire, MarketView, ORDER_BYTES_MAX,
};
use crate::event::{Event, EventKind, Fill, OrderView};
use crate::types::Liquidity;

/// Which answer an order's outcome is, by the `OrderSessionResponse` member it fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `placed`: the order and its fills.
    Placed = 2,
    /// `canceled`: the order.
    Canceled = 3,
    /// `amended`: the order and its fills.
    Amended = 5,
}

/// Writes `answer` for the order of `view` as the `OrderSessionResponse` member it is
/// (key, length and message). The fills are the order's among `events`, as many as fit
/// an answer of `message_bytes_max` bytes beside the order.
pub fn write_answer(
    market: &MarketView,
    answer: Answer,
    (view, events): (&OrderView, &[Event]),
    message_bytes_max: usize,
    buffer: &mut Vec<u8>,
) {
    message(buffer, answer as u32, |buffer| {
        message(buffer, 1, |buffer| write_order(market, view, buffer));
        if answer == Answer::Canceled {
            return;
        }
        let budget = message_bytes_max.saturating_sub(ORDER_BYTES_MAX);
        let start = buffer.len();
        let mut truncated = false;
        for (event, fill, liquidity) in fills_of(view, events) {
            let before = buffer.len();
            message(buffer, 2, |buffer| {
                write_fill(market, (event, fill, liquidity), buffer);
            });
            if buffer.len() - start > budget {
                buffer.truncate(before);
                truncated = true;
                break;
            }
        }
        varint(buffer, 3, u64::from(truncated));
    });
}

/// The fills of the order of `view` among `events`, with how it took part.
fn fills_of<'a>(
    view: &'a OrderView,
    events: &'a [Event],
) -> impl Iterator<Item = (&'a Event, &'a Fill, Liquidity)> + 'a {
    events.iter().filter_map(|event| match &event.kind {
        EventKind::Fill(fill) => Some((event, fill, fill.liquidity_of(view.order_id)?)),
        _ => None,
    })
}

/// The fields of `Order`.
fn write_order(market: &MarketView, view: &OrderView, buffer: &mut Vec<u8>) {
    let terms = &view.terms;
    text(buffer, 1, Digits::of(view.order_id.0, 0).as_bytes());
    text(
        buffer,
        2,
        view.client_order_id
            .as_deref()
            .unwrap_or_default()
            .as_bytes(),
    );
    text(buffer, 3, market.spec.name.as_bytes());
    enumeration(buffer, 4, side_to_wire(terms.side) as i32);
    enumeration(buffer, 5, order_type_to_wire(terms.order_type) as i32);
    if let Some(price) = terms.price {
        text(buffer, 6, market.price_digits(price).as_bytes());
    }
    text(buffer, 7, market.quantity_digits(terms.quantity).as_bytes());
    text(buffer, 8, market.quantity_digits(view.filled).as_bytes());
    text(
        buffer,
        9,
        market.quantity_digits(view.remaining()).as_bytes(),
    );
    enumeration(buffer, 10, status_to_wire(view.status) as i32);
    enumeration(
        buffer,
        11,
        time_in_force_to_wire(terms.time_in_force) as i32,
    );
    varint(buffer, 12, u64::from(terms.post_only));
    let prevention = self_trade_prevention_to_wire(terms.self_trade_prevention);
    enumeration(buffer, 13, prevention as i32);
    varint(buffer, 14, view.created_seq);
}

/// The fields of `Fill`, for the order that took part in it with `liquidity`.
fn write_fill(
    market: &MarketView,
    (event, fill, liquidity): (&Event, &Fill, Liquidity),
    buffer: &mut Vec<u8>,
) {
    let (order_id, side) = match liquidity {
        Liquidity::Taker => (fill.taker_order, fill.taker_side),
        Liquidity::Maker => (fill.maker_order, fill.taker_side.opposite()),
    };
    // The order's own id, as `liquidity_of` found it.
    text(buffer, 1, Digits::of(fill.trade_id.0, 0).as_bytes());
    text(buffer, 2, Digits::of(order_id.0, 0).as_bytes());
    text(buffer, 3, market.spec.name.as_bytes());
    enumeration(buffer, 4, side_to_wire(side) as i32);
    text(buffer, 5, market.price_digits(fill.price).as_bytes());
    text(buffer, 6, market.quantity_digits(fill.quantity).as_bytes());
    enumeration(buffer, 7, liquidity_to_wire(liquidity) as i32);
    varint(buffer, 8, event.seq);
    varint(buffer, 9, event.timestamp_ms);
}

/// A message field: its key, then its length, then what `write` writes. The length is
/// known once the message is written: one byte is kept for it, which holds a length
/// below 128 (an order's), and a longer one moves the message along.
fn message(buffer: &mut Vec<u8>, tag: u32, write: impl FnOnce(&mut Vec<u8>)) {
    encode_key(tag, WireType::LengthDelimited, buffer);
    let at = buffer.len();
    buffer.push(0);
    write(buffer);
    let length = buffer.len() - at - 1;
    if length < 0x80 {
        buffer[at] = length as u8;
        return;
    }
    // A varint has at most ten bytes.
    let mut prefix = [0u8; 10];
    let mut rest = &mut prefix[..];
    encode_varint(length as u64, &mut rest);
    let written = 10 - rest.len();
    buffer.splice(at..at + 1, prefix[..written].iter().copied());
}

/// A string field, left out when empty.
fn text(buffer: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    encode_key(tag, WireType::LengthDelimited, buffer);
    encode_varint(bytes.len() as u64, buffer);
    buffer.extend_from_slice(bytes);
}

/// An integer or boolean field, left out when zero.
fn varint(buffer: &mut Vec<u8>, tag: u32, value: u64) {
    if value == 0 {
        return;
    }
    encode_key(tag, WireType::Varint, buffer);
    encode_varint(value, buffer);
}

/// An enumeration field (an `int32` on the wire), left out when zero.
fn enumeration(buffer: &mut Vec<u8>, tag: u32, value: i32) {
    // As prost writes an int32: a negative value sign-extended to ten bytes.
    varint(buffer, tag, i64::from(value) as u64);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::api::proto;
    use crate::config::MarketSpec;
    use crate::types::{
        AccountId, Amount, MarketId, OrderId, OrderStatus, OrderTerms, OrderType, Price, Quantity,
        SelfTradePrevention, Side, TimeInForce, TradeId,
    };

    /// The market of the tests: DVM-USD, as configured by default.
    fn market_of(spec: &MarketSpec) -> MarketView<'_> {
        MarketView {
            id: MarketId(0),
            spec,
        }
    }

    /// What prost writes for the answer built as messages, as the unary handlers build it.
    fn built(
        market: &MarketView,
        answer: Answer,
        (view, events): (&OrderView, &[Event]),
        message_bytes_max: usize,
    ) -> Vec<u8> {
        let order = Some(market.order(view));
        let (fills, fills_truncated) =
            market.fills_within(view.order_id, events, message_bytes_max);
        let result = match answer {
            Answer::Placed => {
                proto::order_session_response::Result::Placed(proto::PlaceOrderResponse {
                    order,
                    fills,
                    fills_truncated,
                })
            }
            Answer::Amended => {
                proto::order_session_response::Result::Amended(proto::AmendOrderResponse {
                    order,
                    fills,
                    fills_truncated,
                })
            }
            Answer::Canceled => {
                proto::order_session_response::Result::Canceled(proto::CancelOrderResponse {
                    order,
                })
            }
        };
        proto::OrderSessionResponse::of(0, result).encode_to_vec()
    }

    fn written(
        market: &MarketView,
        answer: Answer,
        order: (&OrderView, &[Event]),
        message_bytes_max: usize,
    ) -> Vec<u8> {
        proto::OrderSessionResponse::encoded(0, |buffer| {
            write_answer(market, answer, order, message_bytes_max, buffer);
        })
        .encode_to_vec()
    }

    fn fill_event(seq: u64, view: &OrderView, maker: bool, lots: u64) -> Event {
        let other = OrderId(view.order_id.0 + 1_000);
        let (maker_order, taker_order) = match maker {
            true => (view.order_id, other),
            false => (other, view.order_id),
        };
        Event {
            seq,
            timestamp_ms: 1_700_000_000_000 + seq,
            kind: EventKind::Fill(Fill {
                trade_id: TradeId(seq * 7),
                market: MarketId(0),
                price: Price(5_000 + seq),
                quantity: Quantity(lots),
                taker_side: Side::Sell,
                maker_order,
                maker_account: AccountId(3),
                taker_order,
                taker_account: AccountId(4),
                taker_released: Amount::ZERO,
                taker_paid_from_available: false,
                maker_filled: Quantity(lots),
                taker_filled: Quantity(lots),
                maker_after: Default::default(),
                taker_after: Default::default(),
            }),
        }
    }

    fn one_of<T: Copy + std::fmt::Debug>(values: &'static [T]) -> impl Strategy<Value = T> {
        proptest::sample::select(values)
    }

    fn order_view() -> impl Strategy<Value = OrderView> {
        (
            (
                0u64..u64::MAX / 2,
                proptest::option::of("[a-zA-Z0-9-]{0,64}"),
            ),
            (
                one_of(&[Side::Buy, Side::Sell]),
                one_of(&[OrderType::Limit, OrderType::Market]),
                proptest::option::of(0u64..10_000_000),
                1u64..1_000_000_000,
            ),
            (
                one_of(&[
                    TimeInForce::GoodTillCanceled,
                    TimeInForce::ImmediateOrCancel,
                    TimeInForce::FillOrKill,
                ]),
                any::<bool>(),
                one_of(&[
                    SelfTradePrevention::CancelTaker,
                    SelfTradePrevention::CancelMaker,
                    SelfTradePrevention::CancelBoth,
                    SelfTradePrevention::Decrement,
                ]),
            ),
            (
                0u64..=100,
                one_of(&[
                    OrderStatus::Open,
                    OrderStatus::PartiallyFilled,
                    OrderStatus::Filled,
                    OrderStatus::Canceled,
                    OrderStatus::Rejected,
                    OrderStatus::Expired,
                ]),
                any::<u64>(),
            ),
        )
            .prop_map(
                |(
                    (order_id, client_order_id),
                    (side, order_type, price, quantity),
                    (time_in_force, post_only, self_trade_prevention),
                    (filled_percent, status, created_seq),
                )| OrderView {
                    order_id: OrderId(order_id),
                    account: AccountId(4),
                    client_order_id: client_order_id.map(crate::types::ClientKey::from),
                    terms: OrderTerms {
                        market: MarketId(0),
                        side,
                        order_type,
                        price: price.map(Price),
                        quantity: Quantity(quantity),
                        time_in_force,
                        post_only,
                        self_trade_prevention,
                    },
                    filled: Quantity(quantity / 100 * filled_percent),
                    status,
                    created_seq,
                },
            )
    }

    proptest! {
        #[test]
        fn an_answer_written_from_the_view_is_the_answer_prost_writes(
            view in order_view(),
            // Fills of the order as maker or taker, and of other orders, between other events.
            fills in proptest::collection::vec((0u8..3, 1u64..100_000), 0..40),
            answer in one_of(&[Answer::Placed, Answer::Canceled, Answer::Amended]),
            // Small sizes leave fills out.
            message_bytes_max in one_of(&[0, 2_100, 2_600, 4 * 1024 * 1024]),
        ) {
            let spec = MarketSpec::dvm_usd();
            let market = market_of(&spec);
            let unrelated = OrderView { order_id: OrderId(view.order_id.0 + 1), ..view.clone() };
            let events: Vec<Event> = fills
                .iter()
                .enumerate()
                .map(|(at, &(part, lots))| match part {
                    0 => fill_event(at as u64 + 1, &view, true, lots),
                    1 => fill_event(at as u64 + 1, &view, false, lots),
                    _ => fill_event(at as u64 + 1, &unrelated, false, lots),
                })
                .collect();
            let order = (&view, events.as_slice());
            prop_assert_eq!(
                written(&market, answer, order, message_bytes_max),
                built(&market, answer, order, message_bytes_max)
            );
        }
    }

    #[test]
    fn fills_are_left_out_where_prost_leaves_them_out_at_every_size() {
        let spec = MarketSpec::dvm_usd();
        let market = market_of(&spec);
        let view = limit_order();
        let events: Vec<Event> = (1..=5)
            .map(|seq| fill_event(seq, &view, seq % 2 == 0, 10))
            .collect();
        // Every size from room for no fill to room for all of them, byte by byte.
        for message_bytes_max in ORDER_BYTES_MAX..ORDER_BYTES_MAX + 400 {
            let order = (&view, events.as_slice());
            assert_eq!(
                written(&market, Answer::Placed, order, message_bytes_max),
                built(&market, Answer::Placed, order, message_bytes_max),
                "{message_bytes_max} bytes at most"
            );
        }
    }

    fn limit_order() -> OrderView {
        OrderView {
            order_id: OrderId(42),
            account: AccountId(4),
            client_order_id: Some("mine-1".into()),
            terms: OrderTerms {
                market: MarketId(0),
                side: Side::Buy,
                order_type: OrderType::Limit,
                price: Some(Price(6_001)),
                quantity: Quantity(1_250),
                time_in_force: TimeInForce::GoodTillCanceled,
                post_only: false,
                self_trade_prevention: SelfTradePrevention::CancelTaker,
            },
            filled: Quantity(250),
            status: OrderStatus::PartiallyFilled,
            created_seq: 9,
        }
    }

    #[test]
    fn a_written_answer_decodes_to_the_order_and_its_fills() {
        let spec = MarketSpec::dvm_usd();
        let market = market_of(&spec);
        let view = limit_order();
        let events = [fill_event(10, &view, false, 250)];
        let bytes = written(&market, Answer::Placed, (&view, &events), 4 * 1024 * 1024);
        let decoded = proto::OrderSessionResponse::decode(bytes.as_slice()).expect("decodes");
        let Some(proto::order_session_response::Result::Placed(placed)) = decoded.result else {
            panic!("not placed: {decoded:?}");
        };
        let order = placed.order.expect("an order");
        assert_eq!(
            (order.order_id.as_str(), order.client_order_id.as_str()),
            ("42", "mine-1")
        );
        assert_eq!(
            (order.price.as_str(), order.quantity.as_str()),
            ("0.6001", "12.50")
        );
        assert_eq!(
            (
                order.filled_quantity.as_str(),
                order.remaining_quantity.as_str()
            ),
            ("2.50", "10.00")
        );
        assert_eq!(placed.fills.len(), 1);
        assert_eq!(placed.fills[0].price, "0.5010");
        assert_eq!(placed.fills[0].liquidity, proto::Liquidity::Taker as i32);
        assert!(!placed.fills_truncated);
    }
}
