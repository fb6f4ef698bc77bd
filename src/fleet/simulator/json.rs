//! A simulated car rendered in Tesla's JSON: field names, units (miles, mph,
//! °C, ms timestamps) and the integer rounding Tesla applies, so clients
//! written against the real Fleet API read it unchanged.

use serde_json::{json, Map, Value};

use super::super::command::{DataEndpoint, CABIN_TEMP_RANGE, CHARGE_LIMIT_RANGE};
use super::vehicle::{Charge, SimVehicle, RATED_MILES_PER_PERCENT};

/// The Fleet API version the simulated firmware speaks.
const API_VERSION: u32 = 71;
const CAR_VERSION: &str = "2024.44.25.3 4e5f6a7b8c9d";
/// Tesla's default (and "standard") daily charge limit.
const CHARGE_LIMIT_STANDARD: u8 = 80;

fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

impl SimVehicle {
    /// The vehicle object of `GET /api/1/vehicles`.
    pub(super) fn vehicle_json(&self) -> Value {
        json!({
            "id": self.id,
            "vehicle_id": self.vehicle_id,
            "vin": self.vin,
            "display_name": self.display_name,
            "color": null,
            "access_type": "OWNER",
            "option_codes": null,
            "granular_access": { "hide_private": false },
            "tokens": self.tokens,
            "state": self.state().as_str(),
            "in_service": false,
            "id_s": self.id.to_string(),
            "calendar_enabled": true,
            "api_version": API_VERSION,
            "backseat_token": null,
            "backseat_token_updated_at": null,
        })
    }

