//! Round trips against an in-memory model, corruption of every kind of byte,
//! atomicity leftovers, ids, the frame cache, and (ignored by default) the
//! size/speed measurement on 100k Gorilla-encoded series.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::format::FILE_HEADER_LEN;
use super::*;
use crate::storage::codec::Encoding;

/// An owned series, from which `SeriesInput`s borrow their chunk bytes.
#[derive(Debug, Clone)]
struct OwnedSeries {
    labels: Vec<(String, String)>,
    chunks: Vec<(i64, i64, u16, Vec<u8>)>,
}

impl OwnedSeries {
    fn input(&self) -> SeriesInput<'_> {
        SeriesInput {
            labels: self.labels.clone(),
            chunks: self
                .chunks
                .iter()
                .map(|(min_t, max_t, n, b)| ChunkInput {
                    min_t: *min_t,
                    max_t: *max_t,
                    num_samples: *n,
                    bytes: std::borrow::Cow::Borrowed(b),
                })
                .collect(),
        }
    }
}

fn inputs(series: &[OwnedSeries]) -> impl Iterator<Item = SeriesInput<'_>> {
    series.iter().map(OwnedSeries::input)
}

const MIN_T: i64 = 1_700_000_000_000;
const MAX_T: i64 = MIN_T + 2 * 3600 * 1000;

/// Random series: label names from a small pool (some odd strings), values
/// random (including empty and non-ASCII), 1–4 chunks of 0–700 random
/// bytes, and a few chunks far larger than a frame.
fn random_series(rng: &mut StdRng, n: usize) -> Vec<OwnedSeries> {
    let names = [
        "__name__", "instance", "job", "vin", "région", "a", "zz_last", "",
    ];
    let mut by_labels = BTreeMap::new();
    while by_labels.len() < n {
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        labels.insert(
            "__name__".into(),
            format!("metric_{}", rng.gen_range(0..20)),
        );
        for _ in 0..rng.gen_range(0..4) {
            let name = names[rng.gen_range(0..names.len())];
            let value = match rng.gen_range(0..6) {
                0 => String::new(),
                1 => "ünïcødé-☃".into(),
                _ => format!("v{}", rng.gen_range(0..50)),
            };
            labels.insert(name.into(), value);
        }
        let labels: Vec<(String, String)> = labels.into_iter().collect();
        let mut t = rng.gen_range(MIN_T..MIN_T + 1000);
        let mut chunks = Vec::new();
        for _ in 0..rng.gen_range(1..=4) {
            let len = match rng.gen_range(0..200) {
                0 => 0,
                1 => rng.gen_range(70_000..200_000),
                _ => rng.gen_range(1..700),
            };
            let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let min_t = t;
            let max_t = min_t + rng.gen_range(0..1_000_000);
            t = max_t + rng.gen_range(0..100_000);
            chunks.push((min_t, max_t.min(MAX_T), rng.gen(), bytes));
        }
        by_labels.insert(labels.clone(), OwnedSeries { labels, chunks });
    }
    by_labels.into_values().collect()
}

fn write(dir: &Path, series: &[OwnedSeries]) -> BlockMeta {
    write_block(
        dir,
        inputs(series),
        MIN_T,
        MAX_T,
        Compaction::default(),
        Encoding::Xor,
    )
    .unwrap()
    .unwrap()
}

fn corrupt_path(err: &BlockError) -> Option<&Path> {
    match err {
        BlockError::Corrupt { path, .. } => Some(path),
        _ => None,
    }
}

