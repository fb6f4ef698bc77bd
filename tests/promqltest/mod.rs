//! A runner for Prometheus's PromQL test scripts (the promqltest language of
//! `promql/promqltest`, documented in its README and implemented by its
//! `test.go`), driving fleetmon's PromQL engine over an in-memory store.
//!
//! - [`values`]: durations, numbers and the `a+bxN` value notation;
//! - [`series`]: series lines `metric{labels} values`;
//! - [`script`]: the commands (`load`, `clear`, `eval …` with `expect …`);
//! - [`store`]: the [`fleetmon::promql::Queryable`] loads go into;
//! - [`compare`]: result comparison with `test.go`'s tolerances;
//! - [`runner`]: executes a script and gives each eval a verdict.

pub mod compare;
pub mod runner;
pub mod script;
pub mod series;
pub mod store;
pub mod values;

/// Unit tests of the script reader (the whole crate is a test crate).
mod tests;
