//! Alert severity `P1` (page now) to `P4` (daily digest).
//!
//! Shared by [`crate::Manifest`] (default severity), [`crate::Alert`] and routing rules,
//! which read the severity of the alert they route.

use std::fmt;
use std::str::FromStr;

/// How urgent an alert is. `P1` is the most urgent; ordering follows urgency (`P1 < P2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Critical: page someone now.
    P1,
    /// High: look at it within the hour.
    P2,
    /// Medium: look at it today.
    P3,
    /// Low: goes into the daily digest.
    P4,
}

impl Severity {
    /// All severities, most urgent first.
    pub const ALL: [Severity; 4] = [Severity::P1, Severity::P2, Severity::P3, Severity::P4];

    /// `"P1"` .. `"P4"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
            Severity::P4 => "P4",
        }
    }

    /// Parses `P1`..`P4` (case-insensitive).
    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of `P1`..`P4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSeverity(pub String);

impl fmt::Display for UnknownSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown severity {:?} (expected P1..P4)", self.0)
    }
}

impl std::error::Error for UnknownSeverity {}

impl FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::parse(s).ok_or_else(|| UnknownSeverity(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_orders_and_prints() {
        assert_eq!("p2".parse::<Severity>(), Ok(Severity::P2));
        assert!("P5".parse::<Severity>().is_err());
        assert!(Severity::P1 < Severity::P4);
        assert_eq!(Severity::P3.to_string(), "P3");
    }
}
