//! Metric metadata (`# TYPE`, `# HELP`, `# UNIT`) as a target exposes it,
//! kept per target for `/api/v1/metadata`. A family's entry lives as long
//! as the target keeps exposing it; the shared copy the API reads is only
//! replaced when something changed, so steady scrapes allocate nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::scrape::exposition::{Entry, MetricType};

/// One family's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Its type (`unknown` when not declared).
    pub kind: MetricType,
    /// Its help text.
    pub help: String,
    /// Its unit (OpenMetrics), or empty.
    pub unit: String,
}

/// A target's metadata, by family name.
pub type MetadataMap = HashMap<String, Metadata>;

/// The loop's side: updated while parsing, published after a scrape.
#[derive(Default)]
pub struct MetadataCache {
    families: HashMap<String, (Metadata, u64)>,
    changed: bool,
    shared: Arc<Mutex<Arc<MetadataMap>>>,
}

impl MetadataCache {
    /// A cache publishing to `shared`.
    pub fn new(shared: Arc<Mutex<Arc<MetadataMap>>>) -> MetadataCache {
        MetadataCache {
            families: HashMap::new(),
            changed: false,
            shared,
        }
    }

    /// Takes in a metadata entry of scrape `iteration`; other entries are ignored.
    pub fn note(&mut self, entry: &Entry<'_>, iteration: u64) {
        let (metric, update): (&str, &dyn Fn(&mut Metadata) -> bool) = match entry {
            Entry::Help { metric, text } => (metric, &|m: &mut Metadata| set(&mut m.help, text)),
            Entry::Type { metric, kind } => (metric, &|m: &mut Metadata| {
                let changed = m.kind != *kind;
                m.kind = *kind;
                changed
            }),
            Entry::Unit { metric, unit } => (metric, &|m: &mut Metadata| set(&mut m.unit, unit)),
            Entry::Sample(_) => return,
        };
        match self.families.get_mut(metric) {
            Some((metadata, seen)) => {
                *seen = iteration;
                self.changed |= update(metadata);
            }
            None => {
                let mut metadata = Metadata {
                    kind: MetricType::Unknown,
                    help: String::new(),
                    unit: String::new(),
                };
                update(&mut metadata);
                self.families
                    .insert(metric.to_string(), (metadata, iteration));
                self.changed = true;
            }
        }
    }

    /// After a successful scrape: forgets families it did not expose and
    /// publishes the result if anything changed.
    pub fn publish(&mut self, iteration: u64) {
        let before = self.families.len();
        self.families.retain(|_, (_, seen)| *seen == iteration);
        self.changed |= self.families.len() != before;
        if !std::mem::take(&mut self.changed) {
            return;
        }
        let map: MetadataMap = self
            .families
            .iter()
            .map(|(name, (metadata, _))| (name.clone(), metadata.clone()))
            .collect();
        if let Ok(mut shared) = self.shared.lock() {
            *shared = Arc::new(map);
        }
    }
}

fn set(field: &mut String, value: &str) -> bool {
    if field == value {
        return false;
    }
    value.clone_into(field);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::exposition::{Format, Parser};

    #[test]
    fn keeps_what_the_last_scrape_declared() {
        let shared = Arc::new(Mutex::new(Arc::new(MetadataMap::new())));
        let mut cache = MetadataCache::new(shared.clone());
        let scrape = |cache: &mut MetadataCache, text: &str, iteration| {
            let mut parser = Parser::new(text.as_bytes(), Format::Text);
            while let Some(Ok(entry)) = parser.next_entry() {
                cache.note(&entry, iteration);
            }
            cache.publish(iteration);
        };
        scrape(
            &mut cache,
            "# HELP a_total Things.\n# TYPE a_total counter\na_total 1\n# TYPE b gauge\nb 2\n",
            1,
        );
        let first = shared.lock().unwrap().clone();
        assert_eq!(first["a_total"].help, "Things.");
        assert_eq!(first["a_total"].kind, MetricType::Counter);
        assert_eq!(first["b"].kind, MetricType::Gauge);
        // The same scrape again publishes nothing new.
        scrape(
            &mut cache,
            "# HELP a_total Things.\n# TYPE a_total counter\na_total 1\n# TYPE b gauge\nb 2\n",
            2,
        );
        assert!(Arc::ptr_eq(&first, &shared.lock().unwrap()));
        // A family that is gone goes.
        scrape(&mut cache, "# TYPE b gauge\nb 2\n", 3);
        assert!(!shared.lock().unwrap().contains_key("a_total"));
    }
}
