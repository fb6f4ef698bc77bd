//! The vehicle commands fleetmon accepts, parsed and validated from Tesla's
//! `POST /api/1/vehicles/{tag}/command/{name}` JSON bodies, and the
//! `endpoints` selection of `vehicle_data`. Both upstreams receive only
//! requests that passed through here, so a bad parameter is refused the same
//! way whether the car is simulated or real.

use serde::Serialize;
use serde_json::Value;

use super::error::FleetError;

/// The lowest and highest charge limit (percent) a car accepts.
pub const CHARGE_LIMIT_RANGE: (u8, u8) = (50, 100);
/// The lowest and highest cabin temperature setting (°C), Tesla's
/// `min_avail_temp` and `max_avail_temp`.
pub const CABIN_TEMP_RANGE: (f64, f64) = (15.0, 28.0);

/// Which trunk `actuate_trunk` moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trunk {
    /// The frunk.
    Front,
    /// The rear trunk.
    Rear,
}

/// A validated vehicle command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Sound the horn once.
    HonkHorn,
    /// Flash the headlights.
    FlashLights,
    /// Lock the doors.
    DoorLock,
    /// Unlock the doors.
    DoorUnlock,
    /// Start charging (when plugged in and below the limit).
    ChargeStart,
    /// Stop charging.
    ChargeStop,
    /// Set the charge limit, in percent.
    SetChargeLimit {
        /// Target state of charge, within [`CHARGE_LIMIT_RANGE`].
        percent: u8,
    },
    /// Open the charge port door.
    ChargePortDoorOpen,
    /// Close the charge port door.
    ChargePortDoorClose,
    /// Turn climate control on.
    AutoConditioningStart,
    /// Turn climate control off.
    AutoConditioningStop,
    /// Set the cabin temperatures, in °C.
    SetTemps {
        /// Driver side setting, °C.
        driver_temp: f64,
        /// Passenger side setting, °C.
        passenger_temp: f64,
    },
    /// Open (or, for the rear trunk, toggle) a trunk.
    ActuateTrunk {
        /// Which trunk.
        which_trunk: Trunk,
    },
}

/// Every command name accepted, in Tesla's spelling.
pub const COMMAND_NAMES: &[&str] = &[
    "honk_horn",
    "flash_lights",
    "door_lock",
    "door_unlock",
    "charge_start",
    "charge_stop",
    "set_charge_limit",
    "charge_port_door_open",
    "charge_port_door_close",
    "auto_conditioning_start",
    "auto_conditioning_stop",
    "set_temps",
    "actuate_trunk",
];

impl Command {
    /// Parses a command from its name and JSON body (`Value::Null` when the
    /// request had no body). Unknown names are `invalid_command`, missing or
    /// out-of-range parameters `invalid_field`, both 400 as Tesla answers.
    pub fn parse(name: &str, body: &Value) -> Result<Command, FleetError> {
        if !body.is_null() && !body.is_object() {
            return Err(FleetError::invalid_request(
                "the command body must be a JSON object",
            ));
        }
        let command = match name {
            "honk_horn" => Command::HonkHorn,
            "flash_lights" => Command::FlashLights,
            "door_lock" => Command::DoorLock,
            "door_unlock" => Command::DoorUnlock,
            "charge_start" => Command::ChargeStart,
            "charge_stop" => Command::ChargeStop,
            "set_charge_limit" => {
                let (low, high) = CHARGE_LIMIT_RANGE;
                let percent = integer_field(body, "percent")?;
                if percent < i64::from(low) || percent > i64::from(high) {
                    return Err(FleetError::invalid_field(
                        "percent",
                        format!("{percent} is outside {low}..{high}"),
                    ));
                }
                Command::SetChargeLimit {
                    percent: percent as u8,
                }
            }
            "charge_port_door_open" => Command::ChargePortDoorOpen,
            "charge_port_door_close" => Command::ChargePortDoorClose,
            "auto_conditioning_start" => Command::AutoConditioningStart,
            "auto_conditioning_stop" => Command::AutoConditioningStop,
            "set_temps" => Command::SetTemps {
                driver_temp: temperature_field(body, "driver_temp")?,
                passenger_temp: temperature_field(body, "passenger_temp")?,
            },
            "actuate_trunk" => {
                // Tesla's own command proxy treats a missing `which_trunk` as the rear trunk.
                let which_trunk = match body.get("which_trunk") {
                    None | Some(Value::Null) => Trunk::Rear,
                    Some(Value::String(s)) if s == "rear" => Trunk::Rear,
                    Some(Value::String(s)) if s == "front" => Trunk::Front,
                    Some(other) => {
                        return Err(FleetError::invalid_field(
                            "which_trunk",
                            format!("expected \"front\" or \"rear\", got {other}"),
                        ))
                    }
                };
                Command::ActuateTrunk { which_trunk }
            }
            _ => return Err(FleetError::invalid_command(name, COMMAND_NAMES)),
        };
        Ok(command)
    }

