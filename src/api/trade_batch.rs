//! `TradeBatch`, the message of `StreamTrades`, written by hand rather than generated so
//! that one encoding serves every subscriber: the market-data feed encodes a committed
//! batch's trades once, and each subscriber's message carries those bytes (`Bytes`, shared,
//! not copied) instead of trades to encode again. A subscriber that is behind gets the
//! batches it missed as one message: the encodings of a repeated field, concatenated, are
//! one valid encoding of all their elements.
//!
//! On the wire it is exactly the proto's `TradeBatch { repeated Trade trades = 1; }`:
//! decoding fills `trades`, as the generated code would.

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};
use prost::DecodeError;

use super::proto::Trade;

/// The trades of one committed batch of one market, in order (or of several batches, for
/// a subscriber catching up).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TradeBatch {
    /// The trades, when built or decoded as such.
    pub trades: Vec<Trade>,
    /// Encodings of trades (each `trades` fields of a `TradeBatch`), sent in this order
    /// after `trades`.
    encoded: Vec<Bytes>,
}

impl TradeBatch {
    /// A batch of `trades`.
    pub fn of(trades: Vec<Trade>) -> TradeBatch {
        TradeBatch {
            trades,
            encoded: Vec::new(),
        }
    }

    /// The encoding of `trades` as a `TradeBatch`, to share among subscribers.
    pub fn encode_trades(trades: &[Trade]) -> Bytes {
        let mut buffer = Vec::with_capacity(encoding::message::encoded_len_repeated(1, trades));
        for trade in trades {
            encoding::message::encode(1, trade, &mut buffer);
        }
        Bytes::from(buffer)
    }

    /// A batch made of shared encodings (from [`TradeBatch::encode_trades`]).
    pub fn from_encoded(encoded: Vec<Bytes>) -> TradeBatch {
        TradeBatch {
            trades: Vec::new(),
            encoded,
        }
    }
}

impl prost::Message for TradeBatch {
    fn encode_raw(&self, buffer: &mut impl BufMut) {
        for trade in &self.trades {
            encoding::message::encode(1, trade, buffer);
        }
        for bytes in &self.encoded {
            buffer.put_slice(bytes);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buffer: &mut impl Buf,
        context: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::message::merge_repeated(wire_type, &mut self.trades, buffer, context)
                .map_err(|mut error| {
                    error.push("TradeBatch", "trades");
                    error
                }),
            _ => encoding::skip_field(wire_type, tag, buffer, context),
        }
    }

    fn encoded_len(&self) -> usize {
        encoding::message::encoded_len_repeated(1, &self.trades)
            + self.encoded.iter().map(Bytes::len).sum::<usize>()
    }

    fn clear(&mut self) {
        self.trades.clear();
        self.encoded.clear();
    }
}

/// As protobuf's JSON mapping writes it: `{"trades": [...]}`.
impl serde::Serialize for TradeBatch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut trades = self.trades.clone();
        for bytes in &self.encoded {
            let mut decoded = <TradeBatch as prost::Message>::decode(bytes.clone())
                .map_err(serde::ser::Error::custom)?;
            trades.append(&mut decoded.trades);
        }
        let mut state = serializer.serialize_struct("TradeBatch", 1)?;
        state.serialize_field("trades", &trades)?;
        state.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn trade(seq: u64) -> Trade {
        Trade {
            trade_id: seq.to_string(),
            market: "DVM-USD".into(),
            price: "0.6000".into(),
            quantity: "1.00".into(),
            seq,
            ..Default::default()
        }
    }

    #[test]
    fn shared_encodings_decode_as_the_trades_they_hold_in_order() {
        let first = TradeBatch::encode_trades(&[trade(1), trade(2)]);
        let second = TradeBatch::encode_trades(&[trade(5)]);
        let merged = TradeBatch::from_encoded(vec![first, second]).encode_to_vec();
        let plain = TradeBatch::of(vec![trade(1), trade(2), trade(5)]);
        assert_eq!(merged, plain.encode_to_vec());
        let decoded = TradeBatch::decode(merged.as_slice()).expect("decodes");
        assert_eq!(decoded, plain);
        assert_eq!(
            serde_json::to_value(TradeBatch::from_encoded(vec![TradeBatch::encode_trades(
                &[trade(7)]
            )]))
            .expect("serializes")["trades"][0]["seq"],
            "7"
        );
    }
}
