//! The journal's records as the store keeps them: the pipeline's [`JournalRecord`]s (the
//! commands that changed state, in order, with the events they emitted) in their stored
//! form. Replaying the commands through the deterministic sequencer rebuilds the state;
//! the events serve history and market data without replaying anything.
//!
//! A record is stored under its last event's sequence number (big-endian, so keys sort in
//! sequence order), which makes "the records after sequence number S" a range scan.
//!
//! Records are written compactly (format 2): what a record's shape already says is not
//! written again. Its events' sequence numbers follow from the first one, their times
//! from their commands', a command's time is written as the step from the command's
//! before, and an order's acceptance leaves out the owner, terms and client order id its
//! placement carries. Every byte written is copied several times over by sled (into its
//! pages, again whenever it rewrites a page, then to the disk), so the journal's bytes are
//! most of the store's work. Records of the first format (the record as it is, events
//! stamped one by one) are read as they always were, and written when a record has a shape
//! the compact form cannot say (events not stamped with their command's time).
//!
//! No stored value is larger than [`VALUE_BYTES_MAX`]: a record whose encoding is larger
//! (one command that emits very many events: cancel all of 100,000 orders, a taker that
//! sweeps the book) is cut into parts, stored under `last seq ++ part index` in the same
//! atomic batch. Those keys sort after the record's last sequence number and before the
//! next one, so a range scan meets the parts together and in order, and [`Records`]
//! joins them. Every journal reader goes through [`Records`].

use serde::{Deserialize, Serialize};

use super::{StoreError, VALUE_BYTES_MAX};
use crate::command::{Command, NewOrder};
use crate::engine::PostcardBytes;
use crate::event::{AcceptedOrder, Event, EventKind};
use crate::pipeline::{JournalEntry, JournalRecord};
use crate::types::{Amount, Asset, Balance, ClientKey, OrderId};

/// The first byte of a record stored whole: the record as postcard writes it.
const FORMAT_WHOLE: u8 = 1;

/// The first byte of a record stored compactly: its first sequence number, its number of
/// commands, then each command followed by its events ([`JournalRecord::encode`]).
const FORMAT_COMPACT: u8 = 2;

/// The first byte of a record's part, followed by the number of parts (u32, big-endian)
/// and a slice of the record's stored form.
const PART_MARK: u8 = 0xA5;

/// A part's header: the mark and the number of parts.
const PART_HEADER_BYTES: usize = 5;

/// A key and the value stored under it.
pub type StoredValue = (Vec<u8>, Vec<u8>);

/// An order's acceptance without what its placement says (owner, terms, client order id).
#[derive(Serialize, Deserialize)]
struct AcceptedAsPlaced {
    order_id: OrderId,
    hold_asset: Asset,
    hold: Amount,
    balance_after: Balance,
}

