//! One simulated car: its persisted state, the one-second step that moves it
//! forward, the cheap fast-forward over long gaps, and the commands it obeys.

use serde::{Deserialize, Serialize};

use super::super::command::{Command, CommandOutcome, Trunk};
use super::super::error::FleetError;
use super::geo::LatLon;
use super::rng::Rng;
use super::SimConfig;

/// The fixed step every car advances by; states only ever change on its
/// multiples (counted from the car's own clock), which is what makes one long
/// advance and many short ones land on the same state.
const STEP_MS: i64 = 1000;
/// Beyond this many steps in one advance, the rest is fast-forwarded as idle
/// time, so a server restarted after days does not replay them all.
const MAX_SIMULATED_STEPS: i64 = 3600;
/// Usable pack energy.
const PACK_KWH: f64 = 75.0;
/// Rated miles per percent of battery (about 310 miles for a full pack).
pub(super) const RATED_MILES_PER_PERCENT: f64 = 3.1;

const MAX_SPEED_MPH: f64 = 75.0;
/// Hard braking limit, for traffic-light stops.
const MAX_BRAKE_MPH_PER_S: f64 = 6.0;
/// The deceleration a driver plans with when approaching a turn or home.
const COMFORT_BRAKE_MPH_PER_S: f64 = 3.0;
/// Speed a driver takes a corner at (between legs) and rolls onto the drive at.
const CORNER_MPH: f64 = 12.0;
const ARRIVAL_MPH: f64 = 4.0;
const MASS_KG: f64 = 1900.0;
/// Share of braking energy the motor recovers.
const REGEN_EFFICIENCY: f64 = 0.6;
const MPH_TO_M_PER_S: f64 = 0.447_04;
/// Cruise speeds a leg may be driven at, from town streets to motorway.
const CRUISE_SPEEDS_MPH: [f64; 7] = [25.0, 30.0, 35.0, 45.0, 55.0, 65.0, 75.0];
/// Chance per second, below 45 mph, of meeting a red light or a junction.
const STOP_RATE: f64 = 1.0 / 150.0;

/// Trips per second of parked time: about one every four hours in the local
/// daytime, rare at night.
const TRIP_RATE_DAY: f64 = 1.0 / (4.0 * 3600.0);
const TRIP_RATE_NIGHT: f64 = 1.0 / (48.0 * 3600.0);
/// Trip length a driver picks, before the battery caps it.
const TRIP_MILES: (f64, f64) = (3.0, 35.0);
/// Battery kept in reserve when deciding how far a trip may go, and the
/// pessimistic consumption used for that decision (real use is ≈0.33 %/mile plus climate).
const RESERVE_PERCENT: f64 = 10.0;
const PLANNING_PERCENT_PER_MILE: f64 = 0.45;
/// A trip is abandoned where the car stands below this.
const STRANDED_PERCENT: f64 = 5.0;
/// Home charging habits: always below this level, otherwise sometimes.
const PLUG_IN_BELOW_PERCENT: f64 = 60.0;
const PLUG_IN_ANYWAY: f64 = 0.3;
/// Chance per asleep second of losing connectivity (about once in two days
/// asleep), and how long it lasts.
const OFFLINE_RATE: f64 = 1.0 / (2.0 * 86_400.0);
const OFFLINE_MINUTES: (i64, i64) = (5, 30);
/// Between `charge_start` and current flowing, Tesla reports "Starting".
const CHARGE_START_DELAY_MS: i64 = 3000;
/// Cabin time constants: the heat pump is quick, the cabin drifts slowly.
const CABIN_TAU_CLIMATE_ON_S: f64 = 5.0 * 60.0;
const CABIN_TAU_CLIMATE_OFF_S: f64 = 30.0 * 60.0;
/// Tesla turns climate off in a parked, unplugged car to protect the range.
const CLIMATE_CUTOFF_PERCENT: f64 = 20.0;

/// What Tesla reports as a car's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VehicleState {
    /// Awake and reachable: commands and `vehicle_data` work.
    Online,
    /// Asleep (or still waking up): only `wake_up` reaches it.
    Asleep,
    /// No connectivity at all.
    Offline,
}

