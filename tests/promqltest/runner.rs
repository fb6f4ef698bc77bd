//! Runs a parsed script against fleetmon's engine, one verdict per eval, as
//! `test.go`'s `execEval` judges it:
//!
//! - an error passes only when the eval expects failure (and the message
//!   matches); success fails an eval that expects failure;
//! - annotations are checked against `expect warn|info|no_warn|no_info`
//!   (and `eval_warn`/`eval_info`) when [`CHECK_ANNOTATIONS`] is set;
//! - an instant eval is also run as a range query from t-1m to t+1m with a
//!   1m step and its middle step compared with the same expectations
//!   (skipped for `expect ordered`, `expect string`, `expect range vector`,
//!   and queries calling `start()`, `end()`, `range()` or `step()`).
//!
//! Prometheus additionally re-runs each instant eval with an `@` modifier
//! put on every selector (step-invariance check); that needs a PromQL
//! rewriter and is not done here.
//!
//! Evals that need what this store cannot hold or fleetmon does not do yet
//! are counted as unsupported, never as passed or failed: native histograms
//! (in a load, an expectation, a histogram-only function or a
//! `load_with_nhcb` conversion), start timestamps, and queries the engine
//! answers with an error starting "unsupported:".

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use fleetmon::promql::{Engine, EngineOptions, QueryError, QueryResult, Sample, Value};
use fleetmon::storage::Labels;

use super::compare::{check_sorted, compare, MatrixWindow};
use super::script::{AnnotationRules, Command, Eval, Load, Skipped, Steps, Timing};
use super::series::{identifier_len, METRIC_NAME};
use super::store::MemoryStore;

/// Whether warning and info expectations are checked. Turn off while the
/// engine emits no annotations at all (the conformance README counts them
/// only where the engine claims to emit them).
pub const CHECK_ANNOTATIONS: bool = true;

/// Prefix of engine errors for features it does not implement yet.
const UNSUPPORTED_PREFIX: &str = "unsupported:";

/// Functions that only read native histograms (float samples are ignored by
/// them, so a float-only store cannot exercise them). `histogram_fraction`
/// and `histogram_quantile` also read classic `_bucket` series and stay in.
const NATIVE_HISTOGRAM_FUNCTIONS: [&str; 5] = [
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_stddev",
    "histogram_stdvar",
];

/// Series names `load_with_nhcb` converts: the base of `_bucket`, `_count`
/// and `_sum` series (Prometheus's `GetHistogramMetricBaseName`).
const CLASSIC_HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_count", "_sum"];

/// What NHCB conversion needs.
const NHCB: &str = "native histograms with custom buckets (load_with_nhcb)";

/// How long the range-mode check reaches either side of an instant eval.
const RANGE_MODE_STEP_MS: i64 = 60_000;

/// The verdict on one eval.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// All expectations held.
    Passed,
    /// Why not.
    Failed(String),
    /// Why it was not judged.
    Unsupported(String),
}

/// One eval's verdict, where it is.
#[derive(Debug)]
pub struct EvalRecord {
    /// 1-based line of the eval (or of the unreadable command).
    pub line: usize,
    /// The query ("" for an unreadable command).
    pub query: String,
    /// The verdict.
    pub outcome: Outcome,
}

/// Runs a whole script against a fresh store and engine.
pub fn run_script(text: &str) -> Vec<EvalRecord> {
    let mut runner = Runner::new();
    super::script::parse_script(text)
        .into_iter()
        .filter_map(|command| runner.execute(command))
        .collect()
}

/// Engine options matching Prometheus's test engine (`NewTestEngine`):
/// 5m lookback; its 10000-sample limit is left at fleetmon's default, since
/// no script tests the limit and fleetmon may count samples differently.
fn engine_options() -> EngineOptions {
    EngineOptions {
        lookback_delta_ms: 5 * 60 * 1000,
        ..EngineOptions::default()
    }
}

/// A series the store could not load, and why: evals reading it are unsupported.
struct Taint {
    metric: Option<String>,
    feature: &'static str,
}