/// The stored form of the pipeline's records, and their checks on reading.
impl JournalRecord {
    /// The stored form: compact when the record's events are stamped with their commands'
    /// times (as the sequencer stamps them), else whole. Compactly: the version byte, the
    /// first event's sequence number and the number of commands, then for each command
    /// the step from the time of the command before (zigzag, wrapping), the command, its
    /// number of events shifted left by one with the low bit set when its first event is
    /// the acceptance of the order it places (then written as [`AcceptedAsPlaced`]), and
    /// its events' kinds.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        match self.is_stamped_by_commands() {
            true => self.encode_compact().map_err(StoreError::Encoding),
            false => self.encode_whole(),
        }
    }

    /// The stored form of the first format: the version byte, then the record as postcard
    /// writes it, every event with its own sequence number and time.
    pub(super) fn encode_whole(&self) -> Result<Vec<u8>, StoreError> {
        postcard::to_extend(self, vec![FORMAT_WHOLE]).map_err(StoreError::Encoding)
    }

    /// A record from its stored form.
    pub fn decode(bytes: &[u8]) -> Result<JournalRecord, StoreError> {
        match bytes.split_first() {
            Some((&FORMAT_COMPACT, body)) => JournalRecord::decode_compact(body),
            Some((&FORMAT_WHOLE, body)) => postcard::from_bytes(body).map_err(StoreError::Encoding),
            Some((version, _)) => Err(StoreError::Corrupt(format!(
                "journal record in format {version}, expected {FORMAT_WHOLE} or {FORMAT_COMPACT}"
            ))),
            None => Err(StoreError::Corrupt("empty journal record".to_string())),
        }
    }

    /// Whether the events are numbered consecutively, counted by the commands, and each
    /// stamped with its command's time: what the compact form leaves out and rebuilds.
    fn is_stamped_by_commands(&self) -> bool {
        if self.validate().is_err() {
            return false;
        }
        let mut events = self.events.iter();
        self.entries.iter().all(|entry| {
            (&mut events)
                .take(entry.event_count as usize)
                .all(|event| event.timestamp_ms == entry.timestamp_ms)
        })
    }

    fn encode_compact(&self) -> postcard::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(64 + 40 * self.entries.len() + 48 * self.events.len());
        bytes.push(FORMAT_COMPACT);
        let mut out = postcard::Serializer {
            output: PostcardBytes(bytes),
        };
        let first_seq = self.first_seq().unwrap_or(0);
        (first_seq, self.entries.len()).serialize(&mut out)?;
        let (mut events, mut time_before) = (self.events.iter(), 0u64);
        for entry in &self.entries {
            let step = entry.timestamp_ms.wrapping_sub(time_before) as i64;
            time_before = entry.timestamp_ms;
            let mut kinds = (&mut events)
                .take(entry.event_count as usize)
                .map(|event| &event.kind);
            let first = kinds.next();
            let placed = first.and_then(|kind| accepted_as_placed(&entry.command, kind));
            let shape = u64::from(entry.event_count) << 1 | u64::from(placed.is_some());
            (step, &entry.command, shape).serialize(&mut out)?;
            match (placed, first) {
                (Some(placed), _) => placed.serialize(&mut out)?,
                (None, Some(kind)) => kind.serialize(&mut out)?,
                (None, None) => {}
            }
            for kind in kinds {
                kind.serialize(&mut out)?;
            }
        }
        Ok(out.output.0)
    }

    fn decode_compact(body: &[u8]) -> Result<JournalRecord, StoreError> {
        let ((first_seq, entries), mut rest) = take::<(u64, usize)>(body)?;
        // Each command takes at least three bytes: no more room than the bytes allow.
        let mut record = JournalRecord::with_capacity(entries.min(body.len() / 3));
        let mut time = 0u64;
        for _ in 0..entries {
            let ((step, command, shape), after) = take::<(i64, Command, u64)>(rest)?;
            rest = after;
            time = time.wrapping_add(step as u64);
            let event_count = u32::try_from(shape >> 1)
                .map_err(|_| StoreError::Corrupt(format!("a command of {shape} events")))?;
            let mut stamp = |kind| {
                let seq = first_seq
                    .checked_add(record.events.len() as u64)
                    .ok_or_else(|| StoreError::Corrupt("events past the last number".into()))?;
                record.events.push(Event {
                    seq,
                    timestamp_ms: time,
                    kind,
                });
                Ok::<(), StoreError>(())
            };
            for index in 0..event_count {
                let kind = match (index, &command) {
                    (0, Command::PlaceOrder(placed)) if shape & 1 == 1 => {
                        let (accepted, after) = take::<AcceptedAsPlaced>(rest)?;
                        rest = after;
                        EventKind::OrderAccepted(accepted.with(placed))
                    }
                    (0, _) if shape & 1 == 1 => {
                        return Err(StoreError::Corrupt(
                            "an acceptance as placed after a command that places nothing"
                                .to_string(),
                        ))
                    }
                    _ => {
                        let (kind, after) = take::<EventKind>(rest)?;
                        rest = after;
                        kind
                    }
                };
                stamp(kind)?;
            }
            record.entries.push(JournalEntry {
                timestamp_ms: time,
                command,
                event_count,
            });
        }
        if !rest.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "a journal record with {} bytes after its end",
                rest.len()
            )));
        }
        Ok(record)
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

