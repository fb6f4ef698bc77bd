//! Byte sizes written as Prometheus writes them (`512MB`, `1GB`, `100KB`,
//! `0`): units B, KB, MB, GB, TB, PB, EB, powers of 1024 as in Prometheus's
//! `--storage.tsdb.retention.size`.

use std::fmt;
use std::str::FromStr;

/// A size in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

const UNITS: [(&str, u32); 7] = [
    ("EB", 6),
    ("PB", 5),
    ("TB", 4),
    ("GB", 3),
    ("MB", 2),
    ("KB", 1),
    ("B", 0),
];

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<ByteSize, String> {
        let bad = || format!("'{text}' is not a size (examples: 512MB, 2GB, 0)");
        let trimmed = text.trim();
        if trimmed == "0" {
            return Ok(ByteSize(0));
        }
        let (unit, power) = UNITS
            .iter()
            .find(|(unit, _)| trimmed.to_ascii_uppercase().ends_with(unit))
            .ok_or_else(bad)?;
        let number: u64 = trimmed[..trimmed.len() - unit.len()]
            .trim()
            .parse()
            .map_err(|_| bad())?;
        number
            .checked_mul(1024u64.pow(*power))
            .map(ByteSize)
            .ok_or_else(|| format!("'{text}' is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, power) in UNITS {
            let size = 1024u64.pow(power);
            if self.0 >= size && self.0 % size == 0 {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ByteSize, D::Error> {
        super::deserialize_parsed(deserializer)
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_prometheus_sizes() {
        assert_eq!("512MB".parse::<ByteSize>(), Ok(ByteSize(512 << 20)));
        assert_eq!("1GB".parse::<ByteSize>(), Ok(ByteSize(1 << 30)));
        assert_eq!("100kb".parse::<ByteSize>(), Ok(ByteSize(100 << 10)));
        assert_eq!("0".parse::<ByteSize>(), Ok(ByteSize(0)));
        assert_eq!("7B".parse::<ByteSize>(), Ok(ByteSize(7)));
        for bad in ["", "MB", "1.5GB", "12", "-1GB", "99999999999EB"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?}");
        }
        assert_eq!(ByteSize(512 << 20).to_string(), "512MB");
        assert_eq!(ByteSize(1500).to_string(), "1500B");
    }
}
