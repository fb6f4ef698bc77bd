//! Behaviour of the simulated fleet as the Fleet API exposes it: determinism,
//! persistence, Tesla's sleep and wake timing, driving, charging, refusals
//! and JSON shapes. Cars are steered into a state through their private
//! fields where waiting for the dice would make a test slow or fragile.

use std::collections::HashSet;

use serde_json::Value;

use super::super::command::{Command, CommandOutcome, DataEndpoint, Trunk};
use super::vehicle::{Charge, Power};
use super::*;

/// Monday 3 June 2024, 06:00 UTC: the morning in Europe.
const T0: i64 = 1_717_394_400_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn config(vehicles: usize, seed: u64) -> SimConfig {
    SimConfig {
        vehicles,
        seed,
        ..SimConfig::default()
    }
}

/// Advances in chunks no longer than `chunk_ms` (an hour at most keeps
/// every step simulated rather than fast-forwarded).
fn run(sim: &mut Simulation, from: i64, to: i64, chunk_ms: i64) {
    let mut t = from;
    while t < to {
        t = (t + chunk_ms).min(to);
        sim.advance_to(t);
    }
}

/// Makes car `index` a parked, unplugged car whose local clock reads 02:00
/// at `now` (when drivers rarely go out), wakes it and returns when it is online.
fn quiet_online_car(sim: &mut Simulation, index: usize, now: i64) -> i64 {
    let vehicle = &mut sim.vehicles[index];
    vehicle.home.utc_offset_s = (2 * 3600 - now / 1000).rem_euclid(86_400);
    vehicle.trip = None;
    vehicle.charge = Charge::Disconnected;
    vehicle.charge_port_door_open = false;
    vehicle.climate.on = false;
    vehicle.power = Power::Asleep;
    vehicle.battery_percent = 70.0;
    sim.wake_up(index, now);
    let online = now + sim.config.wake_delay_ms;
    sim.advance_to(online);
    assert_eq!(sim.vehicles[index].state(), VehicleState::Online);
    online
}

fn reason(outcome: Result<CommandOutcome, FleetError>) -> String {
    let outcome = outcome.expect("the car is online");
    assert_eq!(outcome.result, outcome.reason.is_empty(), "{outcome:?}");
    outcome.reason
}

fn data(sim: &Simulation, index: usize, endpoints: &[DataEndpoint], now: i64) -> Value {
    sim.vehicle_data_json(index, endpoints, now)
        .expect("the car is online")
}

#[test]
fn same_seed_and_times_give_identical_fleets() {
    let mut a = Simulation::new(config(8, 42), T0);
    let mut b = Simulation::new(config(8, 42), T0);
    assert_eq!(a.vehicles(), b.vehicles());
    let mut t = T0;
    for k in 0..400 {
        t += 61_237 + k * 17;
        for sim in [&mut a, &mut b] {
            sim.advance_to(t);
            sim.wake_up(k as usize % 8, t);
            let _ = sim.execute((k as usize + 3) % 8, &Command::AutoConditioningStart, t);
        }
        assert_eq!(a.vehicles(), b.vehicles(), "diverged at step {k}");
    }
}

#[test]
fn one_big_advance_equals_many_small_ones() {
    let mut big = Simulation::new(config(6, 7), T0);
    let mut small = Simulation::new(config(6, 7), T0);
    let start = big.vehicles().to_vec();
    let increments = [1, 999, 1_000, 1_500, 37_123, 250, 60_000, 4_321];
    let mut t = T0;
    let mut k = 0;
    // Inputs land between steps, so pending wakes complete between steps too.
    for round in 1..=10 {
        let input_at = T0 + round * (47 * 60_000 + 123);
        big.advance_to(input_at);
        while t < input_at {
            t = (t + increments[k % increments.len()]).min(input_at);
            k += 1;
            small.advance_to(t);
        }
        assert_eq!(
            big.vehicles(),
            small.vehicles(),
            "diverged by round {round}"
        );
        for sim in [&mut big, &mut small] {
            sim.wake_up(round as usize % 6, input_at);
            let _ = sim.execute((round as usize + 1) % 6, &Command::HonkHorn, input_at);
        }
    }
    // The comparison is meaningful only if the cars actually lived.
    let moved = big
        .vehicles()
        .iter()
        .zip(&start)
        .filter(|(now, then)| now.odometer_miles() > then.odometer_miles())
        .count();
    assert!(moved > 0, "no car drove in eight hours");
}

