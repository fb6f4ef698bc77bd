//! Wall-clock time as the rest of fleetmon stores it: Unix milliseconds,
//! and the calendar arithmetic that turns it into dates.

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The proleptic Gregorian date of a day count since 1970-01-01, by eras of
/// 400 years starting in March (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i128) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u8;
    let month = (if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    }) as u8;
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    (year as i64, month, day)
}