fn assert_corrupt_names(err: &BlockError, file: &str) {
    let path = corrupt_path(err).unwrap_or_else(|| panic!("expected Corrupt, got {err:?}"));
    assert!(
        path.ends_with(file),
        "expected Corrupt naming {file}, got {err}"
    );
    assert!(
        err.to_string().contains(file),
        "message must name {file}: {err}"
    );
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn block_dir(parent: &Path, meta: &BlockMeta) -> PathBuf {
    parent.join(&meta.id)
}

#[test]
fn round_trip_random_series_matches_model() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let series = random_series(&mut rng, 3000);
    let compaction = Compaction {
        level: 2,
        sources: vec![new_block_id(1), new_block_id(2)],
        hints: Vec::new(),
    };
    let meta = write_block(
        tmp.path(),
        inputs(&series),
        MIN_T,
        MAX_T,
        compaction.clone(),
        Encoding::Xor,
    )
    .unwrap()
    .unwrap();
    assert_eq!(entries(tmp.path()), vec![meta.id.clone()]);

    let block = Block::open(&block_dir(tmp.path(), &meta), DEFAULT_CACHE_BYTES).unwrap();
    assert_eq!(block.meta(), &meta);
    let on_disk: BlockMeta =
        serde_json::from_slice(&std::fs::read(block.dir().join(META_FILE)).unwrap()).unwrap();
    assert_eq!(on_disk, meta);
    assert_eq!(meta.version, 1);
    assert_eq!((meta.min_time, meta.max_time), (MIN_T, MAX_T));
    assert_eq!(meta.compaction, compaction);
    let num_chunks: usize = series.iter().map(|s| s.chunks.len()).sum();
    let num_samples: u64 = series
        .iter()
        .flat_map(|s| &s.chunks)
        .map(|c| u64::from(c.2))
        .sum();
    assert_eq!(
        meta.stats,
        BlockStats {
            num_series: series.len() as u64,
            num_chunks: num_chunks as u64,
            num_samples
        }
    );
    assert_eq!(block.num_series() as usize, series.len());
    assert_eq!(block.all_series(), 0..series.len() as u32);

    for (i, s) in series.iter().enumerate() {
        let i = i as u32;
        assert_eq!(block.series_labels(i).unwrap(), s.labels);
        let metas = block.series_chunks(i).unwrap();
        assert_eq!(metas.len(), s.chunks.len());
        for (m, (min_t, max_t, n, bytes)) in metas.iter().zip(&s.chunks) {
            assert_eq!((m.min_t, m.max_t, m.num_samples), (*min_t, *max_t, *n));
            assert_eq!(&*block.chunk(m).unwrap(), bytes.as_slice());
        }
    }
    assert!(matches!(
        block.series_labels(series.len() as u32),
        Err(BlockError::SeriesOutOfRange { .. })
    ));

    // Postings, names and values against a model built from the input.
    let mut model: BTreeMap<&str, BTreeMap<&str, Vec<u32>>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        for (n, v) in &s.labels {
            model
                .entry(n)
                .or_default()
                .entry(v)
                .or_default()
                .push(i as u32);
        }
    }
    assert_eq!(
        block.label_names(),
        model.keys().copied().collect::<Vec<_>>()
    );
    for (name, values) in &model {
        assert_eq!(
            block.label_values(name),
            values.keys().copied().collect::<Vec<_>>()
        );
        for (value, list) in values {
            assert_eq!(
                &block.postings(name, value).unwrap(),
                list,
                "{name}={value}"
            );
        }
        assert!(block.postings(name, "no such value").unwrap().is_empty());
    }
    assert!(block.label_values("nope").is_empty());
    assert!(block.postings("nope", "v1").unwrap().is_empty());
    // A value that exists, under a name that never has it.
    assert!(block.postings("job", "metric_1").unwrap().is_empty());

    block.verify_all().unwrap();
    let on_disk: u64 = [META_FILE, INDEX_FILE, CHUNKS_FILE]
        .iter()
        .map(|f| std::fs::metadata(block.dir().join(f)).unwrap().len())
        .sum();
    assert_eq!(block.size_bytes(), on_disk);
}

