//! PromQL's float function library, with the semantics of Prometheus 3.x
//! (checked against v3.14): the range functions (`rate`, `deriv`,
//! `*_over_time`, …), the element-wise math and date functions,
//! `histogram_quantile` / `histogram_fraction` over classic `le` buckets, the
//! `quantile` shared by the aggregation and `quantile_over_time`, and the
//! exact annotation texts Prometheus attaches to all of these ([`notes`]).
//!
//! What this module owns is the arithmetic, reproduced operation for
//! operation where the result depends on it: Kahan-compensated sums, the
//! extrapolation rules of `rate`/`increase`/`delta`, the least-squares
//! conventions of `deriv`/`predict_linear`, the bucket clean-up of
//! `histogram_quantile`, Go's `math.Log`/`Log2`/`Log10` and Go's calendar for
//! the date functions. Where Go's behaviour depends on the CPU (converting
//! NaN to an integer, `math.Log` of subnormals) we follow amd64, the platform
//! Prometheus is almost always run on. The exceptions are `exp`, the
//! trigonometric and the hyperbolic functions: they use Rust's (the
//! platform's) implementations, which agree with Go's own to within one
//! unit in the last place, not always to the bit.
//!
//! Architecture invariant: this module knows nothing about storage, the
//! parser, labels or steps. Its inputs are sample slices and floats; choosing
//! windows, grouping buckets and emitting the notes that need a metric name
//! belong to the evaluator, which takes the texts from [`notes`].

use std::cmp::Ordering;
use std::f64::consts::{LOG10_E, LOG2_E, PI, SQRT_2};

// ---------------------------------------------------------------------------
// Inputs and outputs shared by the functions
// ---------------------------------------------------------------------------

/// A range function's input: the samples of one series in the window
/// `(start_ms, end_ms]` (left-open, as in Prometheus 3), stale markers
/// already removed, in time order.
#[derive(Clone, Copy, Debug)]
pub struct Window<'a> {
    /// `(timestamp in ms, value)` pairs inside the window.
    pub samples: &'a [(i64, f64)],
    /// The exclusive start of the window: `end_ms - range`.
    pub start_ms: i64,
    /// The inclusive end of the window: the step time minus `offset`
    /// (and moved by `@`).
    pub end_ms: i64,
    /// The step's evaluation time. It differs from `end_ms` only under
    /// `offset` or `@`; `predict_linear` predicts relative to it, as
    /// Prometheus does (`predict_linear(x[55m] @ 3000, 3600)` evaluated at
    /// 600s extrapolates to 600s + 3600s, not to 3000s + 3600s).
    pub eval_ms: i64,
    /// Whether a value may drop somewhere in the window (a counter reset);
    /// a caller that knows there is none says so with
    /// [`Window::without_drops`], and the counter functions skip their scan.
    pub may_drop: bool,
}

impl<'a> Window<'a> {
    /// A window whose evaluation time is its end (no `offset`, no `@`).
    pub fn new(samples: &'a [(i64, f64)], start_ms: i64, end_ms: i64) -> Self {
        Window {
            samples,
            start_ms,
            end_ms,
            eval_ms: end_ms,
            may_drop: true,
        }
    }

    /// The same window, known to hold no value below its predecessor.
    pub fn without_drops(self) -> Self {
        Window {
            may_drop: false,
            ..self
        }
    }

    /// The same window evaluated at `eval_ms` (see [`Window::eval_ms`]).
    pub fn at_eval_time(self, eval_ms: i64) -> Self {
        Window { eval_ms, ..self }
    }
}

/// Warnings and infos collected while evaluating, as the texts Prometheus
/// prints (without the ` (line:col)` suffix, see [`notes::with_position`]).
/// Like Prometheus, a text is kept once however often it is reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Annotations {
    /// `PromQL warning: …` texts.
    pub warnings: Vec<String>,
    /// `PromQL info: …` texts.
    pub infos: Vec<String>,
}

impl Annotations {
    /// Adds a warning unless the same text is already there.
    pub fn warn(&mut self, message: String) {
        push_unique(&mut self.warnings, message);
    }

    /// Adds an info unless the same text is already there.
    pub fn info(&mut self, message: String) {
        push_unique(&mut self.infos, message);
    }

    /// Adds the other set's texts, keeping each text once.
    pub fn merge(&mut self, other: Annotations) {
        other.warnings.into_iter().for_each(|w| self.warn(w));
        other.infos.into_iter().for_each(|i| self.info(i));
    }

    /// Whether nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.warnings.is_empty() && self.infos.is_empty()
    }
}

fn push_unique(list: &mut Vec<String>, message: String) {
    if !list.contains(&message) {
        list.push(message);
    }
}

/// Whether a metric name looks like a counter to Prometheus: it ends in
/// `_total`, `_sum`, `_count` or `_bucket`. The evaluator reports
/// [`notes::possible_non_counter`] for `rate` and `increase` (not `irate`)
/// over a series with a name that fails this, when the series produced at
/// least one float result.
pub fn is_counter_name(name: &str) -> bool {
    ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

// ---------------------------------------------------------------------------
// Range functions
// ---------------------------------------------------------------------------

/// A function that reduces one series' window to one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeFunction {
    /// `rate(v[d])`
    Rate,
    /// `increase(v[d])`
    Increase,
    /// `delta(v[d])`
    Delta,
    /// `irate(v[d])`
    Irate,
    /// `idelta(v[d])`
    Idelta,
    /// `deriv(v[d])`
    Deriv,
    /// `predict_linear(v[d], t)`
    PredictLinear,
    /// `resets(v[d])`
    Resets,
    /// `changes(v[d])`
    Changes,
    /// `avg_over_time(v[d])`
    AvgOverTime,
    /// `min_over_time(v[d])`
    MinOverTime,
    /// `max_over_time(v[d])`
    MaxOverTime,
    /// `sum_over_time(v[d])`
    SumOverTime,
    /// `count_over_time(v[d])`
    CountOverTime,
    /// `quantile_over_time(φ, v[d])`
    QuantileOverTime,
    /// `stddev_over_time(v[d])`
    StddevOverTime,
    /// `stdvar_over_time(v[d])`
    StdvarOverTime,
    /// `mad_over_time(v[d])`
    MadOverTime,
    /// `last_over_time(v[d])`
    LastOverTime,
    /// `first_over_time(v[d])`
    FirstOverTime,
    /// `present_over_time(v[d])`
    PresentOverTime,
    /// `ts_of_min_over_time(v[d])`
    TsOfMinOverTime,
    /// `ts_of_max_over_time(v[d])`
    TsOfMaxOverTime,
    /// `ts_of_first_over_time(v[d])`
    TsOfFirstOverTime,
    /// `ts_of_last_over_time(v[d])`
    TsOfLastOverTime,
    /// `double_exponential_smoothing(v[d], sf, tf)`
    DoubleExponentialSmoothing,
}

/// Every range function with its PromQL name: the one table both name
/// look-ups read.
const RANGE_FUNCTIONS: [(&str, RangeFunction); 26] = [
    ("rate", RangeFunction::Rate),
    ("increase", RangeFunction::Increase),
    ("delta", RangeFunction::Delta),
    ("irate", RangeFunction::Irate),
    ("idelta", RangeFunction::Idelta),
    ("deriv", RangeFunction::Deriv),
    ("predict_linear", RangeFunction::PredictLinear),
    ("resets", RangeFunction::Resets),
    ("changes", RangeFunction::Changes),
    ("avg_over_time", RangeFunction::AvgOverTime),
    ("min_over_time", RangeFunction::MinOverTime),
    ("max_over_time", RangeFunction::MaxOverTime),
    ("sum_over_time", RangeFunction::SumOverTime),
    ("count_over_time", RangeFunction::CountOverTime),
    ("quantile_over_time", RangeFunction::QuantileOverTime),
    ("stddev_over_time", RangeFunction::StddevOverTime),
    ("stdvar_over_time", RangeFunction::StdvarOverTime),
    ("mad_over_time", RangeFunction::MadOverTime),
    ("last_over_time", RangeFunction::LastOverTime),
    ("first_over_time", RangeFunction::FirstOverTime),
    ("present_over_time", RangeFunction::PresentOverTime),
    ("ts_of_min_over_time", RangeFunction::TsOfMinOverTime),
    ("ts_of_max_over_time", RangeFunction::TsOfMaxOverTime),
    ("ts_of_first_over_time", RangeFunction::TsOfFirstOverTime),
    ("ts_of_last_over_time", RangeFunction::TsOfLastOverTime),
    (
        "double_exponential_smoothing",
        RangeFunction::DoubleExponentialSmoothing,
    ),
];

impl RangeFunction {
    /// The function called `name` in PromQL, if it is a range function
    /// handled here.
    pub fn from_name(name: &str) -> Option<Self> {
        RANGE_FUNCTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    /// The function's PromQL name.
    pub fn name(self) -> &'static str {
        RANGE_FUNCTIONS
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("", |(n, _)| n)
    }

    /// How many scalar arguments the function takes besides the range.
    pub fn scalar_arity(self) -> usize {
        match self {
            RangeFunction::QuantileOverTime | RangeFunction::PredictLinear => 1,
            RangeFunction::DoubleExponentialSmoothing => 2,
            _ => 0,
        }
    }

    /// Evaluates the function on one window.
    ///
    /// `args` are the scalar arguments in call order without the range
    /// vector: `quantile_over_time(0.9, x[5m])` → `[0.9]`,
    /// `predict_linear(x[5m], 3600)` → `[3600.0]`,
    /// `double_exponential_smoothing(x[5m], sf, tf)` → `[sf, tf]`.
    ///
    /// Returns `None` when the function yields no sample for this series at
    /// this step (an empty window, `rate` with fewer than 2 samples, …),
    /// `Some(Err)` for what Prometheus fails the query with (a smoothing or
    /// trend factor outside `(0, 1)`; a wrong argument count, which the
    /// parser prevents), and reports warnings through `notes`. `scratch`
    /// carries what one series' windows can share (see [`StepScratch`]): a
    /// caller evaluating a series step after step passes the same one.
    pub fn eval(
        self,
        window: &Window<'_>,
        args: &[f64],
        notes: &mut Annotations,
        scratch: &mut StepScratch,
    ) -> Option<Result<f64, String>> {
        if args.len() != self.scalar_arity() {
            return Some(Err(format!(
                "{} expects {} scalar argument(s) besides the range, got {}",
                self.name(),
                self.scalar_arity(),
                args.len()
            )));
        }
        let samples = window.samples;
        // Prometheus never calls a range function on an empty window.
        let (&(first_t, first_v), &(last_t, last_v)) = (samples.first()?, samples.last()?);
        let value = match self {
            RangeFunction::Rate => extrapolated_rate(window, true, true, &mut scratch.rate)?,
            RangeFunction::Increase => extrapolated_rate(window, true, false, &mut scratch.rate)?,
            RangeFunction::Delta => extrapolated_rate(window, false, false, &mut scratch.rate)?,
            RangeFunction::Irate => instant_value(samples, true)?,
            RangeFunction::Idelta => instant_value(samples, false)?,
            RangeFunction::Deriv => deriv(samples)?,
            RangeFunction::PredictLinear => predict_linear(samples, window.eval_ms, args[0])?,
            RangeFunction::Resets => resets(samples).count() as f64,
            RangeFunction::Changes => changes(samples),
            RangeFunction::AvgOverTime => mean(samples.iter().map(|s| s.1)),
            RangeFunction::MinOverTime => extreme_over_time(samples, replaces_min).1,
            RangeFunction::MaxOverTime => extreme_over_time(samples, replaces_max).1,
            RangeFunction::SumOverTime => kahan_sum(samples.iter().map(|s| s.1)),
            RangeFunction::CountOverTime => samples.len() as f64,
            RangeFunction::QuantileOverTime => {
                quantile_over_time(samples, args[0], notes, &mut scratch.values)
            }
            RangeFunction::StddevOverTime => variance(samples.iter().map(|s| s.1)).sqrt(),
            RangeFunction::StdvarOverTime => variance(samples.iter().map(|s| s.1)),
            RangeFunction::MadOverTime => mad_over_time(samples, &mut scratch.values),
            RangeFunction::LastOverTime => last_v,
            RangeFunction::FirstOverTime => first_v,
            RangeFunction::PresentOverTime => 1.0,
            RangeFunction::TsOfMinOverTime => {
                ms_to_seconds(extreme_over_time(samples, ties_to_last_min).0)
            }
            RangeFunction::TsOfMaxOverTime => {
                ms_to_seconds(extreme_over_time(samples, ties_to_last_max).0)
            }
            RangeFunction::TsOfFirstOverTime => ms_to_seconds(first_t),
            RangeFunction::TsOfLastOverTime => ms_to_seconds(last_t),
            RangeFunction::DoubleExponentialSmoothing => {
                return double_exponential_smoothing(samples, args[0], args[1]);
            }
        };
        Some(Ok(value))
    }
}

/// Whether `name` is a range function ([`RangeFunction`]).
pub fn is_range_function(name: &str) -> bool {
    RangeFunction::from_name(name).is_some()
}

fn ms_to_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The range as Go's `time.Duration.Seconds()` computes it (whole seconds
/// plus the fraction), which can differ in the last bit from `ms / 1000`.
fn duration_seconds(range_ms: i64) -> f64 {
    (range_ms / 1000) as f64 + ((range_ms % 1000) * 1_000_000) as f64 / 1e9
}

/// The values before each drop: a drop is a counter reset.
fn resets(samples: &[(i64, f64)]) -> impl Iterator<Item = f64> + '_ {
    samples
        .windows(2)
        .filter(|pair| pair[1].1 < pair[0].1)
        .map(|pair| pair[0].1)
}

/// What the windows of one series can share while a range function is
/// evaluated over them step by step, so that the caller allocates nothing
/// per step and repeats no division it has just done.
#[derive(Debug, Default)]
pub struct StepScratch {
    /// Values to sort (`quantile_over_time`, `mad_over_time`).
    values: Vec<f64>,
    /// Quotients of `rate`, `increase` and `delta`.
    rate: RateQuotients,
}

/// The divisions of [`extrapolated_rate`] that depend only on the window's
/// timestamps. Scrapes are regular, so consecutive windows mostly have the
/// same sample count and the same distances to their edges; a quotient of
/// the same operands is the same float, so reusing it changes no bit.
#[derive(Debug, Default)]
struct RateQuotients {
    /// The window's timestamps as `(ms between first and last sample,
    /// intervals, ms from the window's start to the first sample, ms from
    /// the last sample to the window's end)` → those spans in seconds and
    /// the average interval: `(sampled, to start, to end, average)`.
    spans: LastQuotient<SpansMs, SpansSeconds>,
    /// (sampled, to start, to end as bits, range ms, is rate) → factor.
    factor: LastQuotient<(u64, u64, u64, i64, bool), f64>,
}

/// A window's spans in ms: sampled, intervals, to start, to end.
type SpansMs = (i64, usize, i64, i64);
/// The same in seconds: sampled, to start, to end, average interval.
type SpansSeconds = (f64, f64, f64, f64);

/// A one-entry memo: the last key and what it computed to.
#[derive(Debug)]
struct LastQuotient<K, V>(Option<(K, V)>);

impl<K, V> Default for LastQuotient<K, V> {
    fn default() -> Self {
        LastQuotient(None)
    }
}

impl<K: PartialEq + Copy, V: Copy> LastQuotient<K, V> {
    fn get(&mut self, key: K, compute: impl FnOnce(K) -> V) -> V {
        match self.0 {
            Some((last, value)) if last == key => value,
            _ => {
                let value = compute(key);
                self.0 = Some((key, value));
                value
            }
        }
    }
}

