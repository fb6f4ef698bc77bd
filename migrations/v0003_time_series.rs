//! Schema 3: the time-series store's durable head state: the series table
//! and the write-ahead log. A store of schema 3 holds samples that a binary
//! of schema 2 would not know to replay, hence the version.

use crate::storage::kv::{trees, Kv, KvError};

/// Creates the series table and the WAL.
pub fn apply(kv: &Kv) -> Result<(), KvError> {
    kv.tree(trees::SERIES)?;
    kv.tree(trees::WAL)?;
    Ok(())
}
