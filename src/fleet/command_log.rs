//! The command log: every wake-up and command sent to a vehicle, with its time,
//! vehicle, parameters, result and caller, kept in the store and listed newest
//! first, for the whole fleet or one vehicle (by VIN, through the index added in
//! schema 2).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::storage::kv::{trees, Kv, KvError, KvTree};

/// One logged command.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommandRecord {
    /// Position in the log (increasing).
    pub id: u64,
    /// When it was sent, Unix milliseconds.
    pub time_ms: i64,
    /// The vehicle tag the caller used (id or VIN).
    pub vehicle: String,
    /// The vehicle's VIN, when known.
    pub vin: Option<String>,
    /// Tesla's command name, or `wake_up`.
    pub command: String,
    /// The command's JSON parameters.
    pub parameters: Value,
    /// Whether the vehicle carried it out.
    pub result: bool,
    /// Tesla's reason when it did not, or the error that prevented it.
    pub reason: String,
    /// Who sent it (`user:admin`, `token:grafana`).
    pub caller: String,
}

/// The persistent command log.
#[derive(Clone)]
pub struct CommandLog {
    kv: Kv,
    records: KvTree,
    by_vehicle: KvTree,
}

impl CommandLog {
    /// Opens the log's trees in `kv`.
    pub fn new(kv: &Kv) -> Result<CommandLog, KvError> {
        Ok(CommandLog {
            kv: kv.clone(),
            records: kv.tree(trees::COMMANDS)?,
            by_vehicle: kv.tree(trees::COMMANDS_BY_VEHICLE)?,
        })
    }

    /// Appends a record; its `id` is assigned here.
    pub fn append(&self, mut record: CommandRecord) -> Result<CommandRecord, KvError> {
        record.id = self.kv.next_id()?;
        let key = record.id.to_be_bytes();
        self.records.put(&key, &record)?;
        if let Some(vin) = &record.vin {
            self.by_vehicle
                .put_empty(&trees::command_by_vehicle_key(vin, &key))?;
        }
        Ok(record)
    }

    /// One page (1-based) of records, newest first, of the fleet or of one VIN,
    /// with the total number of records that match.
    pub fn page(
        &self,
        vin: Option<&str>,
        page: usize,
        per_page: usize,
    ) -> Result<(Vec<CommandRecord>, usize), KvError> {
        let skip = page.saturating_sub(1) * per_page;
        match vin {
            None => {
                let records = self
                    .records
                    .newest_first::<CommandRecord>(b"", skip, per_page)?;
                Ok((
                    records.into_iter().map(|(_, r)| r).collect(),
                    self.records.len(),
                ))
            }
            Some(vin) => {
                let prefix = trees::command_by_vehicle_key(vin, &[]);
                let mut records = Vec::new();
                for key in self.by_vehicle.newest_keys(&prefix, skip, per_page)? {
                    if let Some(record) = self.records.get(&key[prefix.len()..])? {
                        records.push(record);
                    }
                }
                Ok((records, self.by_vehicle.count_prefix(&prefix)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(vin: &str, command: &str) -> CommandRecord {
        CommandRecord {
            id: 0,
            time_ms: 1,
            vehicle: vin.into(),
            vin: Some(vin.into()),
            command: command.into(),
            parameters: Value::Null,
            result: true,
            reason: String::new(),
            caller: "user:admin".into(),
        }
    }

    #[test]
    fn pages_newest_first_for_the_fleet_and_per_vehicle() {
        let dir = tempfile::tempdir().unwrap();
        let log = CommandLog::new(&Kv::open(dir.path()).unwrap()).unwrap();
        for i in 0..5 {
            log.append(record("VIN_A", &format!("a{i}"))).unwrap();
            log.append(record("VIN_B", &format!("b{i}"))).unwrap();
        }
        let (first, total) = log.page(None, 1, 3).unwrap();
        assert_eq!(total, 10);
        let names: Vec<_> = first.iter().map(|r| r.command.as_str()).collect();
        assert_eq!(names, ["b4", "a4", "b3"]);
        let (page2, total_a) = log.page(Some("VIN_A"), 2, 2).unwrap();
        assert_eq!(total_a, 5);
        let names: Vec<_> = page2.iter().map(|r| r.command.as_str()).collect();
        assert_eq!(names, ["a2", "a1"]);
        assert!(log.page(Some("VIN_A"), 4, 2).unwrap().0.is_empty());
    }
}