/// `rate`, `increase` and `delta`: the change over the window, corrected for
/// counter resets when `is_counter`, extrapolated towards the window's edges
/// and, when `is_rate`, divided by the range.
fn extrapolated_rate(
    window: &Window<'_>,
    is_counter: bool,
    is_rate: bool,
    quotients: &mut RateQuotients,
) -> Option<f64> {
    let samples = window.samples;
    if samples.len() < 2 {
        return None;
    }
    let (first_t, first_v) = samples[0];
    let (last_t, last_v) = samples[samples.len() - 1];
    let mut delta = last_v - first_v;
    if is_counter && window.may_drop {
        // Added one by one, in Prometheus's order, for identical rounding.
        delta = resets(samples).fold(delta, |sum, before_reset| sum + before_reset);
    }

    let spans = (
        last_t - first_t,
        samples.len() - 1,
        first_t - window.start_ms,
        window.end_ms - last_t,
    );
    let (sampled, mut to_start, mut to_end, average_interval) =
        quotients
            .spans
            .get(spans, |(sampled_ms, intervals, start_ms, end_ms)| {
                let sampled = ms_to_seconds(sampled_ms);
                let average = sampled / intervals as f64;
                (
                    sampled,
                    ms_to_seconds(start_ms),
                    ms_to_seconds(end_ms),
                    average,
                )
            });
    // A sample missing where one is expected (10% slack) means the series
    // starts or ends inside the window: extrapolate only half an interval.
    let threshold = average_interval * 1.1;
    if to_start >= threshold {
        to_start = average_interval / 2.0;
    }
    if is_counter && delta > 0.0 && first_v >= 0.0 {
        // A counter cannot go below zero: stop the extrapolation where the
        // line through the samples reaches zero.
        let to_zero = sampled * (first_v / delta);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average_interval / 2.0;
    }

    let range_ms = window.end_ms - window.start_ms;
    let key = (
        sampled.to_bits(),
        to_start.to_bits(),
        to_end.to_bits(),
        range_ms,
        is_rate,
    );
    let factor = quotients.factor.get(key, |_| {
        let mut factor = 1.0;
        if sampled != 0.0 {
            factor = (sampled + to_start + to_end) / sampled;
        }
        if is_rate {
            factor /= duration_seconds(range_ms);
        }
        factor
    });
    Some(delta * factor)
}

/// `irate` and `idelta`: from the last two samples only. After a counter
/// reset `irate` takes the last value as the increase.
fn instant_value(samples: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    let n = samples.len();
    if n < 2 {
        return None;
    }
    let ((prev_t, prev_v), (last_t, last_v)) = (samples[n - 2], samples[n - 1]);
    let interval_ms = last_t - prev_t;
    if interval_ms == 0 {
        return None;
    }
    if !is_rate {
        return Some(last_v - prev_v);
    }
    let increase = if last_v < prev_v {
        last_v
    } else {
        last_v - prev_v
    };
    Some(increase / (interval_ms as f64 / 1000.0))
}

/// The least-squares line through the samples, with x in seconds relative
/// to `intercept_ms`: `(slope, value at intercept_ms)`. Sums are Kahan
/// compensated; a constant series yields slope 0 exactly (NaN if the
/// constant is infinite).
fn linear_regression(samples: &[(i64, f64)], intercept_ms: i64) -> (f64, f64) {
    let first_y = samples.first().map_or(f64::NAN, |s| s.1);
    let mut constant_y = true;
    let (mut n, mut sum_x, mut sum_y, mut sum_xy, mut sum_x2) =
        (0.0, KAHAN_ZERO, KAHAN_ZERO, KAHAN_ZERO, KAHAN_ZERO);
    for (i, &(t, y)) in samples.iter().enumerate() {
        if constant_y && i > 0 && y != first_y {
            constant_y = false;
        }
        n += 1.0;
        let x = (t - intercept_ms) as f64 / 1e3;
        sum_x = kahan_inc(x, sum_x);
        sum_y = kahan_inc(y, sum_y);
        sum_xy = kahan_inc(x * y, sum_xy);
        sum_x2 = kahan_inc(x * x, sum_x2);
    }
    if constant_y {
        if first_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, first_y);
    }
    let (sum_x, sum_y) = (sum_x.0 + sum_x.1, sum_y.0 + sum_y.1);
    let (sum_xy, sum_x2) = (sum_xy.0 + sum_xy.1, sum_x2.0 + sum_x2.1);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    (slope, sum_y / n - slope * sum_x / n)
}

/// `deriv`: the regression slope per second. The x origin is the first
/// sample, which keeps the sums small (Prometheus issue 2674).
fn deriv(samples: &[(i64, f64)]) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    Some(linear_regression(samples, samples[0].0).0)
}

/// `predict_linear`: the regression line's value `seconds` after the
/// evaluation time.
fn predict_linear(samples: &[(i64, f64)], eval_ms: i64, seconds: f64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(samples, eval_ms);
    Some(slope * seconds + intercept)
}

/// `changes`: how often the value differs from the one before; NaN
/// followed by NaN is no change.
fn changes(samples: &[(i64, f64)]) -> f64 {
    samples
        .windows(2)
        .filter(|pair| {
            let (prev, cur) = (pair[0].1, pair[1].1);
            cur != prev && !(cur.is_nan() && prev.is_nan())
        })
        .count() as f64
}

/// The mean of `values` (NaN when empty), as Prometheus 3 computes
/// `avg` and `avg_over_time`: a Kahan sum divided by the count, switching
/// to a Kahan-compensated incremental mean once the sum would overflow.
pub fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values = values.into_iter();
    let Some(first) = values.next() else {
        return f64::NAN;
    };
    let mut sum = (first, 0.0);
    let mut count = 1.0;
    let mut mean = None;
    for v in values {
        count += 1.0;
        let (m, c) = match mean {
            Some(mean) => mean,
            None => {
                let next = kahan_inc(v, sum);
                if !next.0.is_infinite() {
                    sum = next;
                    continue;
                }
                let before = count - 1.0;
                (sum.0 / before, sum.1 / before)
            }
        };
        let q = (count - 1.0) / count;
        mean = Some(kahan_inc(v / count, (q * m, q * c)));
    }
    match mean {
        Some((m, c)) => m + c,
        None => sum.0 / count + sum.1 / count,
    }
}

/// A Kahan-compensated sum (`sum`, `sum_over_time`).
pub fn kahan_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut sum = KahanSum::default();
    values.into_iter().for_each(|v| sum.add(v));
    sum.total()
}

/// A Kahan-compensated sum built one value at a time: the same additions,
/// in the same order, as [`kahan_sum`] (for sums kept per step).
#[derive(Clone, Copy, Debug, Default)]
pub struct KahanSum(Kahan);

impl KahanSum {
    /// Adds `v`.
    pub fn add(&mut self, v: f64) {
        self.0 = kahan_inc(v, self.0);
    }

    /// The sum, compensated (infinite sums stay infinite).
    pub fn total(self) -> f64 {
        let (sum, c) = self.0;
        if sum.is_infinite() {
            sum
        } else {
            sum + c
        }
    }
}

/// The population variance, updated incrementally (Welford) with Kahan
/// compensation of both running sums (`stdvar`, `stdvar_over_time`).
pub fn variance(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut count = 0.0;
    let (mut mean, mut aux) = (KAHAN_ZERO, KAHAN_ZERO);
    for v in values {
        count += 1.0;
        let delta = v - (mean.0 + mean.1);
        mean = kahan_inc(delta / count, mean);
        aux = kahan_inc(delta * (v - (mean.0 + mean.1)), aux);
    }
    (aux.0 + aux.1) / count
}

/// Scans the window, replacing the running pick by a sample whenever
/// `replaces(sample, pick)`; returns the pick's timestamp and value.
fn extreme_over_time(samples: &[(i64, f64)], replaces: fn(f64, f64) -> bool) -> (i64, f64) {
    samples.iter().fold(
        samples[0],
        |pick, &(t, v)| {
            if replaces(v, pick.1) {
                (t, v)
            } else {
                pick
            }
        },
    )
}

// NaN is skipped unless everything is NaN: a NaN pick is always replaced.
fn replaces_min(v: f64, pick: f64) -> bool {
    v < pick || pick.is_nan()
}

fn replaces_max(v: f64, pick: f64) -> bool {
    v > pick || pick.is_nan()
}

// The ts_of_ variants take the last of equal extremes.
fn ties_to_last_min(v: f64, pick: f64) -> bool {
    v <= pick || pick.is_nan()
}

fn ties_to_last_max(v: f64, pick: f64) -> bool {
    v >= pick || pick.is_nan()
}

/// `quantile_over_time`, warning about a φ outside `[0, 1]`.
fn quantile_over_time(
    samples: &[(i64, f64)],
    phi: f64,
    notes: &mut Annotations,
    scratch: &mut Vec<f64>,
) -> f64 {
    if !(0.0..=1.0).contains(&phi) {
        notes.warn(notes::invalid_quantile(phi));
    }
    fill_values(scratch, samples);
    quantile(phi, scratch)
}

/// `mad_over_time`: the median of the absolute deviations from the median.
/// A NaN sample makes it NaN.
fn mad_over_time(samples: &[(i64, f64)], scratch: &mut Vec<f64>) -> f64 {
    if samples.iter().any(|s| s.1.is_nan()) {
        return f64::NAN;
    }
    fill_values(scratch, samples);
    let median = quantile(0.5, scratch);
    scratch.iter_mut().for_each(|v| *v = (*v - median).abs());
    quantile(0.5, scratch)
}

fn fill_values(scratch: &mut Vec<f64>, samples: &[(i64, f64)]) {
    scratch.clear();
    scratch.extend(samples.iter().map(|s| s.1));
}

/// `double_exponential_smoothing` (Holt's linear method, formerly
/// `holt_winters`). The factors are checked before the sample count, as in
/// Prometheus, so a bad factor fails the query even for a short window.
fn double_exponential_smoothing(
    samples: &[(i64, f64)],
    sf: f64,
    tf: f64,
) -> Option<Result<f64, String>> {
    // Written so that NaN factors pass, as they do in Prometheus.
    if sf <= 0.0 || sf >= 1.0 {
        return Some(Err(notes::invalid_smoothing_factor(sf)));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Some(Err(notes::invalid_trend_factor(tf)));
    }
    if samples.len() < 2 {
        return None;
    }
    let (mut previous, mut smoothed) = (0.0, samples[0].1);
    let mut trend = samples[1].1 - samples[0].1;
    for (i, &(_, v)) in samples.iter().enumerate().skip(1) {
        // The first step keeps the initial trend.
        if i > 1 {
            trend = tf * (smoothed - previous) + (1.0 - tf) * trend;
        }
        let next = sf * v + (1.0 - sf) * (smoothed + trend);
        previous = smoothed;
        smoothed = next;
    }
    Some(Ok(smoothed))
}

/// A Kahan sum in progress: `(sum, compensation)`.
type Kahan = (f64, f64);

const KAHAN_ZERO: Kahan = (0.0, 0.0);

/// Adds `inc` with Neumaier's variant of Kahan summation. Once the sum is
/// infinite the compensation is dropped, so that `sum + c` stays infinite
/// instead of becoming NaN.
fn kahan_inc(inc: f64, (sum, c): Kahan) -> Kahan {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

// ---------------------------------------------------------------------------
// Element-wise functions
// ---------------------------------------------------------------------------

/// A function applied to each float of an instant vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstantFunction {
    /// `abs`
    Abs,
    /// `ceil`
    Ceil,
    /// `floor`
    Floor,
    /// `exp`
    Exp,
    /// `ln`
    Ln,
    /// `log2`
    Log2,
    /// `log10`
    Log10,
    /// `sqrt`
    Sqrt,
    /// `round(v, to_nearest=1)`
    Round,
    /// `sgn`
    Sgn,
    /// `clamp(v, min, max)`
    Clamp,
    /// `clamp_min(v, min)`
    ClampMin,
    /// `clamp_max(v, max)`
    ClampMax,
    /// `sin`
    Sin,
    /// `cos`
    Cos,
    /// `tan`
    Tan,
    /// `asin`
    Asin,
    /// `acos`
    Acos,
    /// `atan`
    Atan,
    /// `sinh`
    Sinh,
    /// `cosh`
    Cosh,
    /// `tanh`
    Tanh,
    /// `asinh`
    Asinh,
    /// `acosh`
    Acosh,
    /// `atanh`
    Atanh,
    /// `deg`
    Deg,
    /// `rad`
    Rad,
    /// `year`
    Year,
    /// `month`
    Month,
    /// `day_of_month`
    DayOfMonth,
    /// `day_of_year`
    DayOfYear,
    /// `day_of_week`
    DayOfWeek,
    /// `days_in_month`
    DaysInMonth,
    /// `hour`
    Hour,
    /// `minute`
    Minute,
}

/// Every element-wise function with its PromQL name.
const INSTANT_FUNCTIONS: [(&str, InstantFunction); 35] = [
    ("abs", InstantFunction::Abs),
    ("ceil", InstantFunction::Ceil),
    ("floor", InstantFunction::Floor),
    ("exp", InstantFunction::Exp),
    ("ln", InstantFunction::Ln),
    ("log2", InstantFunction::Log2),
    ("log10", InstantFunction::Log10),
    ("sqrt", InstantFunction::Sqrt),
    ("round", InstantFunction::Round),
    ("sgn", InstantFunction::Sgn),
    ("clamp", InstantFunction::Clamp),
    ("clamp_min", InstantFunction::ClampMin),
    ("clamp_max", InstantFunction::ClampMax),
    ("sin", InstantFunction::Sin),
    ("cos", InstantFunction::Cos),
    ("tan", InstantFunction::Tan),
    ("asin", InstantFunction::Asin),
    ("acos", InstantFunction::Acos),
    ("atan", InstantFunction::Atan),
    ("sinh", InstantFunction::Sinh),
    ("cosh", InstantFunction::Cosh),
    ("tanh", InstantFunction::Tanh),
    ("asinh", InstantFunction::Asinh),
    ("acosh", InstantFunction::Acosh),
    ("atanh", InstantFunction::Atanh),
    ("deg", InstantFunction::Deg),
    ("rad", InstantFunction::Rad),
    ("year", InstantFunction::Year),
    ("month", InstantFunction::Month),
    ("day_of_month", InstantFunction::DayOfMonth),
    ("day_of_year", InstantFunction::DayOfYear),
    ("day_of_week", InstantFunction::DayOfWeek),
    ("days_in_month", InstantFunction::DaysInMonth),
    ("hour", InstantFunction::Hour),
    ("minute", InstantFunction::Minute),
];

