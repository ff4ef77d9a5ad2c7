//! `OrderSessionResponse`, the message of `OrderSession`, written by hand rather than
//! generated so that an order's answer can be carried as bytes already encoded
//! (`order_encoding.rs` writes them straight from the committed view and events) instead
//! of an `Order` and `Fill`s of strings to build, encode and free, for every one of
//! hundreds of thousands of commands a second.
//!
//! On the wire it is exactly the proto's `OrderSessionResponse { uint64 request_id = 1;
//! oneof result { PlaceOrderResponse placed = 2; CancelOrderResponse canceled = 3;
//! CancelAllOrdersResponse canceled_all = 4; AmendOrderResponse amended = 5; SessionError
//! error = 6; } }`: decoding fills `result`, as the generated code would.

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::DecodeError;

use super::proto::{
    AmendOrderResponse, CancelAllOrdersResponse, CancelOrderResponse, PlaceOrderResponse,
    SessionError,
};

/// Room an encoded answer starts with: an order's answer and a fill or two fit.
const ENCODED_BYTES_EXPECTED: usize = 256;

/// One answer of an order session.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrderSessionResponse {
    /// The id of the request this answers.
    pub request_id: u64,
    /// The answer, when built or decoded as such.
    pub result: Option<Result>,
    /// The answer already encoded as a `result` member (key, length and message), sent in
    /// place of `result`.
    encoded_result: Vec<u8>,
}

/// What the command's answer is.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Result {
    #[prost(message, tag = "2")]
    Placed(PlaceOrderResponse),
    #[prost(message, tag = "3")]
    Canceled(CancelOrderResponse),
    #[prost(message, tag = "4")]
    CanceledAll(CancelAllOrdersResponse),
    #[prost(message, tag = "5")]
    Amended(AmendOrderResponse),
    /// The command's error: a gRPC status code and its message.
    #[prost(message, tag = "6")]
    Error(SessionError),
}

impl OrderSessionResponse {
    /// The answer to `request_id`.
    pub fn of(request_id: u64, result: Result) -> OrderSessionResponse {
        OrderSessionResponse {
            request_id,
            result: Some(result),
            encoded_result: Vec::new(),
        }
    }

    /// The answer to `request_id` whose `result` member `write` writes, encoded.
    pub fn encoded(request_id: u64, write: impl FnOnce(&mut Vec<u8>)) -> OrderSessionResponse {
        let mut encoded_result = Vec::with_capacity(ENCODED_BYTES_EXPECTED);
        write(&mut encoded_result);
        OrderSessionResponse {
            request_id,
            result: None,
            encoded_result,
        }
    }
}

impl prost::Message for OrderSessionResponse {
    fn encode_raw(&self, buffer: &mut impl BufMut) {
        if self.request_id != 0 {
            encoding::uint64::encode(1, &self.request_id, buffer);
        }
        if let Some(result) = &self.result {
            result.encode(buffer);
        }
        buffer.put_slice(&self.encoded_result);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buffer: &mut impl Buf,
        context: DecodeContext,
    ) -> std::result::Result<(), DecodeError> {
        match tag {
            1 => encoding::uint64::merge(wire_type, &mut self.request_id, buffer, context).map_err(
                |mut error| {
                    error.push("OrderSessionResponse", "request_id");
                    error
                },
            ),
            2..=6 => Result::merge(&mut self.result, tag, wire_type, buffer, context).map_err(
                |mut error| {
                    error.push("OrderSessionResponse", "result");
                    error
                },
            ),
            _ => encoding::skip_field(wire_type, tag, buffer, context),
        }
    }

    fn encoded_len(&self) -> usize {
        let request_id = match self.request_id {
            0 => 0,
            id => encoding::uint64::encoded_len(1, &id),
        };
        request_id + self.result.as_ref().map_or(0, Result::encoded_len) + self.encoded_result.len()
    }

    fn clear(&mut self) {
        *self = OrderSessionResponse::default();
    }
}
