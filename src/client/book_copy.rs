//! A client's copy of a market's book, kept from `StreamOrderBook`: the snapshot, then each
//! message's level changes. The command-line client's `market watch` keeps one, and the
//! tests hold the server's stream against it.
//!
//! Every message is checked as a client of the contract would check it: its stream
//! sequence number follows the last one, and the top-of-book checksum it carries equals
//! the one computed here from the copy's own levels, out of the wire's decimal strings
//! (nothing of the server's book is used).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::api::proto;
use crate::market_data::checksum_of_written;

/// Why a message could not be applied: the copy can no longer be trusted and the client
/// should resubscribe for a fresh snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyError {
    /// A message's stream sequence number does not follow the last one.
    Gap {
        /// The number the next message should have had.
        expected: u64,
        /// The number it had.
        received: u64,
    },
    /// The copy's checksum differs from the one the message carries.
    Checksum {
        /// The exchange's sequence number the message reflects.
        book_seq: u64,
        /// The message's checksum.
        received: u32,
        /// The copy's.
        computed: u32,
    },
    /// A level's price or quantity is not a decimal number.
    Malformed {
        /// `price` or `quantity`.
        field: &'static str,
        /// What was received.
        value: String,
    },
    /// A message carried no update.
    Empty {
        /// Its stream sequence number.
        seq: u64,
    },
}

impl fmt::Display for CopyError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CopyError::Gap { expected, received } => write!(
                formatter,
                "the book stream skipped from message {} to {received}",
                expected - 1
            ),
            CopyError::Checksum {
                book_seq,
                received,
                computed,
            } => write!(
                formatter,
                "the book's checksum at seq {book_seq} is {received}, the copy's is {computed}"
            ),
            CopyError::Malformed { field, value } => {
                write!(formatter, "a level's {field} {value:?} is not a decimal")
            }
            CopyError::Empty { seq } => write!(formatter, "book message {seq} is empty"),
        }
    }
}

impl std::error::Error for CopyError {}

/// One side of the copy: levels by price, each as received.
type Side = BTreeMap<Decimal, proto::PriceLevel>;

/// A client's copy of one market's book.
#[derive(Clone, Debug, Default)]
pub struct BookCopy {
    bids: Side,
    asks: Side,
    /// The stream's sequence number of the last message applied.
    pub stream_seq: u64,
    /// The exchange's sequence number the copy reflects.
    pub book_seq: u64,
}

impl BookCopy {
    /// Applies one message of the stream. On an error the copy is left as it was before
    /// the message's changes only when the error is a gap or an empty message; after a
    /// checksum or malformed-level error it must be thrown away.
    pub fn apply(&mut self, message: &proto::BookUpdate) -> Result<(), CopyError> {
        use proto::book_update::Update;
        let expected = self.stream_seq + 1;
        if message.seq != expected {
            return Err(CopyError::Gap {
                expected,
                received: message.seq,
            });
        }
        match &message.update {
            Some(Update::Snapshot(snapshot)) => {
                self.bids.clear();
                self.asks.clear();
                apply_levels(&snapshot.bids, &mut self.bids)?;
                apply_levels(&snapshot.asks, &mut self.asks)?;
                self.book_seq = snapshot.book_seq;
            }
            Some(Update::Changes(changes)) => {
                apply_levels(&changes.bids, &mut self.bids)?;
                apply_levels(&changes.asks, &mut self.asks)?;
                self.book_seq = changes.book_seq;
            }
            Some(Update::Heartbeat(beat)) => self.book_seq = beat.book_seq,
            None => return Err(CopyError::Empty { seq: message.seq }),
        }
        self.stream_seq = message.seq;
        let computed = self.checksum();
        if computed != message.checksum {
            return Err(CopyError::Checksum {
                book_seq: self.book_seq,
                received: message.checksum,
                computed,
            });
        }
        Ok(())
    }

    /// The bids, best (highest) first.
    pub fn bids(&self) -> impl Iterator<Item = &proto::PriceLevel> {
        self.bids.values().rev()
    }

