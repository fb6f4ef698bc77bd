//! The evaluator: walks a parsed PromQL expression over a grid of steps
//! (one step for an instant query) and produces every step's value in one
//! pass per node, series by series — a range query is not an instant query
//! run per step.
//!
//! Representation: an instant vector over the grid is a list of [`Row`]s,
//! one per series, each with one value per step; a step where the series
//! has no sample holds [`ABSENT`] (a NaN payload no data value carries,
//! since values read from the store have their NaNs made canonical). A
//! range vector ([`Ranges`]) keeps each series' raw points and how to cut
//! its window at each step.
//!
//! Selectors read lazily: the store hands over each series' labels and a
//! way to read its samples, and a node reads one series' samples, reduces
//! them to its values per step and lets them go before the next — spread
//! over the machine's cores when there are many series ([`Evaluator::per_series`]).
//! What a query holds at once is counted against `--query.max-samples` by
//! a [`Budget`] all those threads share.
//!
//! Prometheus 3 semantics kept here: lookback windows and range windows are
//! left-open, `(t - d, t]`; a stale marker ends a series at once; `offset`
//! (also negative) and `@` (with `start()`/`end()`) shift the time a
//! selector reads; subqueries evaluate their expression at steps aligned to
//! multiples of their resolution.

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use promql_parser::label::{MatchOp as ParserOp, Matchers};
use promql_parser::parser::{AtModifier, Expr, LabelModifier, Offset, VectorSelector};

use super::functions::Annotations;
use super::value::{QueryError, Queryable, SampleSource, SeriesData};
use super::{aggregate, binary, call};
use crate::storage::labels::{is_stale_nan, METRIC_NAME};
use crate::storage::{Labels, MatchOp, Matcher};

/// "No sample at this step": a NaN with a payload data never has.
pub const ABSENT: f64 = f64::from_bits(0x7ff8_dead_beef_0001);

/// Whether `v` is [`ABSENT`].
pub fn absent(v: f64) -> bool {
    v.to_bits() == ABSENT.to_bits()
}

/// The steps of an evaluation: `start`, `start + step`, … up to `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// First step, ms.
    pub start: i64,
    /// Last step (inclusive), ms.
    pub end: i64,
    /// Between steps, ms (> 0).
    pub step: i64,
}

impl Grid {
    /// Number of steps (at least one).
    #[allow(clippy::len_without_is_empty)] // a grid always has a first step
    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step + 1) as usize
    }

    /// The time of step `i`.
    pub fn at(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
}

/// One series of an instant vector over the grid.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its labels.
    pub labels: Labels,
    /// One value per step ([`ABSENT`] where none).
    pub values: Vec<f64>,
    /// `__name__` goes at the end of the query (Prometheus 3's delayed
    /// name removal): kept until then so that `label_replace` and friends
    /// can still read it, and series differing only by name stay apart.
    pub drop_name: bool,
}

/// One series of a range vector.
pub struct RangeRow {
    /// Its labels.
    pub labels: Labels,
    points: Points,
}

enum Points {
    /// Computed (by a subquery): in time order, no stale markers.
    Ready(Vec<(i64, f64)>),
    /// In the store, read when needed.
    Stored {
        source: Box<dyn SampleSource>,
        mint: i64,
        maxt: i64,
    },
}

impl RangeRow {
    /// A row of computed points (in time order, no stale markers).
    pub fn ready(labels: Labels, points: Vec<(i64, f64)>) -> RangeRow {
        RangeRow {
            labels,
            points: Points::Ready(points),
        }
    }

    /// Its points in time order, without stale markers; read from the store
    /// if they are there, and held against the budget until dropped.
    pub fn points<'b>(&'b self, budget: &'b Budget) -> Result<HeldPoints<'b>, QueryError> {
        match &self.points {
            Points::Ready(points) => Ok(HeldPoints {
                points: Cow::Borrowed(points),
                budget,
                held: 0,
            }),
            Points::Stored { source, mint, maxt } => {
                read_samples(source.as_ref(), *mint, *maxt, Stale::Drop, budget)
            }
        }
    }
}

/// A series' points, counted as held by a query until dropped.
pub struct HeldPoints<'b> {
    points: Cow<'b, [(i64, f64)]>,
    budget: &'b Budget,
    held: usize,
}

impl Deref for HeldPoints<'_> {
    type Target = [(i64, f64)];

    fn deref(&self) -> &[(i64, f64)] {
        &self.points
    }
}