#[test]
fn different_seeds_give_different_fleets() {
    let mut a = Simulation::new(config(5, 1), T0);
    let mut b = Simulation::new(config(5, 2), T0);
    let vins = |s: &Simulation| {
        s.vehicles()
            .iter()
            .map(|v| v.vin().to_string())
            .collect::<Vec<_>>()
    };
    assert_ne!(vins(&a), vins(&b));
    run(&mut a, T0, T0 + 2 * HOUR, HOUR);
    run(&mut b, T0, T0 + 2 * HOUR, HOUR);
    assert_ne!(a.vehicles(), b.vehicles());
}

#[test]
fn vehicles_survive_a_json_round_trip_exactly() {
    let mut sim = Simulation::new(config(10, 3), T0);
    let mut driving_seen = false;
    for hour in 1..=16 {
        run(
            &mut sim,
            T0 + (hour - 1) * HOUR,
            T0 + hour * HOUR,
            10 * 60_000,
        );
        for vehicle in sim.vehicles() {
            driving_seen |= vehicle.trip.is_some();
            let text = serde_json::to_string(vehicle).unwrap();
            let back: SimVehicle = serde_json::from_str(&text).unwrap();
            assert_eq!(&back, vehicle, "{text}");
        }
    }
    assert!(driving_seen, "no mid-trip state was round-tripped");
}

#[test]
fn restore_continues_like_an_uninterrupted_run() {
    let cfg = config(6, 11);
    let mut uninterrupted = Simulation::new(cfg, T0);
    let mut first_run = Simulation::new(cfg, T0);
    let saved_at = T0 + 2 * HOUR + 500;
    run(&mut uninterrupted, T0, saved_at, HOUR);
    run(&mut first_run, T0, saved_at, HOUR);
    let saved = serde_json::to_string(first_run.vehicles()).unwrap();
    drop(first_run);

    let restored_at = saved_at + 40 * 60_000 + 321;
    let vehicles: Vec<SimVehicle> = serde_json::from_str(&saved).unwrap();
    let mut restored = Simulation::restore(cfg, vehicles, restored_at);
    uninterrupted.advance_to(restored_at);
    assert_eq!(restored.vehicles(), uninterrupted.vehicles());
    run(&mut restored, restored_at, T0 + 9 * HOUR, 30 * 60_000);
    run(&mut uninterrupted, restored_at, T0 + 9 * HOUR, 7 * 60_000);
    assert_eq!(restored.vehicles(), uninterrupted.vehicles());
}

#[test]
fn restore_grows_and_shrinks_the_fleet() {
    let t1 = T0 + HOUR;
    let mut three = Simulation::new(config(3, 5), T0);
    three.advance_to(t1);
    let grown = Simulation::restore(config(5, 5), three.vehicles().to_vec(), t1);
    assert_eq!(grown.vehicles().len(), 5);
    assert_eq!(&grown.vehicles()[..3], three.vehicles());
    let fresh = Simulation::new(config(5, 5), t1);
    assert_eq!(&grown.vehicles()[3..], &fresh.vehicles()[3..]);

    let shrunk = Simulation::restore(config(2, 5), three.vehicles().to_vec(), t1);
    assert_eq!(shrunk.vehicles(), &three.vehicles()[..2]);
}

