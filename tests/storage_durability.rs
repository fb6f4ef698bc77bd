//! Durability for real: a child process appends batches and prints every
//! sample the store acknowledged; the test kills it with SIGKILL at random
//! moments, reopens the store and checks every acknowledged sample, many
//! times over one growing store. In every other round the child also stops
//! the store (`Storage::close`, the head's checkpoint in place of the log)
//! at a random moment while its appends go on, so kills land before, during
//! and after that (in half of those rounds, always after it).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fleetmon::storage::{Kv, MatchOp, Matcher, SeriesSamples, Storage, StorageOptions};
use rand::Rng;

const CHILD_ENV: &str = "FLEETMON_DURABILITY_CHILD_STORE";
/// Set for a child that also closes the store while appending.
const CLOSE_ENV: &str = "FLEETMON_DURABILITY_CHILD_CLOSES";
const THREADS: usize = 2;
const SERIES_PER_THREAD: usize = 20;
const ROUNDS: usize = 25;
const T0: i64 = 1_700_000_000_000;

fn value(series: usize, t: i64) -> f64 {
    (t - T0) as f64 / 1000.0 + series as f64 * 0.25
}

fn labels(series: usize) -> Vec<(String, String)> {
    vec![
        ("__name__".into(), "durability_test".into()),
        ("series".into(), series.to_string()),
    ]
}

fn open(dir: &str) -> Storage {
    let kv = Kv::open(std::path::Path::new(dir)).expect("open kv");
    Storage::open(&kv, std::path::Path::new(dir), StorageOptions::default())
        .expect("open storage")
        .0
}

/// Every stored sample per series.
fn stored(storage: &Storage) -> HashMap<usize, Vec<(i64, f64)>> {
    let all = storage
        .select(
            &[Matcher::new(MatchOp::Equal, "__name__", "durability_test").unwrap()],
            i64::MIN,
            i64::MAX,
        )
        .unwrap();
    all.iter()
        .map(|s| {
            (
                s.labels.get("series").unwrap().parse().unwrap(),
                s.samples().unwrap(),
            )
        })
        .collect()
}

/// The child: append forever from where the store left off, printing acknowledgements.
fn child(dir: &str) {
    let storage = std::sync::Arc::new(open(dir));
    let next: Vec<i64> = {
        let stored = stored(&storage);
        (0..THREADS * SERIES_PER_THREAD)
            .map(|s| {
                stored
                    .get(&s)
                    .and_then(|v| v.last())
                    .map_or(T0, |(t, _)| t + 1000)
            })
            .collect()
    };
    if std::env::var_os(CLOSE_ENV).is_some() {
        let storage = storage.clone();
        std::thread::spawn(move || {
            let pause = rand::thread_rng().gen_range(0..200);
            std::thread::sleep(Duration::from_millis(pause));
            storage.close(None).expect("close");
            println!("closed");
        });
    }
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let storage = storage.clone();
            let mut next = next.clone();
            std::thread::spawn(move || loop {
                let mine = thread * SERIES_PER_THREAD..(thread + 1) * SERIES_PER_THREAD;
                let batch: Vec<SeriesSamples> = mine
                    .clone()
                    .map(|s| SeriesSamples {
                        labels: labels(s),
                        samples: (0..5)
                            .map(|k| (next[s] + k * 1000, value(s, next[s] + k * 1000)))
                            .collect(),
                    })
                    .collect();
                let report = storage.append_blocking(&batch).expect("append");
                assert_eq!(report.stored, (SERIES_PER_THREAD * 5) as u64, "{report:?}");
                let mut out = String::new();
                for s in mine {
                    for k in 0..5 {
                        out.push_str(&format!("ack {s} {}\n", next[s] + k * 1000));
                    }
                    next[s] += 5000;
                }
                // One write per batch: a line on stdout is a sample the store acknowledged.
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(out.as_bytes()).expect("stdout");
                stdout.flush().expect("flush");
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn acknowledged_samples_survive_kill_9() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap().to_string();
    let mut acknowledged: HashMap<usize, Vec<i64>> = HashMap::new();
    let mut rng = rand::thread_rng();
    let mut total = 0usize;
    let mut closed_rounds = 0;
    for round in 0..ROUNDS {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "acknowledged_samples_survive_kill_9",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir_arg)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env_remove(CLOSE_ENV);
        if round % 2 == 1 {
            command.env(CLOSE_ENV, "1");
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_ack, acked) = std::sync::mpsc::channel();
        let (close_done, closed) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ack ") {
                    let _ = first_ack.send(());
                }
                if line == "closed" {
                    let _ = close_done.send(());
                }
                lines.push(line);
            }
            lines
        });
        if round % 4 == 1 {
            // Half the closing rounds kill only after the close, so that a
            // close followed by more appends is always tested; the others
            // kill at a random moment, during the close or not.
            closed
                .recv_timeout(Duration::from_secs(30))
                .expect("the child never closed the store");
        } else if rng.gen_bool(0.8) {
            // Kill at a random moment: one round in five during start-up and
            // WAL replay, the others while batches are being appended.
            acked
                .recv_timeout(Duration::from_secs(30))
                .expect("the child never acknowledged anything");
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        if lines.iter().any(|l| l == "closed") {
            closed_rounds += 1;
        }
        let mut this_round = 0;
        for line in lines.iter().filter_map(|l| l.strip_prefix("ack ")) {
            let mut parts = line.split(' ');
            let (Some(s), Some(t)) = (parts.next(), parts.next()) else {
                continue;
            };
            acknowledged
                .entry(s.parse().unwrap())
                .or_default()
                .push(t.parse().unwrap());
            this_round += 1;
        }
        total += this_round;

        let start = Instant::now();
        let storage = open(&dir_arg);
        let reopen = start.elapsed();
        let stored = stored(&storage);
        for (series, times) in &acknowledged {
            let kept: HashMap<i64, f64> = stored
                .get(series)
                .map(|v| v.iter().copied().collect())
                .unwrap_or_default();
            for t in times {
                assert_eq!(
                    kept.get(t).map(|v| v.to_bits()),
                    Some(value(*series, *t).to_bits()),
                    "round {round}: acknowledged sample series={series} t={t} is missing or wrong"
                );
            }
        }
        eprintln!("round {round}: {this_round} acknowledged, {total} in all, all present; reopened in {reopen:?}");
    }
    assert!(
        closed_rounds > 0,
        "no child got to close the store: the checkpoint was never tested"
    );
    eprintln!("the store was closed while appending in {closed_rounds} rounds");
    assert!(
        total > 1000,
        "the child acknowledged too little ({total}) for the test to mean anything"
    );
}
