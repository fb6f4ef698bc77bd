//! fleetmon's own metrics: a small registry of counter, gauge, histogram and
//! summary families with labels, scrape-time collectors (process metrics), and
//! the encoders for the Prometheus text format 0.0.4 and OpenMetrics 1.0.
//!
//! Families are registered once (usually at startup) on a [`Registry`]; the
//! returned `*Vec` handles are cheap to clone and hand out. `with()` resolves a
//! label-value combination to a series handle with a single read-locked hash
//! lookup that does not allocate; callers on very hot paths may also keep the
//! returned [`Counter`]/[`Gauge`]/... handle around and skip even that.
//!
//! [`Registry::encode`] renders everything for a scrape; pick the format with
//! [`Format::negotiate`] from the request's `Accept` header and send
//! [`Format::content_type`] back as `Content-Type`.

mod encode;
mod process;

pub use self::encode::Format;
pub use self::process::ProcessCollector;

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Default histogram buckets (seconds), the same as the Go and Python clients'.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Something that produces whole families at scrape time (process metrics,
/// fleet gauges computed on demand).
///
/// Contract for the returned families (the encoder writes samples verbatim,
/// in the order given):
/// - `FamilySnapshot::name` is the family name; for counters it is the name
///   *without* `_total` and the samples carry the suffix `"_total"`.
/// - Histogram samples are grouped per series: `_bucket` samples with
///   cumulative counts and ascending `le` (last label, ending with `+Inf`),
///   then `_sum` and `_count`.
/// - A family whose name is not a valid metric name, or whose exposed sample
///   names clash with an earlier family (static or collected), is dropped from
///   the output; so is a sample with an invalid label name. This keeps one bad
///   collector from making the whole scrape unparsable.
pub trait Collector: Send + Sync {
    /// Produces the current state of this collector's families.
    fn collect(&self) -> Vec<FamilySnapshot>;
}

/// Point-in-time contents of one metric family, as produced by a
/// [`Collector`] or by the registry's own families before encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilySnapshot {
    /// Family name; for counters without the `_total` suffix.
    pub name: String,
    /// Help text (unescaped; the encoder escapes it).
    pub help: String,
    /// Metric type of the family.
    pub kind: Kind,
    /// Samples, written in this order.
    pub samples: Vec<SampleSnapshot>,
}

/// One sample line of a family.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSnapshot {
    /// Appended to the family name: `""`, `"_total"`, `"_bucket"`, `"_count"`
    /// or `"_sum"`.
    pub suffix: &'static str,
    /// Label names and (unescaped) values, in output order.
    pub labels: Vec<(String, String)>,
    /// Sample value.
    pub value: f64,
}

/// Metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter, exposed as `<name>_total`.
    Counter,
    /// Value that can go up and down.
    Gauge,
    /// Cumulative buckets plus `_sum` and `_count`.
    Histogram,
    /// `_sum` and `_count` only (no quantiles).
    Summary,
}

// ---------------------------------------------------------------------------
// Registry

/// A set of metric families and collectors that is encoded as a whole.
///
/// `Send + Sync`; share it behind an `Arc`.
pub struct Registry {
    families: RwLock<Vec<Registered>>,
    collectors: RwLock<Vec<Arc<dyn Collector>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// Creates an empty registry.
    pub fn new() -> Registry {
        Registry {
            families: RwLock::new(Vec::new()),
            collectors: RwLock::new(Vec::new()),
        }
    }

    /// Registers a counter family. `name` is the family name WITHOUT `_total`;
    /// samples are written as `<name>_total`.
    ///
    /// Registering the same name again with the same kind and label names
    /// returns a handle to the existing family (the first help text wins).
    ///
    /// # Panics
    /// On programming errors, at registration time: an invalid metric or label
    /// name, a duplicate or reserved (`__…`) label name, a `name` ending in
    /// `_total`, or a name whose exposed sample names clash with an already
    /// registered family of a different shape.
    pub fn counter(&self, name: &str, help: &str, label_names: &[&str]) -> CounterVec {
        assert!(
            !name.ends_with("_total"),
            "counter {name:?}: pass the family name without the `_total` suffix"
        );
        self.register(
            Kind::Counter,
            name,
            label_names,
            &[],
            |existing| match existing {
                Registered::Counter(v) => Some(v.clone()),
                _ => None,
            },
            |label_names| {
                let v = CounterVec {
                    family: Arc::new(Family::new(name, help, label_names)),
                };
                (v.clone(), Registered::Counter(v))
            },
        )
    }

    /// Registers a gauge family.
    ///
    /// Re-registration as for [`Registry::counter`].
    ///
    /// # Panics
    /// As for [`Registry::counter`], minus the `_total` rule.
    pub fn gauge(&self, name: &str, help: &str, label_names: &[&str]) -> GaugeVec {
        self.register(
            Kind::Gauge,
            name,
            label_names,
            &[],
            |existing| match existing {
                Registered::Gauge(v) => Some(v.clone()),
                _ => None,
            },
            |label_names| {
                let v = GaugeVec {
                    family: Arc::new(Family::new(name, help, label_names)),
                };
                (v.clone(), Registered::Gauge(v))
            },
        )
    }

