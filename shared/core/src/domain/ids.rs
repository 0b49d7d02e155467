//! Identifier newtypes, parsed once at the edge and trusted after.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub String);

/// The tenant a record belongs to. In the deployed API it comes only from the JWT
/// authorizer's claims.
///
/// A tenant id is 1 to 128 characters from `A-Z a-z 0-9 . _ : @ + = | -`, and never one of
/// the words `null`, `true` or `false`: authorizers hand claims to the function as text, so a
/// claim that was a JSON `null`, boolean, array or object arrives as such a word or as text
/// with brackets, quotes or commas, and must not become a tenant that every such token
/// shares. Deserializing goes through [`TenantId::parse`] too, so no message or stored record
/// can carry a tenant id the API would refuse.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Longest tenant id we accept; ids end up in DynamoDB keys and log lines.
    pub const MAX_LEN: usize = 128;

    pub fn parse(text: &str) -> Result<Self, IdError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "._:@+=|-".contains(c);
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text.chars().all(allowed)
            && !["null", "true", "false"].contains(&text);
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(IdError(format!(
                "a tenant id is 1 to {} characters from A-Z a-z 0-9 . _ : @ + = | - (and not null, true or false)",
                Self::MAX_LEN
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TenantId::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl FromStr for TenantId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of a ", $what, " (a UUID).")]
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text)
                    .map(Self)
                    .map_err(|_| IdError(format!("'{text}' is not a UUID")))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(ScheduleId, "schedule");
uuid_id!(FlowId, "flow");
uuid_id!(
    ConnectionId,
    "connection (the original system's credential)"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_text_tenant_ids_parse() {
        for good in ["acme", "t-1", "org_42.eu", "auth0|abc", "a@b.c", "x:y+z="] {
            assert!(TenantId::parse(good).is_ok(), "{good}");
        }
        let long = "a".repeat(TenantId::MAX_LEN + 1);
        for bad in [
            "",
            "null",
            "true",
            "false",
            "[\"acme\"]",
            "{\"a\":1}",
            "a b",
            "a,b",
            "a#b",
            "é",
            long.as_str(),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deserializing_a_tenant_id_goes_through_parse() {
        let ok: Result<TenantId, _> = serde_json::from_str("\"acme\"");
        assert_eq!(ok.map(|t| t.to_string()).ok().as_deref(), Some("acme"));
        for bad in [
            "null",
            "true",
            "\"\"",
            "\"null\"",
            "[\"acme\"]",
            "{\"a\":1}",
            "42",
        ] {
            assert!(serde_json::from_str::<TenantId>(bad).is_err(), "{bad}");
        }
    }
}
