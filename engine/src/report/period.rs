//! The period a report covers: `period=day|week|month` and `date=YYYY-MM-DD` (UTC; default
//! today) become `[from, to)` in epoch ms: the day, the ISO week (Monday to Sunday) or the
//! calendar month holding the date.

use time::{Date, Duration, Month, OffsetDateTime};

/// A bad `period` or `date` (the API answers 400 with the message).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportError {
    #[error("`period` must be day, week or month (got {0:?})")]
    Period(String),
    #[error("`date` must be a calendar date YYYY-MM-DD between 1970-01-01 and 9999-12-31 (got {0:?})")]
    Date(String),
}

/// Which span of time around the date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodKind {
    Day,
    Week,
    Month,
}

impl PeriodKind {
    /// `day`, `week` or `month`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }
}

/// A report's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub kind: PeriodKind,
    /// The first day of the period.
    pub start: Date,
    /// Start, epoch ms (inclusive).
    pub from: i64,
    /// End, epoch ms (exclusive).
    pub to: i64,
}

impl Period {
    /// From the query parameters (`None`: day, and today at `now_ms`).
    pub fn parse(period: Option<&str>, date: Option<&str>, now_ms: i64) -> Result<Self, ReportError> {
        let kind = match period.unwrap_or("day") {
            "day" => PeriodKind::Day,
            "week" => PeriodKind::Week,
            "month" => PeriodKind::Month,
            other => return Err(ReportError::Period(other.chars().take(40).collect())),
        };
        let date = match date {
            Some(text) => parse_date(text).ok_or_else(|| ReportError::Date(text.chars().take(40).collect()))?,
            None => OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
                .map_or(Date::MIN, OffsetDateTime::date)
                .max(Date::from_ordinal_date(1970, 1).unwrap_or(Date::MIN)),
        };
        Ok(Self::of(kind, date))
    }

    /// The period of `kind` holding `date`. The end is computed in epoch ms, not as a
    /// `Date`: the period after 9999-12-31 (the largest `Date`) has an end, no `Date`.
    pub fn of(kind: PeriodKind, date: Date) -> Self {
        let (start, days) = match kind {
            PeriodKind::Day => (date, 1),
            PeriodKind::Week => {
                let back = i64::from(date.weekday().number_days_from_monday());
                (date.checked_sub(Duration::days(back)).unwrap_or(date), 7)
            }
            PeriodKind::Month => {
                let first = date.replace_day(1).unwrap_or(date);
                (first, i64::from(first.month().length(first.year())))
            }
        };
        let from = epoch_ms(start);
        Self { kind, start, from, to: from.saturating_add(days * 86_400_000) }
    }

    /// The first day as `YYYY-MM-DD`.
    pub fn date_text(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.start.year(), u8::from(self.start.month()), self.start.day())
    }
}

fn epoch_ms(date: Date) -> i64 {
    date.midnight().assume_utc().unix_timestamp() * 1000
}

/// `YYYY-MM-DD`, a real calendar date from 1970 to 9999.
fn parse_date(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |n, c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if year < 1970 {
        return None;
    }
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_7_2026: i64 = 1_767_744_000_000;

    #[test]
    fn a_week_runs_monday_to_monday_and_a_month_to_the_next_first() {
        let week = Period::parse(Some("week"), Some("2026-01-07"), 0).unwrap();
        assert_eq!(week.date_text(), "2026-01-05");
        assert_eq!(week.start.weekday(), time::Weekday::Monday);
        assert_eq!(week.to - week.from, 7 * 86_400_000);
        let month = Period::parse(Some("month"), Some("2024-02-10"), 0).unwrap();
        assert_eq!(month.date_text(), "2024-02-01");
        assert_eq!(month.to - month.from, 29 * 86_400_000, "2024 is a leap year");
        let december = Period::parse(Some("month"), Some("2025-12-31"), 0).unwrap();
        assert_eq!(crate::event::format_rfc3339_ms(december.to), "2026-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_default_is_today_utc() {
        let today = Period::parse(None, None, JAN_7_2026 + 5 * 3_600_000).unwrap();
        assert_eq!((today.kind, today.from, today.to), (PeriodKind::Day, JAN_7_2026, JAN_7_2026 + 86_400_000));
    }

    #[test]
    fn bad_periods_and_dates_are_refused_with_what_was_wrong() {
        assert_eq!(Period::parse(Some("year"), None, 0), Err(ReportError::Period("year".into())));
        for bad in
            ["2026-02-30", "2026-13-01", "26-01-01", "2026-1-01", "1969-12-31", "2026-01-0x", "２０２６-01-01", ""]
        {
            assert_eq!(Period::parse(None, Some(bad), 0), Err(ReportError::Date(bad.into())), "{bad}");
        }
    }

    #[test]
    fn the_last_representable_dates_have_periods_and_do_not_panic() {
        // 9999-12-31 is accepted; the day, week and month holding it end in year 10000,
        // past the largest `Date`: this used to panic (a 500 for `?date=9999-12-31`).
        let end = 253_402_300_800_000; // 10000-01-01T00:00:00Z
        let day = Period::parse(Some("day"), Some("9999-12-31"), 0).unwrap();
        assert_eq!((day.date_text().as_str(), day.to), ("9999-12-31", end));
        let week = Period::parse(Some("week"), Some("9999-12-31"), 0).unwrap();
        assert_eq!((week.date_text().as_str(), week.to), ("9999-12-27", end + 2 * 86_400_000));
        let month = Period::parse(Some("month"), Some("9999-12-31"), 0).unwrap();
        assert_eq!((month.date_text().as_str(), month.to), ("9999-12-01", end));
        let first = Period::parse(Some("week"), Some("1970-01-01"), 0).unwrap();
        assert_eq!((first.date_text().as_str(), first.from), ("1969-12-29", -3 * 86_400_000));
    }
}