#[test]
fn frames_are_shared_cached_and_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    // 400 series × 1 chunk of 500 bytes = 200 KB: four frames of ~64 KiB.
    let series: Vec<OwnedSeries> = (0..400)
        .map(|i| OwnedSeries {
            labels: vec![("s".into(), format!("{i:04}"))],
            chunks: vec![(MIN_T, MIN_T + 10, 120, vec![(i % 251) as u8; 500])],
        })
        .collect();
    let meta = write(tmp.path(), &series);
    let dir = block_dir(tmp.path(), &meta);

    let block = Block::open(&dir, DEFAULT_CACHE_BYTES).unwrap();
    let all: Vec<ChunkMeta> = block
        .all_series()
        .flat_map(|i| block.series_chunks(i).unwrap())
        .collect();
    let frames: std::collections::BTreeSet<u64> = all.iter().map(|m| m.chunk_ref.frame).collect();
    assert_eq!(frames.len(), 4, "200 KB of chunks make four 64 KiB frames");
    for m in &all {
        block.chunk(m).unwrap();
    }
    assert_eq!(block.decompressions(), 4, "each frame decompressed once");
    for m in &all {
        block.chunk(m).unwrap();
    }
    assert_eq!(block.decompressions(), 4, "second pass served from cache");

    // Room for one frame: alternating between two frames misses every time,
    // and the cache never holds more than its bound.
    let block = Block::open(&dir, 70_000).unwrap();
    let (a, b) = (all[0], all[200]); // two full ~64 KiB frames
    for _ in 0..3 {
        block.chunk(&a).unwrap();
        block.chunk(&b).unwrap();
        assert!(block.cached_bytes() <= 70_000);
    }
    assert_eq!(block.decompressions(), 6);

    // No cache: still correct.
    let block = Block::open(&dir, 0).unwrap();
    assert_eq!(&*block.chunk(&a).unwrap(), &[0u8; 500][..]);
    assert_eq!(block.cached_bytes(), 0);
}

#[test]
fn block_is_send_sync_and_readable_from_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Block>();
    assert_send_sync::<ChunkBytes>();

    let tmp = tempfile::tempdir().unwrap();
    let series = random_series(&mut StdRng::seed_from_u64(3), 500);
    let meta = write(tmp.path(), &series);
    let block = std::sync::Arc::new(Block::open(&block_dir(tmp.path(), &meta), 100_000).unwrap());
    std::thread::scope(|s| {
        for t in 0..4 {
            let block = &block;
            let series = &series;
            s.spawn(move || {
                for (i, ser) in series.iter().enumerate().skip(t).step_by(2) {
                    for (m, c) in block
                        .series_chunks(i as u32)
                        .unwrap()
                        .iter()
                        .zip(&ser.chunks)
                    {
                        assert_eq!(&*block.chunk(m).unwrap(), c.3.as_slice());
                    }
                }
            });
        }
    });
}

#[test]
fn invalid_input_is_rejected_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = |labels: &[(&str, &str)], chunks: Vec<(i64, i64)>| OwnedSeries {
        labels: labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        chunks: chunks
            .into_iter()
            .map(|(a, b)| (a, b, 1, vec![1, 2, 3]))
            .collect(),
    };
    let ok = vec![(MIN_T, MIN_T + 5)];
    let cases: Vec<(&str, Vec<OwnedSeries>)> = vec![
        (
            "unsorted series",
            vec![s(&[("a", "2")], ok.clone()), s(&[("a", "1")], ok.clone())],
        ),
        (
            "duplicate series",
            vec![s(&[("a", "1")], ok.clone()), s(&[("a", "1")], ok.clone())],
        ),
        (
            "shorter label set sorts first",
            vec![
                s(&[("a", "1"), ("b", "1")], ok.clone()),
                s(&[("a", "1")], ok.clone()),
            ],
        ),
        (
            "unsorted label names",
            vec![s(&[("b", "1"), ("a", "1")], ok.clone())],
        ),
        (
            "duplicate label names",
            vec![s(&[("a", "1"), ("a", "2")], ok.clone())],
        ),
        (
            "chunk min after max",
            vec![s(&[("a", "1")], vec![(MIN_T + 5, MIN_T)])],
        ),
        (
            "chunk outside block",
            vec![s(&[("a", "1")], vec![(MIN_T - 1, MIN_T)])],
        ),
        (
            "chunks out of order",
            vec![s(
                &[("a", "1")],
                vec![(MIN_T + 10, MIN_T + 20), (MIN_T, MIN_T + 5)],
            )],
        ),
    ];
    for (what, series) in cases {
        let err = write_block(
            tmp.path(),
            inputs(&series),
            MIN_T,
            MAX_T,
            Compaction::default(),
            Encoding::Xor,
        )
        .unwrap_err();
        assert!(
            matches!(err, BlockError::InvalidInput(_)),
            "{what}: got {err:?}"
        );
        assert!(
            entries(tmp.path()).is_empty(),
            "{what}: left {:?}",
            entries(tmp.path())
        );
    }
    let huge = OwnedSeries {
        labels: vec![("a".into(), "1".into())],
        chunks: vec![(MIN_T, MIN_T, 1, vec![0; (1 << 20) + 1])],
    };
    assert!(matches!(
        write_block(
            tmp.path(),
            inputs(&[huge]),
            MIN_T,
            MAX_T,
            Compaction::default(),
            Encoding::Xor,
        ),
        Err(BlockError::InvalidInput(_))
    ));
    assert!(matches!(
        write_block(
            tmp.path(),
            inputs(&[]),
            MAX_T,
            MIN_T,
            Compaction::default(),
            Encoding::Xor
        ),
        Err(BlockError::InvalidInput(_))
    ));
    assert!(entries(tmp.path()).is_empty());
}

