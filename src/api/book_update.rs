//! `BookUpdate`, the message of `StreamOrderBook`, written by hand rather than generated
//! so that subscribers share encodings: a level change or a heartbeat is encoded once per
//! committed view and its bytes are copied into each subscriber's message beside the
//! subscriber's own stream sequence number. The snapshot stays each subscriber's own.
//!
//! On the wire it is exactly the proto's `BookUpdate { uint64 seq = 1; oneof update
//! { BookSnapshot snapshot = 2; LevelChanges changes = 3; Heartbeat heartbeat = 4; }
//! uint32 checksum = 5; }`: decoding fills `update`, as the generated code would.

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};
use prost::DecodeError;

use super::proto::{BookSnapshot, Heartbeat, LevelChanges};

/// One message of a book stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BookUpdate {
    /// The stream's sequence number: one greater than the last message's.
    pub seq: u64,
    /// The update, when built or decoded as such.
    pub update: Option<Update>,
    /// The top of book's checksum after this message.
    pub checksum: u32,
    /// An update's shared encoding (from [`Update::shared`]), sent in place of `update`.
    shared: Option<Bytes>,
}

/// What a book message says.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// The top levels, first.
    Snapshot(BookSnapshot),
    /// Levels that changed.
    Changes(LevelChanges),
    /// Nothing changed; sent when idle.
    Heartbeat(Heartbeat),
}

impl Update {
    fn encode(&self, buffer: &mut impl BufMut) {
        match self {
            Update::Snapshot(message) => encoding::message::encode(2, message, buffer),
            Update::Changes(message) => encoding::message::encode(3, message, buffer),
            Update::Heartbeat(message) => encoding::message::encode(4, message, buffer),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Update::Snapshot(message) => encoding::message::encoded_len(2, message),
            Update::Changes(message) => encoding::message::encoded_len(3, message),
            Update::Heartbeat(message) => encoding::message::encoded_len(4, message),
        }
    }

    /// The update's encoding as a `BookUpdate` field, to share among subscribers.
    pub fn shared(&self) -> Bytes {
        let mut buffer = Vec::with_capacity(self.encoded_len());
        self.encode(&mut buffer);
        Bytes::from(buffer)
    }
}

impl BookUpdate {
    /// A message with its own update.
    pub fn new(seq: u64, update: Update, checksum: u32) -> BookUpdate {
        BookUpdate {
            seq,
            update: Some(update),
            checksum,
            shared: None,
        }
    }

    /// A message carrying a shared update encoding.
    pub fn with_shared(seq: u64, shared: Bytes, checksum: u32) -> BookUpdate {
        BookUpdate {
            seq,
            update: None,
            checksum,
            shared: Some(shared),
        }
    }

    /// The update, decoded from the shared encoding if that is what this message holds.
    fn resolved_update(&self) -> Result<Option<Update>, DecodeError> {
        match &self.shared {
            None => Ok(self.update.clone()),
            Some(shared) => Ok(<BookUpdate as prost::Message>::decode(shared.clone())?.update),
        }
    }
}

/// Merges a oneof member's message into `update`, replacing another member.
fn merge_member<M: prost::Message + Default>(
    update: &mut Option<Update>,
    wrap: fn(M) -> Update,
    unwrap: fn(&mut Update) -> Option<&mut M>,
    (wire_type, buffer, context): (WireType, &mut impl Buf, DecodeContext),
) -> Result<(), DecodeError> {
    if let Some(message) = update.as_mut().and_then(unwrap) {
        return encoding::message::merge(wire_type, message, buffer, context);
    }
    let mut message = M::default();
    encoding::message::merge(wire_type, &mut message, buffer, context)?;
    *update = Some(wrap(message));
    Ok(())
}