#[test]
fn wake_takes_exactly_the_wake_delay() {
    let mut sim = Simulation::new(config(3, 1), T0);
    let index = 1;
    sim.vehicles[index].power = Power::Asleep;
    let woken = T0 + 12_345; // deliberately between two steps
    sim.wake_up(index, woken);
    let online = woken + sim.config.wake_delay_ms;
    sim.advance_to(online - 1);
    assert_eq!(sim.vehicles()[index].state(), VehicleState::Asleep);
    assert_eq!(sim.vehicle_json(index)["state"], "asleep");
    // Waking again does not push the deadline back.
    sim.wake_up(index, online - 500);
    let err = sim
        .vehicle_data_json(index, DataEndpoint::DEFAULT, online - 1)
        .unwrap_err();
    assert_eq!(err.status, 408);
    sim.advance_to(online);
    assert_eq!(sim.vehicles()[index].state(), VehicleState::Online);
    assert_eq!(sim.vehicle_json(index)["state"], "online");
    assert!(sim
        .vehicle_data_json(index, DataEndpoint::DEFAULT, online)
        .is_ok());
    sim.advance_to(online + 5_000);
    assert_eq!(sim.vehicles()[index].state(), VehicleState::Online);
}

#[test]
fn wake_up_cannot_reach_an_offline_car() {
    let mut sim = Simulation::new(config(2, 1), T0);
    let back = T0 + 20 * 60_000;
    sim.vehicles[0].power = Power::Offline { until_ms: back };
    sim.wake_up(0, T0 + 1_000);
    sim.advance_to(T0 + 60_000);
    assert_eq!(sim.vehicles()[0].state(), VehicleState::Offline);
    assert_eq!(sim.vehicle_json(0)["state"], "offline");
    assert_eq!(
        sim.execute(0, &Command::HonkHorn, T0 + 60_000)
            .unwrap_err()
            .status,
        408
    );
    sim.advance_to(back);
    assert_eq!(sim.vehicles()[0].state(), VehicleState::Asleep);
}

#[test]
fn an_idle_car_falls_asleep_after_sleep_after() {
    let mut sim = Simulation::new(config(3, 2), T0);
    let sleep_after = sim.config.sleep_after_ms;
    let online = quiet_online_car(&mut sim, 0, T0);
    sim.advance_to(online + sleep_after - 1);
    assert_eq!(sim.vehicles()[0].state(), VehicleState::Online);
    sim.advance_to(online + sleep_after);
    assert_eq!(sim.vehicles()[0].state(), VehicleState::Asleep);

    // A command restarts the idle timer, even one the car declines.
    let online = quiet_online_car(&mut sim, 0, online + sleep_after + 60_000);
    let poked = online + 10 * 60_000;
    assert_eq!(
        reason(sim.execute(0, &Command::ChargeStop, poked)),
        "not_charging"
    );
    sim.advance_to(poked + sleep_after - 1);
    assert_eq!(sim.vehicles()[0].state(), VehicleState::Online);
    sim.advance_to(poked + sleep_after);
    assert_eq!(sim.vehicles()[0].state(), VehicleState::Asleep);

    // So does waking an online car.
    let online = quiet_online_car(&mut sim, 0, poked + sleep_after + 60_000);
    sim.wake_up(0, online + 5 * 60_000);
    sim.advance_to(online + sleep_after + 60_000);
    assert_eq!(sim.vehicles()[0].state(), VehicleState::Online);
}

#[test]
fn climate_keeps_the_car_awake_and_conditions_the_cabin() {
    let mut sim = Simulation::new(config(3, 4), T0);
    let online = quiet_online_car(&mut sim, 2, T0);
    let outside = sim.vehicles()[2].outside_temp_c(online);
    let setting = if outside < 20.0 { 26.0 } else { 16.0 };
    let temps = Command::SetTemps {
        driver_temp: setting,
        passenger_temp: setting,
    };
    assert_eq!(reason(sim.execute(2, &temps, online)), "");
    assert_eq!(
        reason(sim.execute(2, &Command::AutoConditioningStart, online)),
        ""
    );
    let battery_before = sim.vehicles()[2].battery_level();
    let end = online + HOUR;
    run(&mut sim, online, end, 60_000);
    let car = &sim.vehicles()[2];
    assert_eq!(car.state(), VehicleState::Online);
    assert!(
        (car.inside_temp_c() - setting).abs() < 0.2,
        "{}",
        car.inside_temp_c()
    );
    assert!(car.battery_level() < battery_before);
    let climate = &data(&sim, 2, &[DataEndpoint::ClimateState], end)["climate_state"];
    assert_eq!(climate["is_climate_on"], true);
    assert_eq!(climate["driver_temp_setting"], setting);
    assert_eq!(climate["min_avail_temp"], 15.0);

    assert_eq!(
        reason(sim.execute(2, &Command::AutoConditioningStop, end)),
        ""
    );
    let asleep = end + sim.config.sleep_after_ms;
    run(&mut sim, end, asleep, 60_000);
    let car = &sim.vehicles()[2];
    assert_eq!(car.state(), VehicleState::Asleep);
    let drifted = (car.inside_temp_c() - setting).abs();
    assert!(drifted > 1.0, "the cabin kept its setting with climate off");
}