    /// Registers a histogram family with the given bucket upper bounds
    /// (e.g. [`DEFAULT_BUCKETS`]); the `+Inf` bucket is appended
    /// automatically (a trailing `+Inf` in `buckets` is accepted and ignored).
    ///
    /// Re-registration as for [`Registry::counter`]; the buckets must match too.
    ///
    /// # Panics
    /// As for [`Registry::gauge`], and also if `buckets` is not strictly
    /// ascending, contains NaN or a non-trailing infinity, or if `le` is used
    /// as a label name. These are programming errors caught at startup.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        buckets: &[f64],
    ) -> HistogramVec {
        let bounds = match buckets.split_last() {
            Some((last, rest)) if *last == f64::INFINITY => rest,
            _ => buckets,
        };
        assert!(
            bounds.iter().all(|b| b.is_finite()),
            "histogram {name:?}: bucket bounds must be finite (+Inf is appended automatically): {buckets:?}"
        );
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "histogram {name:?}: bucket bounds must be strictly ascending: {buckets:?}"
        );
        assert!(
            !label_names.contains(&"le"),
            "histogram {name:?}: `le` is a reserved label name"
        );
        self.register(
            Kind::Histogram,
            name,
            label_names,
            bounds,
            |existing| match existing {
                Registered::Histogram(v) => Some(v.clone()),
                _ => None,
            },
            |label_names| {
                let v = HistogramVec {
                    family: Arc::new(Family::new(name, help, label_names)),
                    bounds: bounds.into(),
                };
                (v.clone(), Registered::Histogram(v))
            },
        )
    }

    /// Registers a summary family without quantiles: only `_count` and `_sum`
    /// are exposed.
    ///
    /// Re-registration as for [`Registry::counter`].
    ///
    /// # Panics
    /// As for [`Registry::gauge`], and also if `quantile` is used as a label
    /// name.
    pub fn summary(&self, name: &str, help: &str, label_names: &[&str]) -> SummaryVec {
        assert!(
            !label_names.contains(&"quantile"),
            "summary {name:?}: `quantile` is a reserved label name"
        );
        self.register(
            Kind::Summary,
            name,
            label_names,
            &[],
            |existing| match existing {
                Registered::Summary(v) => Some(v.clone()),
                _ => None,
            },
            |label_names| {
                let v = SummaryVec {
                    family: Arc::new(Family::new(name, help, label_names)),
                };
                (v.clone(), Registered::Summary(v))
            },
        )
    }

    /// Adds a collector that is asked for its families on every
    /// [`Registry::encode`]; its families are written after all registered
    /// families, collectors in registration order.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        write(&self.collectors).push(Arc::from(collector));
    }

    /// Renders all families (registered ones first, then collectors') in the
    /// given exposition format.
    pub fn encode(&self, format: Format) -> String {
        // Clone the handles and release the locks before reading values or
        // calling collectors, so a collector may itself use the registry.
        let families: Vec<Registered> = read(&self.families).clone();
        let collectors: Vec<Arc<dyn Collector>> = read(&self.collectors).clone();

        let mut taken: HashSet<String> = HashSet::new();
        let mut snapshots = Vec::with_capacity(families.len());
        for family in &families {
            taken.extend(exposed_names(family.kind(), family.name()));
            snapshots.push(family.snapshot());
        }
        for collector in &collectors {
            for mut family in collector.collect() {
                let names = exposed_names(family.kind, &family.name);
                if !valid_metric_name(&family.name) || names.iter().any(|n| taken.contains(n)) {
                    continue;
                }
                taken.extend(names);
                family
                    .samples
                    .retain(|s| s.labels.iter().all(|(n, _)| valid_label_name(n)));
                snapshots.push(family);
            }
        }
        encode::encode(&snapshots, format)
    }

    /// Validates and registers a family, or returns the existing one of the
    /// same shape. `reuse` extracts the handle from a same-named entry (None if
    /// it is of another kind); `create` builds a new handle and its entry.
    fn register<T>(
        &self,
        kind: Kind,
        name: &str,
        label_names: &[&str],
        bounds: &[f64],
        reuse: impl Fn(&Registered) -> Option<T>,
        create: impl FnOnce(Vec<String>) -> (T, Registered),
    ) -> T {
        assert!(valid_metric_name(name), "invalid metric name {name:?}");
        for (i, label) in label_names.iter().enumerate() {
            assert!(
                valid_label_name(label),
                "metric {name:?}: invalid label name {label:?}"
            );
            assert!(
                !label_names[..i].contains(label),
                "metric {name:?}: duplicate label name {label:?}"
            );
        }

        let mut families = write(&self.families);
        if let Some(existing) = families.iter().find(|f| f.name() == name) {
            let same_shape = existing.family_label_names().iter().eq(label_names.iter())
                && existing.bounds() == bounds;
            if let Some(handle) = reuse(existing).filter(|_| same_shape) {
                return handle;
            }
            panic!("metric {name:?} is already registered with another kind, labels or buckets");
        }
        let names = exposed_names(kind, name);
        if let Some(clash) = families.iter().find(|f| {
            exposed_names(f.kind(), f.name())
                .iter()
                .any(|n| names.contains(n))
        }) {
            panic!(
                "metric {name:?} clashes with the sample names of registered family {:?}",
                clash.name()
            );
        }
        let (handle, entry) = create(label_names.iter().map(|l| l.to_string()).collect());
        families.push(entry);
        handle
    }
}