impl prost::Message for BookUpdate {
    fn encode_raw(&self, buffer: &mut impl BufMut) {
        if self.seq != 0 {
            encoding::uint64::encode(1, &self.seq, buffer);
        }
        if let Some(update) = &self.update {
            update.encode(buffer);
        }
        if let Some(shared) = &self.shared {
            buffer.put_slice(shared);
        }
        if self.checksum != 0 {
            encoding::uint32::encode(5, &self.checksum, buffer);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buffer: &mut impl Buf,
        context: DecodeContext,
    ) -> Result<(), DecodeError> {
        let field = (wire_type, buffer, context);
        match tag {
            1 => encoding::uint64::merge(field.0, &mut self.seq, field.1, field.2),
            2 => merge_member(
                &mut self.update,
                Update::Snapshot,
                |update| match update {
                    Update::Snapshot(message) => Some(message),
                    _ => None,
                },
                field,
            ),
            3 => merge_member(
                &mut self.update,
                Update::Changes,
                |update| match update {
                    Update::Changes(message) => Some(message),
                    _ => None,
                },
                field,
            ),
            4 => merge_member(
                &mut self.update,
                Update::Heartbeat,
                |update| match update {
                    Update::Heartbeat(message) => Some(message),
                    _ => None,
                },
                field,
            ),
            5 => encoding::uint32::merge(field.0, &mut self.checksum, field.1, field.2),
            _ => encoding::skip_field(field.0, tag, field.1, field.2),
        }
    }

    fn encoded_len(&self) -> usize {
        let seq = match self.seq {
            0 => 0,
            seq => encoding::uint64::encoded_len(1, &seq),
        };
        let checksum = match self.checksum {
            0 => 0,
            checksum => encoding::uint32::encoded_len(5, &checksum),
        };
        seq + self.update.as_ref().map_or(0, Update::encoded_len)
            + self.shared.as_ref().map_or(0, Bytes::len)
            + checksum
    }

    fn clear(&mut self) {
        *self = BookUpdate::default();
    }
}

/// As protobuf's JSON mapping writes it (64-bit integers as strings, defaults left out).
impl serde::Serialize for BookUpdate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let update = self.resolved_update().map_err(serde::ser::Error::custom)?;
        let mut map = serializer.serialize_map(None)?;
        if self.seq != 0 {
            map.serialize_entry("seq", &self.seq.to_string())?;
        }
        match &update {
            Some(Update::Snapshot(message)) => map.serialize_entry("snapshot", message)?,
            Some(Update::Changes(message)) => map.serialize_entry("changes", message)?,
            Some(Update::Heartbeat(message)) => map.serialize_entry("heartbeat", message)?,
            None => {}
        }
        if self.checksum != 0 {
            map.serialize_entry("checksum", &self.checksum)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::PriceLevel;
    use prost::Message;

    #[test]
    fn a_shared_update_is_the_same_message_on_the_wire() {
        let changes = Update::Changes(LevelChanges {
            bids: vec![PriceLevel {
                price: "0.5000".into(),
                quantity: "3.00".into(),
            }],
            asks: Vec::new(),
            book_seq: 41,
        });
        let plain = BookUpdate {
            seq: 7,
            update: Some(changes.clone()),
            checksum: 12_345,
            shared: None,
        };
        let shared = BookUpdate::with_shared(7, changes.shared(), 12_345);
        assert_eq!(shared.encode_to_vec(), plain.encode_to_vec());
        assert_eq!(
            BookUpdate::decode(shared.encode_to_vec().as_slice()).expect("decodes"),
            plain
        );
        let json = serde_json::to_value(&shared).expect("serializes");
        assert_eq!(json["seq"], "7");
        assert_eq!(json["changes"]["bids"][0]["price"], "0.5000");
        assert_eq!(json["checksum"], 12_345);
        let heartbeat = BookUpdate {
            seq: 8,
            update: Some(Update::Heartbeat(Heartbeat { book_seq: 41 })),
            checksum: 1,
            shared: None,
        };
        assert_eq!(
            BookUpdate::decode(heartbeat.encode_to_vec().as_slice()).expect("decodes"),
            heartbeat
        );
    }
}
