//! PromQL conformance: runs Prometheus's own PromQL test scripts
//! (`../shared/conformance/promqltest/*.test`, Prometheus v3.14.0) against
//! fleetmon's engine and prints one row per file — evals passed, failed and
//! unsupported — with the first failures and the main unsupported reasons.
//! The table is also written to `$CARGO_TARGET_TMPDIR/promqltest-report.txt`
//! (run with `-- --nocapture` to see it on a passing run).
//!
//! The test fails when
//! - an in-scope file (the conformance README's "in scope" group) has more
//!   failing evals than `tests/promqltest/baseline.txt` records as known
//!   failures for it (none, for most files: each known failure is a gap
//!   the engine still has, named in that file);
//! - an in-scope file passes fewer evals than the baseline records, or is
//!   missing.
//!
//! Files of the later groups (experimental features, native histograms) are
//! run and reported but never fail the test. Without the conformance data
//! the test prints SKIP, and fails under `CI=true`.

#[path = "promqltest/mod.rs"]
mod harness;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use harness::runner::{run_script, EvalRecord, Outcome};

/// The conformance scripts.
const CONFORMANCE_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/promqltest"
);

/// Passed-eval counts below which an in-scope file regresses.
const BASELINE: &str = include_str!("promqltest/baseline.txt");

/// The files whose evals must all pass (the README's "in scope" group).
const IN_SCOPE: [&str; 14] = [
    "aggregators",
    "at_modifier",
    "collision",
    "functions",
    "histograms",
    "limit",
    "literals",
    "name_label_dropping",
    "operators",
    "range_queries",
    "selectors",
    "staleness",
    "subquery",
    "trig_functions",
];

/// Failures shown per file.
const FAILURES_SHOWN: usize = 5;

/// Unsupported reasons shown per file.
const REASONS_SHOWN: usize = 3;

/// One file's verdicts.
struct FileReport {
    name: String,
    records: Vec<EvalRecord>,
}

impl FileReport {
    fn count(&self, wanted: fn(&Outcome) -> bool) -> usize {
        self.records.iter().filter(|r| wanted(&r.outcome)).count()
    }

    fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Passed))
    }

    fn failures(&self) -> impl Iterator<Item = (&EvalRecord, &str)> {
        self.records.iter().filter_map(|r| match &r.outcome {
            Outcome::Failed(message) => Some((r, message.as_str())),
            _ => None,
        })
    }

    fn unsupported_reasons(&self) -> Vec<(usize, &str)> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for record in &self.records {
            if let Outcome::Unsupported(reason) = &record.outcome {
                *counts.entry(reason.as_str()).or_default() += 1;
            }
        }
        let mut reasons: Vec<(usize, &str)> =
            counts.into_iter().map(|(reason, n)| (n, reason)).collect();
        reasons.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        reasons
    }

    fn in_scope(&self) -> bool {
        IN_SCOPE.contains(&self.name.as_str())
    }
}

#[test]
fn promqltest_conformance() {
    let dir = Path::new(CONFORMANCE_DIR);
    if !dir.is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "conformance data missing at {CONFORMANCE_DIR} (required under CI=true)"
        );
        println!("SKIP promqltest conformance: no {CONFORMANCE_DIR}");
        return;
    }
    let reports: Vec<FileReport> = script_files(dir)
        .iter()
        .map(|path| run_file(path))
        .collect();
    let text = render(&reports);
    println!("{text}");
    let report_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("promqltest-report.txt");
    std::fs::write(&report_path, &text).expect("write the promqltest report");

    let problems = problems(&reports, &parse_baseline(BASELINE));
    assert!(
        problems.is_empty(),
        "promqltest conformance:\n{}",
        problems.join("\n")
    );
}

