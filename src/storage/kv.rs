//! The one module that touches sled. It opens the store once per process,
//! guards it with a lock file, refuses a store written by a newer fleetmon
//! before sled can modify a byte of it, applies the pending migrations, and
//! hands out [`KvTree`]s that store JSON values. No other module imports sled,
//! so the engine underneath stays replaceable.
//!
//! Layout of `--storage.path`:
//! - `LOCK`: held (flock) by the process that has the store open;
//! - `store.json`: `{"schema_version": N}`, rewritten atomically after migrations,
//!   read before sled is opened;
//! - `kv/`: the sled database; its `meta` tree records each applied migration.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::migrate;

/// The sled trees fleetmon uses, by name. Migrations refer to them too.
pub mod trees {
    /// Migration records and store-wide settings.
    pub const META: &str = "meta";
    /// User accounts: user name → account.
    pub const USERS: &str = "users";
    /// API tokens: token id → token record.
    pub const TOKENS: &str = "tokens";
    /// Simulated vehicles: vehicle id → simulator state.
    pub const VEHICLES: &str = "vehicles";
    /// Command log: big-endian sequence number → command record.
    pub const COMMANDS: &str = "commands";
    /// Head series table: series ref (u64 BE) → label set (see `storage::wal`).
    pub const SERIES: &str = "series";
    /// Deletion marks of the time-series store (see `storage::tombstones`).
    pub const TOMBSTONES: &str = "tombstones";
    /// Command log index: see [`command_by_vehicle_key`] → empty.
    pub const COMMANDS_BY_VEHICLE: &str = "commands_by_vehicle";
    /// Remote-write queues: queue name → WAL position sent up to.
    pub const REMOTE_WRITE: &str = "remote_write";

    /// The [`COMMANDS_BY_VEHICLE`] key of command `sequence` (its [`COMMANDS`]
    /// key) of vehicle `vin`: VIN bytes, a 0 separator, the sequence bytes.
    pub fn command_by_vehicle_key(vin: &str, sequence: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(vin.len() + 1 + sequence.len());
        key.extend_from_slice(vin.as_bytes());
        key.push(0);
        key.extend_from_slice(sequence);
        key
    }
}

/// A failure of the key-value store, with the path and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Another process holds the store.
    #[error("the store at {0} is in use by another fleetmon process (stop it, or use another --storage.path)")]
    InUse(PathBuf),
    /// The store was written by a newer fleetmon.
    #[error("the store at {path} has schema version {found}, but this fleetmon {binary} knows versions up to {known}; it was left untouched: run a newer fleetmon, or use another --storage.path")]
    TooNew {
        /// Store directory.
        path: PathBuf,
        /// Schema version found on disk.
        found: u32,
        /// Newest schema version this binary knows.
        known: u32,
        /// This binary's version.
        binary: &'static str,
    },
    /// A file of the store could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `store.json` is not what fleetmon writes.
    #[error("{path}: not a fleetmon store marker ({why}); was this directory written by something else?")]
    BadMarker {
        /// The marker file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// sled reported an error.
    #[error("key-value store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value is not valid JSON for its type.
    #[error("corrupt value in tree '{tree}': {source}")]
    Corrupt {
        /// The tree holding the value.
        tree: String,
        /// Why it does not decode.
        source: serde_json::Error,
    },
    /// A binary record (series table) does not decode.
    #[error("corrupt record {key} in tree '{tree}'")]
    CorruptRecord {
        /// The tree holding it.
        tree: &'static str,
        /// Its key, in hex.
        key: String,
    },
    /// A migration failed.
    #[error("migration {version} ({name}) failed: {why}")]
    Migration {
        /// The migration's version.
        version: u32,
        /// The migration's name.
        name: &'static str,
        /// What went wrong.
        why: String,
    },
}

/// The open key-value store. Cheap to clone; every clone shares one sled database.
#[derive(Clone)]
pub struct Kv {
    db: sled::Db,
    // Held for the lifetime of the store; dropping the last clone releases the flock.
    _lock: std::sync::Arc<File>,
}

#[derive(Serialize, Deserialize)]
struct Marker {
    schema_version: u32,
}

impl Kv {
    /// Opens (creating if needed) the store under `dir`, applying every pending
    /// migration. Refuses, without modifying anything, a store in use by
    /// another process or written by a newer schema.
    pub fn open(dir: &Path) -> Result<Kv, KvError> {
        Self::open_up_to(dir, migrate::latest_version())
    }

