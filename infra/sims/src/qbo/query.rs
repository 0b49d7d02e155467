//! QuickBooks' query language as Intuit documents it (`platforms.md` §2.3):
//! `SELECT * | count(*) FROM <Entity> [WHERE <prop> <op> <value> [AND …]]
//! [ORDERBY <prop> [ASC|DESC][, …]] [STARTPOSITION n] [MAXRESULTS n]`, with `IN`, `=`, `<`,
//! `>`, `<=`, `>=`, `LIKE` (`%` only). No `OR`, no projections. Keywords are case-insensitive,
//! entity and property names are not.

use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
    Like,
    In,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub property: String,
    pub op: Op,
    pub values: Vec<Literal>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub count: bool,
    pub entity: String,
    pub conditions: Vec<Condition>,
    pub order: Vec<(String, bool)>,
    /// 1-based.
    pub start: usize,
    pub max: usize,
}

/// Largest `MAXRESULTS` QuickBooks serves.
pub const MAX_RESULTS: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Symbol(String),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".into()),
                    // `\'` escapes a quote, as Intuit's SDKs write it.
                    Some('\\') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Token::Text(s));
        } else if "<>=".contains(c) {
            let mut s = c.to_string();
            if chars.get(i + 1) == Some(&'=') {
                s.push('=');
                i += 1;
            }
            out.push(Token::Symbol(s));
            i += 1;
        } else if "(),*".contains(c) {
            out.push(Token::Symbol(c.to_string()));
            i += 1;
        } else if c.is_alphanumeric() || "._-:+".contains(c) {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "._-:+".contains(chars[i])) {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn symbol(&mut self, sym: &str) -> bool {
        match self.peek() {
            Some(Token::Symbol(s)) if s == sym => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            other => Err(format!("expected {what}, found {other:?}")),
        }
    }

    fn number(&mut self, what: &str) -> Result<usize, String> {
        self.word(what)?
            .parse()
            .map_err(|_| format!("{what} must be a number"))
    }

    fn literal(&mut self) -> Result<Literal, String> {
        match self.next() {
            Some(Token::Text(s)) => Ok(Literal::Text(s)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            Some(Token::Word(w)) => w
                .parse()
                .map(Literal::Number)
                .map_err(|_| format!("expected a value, found {w}")),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }
}

pub fn parse(text: &str) -> Result<Query, String> {
    let mut p = Parser {
        tokens: tokens(text)?,
        at: 0,
    };
    if !p.keyword("select") {
        return Err("a query starts with SELECT".into());
    }
    let count = if p.symbol("*") {
        false
    } else if p.keyword("count") {
        if !(p.symbol("(") && p.symbol("*") && p.symbol(")")) {
            return Err("expected count(*)".into());
        }
        true
    } else {
        return Err("only SELECT * and SELECT count(*) are supported: no projections".into());
    };
    if !p.keyword("from") {
        return Err("expected FROM".into());
    }
    let entity = p.word("an entity")?;
    let mut query = Query {
        count,
        entity,
        conditions: Vec::new(),
        order: Vec::new(),
        start: 1,
        max: 100,
    };
    if p.keyword("where") {
        loop {
            let property = p.word("a property")?;
            let op = match p.next() {
                Some(Token::Symbol(s)) => match s.as_str() {
                    "=" => Op::Eq,
                    "<" => Op::Lt,
                    ">" => Op::Gt,
                    "<=" => Op::Le,
                    ">=" => Op::Ge,
                    _ => return Err(format!("unknown operator {s}")),
                },
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("like") => Op::Like,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("in") => Op::In,
                other => return Err(format!("expected an operator, found {other:?}")),
            };
            let values = if op == Op::In {
                if !p.symbol("(") {
                    return Err("IN takes a list in parentheses".into());
                }
                let mut values = vec![p.literal()?];
                while p.symbol(",") {
                    values.push(p.literal()?);
                }
                if !p.symbol(")") {
                    return Err("expected ) after the IN list".into());
                }
                values
            } else {
                vec![p.literal()?]
            };
            query.conditions.push(Condition {
                property,
                op,
                values,
            });
            if p.keyword("and") {
                continue;
            }
            if p.keyword("or") {
                return Err("OR is not supported".into());
            }
            break;
        }
    }
    loop {
        if p.keyword("orderby") {
            loop {
                let prop = p.word("a property")?;
                let desc = if p.keyword("desc") {
                    true
                } else {
                    p.keyword("asc");
                    false
                };
                query.order.push((prop, desc));
                if !p.symbol(",") {
                    break;
                }
            }
        } else if p.keyword("startposition") {
            query.start = p.number("STARTPOSITION")?.max(1);
        } else if p.keyword("maxresults") {
            query.max = p.number("MAXRESULTS")?;
            if query.max > MAX_RESULTS {
                return Err(format!("MAXRESULTS cannot exceed {MAX_RESULTS}"));
            }
        } else {
            break;
        }
    }
    match p.peek() {
        None => Ok(query),
        Some(t) => Err(format!("unexpected {t:?}")),
    }
}

/// A property of an entity by its query name (`MetaData.LastUpdatedTime`;
/// `PrimaryEmailAddr` means its `Address`; a reference means its `value`).
pub fn property<'a>(entity: &'a Value, name: &str) -> Option<&'a Value> {
    let mut v = entity;
    for part in name.split('.') {
        v = v.get(part).or_else(|| {
            // `Metadata` is seen beside `MetaData` in Intuit's own samples.
            v.as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(part))
                .map(|(_, v)| v)
        })?;
    }
    match v {
        Value::Object(o) => o.get("Address").or_else(|| o.get("value")),
        other => Some(other),
    }
}