#[test]
fn empty_input_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let none = write_block(
        tmp.path(),
        inputs(&[]),
        MIN_T,
        MAX_T,
        Compaction::default(),
        Encoding::Xor,
    )
    .unwrap();
    assert_eq!(none, None);
    let chunkless = vec![OwnedSeries {
        labels: vec![("a".into(), "1".into())],
        chunks: vec![],
    }];
    let none = write_block(
        tmp.path(),
        inputs(&chunkless),
        MIN_T,
        MAX_T,
        Compaction::default(),
        Encoding::Xor,
    )
    .unwrap();
    assert_eq!(none, None);
    assert!(entries(tmp.path()).is_empty());
}

#[test]
fn chunkless_series_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let series = vec![
        OwnedSeries {
            labels: vec![("a".into(), "1".into())],
            chunks: vec![(MIN_T, MIN_T, 1, vec![9])],
        },
        OwnedSeries {
            labels: vec![("a".into(), "2".into())],
            chunks: vec![],
        },
        OwnedSeries {
            labels: vec![("a".into(), "3".into())],
            chunks: vec![(MIN_T, MIN_T, 1, vec![8])],
        },
    ];
    let meta = write(tmp.path(), &series);
    let block = Block::open(&block_dir(tmp.path(), &meta), 0).unwrap();
    assert_eq!(block.num_series(), 2);
    assert_eq!(block.label_values("a"), vec!["1", "3"]);
}

/// A small block whose index can be corrupted at every byte.
fn small_block(parent: &Path) -> (PathBuf, Vec<OwnedSeries>) {
    let series = random_series(&mut StdRng::seed_from_u64(11), 40);
    let meta = write(parent, &series);
    (block_dir(parent, &meta), series)
}

#[test]
fn any_flipped_index_byte_fails_open_naming_index() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = small_block(tmp.path());
    let path = dir.join(INDEX_FILE);
    let original = std::fs::read(&path).unwrap();
    assert!(original.len() > 500);
    for pos in 0..original.len() {
        for mask in [0x01u8, 0xff] {
            let mut bytes = original.clone();
            bytes[pos] ^= mask;
            std::fs::write(&path, &bytes).unwrap();
            match Block::open(&dir, DEFAULT_CACHE_BYTES) {
                Ok(_) => panic!("flip {mask:#x} at byte {pos} of index went unnoticed"),
                Err(e) => assert_corrupt_names(&e, INDEX_FILE),
            }
        }
    }
    std::fs::write(&path, &original).unwrap();
    Block::open(&dir, DEFAULT_CACHE_BYTES)
        .unwrap()
        .verify_all()
        .unwrap();
}