impl Drop for HeldPoints<'_> {
    fn drop(&mut self) {
        self.budget.release(self.held);
    }
}

/// What [`read_samples`] does with stale markers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stale {
    /// Keeps them (an instant selector ends a series at one).
    Keep,
    /// Leaves them out (range functions never see them).
    Drop,
}

/// Reads a series' samples in `[mint, maxt]`, stale markers kept or left
/// out, NaN values made canonical so that none is [`ABSENT`].
fn read_samples<'b>(
    source: &dyn SampleSource,
    mint: i64,
    maxt: i64,
    stale: Stale,
    budget: &'b Budget,
) -> Result<HeldPoints<'b>, QueryError> {
    let mut samples = source.read().map_err(QueryError::Internal)?;
    // Sources return samples in time order: the range is two searches.
    samples.truncate(samples.partition_point(|&(t, _)| t <= maxt));
    samples.drain(..samples.partition_point(|&(t, _)| t < mint));
    // Most series hold no NaN at all: a read-only scan finds that out
    // without rewriting every sample.
    if samples.iter().any(|(_, v)| v.is_nan()) {
        samples.retain_mut(|(_, v)| {
            if v.is_nan() {
                if is_stale_nan(*v) {
                    return stale == Stale::Keep;
                }
                *v = f64::NAN;
            }
            true
        });
    }
    budget.loaded.fetch_add(samples.len(), Ordering::Relaxed);
    budget.hold(samples.len())?;
    let held = samples.len();
    Ok(HeldPoints {
        points: Cow::Owned(samples),
        budget,
        held,
    })
}

/// A range vector: each series' points, and the windows to cut from them.
pub struct Ranges {
    /// Series, with their points or how to read them.
    pub rows: Vec<RangeRow>,
    /// Window width, ms.
    pub range: i64,
    /// The window's end at each step, ms (offset and `@` applied).
    pub ends: Vec<i64>,
}

/// What a node evaluates to.
pub enum Evaluated {
    /// One value per step.
    Scalar(Vec<f64>),
    /// A string literal.
    String(String),
    /// An instant vector.
    Vector(Vec<Row>),
    /// A range vector.
    Ranges(Ranges),
}

/// What one query may hold and how long it may run, and what it has read:
/// shared by the threads evaluating it.
pub struct Budget {
    /// Points the query may hold at once (`--query.max-samples`).
    max_samples: usize,
    /// When the query must have finished.
    deadline: Instant,
    held: AtomicUsize,
    peak: AtomicUsize,
    loaded: AtomicUsize,
}

impl Budget {
    /// A budget of `max_samples` points at once, until `deadline`.
    pub fn new(max_samples: usize, deadline: Instant) -> Budget {
        Budget {
            max_samples,
            deadline,
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            loaded: AtomicUsize::new(0),
        }
    }

