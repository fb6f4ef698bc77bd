//! Per-vehicle gauges (`tesla_vehicle_*{vin,display_name}`), set from the
//! vehicle list and, for online cars only, vehicle_data, so refreshing them
//! never wakes a car. A sleeping car keeps its last known readings; a car that
//! left the fleet loses its series.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::command::DataEndpoint;
use crate::metrics::{GaugeVec, Registry};

/// The vehicle_data sections the gauges read.
pub const ENDPOINTS: &[DataEndpoint] = &[
    DataEndpoint::ChargeState,
    DataEndpoint::ClimateState,
    DataEndpoint::DriveState,
    DataEndpoint::VehicleState,
];

const METERS_PER_MILE: f64 = 1609.344;

const STATES: [&str; 3] = ["online", "asleep", "offline"];

#[derive(Clone, Default)]
struct Readings {
    battery_level: Option<f64>,
    charging: Option<f64>,
    odometer: Option<f64>,
    speed: Option<f64>,
    inside_temp: Option<f64>,
}

/// The fleet gauges and the last readings of each car.
pub struct FleetGauges {
    state: GaugeVec,
    battery_level: GaugeVec,
    charging: GaugeVec,
    odometer: GaugeVec,
    speed: GaugeVec,
    inside_temp: GaugeVec,
    last: Mutex<HashMap<String, Readings>>,
}

impl FleetGauges {
    /// Registers the gauges in `registry`.
    pub fn new(registry: &Registry) -> FleetGauges {
        let labels = &["vin", "display_name"];
        FleetGauges {
            state: registry.gauge(
                "tesla_vehicle_state",
                "1 for the vehicle's current state (online, asleep, offline), 0 for the others.",
                &["vin", "display_name", "state"],
            ),
            battery_level: registry.gauge(
                "tesla_vehicle_battery_level_percent",
                "Battery state of charge, percent (last known while asleep).",
                labels,
            ),
            charging: registry.gauge(
                "tesla_vehicle_charging",
                "1 while the vehicle is charging, else 0 (last known while asleep).",
                labels,
            ),
            odometer: registry.gauge(
                "tesla_vehicle_odometer_meters",
                "Odometer, meters (Tesla reports miles; last known while asleep).",
                labels,
            ),
            speed: registry.gauge(
                "tesla_vehicle_speed_meters_per_second",
                "Speed, meters per second (Tesla reports mph); 0 when parked (last known while asleep).",
                labels,
            ),
            inside_temp: registry.gauge(
                "tesla_vehicle_inside_temperature_celsius",
                "Cabin temperature, °C (last known while asleep).",
                labels,
            ),
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Sets every gauge from `(vehicle object, vehicle_data if online)` pairs
    /// covering the whole fleet.
    pub fn update(&self, vehicles: &[(Value, Option<Value>)]) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let mut present: Vec<[String; 2]> = Vec::new();
        for (vehicle, data) in vehicles {
            let text = |key: &str| {
                vehicle
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let (vin, name) = (text("vin"), text("display_name"));
            let state = text("state");
            let readings = last.entry(vin.clone()).or_default();
            if let Some(data) = data {
                *readings = read(data, readings);
            }
            let labels = [vin.as_str(), name.as_str()];
            for candidate in STATES {
                let value = if candidate == state { 1.0 } else { 0.0 };
                self.state.with(&[&vin, &name, candidate]).set(value);
            }
            for (gauge, value) in [
                (&self.battery_level, readings.battery_level),
                (&self.charging, readings.charging),
                (&self.odometer, readings.odometer),
                (&self.speed, readings.speed),
                (&self.inside_temp, readings.inside_temp),
            ] {
                if let Some(value) = value {
                    gauge.with(&labels).set(value);
                }
            }
            present.push([vin, name]);
        }
        let keep = |labels: &[String]| present.iter().any(|p| labels.starts_with(p));
        for gauge in [
            &self.state,
            &self.battery_level,
            &self.charging,
            &self.odometer,
            &self.speed,
            &self.inside_temp,
        ] {
            gauge.retain(keep);
        }
        last.retain(|vin, _| present.iter().any(|p| &p[0] == vin));
    }
}

/// New readings from vehicle_data; a field the answer lacks keeps its old value.
fn read(data: &Value, old: &Readings) -> Readings {
    let number = |section: &str, field: &str| {
        data.get(section)
            .and_then(|s| s.get(field))
            .and_then(Value::as_f64)
    };
    let charging = data
        .get("charge_state")
        .and_then(|s| s.get("charging_state"))
        .and_then(Value::as_str)
        .map(|s| {
            if s == "Charging" || s == "Starting" {
                1.0
            } else {
                0.0
            }
        });
    // Tesla sends a null speed when parked. Gauges use Prometheus's base units.
    let speed = data
        .get("drive_state")
        .map(|d| d.get("speed").and_then(Value::as_f64).unwrap_or(0.0) * METERS_PER_MILE / 3600.0);
    Readings {
        battery_level: number("charge_state", "battery_level").or(old.battery_level),
        charging: charging.or(old.charging),
        odometer: number("vehicle_state", "odometer")
            .map(|miles| miles * METERS_PER_MILE)
            .or(old.odometer),
        speed: speed.or(old.speed),
        inside_temp: number("climate_state", "inside_temp").or(old.inside_temp),
    }
}
