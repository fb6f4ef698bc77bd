//! The fleet: Tesla Fleet API shapes served from one of two upstreams — the
//! built-in [`simulator`] (default) or the real Fleet API ([`tesla`]) — behind
//! one interface ([`Fleet`]), which also times every upstream call, counts
//! commands, keeps the [`command_log`] and refreshes the per-vehicle gauges.
//! [`api`] maps it onto `/api/1/*`. It must not know about PromQL, scraping or
//! the time-series store: its metrics go through the [`crate::metrics`] registry.

pub mod api;
pub mod command;
pub mod command_log;
pub mod error;
mod gauges;
mod simulated;
pub mod simulator;
pub mod tesla;

use crate::clock::now_ms;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::auth::Principal;
use crate::metrics::{CounterVec, HistogramVec, Registry, DEFAULT_BUCKETS};
use crate::storage::kv::{Kv, KvError};
use command::{Command, CommandOutcome, DataEndpoint};
use command_log::{CommandLog, CommandRecord};
use error::FleetError;
pub use gauges::FleetGauges;
use simulated::SimulatedFleet;
use simulator::SimConfig;
use tesla::{TeslaConfig, TeslaFleet};

/// Largest page of a list, as Tesla allows.
pub const MAX_PER_PAGE: usize = 100;

/// A page request: 1-based page number and page size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pagination {
    /// 1-based page number.
    pub page: usize,
    /// Items per page, 1..=[`MAX_PER_PAGE`].
    pub per_page: usize,
}

impl Pagination {
    /// Reads `page` and `per_page` (both optional) from query values.
    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Result<Pagination, FleetError> {
        let number = |name: &str, value: Option<&str>, default: usize, max: usize| match value {
            None | Some("") => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(FleetError::invalid_field(
                    name,
                    format!("'{v}' is not an integer in 1..{max}"),
                )),
            },
        };
        Ok(Pagination {
            page: number("page", page, 1, usize::MAX)?,
            per_page: number("per_page", per_page, MAX_PER_PAGE, MAX_PER_PAGE)?,
        })
    }

    /// Tesla's list envelope (`response`, `pagination`, `count`) for this page of `all`.
    pub fn envelope(self, all: Vec<Value>) -> Value {
        let total = all.len();
        let items: Vec<Value> = all
            .into_iter()
            .skip((self.page - 1).saturating_mul(self.per_page))
            .take(self.per_page)
            .collect();
        self.wrap(items, total)
    }

    /// The envelope for `items`, already cut to this page, out of `total`.
    pub fn wrap(self, items: Vec<Value>, total: usize) -> Value {
        let pages = total.div_ceil(self.per_page).max(1);
        json!({
            "response": items,
            "pagination": {
                "previous": (self.page > 1).then(|| self.page - 1),
                "next": (self.page < pages).then(|| self.page + 1),
                "current": self.page,
                "per_page": self.per_page,
                "count": total,
                "pages": pages,
            },
            "count": total,
        })
    }
}

/// Which upstream answers fleet calls, with its settings.
pub enum UpstreamConfig {
    /// The built-in simulator.
    Simulator(SimConfig),
    /// The real Fleet API.
    Tesla(TeslaConfig),
}

enum Upstream {
    Simulator(SimulatedFleet),
    Tesla(TeslaFleet),
}

/// The fleet service the HTTP API calls.
pub struct Fleet {
    upstream: Upstream,
    log: CommandLog,
    commands: CounterVec,
    call_duration: HistogramVec,
    gauges: FleetGauges,
}

impl Fleet {
    /// Opens the fleet on `kv`, registering its metrics in `registry`.
    pub fn open(kv: &Kv, config: UpstreamConfig, registry: &Registry) -> Result<Fleet, String> {
        let upstream = match config {
            UpstreamConfig::Simulator(sim) => {
                Upstream::Simulator(SimulatedFleet::open(kv, sim).map_err(|e| e.to_string())?)
            }
            UpstreamConfig::Tesla(tesla) => {
                Upstream::Tesla(TeslaFleet::new(tesla).map_err(|e| format!("Tesla upstream: {e}"))?)
            }
        };
        Ok(Fleet {
            upstream,
            log: CommandLog::new(kv).map_err(|e| e.to_string())?,
            commands: registry.counter(
                "tesla_commands",
                "Vehicle commands sent to the fleet upstream, wake_up included, by command.",
                &["command_type"],
            ),
            call_duration: registry.histogram(
                "tesla_api_call_duration",
                "Duration of calls to the fleet upstream (Tesla Fleet API or simulator), in seconds, by upstream endpoint.",
                &["endpoint"],
                &DEFAULT_BUCKETS,
            ),
            gauges: FleetGauges::new(registry),
        })
    }

    async fn timed<T>(&self, endpoint: &str, call: impl std::future::Future<Output = T>) -> T {
        let start = Instant::now();
        let out = call.await;
        self.call_duration
            .with(&[endpoint])
            .observe(start.elapsed().as_secs_f64());
        out
    }

    /// One page of the vehicle list, in Tesla's envelope.
    pub async fn list(&self, page: Pagination) -> Result<Value, FleetError> {
        self.timed("/api/1/vehicles", async {
            match &self.upstream {
                Upstream::Simulator(sim) => Ok(sim.list(page)),
                Upstream::Tesla(tesla) => tesla.list(page).await,
            }
        })
        .await
    }

    /// The vehicle object of `tag` (never wakes the car).
    pub async fn vehicle(&self, tag: &str) -> Result<Value, FleetError> {
        self.timed("/api/1/vehicles/{vehicle_tag}", async {
            match &self.upstream {
                Upstream::Simulator(sim) => sim.vehicle(tag),
                Upstream::Tesla(tesla) => tesla.vehicle(tag).await,
            }
        })
        .await
    }

