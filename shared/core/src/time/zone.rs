//! IANA time zones, parsed once at the edge.

use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

use super::ExpressionError;

/// The zone a schedule uses when the user names none (overridable by configuration).
pub const DEFAULT_ZONE: &str = "America/Edmonton";

/// A valid IANA time zone, e.g. `America/Edmonton`, `Australia/Lord_Howe` or `UTC`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Zone(Tz);

impl Zone {
    pub const UTC: Zone = Zone(Tz::UTC);

    pub fn tz(self) -> Tz {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

impl FromStr for Zone {
    type Err = ExpressionError;

    /// Accepts any IANA name, matching case-insensitively, and keeps its canonical spelling.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        Tz::from_str(trimmed)
            .ok()
            .or_else(|| {
                chrono_tz::TZ_VARIANTS
                    .iter()
                    .find(|tz| tz.name().eq_ignore_ascii_case(trimmed))
                    .copied()
            })
            .map(Zone)
            .ok_or_else(|| {
                ExpressionError::new(format!("'{text}' is not a known time zone"))
                    .hint("use an IANA name such as America/Edmonton, Europe/London or UTC")
            })
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
