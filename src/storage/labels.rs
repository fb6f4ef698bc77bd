//! The one label-set type, [`Labels`]: label pairs sorted by name, names
//! unique, no empty values — Prometheus's invariants, checked once where a
//! label set enters fleetmon ([`Labels::new`]) so that everything downstream
//! can rely on them. Also the stale-marker bit pattern.

use std::fmt;

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Prometheus's stale marker: a NaN with this exact bit pattern means "the
/// series ended here"; any other NaN is an ordinary value.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The stale marker as an `f64`.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `value` is the stale marker (bit-exact, not just any NaN).
pub fn is_stale_nan(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// Why a label set was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelError {
    /// A label name is empty.
    EmptyName,
    /// The same name appears twice.
    DuplicateName(String),
    /// The series has no metric name.
    MissingMetricName,
    /// No labels at all (once empty values are dropped).
    Empty,
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::EmptyName => write!(f, "a label name is empty"),
            LabelError::DuplicateName(name) => write!(f, "duplicate label name \"{name}\""),
            LabelError::MissingMetricName => write!(f, "the series has no metric name (__name__)"),
            LabelError::Empty => write!(f, "the label set is empty"),
        }
    }
}

impl std::error::Error for LabelError {}

/// A valid label set, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Validates and sorts `pairs` as Prometheus 3 does on ingestion: labels
    /// with an empty value are dropped (an empty value means "absent"), names
    /// must be non-empty (any UTF-8, as Prometheus 3 allows) and unique, and a
    /// metric name is required.
    pub fn new<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<Labels, LabelError>
    where
        N: Into<String>,
        V: Into<String>,
    {
        let owned: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(n, v)| (n.into(), v.into()))
            .collect();
        Ok(LabelsRef::new(&owned)?.to_owned())
    }

    /// Builds a label set from pairs already known to be valid and sorted
    /// (read back from fleetmon's own store).
    pub(crate) fn from_sorted(pairs: Vec<(String, String)>) -> Labels {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        Labels(pairs)
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// The metric name.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The pairs, sorted by name.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The pairs as borrowed strings, the shape the WAL and the head take.
    pub fn str_pairs(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false for a validated set; here for completeness with `len`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Removes the label `name`, if there; the others keep their order.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| n != name);
    }

    /// A hash that is the same in every process (it places series in head
    /// shards, so it is part of the on-disk format of series refs).
    pub fn stable_hash(&self) -> u64 {
        stable_hash(as_str_pairs(&self.0))
    }
}

/// A validated label set borrowed from the caller's pairs: what the append
/// path checks and hashes without copying a string for series that exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelsRef<'a>(Vec<(&'a str, &'a str)>);