/// Sample names (and, for counters, the OpenMetrics family name) that a family
/// of this kind and name puts into the exposition; two families must not share
/// any of them.
fn exposed_names(kind: Kind, name: &str) -> Vec<String> {
    let suffixes: &[&str] = match kind {
        Kind::Counter => &["", "_total", "_created"],
        Kind::Gauge => &[""],
        Kind::Histogram => &["", "_bucket", "_count", "_sum", "_created"],
        Kind::Summary => &["", "_count", "_sum", "_created"],
    };
    suffixes.iter().map(|s| format!("{name}{s}")).collect()
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with the reserved `__`.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// A registered family, by kind.
#[derive(Clone)]
enum Registered {
    Counter(CounterVec),
    Gauge(GaugeVec),
    Histogram(HistogramVec),
    Summary(SummaryVec),
}

impl Registered {
    fn kind(&self) -> Kind {
        match self {
            Registered::Counter(_) => Kind::Counter,
            Registered::Gauge(_) => Kind::Gauge,
            Registered::Histogram(_) => Kind::Histogram,
            Registered::Summary(_) => Kind::Summary,
        }
    }

    fn name(&self) -> &str {
        self.head().0
    }

    fn family_label_names(&self) -> &[String] {
        self.head().1
    }

    /// Name and label names of the family.
    fn head(&self) -> (&str, &[String]) {
        match self {
            Registered::Counter(v) => (&v.family.name, &v.family.label_names),
            Registered::Gauge(v) => (&v.family.name, &v.family.label_names),
            Registered::Histogram(v) => (&v.family.name, &v.family.label_names),
            Registered::Summary(v) => (&v.family.name, &v.family.label_names),
        }
    }

    fn bounds(&self) -> &[f64] {
        match self {
            Registered::Histogram(v) => &v.bounds,
            _ => &[],
        }
    }

    fn snapshot(&self) -> FamilySnapshot {
        match self {
            Registered::Counter(v) => v.family.snapshot(Kind::Counter, |labels, cell, out| {
                out.push(sample("_total", labels, cell.get()));
            }),
            Registered::Gauge(v) => v.family.snapshot(Kind::Gauge, |labels, cell, out| {
                out.push(sample("", labels, cell.get()));
            }),
            Registered::Histogram(v) => v.family.snapshot(Kind::Histogram, |labels, h, out| {
                let mut cumulative = 0u64;
                for (i, count) in h.counts.iter().enumerate() {
                    cumulative += count.load(Ordering::Relaxed);
                    let le = v.bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    let mut labels = labels.clone();
                    labels.push(("le".to_string(), encode::format_value(le)));
                    out.push(sample("_bucket", labels, cumulative as f64));
                }
                out.push(sample("_sum", labels.clone(), h.sum.get()));
                // `_count` is derived from the buckets so that it always equals
                // the `+Inf` bucket, even while observations race the scrape.
                out.push(sample("_count", labels, cumulative as f64));
            }),
            Registered::Summary(v) => v.family.snapshot(Kind::Summary, |labels, s, out| {
                out.push(sample("_sum", labels.clone(), s.sum.get()));
                out.push(sample(
                    "_count",
                    labels,
                    s.count.load(Ordering::Relaxed) as f64,
                ));
            }),
        }
    }
}

fn sample(suffix: &'static str, labels: Vec<(String, String)>, value: f64) -> SampleSnapshot {
    SampleSnapshot {
        suffix,
        labels,
        value,
    }
}

// ---------------------------------------------------------------------------
// Locks

// Poisoning is ignored: every critical section leaves the data consistent
// (values are atomics, map updates are single insert/remove/retain calls), so
// a panic elsewhere while a guard was held must not take metrics down with it.

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// Families and series lookup

/// Label values of one series, in label-name order: the owned map key.
struct SeriesKey(Vec<String>);

/// Label values viewed as a sequence of strings, so that the map keyed by
/// [`SeriesKey`] can be probed with borrowed `&[&str]` without allocating.
trait LabelValues {
    fn len(&self) -> usize;
    fn value(&self, i: usize) -> &str;
}

impl LabelValues for SeriesKey {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn value(&self, i: usize) -> &str {
        &self.0[i]
    }
}

/// Borrowed lookup key.
struct Lookup<'a, 'b>(&'b [&'a str]);