#[test]
fn flipped_chunks_byte_fails_that_frame_only() {
    let tmp = tempfile::tempdir().unwrap();
    let series = random_series(&mut StdRng::seed_from_u64(5), 1500);
    let meta = write(tmp.path(), &series);
    let dir = block_dir(tmp.path(), &meta);
    let path = dir.join(CHUNKS_FILE);
    let original = std::fs::read(&path).unwrap();

    // Each chunk with its expected bytes, grouped by frame.
    let block = Block::open(&dir, 0).unwrap();
    let mut by_frame: BTreeMap<u64, Vec<(ChunkMeta, Vec<u8>)>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        for (m, c) in block
            .series_chunks(i as u32)
            .unwrap()
            .into_iter()
            .zip(&s.chunks)
        {
            by_frame
                .entry(m.chunk_ref.frame)
                .or_default()
                .push((m, c.3.clone()));
        }
    }
    drop(block);
    let frame_starts: Vec<u64> = by_frame.keys().copied().collect();
    assert!(frame_starts.len() >= 8, "need several frames");

    let mut rng = StdRng::seed_from_u64(99);
    // Every header byte of the first three frames, and random positions.
    let mut positions: Vec<usize> = frame_starts[..3]
        .iter()
        .flat_map(|&f| f as usize..f as usize + 12)
        .collect();
    positions.extend((0..60).map(|_| rng.gen_range(FILE_HEADER_LEN..original.len())));
    positions.push(original.len() - 1);
    for pos in positions {
        let mut bytes = original.clone();
        bytes[pos] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let block = Block::open(&dir, DEFAULT_CACHE_BYTES).unwrap();
        let err = block.verify_all().unwrap_err();
        assert_corrupt_names(&err, CHUNKS_FILE);

        let hit = frame_starts.partition_point(|&f| f as usize <= pos) - 1;
        for (k, chunks) in by_frame.values().enumerate() {
            for (m, expected) in chunks {
                match block.chunk(m) {
                    Ok(b) => {
                        assert_ne!(k, hit, "flip at {pos} in frame {k} not detected");
                        assert_eq!(&*b, expected.as_slice());
                    }
                    Err(e) => {
                        assert_eq!(k, hit, "frame {k} failed for a flip at {pos} in {hit}");
                        assert_corrupt_names(&e, CHUNKS_FILE);
                    }
                }
            }
        }
    }
    // The chunks file header is checked at open.
    for pos in 0..FILE_HEADER_LEN {
        let mut bytes = original.clone();
        bytes[pos] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        assert_corrupt_names(&Block::open(&dir, 0).err().unwrap(), CHUNKS_FILE);
    }
}

#[test]
fn truncated_or_garbled_files_are_corrupt_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = small_block(tmp.path());
    for file in [INDEX_FILE, CHUNKS_FILE, META_FILE] {
        let path = dir.join(file);
        let original = std::fs::read(&path).unwrap();
        let n = original.len();
        let mut lens = vec![0, 1, 7, 8, 9, 20, n / 3, n / 2, n - 13, n - 1];
        lens.retain(|&l| l < n);
        for len in lens {
            std::fs::write(&path, &original[..len]).unwrap();
            let err = Block::open(&dir, 0)
                .err()
                .unwrap_or_else(|| panic!("{file} truncated to {len} of {n} bytes opened fine"));
            assert_corrupt_names(&err, file);
        }
        // Appended garbage is caught as well.
        let mut longer = original.clone();
        longer.extend_from_slice(&[0u8; 16]);
        std::fs::write(&path, &longer).unwrap();
        assert_corrupt_names(&Block::open(&dir, 0).err().unwrap(), file);
        std::fs::write(&path, &original).unwrap();
    }
    Block::open(&dir, 0).unwrap().verify_all().unwrap();

    // meta.json that parses but lies.
    let meta_path = dir.join(META_FILE);
    let original = std::fs::read(&meta_path).unwrap();
    let meta: BlockMeta = serde_json::from_slice(&original).unwrap();
    let lies = [
        BlockMeta {
            version: 2,
            ..meta.clone()
        },
        BlockMeta {
            id: new_block_id(5),
            ..meta.clone()
        },
        BlockMeta {
            stats: BlockStats {
                num_series: meta.stats.num_series + 1,
                ..meta.stats.clone()
            },
            ..meta.clone()
        },
        BlockMeta {
            min_time: meta.max_time + 1,
            ..meta.clone()
        },
    ];
    for lie in lies {
        std::fs::write(&meta_path, serde_json::to_vec(&lie).unwrap()).unwrap();
        assert_corrupt_names(&Block::open(&dir, 0).err().unwrap(), META_FILE);
    }
    let wrong_chunks = BlockMeta {
        stats: BlockStats {
            num_chunks: meta.stats.num_chunks + 1,
            ..meta.stats.clone()
        },
        ..meta.clone()
    };
    std::fs::write(&meta_path, serde_json::to_vec(&wrong_chunks).unwrap()).unwrap();
    let block = Block::open(&dir, 0).unwrap();
    assert_corrupt_names(&block.verify_all().unwrap_err(), META_FILE);
    std::fs::remove_file(dir.join(INDEX_FILE)).unwrap();
    assert!(matches!(Block::open(&dir, 0), Err(BlockError::Io { .. })));
}

