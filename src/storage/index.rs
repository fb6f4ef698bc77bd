//! Selection of series by label matchers, the same way over every source
//! (the head's inverted index, a block's postings): [`select_postings`]
//! implements Prometheus's rule once, over the [`LabelIndex`] a source
//! provides.

use super::matcher::Matcher;
use super::postings;

/// What a source of series must answer for matcher evaluation.
pub trait LabelIndex {
    /// The source's read error.
    type Error;
    /// The union of the postings of every value of `name` that `accept` accepts.
    fn postings_where(
        &self,
        name: &str,
        accept: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<u64>, Self::Error>;
    /// Every series of the source, sorted.
    fn all_postings(&self) -> Result<Vec<u64>, Self::Error>;
}

/// The sorted ids of the series satisfying every matcher.
///
/// Matchers that reject the empty value select series by the values they
/// accept; matchers that accept it (so also series without the label, which
/// Prometheus treats as having it empty) remove the series whose value they
/// reject. With only the latter kind, the start is every series.
pub fn select_postings<I: LabelIndex>(
    index: &I,
    matchers: &[Matcher],
) -> Result<Vec<u64>, I::Error> {
    let mut positive = Vec::new();
    let mut negative = Vec::new();
    for m in matchers {
        if m.matches_empty() {
            negative.push(index.postings_where(&m.name, &|v| !m.matches(v))?);
        } else {
            positive.push(index.postings_where(&m.name, &|v| m.matches(v))?);
        }
    }
    let mut result = if positive.is_empty() {
        index.all_postings()?
    } else {
        postings::intersect_many(positive)
    };
    for exclude in negative {
        result = postings::subtract(&result, &exclude);
    }
    Ok(result)
}