impl LabelValues for Lookup<'_, '_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn value(&self, i: usize) -> &str {
        self.0[i]
    }
}

impl Hash for dyn LabelValues + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for i in 0..self.len() {
            self.value(i).hash(state);
        }
    }
}

impl PartialEq for dyn LabelValues + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && (0..self.len()).all(|i| self.value(i) == other.value(i))
    }
}

impl Eq for dyn LabelValues + '_ {}

// SeriesKey hashes and compares exactly like its `dyn LabelValues` view, as
// `Borrow` requires.
impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn LabelValues).hash(state);
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for SeriesKey {}

impl<'a> Borrow<dyn LabelValues + 'a> for SeriesKey {
    fn borrow(&self) -> &(dyn LabelValues + 'a) {
        self
    }
}

/// One family's metadata and series, shared by all clones of its `*Vec` handle.
struct Family<M> {
    name: String,
    help: String,
    label_names: Vec<String>,
    series: RwLock<HashMap<SeriesKey, Arc<M>>>,
}

impl<M> Family<M> {
    fn new(name: &str, help: &str, label_names: Vec<String>) -> Self {
        Family {
            name: name.to_string(),
            help: help.to_string(),
            label_names,
            series: RwLock::new(HashMap::new()),
        }
    }

    /// Returns `values` if it has one value per label name. Otherwise (a
    /// programming error: asserted in debug builds) truncates or pads with
    /// `""`, so a request path never panics in release builds.
    fn fit<'a>(&self, values: &[&'a str]) -> Vec<&'a str> {
        debug_assert_eq!(
            values.len(),
            self.label_names.len(),
            "metric {:?} has labels {:?}, got values {:?}",
            self.name,
            self.label_names,
            values
        );
        values
            .iter()
            .copied()
            .chain(std::iter::repeat(""))
            .take(self.label_names.len())
            .collect()
    }

    /// Finds the series for `values`, creating it with `make` if needed.
    fn get_or_create(&self, values: &[&str], make: impl FnOnce() -> M) -> Arc<M> {
        let fitted;
        let values = if values.len() == self.label_names.len() {
            values
        } else {
            fitted = self.fit(values);
            &fitted
        };
        if let Some(found) = read(&self.series).get(&Lookup(values) as &dyn LabelValues) {
            return Arc::clone(found);
        }
        let key = SeriesKey(values.iter().map(|v| v.to_string()).collect());
        Arc::clone(
            write(&self.series)
                .entry(key)
                .or_insert_with(|| Arc::new(make())),
        )
    }

    fn remove(&self, values: &[&str]) {
        let fitted = self.fit(values);
        write(&self.series).remove(&Lookup(&fitted) as &dyn LabelValues);
    }

    fn retain(&self, keep: impl Fn(&[String]) -> bool) {
        write(&self.series).retain(|key, _| keep(&key.0));
    }

    /// Snapshot of the family with series sorted by label values; `emit`
    /// appends the samples of one series given its labels.
    fn snapshot(
        &self,
        kind: Kind,
        emit: impl Fn(Vec<(String, String)>, &M, &mut Vec<SampleSnapshot>),
    ) -> FamilySnapshot {
        let mut series: Vec<(Vec<String>, Arc<M>)> = read(&self.series)
            .iter()
            .map(|(key, cell)| (key.0.clone(), Arc::clone(cell)))
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let mut samples = Vec::new();
        for (values, cell) in series {
            let labels = self.label_names.iter().cloned().zip(values).collect();
            emit(labels, &cell, &mut samples);
        }
        FamilySnapshot {
            name: self.name.clone(),
            help: self.help.clone(),
            kind,
            samples,
        }
    }
}