#[test]
fn random_garbage_never_panics() {
    // Fuzz-ish: random garbage between a valid header and a valid TOC, and
    // random bytes in place of each section, must only ever yield errors.
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = small_block(tmp.path());
    let path = dir.join(INDEX_FILE);
    let original = std::fs::read(&path).unwrap();
    let mut rng = StdRng::seed_from_u64(1234);
    for _ in 0..300 {
        let mut bytes = original.clone();
        let flips = rng.gen_range(1..20);
        for _ in 0..flips {
            let p = rng.gen_range(0..bytes.len());
            bytes[p] = rng.gen();
        }
        std::fs::write(&path, &bytes).unwrap();
        assert!(Block::open(&dir, 0).is_err());
    }
}

#[test]
fn leftover_tmp_dir_is_not_a_block_and_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, series) = small_block(tmp.path());

    // A write interrupted before its rename: complete files, .tmp name.
    let leftover = tmp
        .path()
        .join(format!("{}{TMP_SUFFIX}", new_block_id(now_ms())));
    std::fs::create_dir(&leftover).unwrap();
    for f in [META_FILE, INDEX_FILE, CHUNKS_FILE] {
        std::fs::copy(dir.join(f), leftover.join(f)).unwrap();
    }
    // One interrupted earlier still: nothing but a partial chunks file.
    let partial = tmp.path().join(format!("{}{TMP_SUFFIX}", new_block_id(1)));
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join(CHUNKS_FILE), b"FMBC").unwrap();
    // Things that are not ours.
    std::fs::create_dir(tmp.path().join("wal")).unwrap();
    std::fs::create_dir(tmp.path().join("notes.tmp")).unwrap();
    std::fs::write(
        tmp.path().join(format!("{}{TMP_SUFFIX}", new_block_id(2))),
        b"a file",
    )
    .unwrap();

    assert_corrupt_names(&Block::open(&leftover, 0).err().unwrap(), META_FILE);
    assert!(Block::open(&partial, 0).is_err());

    assert_eq!(remove_incomplete(tmp.path()).unwrap(), 2);
    assert!(!leftover.exists() && !partial.exists());
    assert!(tmp.path().join("wal").exists() && tmp.path().join("notes.tmp").exists());
    assert_eq!(remove_incomplete(tmp.path()).unwrap(), 0);

    let block = Block::open(&dir, 0).unwrap();
    assert_eq!(block.num_series() as usize, series.len());
}