    /// Like [`Kv::open`], but applies migrations only up to `version`: how the
    /// tests build a store of an older schema.
    pub fn open_up_to(dir: &Path, version: u32) -> Result<Kv, KvError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KvError::Io { path, source }
        };
        // Checked before anything is created, so that a refused store stays byte for byte as it was.
        let marker_path = dir.join("store.json");
        let known = migrate::latest_version();
        let too_new = |found: Option<u32>| match found {
            Some(found) if found > known => Err(KvError::TooNew {
                path: dir.to_path_buf(),
                found,
                known,
                binary: env!("CARGO_PKG_VERSION"),
            }),
            _ => Ok(()),
        };
        too_new(read_marker(&marker_path)?)?;
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        // SAFETY: flock on a valid, owned file descriptor has no memory-safety preconditions.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(KvError::InUse(dir.to_path_buf()));
        }
        // Again under the lock: another process may have upgraded the store meanwhile.
        too_new(read_marker(&marker_path)?)?;
        let kv_path = dir.join("kv");
        let db = sled::Config::new()
            .path(&kv_path)
            .cache_capacity(32 * 1024 * 1024)
            .open()?;
        let kv = Kv {
            db,
            _lock: std::sync::Arc::new(lock),
        };
        let version = migrate::apply(&kv, version)?;
        kv.flush()?;
        write_marker(&marker_path, version)?;
        Ok(kv)
    }

    /// The tree named `name` (see [`trees`]), created on first use.
    pub fn tree(&self, name: &str) -> Result<KvTree, KvError> {
        Ok(KvTree {
            name: name.to_string(),
            tree: self.db.open_tree(name)?,
        })
    }

    /// Writes every pending change to disk.
    pub fn flush(&self) -> Result<(), KvError> {
        self.db.flush()?;
        Ok(())
    }

    /// Copies every tree but those named in `skip` into `target`.
    pub fn copy_trees_to(&self, target: &Kv, skip: &[&str]) -> Result<(), KvError> {
        for name in self.db.tree_names() {
            let Ok(text) = std::str::from_utf8(&name) else {
                continue;
            };
            // sled's own default tree holds nothing of fleetmon's.
            if text == "__sled__default" || skip.contains(&text) {
                continue;
            }
            let from = self.db.open_tree(&name)?;
            let to = target.db.open_tree(&name)?;
            for entry in from.iter() {
                let (key, value) = entry?;
                to.insert(key, value)?;
            }
        }
        Ok(())
    }

    /// A process-wide unique, increasing number (for ordered keys).
    pub fn next_id(&self) -> Result<u64, KvError> {
        Ok(self.db.generate_id()?)
    }

    /// The schema version recorded in the store's `meta` tree.
    pub fn schema_version(&self) -> Result<u32, KvError> {
        migrate::recorded_version(self)
    }
}

