//! Deletion marks, in sled: time intervals of a head series or of a block's
//! series whose samples no read may return. Head marks are applied to the
//! head at once and again after WAL replay (the WAL still holds the deleted
//! samples); block marks filter every read of the block until
//! `Storage::clean_tombstones` rewrites it without those samples.
//!
//! Keys: `h`, series ref (u64 BE) for the head; `b`, block id, `0x00`,
//! series index (u32 BE) for blocks. Values: JSON list of `[mint, maxt]`.

use super::kv::{trees, Kv, KvError, KvTree};
use super::wal::SeriesRef;

/// An inclusive time interval, ms.
pub type Interval = (i64, i64);

/// The tombstone table.
pub struct Tombstones {
    tree: KvTree,
}

fn head_key(series: SeriesRef) -> Vec<u8> {
    let mut key = vec![b'h'];
    key.extend_from_slice(&series.to_be_bytes());
    key
}

fn block_prefix(block: &str) -> Vec<u8> {
    let mut key = vec![b'b'];
    key.extend_from_slice(block.as_bytes());
    key.push(0);
    key
}

fn block_key(block: &str, index: u32) -> Vec<u8> {
    let mut key = block_prefix(block);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// Whether `t` lies in one of `intervals`.
pub fn covered(intervals: &[Interval], t: i64) -> bool {
    intervals.iter().any(|&(lo, hi)| lo <= t && t <= hi)
}

impl Tombstones {
    /// Opens the table in `kv`.
    pub fn open(kv: &Kv) -> Result<Tombstones, KvError> {
        Ok(Tombstones {
            tree: kv.tree(trees::TOMBSTONES)?,
        })
    }

    fn add(&self, key: &[u8], interval: Interval) -> Result<(), KvError> {
        let mut intervals: Vec<Interval> = self.tree.get(key)?.unwrap_or_default();
        intervals.push(interval);
        self.tree.put(key, &intervals)
    }

    /// Marks `[mint, maxt]` of head series `series` deleted.
    pub fn add_head(&self, series: SeriesRef, interval: Interval) -> Result<(), KvError> {
        self.add(&head_key(series), interval)
    }

    /// Every head mark.
    pub fn head(&self) -> Result<Vec<(SeriesRef, Vec<Interval>)>, KvError> {
        let mut out = Vec::new();
        for (key, intervals) in self.tree.entries::<Vec<Interval>>()? {
            if let Some(series) = key
                .strip_prefix(b"h")
                .and_then(|k| k.try_into().ok())
                .map(u64::from_be_bytes)
            {
                out.push((series, intervals));
            }
        }
        Ok(out)
    }

    /// Forgets head marks that end before `boundary` (their window is in a
    /// block, already without the deleted samples) and those of `dropped` series.
    pub fn trim_head(&self, boundary: i64, dropped: &[SeriesRef]) -> Result<(), KvError> {
        for (series, intervals) in self.head()? {
            let key = head_key(series);
            let kept: Vec<Interval> = intervals
                .into_iter()
                .filter(|(_, hi)| *hi >= boundary)
                .collect();
            if kept.is_empty() || dropped.contains(&series) {
                self.tree.remove(&key)?;
            } else {
                self.tree.put(&key, &kept)?;
            }
        }
        Ok(())
    }

    /// Marks `[mint, maxt]` of series `index` of block `block` deleted.
    pub fn add_block(&self, block: &str, index: u32, interval: Interval) -> Result<(), KvError> {
        self.add(&block_key(block, index), interval)
    }

    /// The marks of one block series.
    pub fn block(&self, block: &str, index: u32) -> Result<Vec<Interval>, KvError> {
        Ok(self.tree.get(&block_key(block, index))?.unwrap_or_default())
    }

    /// Whether block `block` has marks.
    pub fn block_has_marks(&self, block: &str) -> Result<bool, KvError> {
        self.tree.has_prefix(&block_prefix(block))
    }

    /// Forgets every mark of block `block` (rewritten or deleted).
    pub fn remove_block(&self, block: &str) -> Result<(), KvError> {
        for (key, _) in
            self.tree
                .newest_first::<Vec<Interval>>(&block_prefix(block), 0, usize::MAX)?
        {
            self.tree.remove(&key)?;
        }
        Ok(())
    }
}