/// An `f64` stored as its bits in an `AtomicU64`.
#[derive(Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    fn add(&self, v: f64) {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(current) + v).to_bits();
            match self
                .0
                .compare_exchange_weak(current, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Counter

/// A counter family; `with()` selects one series by label values.
#[derive(Clone)]
pub struct CounterVec {
    family: Arc<Family<AtomicF64>>,
}

impl CounterVec {
    /// The series for `label_values` (one per label name, in order), created
    /// at 0 on first use. A wrong number of values is a programming error:
    /// it panics in debug builds and is truncated/padded with `""` in release.
    pub fn with(&self, label_values: &[&str]) -> Counter {
        Counter {
            cell: self.family.get_or_create(label_values, AtomicF64::default),
        }
    }
}

/// One counter series.
#[derive(Clone)]
pub struct Counter {
    cell: Arc<AtomicF64>,
}

impl Counter {
    /// Adds 1.
    pub fn inc(&self) {
        self.cell.add(1.0);
    }

    /// Adds `v`. Counters only go up: a negative or NaN `v` is a programming
    /// error (asserted in debug builds) and is ignored in release builds.
    pub fn inc_by(&self, v: f64) {
        debug_assert!(v >= 0.0, "counter increment must be >= 0, got {v}");
        if v.is_nan() || v < 0.0 {
            return;
        }
        self.cell.add(v);
    }

    /// Current value.
    pub fn get(&self) -> f64 {
        self.cell.get()
    }
}

// ---------------------------------------------------------------------------
// Gauge

/// A gauge family; `with()` selects one series by label values.
#[derive(Clone)]
pub struct GaugeVec {
    family: Arc<Family<AtomicF64>>,
}

impl GaugeVec {
    /// The series for `label_values` (one per label name, in order), created
    /// at 0 on first use. Wrong arity is handled as in [`CounterVec::with`].
    pub fn with(&self, label_values: &[&str]) -> Gauge {
        Gauge {
            cell: self.family.get_or_create(label_values, AtomicF64::default),
        }
    }

    /// Removes the series for `label_values` from the output (no-op if
    /// absent). `Gauge` handles obtained earlier keep working but are no
    /// longer exposed; a later `with()` starts a fresh series at 0.
    pub fn remove(&self, label_values: &[&str]) {
        self.family.remove(label_values);
    }

    /// Keeps only the series whose label values (in label-name order) satisfy
    /// `keep`; e.g. to drop gauges of vehicles that left the fleet.
    pub fn retain(&self, keep: impl Fn(&[String]) -> bool) {
        self.family.retain(keep);
    }
}

/// One gauge series.
#[derive(Clone)]
pub struct Gauge {
    cell: Arc<AtomicF64>,
}

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.cell.set(v);
    }

    /// Adds 1.
    pub fn inc(&self) {
        self.cell.add(1.0);
    }

    /// Subtracts 1.
    pub fn dec(&self) {
        self.cell.add(-1.0);
    }

    /// Current value.
    pub fn get(&self) -> f64 {
        self.cell.get()
    }
}

// ---------------------------------------------------------------------------
// Histogram

/// Per-series histogram state: non-cumulative bucket counts (last one is
/// `+Inf`) and the sum of observations. The count is the sum of the buckets.
struct HistogramCore {
    counts: Box<[AtomicU64]>,
    sum: AtomicF64,
}

/// A histogram family; `with()` selects one series by label values.
#[derive(Clone)]
pub struct HistogramVec {
    family: Arc<Family<HistogramCore>>,
    /// Finite upper bounds, strictly ascending; `+Inf` is implicit.
    bounds: Arc<[f64]>,
}

impl HistogramVec {
    /// The series for `label_values` (one per label name, in order), created
    /// empty on first use. Wrong arity is handled as in [`CounterVec::with`].
    pub fn with(&self, label_values: &[&str]) -> Histogram {
        let buckets = self.bounds.len() + 1;
        Histogram {
            core: self.family.get_or_create(label_values, || HistogramCore {
                counts: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
                sum: AtomicF64::default(),
            }),
            bounds: Arc::clone(&self.bounds),
        }
    }
}

/// One histogram series.
#[derive(Clone)]
pub struct Histogram {
    core: Arc<HistogramCore>,
    bounds: Arc<[f64]>,
}

impl Histogram {
    /// Records one observation: it lands in the first bucket whose upper
    /// bound is `>= v` (NaN lands in `+Inf` only), and is added to `_sum`.
    pub fn observe(&self, v: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&bound| v <= bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.core.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.core.sum.add(v);
    }
}

// ---------------------------------------------------------------------------
// Summary

/// Per-series summary state.
#[derive(Default)]
struct SummaryCore {
    count: AtomicU64,
    sum: AtomicF64,
}

/// A summary family (count and sum only); `with()` selects one series.
#[derive(Clone)]
pub struct SummaryVec {
    family: Arc<Family<SummaryCore>>,
}

impl SummaryVec {
    /// The series for `label_values` (one per label name, in order), created
    /// empty on first use. Wrong arity is handled as in [`CounterVec::with`].
    pub fn with(&self, label_values: &[&str]) -> Summary {
        Summary {
            core: self
                .family
                .get_or_create(label_values, SummaryCore::default),
        }
    }
}

/// One summary series.
#[derive(Clone)]
pub struct Summary {
    core: Arc<SummaryCore>,
}