/// Dates with an offset, with or without seconds or the colon in the offset; a time without
/// an offset (as Intuit's Python client writes `changedSince`) is read as UTC.
pub fn parse_time(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .or_else(|| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z").ok())
        .or_else(|| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M%:z").ok())
        .or_else(|| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M%z").ok())
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|d| d.and_utc().fixed_offset())
        })
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc().fixed_offset())
        })
}

fn compare(actual: &Value, wanted: &Literal) -> Option<Ordering> {
    match (actual, wanted) {
        (Value::String(a), Literal::Text(w)) => match (parse_time(a), parse_time(w)) {
            (Some(a), Some(w)) => Some(a.cmp(&w)),
            _ => match (a.parse::<f64>(), w.parse::<f64>()) {
                (Ok(a), Ok(w)) => a.partial_cmp(&w),
                _ => Some(a.to_lowercase().cmp(&w.to_lowercase())),
            },
        },
        (Value::Number(a), Literal::Number(w)) => a.as_f64()?.partial_cmp(w),
        (Value::Number(a), Literal::Text(w)) => a.as_f64()?.partial_cmp(&w.parse().ok()?),
        (Value::Bool(a), Literal::Bool(w)) => Some(a.cmp(w)),
        (Value::Bool(a), Literal::Text(w)) => Some(a.to_string().cmp(&w.to_lowercase())),
        _ => None,
    }
}

fn like(actual: &str, pattern: &str) -> bool {
    let a = actual.to_lowercase();
    let parts: Vec<String> = pattern
        .to_lowercase()
        .split('%')
        .map(String::from)
        .collect();
    if parts.len() == 1 {
        return a == parts[0];
    }
    let mut rest = a.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part.as_str()) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part.as_str());
        } else {
            match rest.find(part.as_str()) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

impl Condition {
    pub fn holds(&self, entity: &Value) -> bool {
        let Some(actual) = property(entity, &self.property) else {
            return false;
        };
        let first = &self.values[0];
        match self.op {
            Op::Eq => compare(actual, first) == Some(Ordering::Equal),
            Op::Lt => compare(actual, first) == Some(Ordering::Less),
            Op::Gt => compare(actual, first) == Some(Ordering::Greater),
            Op::Le => matches!(
                compare(actual, first),
                Some(Ordering::Less | Ordering::Equal)
            ),
            Op::Ge => matches!(
                compare(actual, first),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            Op::Like => match (actual, first) {
                (Value::String(a), Literal::Text(p)) => like(a, p),
                _ => false,
            },
            Op::In => self
                .values
                .iter()
                .any(|v| compare(actual, v) == Some(Ordering::Equal)),
        }
    }
}

/// Orders two entities by the query's ORDERBY (then by Id, numerically, as QuickBooks does
/// by default).
pub fn order(query: &Query, a: &Value, b: &Value) -> Ordering {
    for (prop, desc) in &query.order {
        let (x, y) = (property(a, prop), property(b, prop));
        let o = match (x, y) {
            (Some(x), Some(Value::String(y))) => compare(x, &Literal::Text(y.clone())),
            (Some(x), Some(Value::Number(y))) => {
                compare(x, &Literal::Number(y.as_f64().unwrap_or(0.0)))
            }
            _ => None,
        }
        .unwrap_or(Ordering::Equal);
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    let id = |v: &Value| {
        v["Id"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    id(a).cmp(&id(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_incremental_query_intuit_documents_parses() {
        let q = parse("SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime > '2015-03-01T00:00:00-08:00' ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 1000").unwrap();
        assert_eq!(q.entity, "Invoice");
        assert_eq!(q.max, 1000);
        assert_eq!(q.order, vec![("MetaData.LastUpdatedTime".into(), false)]);
        let inv = json!({"Id": "1", "MetaData": {"LastUpdatedTime": "2015-03-01T09:00:01-07:00"}});
        assert!(q.conditions[0].holds(&inv));
    }

    #[test]
    fn or_projections_and_oversized_pages_are_refused() {
        assert!(parse("select * from Customer where Id = '1' or Id = '2'").is_err());
        assert!(parse("select DisplayName from Customer").is_err());
        assert!(parse("select * from Customer maxresults 1001").is_err());
    }

    #[test]
    fn in_like_and_email_conditions_match_as_quickbooks_does() {
        let c = json!({"Id": "7", "DisplayName": "Jane O'Neil", "PrimaryEmailAddr": {"Address": "j@x.com"}});
        let q = parse("select * from Customer where Id in ('3', '7') and DisplayName like 'jane o\\'%' and PrimaryEmailAddr = 'j@x.com'").unwrap();
        assert!(q.conditions.iter().all(|k| k.holds(&c)));
        let q = parse("select count(*) from Customer where Id IN ('3')").unwrap();
        assert!(q.count && !q.conditions[0].holds(&c));
    }
}
