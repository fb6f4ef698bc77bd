//! Creation of car `index` of a seeded fleet. Every car draws from its own
//! random stream and the fleet-wide values (id bases, name order, weather)
//! from streams of their own, so car 7 is the same car whether the fleet was
//! created with ten cars or grew to ten later.

use super::geo::LatLon;
use super::rng::Rng;
use super::vehicle::{Charge, Climate, Home, Model, Power, SimVehicle};

/// Streams for fleet-wide draws, far from the per-car ones (0, 1, 2…).
const FLEET_STREAM: u64 = u64::MAX;
const WEATHER_STREAM: u64 = u64::MAX - 1;

/// Cities homes are scattered around.
struct City {
    centre: LatLon,
    /// Standard-time UTC offset, hours.
    utc_offset_h: i64,
    eu: bool,
    /// Range the seed picks the city's daily mean temperature from, °C.
    mean_c: (f64, f64),
}

const CITIES: [City; 6] = [
    // Paris
    City {
        centre: LatLon {
            lat: 48.8566,
            lon: 2.3522,
        },
        utc_offset_h: 1,
        eu: true,
        mean_c: (9.0, 17.0),
    },
    // Lyon
    City {
        centre: LatLon {
            lat: 45.7640,
            lon: 4.8357,
        },
        utc_offset_h: 1,
        eu: true,
        mean_c: (10.0, 18.0),
    },
    // Berlin
    City {
        centre: LatLon {
            lat: 52.5200,
            lon: 13.4050,
        },
        utc_offset_h: 1,
        eu: true,
        mean_c: (7.0, 15.0),
    },
    // Oslo
    City {
        centre: LatLon {
            lat: 59.9139,
            lon: 10.7522,
        },
        utc_offset_h: 1,
        eu: true,
        mean_c: (4.0, 12.0),
    },
    // Fremont, CA
    City {
        centre: LatLon {
            lat: 37.5485,
            lon: -121.9886,
        },
        utc_offset_h: -8,
        eu: false,
        mean_c: (13.0, 19.0),
    },
    // Austin, TX
    City {
        centre: LatLon {
            lat: 30.2672,
            lon: -97.7431,
        },
        utc_offset_h: -6,
        eu: false,
        mean_c: (15.0, 22.0),
    },
];

/// Homes lie within this distance of the city centre, miles.
const SUBURB_RADIUS_MI: f64 = 6.0;

/// Display names; a prime count lets any stride visit them all before repeating.
const NAMES: [&str; 31] = [
    "Rouge",
    "Falcon",
    "Nimbus",
    "Comet",
    "Zephyr",
    "Aurora",
    "Kestrel",
    "Juniper",
    "Maverick",
    "Orca",
    "Pixel",
    "Saffron",
    "Tempest",
    "Voltaire",
    "Willow",
    "Bolt",
    "Cassis",
    "Dune",
    "Ember",
    "Fjord",
    "Galileo",
    "Lumière",
    "Mistral",
    "Nova",
    "Pegasus",
    "Quasar",
    "Sirocco",
    "Tango",
    "Vega",
    "Blue Thunder",
    "Polaris",
];

const COLORS: [&str; 8] = [
    "PearlWhite",
    "SolidBlack",
    "MidnightSilver",
    "DeepBlue",
    "RedMulticoat",
    "Quicksilver",
    "StealthGrey",
    "UltraRed",
];

/// Trim badges and wheels Tesla reports for each model.
fn options(model: Model) -> (&'static [&'static str], &'static [&'static str]) {
    match model {
        Model::Model3 => (
            &["50", "74d", "p74d"],
            &["Pinwheel18", "Stiletto19", "Photon18"],
        ),
        Model::ModelY => (&["74d", "p74d"], &["Apollo19", "Gemini19", "Induction20"]),
        Model::ModelS => (&["100d", "p100d"], &["Tempest19", "Arachnid21"]),
        Model::ModelX => (&["100d", "p100d"], &["Cyberstream20", "Turbine22"]),
    }
}

/// The first eight VIN characters (manufacturer and model descriptor) and the
/// plant letter of cars sold in each market: Fremont, Austin, Shanghai, Berlin.
fn vin_origins(model: Model, eu: bool) -> &'static [(&'static str, char)] {
    match (model, eu) {
        (Model::Model3, false) => &[("5YJ3E1EA", 'F')],
        (Model::Model3, true) => &[("LRW3E7EK", 'C'), ("5YJ3E7EB", 'F')],
        (Model::ModelY, false) => &[("7SAYGDEE", 'A'), ("5YJYGDEE", 'F')],
        (Model::ModelY, true) => &[("XP7YGCEK", 'B'), ("LRWYGCEK", 'C')],
        (Model::ModelS, _) => &[("5YJSA1E2", 'F')],
        (Model::ModelX, _) => &[("5YJXCBE2", 'F')],
    }
}

/// Model-year letters 2021–2024.
const VIN_YEARS: [char; 4] = ['M', 'N', 'P', 'R'];