#[test]
fn a_driving_car_moves_and_drains_its_battery() {
    let mut sim = Simulation::new(config(5, 1), T0);
    let mut t = T0;
    let index = loop {
        t += 60_000;
        assert!(t < T0 + 12 * HOUR, "no car went for a drive in 12 hours");
        sim.advance_to(t);
        if let Some(index) = sim.vehicles().iter().position(|v| v.speed_mph().is_some()) {
            break index;
        }
    };
    let before = sim.vehicles()[index].clone();
    assert_eq!(before.state(), VehicleState::Online);
    t += 120_000;
    sim.advance_to(t);
    let after = &sim.vehicles()[index];
    assert!(after.speed_mph().is_some());
    assert!(after.odometer_miles() > before.odometer_miles());
    assert!(after.battery_level() < before.battery_level());
    assert_ne!(after.position, before.position);

    let all = [
        DataEndpoint::DriveState,
        DataEndpoint::LocationData,
        DataEndpoint::VehicleState,
    ];
    let json = data(&sim, index, &all, t);
    let drive = &json["drive_state"];
    assert_eq!(drive["shift_state"], "D");
    assert!(drive["speed"].is_i64());
    assert!((0..360).contains(&drive["heading"].as_i64().unwrap()));
    assert_eq!(json["vehicle_state"]["is_user_present"], true);
    assert_eq!(json["vehicle_state"]["locked"], true);

    // The trip ends: parked (at home unless the battery ran out), speed null.
    let end = t + 4 * HOUR;
    while sim.vehicles()[index].speed_mph().is_some() {
        t += 60_000;
        assert!(t < end, "the trip never ended");
        sim.advance_to(t);
    }
    let parked = &sim.vehicles()[index];
    if parked.battery_level() > 5.0 {
        assert_eq!(parked.position, parked.home.position);
    }
    let drive = &data(&sim, index, &[DataEndpoint::DriveState], t)["drive_state"];
    assert_eq!(drive["shift_state"], "P");
    assert!(drive["speed"].is_null());
}

#[test]
fn charging_reaches_the_limit_and_completes() {
    let mut sim = Simulation::new(config(3, 6), T0);
    let online = quiet_online_car(&mut sim, 1, T0);
    sim.vehicles[1].plug_in(online);
    assert_eq!(sim.vehicles()[1].charging_state(), "Starting");
    let t = online + 10_000;
    sim.advance_to(t);
    assert_eq!(sim.vehicles()[1].charging_state(), "Charging");
    let charge = &data(&sim, 1, &[DataEndpoint::ChargeState], t)["charge_state"];
    assert_eq!(charge["charger_power"], 11);
    assert!(charge["charger_voltage"].as_u64().unwrap() >= 230);
    assert_eq!(charge["charge_port_latch"], "Engaged");
    assert_eq!(charge["charge_port_door_open"], true);
    let minutes = charge["minutes_to_full_charge"].as_i64().unwrap();
    assert!((35..=45).contains(&minutes), "{minutes}");
    let hours = charge["time_to_full_charge"].as_f64().unwrap();
    assert!((hours * 60.0 - minutes as f64).abs() < 1.0);

    // ≈11 kW into 75 kWh: about 0.0041 % a second.
    let level = sim.vehicles()[1].battery_level();
    sim.advance_to(t + 600_000);
    let gained = sim.vehicles()[1].battery_level() - level;
    assert!((gained - 600.0 * 0.0041).abs() < 0.15, "{gained}");
    assert_eq!(sim.vehicles()[1].state(), VehicleState::Online);

    run(&mut sim, t, t + 2 * HOUR, 10 * 60_000);
    let car = &sim.vehicles()[1];
    assert_eq!(car.charging_state(), "Complete");
    assert_eq!(car.battery_level(), 80.0);
    let energy = car.energy_added_kwh;
    assert!((energy - 0.10 * 75.0).abs() < 0.1, "{energy}");
    // Nothing keeps it awake once complete.
    assert_eq!(car.state(), VehicleState::Asleep);
}

