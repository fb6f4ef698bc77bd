//! Schema 1: the first layout of the key-value store: accounts, API tokens,
//! simulated vehicles and the command log (keyed by a big-endian sequence number).

use crate::storage::kv::{trees, Kv, KvError};

/// Creates the trees of schema 1.
pub fn apply(kv: &Kv) -> Result<(), KvError> {
    for name in [
        trees::META,
        trees::USERS,
        trees::TOKENS,
        trees::VEHICLES,
        trees::COMMANDS,
    ] {
        kv.tree(name)?;
    }
    Ok(())
}