struct Runner {
    store: Arc<MemoryStore>,
    engine: Engine,
    taints: Vec<Taint>,
}

/// Why an eval did not pass (`?` carries it out of the checks).
enum Verdict {
    Failed(String),
    Unsupported(String),
}

impl From<String> for Verdict {
    fn from(message: String) -> Self {
        Verdict::Failed(message)
    }
}

impl Runner {
    fn new() -> Runner {
        let store = Arc::new(MemoryStore::default());
        let engine = Engine::new(store.clone(), engine_options());
        Runner {
            store,
            engine,
            taints: Vec::new(),
        }
    }

    /// Executes one command; evals and unreadable commands yield a record.
    fn execute(&mut self, command: Command) -> Option<EvalRecord> {
        match command {
            Command::Clear => {
                self.store.clear();
                self.taints.clear();
                None
            }
            Command::Load(load) => self.load(load).map(|(line, message)| EvalRecord {
                line,
                query: String::new(),
                outcome: Outcome::Failed(message),
            }),
            Command::Eval(eval) => Some(EvalRecord {
                line: eval.line,
                query: eval.query.clone(),
                outcome: self.run_eval(&eval),
            }),
            Command::Invalid { line, message } => Some(EvalRecord {
                line,
                query: String::new(),
                outcome: Outcome::Failed(format!("script: {message}")),
            }),
        }
    }

    /// Loads the float series and records what could not be loaded. A
    /// series without a metric name cannot be a fleetmon `Labels`: it is
    /// recorded as a taint like a histogram series.
    fn load(&mut self, load: Load) -> Option<(usize, String)> {
        if load.with_nhcb {
            self.taints.extend(nhcb_taints(&load));
        }
        self.taints.extend(
            load.skipped
                .into_iter()
                .map(|Skipped { metric, feature }| Taint { metric, feature }),
        );
        for (pairs, values) in load.series {
            let labels = match Labels::new(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
                Ok(labels) => labels,
                Err(_) if !pairs.iter().any(|(n, _)| n == METRIC_NAME) => {
                    self.taints.push(Taint {
                        metric: None,
                        feature: "series without a metric name (fleetmon Labels require one)",
                    });
                    continue;
                }
                Err(e) => return Some((load.line, format!("load: invalid series {pairs:?}: {e}"))),
            };
            let samples = (0..)
                .map(|i| i * load.interval_ms)
                .zip(values)
                .filter_map(|(t, value)| value.map(|v| (t, v)))
                .collect();
            self.store.append(labels, samples);
        }
        None
    }

    fn run_eval(&self, eval: &Eval) -> Outcome {
        if let Some(reason) = self.unsupported_reason(eval) {
            return Outcome::Unsupported(reason);
        }
        let checked = match eval.timing {
            Timing::Range(steps) => self.check_range(eval, steps),
            Timing::Instant {
                time_ms,
                range_vector,
            } => self.check_instant(eval, time_ms, range_vector),
        };
        match checked {
            Ok(()) => Outcome::Passed,
            Err(Verdict::Failed(message)) => Outcome::Failed(message),
            Err(Verdict::Unsupported(message)) => Outcome::Unsupported(message),
        }
    }

    /// Why an eval cannot be judged before running it, if it cannot.
    fn unsupported_reason(&self, eval: &Eval) -> Option<String> {
        if eval.expect.native_histograms {
            return Some(format!(
                "{}: expected in the result",
                super::script::NATIVE_HISTOGRAMS
            ));
        }
        let words = identifiers(&eval.query);
        if let Some(function) = NATIVE_HISTOGRAM_FUNCTIONS
            .iter()
            .find(|f| words.contains(**f))
        {
            return Some(format!("native histograms: {function}() reads only them"));
        }
        for taint in &self.taints {
            if let Some(metric) = taint.metric.as_deref().filter(|m| words.contains(m)) {
                return Some(format!("{}: reads {metric}", taint.feature));
            }
        }
        let unnamed = self
            .taints
            .first()
            .filter(|_| selects_without_name(&eval.query));
        unnamed.map(|taint| {
            format!(
                "{}: a selector without a metric name may read them",
                taint.feature
            )
        })
    }