#[test]
fn declined_commands_give_teslas_reasons() {
    let mut sim = Simulation::new(config(3, 8), T0);
    let t = quiet_online_car(&mut sim, 0, T0);
    assert_eq!(
        reason(sim.execute(0, &Command::ChargeStart, t)),
        "disconnected"
    );
    assert_eq!(
        reason(sim.execute(0, &Command::ChargeStop, t)),
        "not_charging"
    );
    let limit = Command::SetChargeLimit { percent: 80 };
    assert_eq!(reason(sim.execute(0, &limit, t)), "already_set");

    sim.vehicles[0].plug_in(t);
    assert_eq!(
        reason(sim.execute(0, &Command::ChargeStart, t)),
        "is_charging"
    );
    sim.advance_to(t + 5_000);
    assert_eq!(
        reason(sim.execute(0, &Command::ChargeStart, t + 5_000)),
        "is_charging"
    );
    assert_eq!(
        reason(sim.execute(0, &Command::ChargePortDoorClose, t + 5_000)),
        "charge_cable_connected"
    );
    assert_eq!(reason(sim.execute(0, &Command::ChargeStop, t + 5_000)), "");
    assert_eq!(sim.vehicles()[0].charging_state(), "Stopped");
    assert_eq!(
        reason(sim.execute(0, &Command::ChargeStop, t + 6_000)),
        "not_charging"
    );

    sim.vehicles[0].battery_percent = 80.0;
    assert_eq!(
        reason(sim.execute(0, &Command::ChargeStart, t + 7_000)),
        "complete"
    );
    sim.vehicles[0].battery_percent = 60.0;
    assert_eq!(reason(sim.execute(0, &Command::ChargeStart, t + 8_000)), "");
    assert_eq!(sim.vehicles()[0].charging_state(), "Starting");
}

#[test]
fn commands_apply_their_effects() {
    let mut sim = Simulation::new(config(2, 9), T0);
    let t = quiet_online_car(&mut sim, 1, T0);
    let mut run_ok = |command: Command| {
        assert_eq!(sim.execute(1, &command, t).unwrap(), CommandOutcome::done());
    };
    run_ok(Command::HonkHorn);
    run_ok(Command::FlashLights);
    run_ok(Command::DoorUnlock);
    run_ok(Command::SetChargeLimit { percent: 90 });
    run_ok(Command::ChargePortDoorOpen);
    run_ok(Command::AutoConditioningStart);
    run_ok(Command::SetTemps {
        driver_temp: 23.5,
        passenger_temp: 21.0,
    });
    run_ok(Command::ActuateTrunk {
        which_trunk: Trunk::Front,
    });
    run_ok(Command::ActuateTrunk {
        which_trunk: Trunk::Rear,
    });
    let all = [
        DataEndpoint::ChargeState,
        DataEndpoint::ClimateState,
        DataEndpoint::VehicleState,
        DataEndpoint::ClosuresState,
    ];
    let json = data(&sim, 1, &all, t);
    assert_eq!(json["vehicle_state"]["locked"], false);
    assert_eq!(json["closures_state"]["locked"], false);
    assert_eq!(json["charge_state"]["charge_limit_soc"], 90);
    assert_eq!(json["charge_state"]["charge_port_door_open"], true);
    assert_eq!(json["charge_state"]["charging_state"], "Disconnected");
    assert_eq!(json["charge_state"]["conn_charge_cable"], "<invalid>");
    assert_eq!(json["climate_state"]["is_climate_on"], true);
    assert_eq!(json["climate_state"]["driver_temp_setting"], 23.5);
    assert_eq!(json["climate_state"]["passenger_temp_setting"], 21.0);
    assert_eq!(json["vehicle_state"]["ft"], 1);
    assert_eq!(json["vehicle_state"]["rt"], 1);
    assert_eq!(json["closures_state"]["rt"], 1);

    let mut run_ok = |command: Command| {
        assert_eq!(sim.execute(1, &command, t).unwrap(), CommandOutcome::done());
    };
    run_ok(Command::ActuateTrunk {
        which_trunk: Trunk::Rear,
    });
    run_ok(Command::DoorLock);
    run_ok(Command::ChargePortDoorClose);
    run_ok(Command::AutoConditioningStop);
    let json = data(&sim, 1, &all, t);
    assert_eq!(json["vehicle_state"]["rt"], 0);
    assert_eq!(json["vehicle_state"]["ft"], 1);
    assert_eq!(json["vehicle_state"]["locked"], true);
    assert_eq!(json["charge_state"]["charge_port_door_open"], false);
    assert_eq!(json["climate_state"]["is_climate_on"], false);
}