fn read_marker(path: &Path) -> Result<Option<u32>, KvError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<Marker>(&bytes)
            .map(|m| Some(m.schema_version))
            .map_err(|e| KvError::BadMarker {
                path: path.to_path_buf(),
                why: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KvError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces the marker atomically: temp file, fsync, rename, fsync the directory.
fn write_marker(path: &Path, schema_version: u32) -> Result<(), KvError> {
    let io = |source| KvError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let mut file = File::create(&tmp).map_err(io)?;
    let body = serde_json::to_vec(&Marker { schema_version }).map_err(|e| KvError::Corrupt {
        tree: "store.json".into(),
        source: e,
    })?;
    file.write_all(&body).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(parent) = path.parent() {
        File::open(parent).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// One named tree of JSON values keyed by bytes.
#[derive(Clone)]
pub struct KvTree {
    name: String,
    tree: sled::Tree,
}

impl KvTree {
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, KvError> {
        serde_json::from_slice(bytes).map_err(|source| KvError::Corrupt {
            tree: self.name.clone(),
            source,
        })
    }

    /// Makes every write to the store durable (blocking: an fsync).
    pub fn flush(&self) -> Result<(), KvError> {
        self.tree.flush()?;
        Ok(())
    }

    /// The value under `key`, if any.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, KvError> {
        self.tree
            .get(key)?
            .map(|bytes| self.decode(&bytes))
            .transpose()
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn put<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), KvError> {
        let bytes = serde_json::to_vec(value).map_err(|source| KvError::Corrupt {
            tree: self.name.clone(),
            source,
        })?;
        self.tree.insert(key, bytes)?;
        Ok(())
    }

    /// Every raw entry in key order, streamed.
    pub fn iter_raw(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), KvError>> + '_ {
        self.tree.iter().map(|entry| {
            entry
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(KvError::from)
        })
    }

    /// Stores an empty value under `key` (index entries).
    pub fn put_empty(&self, key: &[u8]) -> Result<(), KvError> {
        self.tree.insert(key, &[])?;
        Ok(())
    }

    /// Stores raw bytes under `key` (tests build schema-3 series tables with it).
    #[cfg(test)]
    pub(crate) fn put_raw(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.tree.insert(key, value)?;
        Ok(())
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<(), KvError> {
        self.tree.clear()?;
        Ok(())
    }

    /// Removes `key`; true when it was present.
    pub fn remove(&self, key: &[u8]) -> Result<bool, KvError> {
        Ok(self.tree.remove(key)?.is_some())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// True when the tree holds nothing.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Every entry in key order.
    pub fn entries<T: DeserializeOwned>(&self) -> Result<Vec<(Vec<u8>, T)>, KvError> {
        self.tree
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                Ok((key.to_vec(), self.decode(&value)?))
            })
            .collect()
    }

    /// Up to `limit` values after skipping `skip`, newest (highest key) first,
    /// among keys starting with `prefix`.
    pub fn newest_first<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, KvError> {
        self.tree
            .scan_prefix(prefix)
            .rev()
            .skip(skip)
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                Ok((key.to_vec(), self.decode(&value)?))
            })
            .collect()
    }

    /// Keys starting with `prefix`, highest first, after skipping `skip`, at most `limit`.
    pub fn newest_keys(
        &self,
        prefix: &[u8],
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, KvError> {
        self.tree
            .scan_prefix(prefix)
            .rev()
            .skip(skip)
            .take(limit)
            .map(|entry| Ok(entry?.0.to_vec()))
            .collect()
    }

    /// Whether any key starts with `prefix`.
    pub fn has_prefix(&self, prefix: &[u8]) -> Result<bool, KvError> {
        Ok(self.tree.scan_prefix(prefix).next().transpose()?.is_some())
    }

    /// Number of keys starting with `prefix`.
    pub fn count_prefix(&self, prefix: &[u8]) -> Result<usize, KvError> {
        let mut n = 0;
        for entry in self.tree.scan_prefix(prefix) {
            entry?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopen_and_schema_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = Kv::open(dir.path()).unwrap();
            kv.tree("t").unwrap().put(b"k", &vec![1, 2, 3]).unwrap();
            assert_eq!(kv.schema_version().unwrap(), migrate::latest_version());
        }
        let kv = Kv::open(dir.path()).unwrap();
        let got: Option<Vec<i32>> = kv.tree("t").unwrap().get(b"k").unwrap();
        assert_eq!(got, Some(vec![1, 2, 3]));
    }

    #[test]
    fn a_second_open_while_held_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Kv::open(dir.path()).unwrap();
        assert!(matches!(Kv::open(dir.path()), Err(KvError::InUse(_))));
    }

    #[test]
    fn a_newer_store_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        drop(Kv::open(dir.path()).unwrap());
        let newer = migrate::latest_version() + 1;
        fs::write(
            dir.path().join("store.json"),
            format!("{{\"schema_version\":{newer}}}"),
        )
        .unwrap();
        let before = snapshot(dir.path());
        let err = Kv::open(dir.path()).err().unwrap();
        assert!(matches!(err, KvError::TooNew { found, .. } if found == newer));
        assert!(err.to_string().contains("left untouched"), "{err}");
        assert_eq!(before, snapshot(dir.path()));
    }

    #[test]
    fn newest_first_pages_backwards_within_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::open(dir.path()).unwrap();
        let t = kv.tree("t").unwrap();
        for i in 0u8..5 {
            t.put(&[b'a', i], &i).unwrap();
        }
        t.put(b"b", &99u8).unwrap();
        let page: Vec<u8> = t
            .newest_first(b"a", 1, 2)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(page, vec![3, 2]);
        assert_eq!(t.count_prefix(b"a").unwrap(), 5);
    }

    /// Every file under `dir` (except the lock) with its bytes.
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.file_name() != Some("LOCK".as_ref()) {
                    out.push((path.clone(), fs::read(&path).unwrap()));
                }
            }
        }
        out.sort();
        out
    }
}