/// The North American check digit (position 9): transliterated characters
/// weighted and summed modulo 11, 10 written as X.
pub(super) fn vin_check_digit(vin: &str) -> char {
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let value = |c: char| match c {
        '0'..='9' => c.to_digit(10).unwrap_or(0),
        'A' | 'J' => 1,
        'B' | 'K' | 'S' => 2,
        'C' | 'L' | 'T' => 3,
        'D' | 'M' | 'U' => 4,
        'E' | 'N' | 'V' => 5,
        'F' | 'W' => 6,
        'G' | 'P' | 'X' => 7,
        'H' | 'Y' => 8,
        _ => 9, // R and Z; I, O and Q never occur in a VIN
    };
    let sum: u32 = vin.chars().zip(WEIGHTS).map(|(c, w)| value(c) * w).sum();
    match sum % 11 {
        10 => 'X',
        n => char::from_digit(n, 10).unwrap_or('0'),
    }
}

/// Car `index` of the fleet `seed`, parked at home at `now_ms`.
pub(super) fn generate(seed: u64, index: usize, now_ms: i64) -> SimVehicle {
    let mut fleet = Rng::stream(seed, FLEET_STREAM);
    let id_base = 1_000_000_000_000_000 + fleet.below(4_000_000_000_000_000);
    let vehicle_id_base = 1_000_000_000 + fleet.below(2_000_000_000);
    let user_id = 100_000_000_000_000 + fleet.below(900_000_000_000_000);
    let name_offset = fleet.below(NAMES.len() as u64);
    let name_stride = 1 + fleet.below(NAMES.len() as u64 - 1);
    let serial_base = fleet.below(1_000_000);

    let i = index as u64;
    let mut rng = Rng::stream(seed, i);
    // Strides wider than the jitter keep ids unique across the fleet.
    let id = id_base + i * 1_000_003_001 + rng.below(1_000_000_000);
    let vehicle_id = vehicle_id_base + i * 1_009 + rng.below(1_000);

    let lap = i / NAMES.len() as u64;
    let name = NAMES[((name_offset + i * name_stride) % NAMES.len() as u64) as usize];
    let display_name = if lap == 0 {
        name.to_string()
    } else {
        format!("{name} {}", lap + 1)
    };

    let city_index = rng.below(CITIES.len() as u64) as usize;
    let city = &CITIES[city_index];
    // The weather belongs to the city, not the car: its own stream per city.
    let mut weather = Rng::stream(seed, WEATHER_STREAM - city_index as u64);
    let outside_mean_c = weather.range(city.mean_c.0, city.mean_c.1);
    let outside_swing_c = weather.range(3.0, 6.0);
    let home_position = city
        .centre
        .destination(rng.range(0.0, 360.0), SUBURB_RADIUS_MI * rng.unit().sqrt());

    let model = match rng.unit() {
        u if u < 0.4 => Model::Model3,
        u if u < 0.8 => Model::ModelY,
        u if u < 0.9 => Model::ModelS,
        _ => Model::ModelX,
    };
    let (trims, wheels) = options(model);
    let (prefix, plant) = rng.pick(vin_origins(model, city.eu));
    let serial = (serial_base + i * 104_729) % 1_000_000;
    let mut vin = format!("{prefix}0{}{plant}{serial:06}", rng.pick(&VIN_YEARS));
    let check = vin_check_digit(&vin);
    vin.replace_range(8..9, check.encode_utf8(&mut [0; 4]));

    let charge_limit = 80;
    let plugged = rng.chance(0.35);
    let battery_percent = if plugged {
        f64::from(charge_limit)
    } else {
        rng.range(30.0, 90.0)
    };
    let power = if rng.chance(0.25) {
        Power::Online
    } else {
        Power::Asleep
    };
    let driver_c = 19.0 + 0.5 * rng.below(7) as f64;
    let tokens = [
        format!("{:016x}", rng.next_u64()),
        format!("{:016x}", rng.next_u64()),
    ];
    let mut tpms_bar = [0.0; 4];
    for pressure in &mut tpms_bar {
        *pressure = 2.9 + rng.range(-0.05, 0.05);
    }

    let mut vehicle = SimVehicle {
        id,
        vehicle_id,
        user_id,
        vin,
        display_name,
        tokens,
        model,
        trim_badging: rng.pick(trims).to_string(),
        exterior_color: rng.pick(&COLORS).to_string(),
        wheel_type: rng.pick(wheels).to_string(),
        home: Home {
            position: home_position,
            utc_offset_s: city.utc_offset_h * 3600,
            eu: city.eu,
            outside_mean_c,
            outside_swing_c,
        },
        tpms_bar,
        heading_deg: rng.range(0.0, 360.0),
        odometer_mi: rng.range(1_500.0, 60_000.0),
        rng,
        clock_ms: now_ms,
        power,
        idle_since_ms: now_ms,
        position: home_position,
        battery_percent,
        charge_limit,
        charge: if plugged {
            Charge::Complete
        } else {
            Charge::Disconnected
        },
        energy_added_kwh: 0.0,
        charge_port_door_open: plugged,
        climate: Climate {
            on: false,
            driver_c,
            passenger_c: driver_c,
            inside_c: 0.0,
        },
        locked: true,
        frunk_open: false,
        trunk_open: false,
        trip: None,
    };
    vehicle.climate.inside_c = vehicle.outside_temp_c(now_ms);
    vehicle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digit_matches_a_known_vin() {
        // The worked example of the check-digit standard (49 CFR 565).
        assert_eq!(vin_check_digit("1M8GDM9AXKP042788"), 'X');
        assert_eq!(vin_check_digit("11111111111111111"), '1');
    }

    #[test]
    fn names_do_not_repeat_within_a_lap() {
        let names: std::collections::HashSet<String> =
            (0..40).map(|i| generate(9, i, 0).display_name).collect();
        assert_eq!(names.len(), 40);
    }
}