#[test]
fn commands_and_data_need_an_online_car() {
    let mut sim = Simulation::new(config(2, 10), T0);
    sim.vehicles[0].power = Power::Asleep;
    let asleep = sim.execute(0, &Command::DoorLock, T0).unwrap_err();
    assert_eq!(asleep, FleetError::vehicle_unavailable());
    assert_eq!(asleep.status, 408);
    sim.wake_up(0, T0);
    // Still waking.
    assert_eq!(
        sim.execute(0, &Command::DoorLock, T0 + 1_000)
            .unwrap_err()
            .status,
        408
    );
    assert_eq!(
        sim.vehicle_data_json(0, DataEndpoint::DEFAULT, T0 + 1_000)
            .unwrap_err()
            .status,
        408
    );
    assert_eq!(
        sim.execute(5, &Command::DoorLock, T0).unwrap_err().status,
        404
    );
    assert!(sim.vehicle_json(5).is_null());
}

#[test]
fn location_fields_only_with_location_data() {
    let mut sim = Simulation::new(config(2, 12), T0);
    let t = quiet_online_car(&mut sim, 0, T0);
    let location_keys = [
        "latitude",
        "longitude",
        "heading",
        "gps_as_of",
        "native_latitude",
        "native_longitude",
        "native_location_supported",
        "native_type",
    ];

    let default = data(&sim, 0, DataEndpoint::DEFAULT, t);
    for key in location_keys {
        assert!(default["drive_state"].get(key).is_none(), "{key} leaked");
    }
    for section in [
        "charge_state",
        "climate_state",
        "drive_state",
        "gui_settings",
        "vehicle_config",
        "vehicle_state",
    ] {
        assert_eq!(default[section]["timestamp"], t, "{section}");
    }
    assert!(default.get("closures_state").is_none());

    let with = data(
        &sim,
        0,
        &[DataEndpoint::DriveState, DataEndpoint::LocationData],
        t,
    );
    for key in location_keys {
        assert!(with["drive_state"].get(key).is_some(), "{key} missing");
    }
    let home = sim.vehicles()[0].home.position;
    let lat = with["drive_state"]["latitude"].as_f64().unwrap();
    assert!((lat - home.lat).abs() < 1e-5);
    assert_eq!(with["drive_state"]["gps_as_of"], t / 1000);
    assert_eq!(with["drive_state"]["native_type"], "wgs");

    let only = data(&sim, 0, &[DataEndpoint::LocationData], t);
    assert!(only["drive_state"]["longitude"].is_f64());
    assert_eq!(only["drive_state"]["shift_state"], "P");
    assert!(only["drive_state"]["speed"].is_null());
    assert!(only.get("charge_state").is_none());
}

