//! The configuration in force and how its last (re)load went: written by the
//! server's reloader, read by the status API (`status/config`,
//! `status/runtimeinfo`). A failed reload keeps the configuration that runs,
//! so what is shown is always what runs.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use super::Config;

/// The running configuration, shared between the reloader and the API.
#[derive(Debug)]
pub struct LiveConfig {
    current: RwLock<Arc<Config>>,
    last_reload_successful: AtomicBool,
    last_success_ms: AtomicI64,
}

impl LiveConfig {
    /// The configuration loaded at start, `now_ms` being when.
    pub fn new(config: Config, now_ms: i64) -> LiveConfig {
        LiveConfig {
            current: RwLock::new(Arc::new(config)),
            last_reload_successful: AtomicBool::new(true),
            last_success_ms: AtomicI64::new(now_ms),
        }
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Config> {
        // A poisoned lock still holds a whole Arc: the writer only swaps it.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records a successful load of `config` at `now_ms`; it is now in force.
    pub fn loaded(&self, config: Config, now_ms: i64) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        self.last_reload_successful.store(true, Ordering::Release);
        self.last_success_ms.store(now_ms, Ordering::Release);
    }

    /// Records a refused reload; the configuration in force stays.
    pub fn failed(&self) {
        self.last_reload_successful.store(false, Ordering::Release);
    }

    /// Whether the last load or reload succeeded.
    pub fn last_reload_successful(&self) -> bool {
        self.last_reload_successful.load(Ordering::Acquire)
    }

    /// When the configuration in force was loaded, in Unix ms.
    pub fn last_success_ms(&self) -> i64 {
        self.last_success_ms.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_reload_keeps_the_running_config() {
        let live = LiveConfig::new(Config::default(), 1_000);
        let mut next = Config::default();
        next.rule_files.push("rules.yml".into());
        live.loaded(next, 2_000);
        assert_eq!(live.current().rule_files, ["rules.yml"]);
        assert_eq!(live.last_success_ms(), 2_000);
        live.failed();
        assert!(!live.last_reload_successful());
        assert_eq!(live.current().rule_files, ["rules.yml"]);
        assert_eq!(live.last_success_ms(), 2_000);
    }
}