    /// `vehicle_data` with the requested sections (the caller checks the car is online).
    pub(super) fn vehicle_data_json(&self, endpoints: &[DataEndpoint], now_ms: i64) -> Value {
        let mut data = match self.vehicle_json() {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        data.remove("display_name");
        data.insert("user_id".into(), json!(self.user_id));
        for endpoint in endpoints {
            let section = match endpoint {
                DataEndpoint::ChargeState => self.charge_state(now_ms),
                DataEndpoint::ClimateState => self.climate_state(now_ms),
                DataEndpoint::ClosuresState => self.closures_state(now_ms),
                // Location only adds fields to drive_state, built once below.
                DataEndpoint::DriveState | DataEndpoint::LocationData => continue,
                DataEndpoint::GuiSettings => self.gui_settings(now_ms),
                DataEndpoint::VehicleConfig => self.vehicle_config(now_ms),
                DataEndpoint::VehicleState => self.vehicle_state(now_ms),
            };
            data.insert(endpoint.name().into(), section);
        }
        let with_location = endpoints.contains(&DataEndpoint::LocationData);
        if with_location || endpoints.contains(&DataEndpoint::DriveState) {
            data.insert(
                "drive_state".into(),
                self.drive_state(now_ms, with_location),
            );
        }
        Value::Object(data)
    }

    fn charge_state(&self, now_ms: i64) -> Value {
        let level = self.battery_percent;
        let limit = f64::from(self.charge_limit);
        let plugged = self.is_plugged();
        let flowing = self.charge == Charge::Charging;
        let charger = self.charger();
        let percent_per_h = if flowing {
            self.charge_percent_per_s() * 3600.0
        } else {
            0.0
        };
        let hours_to_full = if flowing {
            (limit - level).max(0.0) / percent_per_h
        } else {
            0.0
        };
        let outside = self.outside_temp_c(now_ms);
        let rated = level * RATED_MILES_PER_PERCENT;
        // Cold batteries deliver less: the estimate drops with the weather.
        let estimated = rated * (0.92 - 0.01 * (10.0 - outside).max(0.0));
        let usable = if outside < 5.0 { level - 1.0 } else { level }.max(0.0);
        let (volts, amps) = if flowing {
            (charger.volts, charger.amps)
        } else {
            (0, 0)
        };
        json!({
            "battery_level": level.round() as i64,
            "usable_battery_level": usable.round() as i64,
            "battery_range": round_to(rated, 2),
            "est_battery_range": round_to(estimated, 2),
            "ideal_battery_range": round_to(rated, 2),
            "charging_state": self.charging_state(),
            "charge_limit_soc": self.charge_limit,
            "charge_limit_soc_min": CHARGE_LIMIT_RANGE.0,
            "charge_limit_soc_max": CHARGE_LIMIT_RANGE.1,
            "charge_limit_soc_std": CHARGE_LIMIT_STANDARD,
            "charge_amps": charger.amps,
            "charge_current_request": charger.amps,
            "charge_current_request_max": charger.amps,
            "charger_power": if flowing { charger.kw().round() as i64 } else { 0 },
            "charger_voltage": volts,
            "charger_actual_current": amps,
            "charger_phases": if flowing { Some(charger.phases) } else { None },
            "charge_rate": round_to(percent_per_h * RATED_MILES_PER_PERCENT, 1),
            "charge_energy_added": round_to(self.energy_added_kwh, 2),
            "charge_port_door_open": self.charge_port_door_open,
            "charge_port_latch": if plugged { "Engaged" } else { "Disengaged" },
            "minutes_to_full_charge": (hours_to_full * 60.0).round() as i64,
            "time_to_full_charge": round_to(hours_to_full, 2),
            "conn_charge_cable": match (plugged, self.home.eu) {
                (false, _) => "<invalid>",
                (true, true) => "IEC",
                (true, false) => "SAE",
            },
            "fast_charger_present": false,
            "scheduled_charging_mode": "Off",
            "timestamp": now_ms,
        })
    }

    fn climate_state(&self, now_ms: i64) -> Value {
        let climate = &self.climate;
        let fan_status = if climate.on {
            (1.0 + (climate.inside_c - climate.driver_c).abs())
                .min(7.0)
                .round() as i64
        } else {
            0
        };
        json!({
            "inside_temp": round_to(climate.inside_c, 1),
            "outside_temp": round_to(self.outside_temp_c(now_ms), 1),
            "driver_temp_setting": climate.driver_c,
            "passenger_temp_setting": climate.passenger_c,
            "min_avail_temp": CABIN_TEMP_RANGE.0,
            "max_avail_temp": CABIN_TEMP_RANGE.1,
            "is_climate_on": climate.on,
            "is_auto_conditioning_on": climate.on,
            "is_preconditioning": false,
            "fan_status": fan_status,
            "defrost_mode": 0,
            "climate_keeper_mode": "off",
            "cabin_overheat_protection": "On",
            "timestamp": now_ms,
        })
    }

    fn drive_state(&self, now_ms: i64, with_location: bool) -> Value {
        let (shift_state, speed, power_kw) = match &self.trip {
            Some(trip) => ("D", json!(trip.speed_mph.round() as i64), trip.power_kw),
            // Tesla reports the charger feeding the pack as negative power.
            None if self.charge == Charge::Charging => ("P", Value::Null, -self.charger().kw()),
            None => ("P", Value::Null, 0.0),
        };
        let mut state = json!({
            "shift_state": shift_state,
            "speed": speed,
            "power": power_kw.round() as i64,
            "timestamp": now_ms,
            "active_route_traffic_minutes_delay": 0,
        });
        if let (true, Value::Object(map)) = (with_location, &mut state) {
            let latitude = round_to(self.position.lat, 6);
            let longitude = round_to(self.position.lon, 6);
            let heading = (self.heading_deg.round() as i64).rem_euclid(360);
            for (key, value) in [
                ("latitude", json!(latitude)),
                ("longitude", json!(longitude)),
                ("heading", json!(heading)),
                ("gps_as_of", json!(self.clock_ms.div_euclid(1000))),
                ("native_latitude", json!(latitude)),
                ("native_longitude", json!(longitude)),
                ("native_location_supported", json!(1)),
                ("native_type", json!("wgs")),
            ] {
                map.insert(key.into(), value);
            }
        }
        state
    }

    fn vehicle_state(&self, now_ms: i64) -> Value {
        // Tyres gain about 0.008 bar per °C, and more once warmed by driving.
        let warmth = 0.008 * (self.outside_temp_c(now_ms) - 15.0)
            + if self.trip.is_some() { 0.15 } else { 0.0 };
        let [fl, fr, rl, rr] = self.tpms_bar.map(|cold| round_to(cold + warmth, 2));
        // vehicle_state carries the doors, trunks and windows of closures_state too.
        let mut state = self.closures_state(now_ms);
        let rest = json!({
            "odometer": round_to(self.odometer_mi, 6),
            "car_version": CAR_VERSION,
            "vehicle_name": self.display_name,
            "sentry_mode": false,
            "sentry_mode_available": true,
            "is_user_present": self.trip.is_some(),
            "software_update": {
                "status": "",
                "version": " ",
                "download_perc": 0,
                "install_perc": 1,
                "expected_duration_sec": 2700,
            },
            "tpms_pressure_fl": fl,
            "tpms_pressure_fr": fr,
            "tpms_pressure_rl": rl,
            "tpms_pressure_rr": rr,
            "api_version": API_VERSION,
        });
        if let (Value::Object(state), Value::Object(rest)) = (&mut state, rest) {
            state.extend(rest);
        }
        state
    }

    fn gui_settings(&self, now_ms: i64) -> Value {
        let (distance, temperature, charge_rate, tyres) = if self.home.eu {
            ("km/hr", "C", "kW", "Bar")
        } else {
            ("mi/hr", "F", "mi/hr", "Psi")
        };
        json!({
            "gui_distance_units": distance,
            "gui_temperature_units": temperature,
            "gui_charge_rate_units": charge_rate,
            "gui_range_display": "Rated",
            "gui_24_hour_time": self.home.eu,
            "gui_tirepressure_units": tyres,
            "show_range_units": false,
            "timestamp": now_ms,
        })
    }

    fn vehicle_config(&self, now_ms: i64) -> Value {
        json!({
            "car_type": self.model.car_type(),
            "trim_badging": self.trim_badging,
            "exterior_color": self.exterior_color,
            "wheel_type": self.wheel_type,
            "charge_port_type": if self.home.eu { "CCS" } else { "US" },
            "can_actuate_trunks": true,
            "motorized_charge_port": true,
            "eu_vehicle": self.home.eu,
            "rhd": false,
            "sun_roof_installed": null,
            "plg": true,
            "timestamp": now_ms,
        })
    }

    fn closures_state(&self, now_ms: i64) -> Value {
        json!({
            "df": 0,
            "dr": 0,
            "pf": 0,
            "pr": 0,
            "ft": i32::from(self.frunk_open),
            "rt": i32::from(self.trunk_open),
            "fd_window": 0,
            "fp_window": 0,
            "rd_window": 0,
            "rp_window": 0,
            "locked": self.locked,
            "timestamp": now_ms,
        })
    }
}