#[test]
fn json_shapes_follow_tesla() {
    let mut sim = Simulation::new(config(4, 13), T0);
    let t = quiet_online_car(&mut sim, 3, T0);
    let vehicle = sim.vehicle_json(3);
    let car = &sim.vehicles()[3];
    assert_eq!(vehicle["id"], car.id());
    assert_eq!(vehicle["id_s"], car.id().to_string());
    assert_eq!(vehicle["vin"], car.vin());
    assert_eq!(vehicle["display_name"], car.display_name());
    assert_eq!(vehicle["state"], "online");
    assert_eq!(vehicle["access_type"], "OWNER");
    assert_eq!(vehicle["granular_access"]["hide_private"], false);
    assert_eq!(vehicle["api_version"], 71);
    assert_eq!(vehicle["in_service"], false);
    assert_eq!(vehicle["calendar_enabled"], true);
    assert!(vehicle["color"].is_null() && vehicle["backseat_token"].is_null());
    assert!(vehicle["vehicle_id"].is_u64());
    assert_eq!(vehicle["tokens"].as_array().unwrap().len(), 2);

    let mut all = DataEndpoint::DEFAULT.to_vec();
    all.push(DataEndpoint::ClosuresState);
    let json = data(&sim, 3, &all, t);
    assert!(json.get("display_name").is_none());
    assert!(json["user_id"].is_u64());
    assert_eq!(json["id_s"], vehicle["id_s"]);
    let charge = &json["charge_state"];
    assert_eq!(charge["battery_level"], 70);
    assert!((charge["battery_range"].as_f64().unwrap() - 70.0 * 3.1).abs() < 0.01);
    assert_eq!(charge["charge_limit_soc_min"], 50);
    assert_eq!(charge["charge_limit_soc_max"], 100);
    assert_eq!(charge["charge_limit_soc_std"], 80);
    assert_eq!(charge["charger_power"], 0);
    assert_eq!(charge["charge_port_latch"], "Disengaged");
    assert_eq!(charge["scheduled_charging_mode"], "Off");
    let config = &json["vehicle_config"];
    assert!(
        ["model3", "modely", "models", "modelx"].contains(&config["car_type"].as_str().unwrap())
    );
    assert_eq!(config["eu_vehicle"], sim.vehicles()[3].home.eu);
    let state = &json["vehicle_state"];
    assert_eq!(state["vehicle_name"], car.display_name());
    assert_eq!(state["car_version"], "2024.44.25.3 4e5f6a7b8c9d");
    assert_eq!(state["software_update"]["expected_duration_sec"], 2700);
    let tyre = state["tpms_pressure_fl"].as_f64().unwrap();
    assert!((2.6..3.2).contains(&tyre), "{tyre}");
    assert!(state["odometer"].as_f64().unwrap() > 1_000.0);
    assert_eq!(json["gui_settings"]["gui_range_display"], "Rated");
    assert_eq!(json["drive_state"]["power"], 0);
    assert_eq!(json["closures_state"]["df"], 0);
}

#[test]
fn ids_vins_and_names_look_like_teslas() {
    let sim = Simulation::new(config(40, 14), T0);
    let prefixes = [
        "5YJ3E1EA", "LRW3E7EK", "5YJ3E7EB", "7SAYGDEE", "5YJYGDEE", "XP7YGCEK", "LRWYGCEK",
        "5YJSA1E2", "5YJXCBE2",
    ];
    let mut ids = HashSet::new();
    let mut vehicle_ids = HashSet::new();
    let mut vins = HashSet::new();
    let mut names = HashSet::new();
    for (index, car) in sim.vehicles().iter().enumerate() {
        assert!(car.id() > 1 << 32);
        assert_eq!(car.id().to_string().len(), 16);
        assert!(ids.insert(car.id()));
        assert!(vehicle_ids.insert(car.vehicle_id));
        let vin = car.vin();
        assert_eq!(vin.len(), 17);
        assert!(vin
            .chars()
            .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !"IOQ".contains(c))));
        assert!(prefixes.iter().any(|p| vin.starts_with(p)), "{vin}");
        assert_eq!(
            vin.chars().nth(8),
            Some(generate::vin_check_digit(vin)),
            "{vin}"
        );
        assert!(vins.insert(vin.to_string()));
        assert!(names.insert(car.display_name().to_string()));
        assert_eq!(
            car.state() == VehicleState::Online,
            car.power == Power::Online,
            "{index}"
        );
    }
    assert!(sim.vehicles().iter().any(|v| v.home.eu) && sim.vehicles().iter().any(|v| !v.home.eu));
}