    /// Counts points the query now holds; fails past `--query.max-samples`.
    pub fn hold(&self, points: usize) -> Result<(), QueryError> {
        let held = self.held.fetch_add(points, Ordering::Relaxed) + points;
        self.peak.fetch_max(held, Ordering::Relaxed);
        if held > self.max_samples {
            return Err(QueryError::Execution(
                "query processing would load too many samples into memory in query execution"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Points the query no longer holds.
    pub fn release(&self, points: usize) {
        self.held.fetch_sub(points, Ordering::Relaxed);
    }

    /// The most points held at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Samples read from the store so far.
    pub fn loaded(&self) -> usize {
        self.loaded.load(Ordering::Relaxed)
    }

    /// Fails once the query's time is up.
    pub fn check_deadline(&self) -> Result<(), QueryError> {
        if Instant::now() >= self.deadline {
            return Err(QueryError::Timeout(
                "query timed out in query execution".into(),
            ));
        }
        Ok(())
    }
}

/// Series a thread of [`Evaluator::per_series`] takes at least (fewer
/// stay on the query's thread).
const SERIES_PER_THREAD: usize = 32;

/// One query's evaluation state.
pub struct Evaluator<'q> {
    queryable: &'q Arc<dyn Queryable>,
    /// The query's own grid (`start()`/`end()` refer to it).
    pub query_grid: Grid,
    lookback: i64,
    /// Its limits and counters.
    pub budget: Budget,
    /// Annotations for the answer.
    pub notes: Annotations,
    /// Whether this is a range query (some functions warn then).
    pub range_query: bool,
}

impl<'q> Evaluator<'q> {
    /// An evaluator of a query over `grid`.
    pub fn new(
        queryable: &'q Arc<dyn Queryable>,
        grid: Grid,
        lookback: i64,
        budget: Budget,
    ) -> Evaluator<'q> {
        Evaluator {
            queryable,
            query_grid: grid,
            lookback,
            budget,
            notes: Annotations::default(),
            range_query: false,
        }
    }

    /// How far back a selector looks for a sample, ms.
    pub fn lookback(&self) -> i64 {
        self.lookback
    }

    /// Counts points the query now holds; fails past `--query.max-samples`.
    pub fn hold(&self, points: usize) -> Result<(), QueryError> {
        self.budget.hold(points)
    }

    /// Fails once the query's time is up.
    pub fn check_deadline(&self) -> Result<(), QueryError> {
        self.budget.check_deadline()
    }

    /// Runs `work` for each of `count` series and gathers what it returns,
    /// in series order; with many series, on every core. `work` gets the
    /// series' index, the query's budget and where to note annotations.
    /// The first failure (in series order) is the result.
    pub fn per_series<T: Send>(
        &mut self,
        count: usize,
        work: impl Fn(usize, &Budget, &mut Annotations) -> Result<Option<T>, QueryError> + Sync,
    ) -> Result<Vec<T>, QueryError> {
        let budget = &self.budget;
        let series: Vec<usize> = (0..count).collect();
        // Each part stops at its first failure; parts come back in series
        // order, so the first failure found is the first in series order.
        let parts = crate::parallel::map_parts(&series, SERIES_PER_THREAD, |part| {
            let mut notes = Annotations::default();
            let mut found = Vec::new();
            for &i in part {
                let outcome = budget
                    .check_deadline()
                    .and_then(|()| work(i, budget, &mut notes));
                match outcome {
                    Ok(Some(t)) => found.push(t),
                    Ok(None) => {}
                    Err(e) => return (Err(e), notes),
                }
            }
            (Ok(found), notes)
        });
        let mut found = Vec::with_capacity(count);
        let mut failed = None;
        for (part, notes) in parts {
            self.notes.merge(notes);
            match part {
                Ok(part) => found.extend(part),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(found),
        }
    }

    /// Evaluates `expr` at every step of `grid`.
    pub fn eval(&mut self, expr: &Expr, grid: Grid) -> Result<Evaluated, QueryError> {
        self.check_deadline()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Evaluated::Scalar(vec![n.val; grid.len()])),
            Expr::StringLiteral(s) => Ok(Evaluated::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, grid),
            Expr::Unary(u) => match self.eval(&u.expr, grid)? {
                Evaluated::Scalar(values) => {
                    Ok(Evaluated::Scalar(values.into_iter().map(|v| -v).collect()))
                }
                Evaluated::Vector(rows) => Ok(Evaluated::Vector(
                    rows.into_iter()
                        .map(|row| Row {
                            labels: row.labels,
                            drop_name: true,
                            values: row
                                .values
                                .into_iter()
                                .map(|v| if absent(v) { v } else { -v })
                                .collect(),
                        })
                        .collect(),
                )),
                _ => Err(QueryError::BadData(
                    "unary expression only allowed on expressions of type scalar or instant vector"
                        .into(),
                )),
            },
            Expr::VectorSelector(selector) => self.vector_selector(selector, grid),
            Expr::MatrixSelector(matrix) => {
                let range = matrix.range.as_millis() as i64;
                self.ranges(&matrix.vs, range, grid)
            }
            Expr::Subquery(subquery) => self.subquery(subquery, grid),
            Expr::Binary(b) => binary::eval(self, b, grid),
            Expr::Aggregate(a) => aggregate::eval(self, a, grid),
            Expr::Call(c) => call::eval(self, c, grid),
            Expr::Extension(_) => Err(QueryError::BadData(
                "unsupported: extension expressions".into(),
            )),
        }
    }

    /// The time a selector reads at each step: `@` fixes it, `offset`
    /// moves it back.
    fn read_times(&self, offset: &Option<Offset>, at: &Option<AtModifier>, grid: Grid) -> Vec<i64> {
        let offset = offset_ms(offset);
        let fixed = at.as_ref().map(|at| self.at_time(at));
        (0..grid.len())
            .map(|i| fixed.unwrap_or(grid.at(i)) - offset)
            .collect()
    }

    /// The time an `@` modifier names.
    pub fn at_time(&self, at: &AtModifier) -> i64 {
        match at {
            AtModifier::Start => self.query_grid.start,
            AtModifier::End => self.query_grid.end,
            AtModifier::At(time) => system_time_ms(*time),
        }
    }

    /// The series a selector names that have samples in `[mint, maxt]`,
    /// sorted by labels; their samples not read yet.
    fn select(
        &mut self,
        selector: &VectorSelector,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let mut alternatives = vec![selector.matchers.matchers.clone()];
        alternatives.extend(selector.matchers.or_matchers.iter().cloned());
        let mut out: Vec<SeriesData> = Vec::new();
        let alternatives_count = alternatives.len();
        let mut seen: std::collections::HashSet<Labels> = std::collections::HashSet::new();
        for matchers in alternatives {
            let mut converted = Vec::with_capacity(matchers.len() + 1);
            if let Some(name) = &selector.name {
                converted.push(storage_matcher(MatchOp::Equal, METRIC_NAME, name)?);
            }
            for m in &matchers {
                let op = match &m.op {
                    ParserOp::Equal => MatchOp::Equal,
                    ParserOp::NotEqual => MatchOp::NotEqual,
                    ParserOp::Re(_) => MatchOp::Regex,
                    ParserOp::NotRe(_) => MatchOp::NotRegex,
                };
                converted.push(storage_matcher(op, &m.name, &m.value)?);
            }
            let found = self
                .queryable
                .select(&converted, mint, maxt)
                .map_err(QueryError::Internal)?;
            for series in found {
                // Only `or` alternatives can select a series twice.
                if alternatives_count > 1 && !seen.insert(series.labels.clone()) {
                    continue;
                }
                out.push(series);
            }
        }
        // One selection comes sorted from the store; alternatives interleave.
        if alternatives_count > 1 {
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        Ok(out)
    }

    fn vector_selector(
        &mut self,
        selector: &VectorSelector,
        grid: Grid,
    ) -> Result<Evaluated, QueryError> {
        let times = self.read_times(&selector.offset, &selector.at, grid);
        let (Some(&first), Some(&last)) = (times.iter().min(), times.iter().max()) else {
            return Ok(Evaluated::Vector(Vec::new()));
        };
        let (mint, maxt) = (first - self.lookback + 1, last);
        let series = self.select(selector, mint, maxt)?;
        let lookback = self.lookback;
        let rows = self.per_series(series.len(), |i, budget, _| {
            let samples =
                read_samples(series[i].samples.as_ref(), mint, maxt, Stale::Keep, budget)?;
            let values = lookback_values(&samples, &times, lookback);
            if values.iter().all(|v| absent(*v)) {
                return Ok(None);
            }
            budget.hold(values.len())?;
            Ok(Some((i, values)))
        })?;
        // The selection is done with: its labels move into the rows.
        let mut series = series;
        let rows = rows
            .into_iter()
            .map(|(i, values)| Row {
                labels: std::mem::take(&mut series[i].labels),
                values,
                drop_name: false,
            })
            .collect();
        Ok(Evaluated::Vector(rows))
    }

    /// `selector[range]`: each series' points over all the windows.
    pub fn ranges(
        &mut self,
        selector: &VectorSelector,
        range: i64,
        grid: Grid,
    ) -> Result<Evaluated, QueryError> {
        let ends = self.read_times(&selector.offset, &selector.at, grid);
        let (Some(&first), Some(&last)) = (ends.iter().min(), ends.iter().max()) else {
            return Ok(Evaluated::Vector(Vec::new()));
        };
        let (mint, maxt) = (first - range + 1, last);
        let rows = self
            .select(selector, mint, maxt)?
            .into_iter()
            .map(|series| RangeRow {
                labels: series.labels,
                points: Points::Stored {
                    source: series.samples,
                    mint,
                    maxt,
                },
            })
            .collect();
        Ok(Evaluated::Ranges(Ranges { rows, range, ends }))
    }

    fn subquery(
        &mut self,
        subquery: &promql_parser::parser::SubqueryExpr,
        grid: Grid,
    ) -> Result<Evaluated, QueryError> {
        let range = subquery.range.as_millis() as i64;
        let step = match subquery.step {
            Some(step) if !step.is_zero() => step.as_millis() as i64,
            // Prometheus's default resolution: the global evaluation interval.
            _ => DEFAULT_SUBQUERY_STEP_MS,
        };
        let ends = self.read_times(&subquery.offset, &subquery.at, grid);
        let (Some(&first), Some(&last)) = (ends.iter().min(), ends.iter().max()) else {
            return Ok(Evaluated::Vector(Vec::new()));
        };
        // Inner steps are multiples of the resolution, the first one after
        // the earliest window's start.
        let lowest = first - range;
        let mut start = lowest.div_euclid(step) * step;
        if start <= lowest {
            start += step;
        }
        if start > last {
            return Ok(Evaluated::Ranges(Ranges {
                rows: Vec::new(),
                range,
                ends,
            }));
        }
        let inner_grid = Grid {
            start,
            end: last,
            step,
        };
        let inner = self.eval(&subquery.expr, inner_grid)?;
        let rows = match inner {
            // A name the inner expression dropped is gone from the range
            // vector (the functions reading it cannot bring it back).
            Evaluated::Vector(rows) => remove_dropped_names(rows)
                .into_iter()
                .map(|row| {
                    let points = row
                        .values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| !absent(**v))
                        .map(|(i, v)| (inner_grid.at(i), *v))
                        .collect::<Vec<_>>();
                    RangeRow::ready(row.labels, points)
                })
                .filter(|row| matches!(&row.points, Points::Ready(p) if !p.is_empty()))
                .collect(),
            Evaluated::Scalar(values) => {
                // A scalar subquery yields a range vector of one unnamed series.
                let points = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (inner_grid.at(i), *v))
                    .collect();
                vec![RangeRow::ready(Labels::from_sorted(Vec::new()), points)]
            }
            _ => {
                return Err(QueryError::BadData(
                    "subquery is only allowed on instant vector or scalar".into(),
                ))
            }
        };
        Ok(Evaluated::Ranges(Ranges { rows, range, ends }))
    }
}

