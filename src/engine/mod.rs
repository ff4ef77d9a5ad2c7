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

mod book;
mod level_book;
mod matching;
mod reference_book;
mod sequencer;
mod slot_index;

pub use book::{Level, OrderBook, RestingOrder};
pub use level_book::LevelBook;
pub use reference_book::ReferenceBook;
pub use sequencer::Sequencer;

#[cfg(test)]
mod tests;
