//! The matching engine: order books and the sequencer that owns them and the ledger.
//!
//! Pure and deterministic: no I/O, no clock, no randomness, no threads. The sequencer is
//! the single writer of balances and books; everything outside sends it commands and reads
//! the events it emits.
//!
//! - `book.rs`: the [`OrderBook`] trait the matcher is written against, and [`RestingOrder`].
//! - `level_book.rs`: [`LevelBook`], the fast book (sorted price levels over a slab).
//! - `reference_book.rs`: [`ReferenceBook`], the naive book tests compare it with.
//! - `sequencer.rs`: [`Sequencer`], command dispatch and the ledger commands.
//! - `matching.rs`: the order commands and matching.
//! - `slot_index.rs`: where each resting order sits in the fast book's slab.
//! - `client_orders.rs`, `idempotency.rs`: the kept client order ids and idempotency
//!   keys, each held in `keyed_slots.rs`'s slab, found through `slot_table.rs`'s index.
//! - `snapshot.rs`: [`SequencerSnapshot`], the whole state as plain data.
//! - `encoding.rs`: [`PostcardBytes`], the output snapshots and journal records are encoded
//!   into.

mod book;
mod client_orders;
mod encoding;
mod idempotency;
mod keyed_slots;
mod level_book;
mod matching;
mod metering;
mod reference_book;
mod sequencer;
mod slot_index;
mod slot_table;
mod snapshot;

pub use crate::types::Level;
pub use book::{OrderBook, RestingOrder};
pub use client_orders::RecordOrder;
pub use encoding::PostcardBytes;
pub use idempotency::{IdempotencyRecord, IdempotencyRecords};
pub use level_book::LevelBook;
pub use reference_book::ReferenceBook;
pub use sequencer::Sequencer;
pub use snapshot::{ClientOrderRecord, EncodedSnapshot, EndedRecord, SequencerSnapshot};

#[cfg(test)]
mod tests;
