//! The journal's records as the store keeps them: the pipeline's [`JournalRecord`]s (the
//! commands that changed state, in order, with the events they emitted) in their stored
//! form. Replaying the commands through the deterministic sequencer rebuilds the state;
//! the events serve history and market data without replaying anything.
//!
//! A record is stored under its last event's sequence number (big-endian, so keys sort in
//! sequence order), which makes "the records after sequence number S" a range scan.
//!
//! No stored value is larger than [`VALUE_BYTES_MAX`]: a record whose encoding is larger
//! (one command that emits very many events: cancel all of 100,000 orders, a taker that
//! sweeps the book) is cut into parts, stored under `last seq ++ part index` in the same
//! atomic batch. Those keys sort after the record's last sequence number and before the
//! next one, so a range scan meets the parts together and in order, and [`Records`]
//! joins them. Every journal reader goes through [`Records`].

use super::{StoreError, VALUE_BYTES_MAX};
use crate::pipeline::JournalRecord;

/// The first byte of every stored record: the encoding's version.
const FORMAT_VERSION: u8 = 1;

/// The first byte of a record's part, followed by the number of parts (u32, big-endian)
/// and a slice of the record's stored form.
const PART_MARK: u8 = 0xA5;

/// A part's header: the mark and the number of parts.
const PART_HEADER_BYTES: usize = 5;

/// A key and the value stored under it.
pub type StoredValue = (Vec<u8>, Vec<u8>);

/// The stored form of the pipeline's records, and their checks on reading.
impl JournalRecord {
    /// The stored form: a version byte, then the record.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        postcard::to_extend(self, vec![FORMAT_VERSION]).map_err(StoreError::Encoding)
    }

    /// A record from its stored form.
    pub fn decode(bytes: &[u8]) -> Result<JournalRecord, StoreError> {
        match bytes.split_first() {
            Some((&FORMAT_VERSION, body)) => {
                postcard::from_bytes(body).map_err(StoreError::Encoding)
            }
            Some((version, _)) => Err(StoreError::Corrupt(format!(
                "journal record in format {version}, expected {FORMAT_VERSION}"
            ))),
            None => Err(StoreError::Corrupt("empty journal record".to_string())),
        }
    }

    /// Checks that the events' sequence numbers are consecutive and that the entries
    /// account for every event.
    pub fn validate(&self) -> Result<(), StoreError> {
        let counted: u64 = self
            .entries
            .iter()
            .map(|entry| u64::from(entry.event_count))
            .sum();
        if counted != self.events.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "a record's entries count {counted} events but it holds {}",
                self.events.len()
            )));
        }
        for pair in self.events.windows(2) {
            if pair[1].seq != pair[0].seq + 1 {
                return Err(StoreError::Corrupt(format!(
                    "event {} follows event {} in a record",
                    pair[1].seq, pair[0].seq
                )));
            }
        }
        Ok(())
    }
}

/// The keys and values a record whose last event is `last_seq` is stored as, from its
/// stored form `bytes` ([`JournalRecord::encode`]): one value under its last sequence
/// number when it fits [`VALUE_BYTES_MAX`], otherwise parts under `last seq ++ part
/// index`, none larger than the bound.
pub fn stored_as(last_seq: u64, bytes: Vec<u8>) -> Result<Vec<StoredValue>, StoreError> {
    if bytes.len() <= VALUE_BYTES_MAX {
        return Ok(vec![(key_of(last_seq).to_vec(), bytes)]);
    }
    let chunks = bytes.chunks(VALUE_BYTES_MAX - PART_HEADER_BYTES);
    let count = u32::try_from(chunks.len())
        .map_err(|_| StoreError::Corrupt("a record of more than 2^32 parts".to_string()))?;
    Ok(chunks
        .enumerate()
        .map(|(index, chunk)| {
            let mut key = key_of(last_seq).to_vec();
            // `index < count`, which fits u32.
            key.extend_from_slice(&(index as u32).to_be_bytes());
            let mut value = Vec::with_capacity(PART_HEADER_BYTES + chunk.len());
            value.push(PART_MARK);
            value.extend_from_slice(&count.to_be_bytes());
            value.extend_from_slice(chunk);
            (key, value)
        })
        .collect())
}

/// The key a record is stored under.
pub fn key_of(last_seq: u64) -> [u8; 8] {
    last_seq.to_be_bytes()
}

