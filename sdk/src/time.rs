//! Event-time helpers: UTC calendar fields of an epoch-ms time, and durations like `"5m"`.
//!
//! Rules never read the wall clock; they use these on `Event::time_ms` (e.g. business hours
//! in `after_hours_sensitive_access`). [`crate::testing::TestEvent::at`] parses RFC 3339.

/// Milliseconds per second, minute, hour, day.
pub const SECOND_MS: i64 = 1000;
/// Milliseconds per minute.
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
/// Milliseconds per hour.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Milliseconds per day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Monday first.
    pub const ALL: [Weekday; 7] =
        [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

    /// Three lowercase letters: `mon`..`sun`.
    pub const fn as_str(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self as usize]
    }

    /// Parses `mon`..`sun` (case-insensitive, full names accepted).
    pub fn parse(text: &str) -> Option<Weekday> {
        let t = text.trim().to_ascii_lowercase();
        Weekday::ALL.into_iter().find(|d| t.len() >= 3 && t.starts_with(d.as_str()))
    }
}

/// UTC calendar fields of an epoch-ms time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcDateTime {
    /// Year.
    pub year: i64,
    /// Month 1..=12.
    pub month: u32,
    /// Day 1..=31.
    pub day: u32,
    /// Hour 0..=23.
    pub hour: u32,
    /// Minute 0..=59.
    pub minute: u32,
    /// Second 0..=59.
    pub second: u32,
    /// Milliseconds 0..=999.
    pub millis: u32,
    /// Day of the week.
    pub weekday: Weekday,
}

impl UtcDateTime {
    /// The calendar fields of `time_ms` (epoch ms, UTC).
    pub fn from_ms(time_ms: i64) -> UtcDateTime {
        let days = time_ms.div_euclid(DAY_MS);
        let ms = time_ms.rem_euclid(DAY_MS);
        let (year, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday.
        let weekday = Weekday::ALL[(days + 3).rem_euclid(7) as usize];
        UtcDateTime {
            year,
            month,
            day,
            hour: (ms / HOUR_MS) as u32,
            minute: (ms % HOUR_MS / MINUTE_MS) as u32,
            second: (ms % MINUTE_MS / SECOND_MS) as u32,
            millis: (ms % SECOND_MS) as u32,
            weekday,
        }
    }
}

/// Epoch ms of a UTC date and time (no range checks on the fields).
pub fn utc_ms(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> i64 {
    days_from_civil(year, month, day) * DAY_MS
        + i64::from(hour) * HOUR_MS
        + i64::from(minute) * MINUTE_MS
        + i64::from(second) * SECOND_MS
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Parses RFC 3339 (`2024-03-04T09:15:00Z`, `...00.250+02:00`) to epoch ms.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = text.get(r)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut pos = 19;
    let mut millis = 0i64;
    if b[pos] == b'.' {
        let start = pos + 1;
        pos = start;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let frac = text.get(start..pos).filter(|f| !f.is_empty())?;
        millis = format!("{frac:0<3}")[..3].parse().ok()?;
    }
    let offset_min = match text.get(pos..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let h = i64::from(num(pos + 1..pos + 3)?);
            let m = i64::from(num(pos + 4..pos + 6)?);
            if tz.starts_with('-') { -(h * 60 + m) } else { h * 60 + m }
        }
        _ => return None,
    };
    Some(utc_ms(i64::from(year), month, day, hour, minute, second) + millis - offset_min * MINUTE_MS)
}

/// Parses a duration: `500ms`, `30s`, `5m`, `1h`, `7d`, or plain milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let unit_ms = match unit.trim() {
        "" | "ms" => 1,
        "s" => SECOND_MS,
        "m" | "min" => MINUTE_MS,
        "h" => HOUR_MS,
        "d" => DAY_MS,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

/// A window length: milliseconds (`300_000`) or a duration text (`"5m"`, `"1h"`, `"30s"`).
pub trait IntoWindowMs {
    /// The window in ms. Panics on an unparsable text: a bug in the rule, caught by its tests.
    fn window_ms(self) -> i64;
}

impl IntoWindowMs for i64 {
    fn window_ms(self) -> i64 {
        self
    }
}

impl IntoWindowMs for u32 {
    fn window_ms(self) -> i64 {
        i64::from(self)
    }
}

impl IntoWindowMs for i32 {
    fn window_ms(self) -> i64 {
        i64::from(self)
    }
}

impl IntoWindowMs for std::time::Duration {
    fn window_ms(self) -> i64 {
        i64::try_from(self.as_millis()).unwrap_or(i64::MAX)
    }
}

impl IntoWindowMs for &str {
    fn window_ms(self) -> i64 {
        match parse_duration_ms(self) {
            Some(ms) => ms,
            None => panic!("invalid window {self:?} (expected e.g. \"500ms\", \"30s\", \"5m\", \"1h\", \"1d\")"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        for d in [-800_000, -1, 0, 59, 10_000, 19_782, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        let t = UtcDateTime::from_ms(utc_ms(2024, 3, 4, 9, 15, 30) + 250);
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis), (2024, 3, 4, 9, 15, 30, 250));
        assert_eq!(t.weekday, Weekday::Mon);
        assert_eq!(UtcDateTime::from_ms(0).weekday, Weekday::Thu);
        assert_eq!(UtcDateTime::from_ms(-1).weekday, Weekday::Wed);
    }

    #[test]
    fn parses_rfc3339() {
        let base = utc_ms(2024, 3, 4, 9, 15, 0);
        assert_eq!(parse_rfc3339_ms("2024-03-04T09:15:00Z"), Some(base));
        assert_eq!(parse_rfc3339_ms("2024-03-04T09:15:00.25Z"), Some(base + 250));
        assert_eq!(parse_rfc3339_ms("2024-03-04T11:15:00+02:00"), Some(base));
        for bad in ["2024-03-04", "2024-13-04T09:15:00Z", "2024-03-04T09:15:00", "2024-03-04T09:15:00.Z"] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_durations_and_weekdays() {
        assert_eq!(parse_duration_ms("5m"), Some(300_000));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms("30s"), Some(30_000));
        assert_eq!(parse_duration_ms("m"), None);
        assert_eq!(parse_duration_ms("5 weeks"), None);
        assert_eq!(Weekday::parse("Friday"), Some(Weekday::Fri));
        assert_eq!(Weekday::parse("fr"), None);
    }
}