    /// vehicle_data of `tag` (408 when asleep or offline).
    pub async fn vehicle_data(
        &self,
        tag: &str,
        endpoints: &[DataEndpoint],
    ) -> Result<Value, FleetError> {
        self.timed("/api/1/vehicles/{vehicle_tag}/vehicle_data", async {
            match &self.upstream {
                Upstream::Simulator(sim) => sim.vehicle_data(tag, endpoints),
                Upstream::Tesla(tesla) => tesla.vehicle_data(tag, endpoints).await,
            }
        })
        .await
    }

    /// Wakes `tag`, logged and counted as the `wake_up` command.
    pub async fn wake_up(&self, tag: &str, caller: &Principal) -> Result<Value, FleetError> {
        self.commands.with(&["wake_up"]).inc();
        let result = self
            .timed("/api/1/vehicles/{vehicle_tag}/wake_up", async {
                match &self.upstream {
                    Upstream::Simulator(sim) => sim.wake_up(tag),
                    Upstream::Tesla(tesla) => tesla.wake_up(tag).await,
                }
            })
            .await;
        let outcome = result
            .as_ref()
            .map(|_| CommandOutcome::done())
            .map_err(Clone::clone);
        self.record(tag, "wake_up", Value::Null, &outcome, caller);
        result
    }

    /// Sends `command` to `tag`, logged and counted.
    pub async fn command(
        &self,
        tag: &str,
        command: &Command,
        caller: &Principal,
    ) -> Result<CommandOutcome, FleetError> {
        self.commands.with(&[command.name()]).inc();
        let outcome = self
            .timed("/api/1/vehicles/{vehicle_tag}/command/{command}", async {
                match &self.upstream {
                    Upstream::Simulator(sim) => sim.command(tag, command),
                    Upstream::Tesla(tesla) => tesla.command(tag, command).await,
                }
            })
            .await;
        self.record(tag, command.name(), command.body(), &outcome, caller);
        outcome
    }

    fn record(
        &self,
        tag: &str,
        command: &str,
        parameters: Value,
        outcome: &Result<CommandOutcome, FleetError>,
        caller: &Principal,
    ) {
        let (result, reason) = match outcome {
            Ok(o) => (o.result, o.reason.clone()),
            Err(e) => (false, format!("{}: {}", e.error, e.description)),
        };
        let record = CommandRecord {
            id: 0,
            time_ms: now_ms(),
            vehicle: tag.to_string(),
            vin: self.vin(tag),
            command: command.to_string(),
            parameters,
            result,
            reason,
            caller: caller.name.clone(),
        };
        if let Err(e) = self.log.append(record) {
            tracing::error!(error = %e, command, "could not record command in the command log");
        }
    }

    /// The VIN of `tag`, when the upstream knows it.
    pub fn vin(&self, tag: &str) -> Option<String> {
        match &self.upstream {
            Upstream::Simulator(sim) => sim.vin(tag),
            Upstream::Tesla(tesla) => tesla.vin(tag),
        }
    }

    /// One page of the command log, newest first, of the fleet or one vehicle.
    pub fn command_log(
        &self,
        vehicle: Option<&str>,
        page: Pagination,
    ) -> Result<Value, FleetError> {
        let vin = match vehicle {
            None => None,
            Some(tag) => Some(
                self.vin(tag)
                    .ok_or_else(|| FleetError::vehicle_not_found(tag))?,
            ),
        };
        let (records, total) = self
            .log
            .page(vin.as_deref(), page.page, page.per_page)
            .map_err(|e| FleetError::new(500, "internal_error", e.to_string()))?;
        let items = records
            .into_iter()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
            .collect();
        Ok(page.wrap(items, total))
    }

    /// Refreshes the per-vehicle gauges without waking anything: the list
    /// gives each car's state; vehicle_data is asked only of online cars.
    pub async fn refresh_gauges(&self) {
        let mut vehicles = Vec::new();
        for page in 1..=100 {
            let pagination = Pagination {
                page,
                per_page: MAX_PER_PAGE,
            };
            let Ok(body) = self.list(pagination).await else {
                return;
            };
            let batch = body
                .get("response")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let done = batch.len() < MAX_PER_PAGE;
            vehicles.extend(batch);
            if done {
                break;
            }
        }
        let mut readings = Vec::new();
        for vehicle in vehicles {
            let online = vehicle.get("state").and_then(Value::as_str) == Some("online");
            let tag = vehicle
                .get("vin")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let data = if online {
                self.vehicle_data(&tag, gauges::ENDPOINTS).await.ok()
            } else {
                None
            };
            readings.push((vehicle, data));
        }
        self.gauges.update(&readings);
    }

    /// Saves what must survive a restart (the simulator's state).
    pub fn save(&self) -> Result<(), KvError> {
        match &self.upstream {
            Upstream::Simulator(sim) => sim.save(),
            Upstream::Tesla(_) => Ok(()),
        }
    }

    /// The background loop: refresh the gauges and save the fleet every
    /// `interval` until `shutdown` fires, then save one last time.
    pub async fn run_background(
        &self,
        interval: Duration,
        mut shutdown: crate::shutdown::Shutdown,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.refresh_gauges().await;
                    if let Err(e) = self.save() {
                        tracing::error!(error = %e, "could not save the fleet state");
                    }
                }
                _ = shutdown.wait() => break,
            }
        }
        if let Err(e) = self.save() {
            tracing::error!(error = %e, "could not save the fleet state at shutdown");
        }
    }
}