impl InstantFunction {
    /// The function called `name` in PromQL, if it is handled here.
    pub fn from_name(name: &str) -> Option<Self> {
        INSTANT_FUNCTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    /// Whether `count` scalar arguments (besides the vector) fit the
    /// function.
    pub fn accepts_arity(self, count: usize) -> bool {
        match self {
            InstantFunction::Round => count <= 1,
            InstantFunction::Clamp => count == 2,
            InstantFunction::ClampMin | InstantFunction::ClampMax => count == 1,
            _ => count == 0,
        }
    }

    /// Applies the function to one float; see [`eval_instant`].
    pub fn eval(self, value: f64, args: &[f64]) -> Option<f64> {
        if !self.accepts_arity(args.len()) {
            return None;
        }
        let v = value;
        let result = match self {
            InstantFunction::Abs => v.abs(),
            InstantFunction::Ceil => v.ceil(),
            InstantFunction::Floor => v.floor(),
            InstantFunction::Exp => v.exp(),
            InstantFunction::Ln => go_log(v),
            InstantFunction::Log2 => go_log2(v),
            InstantFunction::Log10 => go_log(v) * LOG10_E,
            InstantFunction::Sqrt => v.sqrt(),
            InstantFunction::Round => round(v, args.first().copied().unwrap_or(1.0)),
            InstantFunction::Sgn => sgn(v),
            InstantFunction::Clamp => clamp(v, args[0], args[1])?,
            InstantFunction::ClampMin => clamp(v, args[0], f64::INFINITY)?,
            InstantFunction::ClampMax => clamp(v, f64::NEG_INFINITY, args[0])?,
            InstantFunction::Sin => v.sin(),
            InstantFunction::Cos => v.cos(),
            InstantFunction::Tan => v.tan(),
            InstantFunction::Asin => v.asin(),
            InstantFunction::Acos => v.acos(),
            InstantFunction::Atan => v.atan(),
            InstantFunction::Sinh => v.sinh(),
            InstantFunction::Cosh => v.cosh(),
            InstantFunction::Tanh => v.tanh(),
            InstantFunction::Asinh => v.asinh(),
            InstantFunction::Acosh => v.acosh(),
            InstantFunction::Atanh => v.atanh(),
            // Multiplied before dividing, as in Prometheus.
            InstantFunction::Deg => v * 180.0 / PI,
            InstantFunction::Rad => v * PI / 180.0,
            InstantFunction::Year => CivilTime::from_go_seconds(v).year as f64,
            InstantFunction::Month => f64::from(CivilTime::from_go_seconds(v).month),
            InstantFunction::DayOfMonth => f64::from(CivilTime::from_go_seconds(v).day),
            InstantFunction::DayOfYear => f64::from(CivilTime::from_go_seconds(v).day_of_year()),
            InstantFunction::DayOfWeek => f64::from(CivilTime::from_go_seconds(v).weekday),
            InstantFunction::DaysInMonth => {
                f64::from(CivilTime::from_go_seconds(v).days_in_month())
            }
            InstantFunction::Hour => f64::from(CivilTime::from_go_seconds(v).hour),
            InstantFunction::Minute => f64::from(CivilTime::from_go_seconds(v).minute),
        };
        Some(result)
    }
}

/// Evaluates an element-wise function of one float: `abs`, `ceil`,
/// `floor`, `exp`, `ln`, `log2`, `log10`, `sqrt`, `round` (`args` =
/// `[to_nearest]` or empty), `sgn`, `clamp` (`[min, max]`), `clamp_min`,
/// `clamp_max`, the trigonometric and hyperbolic functions, `deg`, `rad`,
/// and the date functions `year`, `month`, `day_of_month`, `day_of_year`,
/// `day_of_week`, `days_in_month`, `hour`, `minute`, which read the value as
/// seconds since the epoch, UTC (for `year()` without argument pass the
/// evaluation time in seconds).
///
/// `None` when there is no output for the element: `clamp` with
/// `min > max` (Prometheus returns an empty vector), an unknown name or a
/// wrong argument count.
pub fn eval_instant(name: &str, value: f64, args: &[f64]) -> Option<f64> {
    InstantFunction::from_name(name)?.eval(value, args)
}

/// Whether `name` is an element-wise function handled by [`eval_instant`].
pub fn is_instant_function(name: &str) -> bool {
    InstantFunction::from_name(name).is_some()
}

/// `round`: ties go up. Dividing by the inverse of `to_nearest` rather than
/// multiplying by `to_nearest` is Prometheus's choice (fewer surprises such
/// as `round(2.3, 0.1)` = 2.3000000000000003).
fn round(v: f64, to_nearest: f64) -> f64 {
    let inverse = 1.0 / to_nearest;
    (v * inverse + 0.5).floor() / inverse
}

/// `sgn`: -1, 1, or the value itself for zeros and NaN.
fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v
    }
}

/// `clamp`: nothing when the bounds cross; NaN bounds make NaN.
fn clamp(v: f64, min: f64, max: f64) -> Option<f64> {
    if max < min {
        return None;
    }
    Some(go_max(min, go_min(max, v)))
}

/// Go's `math.Max`: +Inf wins even over NaN, then NaN wins, and +0 beats -0.
fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        f64::INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && x == y {
        if x.is_sign_negative() {
            y
        } else {
            x
        }
    } else if x > y {
        x
    } else {
        y
    }
}

/// Go's `math.Min`: -Inf wins even over NaN, then NaN wins, and -0 beats +0.
fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && x == y {
        if x.is_sign_negative() {
            x
        } else {
            y
        }
    } else if x < y {
        x
    } else {
        y
    }
}

/// Go's `math.Log` as amd64 computes it (the fdlibm reduction and
/// polynomial, in the same order). Using it keeps `ln`, and Go's `log2`
/// and `log10` built on it, bit-identical to Prometheus's results, which
/// glibc's `log` is not always (nor for subnormals, which amd64 Go
/// misreads: `ln(5e-324)` is -709.09 there, and here).
fn go_log(x: f64) -> f64 {
    // fdlibm's constants, by their bits.
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
    const L1: f64 = f64::from_bits(0x3FE5_5555_5555_5593);
    const L2: f64 = f64::from_bits(0x3FD9_9999_9997_FA04);
    const L3: f64 = f64::from_bits(0x3FD2_4924_9422_9359);
    const L4: f64 = f64::from_bits(0x3FCC_71C5_1D8E_78AF);
    const L5: f64 = f64::from_bits(0x3FC7_4664_96CB_03DE);
    const L6: f64 = f64::from_bits(0x3FC3_9A09_D078_C69F);
    const L7: f64 = f64::from_bits(0x3FC2_F112_DF3E_5244);
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x < 0.0 {
        return f64::NAN;
    }
    // amd64 splits the bits directly, without normalising subnormals.
    let bits = x.to_bits();
    let mut fraction = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FE0_0000_0000_0000);
    let mut k = (((bits >> 52) & 0x7FF) as i32 - 0x3FE) as f64;
    if fraction <= SQRT_2 / 2.0 {
        fraction *= 2.0;
        k -= 1.0;
    }
    let f = fraction - 1.0;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s2 * (L1 + s4 * (L3 + s4 * (L5 + s4 * L7)));
    let t2 = s4 * (L2 + s4 * (L4 + s4 * L6));
    let r = t1 + t2;
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

/// Go's `math.Log2`: exact for powers of two, else `Log(frac)/ln 2 + exp`.
fn go_log2(x: f64) -> f64 {
    let (fraction, exponent) = frexp(x);
    if fraction == 0.5 {
        return f64::from(exponent - 1);
    }
    go_log(fraction) * LOG2_E + f64::from(exponent)
}

/// Splits `x` into a fraction in `[0.5, 1)` and a power of two, like Go's
/// `math.Frexp` (zeros, infinities and NaN come back unchanged with 0).
fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || x.is_infinite() || x.is_nan() {
        return (x, 0);
    }
    let (x, mut exponent) = if x.abs() < f64::MIN_POSITIVE {
        (x * (1u64 << 52) as f64, -52)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    exponent += ((bits >> 52) & 0x7FF) as i32 - 1022;
    let fraction = f64::from_bits((bits & !(0x7FF << 52)) | (1022 << 52));
    (fraction, exponent)
}

// ---------------------------------------------------------------------------
// Calendar
// ---------------------------------------------------------------------------

/// Seconds from Go's absolute zero (January 1 of year -292277022399) to the
/// Unix epoch. Go adds it to Unix seconds in int64 and reads the result as
/// uint64, so times outside that range wrap around.
const UNIX_TO_ABSOLUTE_SECONDS: i128 = 9_223_372_028_715_321_600;

/// The calendar fields the date functions read, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CivilTime {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    /// Sunday = 0.
    weekday: u8,
}

impl CivilTime {
    /// What Go's `time.Unix(int64(v), 0).UTC()` holds: the float is
    /// truncated towards zero, NaN and out-of-range values become
    /// `i64::MIN` (amd64's conversion), and the seconds wrap as in Go's
    /// absolute time, so `year(vector(NaN))` is 292277026596 as there.
    fn from_go_seconds(v: f64) -> Self {
        let seconds = i128::from(go_float_to_int(v));
        let absolute = (seconds + UNIX_TO_ABSOLUTE_SECONDS).rem_euclid(1 << 64);
        Self::from_unix_seconds(absolute - UNIX_TO_ABSOLUTE_SECONDS)
    }

    fn from_unix_seconds(seconds: i128) -> Self {
        let days = seconds.div_euclid(86_400);
        let of_day = seconds.rem_euclid(86_400);
        let (year, month, day) = crate::clock::civil_from_days(days);
        CivilTime {
            year,
            month,
            day,
            hour: (of_day / 3600) as u8,
            minute: (of_day % 3600 / 60) as u8,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u8,
        }
    }