impl VehicleState {
    /// Tesla's spelling: "online", "asleep" or "offline".
    pub fn as_str(self) -> &'static str {
        match self {
            VehicleState::Online => "online",
            VehicleState::Asleep => "asleep",
            VehicleState::Offline => "offline",
        }
    }
}

/// The four models, as Tesla's `car_type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Model {
    Model3,
    ModelY,
    ModelS,
    ModelX,
}

impl Model {
    pub(super) fn car_type(self) -> &'static str {
        match self {
            Model::Model3 => "model3",
            Model::ModelY => "modely",
            Model::ModelS => "models",
            Model::ModelX => "modelx",
        }
    }
}

/// Where a car lives and the weather there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Home {
    pub(super) position: LatLon,
    /// Standard-time offset of the local clock, seconds (daylight saving is
    /// irrelevant to when simulated drivers go out).
    pub(super) utc_offset_s: i64,
    /// European market car (230 V three-phase charging, metric GUI).
    pub(super) eu: bool,
    /// Daily mean and half-swing of the outside temperature, °C.
    pub(super) outside_mean_c: f64,
    pub(super) outside_swing_c: f64,
}

/// Connectivity, with the pending transitions Tesla exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Power {
    Asleep,
    /// Woken by `wake_up`; still reports "asleep" until `online_at_ms`.
    Waking {
        online_at_ms: i64,
    },
    Online,
    /// Out of reach (underground garage) until `until_ms`, then asleep again.
    Offline {
        until_ms: i64,
    },
}

/// The charge port: Tesla's `charging_state` plus when "Starting" ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Charge {
    Disconnected,
    Stopped,
    Starting { until_ms: i64 },
    Charging,
    Complete,
}

/// An AC charger as the car sees it.
pub(super) struct Charger {
    pub(super) volts: u32,
    pub(super) amps: u32,
    pub(super) phases: u32,
}

impl Charger {
    pub(super) fn kw(&self) -> f64 {
        f64::from(self.volts * self.amps * self.phases) / 1000.0
    }
}

/// A drive in progress: waypoints ending at home, and the car's motion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Trip {
    pub(super) route: Vec<LatLon>,
    /// Index in `route` of the waypoint being driven to.
    pub(super) next: usize,
    pub(super) speed_mph: f64,
    /// The speed the driver settles at on this leg.
    pub(super) cruise_mph: f64,
    /// Slowly wandering offset from the cruise speed (traffic, attention).
    pub(super) flow_mph: f64,
    /// Seconds still to wait at a red light.
    pub(super) stop_s: u32,
    /// Motor power during the last step, kW (negative while regenerating).
    pub(super) power_kw: f64,
}

/// Climate control and the cabin it heats or cools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Climate {
    pub(super) on: bool,
    pub(super) driver_c: f64,
    pub(super) passenger_c: f64,
    pub(super) inside_c: f64,
}

/// The whole state of one simulated car. The caller persists it as JSON; it
/// carries its own random generator and step clock, so a restored car goes on
/// exactly as if it had never been saved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SimVehicle {
    pub(super) id: u64,
    pub(super) vehicle_id: u64,
    pub(super) user_id: u64,
    pub(super) vin: String,
    pub(super) display_name: String,
    pub(super) tokens: [String; 2],
    pub(super) model: Model,
    pub(super) trim_badging: String,
    pub(super) exterior_color: String,
    pub(super) wheel_type: String,
    pub(super) home: Home,
    /// Cold tyre pressures, bar (front left, front right, rear left, rear right).
    pub(super) tpms_bar: [f64; 4],
    pub(super) rng: Rng,
    /// Time of the last step, ms since the epoch; the next one is `STEP_MS` later.
    pub(super) clock_ms: i64,
    pub(super) power: Power,
    /// When the car last had a reason to stay awake (drive, charge, climate,
    /// command, wake); it falls asleep `sleep_after_ms` later.
    pub(super) idle_since_ms: i64,
    pub(super) position: LatLon,
    pub(super) heading_deg: f64,
    pub(super) odometer_mi: f64,
    pub(super) battery_percent: f64,
    pub(super) charge_limit: u8,
    pub(super) charge: Charge,
    /// Since the cable was plugged in, kWh.
    pub(super) energy_added_kwh: f64,
    pub(super) charge_port_door_open: bool,
    pub(super) climate: Climate,
    pub(super) locked: bool,
    pub(super) frunk_open: bool,
    pub(super) trunk_open: bool,
    pub(super) trip: Option<Trip>,
}

