//! The scalar fields of platform payloads, read at the edge into exact types: money as a
//! decimal from its text (never a float), text that may come as a number, ids, and dates.
//! Payloads are read through typed structs made of these ([`read`]), so a field that is
//! missing or of the wrong kind is an error naming where it is, never a silent zero.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{DeserializeOwned, Error};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::records::Decimal;

/// `what`, read from `v` through its typed struct; an error names the field's path
/// (`line_items[0].total: 'ten' is not a decimal number`).
pub(crate) fn read<T: DeserializeOwned>(v: &Value, what: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            format!("{what}: {inner}")
        } else {
            format!("{what}: {path}: {inner}")
        }
    })
}

/// A source's resume point, our own JSON written by its last page: one that does not read
/// is a run that cannot go on (refused), never a scan started over from nothing.
pub(crate) fn resume_point<T: DeserializeOwned>(
    state: &Value,
) -> Result<T, crate::ports::PlatformError> {
    read(state, "the scan's resume point").map_err(crate::ports::PlatformError::Rejected)
}

/// An amount: a string (`"12.50"`) or a number read from its JSON text; `None` for null or
/// empty text (what a platform writes for "none"). The field itself must be there unless
/// the struct says `#[serde(default)]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Money(pub Option<Decimal>);

impl Money {
    /// The amount, zero where none is written (totals a platform writes as `""`).
    pub fn or_zero(self) -> Decimal {
        self.0.unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        crate::records::unlabelled_money(&v)
            .map(Money)
            .map_err(D::Error::custom)
    }
}

/// Text that may come as a string, a number or null (null: empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Text(pub String);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, `None` when empty.
    pub fn non_empty(&self) -> Option<String> {
        Some(self.0.clone()).filter(|s| !s.is_empty())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Text::default()),
            Value::String(s) => Ok(Text(s)),
            Value::Number(n) => Ok(Text(n.to_string())),
            other => Err(D::Error::custom(format!("{other} is not text"))),
        }
    }
}

/// A record's id: a whole number or a non-empty string (of at most 128 characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        super::id_text(Some(&v))
            .map(Id)
            .ok_or_else(|| D::Error::custom(format!("{v} is not an id")))
    }
}

/// A date without an offset that is UTC (WooCommerce's `*_gmt`), or one with an offset;
/// `None` for null or empty text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Gmt(pub Option<DateTime<Utc>>);

/// [`Gmt`] from a JSON value.
pub(crate) fn gmt(v: &Value) -> Result<Option<DateTime<Utc>>, String> {
    match v {
        Value::String(s) if !s.is_empty() => {
            match NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
                Ok(t) => Ok(Some(t.and_utc())),
                Err(_) => stamp(v),
            }
        }
        _ => stamp(v),
    }
}

/// An instant that carries its offset (RFC 3339, or PostgreSQL's `+00` and QuickBooks'
/// `-0700` forms); `None` for null or empty text. A time without an offset is an error,
/// never a guess.
pub(crate) fn stamp(v: &Value) -> Result<Option<DateTime<Utc>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%#z"))
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| format!("'{s}' is not a time with an offset")),
        other => Err(format!("{other} is not a time")),
    }
}

/// [`stamp`] as a field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stamp(pub Option<DateTime<Utc>>);

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        stamp(&Value::deserialize(d)?)
            .map(Stamp)
            .map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Gmt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        gmt(&Value::deserialize(d)?)
            .map(Gmt)
            .map_err(D::Error::custom)
    }
}

/// A field that must be there but may be null (`Option<T>` alone would take a missing
/// field, a misspelled column, as null).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Nullable<T>(pub Option<T>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Nullable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through a `Value` first: a missing field is an error there (`Option` alone
        // reads it as null).
        match Value::deserialize(d)? {
            Value::Null => Ok(Nullable(None)),
            v => T::deserialize(v)
                .map(|t| Nullable(Some(t)))
                .map_err(D::Error::custom),
        }
    }
}

/// A date whose failure to read is not the record's (a local day a UTC date stands in
/// for): `None` when it cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LenientGmt(pub Option<DateTime<Utc>>);

impl<'de> Deserialize<'de> for LenientGmt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(LenientGmt(gmt(&Value::deserialize(d)?).ok().flatten()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    struct Line {
        total: Money,
        #[serde(default)]
        name: Text,
    }

    #[derive(Deserialize, Debug)]
    struct Doc {
        id: Id,
        lines: Vec<Line>,
    }

    #[derive(Deserialize, Debug)]
    struct Row {
        stock: Nullable<i64>,
        at: Stamp,
    }

    #[test]
    fn a_nullable_field_may_be_null_but_must_be_there_and_a_stamp_carries_its_offset() {
        let row: Result<Row, _> = read(
            &json!({"stock": null, "at": "2026-11-24T18:05:09+00"}),
            "row",
        );
        assert!(
            row.as_ref()
                .is_ok_and(|r| r.stock == Nullable(None) && r.at.0.is_some()),
            "{row:?}"
        );
        let missing = read::<Row>(&json!({"at": "2026-11-24T18:05:09Z"}), "row");
        assert!(
            missing.as_ref().is_err_and(|e| e.contains("stock")),
            "{missing:?}"
        );
        let no_offset = read::<Row>(&json!({"stock": 1, "at": "2026-11-24T18:05:09"}), "row");
        assert!(
            no_offset.as_ref().is_err_and(|e| e.contains("offset")),
            "{no_offset:?}"
        );
        assert_eq!(
            gmt(&json!("2026-11-24T18:05:09")).map(|t| t.map(|t| t.to_rfc3339())),
            Ok(Some("2026-11-24T18:05:09+00:00".into()))
        );
    }

    #[test]
    fn a_missing_or_bad_field_is_an_error_naming_where_it_is_never_a_zero() {
        let ok: Doc = read(
            &json!({"id": 7, "lines": [{"total": "12.50", "name": 3}, {"total": ""}]}),
            "doc",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.id, Id("7".into()));
        assert_eq!(ok.lines[0].total.or_zero().to_string(), "12.5");
        assert_eq!(ok.lines[0].name.as_str(), "3");
        assert_eq!(ok.lines[1].total, Money(None));
        let missing = read::<Doc>(&json!({"id": 7, "lines": [{"name": "x"}]}), "doc");
        assert!(
            missing
                .as_ref()
                .is_err_and(|e| e.contains("lines[0]") && e.contains("total")),
            "{missing:?}"
        );
        let bad = read::<Doc>(&json!({"id": 7, "lines": [{"total": "ten"}]}), "doc");
        assert!(
            bad.as_ref()
                .is_err_and(|e| e.contains("lines[0].total") && e.contains("ten")),
            "{bad:?}"
        );
        assert!(read::<Doc>(&json!({"id": null, "lines": []}), "doc").is_err());
        assert!(read::<Doc>(&json!({"id": 1.5, "lines": []}), "doc").is_err());
    }
}