    fn day_of_year(self) -> u16 {
        const BEFORE_MONTH: [u16; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let leap_day = u16::from(self.month > 2 && is_leap_year(self.year));
        BEFORE_MONTH[usize::from(self.month - 1)] + leap_day + u16::from(self.day)
    }

    fn days_in_month(self) -> u8 {
        match self.month {
            2 if is_leap_year(self.year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Go's float-to-int64 conversion on amd64: truncation, and `i64::MIN` for
/// NaN and anything out of range.
fn go_float_to_int(v: f64) -> i64 {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if v.is_nan() || !(-LIMIT..LIMIT).contains(&v) {
        i64::MIN
    } else {
        v.trunc() as i64
    }
}

// ---------------------------------------------------------------------------
// Quantiles
// ---------------------------------------------------------------------------

/// What `histogram_quantile` had to repair in the buckets it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QuantileNotes {
    /// Some bucket counted fewer observations than a lower one and was
    /// raised to it. Prometheus reports
    /// [`notes::forced_monotonicity`] then.
    pub forced_monotonic: bool,
    /// Some neighbouring counts differed by a relative 1e-12 or less and
    /// were made equal; likely float noise, and Prometheus reports nothing.
    pub fixed_small_deltas: bool,
    /// The lowest upper bound whose count was raised (`+Inf` if none).
    pub min_bucket: f64,
    /// The highest upper bound whose count was raised (`-Inf` if none).
    pub max_bucket: f64,
    /// The largest raise (0 if none).
    pub max_diff: f64,
}

/// Relative differences up to this between neighbouring bucket counts are
/// float noise (e.g. from sharded sums) and are evened out silently.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// `histogram_quantile` over the classic buckets of one series group.
///
/// `buckets` are `(upper bound le, cumulative count)` in any order. For φ
/// in `[0, 1]` they are sorted (stably), merged where an upper bound
/// repeats (`le="0.2"` and `le="2e-1"`, counts added) and repaired in
/// place, and the Vec is left holding the merged buckets, so calling again
/// for another φ gives that φ's result. Then:
/// φ NaN → NaN, φ < 0 → -Inf, φ > 1 → +Inf (checked before anything else);
/// no `+Inf` bucket, fewer than 2 buckets or no observations → NaN;
/// otherwise linear interpolation inside the bucket holding rank
/// `φ × count`, from 0 in the lowest bucket if its bound is positive (its
/// bound itself if not), and the second-highest bound if the rank falls in
/// the `+Inf` bucket.
pub fn histogram_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, QuantileNotes) {
    let mut notes = QuantileNotes {
        min_bucket: f64::INFINITY,
        max_bucket: f64::NEG_INFINITY,
        ..QuantileNotes::default()
    };
    if q.is_nan() {
        return (f64::NAN, notes);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, notes);
    }
    if q > 1.0 {
        return (f64::INFINITY, notes);
    }
    if !prepare_buckets(buckets) {
        return (f64::NAN, notes);
    }
    ensure_monotonic(buckets, &mut notes);
    let n = buckets.len();
    let observations = buckets[n - 1].1;
    if n < 2 || observations == 0.0 {
        return (f64::NAN, notes);
    }
    let mut rank = q * observations;
    // The first bucket (the +Inf one excluded) holding the rank.
    let b = go_search(n - 1, |i| buckets[i].1 >= rank);
    let value = if b == n - 1 {
        buckets[n - 2].0
    } else if b == 0 && buckets[0].0 <= 0.0 {
        buckets[0].0
    } else {
        let (bucket_end, mut count) = buckets[b];
        let mut bucket_start = 0.0;
        if b > 0 {
            bucket_start = buckets[b - 1].0;
            count -= buckets[b - 1].1;
            rank -= buckets[b - 1].1;
        }
        bucket_start + (bucket_end - bucket_start) * (rank / count)
    };
    (value, notes)
}

/// `histogram_fraction(lower, upper, buckets)` over classic buckets: the
/// share of observations between the bounds, interpolating linearly inside
/// buckets (not into the infinite-width ones). NaN without a `+Inf` bucket,
/// without observations or with a NaN bound; 0 when `lower >= upper`.
/// Unlike `histogram_quantile`, Prometheus does not repair monotonicity
/// here. `buckets` are sorted and merged in place.
pub fn histogram_fraction(lower: f64, upper: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if !prepare_buckets(buckets) {
        return f64::NAN;
    }
    let count = buckets[buckets.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let mut rank = 0.0;
    let (mut lower_rank, mut upper_rank) = (None, None);
    // Positive buckets only start at 0; otherwise the lowest one is open.
    let mut lower_bound = if buckets[0].0 <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, &(upper_bound, bucket_count)) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].0;
        }
        let rank_at = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                bucket_count
            } else {
                rank + (bucket_count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        for (rank_of, bound) in [(&mut lower_rank, lower), (&mut upper_rank, upper)] {
            if rank_of.is_none() && lower_bound >= bound {
                *rank_of = Some(rank);
            }
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        for (rank_of, bound) in [(&mut lower_rank, lower), (&mut upper_rank, upper)] {
            if rank_of.is_none() && lower_bound < bound && upper_bound > bound {
                *rank_of = Some(rank_at(bound));
            }
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        rank = bucket_count;
    }
    let capped = |r: Option<f64>| match r {
        Some(r) if r > count => count,
        Some(r) => r,
        None => count,
    };
    (capped(upper_rank) - capped(lower_rank)) / count
}

/// Go's `sort.Search`: the first index in `0..n` for which `at_or_after`
/// holds, bisecting exactly as Go does, so that even counts that are not
/// monotonic (NaN) pick the same bucket.
fn go_search(n: usize, at_or_after: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, n);
    while low < high {
        let middle = low + (high - low) / 2;
        if at_or_after(middle) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    low
}

/// Sorts the buckets by upper bound and merges repeated bounds; false when
/// there are none or the highest is not `+Inf`. The sort is stable, as Go's
/// is for the usual dozen buckets, so repeated bounds add up in input order.
fn prepare_buckets(buckets: &mut Vec<(f64, f64)>) -> bool {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return false;
    }
    let mut merged = 0;
    for i in 1..buckets.len() {
        if buckets[i].0 == buckets[merged].0 {
            buckets[merged].1 += buckets[i].1;
        } else {
            merged += 1;
            buckets[merged] = buckets[i];
        }
    }
    buckets.truncate(merged + 1);
    true
}

/// Makes counts non-decreasing: differences within the tolerance are
/// evened out (either way), real decreases are raised to the count below.
/// Neither updates the reference count, so a dip is measured against the
/// last count that was kept.
fn ensure_monotonic(buckets: &mut [(f64, f64)], notes: &mut QuantileNotes) {
    let Some(&(_, mut previous)) = buckets.first() else {
        return;
    };
    for (upper_bound, count) in buckets.iter_mut().skip(1) {
        if *count == previous {
            continue;
        }
        if almost_equal(previous, *count, SMALL_DELTA_TOLERANCE) {
            *count = previous;
            notes.fixed_small_deltas = true;
            continue;
        }
        if *count < previous {
            notes.forced_monotonic = true;
            notes.min_bucket = notes.min_bucket.min(*upper_bound);
            notes.max_bucket = notes.max_bucket.max(*upper_bound);
            notes.max_diff = notes.max_diff.max(previous - *count);
            *count = previous;
            continue;
        }
        previous = *count;
    }
}

/// Prometheus's `almost.Equal`: a relative comparison that also treats two
/// NaNs as equal and compares near zero against the smallest normal.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if (a.is_nan() && b.is_nan()) || a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// The φ-quantile of `values`, as the `quantile` aggregation and
/// `quantile_over_time` compute it: the values are sorted in place (NaN
/// first, as the smallest), and the result interpolates linearly between
/// the values at ranks `⌊φ(n-1)⌋` and the next. NaN for no values or a NaN
/// φ, -Inf for φ < 0, +Inf for φ > 1.
pub fn quantile(phi: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    values.sort_unstable_by(nan_first);
    let n = values.len() as f64;
    let rank = phi * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn nan_first(a: &f64, b: &f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// Parses an `le` label value the way Go's `strconv.ParseFloat` does for
/// the forms that occur in labels: decimal numbers (also `.5`, `5.`,
/// `1e-3`, `1_000`), `NaN`, and `Inf`/`Infinity` with an optional sign, all
/// case-insensitive. `None` where Go fails, including finite literals that
/// overflow; the evaluator then reports [`notes::bad_bucket_label`].
/// Hexadecimal floats (`0x1p-3`), which Go also reads, are not supported.
pub fn parse_bucket_bound(text: &str) -> Option<f64> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if text.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    if !unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let value: f64 = if unsigned.contains('_') {
        if !underscores_separate_digits(unsigned) {
            return None;
        }
        unsigned.replace('_', "").parse().ok()?
    } else {
        unsigned.parse().ok()?
    };
    // Go reports overflow as an error; Rust's parser rounds to infinity.
    if value.is_infinite() {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// Go's rule for `_` in number literals: only between two digits.
fn underscores_separate_digits(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'_'
            || (i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    })
}

// ---------------------------------------------------------------------------
// Go's text formatting, for identical messages
// ---------------------------------------------------------------------------

/// Go's `%g` (`precision` None: shortest round-trip digits) or `%.Ng`.
fn go_format_g(v: f64, precision: Option<usize>) -> String {
    if let Some(special) = go_special_float(v) {
        return special.to_string();
    }
    let (digits, point) = decimal_digits(v.abs(), precision);
    let nd = digits.len() as i32;
    let mut prec = precision.map_or(nd, |p| p.max(1) as i32);
    // The exponent form is used below 1e-4 and from 10^precision on, where
    // the shortest form counts as precision 6.
    let exponent_limit = match precision {
        None => 6,
        Some(_) if prec > nd && nd >= point => nd,
        Some(_) => prec,
    };
    let exponent = point - 1;
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if exponent < -4 || exponent >= exponent_limit {
        prec = prec.min(nd);
        return format!("{sign}{}", go_exponent_form(&digits, point, prec - 1));
    }
    if prec > point {
        prec = nd;
    }
    format!(
        "{sign}{}",
        go_fixed_form(&digits, point, (prec - point).max(0))
    )
}

/// Go's `%f`: six decimals.
fn go_format_f6(v: f64) -> String {
    go_special_float(v).map_or_else(|| format!("{v:.6}"), str::to_string)
}

fn go_special_float(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// The significant decimal digits of a positive finite `v` (no trailing
/// zeros; none for zero) and the position of the decimal point relative to
/// them, rounded to `precision` digits if given.
fn decimal_digits(v: f64, precision: Option<usize>) -> (Vec<u8>, i32) {
    if v == 0.0 {
        return (Vec::new(), 0);
    }
    let text = match precision {
        None => shortest_scientific(v),
        Some(p) => format!("{:.*e}", p.max(1) - 1, v),
    };
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    (digits, exponent.parse::<i32>().unwrap_or(0) + 1)
}

/// The fewest digits that read back as `v`, in Rust's `{:e}` form. When two
/// such digit strings are equally close to `v` Go takes the even one, which
/// the correctly rounded form of the same length gives; Rust's shortest
/// printer may take the other.
fn shortest_scientific(v: f64) -> String {
    let shortest = format!("{v:e}");
    let digits = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let rounded = format!("{:.*e}", digits.saturating_sub(1), v);
    if rounded.parse::<f64>() == Ok(v) {
        rounded
    } else {
        shortest
    }
}

/// `d.ddde±XX` with `decimals` digits after the point.
fn go_exponent_form(digits: &[u8], point: i32, decimals: i32) -> String {
    let digit = |i: i32| {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .map_or('0', |d| char::from(*d))
    };
    let mut out = String::new();
    out.push(digit(0));
    if decimals > 0 {
        out.push('.');
        (1..=decimals).for_each(|i| out.push(digit(i)));
    }
    let exponent = if digits.is_empty() { 0 } else { point - 1 };
    let sign = if exponent < 0 { '-' } else { '+' };
    out.push_str(&format!("e{sign}{:02}", exponent.abs()));
    out
}

/// `ddd.ddd` with `decimals` digits after the point.
fn go_fixed_form(digits: &[u8], point: i32, decimals: i32) -> String {
    let digit = |i: i32| {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .map_or('0', |d| char::from(*d))
    };
    let mut out = String::new();
    if point > 0 {
        (0..point).for_each(|i| out.push(digit(i)));
    } else {
        out.push('0');
    }
    if decimals > 0 {
        out.push('.');
        (0..decimals).for_each(|i| out.push(digit(point + i)));
    }
    out
}

/// Go's `%q` of a string: double quotes, backslash escapes for quotes,
/// backslashes and control characters, printable characters kept.
fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)))
            }
            c if !is_go_printable(c) && u32::from(c) < 0x10000 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)))
            }
            c if !is_go_printable(c) => out.push_str(&format!("\\U{:08x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint` for the characters that occur in practice:
/// controls, spaces other than U+0020, format characters and private-use
/// characters are not printable. (Unassigned code points, which Go also
/// escapes, are taken as printable: Rust has no Unicode tables for them.)
fn is_go_printable(c: char) -> bool {
    !(c.is_control()
        || matches!(
            c,
            '\u{a0}'
                | '\u{ad}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{1680}'
                | '\u{180e}'
                | '\u{2000}'..='\u{200f}'
                | '\u{2028}'..='\u{202f}'
                | '\u{205f}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{3000}'
                | '\u{e000}'..='\u{f8ff}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{f0000}'..
        ))
}

/// Go's RFC 3339 rendering of a UTC Unix time, e.g. `2006-01-02T15:04:05Z`.
fn rfc3339_utc(unix_seconds: i64) -> String {
    let t = CivilTime::from_unix_seconds(i128::from(unix_seconds));
    let second = unix_seconds.rem_euclid(60);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, second
    )
}

/// The texts of the annotations (warnings and infos) and errors Prometheus
/// attaches to these functions, word for word, for the evaluator to report.
/// They are the texts without the ` (line:col)` position Prometheus's HTTP
/// API appends; add it with [`notes::with_position`]. `promqltest`'s `expect warn
/// msg:` compares against the text without it.
pub mod notes {
    use super::{go_format_f6, go_format_g, go_quote, rfc3339_utc, QuantileNotes};

    /// For `rate`/`increase` over a metric whose name fails
    /// [`super::is_counter_name`].
    pub fn possible_non_counter(metric: &str) -> String {
        format!(
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {}",
            go_quote(metric)
        )
    }

    /// For `rate`/`increase` when type-and-unit labels are enabled and the
    /// `__type__` label (here `type_label`, possibly empty) is neither
    /// `counter` nor `histogram`.
    pub fn possible_non_counter_label(metric: &str, type_label: &str) -> String {
        format!(
            "PromQL info: metric might not be a counter, __type__ label is not set to \"counter\" or \"histogram\", got {}: {}",
            go_quote(type_label),
            go_quote(metric)
        )
    }

    /// For a φ outside `[0, 1]` (or NaN) in `quantile`,
    /// `quantile_over_time`, `histogram_quantile`.
    pub fn invalid_quantile(q: f64) -> String {
        format!(
            "PromQL warning: quantile value should be between 0 and 1, got {}",
            go_format_g(q, None)
        )
    }

    /// For a `limit_ratio` ratio outside `[-1, 1]`, capped to `capped_to`.
    pub fn invalid_ratio(ratio: f64, capped_to: f64) -> String {
        format!(
            "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {}",
            go_format_g(ratio, None),
            go_format_g(capped_to, None)
        )
    }

    /// For a bucket series whose `le` label is missing (`label_value` "")
    /// or fails [`super::parse_bucket_bound`]. `metric` may be empty: with
    /// delayed name removal off, Prometheus passes no name and the
    /// ` for metric name` part is left out.
    pub fn bad_bucket_label(label_value: &str, metric: &str) -> String {
        with_metric_name(
            format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of {}",
                go_quote(label_value)
            ),
            metric,
        )
    }

    /// For `histogram_quantile` when [`QuantileNotes::forced_monotonic`].
    /// Prometheus passes the metric name only with delayed name removal on;
    /// otherwise pass "". This is the text annotations are deduplicated by;
    /// the HTTP API prints [`ForcedMonotonicity::render`].
    pub fn forced_monotonicity(metric: &str) -> String {
        with_metric_name(
            "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)"
                .to_string(),
            metric,
        )
    }

    /// For `sort`/`sort_desc` in a range query.
    pub fn sort_in_range_query() -> String {
        "PromQL warning: sort is ineffective for range queries since results are always ordered by labels".to_string()
    }

    /// The query error of `double_exponential_smoothing` for a smoothing
    /// factor outside `(0, 1)`; Go prints the factor with `%f`
    /// (`got: 1.500000`).
    pub fn invalid_smoothing_factor(sf: f64) -> String {
        format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
            go_format_f6(sf)
        )
    }

    /// The query error of `double_exponential_smoothing` for a trend factor
    /// outside `(0, 1)`.
    pub fn invalid_trend_factor(tf: f64) -> String {
        format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {}",
            go_format_f6(tf)
        )
    }

    /// `message (line:col)`: how Prometheus's API prints an annotation,
    /// `start` being the byte offset in `query` of the expression the
    /// annotation is about (for functions, usually their first argument).
    pub fn with_position(message: &str, query: &str, start: usize) -> String {
        format!("{message} ({})", position(query, start))
    }

    /// `line:col` of a byte offset, both counted from 1 as Prometheus does.
    fn position(query: &str, start: usize) -> String {
        if query.is_empty() {
            return "unknown position".to_string();
        }
        let Some(before) = query.as_bytes().get(..start) else {
            return "invalid position".to_string();
        };
        let last_break = before.iter().rposition(|&b| b == b'\n');
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let column = last_break.map_or(start + 1, |at| start - at);
        format!("{line}:{column}")
    }

    fn with_metric_name(message: String, metric: &str) -> String {
        if metric.is_empty() {
            message
        } else {
            format!("{message} for metric name {}", go_quote(metric))
        }
    }

    /// The forced-monotonicity fixes of one annotation, merged over steps
    /// and series as Prometheus merges them: the earliest and latest
    /// evaluation time, the extreme bucket bounds, the largest raise, and
    /// how many fixes there were.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ForcedMonotonicity {
        min_ts_ms: i64,
        max_ts_ms: i64,
        min_bucket: f64,
        max_bucket: f64,
        max_diff: f64,
        occurrences: usize,
    }

    impl ForcedMonotonicity {
        /// One fix, at evaluation time `ts_ms`.
        pub fn new(ts_ms: i64, fix: &QuantileNotes) -> Self {
            ForcedMonotonicity {
                min_ts_ms: ts_ms,
                max_ts_ms: ts_ms,
                min_bucket: fix.min_bucket,
                max_bucket: fix.max_bucket,
                max_diff: fix.max_diff,
                occurrences: 1,
            }
        }

        /// Folds in another fix reported under the same text.
        pub fn merge(&mut self, other: &ForcedMonotonicity) {
            self.min_ts_ms = self.min_ts_ms.min(other.min_ts_ms);
            self.max_ts_ms = self.max_ts_ms.max(other.max_ts_ms);
            self.min_bucket = self.min_bucket.min(other.min_bucket);
            self.max_bucket = self.max_bucket.max(other.max_bucket);
            self.max_diff = self.max_diff.max(other.max_diff);
            self.occurrences += other.occurrences;
        }

        /// The text Prometheus's API prints for the merged fixes, with the
        /// `line:col` position of `histogram_quantile`'s bucket argument.
        pub fn render(&self, metric: &str, query: &str, start: usize) -> String {
            format!(
                "{}, from buckets {} to {}, with a max diff of {}, over {} samples from {} to {} ({})",
                forced_monotonicity(metric),
                go_format_g(self.min_bucket, None),
                go_format_g(self.max_bucket, None),
                go_format_g(self.max_diff, Some(2)),
                self.occurrences,
                rfc3339_utc(self.min_ts_ms / 1000),
                rfc3339_utc(self.max_ts_ms / 1000),
                position(query, start)
            )
        }
    }
}

// Expected values are written as Prometheus's test scripts and Go print them,
// digits the nearest double does not need and constants like ln 10 included.
#[cfg(test)]
#[allow(clippy::excessive_precision, clippy::approx_constant)]
mod tests {
    use super::*;

    /// A range function by name on one window (an unknown name is an error).
    fn eval_range(
        name: &str,
        window: &Window<'_>,
        args: &[f64],
        notes: &mut Annotations,
    ) -> Option<Result<f64, String>> {
        let Some(function) = RangeFunction::from_name(name) else {
            return Some(Err(format!("unknown range function: {name}")));
        };
        function.eval(window, args, notes, &mut StepScratch::default())
    }