#[test]
fn block_ids_sort_by_time_and_are_unique() {
    let times = [
        0i64,
        1,
        999,
        1_000,
        1_700_000_000_000,
        1_700_000_000_001,
        (1 << 48) - 1,
    ];
    let ids: Vec<String> = times.iter().map(|&t| new_block_id(t)).collect();
    for id in &ids {
        assert_eq!(id.len(), 26);
        assert!(is_block_id(id), "{id}");
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // The time part is exactly the first 10 characters.
    assert_eq!(&ids[0][..10], "0000000000");
    assert_eq!(&ids[6][..10], "7ZZZZZZZZZ");
    // Out-of-range times clamp instead of wrapping.
    assert!(new_block_id(-5).starts_with("0000000000"));
    assert!(new_block_id(i64::MAX).starts_with("7ZZZZZZZZZ"));

    let mut rng = StdRng::seed_from_u64(1);
    let mut prev_t = 0i64;
    let mut prev_id = String::new();
    for _ in 0..1000 {
        let t = prev_t + rng.gen_range(1..1_000_000);
        let id = new_block_id(t);
        assert!(id > prev_id);
        (prev_t, prev_id) = (t, id);
    }
    let same_ms: std::collections::HashSet<String> = (0..1000).map(|_| new_block_id(42)).collect();
    assert_eq!(same_ms.len(), 1000);

    assert!(!is_block_id("wal"));
    assert!(!is_block_id(&"I".repeat(26)));
    assert!(!is_block_id(&"8".repeat(26)));
    assert!(!is_block_id(&ids[0].to_lowercase().replace('0', "o")));
}

#[test]
fn written_block_bytes_match_the_documented_layout() {
    // Guards the `//!` format description: decode a tiny block by hand.
    let tmp = tempfile::tempdir().unwrap();
    let series = vec![OwnedSeries {
        labels: vec![("a".into(), "b".into())],
        chunks: vec![(MIN_T + 3, MIN_T + 10, 7, vec![0xAB; 5])],
    }];
    let meta = write(tmp.path(), &series);
    let dir = block_dir(tmp.path(), &meta);
    let index = std::fs::read(dir.join(INDEX_FILE)).unwrap();
    let chunks = std::fs::read(dir.join(CHUNKS_FILE)).unwrap();

    assert_eq!(&chunks[..8], b"FMBC\x01\x00\x00\x00");
    let clen = u32::from_le_bytes(chunks[8..12].try_into().unwrap()) as usize;
    assert_eq!(u32::from_le_bytes(chunks[12..16].try_into().unwrap()), 5);
    let mut h = crc32fast::Hasher::new();
    h.update(&chunks[8..16]);
    h.update(&chunks[20..]);
    assert_eq!(chunks[16..20], h.finalize().to_le_bytes());
    assert_eq!(chunks.len(), 20 + clen);
    assert_eq!(zstd::decode_all(&chunks[20..]).unwrap(), vec![0xAB; 5]);

    assert_eq!(&index[..8], b"FMBI\x01\x00\x00\x00");
    let toc = &index[index.len() - 112..];
    let sec = |i: usize| {
        let b = &toc[i * 20..];
        let off = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(b[8..16].try_into().unwrap()) as usize;
        &index[off..off + len]
    };
    assert_eq!(
        u64::from_le_bytes(toc[100..108].try_into().unwrap()),
        chunks.len() as u64
    );
    // symbols: count 2, "a", "b".
    assert_eq!(sec(0), b"\x02\x00\x00\x00\x01a\x01b");
    // series: base time, 1 label (0,1), 1 chunk: +3, 7, 7 samples, frame 8,
    // offset 0, len 5.
    let mut expected = MIN_T.to_le_bytes().to_vec();
    expected.extend_from_slice(&[1, 0, 1, 1, 6, 7, 7, 8, 0, 5]);
    assert_eq!(sec(1), expected.as_slice());
    assert_eq!(sec(2), 8u32.to_le_bytes());
    // label index: 1 name (sym 0) with 1 value (sym 1) at postings offset 0.
    assert_eq!(sec(3), &[1, 0, 1, 1, 0]);
    // postings: count 1, series 0.
    assert_eq!(sec(4), &[1, 0]);
}

#[test]
fn zero_length_chunks_round_trip() {
    // A frame can end up holding nothing but empty chunks (0 uncompressed
    // bytes); zstd must round-trip it and the reader must accept it.
    let tmp = tempfile::tempdir().unwrap();
    let series: Vec<OwnedSeries> = (0..3)
        .map(|i| OwnedSeries {
            labels: vec![("a".into(), i.to_string())],
            chunks: vec![(MIN_T, MIN_T, 0, vec![])],
        })
        .collect();
    let meta = write(tmp.path(), &series);
    let block = Block::open(&block_dir(tmp.path(), &meta), DEFAULT_CACHE_BYTES).unwrap();
    for i in block.all_series() {
        for m in block.series_chunks(i).unwrap() {
            assert!(block.chunk(&m).unwrap().is_empty());
        }
    }
    block.verify_all().unwrap();
}
