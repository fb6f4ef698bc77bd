//! The command line as an operator uses it: help, version, config checks
//! (also by the real promtool), offline and online token management, and the
//! store's schema migrations (upgrade of a previous-schema fixture, refusal of
//! a newer one).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Client, Fleetmon};
use serde_json::json;

fn fleetmon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetmon"))
        .args(args)
        .output()
        .expect("run fleetmon")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_documents_every_flag_with_its_environment_variable() {
    let out = fleetmon(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for (flag, env) in [
        ("--web.listen-address", "FLEETMON_WEB_LISTEN_ADDRESS"),
        ("--storage.path", "FLEETMON_STORAGE_PATH"),
        ("--config.file", "FLEETMON_CONFIG_FILE"),
        ("--fleet.upstream", "FLEETMON_FLEET_UPSTREAM"),
        (
            "--fleet.simulator.vehicles",
            "FLEETMON_FLEET_SIMULATOR_VEHICLES",
        ),
        ("--fleet.tesla.base-url", "FLEETMON_FLEET_TESLA_BASE_URL"),
        ("--log.level", "FLEETMON_LOG_LEVEL"),
        ("--log.format", "FLEETMON_LOG_FORMAT"),
    ] {
        assert!(
            help.contains(flag) && help.contains(env),
            "{flag} / {env} missing from --help:\n{help}"
        );
    }
    let version = text(&fleetmon(&["--version"]).stdout);
    assert_eq!(
        version.trim(),
        format!("fleetmon {}", env!("CARGO_PKG_VERSION"))
    );
    let bad = fleetmon(&["--fleet.upstream", "mars"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("simulator"),
        "the error lists the valid values"
    );
}

#[test]
fn check_config_says_what_is_wrong_and_where() {
    let root = env!("CARGO_MANIFEST_DIR");
    for file in [
        "monitoring/fleetmon.yml",
        "monitoring/prometheus/prometheus.yml",
    ] {
        let path = format!("{root}/{file}");
        let out = fleetmon(&["check", "config", &path]);
        assert!(out.status.success(), "{file}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("SUCCESS"));
        if common::have_program("/usr/bin/promtool") {
            let promtool = Command::new("/usr/bin/promtool")
                .args(["check", "config", &path])
                .output()
                .unwrap();
            assert!(
                promtool.status.success(),
                "promtool rejects {file}: {}",
                text(&promtool.stdout)
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "global:\n  scrape_interval: 15s\nremote_read:\n  - url: http://x\n",
    )
    .unwrap();
    let out = fleetmon(&["check", "config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.yml:3:1:") && stderr.contains("remote_read"),
        "{stderr}"
    );
    let missing = fleetmon(&["check", "config", "/nonexistent/fleetmon.yml"]);
    assert!(text(&missing.stderr).contains("/nonexistent/fleetmon.yml: cannot read"));

    // serve refuses to start on an invalid config, naming it.
    let out = fleetmon(&[
        "--config.file",
        bad.to_str().unwrap(),
        "--storage.path",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("bad.yml:3:1:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_from_the_command_line_offline_and_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("data");
    let storage_arg = storage.to_str().unwrap();
    let out = fleetmon(&[
        "token",
        "create",
        "--name",
        "cli",
        "--role",
        "viewer",
        "--storage.path",
        storage_arg,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();
    assert!(token.starts_with("fmt_"), "{token}");
    assert!(text(&out.stderr).contains("shown once"));

    let server = Fleetmon::start(&storage, &[]);
    let (status, _) = Client::bearer(&token)
        .get(&server.url("/api/1/vehicles"))
        .await;
    assert_eq!(status, 200);

    // While the server holds the store, the CLI says how to reach it instead.
    let locked = fleetmon(&["token", "list", "--storage.path", storage_arg]);
    assert!(!locked.status.success());
    assert!(
        text(&locked.stderr).contains("--server"),
        "{}",
        text(&locked.stderr)
    );

    let online = Command::new(env!("CARGO_BIN_EXE_fleetmon"))
        .args([
            "token",
            "create",
            "--name",
            "grafana",
            "--role",
            "viewer",
            "--server",
            &server.base,
        ])
        .env("FLEETMON_PASSWORD", common::ADMIN_PASSWORD)
        .output()
        .unwrap();
    assert!(online.status.success(), "{}", text(&online.stderr));
    let grafana = text(&online.stdout).trim().to_string();
    let (status, _) = Client::bearer(&grafana)
        .get(&server.url("/api/1/vehicles"))
        .await;
    assert_eq!(status, 200);
    let listed = Command::new(env!("CARGO_BIN_EXE_fleetmon"))
        .args(["token", "list", "--server", &server.base])
        .env("FLEETMON_PASSWORD", common::ADMIN_PASSWORD)
        .output()
        .unwrap();
    let listing = text(&listed.stdout);
    assert!(
        listing.contains("cli") && listing.contains("grafana") && !listing.contains("fmt_"),
        "{listing}"
    );
    assert!(server.stop().success());

    let id = token.trim_start_matches("fmt_").split('_').next().unwrap();
    let revoke = fleetmon(&["token", "revoke", id, "--storage.path", storage_arg]);
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    let again = fleetmon(&["token", "revoke", id, "--storage.path", storage_arg]);
    assert!(text(&again.stderr).contains("no token with id"));
}

/// A store as fleetmon's schema 1 wrote it, built with sled directly: the
/// migration trail up to version 1 and a command log without the by-vehicle index.
fn write_schema_1_fixture(dir: &Path) {
    let db = sled::open(dir.join("kv")).unwrap();
    let meta = db.open_tree("meta").unwrap();
    meta.insert(
        "migration/00000001",
        serde_json::to_vec(
            &json!({"version": 1, "name": "initial", "applied_at_ms": 1_700_000_000_000_i64}),
        )
        .unwrap(),
    )
    .unwrap();
    let commands = db.open_tree("commands").unwrap();
    for (seq, vin, command) in [
        (1u64, "5YJ3E1EA7KF000001", "door_lock"),
        (2, "5YJ3E1EA7KF000002", "honk_horn"),
        (3, "5YJ3E1EA7KF000001", "charge_start"),
    ] {
        let record = json!({"id": seq, "time_ms": 1_700_000_000_000_i64 + seq as i64, "vehicle": vin, "vin": vin, "command": command,
                            "parameters": {}, "result": true, "reason": "", "caller": "user:admin"});
        commands
            .insert(seq.to_be_bytes(), serde_json::to_vec(&record).unwrap())
            .unwrap();
    }
    db.flush().unwrap();
    drop(db);
    std::fs::write(dir.join("store.json"), r#"{"schema_version":1}"#).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_previous_schema_store_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    write_schema_1_fixture(dir.path());
    let server = Fleetmon::start(dir.path(), &["--fleet.simulator.vehicles", "2"]);
    assert!(
        server.log().contains("applied store migration"),
        "{}",
        server.log()
    );
    let admin = Client::admin();
    let (status, log) = admin.get(&server.url("/api/1/command_log")).await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["count"], 3);
    assert!(server.stop().success());
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("store.json")).unwrap()).unwrap();
    assert_eq!(marker["schema_version"], 5);

    // The index the migration built answers per-vehicle listings of the old records.
    let db = sled::open(dir.path().join("kv")).unwrap();
    let index = db.open_tree("commands_by_vehicle").unwrap();
    let mut prefix = b"5YJ3E1EA7KF000001".to_vec();
    prefix.push(0);
    let sequences: Vec<u64> = index
        .scan_prefix(&prefix)
        .map(|e| u64::from_be_bytes(e.unwrap().0[prefix.len()..].try_into().unwrap()))
        .collect();
    assert_eq!(sequences, vec![1, 3]);
}

#[test]
fn a_store_from_a_newer_fleetmon_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    write_schema_1_fixture(dir.path());
    std::fs::write(dir.path().join("store.json"), r#"{"schema_version":99}"#).unwrap();
    let before = snapshot(dir.path());
    let out = fleetmon(&[
        "--storage.path",
        dir.path().to_str().unwrap(),
        "--web.listen-address",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("schema version 99") && stderr.contains("left untouched"),
        "{stderr}"
    );
    assert_eq!(before, snapshot(dir.path()));
}

fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}
