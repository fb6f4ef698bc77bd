//! The fleet API as a client sees it: the real binary on a loopback port,
//! the simulator upstream, real HTTP.

mod common;

use std::time::Duration;

use common::{create_token, eventually, Client, Fleetmon};
use serde_json::{json, Value};

/// Waits until some vehicle reports `state`; returns its VIN.
async fn vehicle_in_state(server: &Fleetmon, client: &Client, state: &str) -> String {
    eventually(
        Duration::from_secs(60),
        &format!("a vehicle {state}"),
        || async {
            let (_, body) = client.get(&server.url("/api/1/vehicles")).await;
            body["response"]
                .as_array()?
                .iter()
                .find(|v| v["state"] == state)
                .and_then(|v| v["vin"].as_str().map(str::to_string))
        },
    )
    .await
}

async fn wake(server: &Fleetmon, client: &Client, vin: &str) {
    let (status, body) = client
        .post(&server.url(&format!("/api/1/vehicles/{vin}/wake_up")), None)
        .await;
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(20), "the vehicle online", || async {
        let (_, body) = client
            .get(&server.url(&format!("/api/1/vehicles/{vin}")))
            .await;
        (body["response"]["state"] == "online").then_some(())
    })
    .await;
}

async fn data(server: &Fleetmon, client: &Client, vin: &str, endpoints: &str) -> Value {
    let (status, body) = client
        .get(&server.url(&format!(
            "/api/1/vehicles/{vin}/vehicle_data?endpoints={endpoints}"
        )))
        .await;
    assert_eq!(status, 200, "{body}");
    body["response"].clone()
}

async fn command(
    server: &Fleetmon,
    client: &Client,
    vin: &str,
    name: &str,
    body: Value,
) -> (u16, Value) {
    client
        .post(
            &server.url(&format!("/api/1/vehicles/{vin}/command/{name}")),
            Some(body),
        )
        .await
}