impl Summary {
    /// Records one observation (increments `_count`, adds `v` to `_sum`).
    pub fn observe(&self, v: f64) {
        self.core.count.fetch_add(1, Ordering::Relaxed);
        self.core.sum.add(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A collector returning fixed families.
    struct Fixed(Vec<FamilySnapshot>);

    impl Collector for Fixed {
        fn collect(&self) -> Vec<FamilySnapshot> {
            self.0.clone()
        }
    }

    fn gauge_family(name: &str, value: f64) -> FamilySnapshot {
        FamilySnapshot {
            name: name.to_string(),
            help: format!("{name} help."),
            kind: Kind::Gauge,
            samples: vec![sample("", Vec::new(), value)],
        }
    }

    #[test]
    fn registry_is_send_sync_and_handles_are_too() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Registry>();
        assert_send_sync::<CounterVec>();
        assert_send_sync::<Counter>();
        assert_send_sync::<GaugeVec>();
        assert_send_sync::<Gauge>();
        assert_send_sync::<HistogramVec>();
        assert_send_sync::<Histogram>();
        assert_send_sync::<SummaryVec>();
        assert_send_sync::<Summary>();
    }

    #[test]
    fn counter_with_two_series() {
        let registry = Registry::new();
        let requests =
            registry.counter("http_requests", "Total HTTP requests.", &["method", "code"]);
        requests.with(&["POST", "500"]).inc();
        requests.with(&["GET", "200"]).inc_by(2.0);
        requests.with(&["GET", "200"]).inc();
        assert_eq!(requests.with(&["GET", "200"]).get(), 3.0);

        assert_eq!(
            registry.encode(Format::Text),
            "# HELP http_requests_total Total HTTP requests.\n\
             # TYPE http_requests_total counter\n\
             http_requests_total{method=\"GET\",code=\"200\"} 3\n\
             http_requests_total{method=\"POST\",code=\"500\"} 1\n"
        );
        assert_eq!(
            registry.encode(Format::OpenMetrics),
            "# HELP http_requests Total HTTP requests.\n\
             # TYPE http_requests counter\n\
             http_requests_total{method=\"GET\",code=\"200\"} 3\n\
             http_requests_total{method=\"POST\",code=\"500\"} 1\n\
             # EOF\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_le_last() {
        let registry = Registry::new();
        let latency = registry.histogram(
            "request_seconds",
            "Request latency.",
            &["path"],
            &[0.5, 1.0],
        );
        let h = latency.with(&["/a"]);
        for v in [0.25, 0.5, 0.75, 2.0] {
            h.observe(v);
        }
        assert_eq!(
            registry.encode(Format::Text),
            "# HELP request_seconds Request latency.\n\
             # TYPE request_seconds histogram\n\
             request_seconds_bucket{path=\"/a\",le=\"0.5\"} 2\n\
             request_seconds_bucket{path=\"/a\",le=\"1\"} 3\n\
             request_seconds_bucket{path=\"/a\",le=\"+Inf\"} 4\n\
             request_seconds_sum{path=\"/a\"} 3.5\n\
             request_seconds_count{path=\"/a\"} 4\n"
        );
        assert_eq!(
            registry.encode(Format::OpenMetrics),
            "# HELP request_seconds Request latency.\n\
             # TYPE request_seconds histogram\n\
             request_seconds_bucket{path=\"/a\",le=\"0.5\"} 2\n\
             request_seconds_bucket{path=\"/a\",le=\"1.0\"} 3\n\
             request_seconds_bucket{path=\"/a\",le=\"+Inf\"} 4\n\
             request_seconds_sum{path=\"/a\"} 3.5\n\
             request_seconds_count{path=\"/a\"} 4\n\
             # EOF\n"
        );
    }

    #[test]
    fn histogram_edge_observations() {
        let registry = Registry::new();
        // A trailing +Inf is accepted and not duplicated.
        let h = registry
            .histogram("h", "H.", &[], &[1.0, f64::INFINITY])
            .with(&[]);
        h.observe(f64::NAN);
        h.observe(-1.0);
        assert_eq!(
            registry.encode(Format::Text),
            "# HELP h H.\n\
             # TYPE h histogram\n\
             h_bucket{le=\"1\"} 1\n\
             h_bucket{le=\"+Inf\"} 2\n\
             h_sum NaN\n\
             h_count 2\n"
        );
    }

    #[test]
    fn default_buckets_le_values() {
        let registry = Registry::new();
        registry
            .histogram("d", "D.", &[], &DEFAULT_BUCKETS)
            .with(&[])
            .observe(0.003);
        let le = |format| {
            registry
                .encode(format)
                .lines()
                .filter_map(|l| l.strip_prefix("d_bucket{le=\""))
                .filter_map(|l| l.split('"').next())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            le(Format::Text),
            "0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf"
        );
        assert_eq!(
            le(Format::OpenMetrics),
            "0.005 0.01 0.025 0.05 0.1 0.25 0.5 1.0 2.5 5.0 10.0 +Inf"
        );
    }

    #[test]
    #[should_panic(expected = "strictly ascending")]
    fn unsorted_buckets_panic_at_registration() {
        Registry::new().histogram("h", "H.", &[], &[1.0, 0.5]);
    }

    #[test]
    fn summary_has_sum_and_count_only() {
        let registry = Registry::new();
        let s = registry.summary("payload_bytes", "Payload sizes.", &["kind"]);
        s.with(&["json"]).observe(1.5);
        s.with(&["json"]).observe(2.5);
        assert_eq!(
            registry.encode(Format::Text),
            "# HELP payload_bytes Payload sizes.\n\
             # TYPE payload_bytes summary\n\
             payload_bytes_sum{kind=\"json\"} 4\n\
             payload_bytes_count{kind=\"json\"} 2\n"
        );
        assert_eq!(
            registry.encode(Format::OpenMetrics),
            "# HELP payload_bytes Payload sizes.\n\
             # TYPE payload_bytes summary\n\
             payload_bytes_sum{kind=\"json\"} 4\n\
             payload_bytes_count{kind=\"json\"} 2\n\
             # EOF\n"
        );
    }

    #[test]
    fn escapes_label_values_and_help() {
        let registry = Registry::new();
        registry
            .gauge("g", "Back\\slash, \"quoted\"\nsecond line.", &["v"])
            .with(&["a\\b\"c\nd"])
            .set(-0.25);
        assert_eq!(
            registry.encode(Format::Text),
            "# HELP g Back\\\\slash, \"quoted\"\\nsecond line.\n\
             # TYPE g gauge\n\
             g{v=\"a\\\\b\\\"c\\nd\"} -0.25\n"
        );
        assert_eq!(
            registry.encode(Format::OpenMetrics),
            "# HELP g Back\\\\slash, \\\"quoted\\\"\\nsecond line.\n\
             # TYPE g gauge\n\
             g{v=\"a\\\\b\\\"c\\nd\"} -0.25\n\
             # EOF\n"
        );
    }

    #[test]
    fn empty_families_and_registry() {
        let registry = Registry::new();
        assert_eq!(registry.encode(Format::Text), "");
        assert_eq!(registry.encode(Format::OpenMetrics), "# EOF\n");
        registry.counter("c", "C.", &["x"]);
        assert_eq!(
            registry.encode(Format::Text),
            "# HELP c_total C.\n# TYPE c_total counter\n"
        );
        assert_eq!(
            registry.encode(Format::OpenMetrics),
            "# HELP c C.\n# TYPE c counter\n# EOF\n"
        );
    }

    #[test]
    fn value_formatting() {
        let cases = [
            (3.0, "3"),
            (0.0, "0"),
            (0.25, "0.25"),
            (0.00001, "0.00001"),
            (1e15, "1000000000000000"),
            (-2.5, "-2.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(encode::format_value(v), want);
        }
    }

    #[test]
    fn negotiate() {
        use Format::{OpenMetrics, Text};
        let cases = [
            (None, Text),
            (Some(""), Text),
            (Some("text/plain"), Text),
            (Some("*/*"), Text),
            (
                Some("application/openmetrics-text;version=1.0.0"),
                OpenMetrics,
            ),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                // Prometheus 2.42's scrape Accept header.
                Some(
                    "application/openmetrics-text;version=1.0.0,\
                     application/openmetrics-text;version=0.0.1;q=0.75,\
                     text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                OpenMetrics,
            ),
            (
                Some("application/openmetrics-text; version=1.0.0; q=0, text/plain"),
                Text,
            ),
            (Some("application/openmetrics-text;q=0"), Text),
            (Some("application/openmetrics-text;q=0.0,*/*"), Text),
            (
                Some("text/plain;q=0.2, Application/OpenMetrics-Text;Q=0.3"),
                OpenMetrics,
            ),
            (Some("text/plain, application/openmetrics-text;q=0.5"), Text),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(accept), want, "Accept: {accept:?}");
        }
        assert_eq!(
            Text.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
    }

    #[test]
    fn concurrent_increments_are_not_lost() {
        let registry = Registry::new();
        let hits = registry.counter("hits", "Hits.", &["route"]);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let hits = hits.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        hits.with(&["/"]).inc();
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        assert_eq!(hits.with(&["/"]).get(), 40_000.0);
        assert!(registry
            .encode(Format::Text)
            .contains("hits_total{route=\"/\"} 40000\n"));
    }

    #[test]
    fn gauge_set_inc_dec_remove_retain() {
        let registry = Registry::new();
        let soc = registry.gauge("vehicle_soc", "State of charge.", &["vin"]);
        soc.with(&["A"]).set(80.0);
        soc.with(&["B"]).set(50.0);
        soc.with(&["C"]).inc();
        soc.with(&["C"]).inc();
        soc.with(&["C"]).dec();
        assert_eq!(soc.with(&["C"]).get(), 1.0);
        soc.remove(&["B"]);
        soc.remove(&["missing"]);
        assert_eq!(
            registry.encode(Format::Text),
            "# HELP vehicle_soc State of charge.\n\
             # TYPE vehicle_soc gauge\n\
             vehicle_soc{vin=\"A\"} 80\n\
             vehicle_soc{vin=\"C\"} 1\n"
        );
        soc.retain(|values| values[0] != "A");
        assert!(!registry.encode(Format::Text).contains("\"A\""));
        assert_eq!(soc.with(&["B"]).get(), 0.0, "removed series restart at 0");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "has labels")]
    fn label_arity_mismatch_asserts_in_debug() {
        Registry::new().counter("c", "C.", &["a", "b"]).with(&["x"]);
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn label_arity_mismatch_is_fitted_in_release() {
        let registry = Registry::new();
        let c = registry.counter("c", "C.", &["a", "b"]);
        c.with(&["x"]).inc();
        c.with(&["x", "", "extra"]).inc();
        assert!(registry
            .encode(Format::Text)
            .contains("c_total{a=\"x\",b=\"\"} 2\n"));
    }

    #[test]
    fn reregistration_returns_the_same_family() {
        let registry = Registry::new();
        registry.counter("c", "C.", &["a"]).with(&["x"]).inc();
        registry
            .counter("c", "Other help.", &["a"])
            .with(&["x"])
            .inc();
        let h1 = registry.histogram("h", "H.", &[], &[1.0]);
        let h2 = registry.histogram("h", "H.", &[], &[1.0, f64::INFINITY]);
        h1.with(&[]).observe(0.5);
        h2.with(&[]).observe(0.5);
        let text = registry.encode(Format::Text);
        assert!(text.contains("# HELP c_total C.\n"));
        assert!(text.contains("c_total{a=\"x\"} 2\n"));
        assert!(text.contains("h_count 2\n"));
    }

    #[test]
    #[should_panic(expected = "already registered")]
    fn reregistration_with_other_labels_panics() {
        let registry = Registry::new();
        registry.gauge("g", "G.", &["a"]);
        registry.gauge("g", "G.", &["b"]);
    }

    #[test]
    #[should_panic(expected = "clashes")]
    fn clashing_sample_names_panic() {
        let registry = Registry::new();
        registry.counter("jobs", "Jobs.", &[]);
        registry.gauge("jobs_total", "Jobs.", &[]);
    }

    #[test]
    #[should_panic(expected = "without the `_total` suffix")]
    fn counter_name_with_total_panics() {
        Registry::new().counter("jobs_total", "Jobs.", &[]);
    }

    #[test]
    #[should_panic(expected = "invalid label name")]
    fn reserved_label_name_panics() {
        Registry::new().gauge("g", "G.", &["__name__"]);
    }

    #[test]
    fn collectors_come_after_static_families_and_clashes_are_dropped() {
        let registry = Registry::new();
        registry.register_collector(Box::new(Fixed(vec![
            gauge_family("second", 2.0),
            gauge_family("static_one", 9.0),
            gauge_family("bad name", 9.0),
        ])));
        registry.register_collector(Box::new(Fixed(vec![
            gauge_family("third", 3.0),
            gauge_family("second", 9.0),
        ])));
        registry
            .gauge("static_one", "static_one help.", &[])
            .with(&[])
            .set(1.0);
        assert_eq!(
            registry.encode(Format::Text),
            "# HELP static_one static_one help.\n\
             # TYPE static_one gauge\n\
             static_one 1\n\
             # HELP second second help.\n\
             # TYPE second gauge\n\
             second 2\n\
             # HELP third third help.\n\
             # TYPE third gauge\n\
             third 3\n"
        );
    }

    #[test]
    fn collector_counters_and_histograms_are_encoded_per_format() {
        let registry = Registry::new();
        registry.register_collector(Box::new(Fixed(vec![
            FamilySnapshot {
                name: "cpu_seconds".to_string(),
                help: "CPU.".to_string(),
                kind: Kind::Counter,
                samples: vec![sample("_total", Vec::new(), 1.5)],
            },
            FamilySnapshot {
                name: "lat".to_string(),
                help: "Lat.".to_string(),
                kind: Kind::Histogram,
                samples: vec![
                    sample("_bucket", vec![("le".into(), "2".into())], 1.0),
                    sample("_bucket", vec![("le".into(), "+Inf".into())], 1.0),
                    sample("_sum", Vec::new(), 1.0),
                    sample("_count", Vec::new(), 1.0),
                ],
            },
        ])));
        assert_eq!(
            registry.encode(Format::Text),
            "# HELP cpu_seconds_total CPU.\n\
             # TYPE cpu_seconds_total counter\n\
             cpu_seconds_total 1.5\n\
             # HELP lat Lat.\n\
             # TYPE lat histogram\n\
             lat_bucket{le=\"2\"} 1\n\
             lat_bucket{le=\"+Inf\"} 1\n\
             lat_sum 1\n\
             lat_count 1\n"
        );
        assert_eq!(
            registry.encode(Format::OpenMetrics),
            "# HELP cpu_seconds CPU.\n\
             # TYPE cpu_seconds counter\n\
             cpu_seconds_total 1.5\n\
             # HELP lat Lat.\n\
             # TYPE lat histogram\n\
             lat_bucket{le=\"2.0\"} 1\n\
             lat_bucket{le=\"+Inf\"} 1\n\
             lat_sum 1\n\
             lat_count 1\n\
             # EOF\n"
        );
    }
}