    /// Windows slid over one series share a scratch whose quotients repeat
    /// from step to step: every result must be the bits a fresh scratch
    /// gives, over regular, jittered and gappy scrapes, counters with resets
    /// and gauges, and ranges of whole and fractional seconds.
    #[test]
    fn shared_quotients_change_no_bit() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for series in 0..12 {
            let mut points = Vec::new();
            let (mut t, mut v) = (1_000_000i64, 50.0f64);
            for _ in 0..2000 {
                t += match series % 3 {
                    0 => 15 * SEC,
                    1 => 15 * SEC + (next() % 7) as i64 - 3,
                    _ => 15 * SEC * (1 + (next() % 4 == 0) as i64 * 5),
                };
                v = match next() % 100 {
                    0 => 0.5,
                    n if series % 2 == 0 => v + f64::from(n as u8) * 0.25,
                    n => f64::from(n as u8) - 40.0,
                };
                points.push((t, v));
            }
            let range = [5 * MIN, 5 * MIN + 250][series % 2];
            for name in ["rate", "increase", "delta"] {
                let function = RangeFunction::from_name(name).unwrap();
                let mut shared = StepScratch::default();
                let mut end = 1_000_000 + range;
                while end < t {
                    let lo = points.partition_point(|p| p.0 <= end - range);
                    let hi = points.partition_point(|p| p.0 <= end);
                    let window = Window::new(&points[lo..hi], end - range, end);
                    let mut notes = Annotations::default();
                    let fresh =
                        function.eval(&window, &[], &mut notes, &mut StepScratch::default());
                    let reused = function.eval(&window, &[], &mut notes, &mut shared);
                    assert_eq!(
                        fresh.map(|r| r.map(f64::to_bits)),
                        reused.map(|r| r.map(f64::to_bits)),
                        "{name} over series {series} at {end}"
                    );
                    end += 60 * SEC + (next() % 3) as i64 * 500;
                }
            }
        }
    }

    /// `(le, cumulative count)`.
    type Bucket = (f64, f64);
    /// `(φ, expected quantile)` pairs.
    type QuantileChecks = [(f64, f64); 4];

    const SEC: i64 = 1000;
    const MIN: i64 = 60 * SEC;

    /// A series in promqltest's `load` notation (`0+10x10`, `1 NaN _ 5`,
    /// `8000-10x3`), one value per `interval_ms` from t=0.
    fn load(spec: &str, interval_ms: i64) -> Vec<(i64, f64)> {
        let mut values: Vec<Option<f64>> = Vec::new();
        for token in spec.split_whitespace() {
            match token.rsplit_once('x') {
                Some((head, times))
                    if !head.is_empty() && times.chars().all(|c| c.is_ascii_digit()) =>
                {
                    let times: usize = times.parse().expect("repetition count");
                    if head == "_" {
                        values.extend(std::iter::repeat_n(None, times));
                        continue;
                    }
                    let split = head[1..].find(['+', '-']).map(|i| i + 1);
                    let (start, step) = match split {
                        Some(i) => (number(&head[..i]), number(&head[i..])),
                        None => (number(head), 0.0),
                    };
                    let mut v = start;
                    for _ in 0..=times {
                        values.push(Some(v));
                        v += step;
                    }
                }
                _ if token == "_" => values.push(None),
                _ => values.push(Some(number(token))),
            }
        }
        values
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as i64 * interval_ms, v)))
            .collect()
    }

    fn number(text: &str) -> f64 {
        match text {
            "Inf" | "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            _ => text.parse().expect("a number"),
        }
    }

    /// The samples of `series` in `(end_ms - range_ms, end_ms]`.
    fn window(series: &[(i64, f64)], end_ms: i64, range_ms: i64) -> Window<'_> {
        let from = series.partition_point(|s| s.0 <= end_ms - range_ms);
        let to = series.partition_point(|s| s.0 <= end_ms);
        Window::new(&series[from..to], end_ms - range_ms, end_ms)
    }

    /// `name(series[range])` evaluated at `at_ms`, with `args` and no
    /// offset; panics on a query error.
    fn eval_at(
        name: &str,
        series: &[(i64, f64)],
        at_ms: i64,
        range_ms: i64,
        args: &[f64],
    ) -> Option<f64> {
        eval_window(name, &window(series, at_ms, range_ms), args)
    }

    fn eval_window(name: &str, w: &Window<'_>, args: &[f64]) -> Option<f64> {
        let mut notes = Annotations::default();
        eval_range(name, w, args, &mut notes).map(|r| r.expect("no query error"))
    }

    /// Exact equality, NaN equal to NaN.
    fn assert_same(actual: Option<f64>, expected: f64, what: &str) {
        let actual = actual.unwrap_or_else(|| panic!("{what}: no result, expected {expected}"));
        assert!(
            actual == expected || (actual.is_nan() && expected.is_nan()),
            "{what}: got {actual:?}, expected {expected:?}"
        );
    }

    /// Equality within promqltest's tolerance (relative 1e-6).
    fn assert_close(actual: Option<f64>, expected: f64, what: &str) {
        let actual = actual.unwrap_or_else(|| panic!("{what}: no result, expected {expected}"));
        assert!(
            almost_equal(expected, actual, 1e-6),
            "{what}: got {actual:?}, expected {expected:?}"
        );
    }

    // --- resets and changes (functions.test) ---------------------------------

    #[test]
    fn resets_counts_drops_in_the_window() {
        let foo = load("1 2 3 0 1 0 0 1 2 0", 5 * MIN);
        let bar = load("1 2 3 4 5 1 2 3 4 5", 5 * MIN);
        let biz = load("0 0 0 0 0 1 1 1 1 1", 5 * MIN);
        assert_eq!(eval_at("resets", &foo, 50 * MIN, 5 * MIN, &[]), None);
        for (range, expected) in [
            (10 * MIN, [0.0, 0.0, 0.0]),
            (600 * SEC, [0.0, 0.0, 0.0]),
            (20 * MIN, [1.0, 0.0, 0.0]),
            (30 * MIN, [1.0, 0.0, 0.0]),
            (32 * MIN, [2.0, 1.0, 0.0]),
            (50 * MIN, [3.0, 1.0, 0.0]),
        ] {
            for (series, want) in [&foo, &bar, &biz].into_iter().zip(expected) {
                assert_same(
                    eval_at("resets", series, 50 * MIN, range, &[]),
                    want,
                    "resets",
                );
            }
        }
    }

    #[test]
    fn changes_counts_value_changes_and_not_nan_to_nan() {
        let foo = load("1 2 3 0 1 0 0 1 2 0", 5 * MIN);
        let bar = load("1 2 3 4 5 1 2 3 4 5", 5 * MIN);
        let biz = load("0 0 0 0 0 1 1 1 1 1", 5 * MIN);
        assert_eq!(eval_at("changes", &foo, 50 * MIN, 5 * MIN, &[]), None);
        for (range, expected) in [
            (6 * MIN, [0.0, 0.0, 0.0]),
            (20 * MIN, [2.0, 2.0, 0.0]),
            (30 * MIN, [3.0, 4.0, 0.0]),
            (50 * MIN, [7.0, 8.0, 1.0]),
        ] {
            for (series, want) in [&foo, &bar, &biz].into_iter().zip(expected) {
                assert_same(
                    eval_at("changes", series, 50 * MIN, range, &[]),
                    want,
                    "changes",
                );
            }
        }
        assert_same(
            eval_at(
                "changes",
                &load("NaN NaN NaN", 5 * MIN),
                15 * MIN,
                20 * MIN,
                &[],
            ),
            0.0,
            "NaN NaN NaN",
        );
        assert_same(
            eval_at(
                "changes",
                &load("0 NaN 0", 5 * MIN),
                15 * MIN,
                20 * MIN,
                &[],
            ),
            2.0,
            "0 NaN 0",
        );
    }

    // --- rate, increase, delta ------------------------------------------------

    #[test]
    fn increase_extrapolates_but_not_below_zero() {
        let series = ["0+10x10", "0+18x5 0+18x5", "10+10x10", "1+10x10"].map(|s| load(s, 5 * MIN));
        for (range, expected) in [
            (50 * MIN, [100.0, 160.0, 100.0, 100.0]),
            (100 * MIN, [100.0, 162.0, 105.0, 101.0]),
        ] {
            for (s, want) in series.iter().zip(expected) {
                assert_close(
                    eval_at("increase", s, 50 * MIN, range, &[]),
                    want,
                    "increase",
                );
            }
        }
        // A drop from 3 to 2 counts as a reset to 0 and then 2.
        let reset = load("0 1 2 3 2 3 4", 5 * MIN);
        assert_close(
            eval_at("increase", &reset, 30 * MIN, 30 * MIN, &[]),
            7.0,
            "increase over a reset",
        );
    }

    #[test]
    fn rate_handles_resets_and_needs_two_samples() {
        let middle = load("0+27x4 0+27x5", 5 * MIN);
        assert_close(
            eval_at("rate", &middle, 50 * MIN, 50 * MIN, &[]),
            0.08,
            "reset in the middle",
        );
        let end = load("0+10x9 0 10", 5 * MIN);
        assert_eq!(eval_at("rate", &end, 50 * MIN, 5 * MIN, &[]), None);
        assert_same(
            eval_at("rate", &end, 50 * MIN, 6 * MIN, &[]),
            0.0,
            "reset at the end",
        );
        let window_total = load("0+80x10", 5 * MIN);
        assert_close(
            eval_at("rate", &window_total, 50 * MIN, 50 * MIN, &[]),
            0.266_666_666_666_666_66,
            "per second",
        );
    }

    #[test]
    fn rate_with_offset_uses_the_shifted_window() {
        for (spec, expected) in [
            ("0+10x10", 0.033_333_333_333_333_33),
            ("0+20x10", 0.066_666_666_666_666_67),
        ] {
            let series = load(spec, 5 * MIN);
            // rate(x[10m] offset 5m) at 50m reads (35m, 45m].
            let w = window(&series, 45 * MIN, 10 * MIN).at_eval_time(50 * MIN);
            assert_close(eval_window("rate", &w, &[]), expected, spec);
        }
    }

    #[test]
    fn rate_cuts_left_extrapolation_at_the_zero_point() {
        let starts = [0.0, 60.0, 120.0, 180.0, 240.0, 300.0];
        let at_10m = [0.5, 0.55, 0.6, 0.6, 0.6, 0.6];
        for (start, expected) in starts.into_iter().zip(at_10m) {
            let series = load(&format!("{start}+240x10"), 4 * MIN);
            assert_close(
                eval_at("rate", &series, 10 * MIN, 20 * MIN, &[]),
                expected,
                "zero cutoff at 10m",
            );
            assert_close(
                eval_at("rate", &series, 50 * MIN, 20 * MIN, &[]),
                0.6,
                "half interval at 50m",
            );
        }
    }

    #[test]
    fn delta_extrapolates_gauges_both_ways() {
        let up = load("0 50 100 150 200", 5 * MIN);
        let down = load("200 150 100 50 0", 5 * MIN);
        assert_close(
            eval_at("delta", &up, 20 * MIN, 20 * MIN, &[]),
            200.0,
            "delta up",
        );
        assert_close(
            eval_at("delta", &down, 20 * MIN, 20 * MIN, &[]),
            -200.0,
            "delta down",
        );
    }

    #[test]
    fn range_seconds_follow_go_durations() {
        assert_eq!(duration_seconds(300_000), 300.0);
        assert_eq!(duration_seconds(90_061), 90.0 + 61_000_000.0 / 1e9);
    }

    // --- irate, idelta ----------------------------------------------------------

    #[test]
    fn irate_uses_the_last_two_samples() {
        let foo = load("0+10x10", 5 * MIN);
        let bar = load("0+10x5 0+10x5", 5 * MIN);
        assert_close(
            eval_at("irate", &foo, 50 * MIN, 50 * MIN, &[]),
            1.0 / 30.0,
            "foo at 50m",
        );
        assert_close(
            eval_at("irate", &bar, 50 * MIN, 50 * MIN, &[]),
            1.0 / 30.0,
            "bar at 50m",
        );
        assert_close(
            eval_at("irate", &foo, 30 * MIN, 50 * MIN, &[]),
            1.0 / 30.0,
            "foo at 30m",
        );
        // After the reset the last value (0) is the increase.
        assert_same(
            eval_at("irate", &bar, 30 * MIN, 50 * MIN, &[]),
            0.0,
            "bar at 30m",
        );
    }

    #[test]
    fn irate_and_idelta_pass_nan_through() {
        let series = load("1 NaN NaN 5 11", 5 * MIN);
        let range = 15 * MIN + SEC;
        let steps: Vec<Option<f64>> = (0..=4)
            .map(|i| eval_at("irate", &series, i * 5 * MIN, range, &[]))
            .collect();
        assert_eq!(steps[0], None);
        assert!(steps[1..4].iter().all(|v| v.is_some_and(f64::is_nan)));
        assert_close(steps[4], 0.02, "irate at 20m");
        let steps: Vec<Option<f64>> = (0..=4)
            .map(|i| eval_at("idelta", &series, i * 5 * MIN, range, &[]))
            .collect();
        assert_eq!(steps[0], None);
        assert!(steps[1..4].iter().all(|v| v.is_some_and(f64::is_nan)));
        assert_same(steps[4], 6.0, "idelta at 20m");
    }

    #[test]
    fn idelta_subtracts_the_last_two_samples() {
        assert_same(
            eval_at(
                "idelta",
                &load("0 50 100 150", 5 * MIN),
                20 * MIN,
                20 * MIN,
                &[],
            ),
            50.0,
            "up",
        );
        assert_same(
            eval_at(
                "idelta",
                &load("0 50 100 50", 5 * MIN),
                20 * MIN,
                20 * MIN,
                &[],
            ),
            -50.0,
            "down",
        );
    }

    // --- deriv, predict_linear ----------------------------------------------------

    #[test]
    fn deriv_is_the_regression_slope() {
        let total = load("0+80x10", 5 * MIN);
        assert_close(
            eval_at("deriv", &total, 50 * MIN, 50 * MIN, &[]),
            0.266_666_666_666_666_66,
            "deriv like rate",
        );
        let reset = load("0+10x4 0+10x5", 5 * MIN);
        assert_close(
            eval_at("deriv", &reset, 50 * MIN, 100 * MIN, &[]),
            0.010_606_060_606_060_607,
            "deriv over a reset",
        );
        let inf = load("-Inf 0+80x10 Inf", 5 * MIN);
        assert_same(
            eval_at("deriv", &inf, 100 * MIN, 100 * MIN, &[]),
            f64::NAN,
            "deriv with Inf",
        );
        assert_eq!(eval_at("deriv", &total, 0, MIN, &[]), None);
    }

    #[test]
    fn deriv_of_a_constant_with_jitter_is_exactly_zero() {
        // Prometheus's TestDeriv (issue 7180): two samples of 1, 30s apart.
        let start = 1_493_712_816_939;
        let series = [(start, 1.0), (start + 30_000, 1.0)];
        assert_same(
            eval_at("deriv", &series, 1_493_712_846_939, 30 * MIN, &[]),
            0.0,
            "TestDeriv",
        );
    }

    #[test]
    fn predict_linear_extrapolates_from_the_evaluation_time() {
        let series = load("0+10x4 0+10x5", 5 * MIN);
        assert_close(
            eval_at("predict_linear", &series, 50 * MIN, 50 * MIN, &[3600.0]),
            70.0,
            "at 50m",
        );
        // predict_linear(x[55m] @ 3000, 3600): the window ends at 3000s, the
        // prediction starts from the evaluation time.
        let at_3000 = window(&series, 3000 * SEC, 55 * MIN);
        for (eval_s, expected) in [
            (3000, 76.818_181_818_181_81),
            (600, 51.363_636_363_636_37),
            (4200, 89.545_454_545_454_55),
        ] {
            let w = at_3000.at_eval_time(eval_s * SEC);
            assert_close(
                eval_window("predict_linear", &w, &[3600.0]),
                expected,
                "with @",
            );
        }
        let inf = load("-Inf 0+80x10 Inf", 5 * MIN);
        assert_same(
            eval_at("predict_linear", &inf, 100 * MIN, 100 * MIN, &[6000.0]),
            f64::NAN,
            "with Inf",
        );
    }

    #[test]
    fn predict_linear_matches_deriv_through_the_last_sample() {
        let series = load("0+80x10", 5 * MIN);
        let predicted =
            eval_at("predict_linear", &series, 50 * MIN, 50 * MIN, &[3600.0]).expect("a value");
        let slope = eval_at("deriv", &series, 50 * MIN, 50 * MIN, &[]).expect("a value");
        assert!((predicted - (800.0 + slope * 3600.0)).abs() < 1e-9);
    }

    // --- double_exponential_smoothing -----------------------------------------------

    #[test]
    fn double_exponential_smoothing_follows_trends() {
        let cases = [
            ("0+10x1000 100+30x1000", 8000.0),
            ("0+20x1000 200+30x1000", 16000.0),
            ("0+30x1000 300+80x1000", 24000.0),
            ("0+40x2000", 32000.0),
            ("8000-10x1000", 0.0),
            ("0-20x1000", -16000.0),
            ("0+30x1000 300-80x1000", 24000.0),
            ("0-40x1000 0+40x1000", -32000.0),
        ];
        for (spec, expected) in cases {
            let series = load(spec, 10 * SEC);
            let got = eval_at(
                "double_exponential_smoothing",
                &series,
                8000 * SEC,
                MIN,
                &[0.01, 0.1],
            )
            .expect("a value");
            assert!((got - expected).abs() < 1e-6, "{spec}: {got}");
        }
    }

    #[test]
    fn double_exponential_smoothing_rejects_bad_factors_with_gos_text() {
        let series = load("1 2 3", 10 * SEC);
        let w = window(&series, 20 * SEC, MIN);
        let mut notes = Annotations::default();
        let error = |args: &[f64], notes: &mut Annotations| {
            eval_range("double_exponential_smoothing", &w, args, notes)
        };
        assert_eq!(
            error(&[1.5, 0.5], &mut notes),
            Some(Err(
                "invalid smoothing factor. Expected: 0 < sf < 1, got: 1.500000".to_string()
            ))
        );
        assert_eq!(
            error(&[0.5, 0.0], &mut notes),
            Some(Err(
                "invalid trend factor. Expected: 0 < tf < 1, got: 0.000000".to_string()
            ))
        );
        assert!(
            matches!(error(&[f64::NAN, 0.5], &mut notes), Some(Ok(_))),
            "NaN passes the check"
        );
        // The factors are checked even when there are too few samples.
        let single = window(&series, 0, MIN);
        assert!(matches!(
            eval_range(
                "double_exponential_smoothing",
                &single,
                &[2.0, 0.5],
                &mut notes
            ),
            Some(Err(_))
        ));
        assert_eq!(
            eval_range(
                "double_exponential_smoothing",
                &single,
                &[0.5, 0.5],
                &mut notes
            ),
            None
        );
    }

    // --- *_over_time ------------------------------------------------------------

    #[test]
    fn avg_over_time_handles_infinities_nan_and_overflow() {
        let at = |spec: &str, range: i64| {
            eval_at("avg_over_time", &load(spec, 10 * SEC), 55 * SEC, range, &[])
        };
        assert_eq!(at("1 2 3 4 5", 10 * SEC), None);
        assert_same(at("1 2 3 4 5", 20 * SEC), 5.0, "one sample");
        let cases = [
            ("1 2 3 4 5", 3.0),
            ("1 2 3 4 Inf", f64::INFINITY),
            ("1 2 3 4 -Inf", f64::NEG_INFINITY),
            ("1 2 3 Inf -Inf", f64::NAN),
            ("Inf 0 Inf", f64::INFINITY),
            ("Inf Inf Inf -Inf", f64::NAN),
            ("1 2 3 -Inf -Inf", f64::NEG_INFINITY),
            ("-Inf 0 -Inf", f64::NEG_INFINITY),
            ("-Inf -Inf -Inf Inf", f64::NAN),
            ("1 2 -Inf -Inf Inf", f64::NAN),
            (
                "9.988465674311579e+307 9.988465674311579e+307",
                9.988_465_674_311_579e307,
            ),
            (
                "-9.988465674311579e+307 -9.988465674311579e+307 -9.988465674311579e+307",
                -9.988_465_674_311_579e307,
            ),
            ("-9.988465674311579e+307 9.988465674311579e+307", 0.0),
            ("1 2 3 NaN NaN", f64::NAN),
        ];
        for (spec, expected) in cases {
            assert_same(at(spec, MIN), expected, spec);
        }
        let nan_tail = load("1 2 3 NaN NaN", 10 * SEC);
        assert_same(
            eval_at("avg_over_time", &nan_tail, 20 * SEC, MIN, &[]),
            2.0,
            "before the NaN",
        );
        assert_same(
            eval_at("avg_over_time", &nan_tail, 30 * SEC, MIN, &[]),
            f64::NAN,
            "with the NaN",
        );
    }

    #[test]
    fn sum_over_time_overflows_where_avg_does_not() {
        let at = |spec: &str| eval_at("sum_over_time", &load(spec, 10 * SEC), 55 * SEC, MIN, &[]);
        assert_same(
            at("9.988465674311579e+307 9.988465674311579e+307"),
            f64::INFINITY,
            "overflow",
        );
        assert_same(
            at("-9.988465674311579e+307 -9.988465674311579e+307 -9.988465674311579e+307"),
            f64::NEG_INFINITY,
            "underflow",
        );
        assert_same(at("1 2 3 4 5"), 15.0, "plain");
    }

    #[test]
    fn kahan_summation_keeps_small_values_next_to_huge_ones() {
        let series = load("1 1e100 1 -1e100", 10 * SEC);
        assert_same(
            eval_at("sum_over_time", &series, MIN, 2 * MIN, &[]),
            2.0,
            "sum",
        );
        assert_same(
            eval_at("avg_over_time", &series, MIN, 2 * MIN, &[]),
            0.5,
            "avg",
        );
    }

    #[test]
    fn kahan_inc_keeps_infinities_and_nan() {
        // Prometheus's TestKahanSumInc, both argument orders.
        let cases = [
            (f64::INFINITY, 2.0, f64::INFINITY),
            (f64::NEG_INFINITY, 2.0, f64::NEG_INFINITY),
            (f64::INFINITY, f64::NEG_INFINITY, f64::NAN),
            (f64::NAN, 2.0, f64::NAN),
            (f64::NAN, f64::INFINITY, f64::NAN),
            (f64::NAN, f64::NEG_INFINITY, f64::NAN),
        ];
        for (a, b, expected) in cases {
            for (first, second) in [(a, b), (b, a)] {
                let (sum, c) = kahan_inc(second, (first, 0.0));
                assert_same(Some(sum + c), expected, "kahan");
            }
        }
    }

    #[test]
    fn avg_over_time_of_extreme_magnitudes() {
        let cases = [
            ("1e10 1e-6 1e-6 1e-6 1e-6 1e-6", 1.666_666_666_666_667_5e9),
            ("5.30921651659898 0.961118537914768 1.62091361305318 0.865089463758091 0.323055185914577 0.951811357687154", 1.671_867_445_821_13),
            ("1.78264e50 0.76342771 1.9592258 7.69805412 458.90154", 3.56528e49),
            ("0.76342771 1.9592258 7.69805412 1.78264e50 458.90154", 3.56528e49),
            ("1.78264E+50 0.76342771 1.9592258 2.258E+220 7.69805412 458.90154", 3.763_333_333_333_33e219),
            ("-1.78264E+50 0.76342771 1.9592258 2.258E+220 7.69805412 -458.90154", 3.763_333_333_333_33e219),
            ("-1.78264E+50 0.76342771 1.9592258 -2.258E+220 7.69805412 -458.90154", -3.763_333_333_333_33e219),
            ("-1.78264E+215 0.76342771 1.9592258 2.258E+220 7.69805412 -458.90154", 3.763_303_622_666_67e219),
            ("-1.78264E+215 0.76342771 1.9592258 2.258E+220 7.69805412 1.78264E+215 -458.90154", 3.225_714_285_714_286e219),
            ("-1.78264E+219 0.76342771 1.9592258 2.3757689E+217 -2.3757689E+217 2.258E+220 7.69805412 1.78264E+219 -458.90154", 2.508_888_888_888_889e219),
            ("-2.258E+220 -1.78264E+219 0.76342771 1.9592258 2.3757689E+217 -2.3757689E+217 2.258E+220 7.69805412 1.78264E+219 -458.90154", 0.0),
        ];
        for (spec, expected) in cases {
            assert_close(
                eval_at("avg_over_time", &load(spec, 5 * SEC), 55 * SEC, MIN, &[]),
                expected,
                spec,
            );
        }
    }

    #[test]
    fn avg_over_time_of_a_constant_is_exact() {
        let series = load("52+0x100", 10 * SEC);
        for range in [100, 110, 120, 130] {
            assert_same(
                eval_at("avg_over_time", &series, 10 * MIN, range * SEC, &[]),
                52.0,
                "constant",
            );
        }
    }

    #[test]
    fn sum_over_time_on_dense_samples_respects_the_open_start() {
        let series = load("1+0x4000", 1);
        for range in [
            1000, 1001, 1002, 1003, 2000, 2001, 2002, 2003, 3000, 3001, 3002, 3003,
        ] {
            assert_same(
                eval_at("sum_over_time", &series, 4 * SEC, range, &[]),
                range as f64,
                "dense",
            );
        }
    }

    #[test]
    fn stddev_and_stdvar_are_population_statistics() {
        let series = load("0 8 8 2 3", 10 * SEC);
        assert_close(
            eval_at("stdvar_over_time", &series, MIN, 2 * MIN, &[]),
            10.56,
            "stdvar",
        );
        assert_close(
            eval_at("stddev_over_time", &series, MIN, 2 * MIN, &[]),
            3.249_615,
            "stddev",
        );
        // Issue 4927: a constant must give exactly 0.
        let constant = load(
            "1.5990505637277868 1.5990505637277868 1.5990505637277868",
            10 * SEC,
        );
        assert_same(
            eval_at("stdvar_over_time", &constant, 55 * SEC, MIN, &[]),
            0.0,
            "stdvar constant",
        );
        assert_same(
            eval_at("stddev_over_time", &constant, 55 * SEC, MIN, &[]),
            0.0,
            "stddev constant",
        );
    }

    #[test]
    fn mad_over_time_is_the_median_absolute_deviation() {
        let at = |spec: &str, at_s: i64, range_s: i64| {
            eval_at(
                "mad_over_time",
                &load(spec, 10 * SEC),
                at_s * SEC,
                range_s * SEC,
                &[],
            )
        };
        assert_same(at("4 6 2 1 999 1 2", 70, 70), 1.0, "outlier");
        assert_same(at("1 2 3 4 5", 40, 50), 1.0, "odd count");
        assert_same(at("7 7 7 7 7", 40, 50), 0.0, "all equal");
        assert_same(at("5", 0, 10), 0.0, "single");
        assert_same(at("1 2 NaN 4", 30, 40), f64::NAN, "NaN");
    }

    #[test]
    fn ts_of_functions_return_seconds() {
        let interval = 10 * SEC + 53;
        let series = load("1 2 3 0 5 6 2 1 4", interval);
        assert_same(
            eval_at("ts_of_min_over_time", &series, 90 * SEC, 90 * SEC, &[]),
            30.159,
            "min",
        );
        assert_same(
            eval_at("ts_of_max_over_time", &series, 90 * SEC, 90 * SEC, &[]),
            50.265,
            "max",
        );
        let last = load("1 2 3 _ _", interval);
        assert_same(
            eval_at("ts_of_last_over_time", &last, 90 * SEC, 90 * SEC, &[]),
            20.106,
            "last",
        );
        assert_same(
            eval_at("ts_of_last_over_time", &last, 95 * SEC, 90 * SEC, &[]),
            20.106,
            "last later",
        );
        let first = load("_ _ 1 2 3 _ _", interval);
        assert_same(
            eval_at("ts_of_first_over_time", &first, 90 * SEC, 90 * SEC, &[]),
            20.106,
            "first",
        );
        assert_eq!(
            eval_at("ts_of_first_over_time", &first, 15 * SEC, 90 * SEC, &[]),
            None
        );
    }

    #[test]
    fn ts_of_extremes_take_the_last_tie_and_skip_nan() {
        let series = [
            (1000, 3.0),
            (2000, 1.0),
            (3000, 3.0),
            (4000, 1.0),
            (5000, f64::NAN),
        ];
        let w = Window::new(&series, 0, 5000);
        assert_same(eval_window("ts_of_max_over_time", &w, &[]), 3.0, "max tie");
        assert_same(eval_window("ts_of_min_over_time", &w, &[]), 4.0, "min tie");
        let all_nan = [(1000, f64::NAN), (2000, f64::NAN)];
        assert_same(
            eval_window("ts_of_max_over_time", &Window::new(&all_nan, 0, 2000), &[]),
            2.0,
            "all NaN",
        );
    }

    #[test]
    fn over_time_table_with_nan() {
        let specs = [
            "2 0 3",
            "2 0 NaN",
            "2 NaN 1",
            "NaN 0 1",
            "NaN NaN NaN",
            "_ 5 2 _ 4 _",
        ];
        let expected: [(&str, [f64; 6]); 5] = [
            ("min_over_time", [0.0, 0.0, 1.0, 0.0, f64::NAN, 2.0]),
            ("max_over_time", [3.0, 2.0, 2.0, 1.0, f64::NAN, 5.0]),
            ("last_over_time", [3.0, f64::NAN, 1.0, 1.0, f64::NAN, 4.0]),
            ("first_over_time", [2.0, 2.0, 2.0, f64::NAN, f64::NAN, 5.0]),
            ("count_over_time", [3.0; 6]),
        ];
        for (name, values) in expected {
            for (spec, want) in specs.iter().zip(values) {
                let series = load(spec, 10 * SEC);
                assert_same(
                    eval_at(name, &series, MIN, 2 * MIN, &[]),
                    want,
                    &format!("{name}({spec})"),
                );
            }
        }
        let one = load("7", 10 * SEC);
        assert_same(
            eval_at("present_over_time", &one, 0, 30 * SEC, &[]),
            1.0,
            "present",
        );
        assert_eq!(eval_at("present_over_time", &one, MIN, 30 * SEC, &[]), None);
    }

    #[test]
    fn quantile_over_time_interpolates_and_warns_out_of_range() {
        let series = ["0 1", "0 1 2", "0 1 4"].map(|s| load(s, 10 * SEC));
        let table = [
            (0.0, [0.0, 0.0, 0.0]),
            (0.5, [0.5, 1.0, 1.0]),
            (0.75, [0.75, 1.5, 2.5]),
            (0.8, [0.8, 1.6, 2.8]),
            (1.0, [1.0, 2.0, 4.0]),
            (-1.0, [f64::NEG_INFINITY; 3]),
            (2.0, [f64::INFINITY; 3]),
        ];
        for (phi, expected) in table {
            for (s, want) in series.iter().zip(expected) {
                let mut notes = Annotations::default();
                let got = eval_range(
                    "quantile_over_time",
                    &window(s, MIN, 2 * MIN),
                    &[phi],
                    &mut notes,
                );
                assert_close(
                    got.map(|r| r.expect("no error")),
                    want,
                    "quantile_over_time",
                );
                let warned = !(0.0..=1.0).contains(&phi);
                assert_eq!(notes.warnings.len(), usize::from(warned));
                assert!(notes.infos.is_empty());
            }
        }
        let mut notes = Annotations::default();
        eval_range(
            "quantile_over_time",
            &window(&series[0], MIN, 2 * MIN),
            &[1.5],
            &mut notes,
        );
        assert_eq!(
            notes.warnings,
            ["PromQL warning: quantile value should be between 0 and 1, got 1.5"]
        );
    }

    #[test]
    fn range_functions_reject_wrong_arity_and_unknown_names() {
        let series = load("1 2", 10 * SEC);
        let w = window(&series, 10 * SEC, MIN);
        let mut notes = Annotations::default();
        assert!(matches!(
            eval_range("quantile_over_time", &w, &[], &mut notes),
            Some(Err(_))
        ));
        assert!(matches!(
            eval_range("rate", &w, &[1.0], &mut notes),
            Some(Err(_))
        ));
        assert!(matches!(
            eval_range("nope", &w, &[], &mut notes),
            Some(Err(_))
        ));
        assert!(is_range_function("mad_over_time") && !is_range_function("abs"));
        for (name, function) in RANGE_FUNCTIONS {
            assert_eq!(RangeFunction::from_name(name), Some(function));
            assert_eq!(function.name(), name);
        }
    }

    #[test]
    fn empty_windows_yield_nothing() {
        let w = Window::new(&[], 0, MIN);
        let mut notes = Annotations::default();
        for (name, function) in RANGE_FUNCTIONS {
            let args = vec![0.5; function.scalar_arity()];
            assert_eq!(eval_range(name, &w, &args, &mut notes), None, "{name}");
        }
    }

    // --- element-wise functions ----------------------------------------------------

    fn instant(name: &str, v: f64, args: &[f64]) -> Option<f64> {
        eval_instant(name, v, args)
    }

    #[test]
    fn abs_ceil_floor_round_table() {
        let inputs = [
            2.5,
            2.0,
            -2.5,
            -2.0,
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let table: [(&str, [f64; 9]); 4] = [
            (
                "abs",
                [
                    2.5,
                    2.0,
                    2.5,
                    2.0,
                    0.0,
                    0.0,
                    f64::INFINITY,
                    f64::INFINITY,
                    f64::NAN,
                ],
            ),
            (
                "ceil",
                [
                    3.0,
                    2.0,
                    -2.0,
                    -2.0,
                    0.0,
                    0.0,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::NAN,
                ],
            ),
            (
                "floor",
                [
                    2.0,
                    2.0,
                    -3.0,
                    -2.0,
                    0.0,
                    0.0,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::NAN,
                ],
            ),
            (
                "round",
                [
                    3.0,
                    2.0,
                    -2.0,
                    -2.0,
                    0.0,
                    0.0,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::NAN,
                ],
            ),
        ];
        for (name, expected) in table {
            for (v, want) in inputs.into_iter().zip(expected) {
                assert_same(instant(name, v, &[]), want, &format!("{name}({v})"));
            }
        }
    }

    #[test]
    fn round_to_nearest_uses_the_inverse() {
        assert_same(instant("round", 2.3, &[0.1]), 2.3, "0.1");
        assert_same(instant("round", 5.0, &[10.0]), 10.0, "tie up");
        assert_same(instant("round", -5.0, &[10.0]), 0.0, "negative tie up");
        assert_same(instant("round", 1.0, &[0.0]), f64::NAN, "to zero");
        assert_eq!(instant("round", 1.0, &[1.0, 2.0]), None);
    }

    #[test]
    fn clamp_family() {
        let inputs = [-50.0, 0.0, 100.0];
        for (v, want) in inputs.into_iter().zip([-50.0, 0.0, 75.0]) {
            assert_same(instant("clamp_max", v, &[75.0]), want, "clamp_max");
        }
        for (v, want) in inputs.into_iter().zip([-25.0, 0.0, 100.0]) {
            assert_same(instant("clamp_min", v, &[-25.0]), want, "clamp_min");
        }
        for (v, want) in inputs.into_iter().zip([-25.0, 0.0, 75.0]) {
            assert_same(instant("clamp", v, &[-25.0, 75.0]), want, "clamp");
        }
        for v in inputs {
            assert_same(instant("clamp", v, &[0.0, f64::NAN]), f64::NAN, "NaN max");
            assert_same(instant("clamp", v, &[f64::NAN, 0.0]), f64::NAN, "NaN min");
            assert_eq!(instant("clamp", v, &[5.0, -5.0]), None);
        }
        assert_same(
            instant("clamp_min", f64::NAN, &[f64::INFINITY]),
            f64::INFINITY,
            "Go's Max(+Inf, NaN)",
        );
        assert!(instant("clamp_max", 0.0, &[-0.0]).is_some_and(f64::is_sign_negative));
    }

    #[test]
    fn sgn_keeps_zeros_and_nan() {
        let inputs = [
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NAN,
            -50.0,
            0.0,
            100.0,
        ];
        for (v, want) in inputs
            .into_iter()
            .zip([-1.0, 1.0, f64::NAN, -1.0, 0.0, 1.0])
        {
            assert_same(instant("sgn", v, &[]), want, "sgn");
        }
    }

    #[test]
    fn exp_sqrt_and_gos_logarithms() {
        assert_close(instant("exp", 10.0, &[]), 22_026.465_794_806_718, "exp 10");
        assert_close(instant("exp", 20.0, &[]), 485_165_195.409_790_3, "exp 20");
        assert_close(
            instant("exp", -10.0, &[]),
            4.539_992_976_248_485_4e-5,
            "exp -10",
        );
        assert_same(instant("ln", 10.0, &[]), 2.302_585_092_994_046, "ln 10");
        assert_same(instant("ln", 20.0, &[]), 2.995_732_273_553_991, "ln 20");
        assert_same(instant("ln", 0.0, &[]), f64::NEG_INFINITY, "ln 0");
        assert_same(instant("ln", -10.0, &[]), f64::NAN, "ln negative");
        assert_same(
            instant("sqrt", 10.0, &[]),
            3.162_277_660_168_379_5,
            "sqrt 10",
        );
        assert_same(instant("sqrt", 20.0, &[]), 4.472_135_954_999_58, "sqrt 20");
        // Values from Go 1.19 on amd64 where the test scripts round.
        assert_same(instant("log2", 10.0, &[]), 3.321_928_094_887_362, "log2 10");
        assert_same(instant("log2", 20.0, &[]), 4.321_928_094_887_363, "log2 20");
        assert_same(instant("log2", 1024.0, &[]), 10.0, "log2 of a power of two");
        assert_same(instant("log2", 0.0, &[]), f64::NEG_INFINITY, "log2 0");
        assert_same(instant("log2", -10.0, &[]), f64::NAN, "log2 negative");
        assert_same(instant("log10", 10.0, &[]), 1.0, "log10 10");
        assert_same(
            instant("log10", 20.0, &[]),
            1.301_029_995_663_981,
            "log10 20",
        );
        assert_same(instant("log10", 0.0, &[]), f64::NEG_INFINITY, "log10 0");
        assert_same(instant("log10", -10.0, &[]), f64::NAN, "log10 negative");
        assert_same(instant("log10", 1000.0, &[]), 3.0, "log10 1000");
        assert_same(
            instant("log2", 0.707_106_781_186_547_6, &[]),
            -0.499_999_999_999_999_9,
            "log2 near sqrt(1/2)",
        );
        // amd64's Log reads subnormals as if they were normal numbers.
        assert_same(
            instant("ln", 5e-324, &[]),
            -709.089_565_712_824_1,
            "ln of a subnormal as in Go",
        );
        assert_same(
            instant("log10", 1e-310, &[]),
            -307.951_738_116_602_2,
            "log10 of a subnormal as in Go",
        );
        assert_same(instant("log2", 5e-324, &[]), -1074.0, "log2 of a subnormal");
    }

    #[test]
    fn trigonometry_matches_trig_functions_test() {
        let table: [(&str, f64, f64); 24] = [
            ("sin", 10.0, -0.544_021_110_889_369_9),
            ("sin", 20.0, 0.912_945_250_727_627_7),
            ("cos", 10.0, -0.839_071_529_076_452_4),
            ("cos", 20.0, 0.408_082_061_813_391_96),
            ("tan", 10.0, 0.648_360_827_459_086_7),
            ("tan", 20.0, 2.237_160_944_224_742_7),
            ("asin", 10.0 - 10.1, -0.100_167_421_161_559_44),
            ("acos", 10.0 - 10.1, 1.670_963_747_956_456),
            ("atan", 10.0, 1.471_127_674_303_734_5),
            ("atan", 20.0, 1.520_837_931_072_953_8),
            ("sinh", 10.0, 11_013.232_920_103_324),
            ("sinh", 20.0, 2.425_825_977_048_951_4e8),
            ("cosh", 10.0, 11_013.232_920_103_324),
            ("tanh", 10.0, 0.999_999_995_877_692_7),
            ("tanh", 20.0, 1.0),
            ("asinh", 10.0, 2.998_222_950_297_97),
            ("asinh", 20.0, 3.689_503_868_988_905_5),
            ("acosh", 10.0, 2.993_222_846_126_381),
            ("acosh", 20.0, 3.688_253_867_361_296_6),
            ("atanh", 10.0 - 10.1, -0.100_335_347_731_075_22),
            ("rad", 10.0, 0.174_532_925_199_432_95),
            ("rad", 20.0, 0.349_065_850_398_865_9),
            ("deg", 10.0, 572.957_795_130_823_2),
            ("deg", 20.0, 1_145.915_590_261_646_5),
        ];
        for (name, v, expected) in table {
            assert_close(instant(name, v, &[]), expected, name);
            assert_same(instant(name, f64::NAN, &[]), f64::NAN, name);
        }
        assert_same(
            instant("asin", 20.0 - 10.1, &[]),
            f64::NAN,
            "asin out of domain",
        );
        assert_same(instant("deg", 0.0, &[]), 0.0, "deg 0");
    }

    #[test]
    fn date_functions_read_utc_seconds() {
        let table: [(&str, f64, f64); 20] = [
            ("year", 0.0, 1970.0),
            ("year", 1_136_239_445.0, 2006.0),
            ("month", 0.0, 1.0),
            ("month", 1_136_239_445.0, 1.0),
            ("day_of_month", 0.0, 1.0),
            ("day_of_month", 1_136_239_445.0, 2.0),
            ("day_of_year", 0.0, 1.0),
            ("day_of_year", 1_136_239_445.0, 2.0),
            ("day_of_week", 0.0, 4.0),
            ("day_of_week", 1_136_239_445.0, 1.0),
            ("hour", 0.0, 0.0),
            ("hour", 1_136_239_445.0, 22.0),
            ("minute", 0.0, 0.0),
            ("minute", 1_136_239_445.0, 4.0),
            ("year", 1_230_767_999.0, 2008.0),
            ("year", 1_230_768_000.0, 2009.0),
            ("day_of_year", 1_483_191_420.0, 366.0),
            ("day_of_year", 1_672_493_820.0, 365.0),
            ("days_in_month", 1_454_284_800.0, 29.0),
            ("days_in_month", 1_485_907_200.0, 28.0),
        ];
        for (name, seconds, expected) in table {
            assert_same(
                instant(name, seconds, &[]),
                expected,
                &format!("{name}({seconds})"),
            );
        }
        let month_day = |s: f64| {
            instant("month", s, &[]).expect("month")
                + instant("day_of_month", s, &[]).expect("day") / 100.0
        };
        assert_same(Some(month_day(1_456_790_399.0)), 2.29, "Feb 29th");
        assert_same(Some(month_day(1_456_790_400.0)), 3.01, "Mar 1st");
    }

    #[test]
    fn date_functions_truncate_and_wrap_like_go_on_amd64() {
        // -0.5 truncates to 0 (1970), -1 is the last second of 1969.
        assert_same(instant("year", -0.5, &[]), 1970.0, "truncation");
        assert_same(instant("year", -1.0, &[]), 1969.0, "before the epoch");
        assert_same(instant("day_of_week", -86_400.0, &[]), 3.0, "Wednesday");
        // NaN converts to i64::MIN, which Go's absolute time wraps to
        // 2^63 seconds: 292277026596-12-04 15:30:08 UTC.
        for (name, expected) in [
            ("year", 292_277_026_596.0),
            ("month", 12.0),
            ("day_of_month", 4.0),
            ("hour", 15.0),
            ("minute", 30.0),
        ] {
            assert_same(instant(name, f64::NAN, &[]), expected, name);
        }
        assert_same(
            instant("year", 9.3e18, &[]),
            292_277_026_596.0,
            "out of range",
        );
        assert_same(
            instant("year", 1e11 * 31_556_952.0, &[]),
            100_000_001_970.0,
            "far future",
        );
    }

    #[test]
    fn instant_names_and_arity() {
        assert!(is_instant_function("days_in_month") && !is_instant_function("rate"));
        assert_eq!(instant("abs", 1.0, &[1.0]), None);
        assert_eq!(instant("clamp", 1.0, &[1.0]), None);
        assert_eq!(instant("nope", 1.0, &[]), None);
        for (name, function) in INSTANT_FUNCTIONS {
            assert_eq!(InstantFunction::from_name(name), Some(function));
        }
    }

    // --- quantile -------------------------------------------------------------------

    #[test]
    fn quantile_sorts_nan_first_and_interpolates() {
        let table: [(&[f64], f64, f64); 11] = [
            (&[0.0, 1.0], 0.8, 0.8),
            (&[0.0, 1.0, 2.0], 0.8, 1.6),
            (&[0.0, 1.0, 4.0], 0.8, 2.8),
            (&[0.0, 1.0, f64::NAN], 0.8, 0.6),
            (&[0.0, 1.0], 0.2, 0.2),
            (&[0.0, 1.0, 2.0], 0.2, 0.4),
            (&[4.0, 1.0, 0.0], 0.2, 0.4),
            (&[0.0, 1.0, f64::NAN], 0.2, f64::NAN),
            (&[0.0, 1.0], f64::NAN, f64::NAN),
            (&[0.0, 1.0], -0.1, f64::NEG_INFINITY),
            (&[0.0, 1.0], 1.1, f64::INFINITY),
        ];
        for (values, phi, expected) in table {
            let mut values = values.to_vec();
            assert_close(
                Some(quantile(phi, &mut values)),
                expected,
                &format!("quantile({phi}, {values:?})"),
            );
        }
        assert_same(Some(quantile(0.5, &mut [])), f64::NAN, "empty");
    }

    // --- histogram_quantile ------------------------------------------------------------

    fn bucket_quantile(q: f64, buckets: &[(f64, f64)]) -> (f64, QuantileNotes) {
        histogram_quantile(q, &mut buckets.to_vec())
    }

    const INF: f64 = f64::INFINITY;

    #[test]
    fn histogram_quantile_positive_and_negative_buckets() {
        let positive = [(0.1, 50.0), (0.2, 70.0), (1.0, 110.0), (INF, 120.0)];
        let negative = [(-0.2, 10.0), (-0.1, 20.0), (0.3, 20.0), (INF, 30.0)];
        let table = [
            (0.0, 0.0, -0.2),
            (1.0, 1.0, 0.3),
            (0.2, 0.048, -0.2),
            (0.5, 0.15, -0.15),
            (0.8, 0.72, 0.3),
            (-0.1, -INF, -INF),
            (1.01, INF, INF),
            (f64::NAN, f64::NAN, f64::NAN),
        ];
        for (q, want_positive, want_negative) in table {
            // As counts at 50m and as rate(...[10m]), which scales them.
            for scale in [1.0, 1.0 / 600.0] {
                let scaled =
                    |b: &[(f64, f64)]| b.iter().map(|&(le, c)| (le, c * scale)).collect::<Vec<_>>();
                let (got, notes) = bucket_quantile(q, &scaled(&positive));
                assert_close(Some(got), want_positive, &format!("positive q={q}"));
                assert!(!notes.forced_monotonic);
                assert_close(
                    Some(bucket_quantile(q, &scaled(&negative)).0),
                    want_negative,
                    &format!("negative q={q}"),
                );
            }
        }
    }

    #[test]
    fn histogram_quantile_with_zero_and_negative_lowest_bounds() {
        let positive = [
            (0.0, 0.0),
            (0.1, 50.0),
            (0.2, 70.0),
            (1.0, 110.0),
            (INF, 110.0),
        ];
        let negative = [
            (-0.25, 0.0),
            (-0.2, 10.0),
            (-0.1, 20.0),
            (0.3, 20.0),
            (INF, 20.0),
        ];
        for (q, want_positive, want_negative) in [
            (0.0, 0.0, -0.25),
            (0.25, 0.055, -0.225),
            (0.5, 0.125, -0.2),
            (0.75, 0.45, -0.15),
            (1.0, 1.0, -0.1),
        ] {
            assert_close(
                Some(bucket_quantile(q, &positive).0),
                want_positive,
                "testhistogram3 positive",
            );
            assert_close(
                Some(bucket_quantile(q, &negative).0),
                want_negative,
                "testhistogram3 negative",
            );
        }
        let middle = [(0.0, 0.0), (2.0, 1.0), (4.0, 2.0), (6.0, 3.0), (INF, 3.0)];
        for (q, expected) in [(1.0 / 6.0, 1.0), (0.5, 3.0), (5.0 / 6.0, 5.0)] {
            assert_close(
                Some(bucket_quantile(q, &middle).0),
                expected,
                "testhistogram2",
            );
        }
    }

    #[test]
    fn histogram_quantile_of_aggregated_rates() {
        let r = |n: f64| n / 300.0;
        let cases: [([f64; 3], f64, f64); 7] = [
            ([10.0, 19.0, 25.0], 0.075, 0.127_777_777_777_777_8),
            ([3.0, 8.0, 10.0], 0.1, 0.14),
            ([7.0, 11.0, 15.0], 0.064_285_714_285_714_3, 0.1125),
            ([1.0, 3.0, 4.0], 0.11, 0.15),
            ([2.0, 5.0, 6.0], 0.09, 0.133_333_333_333_333_33),
            ([3.0, 4.0, 6.0], 0.06, 0.1),
            ([4.0, 7.0, 9.0], 0.0675, 0.116_666_666_666_666_67),
        ];
        for (counts, at_03, at_05) in cases {
            let buckets = [
                (0.1, r(counts[0])),
                (0.2, r(counts[1])),
                (INF, r(counts[2])),
            ];
            assert_close(Some(bucket_quantile(0.3, &buckets).0), at_03, "q=0.3");
            assert_close(Some(bucket_quantile(0.5, &buckets).0), at_05, "q=0.5");
        }
    }

    #[test]
    fn histogram_quantile_forces_monotonicity_and_reports_it() {
        let at_50m = [
            (0.1, 20.0),
            (1.0, 10.0),
            (10.0, 50.0),
            (100.0, 40.0),
            (1000.0, 90.0),
            (INF, 80.0),
        ];
        for (q, expected) in [(0.01, 0.0045), (0.5, 8.5), (0.99, 979.75)] {
            let (got, notes) = bucket_quantile(q, &at_50m);
            assert_close(Some(got), expected, "nonmonotonic");
            assert!(notes.forced_monotonic && !notes.fixed_small_deltas);
            assert_eq!(
                (notes.min_bucket, notes.max_bucket, notes.max_diff),
                (1.0, INF, 10.0)
            );
        }
        let at_1m = [
            (0.1, 2.0),
            (1.0, 1.0),
            (10.0, 5.0),
            (100.0, 4.0),
            (1000.0, 9.0),
            (INF, 8.0),
        ];
        assert_close(
            Some(bucket_quantile(0.5, &at_1m).0),
            8.5,
            "nonmonotonic at 1m",
        );
    }

    #[test]
    fn histogram_quantile_ignores_float_noise() {
        // Prometheus's TestBucketQuantile_ForcedMonotonicity.
        let simple = [
            (10.0, 10.0),
            (15.0, 15.0),
            (20.0, 15.0),
            (30.0, 15.0),
            (INF, 15.0),
        ];
        let mut noisy = simple;
        noisy[2].1 = 15.000_000_000_01;
        let real = [
            6_454_661.301_416_619_7,
            8_339_611.200_191_293_8,
            14_118_319.244_476_215_9,
            14_130_031.527_285_652_2,
            46_001_270.303_000_815_2,
            46_008_473.858_556_36,
        ];
        let real_noisy = [
            6_454_661.301_416_622_5,
            8_339_611.200_191_295_7,
            14_118_319.244_476_215_9,
            14_130_031.527_285_650_4,
            46_001_270.303_000_822_7,
            46_008_473.858_556_382_4,
        ];
        let real_buckets = |c: [f64; 6], tail: [f64; 5]| {
            let bounds = [
                1.0, 5.0, 10.0, 25.0, 50.0, 64.0, 80.0, 100.0, 250.0, 1000.0, INF,
            ];
            let counts = c.iter().chain(tail.iter());
            bounds.into_iter().zip(counts.copied()).collect::<Vec<_>>()
        };
        let t = 46_008_473.858_556_36;
        let tn = (46_008_473.858_556_389_8, 46_008_473.858_556_382_4);
        let real_monotonic = real_buckets(real, [t; 5]);
        let real_nonmonotonic = real_buckets(real_noisy, [tn.0, tn.1, tn.1, tn.0, tn.1]);
        let small_bounds = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, INF,
        ];
        let small_counts = [9.6, 9.688_888_889, 9.755_555_556, 9.844_444_444];
        let small = |noise: bool| {
            small_bounds
                .iter()
                .enumerate()
                .map(|(i, &le)| {
                    let count = match (i, noise) {
                        (0..=3, _) => small_counts[i],
                        (10, true) => 9.888_888_889_001,
                        (12, true) => 9.888_888_888_999,
                        _ => 9.888_888_889,
                    };
                    (le, count)
                })
                .collect::<Vec<_>>()
        };
        let simple_expect = [(1.0, 15.0), (0.99, 14.85), (0.9, 13.5), (0.5, 7.5)];
        let real_expect = [
            (1.0, 64.0),
            (0.99, 49.644_757_153_764_06),
            (0.9, 46.396_716_909_384_54),
            (0.5, 31.960_982_489_920_02),
        ];
        let small_expect = [
            (1.0, 0.1),
            (0.99, 0.034_687_500_002_812_61),
            (0.9, 0.004_635_416_666_718_75),
            (0.5, 0.002_575_231_481_510_417_4),
        ];
        let cases: [(Vec<Bucket>, bool, QuantileChecks); 6] = [
            (simple.to_vec(), false, simple_expect),
            (noisy.to_vec(), true, simple_expect),
            (real_monotonic, false, real_expect),
            (real_nonmonotonic, true, real_expect),
            (small(false), false, small_expect),
            (small(true), true, small_expect),
        ];
        for (buckets, fixed, expected) in cases {
            for (q, want) in expected {
                let (got, notes) = bucket_quantile(q, &buckets);
                assert!(!notes.forced_monotonic);
                assert_eq!(notes.fixed_small_deltas, fixed);
                assert!(
                    almost_equal(want, got, 1e-12),
                    "q={q}: got {got}, expected {want}"
                );
            }
        }
    }

    #[test]
    fn histogram_quantile_merges_repeated_bounds_and_needs_inf() {
        let r = 1.0 / 300.0;
        // le="0.2", "2e-1" and "2.0e-1" are one bucket.
        let mixed = [(0.1, r), (0.2, r), (0.2, r), (0.2, r), (INF, 4.0 * r)];
        for (q, expected) in [(0.5, 0.15), (0.75, 0.2), (1.0, 0.2)] {
            assert_close(Some(bucket_quantile(q, &mixed).0), expected, "mixed le");
        }
        let mut merged = mixed.to_vec();
        histogram_quantile(0.5, &mut merged);
        assert_eq!(merged.len(), 3);
        assert!(
            bucket_quantile(0.5, &[(INF, 0.0), (INF, 0.0)]).0.is_nan(),
            "a single bucket"
        );
        assert!(
            bucket_quantile(0.2, &[(0.1, 0.0), (0.2, 0.0), (INF, 0.0)])
                .0
                .is_nan(),
            "no observations"
        );
        assert!(
            bucket_quantile(0.5, &[(0.1, 1.0), (0.2, 2.0)]).0.is_nan(),
            "no +Inf bucket"
        );
        assert!(bucket_quantile(0.5, &[]).0.is_nan(), "no buckets");
        assert_close(
            Some(bucket_quantile(0.3, &[(INF, 9.0), (1.0, 3.0), (0.1, 2.0)]).0),
            0.73,
            "unsorted input",
        );
        assert_same(
            Some(bucket_quantile(0.5, &[(INF, 9.0), (1.0, 3.0), (0.1, 2.0)]).0),
            1.0,
            "rank in the +Inf bucket",
        );
    }

    // --- histogram_fraction --------------------------------------------------------------

    #[test]
    fn histogram_fraction_table() {
        let two = [
            (0.0, 0.0),
            (2.0, 10.0),
            (4.0, 20.0),
            (6.0, 30.0),
            (INF, 30.0),
        ];
        let three_positive = [
            (0.0, 0.0),
            (0.1, 50.0),
            (0.2, 70.0),
            (1.0, 110.0),
            (INF, 110.0),
        ];
        let three_negative = [
            (-0.25, 0.0),
            (-0.2, 10.0),
            (-0.1, 20.0),
            (0.3, 20.0),
            (INF, 20.0),
        ];
        let positive = [(1.0, 1.0), (2.0, 3.0), (3.0, 6.0), (INF, 100.0)];
        let negative = [(-3.0, 10.0), (-2.0, 12.0), (-1.0, 15.0), (INF, 100.0)];
        let cases: [(f64, f64, &[Bucket], f64); 24] = [
            (0.0, 4.0, &two, 0.666_666_666_666_666_6),
            (0.0, 6.0, &two, 1.0),
            (0.0, 3.5, &two, 0.583_333_333_333_333_4),
            (0.0, 0.2, &three_positive, 0.636_363_636_363_636_4),
            (0.0, 0.2, &three_negative, 0.0),
            (0.0, 1.5, &positive, 0.02),
            (-4.0, -2.0, &negative, 0.02),
            (-INF, -1.5, &negative, 0.135),
            (-INF, INF, &positive, 1.0),
            (-INF, INF, &negative, 1.0),
            (4.0, 5.0, &positive, 0.0),
            (0.0, 1.0, &negative, 0.0),
            (2.0, 5.0, &positive, 0.03),
            (400.0, INF, &positive, 0.94),
            (2.0, 2.0, &positive, 0.0),
            (3.0, 2.0, &positive, 0.0),
            (0.0, 1.0, &[(INF, 100.0)], 0.0),
            (
                0.0,
                5.0,
                &[(1.0, 0.0), (2.0, 0.0), (3.0, 0.0), (INF, 0.0)],
                f64::NAN,
            ),
            (2.0, 3.5, &positive, 0.03),
            (0.5, 2.0, &positive, 0.025),
            (1.0, 3.0, &positive, 0.05),
            (0.1, 0.75, &[(0.5, 2.5), (1.0, 7.5), (INF, 100.0)], 0.045),
            (
                -1.0,
                1.0,
                &[
                    (-2.0, 5.0),
                    (-1.0, 10.0),
                    (0.0, 15.0),
                    (1.0, 20.0),
                    (INF, 100.0),
                ],
                0.1,
            ),
            (-10.0, -5.0, &[(1.0, 1.0), (2.0, 3.0), (INF, 10.0)], 0.0),
        ];
        for (lower, upper, buckets, expected) in cases {
            let got = histogram_fraction(lower, upper, &mut buckets.to_vec());
            assert_close(Some(got), expected, &format!("fraction({lower}, {upper})"));
        }
        let short = [(1.0, 1.0), (INF, 100.0)];
        assert!(histogram_fraction(f64::NAN, 1.0, &mut short.to_vec()).is_nan());
        assert!(histogram_fraction(0.0, f64::NAN, &mut short.to_vec()).is_nan());
        assert_same(
            Some(histogram_fraction(
                5.0,
                10.0,
                &mut vec![(1.0, 1.0), (2.0, 3.0), (INF, 10.0)],
            )),
            0.0,
            "above all",
        );
    }

    #[test]
    fn bucket_bounds_parse_like_go() {
        let table = [
            ("0.1", Some(0.1)),
            (".2", Some(0.2)),
            ("1e0", Some(1.0)),
            ("2.0e-1", Some(0.2)),
            ("+Inf", Some(INF)),
            ("+inf", Some(INF)),
            ("Infinity", Some(INF)),
            ("-Inf", Some(-INF)),
            ("-.2", Some(-0.2)),
            ("5.", Some(5.0)),
            ("1_000", Some(1000.0)),
            ("1_0.5", Some(10.5)),
            ("1e1_0", Some(1e10)),
            ("+.5", Some(0.5)),
            ("1e-400", Some(0.0)),
            ("1_e5", None),
            ("", None),
            ("Hello World", None),
            ("1e400", None),
            ("1__0", None),
            ("_1", None),
            ("+NaN", None),
            ("infin", None),
            (".", None),
        ];
        for (text, expected) in table {
            assert_eq!(parse_bucket_bound(text), expected, "{text:?}");
        }
        assert!(parse_bucket_bound("nan").is_some_and(f64::is_nan));
    }

    // --- notes -----------------------------------------------------------------------------

    #[test]
    fn note_texts_match_prometheus() {
        assert_eq!(
            notes::possible_non_counter("foo"),
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"foo\""
        );
        assert_eq!(
            notes::possible_non_counter_label("foo", "gauge"),
            "PromQL info: metric might not be a counter, __type__ label is not set to \"counter\" or \"histogram\", got \"gauge\": \"foo\""
        );
        assert_eq!(
            notes::invalid_quantile(f64::NAN),
            "PromQL warning: quantile value should be between 0 and 1, got NaN"
        );
        assert_eq!(
            notes::invalid_quantile(-0.1),
            "PromQL warning: quantile value should be between 0 and 1, got -0.1"
        );
        assert_eq!(
            notes::invalid_ratio(1.1, 1.0),
            "PromQL warning: ratio value should be between -1 and 1, got 1.1, capping to 1"
        );
        assert_eq!(
            notes::invalid_ratio(-1.1, -1.0),
            "PromQL warning: ratio value should be between -1 and 1, got -1.1, capping to -1"
        );
        assert_eq!(
            notes::bad_bucket_label("", "series"),
            "PromQL warning: bucket label \"le\" is missing or has a malformed value of \"\" for metric name \"series\""
        );
        assert_eq!(
            notes::bad_bucket_label("Hello World", ""),
            "PromQL warning: bucket label \"le\" is missing or has a malformed value of \"Hello World\""
        );
        assert_eq!(
            notes::forced_monotonicity("nonmonotonic_bucket"),
            "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name \"nonmonotonic_bucket\""
        );
        assert_eq!(
            notes::sort_in_range_query(),
            "PromQL warning: sort is ineffective for range queries since results are always ordered by labels"
        );
    }

    #[test]
    fn positions_and_merged_monotonicity_fixes_print_like_the_api() {
        assert_eq!(
            notes::with_position("m", "histogram_quantile(0.5, x)", 20),
            "m (1:21)"
        );
        assert_eq!(
            notes::with_position("m", "a +\n  rate(x[5m])", 9),
            "m (2:6)"
        );
        assert_eq!(notes::with_position("m", "", 3), "m (unknown position)");
        assert_eq!(notes::with_position("m", "ab", 3), "m (invalid position)");
        let (_, fix) = bucket_quantile(
            0.5,
            &[
                (0.1, 20.0),
                (1.0, 10.0),
                (10.0, 50.0),
                (100.0, 45.5),
                (INF, 80.0),
            ],
        );
        let mut merged = notes::ForcedMonotonicity::new(3_000_000, &fix);
        merged.merge(&notes::ForcedMonotonicity::new(60_000, &fix));
        assert_eq!(
            merged.render("", "histogram_quantile(0.5, x)", 24),
            "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile), from buckets 1 to 100, with a max diff of 10, over 2 samples from 1970-01-01T00:01:00Z to 1970-01-01T00:50:00Z (1:25)"
        );
    }

    #[test]
    fn annotations_keep_each_text_once() {
        let mut notes = Annotations::default();
        notes.warn("a".to_string());
        notes.warn("a".to_string());
        notes.info("b".to_string());
        let mut other = Annotations::default();
        other.info("b".to_string());
        other.info("c".to_string());
        notes.merge(other);
        assert_eq!((notes.warnings.len(), notes.infos.len()), (1, 2));
        assert!(!notes.is_empty() && Annotations::default().is_empty());
    }

    #[test]
    fn counter_names() {
        for name in ["http_requests_total", "x_sum", "x_count", "x_bucket"] {
            assert!(is_counter_name(name), "{name}");
        }
        for name in ["http_requests", "total", "x_totals", ""] {
            assert!(!is_counter_name(name), "{name}");
        }
    }

    #[test]
    fn go_number_formatting() {
        let shortest = [
            (1.5, "1.5"),
            (1.0, "1"),
            (0.0, "0"),
            (-0.0, "-0"),
            (100_000.0, "100000"),
            (1_234_567.0, "1.234567e+06"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        let shortest = shortest.into_iter().chain([
            (0.1 + 0.2, "0.30000000000000004"),
            (
                f64::from_bits(0x4311_ea8d_8e3f_3e29),
                "1.2607420754697062e+15",
            ),
        ]);
        for (v, text) in shortest {
            assert_eq!(go_format_g(v, None), text, "%g of {v}");
        }
        for (v, text) in [
            (10.0, "10"),
            (2.0, "2"),
            (0.5, "0.5"),
            (123.0, "1.2e+02"),
            (0.000_123_4, "0.00012"),
            (1e10, "1e+10"),
            (99.9, "1e+02"),
            (0.125, "0.12"),
            (0.35, "0.35"),
        ] {
            assert_eq!(go_format_g(v, Some(2)), text, "%.2g of {v}");
        }
        assert_eq!(go_format_f6(1.5), "1.500000");
        assert_eq!(go_format_f6(-2.0), "-2.000000");
        assert_eq!(go_format_f6(f64::INFINITY), "+Inf");
        assert_eq!(
            go_quote("a\"b\\c\nd\u{1}é\u{a0}\u{80}"),
            "\"a\\\"b\\\\c\\nd\\x01é\\u00a0\\u0080\""
        );
        assert_eq!(rfc3339_utc(1_136_239_445), "2006-01-02T22:04:05Z");
    }
}