    /// The asks, best (lowest) first.
    pub fn asks(&self) -> impl Iterator<Item = &proto::PriceLevel> {
        self.asks.values()
    }

    /// The top-of-book checksum of the copy, computed from the levels as received.
    pub fn checksum(&self) -> u32 {
        checksum_of_written(self.asks().map(as_written), self.bids().map(as_written))
    }

    /// Whether the copy holds exactly the levels of a `GetOrderBook` answer.
    pub fn equals(&self, book: &proto::GetOrderBookResponse) -> bool {
        self.bids().eq(book.bids.iter()) && self.asks().eq(book.asks.iter())
    }
}

/// A level's price and quantity as received.
fn as_written(level: &proto::PriceLevel) -> (&str, &str) {
    (&level.price, &level.quantity)
}

/// Sets each level's quantity; a zero quantity removes the level.
fn apply_levels(levels: &[proto::PriceLevel], side: &mut Side) -> Result<(), CopyError> {
    for level in levels {
        let price = decimal("price", &level.price)?;
        if decimal("quantity", &level.quantity)?.is_zero() {
            side.remove(&price);
        } else {
            side.insert(price, level.clone());
        }
    }
    Ok(())
}

fn decimal(field: &'static str, text: &str) -> Result<Decimal, CopyError> {
    Decimal::from_str(text).map_err(|_| CopyError::Malformed {
        field,
        value: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::book_update::Update;

    fn level(price: &str, quantity: &str) -> proto::PriceLevel {
        proto::PriceLevel {
            price: price.into(),
            quantity: quantity.into(),
        }
    }

    fn message(seq: u64, update: Update, checksum: u32) -> proto::BookUpdate {
        proto::BookUpdate::new(seq, update, checksum)
    }

    #[test]
    fn levels_sort_by_their_value_and_the_checksum_follows_them() {
        let mut copy = BookCopy::default();
        let snapshot = Update::Snapshot(proto::BookSnapshot {
            bids: vec![level("9.9000", "1.00"), level("10.0000", "2.50")],
            asks: vec![level("10.5000", "0.10")],
            book_seq: 7,
        });
        // Asks lowest first, then bids highest first: 10.5000 0.10, 10.0000 2.50, 9.9000
        // 1.00, compacted.
        let expected = crc32fast::hash(b"1050001010000025099000100");
        copy.apply(&message(1, snapshot, expected))
            .expect("the snapshot applies");
        assert_eq!(copy.book_seq, 7);
        let bids: Vec<_> = copy.bids().map(|level| level.price.as_str()).collect();
        assert_eq!(bids, ["10.0000", "9.9000"]);

        let changes = Update::Changes(proto::LevelChanges {
            bids: vec![level("10.0000", "0.00")],
            asks: vec![],
            book_seq: 9,
        });
        let expected = crc32fast::hash(b"1050001099000100");
        copy.apply(&message(2, changes, expected))
            .expect("the changes apply");
        assert_eq!(copy.bids().count(), 1, "a zero quantity removes the level");
        assert_eq!(copy.book_seq, 9);
    }

    #[test]
    fn a_gap_a_wrong_checksum_and_a_malformed_level_are_refused() {
        let mut copy = BookCopy::default();
        let beat = || Update::Heartbeat(proto::Heartbeat { book_seq: 3 });
        let empty = crc32fast::hash(b"");
        assert_eq!(
            copy.apply(&message(2, beat(), empty)),
            Err(CopyError::Gap {
                expected: 1,
                received: 2
            })
        );
        assert_eq!(
            copy.apply(&message(1, beat(), empty + 1)),
            Err(CopyError::Checksum {
                book_seq: 3,
                received: empty + 1,
                computed: empty
            })
        );
        let mut copy = BookCopy::default();
        let bad = Update::Changes(proto::LevelChanges {
            bids: vec![level("0.7O00", "1.00")],
            asks: vec![],
            book_seq: 4,
        });
        assert_eq!(
            copy.apply(&message(1, bad, empty)),
            Err(CopyError::Malformed {
                field: "price",
                value: "0.7O00".into()
            })
        );
    }
}