/// Default subquery resolution when none is given (Prometheus's default
/// global evaluation interval).
pub const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// The value of a series at each read time: its newest sample in
/// `(t - lookback, t]`, unless that sample is a stale marker.
fn lookback_values(samples: &[(i64, f64)], times: &[i64], lookback: i64) -> Vec<f64> {
    let mut values = Vec::with_capacity(times.len());
    let ordered = times.windows(2).all(|w| w[0] <= w[1]);
    let mut next = 0;
    for &t in times {
        // Index of the first sample after t.
        if !ordered {
            next = samples.partition_point(|(ts, _)| *ts <= t);
        } else {
            while next < samples.len() && samples[next].0 <= t {
                next += 1;
            }
        }
        let value = match next.checked_sub(1).map(|i| samples[i]) {
            Some((ts, v)) if ts > t - lookback && !is_stale_nan(v) => v,
            _ => ABSENT,
        };
        values.push(value);
    }
    values
}

/// Where the previous window of a series was: [`window`] looks on from
/// there, since windows mostly move forward step by step.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowCursor {
    /// First point of the window.
    pub lo: usize,
    /// One past its last point.
    pub hi: usize,
}

/// The points of `points` in the window `(end - range, end]`, found from
/// `cursor` on, which is moved to them.
pub fn window<'p>(
    points: &'p [(i64, f64)],
    end: i64,
    range: i64,
    cursor: &mut WindowCursor,
) -> &'p [(i64, f64)] {
    let start = end - range;
    let mut lo = cursor.lo.min(points.len());
    // Windows may move backwards (when `@` or negative steps are involved).
    if lo > 0 && points[lo - 1].0 > start {
        lo = points.partition_point(|(t, _)| *t <= start);
    }
    while lo < points.len() && points[lo].0 <= start {
        lo += 1;
    }
    let mut hi = cursor.hi.clamp(lo, points.len());
    if hi > lo && points[hi - 1].0 > end {
        hi = lo + points[lo..].partition_point(|(t, _)| *t <= end);
    }
    while hi < points.len() && points[hi].0 <= end {
        hi += 1;
    }
    *cursor = WindowCursor { lo, hi };
    &points[lo..hi]
}

