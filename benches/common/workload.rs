//! The realistic workload every benchmark shares: series shaped like real
//! scrape data (HTTP counters with method/endpoint/status_code, histogram
//! buckets with `le`, node CPU and memory, fleet gauges; 5–9 labels each),
//! sampled every 15 s, counters increasing, gauges random-walking. The same
//! seed gives the same series and values.

use fleetmon::storage::SeriesSamples;

/// Scrape interval of the workload, ms.
pub const INTERVAL_MS: i64 = 15_000;

enum Kind {
    /// Increases by a random integer in 0..=max per scrape.
    Counter { max_step: u64 },
    /// Increases by up to 15 s with 0.01 s resolution (CPU seconds).
    Seconds,
    /// Random walk with two decimals.
    Gauge { step: f64 },
}

struct Spec {
    labels: Vec<(String, String)>,
    kind: Kind,
    value: f64,
}

/// A population of series and their current values.
pub struct Workload {
    series: Vec<Spec>,
    rng: u64,
}

const METHODS: [&str; 3] = ["GET", "POST", "PUT"];
const ENDPOINTS: [&str; 6] = [
    "/api/1/vehicles",
    "/api/1/vehicles/{tag}",
    "/api/1/vehicles/{tag}/vehicle_data",
    "/api/1/vehicles/{tag}/wake_up",
    "/api/1/vehicles/{tag}/command/{command}",
    "/metrics",
];
const CODES: [&str; 4] = ["200", "401", "408", "500"];
const BUCKETS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];
const MODES: [&str; 8] = [
    "user", "system", "idle", "iowait", "irq", "softirq", "steal", "nice",
];

/// The label pairs sorted by name, as Prometheus holds a label set and as
/// the Remote-Write 1.0 specification requires senders to send it.
fn pairs(list: &[(&str, String)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = list
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    pairs.sort();
    pairs
}

impl Workload {
    /// `n` series from `seed`: per instance, 72 HTTP counters, 72 histogram
    /// buckets, 32 CPU counters, 4 memory gauges and 20 fleet gauges (200).
    pub fn new(n: usize, seed: u64) -> Workload {
        let mut series = Vec::with_capacity(n);
        let mut instance = 0;
        'fill: loop {
            let host = format!("host-{instance:05}:9100");
            let region = ["eu-west", "us-east", "ap-south"][instance % 3].to_string();
            let common = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
                let mut list = vec![
                    ("job", "fleet".to_string()),
                    ("instance", host.clone()),
                    ("region", region.clone()),
                ];
                list.extend_from_slice(extra);
                list
            };
            let add = |labels: Vec<(&str, String)>, kind: Kind, series: &mut Vec<Spec>| {
                series.push(Spec {
                    labels: pairs(&labels),
                    kind,
                    value: 0.0,
                });
                series.len() >= n
            };
            for method in METHODS {
                for endpoint in ENDPOINTS {
                    for code in CODES {
                        let labels = common(&[
                            ("__name__", "http_requests_total".into()),
                            ("method", method.into()),
                            ("endpoint", endpoint.into()),
                            ("status_code", code.into()),
                        ]);
                        let busy = if code == "200" { 50 } else { 2 };
                        if add(labels, Kind::Counter { max_step: busy }, &mut series) {
                            break 'fill;
                        }
                    }
                }
            }
            for endpoint in ENDPOINTS {
                for le in BUCKETS {
                    let labels = common(&[
                        ("__name__", "http_request_duration_seconds_bucket".into()),
                        ("method", "GET".into()),
                        ("endpoint", endpoint.into()),
                        ("le", le.into()),
                    ]);
                    if add(labels, Kind::Counter { max_step: 20 }, &mut series) {
                        break 'fill;
                    }
                }
            }
            for cpu in 0..4 {
                for mode in MODES {
                    let labels = common(&[
                        ("__name__", "node_cpu_seconds_total".into()),
                        ("cpu", cpu.to_string()),
                        ("mode", mode.into()),
                    ]);
                    if add(labels, Kind::Seconds, &mut series) {
                        break 'fill;
                    }
                }
            }
            for name in [
                "node_memory_MemAvailable_bytes",
                "node_memory_MemFree_bytes",
                "node_memory_Cached_bytes",
                "node_load1",
            ] {
                if add(
                    common(&[("__name__", name.into())]),
                    Kind::Gauge { step: 1e6 },
                    &mut series,
                ) {
                    break 'fill;
                }
            }
            for v in 0..5 {
                let vin = format!("5YJ3E1EA{instance:05}{v:04}");
                for name in [
                    "tesla_vehicle_battery_level_percent",
                    "tesla_vehicle_inside_temperature_celsius",
                    "tesla_vehicle_odometer_meters",
                    "tesla_vehicle_speed_meters_per_second",
                ] {
                    let labels = common(&[
                        ("__name__", name.into()),
                        ("vin", vin.clone()),
                        ("display_name", format!("car-{v}")),
                    ]);
                    if add(labels, Kind::Gauge { step: 0.5 }, &mut series) {
                        break 'fill;
                    }
                }
            }
            instance += 1;
        }
        let mut workload = Workload {
            series,
            rng: seed | 1,
        };
        for i in 0..workload.series.len() {
            let start = (workload.next() % 10_000) as f64;
            workload.series[i].value = start;
        }
        workload
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: fast and good enough for benchmark data.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Advances every series by one scrape.
    fn step(&mut self) {
        for i in 0..self.series.len() {
            let r = self.next();
            let s = &mut self.series[i];
            s.value = match s.kind {
                Kind::Seconds => ((s.value + (r % 1501) as f64 / 100.0) * 100.0).round() / 100.0,
                Kind::Counter { max_step } => s.value + (r % (max_step + 1)) as f64,
                Kind::Gauge { step } => {
                    let delta = ((r % 201) as f64 - 100.0) / 100.0 * step;
                    ((s.value + delta) * 100.0).round() / 100.0
                }
            };
        }
    }

    /// `steps` scrapes starting at `t0`, as remote-write-style batches of
    /// about `batch_samples` samples (each series carries its samples of
    /// `steps_per_batch` consecutive scrapes).
    pub fn batches(
        &mut self,
        t0: i64,
        steps: i64,
        steps_per_batch: i64,
        batch_samples: usize,
    ) -> Vec<Vec<SeriesSamples>> {
        let mut out = Vec::new();
        let mut step = 0;
        while step < steps {
            let n = steps_per_batch.min(steps - step);
            let mut values: Vec<Vec<(i64, f64)>> =
                vec![Vec::with_capacity(n as usize); self.series.len()];
            for k in 0..n {
                self.step();
                let t = t0 + (step + k) * INTERVAL_MS;
                for (i, s) in self.series.iter().enumerate() {
                    values[i].push((t, s.value));
                }
            }
            let mut batch = Vec::new();
            let mut in_batch = 0;
            for (i, samples) in values.into_iter().enumerate() {
                in_batch += samples.len();
                batch.push(SeriesSamples {
                    labels: self.series[i].labels.clone(),
                    samples,
                });
                if in_batch >= batch_samples {
                    out.push(std::mem::take(&mut batch));
                    in_batch = 0;
                }
            }
            if !batch.is_empty() {
                out.push(batch);
            }
            step += n;
        }
        out
    }
}
