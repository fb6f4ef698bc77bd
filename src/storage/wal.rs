//! The durable state the head is rebuilt from, kept in sled: the series
//! table (series ref → label set) and the write-ahead log of sample batches
//! (sequence → batch). A batch is acknowledged only after [`Wal::commit`]
//! returned, which flushes sled; concurrent committers share one flush.
//! Replay does not rely on the log's order matching each series' time order
//! (concurrent appenders may log in either order): the head sorts late
//! samples in. A checkpoint rewrites the log without the samples already in
//! blocks, so the log stays bounded.
//!
//! Batch record: `0x01`, then per sample: series ref (uvarint), timestamp
//! (zigzag varint, delta to the previous sample of the record), value (8
//! bytes, little-endian f64 bits). Series record: label count (uvarint),
//! then name and value as length-prefixed strings.

use std::sync::atomic::{AtomicU64, Ordering};

use super::encoding::{put_str, put_uvarint, put_varint, Corrupt, Reader};
use super::kv::{trees, Kv, KvError, KvTree};
use super::labels::Labels;

/// A head series' identifier.
pub type SeriesRef = u64;

const BATCH: u8 = 1;

/// One logged sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WalSample {
    /// The series it belongs to.
    pub series: SeriesRef,
    /// Timestamp, Unix ms.
    pub t: i64,
    /// Value (bit pattern preserved, stale markers included).
    pub v: f64,
}

/// What a replay read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Batches read.
    pub records: u64,
    /// Samples read.
    pub samples: u64,
}

/// The write-ahead log and the series table.
pub struct Wal {
    kv: Kv,
    log: KvTree,
    series: KvTree,
    next_seq: AtomicU64,
}

fn corrupt(tree: &'static str, key: &[u8]) -> KvError {
    KvError::CorruptRecord {
        tree,
        key: key.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

impl Wal {
    /// Opens the log and the series table of `kv`.
    pub fn open(kv: &Kv) -> Result<Wal, KvError> {
        let log = kv.tree(trees::WAL)?;
        let next_seq = match log.last_key()? {
            Some(key) => sequence_of(&key).ok_or_else(|| corrupt(trees::WAL, &key))? + 1,
            None => 0,
        };
        Ok(Wal {
            kv: kv.clone(),
            log,
            series: kv.tree(trees::SERIES)?,
            next_seq: AtomicU64::new(next_seq),
        })
    }

    /// Records a new series (durable with the next commit).
    pub fn log_series(&self, series: SeriesRef, labels: &Labels) -> Result<(), KvError> {
        let mut out = Vec::with_capacity(16 * labels.len());
        put_uvarint(&mut out, labels.len() as u64);
        for (name, value) in labels.pairs() {
            put_str(&mut out, name);
            put_str(&mut out, value);
        }
        self.series.put_raw(&series.to_be_bytes(), &out)
    }

    /// Forgets a series that has no samples left in the head.
    pub fn forget_series(&self, series: SeriesRef) -> Result<(), KvError> {
        self.series.remove(&series.to_be_bytes()).map(|_| ())
    }

    /// Every series in the table.
    pub fn load_series(&self) -> Result<Vec<(SeriesRef, Labels)>, KvError> {
        let mut out = Vec::with_capacity(self.series.len());
        for entry in self.series.iter_raw() {
            let (key, value) = entry?;
            let series = sequence_of(&key).ok_or_else(|| corrupt(trees::SERIES, &key))?;
            let labels = decode_labels(&value).map_err(|_| corrupt(trees::SERIES, &key))?;
            out.push((series, labels));
        }
        Ok(out)
    }

    /// Logs a batch (durable with the next commit); returns its sequence number.
    pub fn log_samples(&self, samples: &[WalSample]) -> Result<u64, KvError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.log
            .put_raw(&seq.to_be_bytes(), &encode_batch(samples))?;
        Ok(seq)
    }

    /// Makes everything logged so far durable.
    pub async fn commit(&self) -> Result<(), KvError> {
        self.kv.flush_async().await
    }

    /// Makes everything logged so far durable, blocking.
    pub fn commit_blocking(&self) -> Result<(), KvError> {
        self.kv.flush()
    }

    /// Feeds every logged sample to `apply`, in log order.
    pub fn replay(&self, mut apply: impl FnMut(WalSample)) -> Result<ReplayStats, KvError> {
        let mut stats = ReplayStats::default();
        for entry in self.log.iter_raw() {
            let (key, value) = entry?;
            let count = decode_batch(&value, &mut apply).map_err(|_| corrupt(trees::WAL, &key))?;
            stats.records += 1;
            stats.samples += count;
        }
        Ok(stats)
    }

    /// Rewrites the records logged before sequence `before` into one record
    /// holding only the samples `keep` accepts (those not yet in blocks),
    /// atomically; returns how many samples were dropped.
    pub fn checkpoint(
        &self,
        before: u64,
        keep: impl Fn(&WalSample) -> bool,
    ) -> Result<u64, KvError> {
        let mut kept = Vec::new();
        let mut dropped = 0u64;
        let mut old_keys = Vec::new();
        for entry in self.log.iter_raw() {
            let (key, value) = entry?;
            let seq = sequence_of(&key).ok_or_else(|| corrupt(trees::WAL, &key))?;
            if seq >= before {
                break;
            }
            decode_batch(&value, &mut |s| {
                if keep(&s) {
                    kept.push(s);
                } else {
                    dropped += 1;
                }
            })
            .map_err(|_| corrupt(trees::WAL, &key))?;
            old_keys.push(key);
        }
        let Some(last) = old_keys.pop() else {
            return Ok(0);
        };
        // The checkpoint takes the key of the last record it replaces, so log order is kept.
        let inserts = if kept.is_empty() {
            Vec::new()
        } else {
            vec![(last.clone(), encode_batch(&kept))]
        };
        if kept.is_empty() {
            old_keys.push(last);
        }
        self.log.replace_atomically(&old_keys, &inserts)?;
        Ok(dropped)
    }

    /// The next sequence number (records before it may be checkpointed).
    pub fn next_sequence(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed)
    }

    /// Number of records in the log.
    pub fn records(&self) -> usize {
        self.log.len()
    }
}