fn storage_matcher(op: MatchOp, name: &str, value: &str) -> Result<Matcher, QueryError> {
    Matcher::new(op, name, value).map_err(|e| QueryError::BadData(e.to_string()))
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}

/// Milliseconds since the epoch, negative before it.
pub fn system_time_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The labels `absent()` gives its one series: the selector's equality
/// matchers except on `__name__`, leaving out names that more than one
/// matcher (of any kind) constrains.
pub fn absent_labels(matchers: &Matchers) -> Labels {
    let constrained = |name: &str| matchers.matchers.iter().filter(|m| m.name == name).count();
    let mut out: Vec<(String, String)> = matchers
        .matchers
        .iter()
        .filter(|m| matches!(m.op, ParserOp::Equal) && m.name != METRIC_NAME)
        .filter(|m| constrained(&m.name) == 1 && !m.value.is_empty())
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    out.sort();
    Labels::from_sorted(out)
}

/// The labels a `by`/`on` clause keeps (those listed) or a
/// `without`/`ignoring` clause keeps (all but those listed and `__name__`).
pub fn kept_labels(labels: &Labels, clause: &LabelModifier) -> Vec<(String, String)> {
    let (listed, include) = match clause {
        LabelModifier::Include(names) => (&names.labels, true),
        LabelModifier::Exclude(names) => (&names.labels, false),
    };
    labels
        .pairs()
        .iter()
        .filter(|(n, _)| {
            if include {
                listed.contains(n)
            } else {
                n != METRIC_NAME && !listed.contains(n)
            }
        })
        .cloned()
        .collect()
}

