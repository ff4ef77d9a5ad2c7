//! One account on the ledger: who it is and what it holds.

use serde::{Deserialize, Serialize};

use crate::types::{AccountId, Asset, Balance, Balances, Role, Tier};

/// An account and its balances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// Shown in listings.
    pub name: Box<str>,
    /// Decides what it may do.
    pub role: Role,
    /// Decides the issue price it buys at.
    pub tier: Tier,
    /// SHA-256 of its bearer token: the API authenticates against it, and it is all the
    /// ledger keeps of the token.
    pub token_hash: [u8; 32],
    /// Its holdings, indexed by [`Asset::index`].
    pub balances: Balances,
}

impl Account {
    /// Its holding of one asset.
    pub fn balance(&self, asset: Asset) -> Balance {
        self.balances[asset.index()]
    }
}