/// The `*.test` files of `dir`, sorted.
fn script_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the conformance directory")
        .map(|entry| entry.expect("read a conformance directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "test"))
        .collect();
    files.sort();
    files
}

fn run_file(path: &Path) -> FileReport {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let name = path
        .file_stem()
        .expect("a script file name")
        .to_string_lossy()
        .into_owned();
    FileReport {
        name,
        records: run_script(&text),
    }
}

/// The table, then per file the first failures and main unsupported reasons.
fn render(reports: &[FileReport]) -> String {
    let mut out = String::new();
    let row = |out: &mut String, cells: [&str; 5]| {
        let _ = writeln!(
            out,
            "{:<22} | {:>6} | {:>6} | {:>11} | {}",
            cells[0], cells[1], cells[2], cells[3], cells[4]
        );
    };
    row(
        &mut out,
        ["file", "passed", "failed", "unsupported", "group"],
    );
    for report in reports {
        let failed = report.failures().count();
        let unsupported = report.records.len() - report.passed() - failed;
        let group = if report.in_scope() {
            "in scope"
        } else {
            "later"
        };
        row(
            &mut out,
            [
                &report.name,
                &report.passed().to_string(),
                &failed.to_string(),
                &unsupported.to_string(),
                group,
            ],
        );
    }
    for report in reports {
        render_details(&mut out, report);
    }
    out
}

fn render_details(out: &mut String, report: &FileReport) {
    let failures: Vec<_> = report.failures().collect();
    let reasons = report.unsupported_reasons();
    if failures.is_empty() && reasons.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}.test:", report.name);
    for (record, message) in failures.iter().take(FAILURES_SHOWN) {
        let _ = writeln!(
            out,
            "  FAIL {}.test:{} {}\n       {message}",
            report.name, record.line, record.query
        );
    }
    if failures.len() > FAILURES_SHOWN {
        let _ = writeln!(
            out,
            "  … and {} more failures",
            failures.len() - FAILURES_SHOWN
        );
    }
    for (count, reason) in reasons.iter().take(REASONS_SHOWN) {
        let _ = writeln!(out, "  unsupported ×{count}: {reason}");
    }
    if reasons.len() > REASONS_SHOWN {
        let _ = writeln!(
            out,
            "  … and {} more unsupported reasons",
            reasons.len() - REASONS_SHOWN
        );
    }
}

/// What the baseline records of a file.
#[derive(Debug, Clone, Copy, Default)]
struct Recorded {
    /// Evals that pass at least.
    passed: usize,
    /// Evals known to fail at most.
    known_failures: usize,
}

/// `file passed [known_failures]` lines; `#` comments and blank lines ignored.
fn parse_baseline(text: &str) -> BTreeMap<String, Recorded> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let mut words = line.split_whitespace();
            let file = words.next().unwrap_or_default();
            assert!(
                IN_SCOPE.contains(&file),
                "baseline names {file:?}, which is not an in-scope file"
            );
            let mut number = || -> usize {
                words
                    .next()
                    .map(|w| {
                        w.parse()
                            .unwrap_or_else(|e| panic!("baseline line {line:?}: {e}"))
                    })
                    .unwrap_or(0)
            };
            let recorded = Recorded {
                passed: number(),
                known_failures: number(),
            };
            (file.to_string(), recorded)
        })
        .collect()
}

/// Why the test fails, if it does; prints the hint to raise the baseline.
fn problems(reports: &[FileReport], baseline: &BTreeMap<String, Recorded>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut raise = Vec::new();
    for name in IN_SCOPE {
        let Some(report) = reports.iter().find(|r| r.name == name) else {
            problems.push(format!("in-scope file {name}.test is missing"));
            continue;
        };
        let recorded = baseline.get(name).copied().unwrap_or_default();
        let failed = report.failures().count();
        if failed > recorded.known_failures {
            problems.push(format!(
                "{name}: {failed} evals failed, baseline.txt knows of {}",
                recorded.known_failures
            ));
        }
        let recorded = recorded.passed;
        match report.passed().cmp(&recorded) {
            std::cmp::Ordering::Less => problems.push(format!(
                "{name}: {} evals passed, baseline.txt records {recorded}",
                report.passed()
            )),
            std::cmp::Ordering::Greater => raise.push(format!("{name} {}", report.passed())),
            std::cmp::Ordering::Equal => {}
        }
    }
    if !raise.is_empty() {
        println!(
            "More evals pass than tests/promqltest/baseline.txt records; raise it to:\n{}",
            raise.join("\n")
        );
    }
    problems
}
