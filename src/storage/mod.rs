//! Everything fleetmon keeps on disk under `--storage.path`. Today that is the
//! key-value store ([`kv`]): sled behind one module, with its schema versioned by
//! the migrations in `migrations/`. The time-series head, WAL and blocks will
//! live beside it.

pub mod kv;
mod migrate;

pub use kv::{Kv, KvError, KvTree};
