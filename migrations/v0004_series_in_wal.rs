//! Schema 4: the series table moves from the key-value store into the WAL,
//! whose series records are written under the head's shard lock before the
//! series' first sample. Nothing changes in the key-value store here: the
//! storage, which owns the WAL, moves the series of an older store into it at
//! its next open and then empties the old tree. The version keeps a binary of
//! schema 3, which would find no series table, from opening a newer store.

use crate::storage::kv::{Kv, KvError};

/// Nothing to do in the key-value store (see the module comment).
pub fn apply(_kv: &Kv) -> Result<(), KvError> {
    Ok(())
}
