//! Prometheus durations (`15s`, `1m30s`, `2h`, `7d`, `500ms`): units
//! `ms`, `s`, `m`, `h`, `d`, `w`, `y` (365 days), largest first, each at most
//! once — the syntax of `prometheus.yml` and of fleetmon's duration flags.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written the Prometheus way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PromDuration(pub Duration);

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

impl FromStr for PromDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<PromDuration, String> {
        let bad = || format!("'{text}' is not a duration (examples: 15s, 1m30s, 2h, 500ms)");
        if text.is_empty() {
            return Err("empty duration".to_string());
        }
        if text == "0" {
            return Ok(PromDuration(Duration::ZERO));
        }
        let mut rest = text;
        let mut total: u64 = 0;
        // Index into UNITS of the last unit used: units must come largest first, once each.
        let mut last_unit: Option<usize> = None;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..letters];
            let index = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
            if last_unit.is_some_and(|last| index <= last) {
                return Err(bad());
            }
            last_unit = Some(index);
            total = number
                .checked_mul(UNITS[index].1)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(|| format!("'{text}' is too long a duration"))?;
            rest = &rest[letters..];
        }
        Ok(PromDuration(Duration::from_millis(total)))
    }
}

impl fmt::Display for PromDuration {
    /// Writes the duration as Prometheus does (`1m30s`, `0s`). Years and
    /// weeks are used only when they divide the whole duration: `15d`, not
    /// `2w1d` (Prometheus's default retention reads `15d`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            let whole_only = matches!(unit, "y" | "w");
            if ms >= size && !(whole_only && ms % size != 0) {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for PromDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PromDuration, D::Error> {
        super::deserialize_parsed(deserializer)
    }
}

impl serde::Serialize for PromDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u128 {
        text.parse::<PromDuration>().unwrap().0.as_millis()
    }

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(ms("15s"), 15_000);
        assert_eq!(ms("1m30s"), 90_000);
        assert_eq!(ms("1h1m1s1ms"), 3_661_001);
        assert_eq!(ms("2d"), 172_800_000);
        assert_eq!(ms("1w"), 604_800_000);
        assert_eq!(ms("1y"), 31_536_000_000);
        assert_eq!(ms("0"), 0);
        assert_eq!(ms("0s"), 0);
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for bad in [
            "",
            "15",
            "s",
            "1.5s",
            "1s1m",
            "1m1m",
            "-1s",
            "1 s",
            "1sec",
            "99999999999999999999y",
        ] {
            assert!(bad.parse::<PromDuration>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn displays_as_prometheus_does() {
        for text in [
            "1m30s", "15s", "2h", "1d12h", "500ms", "0s", "15d", "2w", "1y", "366d", "8d1ms",
        ] {
            assert_eq!(text.parse::<PromDuration>().unwrap().to_string(), text);
        }
    }
}