    fn check_range(&self, eval: &Eval, steps: Steps) -> Result<(), Verdict> {
        let query = &eval.query;
        let result =
            self.query(|engine| engine.range(query, steps.start_ms, steps.end_ms, steps.step_ms))?;
        self.check_result(eval, Some(steps), result).map(drop)
    }

    fn check_instant(
        &self,
        eval: &Eval,
        time_ms: i64,
        range_vector: Option<Steps>,
    ) -> Result<(), Verdict> {
        let query = &eval.query;
        let result = self.query(|engine| engine.instant(query, time_ms))?;
        let Some(value) = self.check_result(eval, range_vector, result)? else {
            return Ok(());
        };
        let context_functions = ["start()", "end()", "range()", "step()"];
        if eval.expect.no_range_mode || context_functions.iter().any(|f| query.contains(f)) {
            return Ok(());
        }
        self.check_range_mode(eval, time_ms, &value)
            .map_err(|verdict| match verdict {
                Verdict::Failed(message) => Verdict::Failed(format!("range mode: {message}")),
                unsupported => unsupported,
            })
    }

    /// Runs the instant eval as a range query around its time and compares
    /// the middle step with the same expectations. The query must succeed
    /// even under `expect ordered`, whose order a range result (sorted by
    /// labels) cannot show, so only the comparison is skipped then.
    fn check_range_mode(&self, eval: &Eval, time_ms: i64, instant: &Value) -> Result<(), Verdict> {
        let (start, end) = (time_ms - RANGE_MODE_STEP_MS, time_ms + RANGE_MODE_STEP_MS);
        let result =
            self.query(|engine| engine.range(&eval.query, start, end, RANGE_MODE_STEP_MS))?;
        let result = result.map_err(|e| format!("error evaluating query: {}", e.message()))?;
        if eval.expect.ordered {
            return Ok(());
        }
        let Value::Matrix(matrix) = result.value else {
            return Err(format!(
                "range query returned a {}, not a matrix",
                result.value.type_name()
            )
            .into());
        };
        check_sorted(&matrix)?;
        let at_time = matrix.into_iter().filter_map(|series| {
            let point = series.points.iter().find(|(t, _)| *t == time_ms)?;
            Some(Sample {
                labels: series.labels,
                t: point.0,
                v: point.1,
            })
        });
        let value = match instant {
            Value::Scalar { .. } => {
                let sample = at_time
                    .into_iter()
                    .next()
                    .ok_or_else(|| "no point at the eval time for a scalar".to_string())?;
                Value::Scalar {
                    t: sample.t,
                    v: sample.v,
                }
            }
            _ => Value::Vector(at_time.collect()),
        };
        compare(&eval.expect, None, &value).map_err(Verdict::Failed)
    }

    /// Judges a query's outcome up to its value; returns the value when
    /// there is one to check further.
    fn check_result(
        &self,
        eval: &Eval,
        window: MatrixWindow,
        result: Result<QueryResult, QueryError>,
    ) -> Result<Option<Value>, Verdict> {
        let expect = &eval.expect;
        let result = match (result, &expect.fail) {
            (Err(error), Some(matchers)) => {
                let message = error.message();
                return match matchers.iter().find(|m| !m.matches(message)) {
                    None => Ok(None),
                    Some(m) => {
                        Err(format!("expected error matching {m}, but got: {message}").into())
                    }
                };
            }
            (Err(error), None) => {
                return Err(format!("error evaluating query: {}", error.message()).into())
            }
            (Ok(_), Some(_)) => {
                return Err("expected an error evaluating the query, but got none"
                    .to_string()
                    .into())
            }
            (Ok(result), None) => result,
        };
        if CHECK_ANNOTATIONS {
            check_annotations("warn", &expect.warn, &result.warnings)?;
            check_annotations("info", &expect.info, &result.infos)?;
        }
        compare(expect, window, &result.value)?;
        Ok(Some(result.value))
    }