/// Removes `__name__` from the rows that lost it along the way: the end of
/// Prometheus 3's delayed name removal.
pub fn remove_dropped_names(mut rows: Vec<Row>) -> Vec<Row> {
    for row in rows.iter_mut().filter(|row| row.drop_name) {
        row.labels.remove(METRIC_NAME);
        row.drop_name = false;
    }
    rows
}

/// Checks that no two rows share a label set, as Prometheus requires of
/// every instant vector it builds.
pub fn check_unique(rows: &[Row]) -> Result<(), QueryError> {
    let mut seen: std::collections::HashSet<&Labels> = std::collections::HashSet::new();
    for row in rows {
        if !seen.insert(&row.labels) {
            return Err(QueryError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// Merges rows with the same labels into one (their steps must not
/// overlap); fails like Prometheus when two have a value at one step.
pub fn merge_rows(rows: Vec<Row>) -> Result<Vec<Row>, QueryError> {
    // Most often every label set differs: tell by hashes, without copying one.
    let mut hashes = std::collections::HashSet::with_capacity(rows.len());
    if rows
        .iter()
        .all(|row| hashes.insert(row.labels.stable_hash()))
    {
        return Ok(rows);
    }
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    for row in rows {
        match index.get(&row.labels) {
            Some(&i) => {
                let target = &mut out[i].values;
                for (slot, v) in target.iter_mut().zip(row.values) {
                    if absent(v) {
                        continue;
                    }
                    if !absent(*slot) {
                        return Err(QueryError::Execution(
                            "vector cannot contain metrics with the same labelset".into(),
                        ));
                    }
                    *slot = v;
                }
            }
            None => {
                index.insert(row.labels.clone(), out.len());
                out.push(row);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookback_is_left_open_and_stale_markers_end_a_series() {
        let stale = crate::storage::labels::stale_nan();
        let samples = [(0, 1.0), (60_000, 2.0), (120_000, stale)];
        let values = lookback_values(
            &samples,
            &[0, 30_000, 60_000, 120_000, 300_000, 360_000],
            300_000,
        );
        assert_eq!(values[0], 1.0);
        assert_eq!(values[1], 1.0);
        assert_eq!(values[2], 2.0);
        assert!(absent(values[3]));
        assert!(absent(values[4]));
        // 5 m after the last real sample: outside (t - 5m, t].
        let values = lookback_values(&[(0, 1.0)], &[300_000, 299_999], 300_000);
        assert!(absent(values[0]));
        assert_eq!(values[1], 1.0);
    }

    #[test]
    fn windows_are_left_open() {
        let points = [(0, 1.0), (60_000, 2.0), (120_000, 3.0)];
        let w = window(&points, 120_000, 60_000, &mut WindowCursor::default());
        assert_eq!(w, &[(120_000, 3.0)]);
        let w = window(&points, 120_000, 120_000, &mut WindowCursor::default());
        assert_eq!(w, &[(60_000, 2.0), (120_000, 3.0)]);
    }

    /// A cursor carried from window to window finds what a fresh search
    /// finds, whichever way the windows move.
    #[test]
    fn a_cursor_follows_windows_forwards_and_backwards() {
        let points: Vec<(i64, f64)> = (0..200).map(|i| (i * 15_000, i as f64)).collect();
        let mut cursor = WindowCursor::default();
        let ends = (0..100)
            .map(|i| i * 60_000)
            .chain((0..50).rev().map(|i| i * 70_000 + 1));
        for end in ends {
            let fresh = window(&points, end, 300_000, &mut WindowCursor::default());
            assert_eq!(
                window(&points, end, 300_000, &mut cursor),
                fresh,
                "end {end}"
            );
        }
    }
}
