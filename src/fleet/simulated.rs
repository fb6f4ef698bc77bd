//! The simulator upstream: the [`Simulation`] behind a lock, advanced to the
//! wall clock before every call, and persisted in the store (after each
//! command, periodically, and at shutdown) so a restart continues where the
//! fleet left off.

use crate::clock::now_ms;
use std::sync::Mutex;

use serde_json::Value;

use super::command::{Command, CommandOutcome, DataEndpoint};
use super::error::FleetError;
use super::simulator::{SimConfig, SimVehicle, Simulation};
use super::Pagination;
use crate::storage::kv::{trees, Kv, KvError, KvTree};

/// The simulated fleet, persisted.
pub struct SimulatedFleet {
    simulation: Mutex<Simulation>,
    store: KvTree,
}

impl SimulatedFleet {
    /// Restores the fleet saved in `kv`, or creates one from `config`.
    pub fn open(kv: &Kv, config: SimConfig) -> Result<SimulatedFleet, KvError> {
        let store = kv.tree(trees::VEHICLES)?;
        let saved = store.entries::<SimVehicle>()?;
        let saved_keys: Vec<Vec<u8>> = saved.iter().map(|(key, _)| key.clone()).collect();
        let saved: Vec<SimVehicle> = saved.into_iter().map(|(_, v)| v).collect();
        let now = now_ms();
        let simulation = if saved.is_empty() {
            Simulation::new(config, now)
        } else {
            Simulation::restore(config, saved, now)
        };
        // A smaller --fleet.simulator.vehicles than last time shrinks the stored fleet too.
        for key in saved_keys {
            if !simulation
                .vehicles()
                .iter()
                .any(|v| v.id().to_be_bytes() == key.as_slice())
            {
                store.remove(&key)?;
            }
        }
        let fleet = SimulatedFleet {
            simulation: Mutex::new(simulation),
            store,
        };
        fleet.save()?;
        Ok(fleet)
    }

    /// Runs `f` on the simulation advanced to now.
    fn with<T>(&self, f: impl FnOnce(&mut Simulation, i64) -> T) -> T {
        let mut simulation = self.simulation.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        simulation.advance_to(now);
        f(&mut simulation, now)
    }

    fn index(simulation: &Simulation, tag: &str) -> Result<usize, FleetError> {
        simulation
            .find(tag)
            .ok_or_else(|| FleetError::vehicle_not_found(tag))
    }

    /// Writes every vehicle's state to the store.
    pub fn save(&self) -> Result<(), KvError> {
        let vehicles = self.with(|simulation, _| simulation.vehicles().to_vec());
        for vehicle in &vehicles {
            self.store.put(&vehicle.id().to_be_bytes(), vehicle)?;
        }
        Ok(())
    }

    fn save_one(&self, vehicle: &SimVehicle) {
        if let Err(e) = self.store.put(&vehicle.id().to_be_bytes(), vehicle) {
            tracing::error!(error = %e, vin = vehicle.vin(), "could not save simulated vehicle");
        }
    }

    /// One page of the vehicle list in Tesla's envelope.
    pub fn list(&self, page: Pagination) -> Value {
        self.with(|simulation, _| {
            let all: Vec<Value> = (0..simulation.vehicles().len())
                .map(|i| simulation.vehicle_json(i))
                .collect();
            page.envelope(all)
        })
    }

    /// The vehicle object of `tag`.
    pub fn vehicle(&self, tag: &str) -> Result<Value, FleetError> {
        self.with(|simulation, _| Ok(simulation.vehicle_json(Self::index(simulation, tag)?)))
    }

    /// vehicle_data of `tag` (408 unless online).
    pub fn vehicle_data(&self, tag: &str, endpoints: &[DataEndpoint]) -> Result<Value, FleetError> {
        self.with(|simulation, now| {
            simulation.vehicle_data_json(Self::index(simulation, tag)?, endpoints, now)
        })
    }

    /// Starts waking `tag`; returns its vehicle object.
    pub fn wake_up(&self, tag: &str) -> Result<Value, FleetError> {
        self.with(|simulation, now| {
            let index = Self::index(simulation, tag)?;
            simulation.wake_up(index, now);
            self.save_one(&simulation.vehicles()[index]);
            Ok(simulation.vehicle_json(index))
        })
    }

    /// Runs `command` on `tag`.
    pub fn command(&self, tag: &str, command: &Command) -> Result<CommandOutcome, FleetError> {
        self.with(|simulation, now| {
            let index = Self::index(simulation, tag)?;
            let outcome = simulation.execute(index, command, now)?;
            self.save_one(&simulation.vehicles()[index]);
            Ok(outcome)
        })
    }

    /// The VIN of `tag`, if it names a vehicle of this fleet.
    pub fn vin(&self, tag: &str) -> Option<String> {
        self.with(|simulation, _| {
            simulation
                .find(tag)
                .map(|i| simulation.vehicles()[i].vin().to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_smaller_fleet_shrinks_the_store_and_keeps_the_first_cars() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::open(dir.path()).unwrap();
        let config = |vehicles| SimConfig {
            vehicles,
            ..SimConfig::default()
        };
        let five = SimulatedFleet::open(&kv, config(5)).unwrap();
        let vins: Vec<String> = (0..5)
            .map(|i| five.with(|s, _| s.vehicles()[i].vin().to_string()))
            .collect();
        drop(five);
        let two = SimulatedFleet::open(&kv, config(2)).unwrap();
        assert_eq!(kv.tree(trees::VEHICLES).unwrap().len(), 2);
        assert_eq!(two.vin(&vins[0]), Some(vins[0].clone()));
        assert_eq!(two.vin(&vins[4]), None);
    }
}
