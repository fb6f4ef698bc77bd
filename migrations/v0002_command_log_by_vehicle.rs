//! Schema 2: an index of the command log by VIN, so that one vehicle's commands
//! are listed without scanning the whole log. Backfills the index from the
//! records schema 1 wrote; reads them as plain JSON so that later changes to
//! the record type cannot change what this migration does.

use crate::storage::kv::{trees, Kv, KvError};

/// Builds the by-VIN index over every command already logged.
pub fn apply(kv: &Kv) -> Result<(), KvError> {
    let commands = kv.tree(trees::COMMANDS)?;
    let index = kv.tree(trees::COMMANDS_BY_VEHICLE)?;
    for (sequence, record) in commands.entries::<serde_json::Value>()? {
        if let Some(vin) = record.get("vin").and_then(|v| v.as_str()) {
            index.put_empty(&trees::command_by_vehicle_key(vin, &sequence))?;
        }
    }
    Ok(())
}