    /// The command's name in Tesla's spelling (`set_charge_limit`…).
    pub fn name(&self) -> &'static str {
        match self {
            Command::HonkHorn => "honk_horn",
            Command::FlashLights => "flash_lights",
            Command::DoorLock => "door_lock",
            Command::DoorUnlock => "door_unlock",
            Command::ChargeStart => "charge_start",
            Command::ChargeStop => "charge_stop",
            Command::SetChargeLimit { .. } => "set_charge_limit",
            Command::ChargePortDoorOpen => "charge_port_door_open",
            Command::ChargePortDoorClose => "charge_port_door_close",
            Command::AutoConditioningStart => "auto_conditioning_start",
            Command::AutoConditioningStop => "auto_conditioning_stop",
            Command::SetTemps { .. } => "set_temps",
            Command::ActuateTrunk { .. } => "actuate_trunk",
        }
    }

    /// The JSON body Tesla expects for this command (what the real upstream is sent).
    pub fn body(&self) -> Value {
        match self {
            Command::SetChargeLimit { percent } => serde_json::json!({ "percent": percent }),
            Command::SetTemps {
                driver_temp,
                passenger_temp,
            } => {
                serde_json::json!({ "driver_temp": driver_temp, "passenger_temp": passenger_temp })
            }
            Command::ActuateTrunk { which_trunk } => {
                serde_json::json!({ "which_trunk": which_trunk })
            }
            _ => serde_json::json!({}),
        }
    }
}

fn integer_field(body: &Value, field: &str) -> Result<i64, FleetError> {
    match body.get(field) {
        None | Some(Value::Null) => Err(FleetError::invalid_field(field, "required")),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| FleetError::invalid_field(field, format!("{n} is not an integer"))),
        // Tesla's apps send numbers; some clients send them as strings.
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| FleetError::invalid_field(field, format!("'{s}' is not an integer"))),
        Some(other) => Err(FleetError::invalid_field(
            field,
            format!("{other} is not an integer"),
        )),
    }
}

fn temperature_field(body: &Value, field: &str) -> Result<f64, FleetError> {
    let value = match body.get(field) {
        None | Some(Value::Null) => return Err(FleetError::invalid_field(field, "required (°C)")),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    let (low, high) = CABIN_TEMP_RANGE;
    match value {
        Some(t) if (low..=high).contains(&t) => Ok(t),
        Some(t) => Err(FleetError::invalid_field(
            field,
            format!("{t} °C is outside {low}..{high} °C"),
        )),
        None => Err(FleetError::invalid_field(field, "not a number (°C)")),
    }
}

/// The outcome of a command the vehicle received: Tesla answers 200 with
/// `{"result": false, "reason": "is_charging"}` when the car declines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandOutcome {
    /// Whether the car carried the command out.
    pub result: bool,
    /// Tesla's reason when it did not (`is_charging`, `not_charging`…), else empty.
    pub reason: String,
}

impl CommandOutcome {
    /// The car carried the command out.
    pub fn done() -> Self {
        CommandOutcome {
            result: true,
            reason: String::new(),
        }
    }

    /// The car declined, for Tesla's `reason`.
    pub fn declined(reason: &str) -> Self {
        CommandOutcome {
            result: false,
            reason: reason.to_string(),
        }
    }
}

/// The `vehicle_data` sections, as named in the `endpoints` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataEndpoint {
    /// `charge_state`.
    ChargeState,
    /// `climate_state`.
    ClimateState,
    /// `closures_state` (answered with the doors, trunks and windows of `vehicle_state`).
    ClosuresState,
    /// `drive_state` (without position unless `location_data` is asked for).
    DriveState,
    /// `gui_settings`.
    GuiSettings,
    /// `location_data`: adds latitude, longitude and heading to `drive_state`.
    LocationData,
    /// `vehicle_config`.
    VehicleConfig,
    /// `vehicle_state`.
    VehicleState,
}

