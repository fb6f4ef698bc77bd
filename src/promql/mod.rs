//! PromQL: parses queries with `promql-parser` and evaluates them over a
//! [`Queryable`] store with Prometheus 3 float semantics.
//!
//! [`Engine`] is the entry point: instant and range queries with the
//! limits of `--query.lookback-delta`, `--query.timeout` and
//! `--query.max-samples`. `eval` walks the expression over the whole step
//! grid at once; `binary`, `aggregate` and `call` implement operators,
//! aggregations and functions; `functions` holds the pure per-window and
//! per-value functions; `value` the result and error types the HTTP API
//! renders.

mod aggregate;
mod binary;
mod call;
pub mod eval;
pub mod functions;
pub mod value;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use value::{
    format_value, write_value, QueryError, QueryResult, QueryStats, Queryable, RangeSeries, Sample,
    SeriesData, Value,
};

use eval::{absent, window, Budget, Evaluated, Evaluator, Grid, WindowCursor};

/// The engine's limits and defaults.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// How far back a selector looks for a sample (`--query.lookback-delta`).
    pub lookback_delta_ms: i64,
    /// Longest a query may run (`--query.timeout`).
    pub timeout: Duration,
    /// Most points a query may hold at once (`--query.max-samples`).
    pub max_samples: usize,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
        }
    }
}

/// Evaluates PromQL over a store.
pub struct Engine {
    queryable: Arc<dyn Queryable>,
    options: EngineOptions,
}

impl Engine {
    /// An engine reading `queryable`.
    pub fn new(queryable: Arc<dyn Queryable>, options: EngineOptions) -> Engine {
        Engine { queryable, options }
    }

    /// Evaluates `query` at `time_ms`.
    pub fn instant(&self, query: &str, time_ms: i64) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let expr = parse(query)?;
        let grid = Grid {
            start: time_ms,
            end: time_ms,
            step: 1,
        };
        let mut evaluator = self.evaluator(grid);
        let value = match evaluator.eval(&expr, grid)? {
            Evaluated::Scalar(values) => Value::Scalar {
                t: time_ms,
                v: values[0],
            },
            Evaluated::String(v) => Value::String { t: time_ms, v },
            Evaluated::Vector(rows) => {
                let rows = eval::remove_dropped_names(rows);
                eval::check_unique(&rows)?;
                Value::Vector(
                    rows.into_iter()
                        .filter(|row| !absent(row.values[0]))
                        .map(|row| Sample {
                            labels: row.labels,
                            t: time_ms,
                            v: row.values[0],
                        })
                        .collect(),
                )
            }
            Evaluated::Ranges(ranges) => {
                let end = ranges.ends[0];
                let mut series = Vec::new();
                for row in &ranges.rows {
                    let points = row.points(&evaluator.budget)?;
                    let points =
                        window(&points, end, ranges.range, &mut WindowCursor::default()).to_vec();
                    if !points.is_empty() {
                        evaluator.hold(points.len())?;
                        series.push(RangeSeries {
                            labels: row.labels.clone(),
                            points,
                        });
                    }
                }
                Value::Matrix(series)
            }
        };
        Ok(finish(value, evaluator, started))
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms`.
    pub fn range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        if step_ms <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(QueryError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        let started = Instant::now();
        let expr = parse(query)?;
        let grid = Grid {
            start: start_ms,
            end: end_ms,
            step: step_ms,
        };
        let mut evaluator = self.evaluator(grid);
        evaluator.range_query = true;
        let rows = match evaluator.eval(&expr, grid)? {
            Evaluated::Scalar(values) => vec![eval::Row {
                labels: crate::storage::Labels::from_sorted(Vec::new()),
                values, drop_name: false,
            }],
            Evaluated::Vector(rows) => eval::merge_rows(eval::remove_dropped_names(rows))?,
            Evaluated::String(_) | Evaluated::Ranges(_) => {
                return Err(QueryError::BadData(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    if matches!(expr, promql_parser::parser::Expr::StringLiteral(_)) {
                        "string"
                    } else {
                        "range vector"
                    }
                )))
            }
        };
        let mut series: Vec<RangeSeries> = rows
            .into_iter()
            .map(|row| RangeSeries {
                points: row
                    .values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| !absent(**v))
                    .map(|(i, v)| (grid.at(i), *v))
                    .collect(),
                labels: row.labels,
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(finish(Value::Matrix(series), evaluator, started))
    }

    /// The same engine with at most `timeout` per query (a request's
    /// `timeout` parameter; the configured one still bounds it).
    pub fn with_timeout(&self, timeout: Duration) -> Engine {
        Engine {
            queryable: self.queryable.clone(),
            options: EngineOptions {
                timeout: timeout.min(self.options.timeout),
                ..self.options
            },
        }
    }

    fn evaluator(&self, grid: Grid) -> Evaluator<'_> {
        Evaluator::new(
            &self.queryable,
            grid,
            self.options.lookback_delta_ms,
            Budget::new(
                self.options.max_samples,
                Instant::now() + self.options.timeout,
            ),
        )
    }
}

fn parse(query: &str) -> Result<promql_parser::parser::Expr, QueryError> {
    promql_parser::parser::parse(query).map_err(QueryError::BadData)
}

fn finish(value: Value, evaluator: Evaluator<'_>, started: Instant) -> QueryResult {
    QueryResult {
        value,
        stats: value::QueryStats {
            total_queryable_samples: evaluator.budget.loaded() as u64,
            peak_samples: evaluator.budget.peak() as u64,
            eval_seconds: started.elapsed().as_secs_f64(),
        },
        warnings: evaluator.notes.warnings,
        infos: evaluator.notes.infos,
    }
}
