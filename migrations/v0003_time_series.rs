//! Schema 3: the time-series store's series table and deletion marks (the
//! WAL's segment files live beside the store, under `wal/`). A store of schema 3 holds samples
//! that a binary of schema 2 would not know to replay, hence the version.

use crate::storage::kv::{trees, Kv, KvError};

/// Creates the series table and the tombstone table.
pub fn apply(kv: &Kv) -> Result<(), KvError> {
    kv.tree(trees::SERIES)?;
    kv.tree(trees::TOMBSTONES)?;
    Ok(())
}
