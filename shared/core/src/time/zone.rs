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

    /// Accepts an IANA name exactly as the tz database spells it. A name that differs only
    /// in case or surrounding spaces is refused with the canonical spelling as the fix, so
    /// what is stored is always what the client sent.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(tz) = Tz::from_str(text) {
            return Ok(Zone(tz));
        }
        let trimmed = text.trim();
        let near = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(trimmed));
        let shown: String = text.chars().take(64).collect();
        Err(match near {
            Some(tz) => ExpressionError::new(format!(
                "'{shown}' is not spelled as the IANA time zone database spells it"
            ))
            .hint(format!("write '{}'", tz.name())),
            None => ExpressionError::new(format!("'{shown}' is not a known time zone"))
                .hint("use an IANA name such as America/Edmonton, Europe/London or UTC"),
        })
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
