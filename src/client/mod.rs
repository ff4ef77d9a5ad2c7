//! What a client of the exchange keeps, as the contract tells it to: not the server's
//! code. The command-line client and the tests use it.

pub mod book_copy;