/// The acceptance `kind` without what `command` says, when it is the acceptance of the
/// order `command` places, exactly as placed.
fn accepted_as_placed(command: &Command, kind: &EventKind) -> Option<AcceptedAsPlaced> {
    let (Command::PlaceOrder(placed), EventKind::OrderAccepted(accepted)) = (command, kind) else {
        return None;
    };
    let same_id = accepted.client_order_id.as_ref().map(ClientKey::as_str)
        == placed.client_order_id.as_deref();
    (accepted.account == placed.account && accepted.terms == placed.terms && same_id).then_some(
        AcceptedAsPlaced {
            order_id: accepted.order_id,
            hold_asset: accepted.hold_asset,
            hold: accepted.hold,
            balance_after: accepted.balance_after,
        },
    )
}

impl AcceptedAsPlaced {
    /// The acceptance of the order `placed`.
    fn with(self, placed: &NewOrder) -> AcceptedOrder {
        AcceptedOrder {
            order_id: self.order_id,
            account: placed.account,
            terms: placed.terms,
            client_order_id: placed.client_order_id.as_deref().map(ClientKey::new),
            hold_asset: self.hold_asset,
            hold: self.hold,
            balance_after: self.balance_after,
        }
    }
}

/// A value of type `T` read from the front of `bytes`, and the bytes after it.
fn take<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, &'a [u8]), StoreError> {
    postcard::take_from_bytes(bytes).map_err(StoreError::Encoding)
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

    /// The next record's stored form, its parts joined, with the sequence number it is
    /// stored under: the bytes the acknowledged mark's hash was taken of.
    pub fn next_stored(&mut self) -> Option<Result<(u64, sled::IVec), StoreError>> {
        let (key, value) = match self.scan.next()? {
            Ok(item) => item,
            Err(error) => return Some(Err(error.into())),
        };
        // A record in parts (a rare, large one) is copied once more, into a value of its
        // own; a whole one is the value sled read.
        let bytes = match key.len() {
            8 => Ok(value),
            _ => self.join(&key, &value).map(sled::IVec::from),
        };
        Some(bytes.and_then(|bytes| Ok((seq_of_key(&key)?, bytes))))
    }

    /// Joins the parts of a record, the first of which has been read.
    fn join(&mut self, key: &[u8], first: &[u8]) -> Result<Vec<u8>, StoreError> {
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
        Ok(joined)
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
        let stored = self.next_stored()?;
        Some(stored.and_then(|(seq, bytes)| Ok((seq, JournalRecord::decode(&bytes)?))))
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
        assert_eq!(bytes[0], FORMAT_COMPACT);
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
        let mut longer = bytes.clone();
        longer.push(0);
        let error = JournalRecord::decode(&longer).expect_err("bytes after the end are refused");
        assert!(
            error.to_string().contains("1 bytes after its end"),
            "{error}"
        );
        // An acceptance written as placed after a command that places nothing.
        let mut flagged = vec![FORMAT_COMPACT];
        flagged = postcard::to_extend(&(7u64, 1usize), flagged).expect("encodes");
        flagged = postcard::to_extend(&(1i64, &record().entries[0].command, 3u64), flagged)
            .expect("encodes");
        let error = JournalRecord::decode(&flagged).expect_err("refused");
        assert!(error.to_string().contains("places nothing"), "{error}");
        // Events numbered past the largest sequence number.
        let mut past = vec![FORMAT_COMPACT];
        past = postcard::to_extend(&(u64::MAX, 1usize), past).expect("encodes");
        past = postcard::to_extend(&(1i64, &record().entries[0].command, 4u64), past)
            .expect("encodes");
        for event in &record().events {
            past = postcard::to_extend(&event.kind, past).expect("encodes");
        }
        let error = JournalRecord::decode(&past).expect_err("refused");
        assert!(
            error.to_string().contains("past the last number"),
            "{error}"
        );
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
    /// every release so far has written them: the record in the first format (written
    /// until compact records, and still when a record's events carry other times than
    /// their commands'), the view into the history's order buckets and snapshots. A change
    /// here means that data directories already written no longer open: it needs a new
    /// format and a reader for the old one.
    const ORDER_RECORD_STORED: &str = "010180d095ffbc31090701010001d209ac0201010104632d34320301012980d095ffbc310a630701010001d209ac020101030104632d343200c08db70105c08db701";
    const ORDER_VIEW_STORED: &str = "63070104632d343201010001d209ac02780301010329";

    /// [`order_record`] stored compactly: its acceptance is the order id, the held asset,
    /// the hold and the balance after it.
    const ORDER_RECORD_COMPACT: &str =
        "02290180a0abfef962090701010001d209ac0201010104632d343203036300c08db70105c08db701";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hexadecimal"))
            .collect()
    }

    /// The stored form of a record of the default engine configuration: a setting added to
    /// `EngineConfig` changes it, and then journals already written no longer decode
    /// (`Command::Configure` says what to do instead). In the first format, then compact.
    const CONFIGURE_RECORD_STORED: &str = "010180d095ffbc310e010744564d2d555344000164904e0180c2d72f80c2d72f80c0caf384a302a08d06a08d0680ade20480014080028088b2a002c0843dc0843de8078088b2a00201010180d095ffbc3111";
    const CONFIGURE_RECORD_COMPACT: &str = "02010180a0abfef9620e010744564d2d555344000164904e0180c2d72f80c2d72f80c0caf384a302a08d06a08d0680ade20480014080028088b2a002c0843dc0843de8078088b2a0020211";

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
        let whole = record.encode_whole().expect("encodes");
        assert_eq!(hex(&whole), CONFIGURE_RECORD_STORED);
        let compact = record.encode().expect("encodes");
        assert_eq!(hex(&compact), CONFIGURE_RECORD_COMPACT);
        for stored in [whole, compact] {
            assert_eq!(JournalRecord::decode(&stored).expect("decodes"), record);
        }
    }

    #[test]
    fn an_order_is_stored_as_it_always_was() {
        let (record, view) = order_record();
        let whole = record.encode_whole().expect("encodes");
        assert_eq!(hex(&whole), ORDER_RECORD_STORED, "the journal's record");
        let compact = record.encode().expect("encodes");
        assert_eq!(hex(&compact), ORDER_RECORD_COMPACT, "the compact record");
        for stored in [unhex(ORDER_RECORD_STORED), compact] {
            assert_eq!(JournalRecord::decode(&stored).expect("decodes"), record);
        }
        let view_stored = postcard::to_allocvec(&view).expect("encodes");
        assert_eq!(hex(&view_stored), ORDER_VIEW_STORED, "an order's view");
        let decoded: OrderView = postcard::from_bytes(&view_stored).expect("decodes");
        assert_eq!(decoded, view);
    }

    /// The pieces of [`session_record`]: one market's orders at one price and quantity.
    mod session {
        use crate::command::NewOrder;
        use crate::event::{AcceptedOrder, DoneReason, EventKind, Fill};
        use crate::types::{
            AccountId, Amount, Asset, Balance, ClientKey, MarketId, OrderId, OrderStatus,
            OrderTerms, OrderType, Price, Quantity, SelfTradePrevention, Side, TimeInForce,
            TradeId,
        };

        pub const PRICE: Price = Price(6_000);
        pub const QUANTITY: Quantity = Quantity(250);

        pub fn balance(available: u64) -> Balance {
            Balance {
                available: Amount(available),
                held: Amount(7),
            }
        }

        pub fn placement(account: u64, side: Side, client: Option<&str>) -> NewOrder {
            NewOrder {
                account: AccountId(account),
                terms: OrderTerms {
                    market: MarketId(0),
                    side,
                    order_type: OrderType::Limit,
                    price: Some(PRICE),
                    quantity: QUANTITY,
                    time_in_force: TimeInForce::GoodTillCanceled,
                    post_only: false,
                    self_trade_prevention: SelfTradePrevention::CancelTaker,
                },
                client_order_id: client.map(Into::into),
            }
        }

        /// The acceptance of `placed` as order `order`.
        pub fn accepted(order: u64, placed: &NewOrder) -> AcceptedOrder {
            AcceptedOrder {
                order_id: OrderId(order),
                account: placed.account,
                terms: placed.terms,
                client_order_id: placed.client_order_id.as_deref().map(ClientKey::new),
                hold_asset: Asset::Usd,
                hold: Amount(150_000_000),
                balance_after: balance(order),
            }
        }

        /// Order 11 of account 4 buying all of order 10 of account 3.
        pub fn fill() -> EventKind {
            EventKind::Fill(Fill {
                trade_id: TradeId(1),
                market: MarketId(0),
                price: PRICE,
                quantity: QUANTITY,
                taker_side: Side::Buy,
                maker_order: OrderId(10),
                maker_account: AccountId(3),
                taker_order: OrderId(11),
                taker_account: AccountId(4),
                taker_released: Amount(0),
                taker_paid_from_available: false,
                maker_filled: QUANTITY,
                taker_filled: QUANTITY,
                maker_after: [balance(1), balance(2)],
                taker_after: [balance(3), balance(4)],
            })
        }

        pub fn rested(order: u64, account: u64, side: Side) -> EventKind {
            EventKind::OrderRested {
                order_id: OrderId(order),
                account: AccountId(account),
                market: MarketId(0),
                side,
                price: PRICE,
                remaining: QUANTITY,
            }
        }

        pub fn done(order: u64, account: u64) -> EventKind {
            EventKind::OrderDone {
                order_id: OrderId(order),
                account: AccountId(account),
                market: MarketId(0),
                status: OrderStatus::Filled,
                reason: DoneReason::Filled,
                quantity: QUANTITY,
                filled: QUANTITY,
                asset: Asset::Usd,
                released: Amount(0),
                balance_after: balance(9),
            }
        }
    }

    /// A session's commands as the sequencer journals them: placements accepted as placed
    /// (with and without a client order id), one that rests, one that trades, a cancel,
    /// and a placement whose acceptance says otherwise than its command; their times go
    /// back, jump to the largest and wrap to zero.
    fn session_record() -> JournalRecord {
        use crate::command::OrderRef;
        use crate::types::{AccountId, Side};
        use session::{accepted, done, fill, placement, rested};
        let maker = placement(3, Side::Sell, Some("maker-1"));
        let taker = placement(4, Side::Buy, None);
        let other = placement(5, Side::Buy, Some("mine"));
        let mut said_otherwise = accepted(12, &other);
        said_otherwise.client_order_id = Some(ClientKey::new("another"));
        let cancel = Command::CancelOrder {
            account: AccountId(5),
            target: OrderRef::Client("mine".into()),
        };
        let commands = [
            (
                1_700_000_000_000,
                Command::PlaceOrder(maker.clone()),
                vec![
                    EventKind::OrderAccepted(accepted(10, &maker)),
                    rested(10, 3, Side::Sell),
                ],
            ),
            (
                1_699_999_999_990,
                Command::PlaceOrder(taker.clone()),
                vec![
                    EventKind::OrderAccepted(accepted(11, &taker)),
                    fill(),
                    done(10, 3),
                    done(11, 4),
                ],
            ),
            (
                u64::MAX,
                Command::PlaceOrder(other),
                vec![EventKind::OrderAccepted(said_otherwise)],
            ),
            (0, cancel, vec![done(12, 5)]),
        ];
        let mut record = JournalRecord::default();
        let mut seq = 1_000;
        for (timestamp_ms, command, kinds) in commands {
            let mut events = kinds
                .into_iter()
                .map(|kind| {
                    seq += 1;
                    Event {
                        seq,
                        timestamp_ms,
                        kind,
                    }
                })
                .collect();
            record.push(timestamp_ms, command, &mut events);
        }
        record
    }

    #[test]
    fn a_session_is_stored_compactly_and_read_back_as_it_was() {
        let record = session_record();
        let compact = record.encode().expect("encodes");
        let whole = record.encode_whole().expect("encodes");
        assert_eq!(compact[0], FORMAT_COMPACT);
        assert_eq!(JournalRecord::decode(&compact).expect("decodes"), record);
        assert!(
            compact.len() * 3 < whole.len() * 2,
            "{} bytes compactly, {} whole",
            compact.len(),
            whole.len()
        );
    }

    #[test]
    fn a_record_whose_events_carry_other_times_is_stored_whole() {
        let mut record = session_record();
        record.events[3].timestamp_ms += 1;
        let stored = record.encode().expect("encodes");
        assert_eq!(stored[0], FORMAT_WHOLE);
        assert_eq!(JournalRecord::decode(&stored).expect("decodes"), record);
        // And one whose entries do not count its events cannot be said compactly either.
        let mut miscounted = session_record();
        miscounted.entries[0].event_count += 1;
        assert_eq!(miscounted.encode().expect("encodes")[0], FORMAT_WHOLE);
    }
}