#[test]
fn find_by_id_string_and_vin() {
    let sim = Simulation::new(config(5, 15), T0);
    for (index, car) in sim.vehicles().iter().enumerate() {
        assert_eq!(sim.find(&car.id().to_string()), Some(index));
        assert_eq!(sim.find(car.vin()), Some(index));
        assert_eq!(sim.find(&car.vin().to_ascii_lowercase()), Some(index));
    }
    let id = sim.vehicles()[0].id();
    assert_eq!(sim.find(&format!("+{id}")), None);
    assert_eq!(sim.find(""), None);
    assert_eq!(sim.find("1234"), None);
    assert_eq!(sim.find("5YJ3E1EA0PF000000"), None);
}

#[test]
fn a_week_away_is_fast_forwarded_to_sane_sleeping_cars() {
    let mut sim = Simulation::new(config(20, 16), T0);
    run(&mut sim, T0, T0 + 3 * HOUR, HOUR);
    // Leave one car charging from low, one with climate on, one waking.
    sim.vehicles[0].battery_percent = 12.0;
    sim.vehicles[0].plug_in(T0 + 3 * HOUR);
    let _ = quiet_online_car(&mut sim, 1, T0 + 3 * HOUR);
    let _ = sim.execute(1, &Command::AutoConditioningStart, T0 + 3 * HOUR + 10_000);
    sim.vehicles[2].power = Power::Asleep;
    sim.wake_up(2, T0 + 3 * HOUR);

    let end = T0 + 3 * HOUR + 7 * DAY + 777;
    sim.advance_to(end);
    for (index, car) in sim.vehicles().iter().enumerate() {
        assert_eq!(car.clock_ms, T0 + 3 * HOUR + 7 * DAY, "{index}");
        assert_eq!(car.state(), VehicleState::Asleep, "{index}");
        assert_eq!(car.speed_mph(), None, "{index}");
        assert!(!car.climate.on, "{index}");
        assert!((0.0..=100.0).contains(&car.battery_level()), "{index}");
        assert!(!car.is_charging(), "{index}");
        let outside = car.outside_temp_c(end);
        assert!((car.inside_temp_c() - outside).abs() < 0.01, "{index}");
    }
    assert_eq!(sim.vehicles()[0].charging_state(), "Complete");
    assert_eq!(sim.vehicles()[0].battery_level(), 80.0);

    // And life goes on from there.
    sim.wake_up(0, end);
    sim.advance_to(end + sim.config.wake_delay_ms);
    assert_eq!(sim.vehicles()[0].state(), VehicleState::Online);
    run(&mut sim, end, end + 12 * HOUR, HOUR);
}

#[test]
fn days_of_simulation_keep_every_value_sane() {
    let mut sim = Simulation::new(config(8, 17), T0);
    let start: Vec<f64> = sim.vehicles().iter().map(|v| v.odometer_miles()).collect();
    let mut charged = false;
    let mut previous = start.clone();
    let mut t = T0;
    while t < T0 + 2 * DAY {
        t += 20 * 60_000;
        sim.advance_to(t);
        for (index, car) in sim.vehicles().iter().enumerate() {
            assert!((0.0..=100.0).contains(&car.battery_level()), "{index}");
            assert!(car.odometer_miles() >= previous[index]);
            previous[index] = car.odometer_miles();
            if let Some(speed) = car.speed_mph() {
                assert!((0.0..=75.0).contains(&speed));
                assert_eq!(car.state(), VehicleState::Online);
            }
            if car.is_charging() {
                charged = true;
                assert_eq!(car.state(), VehicleState::Online);
                assert!(car.battery_level() <= f64::from(car.charge_limit));
            }
            assert!((0.0..360.0).contains(&car.heading_deg));
            assert!((-30.0..60.0).contains(&car.inside_temp_c()));
            let from_home = car.position.distance_mi(car.home.position);
            assert!(from_home < 40.0, "{index} wandered {from_home} miles");
        }
    }
    assert!(charged, "no car charged in two days");
    let drove = previous.iter().zip(&start).filter(|(a, b)| a > b).count();
    assert!(drove >= 6, "only {drove} of 8 cars drove in two days");
}