    /// Runs one engine call: a panic is a failure, an "unsupported:" error
    /// makes the eval unsupported, other errors go back to the caller.
    fn query(
        &self,
        call: impl FnOnce(&Engine) -> Result<QueryResult, QueryError>,
    ) -> Result<Result<QueryResult, QueryError>, Verdict> {
        let result = catch_unwind(AssertUnwindSafe(|| call(&self.engine))).map_err(|panic| {
            Verdict::Failed(format!("engine panicked: {}", panic_message(&*panic)))
        })?;
        match result {
            Err(error) if error.message().starts_with(UNSUPPORTED_PREFIX) => {
                Err(Verdict::Unsupported(format!("engine: {}", error.message())))
            }
            result => Ok(result),
        }
    }
}

/// `checkAnnotations` for one kind.
fn check_annotations(kind: &str, rules: &AnnotationRules, actual: &[String]) -> Result<(), String> {
    if rules.at_least_one && actual.is_empty() {
        return Err(format!("expected {kind} annotations but got none"));
    }
    if !rules.expected.is_empty() {
        if actual.is_empty() {
            return Err(format!("expected {kind} annotations but none were found"));
        }
        if let Some(missing) = rules
            .expected
            .iter()
            .find(|e| !actual.iter().any(|a| e.matches(a)))
        {
            return Err(format!(
                "expected {kind} annotation matching {missing} but found only {actual:?}"
            ));
        }
        if let Some(extra) = actual
            .iter()
            .find(|a| !rules.expected.iter().any(|e| e.matches(a)))
        {
            return Err(format!("unexpected {kind} annotation {extra:?}"));
        }
    }
    if rules.none && !actual.is_empty() {
        return Err(format!("unexpected {kind} annotations: {actual:?}"));
    }
    Ok(())
}

/// The NHCB series a `load_with_nhcb` block would add, by base name.
fn nhcb_taints(load: &Load) -> Vec<Taint> {
    let mut bases: Vec<String> = load
        .series
        .iter()
        .filter_map(|(pairs, _)| pairs.iter().find(|(n, _)| n == METRIC_NAME))
        .filter_map(|(_, name)| {
            CLASSIC_HISTOGRAM_SUFFIXES
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
        })
        .map(str::to_string)
        .collect();
    bases.sort();
    bases.dedup();
    bases
        .into_iter()
        .map(|base| Taint {
            metric: Some(base),
            feature: NHCB,
        })
        .collect()
}

/// Every identifier-like word of a query, string contents included (a
/// metric can be named in a string: `{"name"}`, `__name__="name"`).
fn identifiers(query: &str) -> HashSet<&str> {
    let mut words = HashSet::new();
    let mut rest = query;
    while let Some(first) = rest.chars().next() {
        let len = match identifier_len(rest) {
            0 if first.is_ascii_digit() => {
                // A number or duration (`5m`, `1e3`): its letters are no word.
                rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
                    .unwrap_or(rest.len())
            }
            0 => first.len_utf8(),
            len => {
                words.insert(&rest[..len]);
                len
            }
        };
        rest = &rest[len..];
    }
    words
}

/// Whether the query may select series without naming their metric: it
/// mentions `__name__`, or a `{` opens a selector with no name right before
/// it (`foo {…}` with a space counts as unnamed too: erring towards
/// "unsupported" is the safe side).
fn selects_without_name(query: &str) -> bool {
    if query.contains(METRIC_NAME) {
        return true;
    }
    let mut in_string: Option<char> = None;
    let mut previous = ' ';
    let mut escaped = false;
    for c in query.chars() {
        match in_string {
            Some(quote) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && quote != '`' {
                    escaped = true;
                } else if c == quote {
                    in_string = None;
                }
            }
            None if matches!(c, '"' | '\'' | '`') => in_string = Some(c),
            None if c == '{'
                && !(previous.is_ascii_alphanumeric() || previous == '_' || previous == ':') =>
            {
                return true;
            }
            None => {}
        }
        previous = c;
    }
    false
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}