impl<'a> LabelsRef<'a> {
    /// Validates `pairs` as [`Labels::new`] does.
    pub fn new(pairs: &'a [(String, String)]) -> Result<LabelsRef<'a>, LabelError> {
        let mut labels = Vec::with_capacity(pairs.len());
        push_validated(as_str_pairs(pairs), &mut labels)?;
        Ok(LabelsRef(labels))
    }

    /// The pairs, sorted by name.
    pub fn pairs(&self) -> &[(&'a str, &'a str)] {
        &self.0
    }

    /// The same hash as [`Labels::stable_hash`] of the owned set.
    pub fn stable_hash(&self) -> u64 {
        stable_hash(self.0.iter().copied())
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Labels {
        Labels(
            self.0
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }
}

/// Owned label pairs as borrowed ones, without collecting them.
pub fn as_str_pairs(pairs: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
}

/// Validates `pairs` as [`Labels::new`] does and appends them to `out`,
/// sorted by name; on error `out` is left as it was. The append path
/// validates every series of a batch into one vector this way.
pub fn push_validated<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    out: &mut Vec<(&'a str, &'a str)>,
) -> Result<(), LabelError> {
    let start = out.len();
    out.extend(pairs.filter(|(_, v)| !v.is_empty()));
    let checked = check_set(&mut out[start..]);
    if checked.is_err() {
        out.truncate(start);
    }
    checked
}

/// Sorts a label set by name and checks it: not empty, names non-empty and
/// unique, a metric name present.
fn check_set(labels: &mut [(&str, &str)]) -> Result<(), LabelError> {
    if labels.is_empty() {
        return Err(LabelError::Empty);
    }
    // Senders nearly always send labels sorted: strictly ascending names
    // need neither the sort nor the duplicate check.
    if !labels.windows(2).all(|pair| pair[0].0 < pair[1].0) {
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if let Some(pair) = labels.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(LabelError::DuplicateName(pair[0].0.to_string()));
        }
    }
    if labels.iter().any(|(n, _)| n.is_empty()) {
        return Err(LabelError::EmptyName);
    }
    if !labels.iter().any(|(n, _)| *n == METRIC_NAME) {
        return Err(LabelError::MissingMetricName);
    }
    Ok(())
}

/// Hashes names and values eight bytes at a time, with separators that
/// cannot occur in UTF-8 so that `("ab","c")` and `("a","bc")` differ.
pub(crate) fn stable_hash<'s>(pairs: impl Iterator<Item = (&'s str, &'s str)>) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut hash: u64 = 0x243f_6a88_85a3_08d3;
    let mut mix = |bytes: &[u8], separator: u8| {
        let mut words = bytes.chunks_exact(8);
        for word in words.by_ref() {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            hash = (hash ^ u64::from_le_bytes(w))
                .wrapping_mul(K)
                .rotate_left(31);
        }
        let mut tail = [separator; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        hash = (hash ^ u64::from_le_bytes(tail) ^ bytes.len() as u64)
            .wrapping_mul(K)
            .rotate_left(31);
    };
    for (name, value) in pairs {
        mix(name.as_bytes(), 0xff);
        mix(value.as_bytes(), 0xfe);
    }
    // Final avalanche (from MurmurHash3's fmix64), so the low bits used for sharding are well mixed.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

impl fmt::Display for Labels {
    /// `metric{a="b",c="d"}` with Go-style escaping, as Prometheus prints series.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name().unwrap_or_default();
        write!(f, "{name}{{")?;
        let mut first = true;
        for (n, v) in self.0.iter().filter(|(n, _)| n != METRIC_NAME) {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{n}=\"")?;
            for c in v.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_with_empty_values_dropped() {
        let labels = Labels::new([("job", "api"), ("__name__", "up"), ("env", "")]).unwrap();
        assert_eq!(
            labels.pairs(),
            &[
                ("__name__".to_string(), "up".to_string()),
                ("job".to_string(), "api".to_string())
            ]
        );
        assert_eq!(labels.get("env"), None);
        assert_eq!(labels.metric_name(), Some("up"));
    }

    #[test]
    fn invalid_sets_are_refused_with_the_reason() {
        assert_eq!(
            Labels::new([("__name__", "up"), ("a", "1"), ("a", "2")]),
            Err(LabelError::DuplicateName("a".into()))
        );
        assert_eq!(
            Labels::new([("__name__", "up"), ("", "x")]),
            Err(LabelError::EmptyName)
        );
        assert_eq!(
            Labels::new([("job", "x")]),
            Err(LabelError::MissingMetricName)
        );
        assert_eq!(Labels::new([("__name__", "")]), Err(LabelError::Empty));
        assert!(
            Labels::new([("__name__", "up"), ("läbel.name", "ok")]).is_ok(),
            "UTF-8 names, as Prometheus 3"
        );
    }

    #[test]
    fn display_and_hash() {
        let a = Labels::new([("__name__", "m"), ("b", "x\"y\\\n")]).unwrap();
        assert_eq!(a.to_string(), r#"m{b="x\"y\\\n"}"#);
        let b = Labels::new([("b", "x\"y\\\n"), ("__name__", "m")]).unwrap();
        assert_eq!(a.stable_hash(), b.stable_hash());
        let c = Labels::new([("__name__", "m"), ("b", "x")]).unwrap();
        assert_ne!(a.stable_hash(), c.stable_hash());
        let split = |n: &str, v: &str| {
            Labels::new([("__name__", "m"), (n, v)])
                .unwrap()
                .stable_hash()
        };
        assert_ne!(split("ab", "c"), split("a", "bc"));
        let raw = vec![
            ("b".to_string(), "x\"y\\\n".to_string()),
            ("__name__".to_string(), "m".to_string()),
        ];
        assert_eq!(LabelsRef::new(&raw).unwrap().stable_hash(), a.stable_hash());
        assert_eq!(LabelsRef::new(&raw).unwrap().to_owned(), a);
    }

    #[test]
    fn stale_marker_is_bit_exact() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
    }
}
