//! The simulated fleet: cars that sleep, wake, drive, charge and heat up,
//! advanced in fixed one-second steps so a seed makes them deterministic.
//!
//! This is the upstream fleetmon answers from by default. Each car owns its
//! random generator and step clock, so the caller can persist the cars as
//! JSON between runs and a restored fleet continues exactly where it stopped;
//! nothing here reads the wall clock, every entry point is told the time.

mod generate;
mod geo;
mod json;
mod rng;
mod vehicle;

#[cfg(test)]
mod tests;

use serde_json::Value;

use super::command::{Command, CommandOutcome, DataEndpoint};
use super::error::FleetError;

pub use vehicle::{SimVehicle, VehicleState};

/// How many cars there are, which seed shapes them, and Tesla's sleep timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// Number of cars in the fleet.
    pub vehicles: usize,
    /// Seed of every random choice: same seed, same fleet, same lives.
    pub seed: u64,
    /// Time an asleep car takes to come online after `wake_up`, ms.
    pub wake_delay_ms: i64,
    /// Idle time after which an online car falls asleep, ms.
    pub sleep_after_ms: i64,
}

impl Default for SimConfig {
    /// Five cars, seed 1, a 10 s wake and Tesla's usual 15 minutes to sleep.
    fn default() -> Self {
        SimConfig {
            vehicles: 5,
            seed: 1,
            wake_delay_ms: 10_000,
            sleep_after_ms: 15 * 60_000,
        }
    }
}

/// The whole simulated fleet.
#[derive(Debug, Clone)]
pub struct Simulation {
    config: SimConfig,
    vehicles: Vec<SimVehicle>,
}

impl Simulation {
    /// A fresh fleet generated from `config.seed`, with vehicles starting at `now_ms`.
    pub fn new(config: SimConfig, now_ms: i64) -> Simulation {
        Simulation::restore(config, Vec::new(), now_ms)
    }

    /// Continues from persisted vehicles (as returned by [`Simulation::vehicles`]),
    /// advanced to `now_ms`. A larger `config.vehicles` adds the missing cars
    /// exactly as [`Simulation::new`] would have created them at `now_ms`; a
    /// smaller one keeps the first cars.
    pub fn restore(config: SimConfig, mut vehicles: Vec<SimVehicle>, now_ms: i64) -> Simulation {
        vehicles.truncate(config.vehicles);
        for index in vehicles.len()..config.vehicles {
            vehicles.push(generate::generate(config.seed, index, now_ms));
        }
        let mut simulation = Simulation { config, vehicles };
        simulation.advance_to(now_ms);
        simulation
    }

    /// The cars, in fleet order; persist these to restore the fleet later.
    pub fn vehicles(&self) -> &[SimVehicle] {
        &self.vehicles
    }

    /// Advances every car to `now_ms` in fixed 1000 ms steps aligned on each
    /// car's own step clock, so one call and many smaller calls ending at the
    /// same time give identical state. A time in the past is a no-op. Past
    /// 3600 steps in one call the rest is fast-forwarded as parked, idle
    /// time (trips end where the car stands, charging completes toward the
    /// limit, the cabin drifts to the outside temperature, idle cars sleep),
    /// which keeps a restart after days cheap; identity with small calls
    /// holds for calls up to an hour apart.
    pub fn advance_to(&mut self, now_ms: i64) {
        for vehicle in &mut self.vehicles {
            vehicle.advance_to(now_ms, &self.config);
        }
    }

    /// Index of the car whose integer id (as a decimal string) or VIN is `tag`.
    pub fn find(&self, tag: &str) -> Option<usize> {
        let id = Some(tag)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<u64>().ok());
        self.vehicles
            .iter()
            .position(|v| Some(v.id) == id || v.vin.eq_ignore_ascii_case(tag))
    }

    /// Tesla's `wake_up` at `now_ms`: an asleep car comes online
    /// `wake_delay_ms` later (reporting "asleep" until then), an online car
    /// stays online with its idle timer reset, an offline car cannot be
    /// reached. An unknown index is ignored.
    pub fn wake_up(&mut self, index: usize, now_ms: i64) {
        if let Some(vehicle) = self.vehicles.get_mut(index) {
            vehicle.wake_up(now_ms, &self.config);
        }
    }

    /// Runs `command` at `now_ms` on an online car. Errors with Tesla's 408
    /// when the car is not online (404 for an unknown index); a car that
    /// declines answers `Ok` with Tesla's reason (`is_charging`,
    /// `disconnected`, `complete`, `not_charging`, `already_set`,
    /// `charge_cable_connected`). Every command resets the idle timer.
    pub fn execute(
        &mut self,
        index: usize,
        command: &Command,
        now_ms: i64,
    ) -> Result<CommandOutcome, FleetError> {
        let vehicle = self
            .vehicles
            .get_mut(index)
            .ok_or_else(|| FleetError::vehicle_not_found(&index.to_string()))?;
        vehicle.execute(command, now_ms, &self.config)
    }

    /// The vehicle object as `GET /api/1/vehicles` and `/vehicles/{tag}`
    /// return it; `null` for an unknown index.
    pub fn vehicle_json(&self, index: usize) -> Value {
        self.vehicles
            .get(index)
            .map_or(Value::Null, SimVehicle::vehicle_json)
    }

    /// `vehicle_data` with the selected sections, timestamped `now_ms`;
    /// position fields only when `LocationData` is selected. Errors with
    /// Tesla's 408 when the car is not online (404 for an unknown index).
    pub fn vehicle_data_json(
        &self,
        index: usize,
        endpoints: &[DataEndpoint],
        now_ms: i64,
    ) -> Result<Value, FleetError> {
        let vehicle = self
            .vehicles
            .get(index)
            .ok_or_else(|| FleetError::vehicle_not_found(&index.to_string()))?;
        if vehicle.state() != VehicleState::Online {
            return Err(FleetError::vehicle_unavailable());
        }
        Ok(vehicle.vehicle_data_json(endpoints, now_ms))
    }
}
