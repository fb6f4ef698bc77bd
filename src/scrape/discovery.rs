//! Target discovery: the target groups of a job's `static_configs` and
//! `file_sd_configs`. File discovery reads JSON or YAML files (Prometheus's
//! format: a list of `{targets, labels}`), matching a `*` glob in the last
//! path element, and adds `__meta_filepath`. A file that cannot be read or
//! parsed keeps the groups it gave before, with the error logged, as
//! Prometheus does; a file that disappears takes its groups with it. This
//! module owns reading target files, not what becomes of the targets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use crate::config::{FileSdConfig, StaticConfig};

/// Most bytes read from one target file.
pub const MAX_TARGET_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Targets sharing labels, from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    /// Where the group comes from (`static:0`, `file:/etc/t.yml:1`).
    pub source: String,
    /// `host:port` of each target (`__address__`).
    pub targets: Vec<String>,
    /// Labels of every target of the group, `__meta_*` included.
    pub labels: BTreeMap<String, String>,
}

/// The groups of a job's `static_configs`.
pub fn static_groups(configs: &[StaticConfig]) -> Vec<TargetGroup> {
    configs
        .iter()
        .enumerate()
        .map(|(i, group)| TargetGroup {
            source: format!("static:{i}"),
            targets: group.targets.iter().map(|t| t.value.clone()).collect(),
            labels: group.labels.value.clone(),
        })
        .collect()
}

/// One entry of a target file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The state of one job's file discovery: the last good groups of each file
/// and the modification times they were read at.
#[derive(Debug, Default)]
pub struct FileDiscovery {
    patterns: Vec<PathBuf>,
    files: BTreeMap<PathBuf, (Option<SystemTime>, Vec<TargetGroup>)>,
}

impl FileDiscovery {
    /// Discovery over the files of `configs`, relative paths resolved
    /// against `base` (the config file's directory).
    pub fn new(configs: &[FileSdConfig], base: &Path) -> FileDiscovery {
        let patterns = configs
            .iter()
            .flat_map(|c| &c.files)
            .map(|f| crate::config::http_client::resolve(base, Path::new(&f.value)))
            .collect();
        FileDiscovery {
            patterns,
            files: BTreeMap::new(),
        }
    }

    /// Whether the job has any file discovery.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Re-reads files that appeared, changed or vanished (`force`: all of
    /// them); returns whether the groups changed.
    pub fn refresh(&mut self, force: bool) -> bool {
        let mut present: Vec<PathBuf> = self.patterns.iter().flat_map(|p| expand(p)).collect();
        present.sort();
        present.dedup();
        let mut changed = false;
        let before = self.files.len();
        self.files.retain(|path, _| present.contains(path));
        changed |= self.files.len() != before;
        for path in present {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            let known = self.files.get(&path);
            if !force && known.is_some_and(|(at, _)| *at == modified && at.is_some()) {
                continue;
            }
            match read_groups(&path) {
                Ok(groups) => {
                    let same = known.is_some_and(|(_, old)| *old == groups);
                    changed |= !same;
                    self.files.insert(path, (modified, groups));
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot read target file; keeping its previous targets");
                    // Remember the time so an unchanged broken file is not re-read every tick.
                    let previous = known.map(|(_, g)| g.clone()).unwrap_or_default();
                    self.files.insert(path, (modified, previous));
                }
            }
        }
        changed
    }

    /// The groups of every file, in file order.
    pub fn groups(&self) -> impl Iterator<Item = &TargetGroup> {
        self.files.values().flat_map(|(_, groups)| groups)
    }
}

/// The files a pattern names: itself, or the matches of a `*`/`?` glob in
/// its last element.
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let Some(name) = pattern.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return if pattern.exists() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| glob_match(name, n)))
        .map(|e| e.path())
        .collect()
}

/// Matches `name` against a glob of `*` (any run) and `?` (one character).
fn glob_match(glob: &str, name: &str) -> bool {
    let (glob, name): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut g, mut n) = (0, 0);
    // Where the last `*` was, and the name position it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some('*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((star_g, star_n)) => {
                    g = star_g + 1;
                    n = star_n + 1;
                    star = Some((star_g, star_n + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|c| *c == '*')
}

/// Reads one target file (JSON when it ends in `.json`, else YAML).
fn read_groups(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_TARGET_FILE_BYTES {
        return Err(format!(
            "{size} bytes is over the limit of {MAX_TARGET_FILE_BYTES}"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let groups: Vec<FileGroup> = if json {
        serde_json::from_str(&text).map_err(|e| e.to_string())?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_saphyr::from_str(&text).map_err(|e| e.to_string())?
    };
    let file_path = path.display().to_string();
    groups
        .into_iter()
        .enumerate()
        .map(|(i, group)| {
            for target in &group.targets {
                if target.contains('/') {
                    return Err(format!(
                        "group {i}: \"{target}\" is not a valid target: write host:port"
                    ));
                }
            }
            let mut labels = group.labels;
            labels.insert("__meta_filepath".to_string(), file_path.clone());
            Ok(TargetGroup {
                source: format!("file:{file_path}:{i}"),
                targets: group.targets,
                labels,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovery(dir: &Path, pattern: &str) -> FileDiscovery {
        let config: FileSdConfig =
            serde_saphyr::from_str(&format!("files: ['{pattern}']")).unwrap();
        FileDiscovery::new(&[config], dir)
    }

    #[test]
    fn globs_match_stars_and_question_marks() {
        assert!(glob_match("*.json", "a.json"));
        assert!(glob_match("t?.yml", "t1.yml"));
        assert!(glob_match("a*b*c.yml", "aXbYbc.yml"));
        assert!(!glob_match("*.json", "a.yml"));
        assert!(!glob_match("t?.yml", "t12.yml"));
    }

    #[test]
    fn reads_json_and_yaml_and_keeps_the_last_good_version() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"[{"targets": ["h1:9100", "h2:9100"], "labels": {"env": "prod"}}]"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yml"), "- targets: ['h3:80']\n").unwrap();
        let mut sd = discovery(dir.path(), "*.*");
        assert!(sd.refresh(false));
        let groups: Vec<_> = sd.groups().cloned().collect();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].targets, ["h1:9100", "h2:9100"]);
        assert_eq!(groups[0].labels["env"], "prod");
        assert!(groups[0].labels["__meta_filepath"].ends_with("a.json"));
        assert_eq!(groups[1].targets, ["h3:80"]);
        assert!(!sd.refresh(false), "nothing changed");

        // A broken file keeps its previous targets.
        std::fs::write(dir.path().join("b.yml"), "- targets: [unclosed\n").unwrap();
        sd.refresh(true);
        assert_eq!(sd.groups().count(), 2);
        // A removed file takes its targets with it.
        std::fs::remove_file(dir.path().join("a.json")).unwrap();
        assert!(sd.refresh(false));
        let left: Vec<_> = sd.groups().flat_map(|g| g.targets.clone()).collect();
        assert_eq!(left, ["h3:80"]);
    }

    #[test]
    fn a_url_in_a_target_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yml");
        std::fs::write(&path, "- targets: ['http://h:1/metrics']\n").unwrap();
        let err = read_groups(&path).unwrap_err();
        assert!(err.contains("host:port"), "{err}");
    }
}