#[tokio::test]
async fn list_one_vehicle_and_pagination() {
    let dir = tempfile::tempdir().unwrap();
    let server = Fleetmon::start(dir.path(), &[]);
    let viewer = Client::bearer(&create_token(&server, "viewer", "viewer").await);

    let (status, body) = viewer.get(&server.url("/api/1/vehicles")).await;
    assert_eq!(status, 200);
    assert_eq!(body["count"], 5);
    let vehicles = body["response"].as_array().unwrap();
    assert_eq!(vehicles.len(), 5);
    for v in vehicles {
        assert_eq!(v["vin"].as_str().unwrap().len(), 17);
        assert_eq!(
            v["id_s"].as_str().unwrap(),
            v["id"].as_u64().unwrap().to_string()
        );
        assert!(["online", "asleep", "offline"].contains(&v["state"].as_str().unwrap()));
    }

    // The same vehicle by id and by VIN.
    let first = &vehicles[0];
    let (_, by_id) = viewer
        .get(&server.url(&format!("/api/1/vehicles/{}", first["id"])))
        .await;
    let (_, by_vin) = viewer
        .get(&server.url(&format!(
            "/api/1/vehicles/{}",
            first["vin"].as_str().unwrap()
        )))
        .await;
    assert_eq!(by_id["response"]["vin"], first["vin"]);
    assert_eq!(by_vin["response"]["id"], first["id"]);

    let (_, page) = viewer
        .get(&server.url("/api/1/vehicles?per_page=2&page=3"))
        .await;
    assert_eq!(page["response"].as_array().unwrap().len(), 1);
    assert_eq!(page["count"], 5);
    assert_eq!(
        page["pagination"],
        json!({"previous": 2, "next": null, "current": 3, "per_page": 2, "count": 5, "pages": 3})
    );

    let (status, body) = viewer
        .get(&server.url("/api/1/vehicles?per_page=abc"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_field");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("per_page"));
    assert_eq!(body["response"], Value::Null);

    let (status, body) = viewer
        .get(&server.url("/api/1/vehicles/NOSUCHVEHICLE0000"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("NOSUCHVEHICLE0000"));
}

#[tokio::test]
async fn asleep_vehicle_answers_408_until_woken_then_commands_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let server = Fleetmon::start(dir.path(), &["--fleet.simulator.sleep-after", "1s"]);
    let editor = Client::bearer(&create_token(&server, "editor", "editor").await);

    let vin = vehicle_in_state(&server, &editor, "asleep").await;
    let (status, body) = editor
        .get(&server.url(&format!("/api/1/vehicles/{vin}/vehicle_data")))
        .await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(
        body,
        json!({
            "response": null,
            "error": "vehicle unavailable: vehicle is offline or asleep",
            "error_description": body["error_description"],
        })
    );
    let (status, _) = command(&server, &editor, &vin, "honk_horn", json!({})).await;
    assert_eq!(status, 408, "commands need an online vehicle too");

    wake(&server, &editor, &vin).await;

    // Default sections, and no position unless location_data is asked for.
    let (_, body) = editor
        .get(&server.url(&format!("/api/1/vehicles/{vin}/vehicle_data")))
        .await;
    let all = &body["response"];
    for section in [
        "charge_state",
        "climate_state",
        "drive_state",
        "vehicle_state",
        "vehicle_config",
        "gui_settings",
    ] {
        assert!(all[section].is_object(), "{section} missing: {all}");
    }
    assert!(
        all["drive_state"].get("latitude").is_none(),
        "position without location_data"
    );
    let located = data(&server, &editor, &vin, "drive_state;location_data").await;
    assert!(located["drive_state"]["latitude"].is_f64());
    assert!(
        located.get("charge_state").is_none(),
        "only the sections asked for"
    );
    let (status, body) = editor
        .get(&server.url(&format!(
            "/api/1/vehicles/{vin}/vehicle_data?endpoints=engine_state"
        )))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_field"))
    );

    // Each command and its effect on later vehicle_data.
    let ok = json!({"response": {"result": true, "reason": ""}});
    for name in ["honk_horn", "flash_lights"] {
        assert_eq!(
            command(&server, &editor, &vin, name, json!({})).await,
            (200, ok.clone())
        );
    }
    let before = data(&server, &editor, &vin, "charge_state;vehicle_state").await;
    let limit = before["charge_state"]["charge_limit_soc"].as_u64().unwrap();
    let new_limit = if limit == 90 { 85 } else { 90 };
    let rear_trunk = before["vehicle_state"]["rt"].as_u64().unwrap();
    let effects = [
        (
            "door_unlock",
            json!({}),
            "vehicle_state",
            "locked",
            json!(false),
        ),
        (
            "door_lock",
            json!({}),
            "vehicle_state",
            "locked",
            json!(true),
        ),
        (
            "set_charge_limit",
            json!({"percent": new_limit}),
            "charge_state",
            "charge_limit_soc",
            json!(new_limit),
        ),
        (
            "auto_conditioning_start",
            json!({}),
            "climate_state",
            "is_climate_on",
            json!(true),
        ),
        (
            "set_temps",
            json!({"driver_temp": 22.5, "passenger_temp": 21}),
            "climate_state",
            "driver_temp_setting",
            json!(22.5),
        ),
        (
            "set_temps",
            json!({"driver_temp": 20, "passenger_temp": 21.5}),
            "climate_state",
            "passenger_temp_setting",
            json!(21.5),
        ),
        (
            "auto_conditioning_stop",
            json!({}),
            "climate_state",
            "is_climate_on",
            json!(false),
        ),
        (
            "actuate_trunk",
            json!({"which_trunk": "rear"}),
            "vehicle_state",
            "rt",
            json!(1 - rear_trunk),
        ),
        (
            "actuate_trunk",
            json!({"which_trunk": "front"}),
            "vehicle_state",
            "ft",
            json!(1),
        ),
        (
            "charge_port_door_open",
            json!({}),
            "charge_state",
            "charge_port_door_open",
            json!(true),
        ),
    ];
    for (name, body, section, field, expected) in effects {
        assert_eq!(
            command(&server, &editor, &vin, name, body).await,
            (200, ok.clone()),
            "{name}"
        );
        let after = data(&server, &editor, &vin, section).await;
        assert_eq!(after[section][field], expected, "{name}: {section}.{field}");
    }
    let (_, again) = command(
        &server,
        &editor,
        &vin,
        "set_charge_limit",
        json!({"percent": new_limit}),
    )
    .await;
    assert_eq!(
        again["response"],
        json!({"result": false, "reason": "already_set"})
    );

    // Charging: the car declines what does not fit its state, with Tesla's reasons.
    let charge = data(&server, &editor, &vin, "charge_state").await["charge_state"].clone();
    let (_, start) = command(&server, &editor, &vin, "charge_start", json!({})).await;
    match charge["charging_state"].as_str().unwrap() {
        "Charging" => assert_eq!(start["response"]["reason"], "is_charging"),
        "Disconnected" => assert_eq!(start["response"]["reason"], "disconnected"),
        "Complete" => assert_eq!(start["response"]["reason"], "complete"),
        _ => assert_eq!(start["response"]["result"], true, "{start}"),
    }
    let now_charging = data(&server, &editor, &vin, "charge_state").await["charge_state"]
        ["charging_state"]
        == "Charging";
    let (_, stop) = command(&server, &editor, &vin, "charge_stop", json!({})).await;
    if now_charging {
        assert_eq!(stop, ok);
    } else {
        assert_eq!(
            stop["response"],
            json!({"result": false, "reason": "not_charging"})
        );
    }
    let (_, stop_again) = command(&server, &editor, &vin, "charge_stop", json!({})).await;
    assert_eq!(
        stop_again["response"],
        json!({"result": false, "reason": "not_charging"})
    );

    // Bad inputs name the problem.
    let (status, body) = command(&server, &editor, &vin, "launch_rocket", json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_command"))
    );
    let (status, body) = command(&server, &editor, &vin, "set_charge_limit", json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_field"))
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("percent"));
    let (status, body) = command(
        &server,
        &editor,
        &vin,
        "set_charge_limit",
        json!({"percent": 120}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let raw = reqwest::Client::new()
        .post(server.url(&format!("/api/1/vehicles/{vin}/command/honk_horn")))
        .header(
            "authorization",
            format!("Bearer {}", create_token(&server, "raw", "editor").await),
        )
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let (status, _) = command(
        &server,
        &editor,
        "NOSUCHVEHICLE0000",
        "honk_horn",
        json!({}),
    )
    .await;
    assert_eq!(status, 404);

    // The command log lists them newest first, with the caller.
    let (status, log) = editor
        .get(&server.url(&format!("/api/1/command_log?vehicle={vin}&per_page=3")))
        .await;
    assert_eq!(status, 200, "{log}");
    let entries = log["response"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["command"], "charge_stop");
    assert_eq!(entries[0]["result"], false);
    assert_eq!(entries[0]["reason"], "not_charging");
    assert_eq!(entries[0]["caller"], "token:editor");
    assert_eq!(entries[0]["vin"], vin.as_str());
    assert!(entries[0]["id"].as_u64() > entries[1]["id"].as_u64());
    let total = log["count"].as_u64().unwrap();
    // Every command that reached the car, the refused ones and the wake-up included;
    // requests rejected as invalid never reach it and are not logged.
    assert_eq!(total, 18);
    let (_, page2) = editor
        .get(&server.url(&format!(
            "/api/1/command_log?vehicle={vin}&per_page=3&page=2"
        )))
        .await;
    assert_ne!(page2["response"][0]["id"], entries[0]["id"]);
    let (_, fleet_log) = editor.get(&server.url("/api/1/command_log")).await;
    // The fleet-wide log also has the command sent to an unknown vehicle, last.
    let newest = &fleet_log["response"][0];
    assert_eq!(newest["vehicle"], "NOSUCHVEHICLE0000");
    assert_eq!(newest["vin"], Value::Null);
    assert!(newest["reason"].as_str().unwrap().starts_with("not_found"));
    assert_eq!(fleet_log["response"][1]["id"], entries[0]["id"]);
    let (status, _) = editor
        .get(&server.url("/api/1/command_log?vehicle=NOSUCHVEHICLE0000"))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn roles_and_missing_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = Fleetmon::start(dir.path(), &[]);
    let anonymous = Client::anonymous();
    let viewer = Client::bearer(&create_token(&server, "viewer", "viewer").await);
    let editor = Client::bearer(&create_token(&server, "editor", "editor").await);
    let (_, list) = viewer.get(&server.url("/api/1/vehicles")).await;
    let vin = list["response"][0]["vin"].as_str().unwrap().to_string();

    for path in [
        "/api/1/vehicles".to_string(),
        format!("/api/1/vehicles/{vin}"),
        format!("/api/1/vehicles/{vin}/vehicle_data"),
        "/api/1/command_log".into(),
    ] {
        let (status, body) = anonymous.get(&server.url(&path)).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["response"], Value::Null);
        assert_eq!(body["error"], "login_required");
    }
    let (status, _) = anonymous
        .post(&server.url(&format!("/api/1/vehicles/{vin}/wake_up")), None)
        .await;
    assert_eq!(status, 401);
    let (status, body) = Client::bearer("fmt_000000000000_wrong")
        .get(&server.url("/api/1/vehicles"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("login_required"))
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("invalid bearer token"));

    // viewer reads, but cannot wake or command; editor can.
    let (status, body) = viewer
        .post(&server.url(&format!("/api/1/vehicles/{vin}/wake_up")), None)
        .await;
    assert_eq!(status, 403);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("editor"),
        "{body}"
    );
    let (status, _) = viewer
        .post(
            &server.url(&format!("/api/1/vehicles/{vin}/command/honk_horn")),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = editor
        .post(&server.url(&format!("/api/1/vehicles/{vin}/wake_up")), None)
        .await;
    assert_eq!(status, 200);

    // Only admins manage tokens.
    let (status, body) = editor.get(&server.url("/api/v1/admin/tokens")).await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, body) = Client::admin()
        .get(&server.url("/api/v1/admin/tokens"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert!(
        !body.to_string().contains("fmt_"),
        "listing shows no secret"
    );
    let (status, _) = Client::admin()
        .post_form(
            &server.url("/api/v1/admin/tokens"),
            &[("name", "x"), ("role", "superuser")],
        )
        .await;
    assert_eq!(status, 400);

    // Basic auth with the admin password works; a wrong one does not.
    let (status, _) = Client::admin().get(&server.url("/api/1/vehicles")).await;
    assert_eq!(status, 200);
    let (status, _) = reqwest_status(&server, &common::basic("admin", "not-the-password")).await;
    assert_eq!(status, 401);

    // Open endpoints.
    for path in ["/metrics", "/-/healthy", "/-/ready"] {
        let (status, _, _) = anonymous.get_text(&server.url(path), None).await;
        assert_eq!(status, 200, "{path}");
    }

    // Revoked tokens stop working.
    let (_, tokens) = Client::admin()
        .get(&server.url("/api/v1/admin/tokens"))
        .await;
    let id = tokens["data"][0]["id"].as_str().unwrap().to_string();
    let revoke = reqwest::Client::new()
        .delete(server.url(&format!("/api/v1/admin/tokens/{id}")))
        .header(
            "authorization",
            common::basic("admin", common::ADMIN_PASSWORD),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status().as_u16(), 200);
    let (status, _) = viewer.get(&server.url("/api/1/vehicles")).await;
    assert_eq!(status, 401);
}

async fn reqwest_status(server: &Fleetmon, authorization: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(server.url("/api/1/vehicles"))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn failed_logins_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Fleetmon::start(dir.path(), &[]);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            reqwest_status(&server, &common::basic("admin", "guess"))
                .await
                .0,
        );
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(&statuses[10..], &[429, 429]);
    let response = reqwest::Client::new()
        .get(server.url("/api/1/vehicles"))
        .header(
            "authorization",
            common::basic("admin", common::ADMIN_PASSWORD),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        429,
        "even the right password, from this address"
    );
    assert!(response.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn restart_keeps_simulator_state_tokens_and_log_and_shutdown_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let server = Fleetmon::start(dir.path(), &[]);
    let token = create_token(&server, "ops", "editor").await;
    let client = Client::bearer(&token);
    let (_, before) = client.get(&server.url("/api/1/vehicles")).await;
    let vin = before["response"][0]["vin"].as_str().unwrap().to_string();
    wake(&server, &client, &vin).await;
    let limit = data(&server, &client, &vin, "charge_state").await["charge_state"]
        ["charge_limit_soc"]
        .as_u64()
        .unwrap();
    let new_limit = if limit == 95 { 55 } else { 95 };
    let (status, _) = command(
        &server,
        &client,
        &vin,
        "set_charge_limit",
        json!({"percent": new_limit}),
    )
    .await;
    assert_eq!(status, 200);
    let odometer = data(&server, &client, &vin, "vehicle_state").await["vehicle_state"]["odometer"]
        .as_f64()
        .unwrap();

    let log = server.log();
    let status = server.stop();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        !log.contains(&token) && !log.contains(common::ADMIN_PASSWORD),
        "a secret reached the log"
    );

    // A different seed must not matter: the saved fleet continues.
    let server = Fleetmon::start(dir.path(), &["--fleet.simulator.seed", "99"]);
    let (status, after) = client.get(&server.url("/api/1/vehicles")).await;
    assert_eq!(status, 200, "the token survived the restart");
    let vins = |body: &Value| {
        body["response"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["vin"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(vins(&before), vins(&after));
    wake(&server, &client, &vin).await;
    let charge = data(&server, &client, &vin, "charge_state;vehicle_state").await;
    assert_eq!(charge["charge_state"]["charge_limit_soc"], new_limit);
    assert!(charge["vehicle_state"]["odometer"].as_f64().unwrap() >= odometer);
    let (_, log) = client
        .get(&server.url(&format!("/api/1/command_log?vehicle={vin}")))
        .await;
    assert_eq!(
        common::logged_commands(&log),
        ["wake_up", "set_charge_limit", "wake_up"],
        "{log}"
    );
    assert!(server.stop().success());
}