/// The sequence number a key (of a whole record or of a part) is stored under.
pub fn seq_of_key(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .get(..8)
        .filter(|_| key.len() == 8 || key.len() == 12)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("a journal key of {} bytes", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// The records of a scan over the journal tree, parts joined, each with the sequence
/// number it is stored under. A scan must start at a record's key (`key_of`), never
/// inside a record's parts.
pub struct Records {
    scan: sled::Iter,
}

impl Records {
    /// Reads the records of `scan`.
    pub fn new(scan: sled::Iter) -> Records {
        Records { scan }
    }

    /// Joins the parts of a record, the first of which has been read.
    fn join(&mut self, key: &[u8], first: &[u8]) -> Result<JournalRecord, StoreError> {
        let seq = seq_of_key(key)?;
        let corrupt = |what: &str| StoreError::Corrupt(format!("record {seq}: {what}"));
        let (count, mut bytes) = part_of(first).ok_or_else(|| corrupt("a damaged part"))?;
        if key[8..] != [0; 4] {
            return Err(corrupt("its parts start after the first"));
        }
        let mut joined = Vec::with_capacity(count as usize * bytes.len());
        joined.extend_from_slice(bytes);
        for index in 1..count {
            let (next_key, value) = self.scan.next().ok_or_else(|| corrupt("parts missing"))??;
            let mut expected = key_of(seq).to_vec();
            expected.extend_from_slice(&index.to_be_bytes());
            if next_key.as_ref() != expected.as_slice() {
                return Err(corrupt("parts missing"));
            }
            (_, bytes) = part_of(&value)
                .filter(|(parts, _)| *parts == count)
                .ok_or_else(|| corrupt("a damaged part"))?;
            joined.extend_from_slice(bytes);
        }
        JournalRecord::decode(&joined)
    }
}

/// A part's number of parts and its slice of the record, if it is a part.
fn part_of(value: &[u8]) -> Option<(u32, &[u8])> {
    let (header, bytes) = value.split_at_checked(PART_HEADER_BYTES)?;
    let count = u32::from_be_bytes(header[1..].try_into().ok()?);
    (header[0] == PART_MARK && count > 1).then_some((count, bytes))
}

impl Iterator for Records {
    type Item = Result<(u64, JournalRecord), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (key, value) = match self.scan.next()? {
            Ok(item) => item,
            Err(error) => return Some(Err(error.into())),
        };
        let record = match key.len() {
            8 => JournalRecord::decode(&value),
            _ => self.join(&key, &value),
        };
        Some(record.and_then(|record| Ok((seq_of_key(&key)?, record))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::event::{Event, EventKind, OrderView};
    use crate::types::{IssuePrice, OrderTerms, Tier};

    /// Two price changes, events 7 and 8.
    fn record() -> JournalRecord {
        record_of(2, 8)
    }

    #[test]
    fn records_round_trip_through_their_stored_form() {
        let record = record();
        let bytes = record.encode().expect("encodes");
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(JournalRecord::decode(&bytes).expect("decodes"), record);
        assert_eq!((record.first_seq(), record.last_seq()), (Some(7), Some(8)));
        assert!(record.validate().is_ok());
    }

    #[test]
    fn damaged_records_are_refused() {
        let bytes = record().encode().expect("encodes");
        assert!(JournalRecord::decode(&bytes[..bytes.len() / 2]).is_err());
        let mut future = bytes.clone();
        future[0] = 9;
        let error = JournalRecord::decode(&future).expect_err("an unknown version is refused");
        assert!(error.to_string().contains("format 9"), "{error}");
        assert!(JournalRecord::decode(&[]).is_err());
        let mut gap = record();
        gap.events[1].seq = 10;
        assert!(gap.validate().is_err());
    }

    /// A record of `events` price changes ending at `last_seq`.
    fn record_of(events: u64, last_seq: u64) -> JournalRecord {
        let mut record = JournalRecord::default();
        let mut events: Vec<Event> = (last_seq + 1 - events..=last_seq)
            .map(|seq| Event {
                seq,
                timestamp_ms: 1,
                kind: EventKind::IssuePriceSet {
                    tier: Tier::Public,
                    price: IssuePrice(seq),
                },
            })
            .collect();
        let command = Command::SetIssuePrice {
            tier: Tier::Public,
            price: IssuePrice(1),
        };
        record.push(1, command, &mut events);
        record
    }

    #[test]
    fn a_large_record_is_stored_in_bounded_parts_and_read_back_whole() {
        let tree = sled::Config::new()
            .temporary(true)
            .open()
            .expect("a temporary sled")
            .open_tree("journal")
            .expect("a tree");
        let records = [
            record_of(3, 3),
            record_of(20_000, 20_003),
            record_of(2, 20_005),
        ];
        let mut parts = 0;
        for record in &records {
            let last_seq = record.last_seq().expect("events");
            let bytes = record.encode().expect("encodes");
            for (key, value) in stored_as(last_seq, bytes).expect("stored") {
                assert!(value.len() <= VALUE_BYTES_MAX, "{} bytes", value.len());
                tree.insert(key, value).expect("written");
                parts += 1;
            }
        }
        assert!(
            parts > 4,
            "the large record was cut into parts ({parts} values)"
        );
        let read: Vec<(u64, JournalRecord)> = Records::new(tree.iter())
            .collect::<Result<_, _>>()
            .expect("readable");
        let expected: Vec<(u64, JournalRecord)> = records
            .iter()
            .map(|record| (record.last_seq().expect("events"), record.clone()))
            .collect();
        assert_eq!(read, expected);
        // A scan from the large record's key finds it whole.
        let from = Records::new(tree.range(key_of(4)..)).next();
        assert_eq!(from.expect("a record").expect("readable").1, records[1]);
        // A part missing is a corrupt store, not a shorter record.
        let mut second = key_of(20_003).to_vec();
        second.extend_from_slice(&1u32.to_be_bytes());
        tree.remove(second).expect("removed");
        let broken = Records::new(tree.iter()).nth(1).expect("a record");
        let error = broken.expect_err("a missing part is refused");
        assert!(error.to_string().contains("parts missing"), "{error}");
    }

    #[test]
    fn keys_sort_in_sequence_order() {
        assert!(key_of(255) < key_of(256));
        assert!(key_of(1) < key_of(u64::MAX));
    }

    /// An order placed, accepted and ended, with every term set: the commands and events
    /// whose stored form must not change while data directories written before hold them.
    fn order_record() -> (JournalRecord, OrderView) {
        use crate::command::NewOrder;
        use crate::event::AcceptedOrder;
        use crate::types::{
            AccountId, Amount, Asset, Balance, MarketId, OrderId, OrderStatus, OrderType, Price,
            Quantity, SelfTradePrevention, Side, TimeInForce,
        };
        let placed = NewOrder {
            account: AccountId(7),
            terms: OrderTerms {
                market: MarketId(1),
                side: Side::Sell,
                order_type: OrderType::Limit,
                price: Some(Price(1_234)),
                quantity: Quantity(300),
                time_in_force: TimeInForce::ImmediateOrCancel,
                post_only: true,
                self_trade_prevention: SelfTradePrevention::Decrement,
            },
            client_order_id: Some("c-42".into()),
        };
        let accepted = AcceptedOrder {
            order_id: OrderId(99),
            account: placed.account,
            terms: placed.terms,
            client_order_id: placed
                .client_order_id
                .as_deref()
                .map(crate::types::ClientKey::new),
            hold_asset: Asset::Dvm,
            hold: Amount(3_000_000),
            balance_after: Balance {
                available: Amount(5),
                held: Amount(3_000_000),
            },
        };
        let mut ended = accepted.view(41);
        ended.filled = Quantity(120);
        ended.status = OrderStatus::Canceled;
        let mut record = JournalRecord::default();
        let event = |seq, kind| Event {
            seq,
            timestamp_ms: 1_700_000_000_000,
            kind,
        };
        record.push(
            1_700_000_000_000,
            Command::PlaceOrder(placed),
            &mut vec![event(41, EventKind::OrderAccepted(accepted))],
        );
        (record, ended)
    }

    /// The stored form of [`order_record`] and of its ended order's view (hexadecimal), as
    /// every release so far has written them into the journal, the history's order
    /// buckets and snapshots. A change here means that data directories already written
    /// no longer open: it needs a new `FORMAT_VERSION` and a reader for the old one.
    const ORDER_RECORD_STORED: &str = "010180d095ffbc31090701010001d209ac0201010104632d34320301012980d095ffbc310a630701010001d209ac020101030104632d343200c08db70105c08db701";
    const ORDER_VIEW_STORED: &str = "63070104632d343201010001d209ac02780301010329";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The stored form of a record of the default engine configuration: a setting added to
    /// `EngineConfig` changes it, and then journals already written no longer decode
    /// (`Command::Configure` says what to do instead).
    const CONFIGURE_RECORD_STORED: &str = "010180d095ffbc310e010744564d2d555344000164904e0180c2d72f80c2d72f80c0caf384a302a08d06a08d0680ade20480014080028088b2a002c0843dc0843de8078088b2a00201010180d095ffbc3111";

    #[test]
    fn an_engine_configuration_is_stored_field_by_field_in_order() {
        let mut record = JournalRecord::default();
        let configured = Event {
            seq: 1,
            timestamp_ms: 1_700_000_000_000,
            kind: EventKind::EngineConfigured,
        };
        record.push(
            1_700_000_000_000,
            Command::Configure(Box::default()),
            &mut vec![configured],
        );
        let stored = record.encode().expect("encodes");
        assert_eq!(hex(&stored), CONFIGURE_RECORD_STORED);
        assert_eq!(JournalRecord::decode(&stored).expect("decodes"), record);
    }

    #[test]
    fn an_order_is_stored_as_it_always_was() {
        let (record, view) = order_record();
        let stored = record.encode().expect("encodes");
        let view_stored = postcard::to_allocvec(&view).expect("encodes");
        assert_eq!(hex(&stored), ORDER_RECORD_STORED, "the journal's record");
        assert_eq!(hex(&view_stored), ORDER_VIEW_STORED, "an order's view");
        assert_eq!(JournalRecord::decode(&stored).expect("decodes"), record);
        let decoded: OrderView = postcard::from_bytes(&view_stored).expect("decodes");
        assert_eq!(decoded, view);
    }
}
