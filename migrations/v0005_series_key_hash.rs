//! Schema 5: head shards follow the hash of the series key (XXH3-64 of the
//! label set in its remote-write encoding, see `storage::series_key`)
//! instead of the label hash of schema 4. A series' ref records its shard,
//! and refs are kept forever (the WAL, the tombstones and remote-write
//! cursors hold them), so nothing is rewritten: at WAL replay the head
//! places each older series in its new shard and remembers the move. The
//! version keeps a binary of schema 4, which would find those refs in the
//! wrong shards and skip their series, from opening a newer store.

use crate::storage::kv::{Kv, KvError};

/// Nothing to do in the key-value store (see the module comment).
pub fn apply(_kv: &Kv) -> Result<(), KvError> {
    Ok(())
}
