//! Timestamps and durations as the Prometheus API reads and writes them:
//! RFC 3339 (written in UTC) or Unix seconds with a fraction, and durations
//! as `5m`/`1m30s` or seconds.

/// Formats milliseconds since the epoch as RFC 3339 UTC with millisecond
/// precision (`2026-11-25T01:02:03.004Z`); 0 is Go's zero time, which
/// Prometheus shows for "never" (`0001-01-01T00:00:00Z`).
pub fn rfc3339_ms(ms: i64) -> String {
    if ms == 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = crate::clock::civil_from_days(i128::from(days));
    let seconds = ms_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        ms_of_day % 1000
    )
}

/// Reads a time parameter: Unix seconds (`1435781451.781`) or RFC 3339
/// (`2015-07-01T20:10:51.781Z`, with an offset or `Z`); ms since the epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() {
            return Err(format!("cannot parse {text:?} to a valid timestamp"));
        }
        return Ok((seconds * 1000.0).round() as i64);
    }
    parse_rfc3339(text).ok_or_else(|| format!("cannot parse {text:?} to a valid timestamp"))
}

/// Reads a duration parameter: seconds (`15`, `0.5`) or a Prometheus
/// duration (`1m0s`, `5m`); ms.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() || seconds.abs() > i64::MAX as f64 / 1000.0 {
            return Err(format!(
                "cannot parse {text:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok((seconds * 1000.0).round() as i64);
    }
    text.parse::<crate::config::PromDuration>()
        .map(|d| d.0.as_millis() as i64)
        .map_err(|_| format!("cannot parse {text:?} to a valid duration"))
}

fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded: String = fraction[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = padded.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (rest[1..3].parse::<i64>().ok()? * 60 + rest[4..6].parse::<i64>().ok()?)
        }
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`crate::clock::civil_from_days`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_ms(1), "1970-01-01T00:00:00.001Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_568_523_004), "2026-11-25T01:02:03.004Z");
        assert_eq!(rfc3339_ms(-1000), "1969-12-31T23:59:59.000Z");
        assert_eq!(rfc3339_ms(0), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn reads_times_and_durations_as_prometheus() {
        assert_eq!(parse_time("1435781451.781"), Ok(1_435_781_451_781));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51.781+02:00"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("NaN").is_err());
        assert_eq!(parse_duration("15"), Ok(15_000));
        assert_eq!(parse_duration("0.5"), Ok(500));
        assert_eq!(parse_duration("1m0s"), Ok(60_000));
        assert!(parse_duration("1 minute").is_err());
    }
}