fn sequence_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

fn encode_batch(samples: &[WalSample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + samples.len() * 12);
    out.push(BATCH);
    let mut previous_t = 0i64;
    for s in samples {
        put_uvarint(&mut out, s.series);
        put_varint(&mut out, s.t.wrapping_sub(previous_t));
        out.extend_from_slice(&s.v.to_bits().to_le_bytes());
        previous_t = s.t;
    }
    out
}

fn decode_batch(bytes: &[u8], apply: &mut impl FnMut(WalSample)) -> Result<u64, Corrupt> {
    let mut reader = Reader::new(bytes);
    if reader.byte()? != BATCH {
        return Err(Corrupt);
    }
    let mut previous_t = 0i64;
    let mut count = 0;
    while !reader.is_empty() {
        let series = reader.uvarint()?;
        let t = previous_t.wrapping_add(reader.varint()?);
        let v = f64::from_bits(reader.u64_le()?);
        apply(WalSample { series, t, v });
        previous_t = t;
        count += 1;
    }
    Ok(count)
}

fn decode_labels(bytes: &[u8]) -> Result<Labels, Corrupt> {
    let mut reader = Reader::new(bytes);
    let count = reader.uvarint()?;
    let mut pairs = Vec::with_capacity(count.min(1024) as usize);
    for _ in 0..count {
        pairs.push((reader.str()?.to_string(), reader.str()?.to_string()));
    }
    if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err(Corrupt);
    }
    Ok(Labels::from_sorted(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: u64) -> Vec<WalSample> {
        (0..n)
            .map(|i| WalSample {
                series: i % 3,
                t: 1_700_000_000_000 + i as i64 * 15_000,
                v: i as f64 * 0.5,
            })
            .collect()
    }

    #[test]
    fn batches_and_series_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = Kv::open(dir.path()).unwrap();
            let wal = Wal::open(&kv).unwrap();
            wal.log_series(7, &Labels::new([("__name__", "up"), ("job", "a")]).unwrap())
                .unwrap();
            wal.log_samples(&samples(10)).unwrap();
            wal.log_samples(&[WalSample {
                series: 7,
                t: -5,
                v: f64::from_bits(0x7ff0_0000_0000_0002),
            }])
            .unwrap();
            wal.commit_blocking().unwrap();
        }
        let kv = Kv::open(dir.path()).unwrap();
        let wal = Wal::open(&kv).unwrap();
        assert_eq!(wal.next_sequence(), 2);
        let series = wal.load_series().unwrap();
        assert_eq!(series[0].0, 7);
        assert_eq!(series[0].1.to_string(), r#"up{job="a"}"#);
        let mut read = Vec::new();
        let stats = wal.replay(|s| read.push(s)).unwrap();
        assert_eq!(
            stats,
            ReplayStats {
                records: 2,
                samples: 11
            }
        );
        assert_eq!(&read[..10], &samples(10)[..]);
        assert_eq!(read[10].v.to_bits(), 0x7ff0_0000_0000_0002);
    }

    #[test]
    fn checkpoint_keeps_only_what_is_asked_and_later_records() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::open(dir.path()).unwrap();
        let wal = Wal::open(&kv).unwrap();
        for _ in 0..3 {
            wal.log_samples(&samples(10)).unwrap();
        }
        let boundary = 1_700_000_000_000 + 5 * 15_000;
        let dropped = wal.checkpoint(2, |s| s.t >= boundary).unwrap();
        assert_eq!(dropped, 10);
        assert_eq!(wal.records(), 2);
        let mut read = Vec::new();
        wal.replay(|s| read.push(s)).unwrap();
        assert_eq!(read.len(), 20);
        assert!(read[..10].iter().all(|s| s.t >= boundary));
        assert_eq!(wal.checkpoint(3, |_| false).unwrap(), 20);
        assert_eq!(wal.records(), 0);
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_panic() {
        assert!(decode_batch(&[1, 0x80], &mut |_| {}).is_err());
        assert!(decode_batch(&[9], &mut |_| {}).is_err());
        assert!(
            decode_labels(&[2, 1, b'b', 1, b'x', 1, b'a', 1, b'y']).is_err(),
            "unsorted names"
        );
    }
}