impl DataEndpoint {
    const ALL: &'static [(&'static str, DataEndpoint)] = &[
        ("charge_state", DataEndpoint::ChargeState),
        ("climate_state", DataEndpoint::ClimateState),
        ("closures_state", DataEndpoint::ClosuresState),
        ("drive_state", DataEndpoint::DriveState),
        ("gui_settings", DataEndpoint::GuiSettings),
        ("location_data", DataEndpoint::LocationData),
        ("vehicle_config", DataEndpoint::VehicleConfig),
        ("vehicle_state", DataEndpoint::VehicleState),
    ];

    /// The sections sent when `endpoints` is absent: everything but position.
    pub const DEFAULT: &'static [DataEndpoint] = &[
        DataEndpoint::ChargeState,
        DataEndpoint::ClimateState,
        DataEndpoint::DriveState,
        DataEndpoint::GuiSettings,
        DataEndpoint::VehicleConfig,
        DataEndpoint::VehicleState,
    ];

    /// Parses Tesla's `endpoints` parameter: names separated by `;` (or `,`).
    /// An unknown name is an `invalid_field` error naming it.
    pub fn parse_list(list: Option<&str>) -> Result<Vec<DataEndpoint>, FleetError> {
        let Some(list) = list.filter(|l| !l.trim().is_empty()) else {
            return Ok(Self::DEFAULT.to_vec());
        };
        let mut out = Vec::new();
        for name in list
            .split([';', ','])
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            let Some((_, endpoint)) = Self::ALL.iter().find(|(n, _)| *n == name) else {
                let known: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                return Err(FleetError::invalid_field(
                    "endpoints",
                    format!("unknown endpoint '{name}'; known: {}", known.join(", ")),
                ));
            };
            if !out.contains(endpoint) {
                out.push(*endpoint);
            }
        }
        Ok(out)
    }

    /// The name in Tesla's spelling.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, e)| *e == self)
            .map_or("", |(n, _)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_without_parameters_accept_no_body_or_an_empty_object() {
        for name in ["honk_horn", "door_lock", "charge_stop"] {
            assert_eq!(Command::parse(name, &Value::Null).unwrap().name(), name);
            assert_eq!(Command::parse(name, &json!({})).unwrap().name(), name);
        }
    }

    #[test]
    fn every_listed_name_parses_with_valid_parameters() {
        let body = json!({"percent": 80, "driver_temp": 21.5, "passenger_temp": 20, "which_trunk": "front"});
        for name in COMMAND_NAMES {
            assert_eq!(Command::parse(name, &body).unwrap().name(), *name);
        }
    }

    #[test]
    fn set_charge_limit_validates_percent() {
        assert_eq!(
            Command::parse("set_charge_limit", &json!({"percent": 90})).unwrap(),
            Command::SetChargeLimit { percent: 90 }
        );
        assert_eq!(
            Command::parse("set_charge_limit", &json!({"percent": "75"})).unwrap(),
            Command::SetChargeLimit { percent: 75 }
        );
        let missing = Command::parse("set_charge_limit", &json!({})).unwrap_err();
        assert_eq!(
            (missing.status, missing.error.as_str()),
            (400, "invalid_field")
        );
        assert!(missing.description.contains("percent"));
        let high = Command::parse("set_charge_limit", &json!({"percent": 101})).unwrap_err();
        assert!(high.description.contains("outside 50..100"), "{high}");
        assert!(Command::parse("set_charge_limit", &json!({"percent": 80.5})).is_err());
        assert!(Command::parse("set_charge_limit", &json!({"percent": true})).is_err());
    }

    #[test]
    fn set_temps_needs_both_temperatures_in_range() {
        assert!(Command::parse("set_temps", &json!({"driver_temp": 21})).is_err());
        let cold = Command::parse(
            "set_temps",
            &json!({"driver_temp": 5, "passenger_temp": 20}),
        )
        .unwrap_err();
        assert!(cold.description.starts_with("driver_temp"), "{cold}");
    }

    #[test]
    fn actuate_trunk_defaults_to_rear_and_rejects_other_values() {
        assert_eq!(
            Command::parse("actuate_trunk", &json!({})).unwrap(),
            Command::ActuateTrunk {
                which_trunk: Trunk::Rear
            }
        );
        assert!(Command::parse("actuate_trunk", &json!({"which_trunk": "side"})).is_err());
    }

    #[test]
    fn unknown_command_and_non_object_body_are_rejected() {
        let err = Command::parse("launch_rocket", &Value::Null).unwrap_err();
        assert_eq!((err.status, err.error.as_str()), (400, "invalid_command"));
        assert!(err.description.contains("launch_rocket"));
        assert_eq!(
            Command::parse("honk_horn", &json!([1])).unwrap_err().error,
            "invalid_request"
        );
    }

    #[test]
    fn body_round_trips_through_parse() {
        let command = Command::SetTemps {
            driver_temp: 20.5,
            passenger_temp: 19.0,
        };
        assert_eq!(
            Command::parse(command.name(), &command.body()).unwrap(),
            command
        );
    }

    #[test]
    fn endpoints_parameter() {
        assert_eq!(
            DataEndpoint::parse_list(None).unwrap(),
            DataEndpoint::DEFAULT
        );
        assert_eq!(
            DataEndpoint::parse_list(Some("charge_state;location_data")).unwrap(),
            vec![DataEndpoint::ChargeState, DataEndpoint::LocationData]
        );
        let err = DataEndpoint::parse_list(Some("charge_state;engine_state")).unwrap_err();
        assert!(err.description.contains("engine_state"));
        assert_eq!(DataEndpoint::LocationData.name(), "location_data");
    }
}