impl SimVehicle {
    /// Tesla's `id`, the integer behind `id_s`.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The 17-character VIN.
    pub fn vin(&self) -> &str {
        &self.vin
    }

    /// The name the owner gave the car.
    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// What Tesla reports: a car still waking up is "asleep".
    pub fn state(&self) -> VehicleState {
        match self.power {
            Power::Online => VehicleState::Online,
            Power::Asleep | Power::Waking { .. } => VehicleState::Asleep,
            Power::Offline { .. } => VehicleState::Offline,
        }
    }

    /// State of charge, percent, at full precision (Tesla rounds it in JSON).
    pub fn battery_level(&self) -> f64 {
        self.battery_percent
    }

    /// Tesla's `charging_state`.
    pub fn charging_state(&self) -> &'static str {
        match self.charge {
            Charge::Disconnected => "Disconnected",
            Charge::Stopped => "Stopped",
            Charge::Starting { .. } => "Starting",
            Charge::Charging => "Charging",
            Charge::Complete => "Complete",
        }
    }

    /// Odometer, miles.
    pub fn odometer_miles(&self) -> f64 {
        self.odometer_mi
    }

    /// Speed in mph while driving; `None` when parked, as Tesla sends null.
    pub fn speed_mph(&self) -> Option<f64> {
        self.trip.as_ref().map(|trip| trip.speed_mph)
    }

    /// Cabin temperature, °C.
    pub fn inside_temp_c(&self) -> f64 {
        self.climate.inside_c
    }

    pub(super) fn is_plugged(&self) -> bool {
        self.charge != Charge::Disconnected
    }

    pub(super) fn is_charging(&self) -> bool {
        matches!(self.charge, Charge::Starting { .. } | Charge::Charging)
    }

    /// Whether something keeps the car from falling asleep.
    fn is_busy(&self) -> bool {
        self.trip.is_some() || self.is_charging() || self.climate.on
    }

    pub(super) fn charger(&self) -> Charger {
        if self.home.eu {
            Charger {
                volts: 230,
                amps: 16,
                phases: 3,
            }
        } else {
            Charger {
                volts: 240,
                amps: 48,
                phases: 1,
            }
        }
    }

    /// Battery percent gained per second while charging.
    pub(super) fn charge_percent_per_s(&self) -> f64 {
        kwh_to_percent(self.charger().kw() / 3600.0)
    }

    /// Seconds since local midnight at `t_ms`.
    fn local_seconds(&self, t_ms: i64) -> i64 {
        (t_ms.div_euclid(1000) + self.home.utc_offset_s).rem_euclid(86_400)
    }

    /// Outside temperature at `t_ms`: a daily sine peaking at 15:00 local.
    pub(super) fn outside_temp_c(&self, t_ms: i64) -> f64 {
        let day_fraction = self.local_seconds(t_ms) as f64 / 86_400.0;
        let phase = std::f64::consts::TAU * (day_fraction - 9.0 / 24.0);
        self.home.outside_mean_c + self.home.outside_swing_c * phase.sin()
    }

    /// Air-conditioning power for the current cabin, kW.
    fn hvac_kw(&self) -> f64 {
        if self.climate.on {
            0.5 + 0.25
                * (self.climate.inside_c - self.climate.driver_c)
                    .abs()
                    .min(14.0)
        } else {
            0.0
        }
    }

    /// Brings the car to `now_ms`: whole steps, then the pending transitions
    /// (wake, sleep, back online) that fall due before the next step.
    pub(super) fn advance_to(&mut self, now_ms: i64, config: &SimConfig) {
        if now_ms < self.clock_ms {
            return;
        }
        let steps = (now_ms - self.clock_ms) / STEP_MS;
        let simulated = steps.min(MAX_SIMULATED_STEPS);
        for _ in 0..simulated {
            self.step(self.clock_ms + STEP_MS, config);
        }
        if steps > simulated {
            self.fast_forward(self.clock_ms + (steps - simulated) * STEP_MS, config);
        }
        self.settle(now_ms, config);
    }

    /// The connectivity transitions that depend only on time. Applied both
    /// between steps (so a wake is visible the very millisecond it completes)
    /// and first thing in every step, which makes both paths agree.
    fn settle(&mut self, t_ms: i64, config: &SimConfig) {
        match self.power {
            Power::Waking { online_at_ms } if t_ms >= online_at_ms => {
                self.power = Power::Online;
                self.idle_since_ms = self.idle_since_ms.max(online_at_ms);
            }
            Power::Offline { until_ms } if t_ms >= until_ms => self.power = Power::Asleep,
            _ => {}
        }
        if self.power == Power::Online
            && !self.is_busy()
            && t_ms - self.idle_since_ms >= config.sleep_after_ms
        {
            self.power = Power::Asleep;
        }
    }

    /// One second of life ending at `t_ms`.
    fn step(&mut self, t_ms: i64, config: &SimConfig) {
        self.settle(t_ms, config);
        let was_busy = self.is_busy();
        if self.trip.is_some() {
            self.drive(t_ms);
        } else if !matches!(self.power, Power::Offline { .. }) {
            self.parked_events(t_ms);
        }
        self.charge_step(t_ms);
        self.climate_step(self.outside_temp_c(t_ms));
        if was_busy || self.is_busy() {
            self.idle_since_ms = t_ms;
        }
        self.clock_ms = t_ms;
    }

    /// Skips to `to_ms` as parked, idle time without drawing random numbers:
    /// a trip in progress ends where the car stands, climate goes off, a
    /// charge runs on toward the limit, the cabin drifts to the outside
    /// temperature, and the car sleeps once nothing keeps it awake.
    fn fast_forward(&mut self, to_ms: i64, config: &SimConfig) {
        let from_ms = self.clock_ms;
        let span_s = (to_ms - from_ms) as f64 / 1000.0;
        if self.trip.take().is_some() {
            self.idle_since_ms = from_ms;
        }
        self.climate.on = false;
        if self.is_charging() {
            let rate = self.charge_percent_per_s();
            let needed_s = (f64::from(self.charge_limit) - self.battery_percent).max(0.0) / rate;
            if needed_s <= span_s {
                self.energy_added_kwh += percent_to_kwh(needed_s * rate);
                self.battery_percent = self.battery_percent.max(f64::from(self.charge_limit));
                self.charge = Charge::Complete;
                self.idle_since_ms = from_ms + (needed_s * 1000.0).ceil() as i64;
            } else {
                self.energy_added_kwh += percent_to_kwh(span_s * rate);
                self.battery_percent += span_s * rate;
                self.charge = Charge::Charging;
                self.idle_since_ms = to_ms;
            }
        }
        let outside = self.outside_temp_c(to_ms);
        let drift = (-span_s / CABIN_TAU_CLIMATE_OFF_S).exp();
        self.climate.inside_c = outside + (self.climate.inside_c - outside) * drift;
        self.settle(to_ms, config);
        self.clock_ms = to_ms;
    }

    /// A parked car may be driven off (or plugged in when too low to go
    /// anywhere), and an asleep one may lose connectivity.
    fn parked_events(&mut self, t_ms: i64) {
        let hour = self.local_seconds(t_ms) / 3600;
        let trip_rate = if (7..21).contains(&hour) {
            TRIP_RATE_DAY
        } else {
            TRIP_RATE_NIGHT
        };
        if self.rng.chance(trip_rate) {
            self.go_out(t_ms);
        } else if self.power == Power::Asleep && self.rng.chance(OFFLINE_RATE) {
            let minutes = OFFLINE_MINUTES.0
                + self
                    .rng
                    .below((OFFLINE_MINUTES.1 - OFFLINE_MINUTES.0 + 1) as u64)
                    as i64;
            self.power = Power::Offline {
                until_ms: t_ms + minutes * 60_000,
            };
        }
    }

    /// The driver comes to the car: plans a drive the battery allows, or,
    /// when it allows none, plugs the car in instead.
    fn go_out(&mut self, t_ms: i64) {
        let home = self.home.position;
        let to_home = self.position.distance_mi(home);
        let reach = (self.battery_percent - RESERVE_PERCENT) / PLANNING_PERCENT_PER_MILE;
        if reach < to_home * 1.2 + TRIP_MILES.0 {
            if !self.is_plugged() {
                self.plug_in(t_ms);
            }
            return;
        }
        let route = if to_home > 0.05 {
            // Stranded away from home by an earlier trip: drive straight back.
            vec![home]
        } else {
            let planned_mi = self.rng.range(TRIP_MILES.0, TRIP_MILES.1).min(reach);
            self.loop_route(planned_mi)
        };
        self.power = Power::Online;
        if self.is_plugged() {
            self.charge = Charge::Disconnected;
            self.charge_port_door_open = false;
        }
        self.frunk_open = false;
        self.trunk_open = false;
        self.locked = true;
        self.climate.on = true;
        let first = route.first().copied().unwrap_or(home);
        self.heading_deg = self.position.bearing_deg(first);
        let cruise_mph = self.pick_cruise(self.position.distance_mi(first));
        self.trip = Some(Trip {
            route,
            next: 0,
            speed_mph: 0.0,
            cruise_mph,
            flow_mph: 0.0,
            stop_s: 0,
            power_kw: 0.0,
        });
        self.idle_since_ms = t_ms;
    }

    /// A loop of 2–5 waypoints and back home, on a circle through home whose
    /// circumference is about the planned distance.
    fn loop_route(&mut self, planned_mi: f64) -> Vec<LatLon> {
        let home = self.home.position;
        let radius = planned_mi / std::f64::consts::TAU;
        let direction = self.rng.range(0.0, 360.0);
        let centre = home.destination(direction, radius);
        let stops = 2 + self.rng.below(4);
        let mut route = Vec::with_capacity(stops as usize + 1);
        for j in 1..=stops {
            let angle = direction + 180.0 + 360.0 * j as f64 / (stops + 1) as f64;
            let r = radius * self.rng.range(0.8, 1.2);
            route.push(centre.destination(angle.rem_euclid(360.0), r));
        }
        route.push(home);
        route
    }

    /// The speed a driver settles at on a leg: short legs are town streets.
    fn pick_cruise(&mut self, leg_mi: f64) -> f64 {
        let wanted = self.rng.pick(&CRUISE_SPEEDS_MPH);
        wanted.min(20.0 + 12.0 * leg_mi).max(CRUISE_SPEEDS_MPH[0])
    }

    /// One second of driving toward the next waypoint.
    fn drive(&mut self, t_ms: i64) {
        let Some(trip) = self.trip.as_mut() else {
            return;
        };
        let Some(&waypoint) = trip.route.get(trip.next) else {
            self.park(t_ms, true);
            return;
        };
        let remaining = self.position.distance_mi(waypoint);
        let last_leg = trip.next + 1 == trip.route.len();
        let v0 = trip.speed_mph;
        // A smooth random walk: per-second jitter would make the car surge
        // and brake constantly, wasting energy no real driver wastes.
        trip.flow_mph = 0.97 * trip.flow_mph + self.rng.range(-0.6, 0.6);
        let target = if trip.stop_s > 0 {
            trip.stop_s -= 1;
            0.0
        } else {
            let exit = if last_leg { ARRIVAL_MPH } else { CORNER_MPH };
            // The speed from which a comfortable stop ends at `exit` on the waypoint.
            let approach =
                (exit * exit + 2.0 * COMFORT_BRAKE_MPH_PER_S * remaining * 3600.0).sqrt();
            (trip.cruise_mph + trip.flow_mph).min(approach)
        };
        let max_accel = (3.5 - v0 / 40.0).max(1.0);
        let v1 =
            (v0 + (target - v0).clamp(-MAX_BRAKE_MPH_PER_S, max_accel)).clamp(0.0, MAX_SPEED_MPH);
        let travelled = ((v0 + v1) / 2.0 / 3600.0).min(remaining);
        let arrived = travelled >= remaining;
        self.position = if arrived {
            waypoint
        } else {
            let bearing = self.position.bearing_deg(waypoint);
            self.position.destination(bearing, travelled)
        };
        self.odometer_mi += travelled;

        // Rolling and air resistance (≈250 Wh/mile at mixed speeds) plus
        // inertia, partly recovered when braking.
        let v_avg = (v0 + v1) / 2.0;
        let cruise_kw = v_avg * (140.0 + 0.032 * v_avg * v_avg) / 1000.0;
        let inertia_kw = MASS_KG * (v1 - v0) * MPH_TO_M_PER_S * v_avg * MPH_TO_M_PER_S / 1000.0;
        let power_kw = cruise_kw
            + if inertia_kw < 0.0 {
                inertia_kw * REGEN_EFFICIENCY
            } else {
                inertia_kw
            };
        trip.speed_mph = v1;
        trip.power_kw = power_kw;
        self.battery_percent -= kwh_to_percent(power_kw / 3600.0);

        if trip.stop_s == 0 && !arrived && v1 < 45.0 && self.rng.chance(STOP_RATE) {
            trip.stop_s = 8 + self.rng.below(33) as u32;
        }
        if arrived {
            trip.next += 1;
        }
        let next = trip.route.get(trip.next).copied();
        match next {
            None => self.park(t_ms, true),
            Some(next) => {
                self.heading_deg = self.position.bearing_deg(next);
                if arrived {
                    let cruise = self.pick_cruise(self.position.distance_mi(next));
                    if let Some(trip) = self.trip.as_mut() {
                        trip.cruise_mph = cruise;
                    }
                }
                if self.battery_percent <= STRANDED_PERCENT {
                    self.park(t_ms, false);
                }
            }
        }
    }

    /// Ends a trip: parked, climate off, and at home plugged in when low (or
    /// out of habit).
    fn park(&mut self, t_ms: i64, at_home: bool) {
        self.trip = None;
        self.climate.on = false;
        self.idle_since_ms = t_ms;
        if at_home
            && (self.battery_percent < PLUG_IN_BELOW_PERCENT || self.rng.chance(PLUG_IN_ANYWAY))
        {
            self.plug_in(t_ms);
        }
    }

    /// The owner plugs the cable in; the car wakes and starts charging
    /// unless already at its limit.
    pub(super) fn plug_in(&mut self, t_ms: i64) {
        self.power = Power::Online;
        self.charge_port_door_open = true;
        self.energy_added_kwh = 0.0;
        self.charge = if self.battery_percent >= f64::from(self.charge_limit) {
            Charge::Complete
        } else {
            Charge::Starting {
                until_ms: t_ms + CHARGE_START_DELAY_MS,
            }
        };
        self.idle_since_ms = t_ms;
    }

    fn charge_step(&mut self, t_ms: i64) {
        match self.charge {
            Charge::Starting { until_ms } if t_ms >= until_ms => self.charge = Charge::Charging,
            Charge::Charging => {
                let gained = self.charge_percent_per_s();
                let limit = f64::from(self.charge_limit);
                self.battery_percent = (self.battery_percent + gained).min(limit);
                self.energy_added_kwh += percent_to_kwh(gained);
                if self.battery_percent >= limit {
                    self.charge = Charge::Complete;
                }
            }
            _ => {}
        }
    }

    fn climate_step(&mut self, outside_c: f64) {
        if self.climate.on
            && self.trip.is_none()
            && !self.is_plugged()
            && self.battery_percent < CLIMATE_CUTOFF_PERCENT
        {
            self.climate.on = false;
        }
        let (target, tau_s) = if self.climate.on {
            (self.climate.driver_c, CABIN_TAU_CLIMATE_ON_S)
        } else {
            (outside_c, CABIN_TAU_CLIMATE_OFF_S)
        };
        self.climate.inside_c += (target - self.climate.inside_c) * (1.0 - (-1.0 / tau_s).exp());
        // Plugged in, the wall powers the heat pump.
        if !self.is_plugged() {
            self.battery_percent -= kwh_to_percent(self.hvac_kw() / 3600.0);
        }
        self.battery_percent = self.battery_percent.clamp(0.0, 100.0);
    }

    /// Tesla's `wake_up` on this car at `now_ms`.
    pub(super) fn wake_up(&mut self, now_ms: i64, config: &SimConfig) {
        self.advance_to(now_ms, config);
        match self.power {
            Power::Asleep => {
                self.power = Power::Waking {
                    online_at_ms: now_ms + config.wake_delay_ms,
                };
                self.settle(now_ms, config);
            }
            Power::Online => self.idle_since_ms = self.idle_since_ms.max(now_ms),
            Power::Waking { .. } | Power::Offline { .. } => {}
        }
    }

    /// Runs a command at `now_ms`, with Tesla's refusal reasons.
    pub(super) fn execute(
        &mut self,
        command: &Command,
        now_ms: i64,
        config: &SimConfig,
    ) -> Result<CommandOutcome, FleetError> {
        self.advance_to(now_ms, config);
        if self.power != Power::Online {
            return Err(FleetError::vehicle_unavailable());
        }
        self.idle_since_ms = self.idle_since_ms.max(now_ms);
        let limit = f64::from(self.charge_limit);
        let starting = Charge::Starting {
            until_ms: now_ms + CHARGE_START_DELAY_MS,
        };
        let outcome = match *command {
            Command::HonkHorn | Command::FlashLights => CommandOutcome::done(),
            Command::DoorLock | Command::DoorUnlock => {
                self.locked = *command == Command::DoorLock;
                CommandOutcome::done()
            }
            Command::ChargeStart => match self.charge {
                Charge::Starting { .. } | Charge::Charging => {
                    CommandOutcome::declined("is_charging")
                }
                Charge::Disconnected => CommandOutcome::declined("disconnected"),
                _ if self.battery_percent >= limit => CommandOutcome::declined("complete"),
                _ => {
                    self.charge = starting;
                    CommandOutcome::done()
                }
            },
            Command::ChargeStop => {
                if self.is_charging() {
                    self.charge = Charge::Stopped;
                    CommandOutcome::done()
                } else {
                    CommandOutcome::declined("not_charging")
                }
            }
            Command::SetChargeLimit { percent } => {
                if percent == self.charge_limit {
                    CommandOutcome::declined("already_set")
                } else {
                    self.charge_limit = percent;
                    let below_limit = self.battery_percent < f64::from(percent);
                    if self.is_charging() && !below_limit {
                        self.charge = Charge::Complete;
                    } else if self.charge == Charge::Complete && below_limit {
                        // A raised limit resumes charging, as on the car.
                        self.charge = starting;
                    }
                    CommandOutcome::done()
                }
            }
            Command::ChargePortDoorOpen => {
                self.charge_port_door_open = true;
                CommandOutcome::done()
            }
            Command::ChargePortDoorClose => {
                if self.is_plugged() {
                    CommandOutcome::declined("charge_cable_connected")
                } else {
                    self.charge_port_door_open = false;
                    CommandOutcome::done()
                }
            }
            Command::AutoConditioningStart | Command::AutoConditioningStop => {
                self.climate.on = *command == Command::AutoConditioningStart;
                CommandOutcome::done()
            }
            Command::SetTemps {
                driver_temp,
                passenger_temp,
            } => {
                self.climate.driver_c = driver_temp;
                self.climate.passenger_c = passenger_temp;
                CommandOutcome::done()
            }
            Command::ActuateTrunk { which_trunk } => {
                match which_trunk {
                    // The frunk has no motor to close it.
                    Trunk::Front => self.frunk_open = true,
                    Trunk::Rear => self.trunk_open = !self.trunk_open,
                }
                CommandOutcome::done()
            }
        };
        Ok(outcome)
    }
}

/// Battery percent held by `kwh`.
fn kwh_to_percent(kwh: f64) -> f64 {
    kwh / PACK_KWH * 100.0
}

fn percent_to_kwh(percent: f64) -> f64 {
    percent / 100.0 * PACK_KWH
}
