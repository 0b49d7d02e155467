//! PostgREST's URL grammar, the part the connector and the Python clients use, turned into
//! SQL with every value bound as a parameter:
//!
//! - `select=a,b,c::text` (`*` for every column), casts included;
//! - filters `col=op.value` with `eq neq gt gte lt lte like ilike in is`, each optionally
//!   `not.`-prefixed; logic trees `or=(…)`, `and=(…)`, nested, values optionally
//!   double-quoted (then commas, dots and parentheses are data);
//! - `order=a.asc,b.desc.nullslast`.

use std::collections::HashMap;

/// Why a request does not parse (PostgREST's `PGRST100`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad(pub String);

/// A table as the schema cache knows it: its columns and their types.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub name: String,
    /// Column → type name as PostgreSQL calls it (`timestamptz`, `numeric`, …), in order.
    pub columns: Vec<(String, String)>,
    pub primary_key: Vec<String>,
}

impl Table {
    pub fn column_type(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, t)| t.as_str())
    }

    fn check(&self, column: &str) -> Result<(), Bad> {
        if self.column_type(column).is_some() {
            Ok(())
        } else {
            Err(Bad(format!("column {}.{column} does not exist", self.name)))
        }
    }
}

/// A double-quoted SQL identifier (names are checked against the schema before use).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Parameters bound as text, cast to the column's type in SQL.
#[derive(Debug, Default)]
pub struct Params {
    pub values: Vec<String>,
}

impl Params {
    /// `$n` for `value`, cast to `ty`.
    pub fn bind(&mut self, value: &str, ty: &str) -> String {
        self.values.push(value.to_string());
        format!("(${}::text)::{}", self.values.len(), ty)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Like,
    Ilike,
    In(Vec<String>),
    Is(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Cond {
        column: String,
        op: Op,
        negate: bool,
        value: String,
    },
    Or(Vec<Filter>, bool),
    And(Vec<Filter>, bool),
}

/// Unquotes a value: `"a,b"` → `a,b` (with `\"` and `\\`), anything else as it is.
fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_string(),
    }
}

/// Splits at commas that are outside parentheses and quotes.
fn split_top(text: &str) -> Result<Vec<String>, Bad> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut escaped = false;
    let mut current = String::new();
    for c in text.chars() {
        if escaped {
            current.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                escaped = true;
                current.push(c);
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            '(' if !quoted => {
                depth += 1;
                current.push(c);
            }
            ')' if !quoted => {
                depth -= 1;
                current.push(c);
            }
            ',' if !quoted && depth == 0 => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if depth != 0 || quoted {
        return Err(Bad(format!("unbalanced parentheses or quotes in '{text}'")));
    }
    parts.push(current);
    Ok(parts)
}

/// `op.value` (optionally `not.op.value`) of a column.
fn condition(column: &str, text: &str) -> Result<Filter, Bad> {
    let (negate, rest) = match text.strip_prefix("not.") {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (op, value) = rest
        .split_once('.')
        .ok_or_else(|| Bad(format!("'{text}' is not an operator and a value")))?;
    let op = match op {
        "eq" => Op::Eq,
        "neq" => Op::Neq,
        "gt" => Op::Gt,
        "gte" => Op::Gte,
        "lt" => Op::Lt,
        "lte" => Op::Lte,
        "like" => Op::Like,
        "ilike" => Op::Ilike,
        "is" => Op::Is(value.to_ascii_lowercase()),
        "in" => {
            let inner = value
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| Bad(format!("in.{value}: the list needs parentheses")))?;
            let items = if inner.is_empty() {
                Vec::new()
            } else {
                split_top(inner)?.iter().map(|v| unquote(v)).collect()
            };
            Op::In(items)
        }
        other => return Err(Bad(format!("unknown operator '{other}'"))),
    };
    Ok(Filter::Cond {
        column: column.to_string(),
        op,
        negate,
        value: unquote(value),
    })
}

/// A logic tree's inside: `a.gt.1,and(b.eq.2,c.lt.3)`.
fn tree(text: &str) -> Result<Vec<Filter>, Bad> {
    split_top(text)?
        .into_iter()
        .map(|part| {
            let part = part.trim();
            for (name, make) in [
                ("and", true),
                ("or", false),
                ("not.and", true),
                ("not.or", false),
            ] {
                if let Some(inner) = part
                    .strip_prefix(name)
                    .and_then(|r| r.strip_prefix('('))
                    .and_then(|r| r.strip_suffix(')'))
                {
                    let negate = name.starts_with("not.");
                    let children = tree(inner)?;
                    return Ok(if make {
                        Filter::And(children, negate)
                    } else {
                        Filter::Or(children, negate)
                    });
                }
            }
            let (column, rest) = part
                .split_once('.')
                .ok_or_else(|| Bad(format!("'{part}' is not a condition")))?;
            condition(column, rest)
        })
        .collect()
}

/// Every filter in a request's query (parameters that are not `select`, `order`, …).
pub fn filters<'a>(query: &'a [(String, String)]) -> Result<Vec<Filter>, Bad> {
    let reserved = [
        "select",
        "order",
        "limit",
        "offset",
        "on_conflict",
        "columns",
    ];
    let mut out = Vec::new();
    for (k, v) in query {
        if reserved.contains(&k.as_str()) {
            continue;
        }
        let logic = |s: &'a str| -> Result<&'a str, Bad> {
            s.strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| Bad(format!("{k}={s}: the tree needs parentheses")))
        };
        match k.as_str() {
            "or" => out.push(Filter::Or(tree(logic(v)?)?, false)),
            "and" => out.push(Filter::And(tree(logic(v)?)?, false)),
            "not.or" => out.push(Filter::Or(tree(logic(v)?)?, true)),
            "not.and" => out.push(Filter::And(tree(logic(v)?)?, true)),
            _ => out.push(condition(k, v)?),
        }
    }
    Ok(out)
}

/// The SQL of filters on `table` (`TRUE` for none), binding values into `params`.
pub fn where_sql(table: &Table, filters: &[Filter], params: &mut Params) -> Result<String, Bad> {
    if filters.is_empty() {
        return Ok("TRUE".into());
    }
    let parts: Vec<String> = filters
        .iter()
        .map(|f| filter_sql(table, f, params))
        .collect::<Result<_, _>>()?;
    Ok(parts.join(" AND "))
}

fn filter_sql(table: &Table, f: &Filter, params: &mut Params) -> Result<String, Bad> {
    match f {
        Filter::Or(children, negate) | Filter::And(children, negate) => {
            let joiner = if matches!(f, Filter::Or(..)) {
                " OR "
            } else {
                " AND "
            };
            let inner: Vec<String> = children
                .iter()
                .map(|c| filter_sql(table, c, params))
                .collect::<Result<_, _>>()?;
            let sql = format!("({})", inner.join(joiner));
            Ok(if *negate { format!("NOT {sql}") } else { sql })
        }
        Filter::Cond {
            column,
            op,
            negate,
            value,
        } => {
            table.check(column)?;
            let ty = table.column_type(column).unwrap_or("text");
            let col = format!("{}.{}", ident(&table.name), ident(column));
            let sql = match op {
                Op::Eq => format!("{col} = {}", params.bind(value, ty)),
                Op::Neq => format!("{col} <> {}", params.bind(value, ty)),
                Op::Gt => format!("{col} > {}", params.bind(value, ty)),
                Op::Gte => format!("{col} >= {}", params.bind(value, ty)),
                Op::Lt => format!("{col} < {}", params.bind(value, ty)),
                Op::Lte => format!("{col} <= {}", params.bind(value, ty)),
                Op::Like => format!(
                    "{col}::text LIKE {}",
                    params.bind(&value.replace('*', "%"), "text")
                ),
                Op::Ilike => format!(
                    "{col}::text ILIKE {}",
                    params.bind(&value.replace('*', "%"), "text")
                ),
                Op::In(items) if items.is_empty() => "FALSE".to_string(),
                Op::In(items) => {
                    let bound: Vec<String> = items.iter().map(|i| params.bind(i, ty)).collect();
                    format!("{col} IN ({})", bound.join(", "))
                }
                Op::Is(what) => match what.as_str() {
                    "null" => format!("{col} IS NULL"),
                    "true" => format!("{col} IS TRUE"),
                    "false" => format!("{col} IS FALSE"),
                    "unknown" => format!("{col} IS UNKNOWN"),
                    other => {
                        return Err(Bad(format!(
                            "is.{other}: expected null, true, false or unknown"
                        )))
                    }
                },
            };
            Ok(if *negate { format!("NOT ({sql})") } else { sql })
        }
    }
}

/// `select`: the columns (and casts) to read.
pub fn select_sql(table: &Table, select: Option<&str>) -> Result<String, Bad> {
    let text = select.unwrap_or("*").trim();
    if text == "*" || text.is_empty() {
        return Ok(table
            .columns
            .iter()
            .map(|(c, _)| format!("{}.{}", ident(&table.name), ident(c)))
            .collect::<Vec<_>>()
            .join(", "));
    }
    let mut out = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let (alias, rest) = match item.split_once(':').filter(|(_, r)| !r.starts_with(':')) {
            Some((a, r)) => (Some(a), r),
            None => (None, item),
        };
        let (column, cast) = match rest.split_once("::") {
            Some((c, t)) => (c, Some(t)),
            None => (rest, None),
        };
        if column == "*" {
            out.push(format!("{}.*", ident(&table.name)));
            continue;
        }
        table.check(column)?;
        let name = alias.unwrap_or(column);
        let cast = match cast {
            None => String::new(),
            Some(t) if t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => format!("::{t}"),
            Some(t) => return Err(Bad(format!("'{t}' is not a type"))),
        };
        out.push(format!(
            "{}.{}{cast} AS {}",
            ident(&table.name),
            ident(column),
            ident(name)
        ));
    }
    Ok(out.join(", "))
}

/// `order`: `a.asc,b.desc.nullslast`.
pub fn order_sql(table: &Table, order: Option<&str>) -> Result<String, Bad> {
    let Some(text) = order.filter(|t| !t.is_empty()) else {
        return Ok(String::new());
    };
    let mut parts = Vec::new();
    for item in text.split(',') {
        let mut bits = item.split('.');
        let column = bits.next().unwrap_or_default();
        table.check(column)?;
        let mut sql = format!("{}.{}", ident(&table.name), ident(column));
        for modifier in bits {
            match modifier {
                "asc" => sql.push_str(" ASC"),
                "desc" => sql.push_str(" DESC"),
                "nullsfirst" => sql.push_str(" NULLS FIRST"),
                "nullslast" => sql.push_str(" NULLS LAST"),
                other => return Err(Bad(format!("unknown order modifier '{other}'"))),
            }
        }
        parts.push(sql);
    }
    Ok(format!(" ORDER BY {}", parts.join(", ")))
}

/// The tables of the `public` schema, from the catalogue.
pub async fn load_schema(
    db: &tokio_postgres::Client,
) -> Result<HashMap<String, Table>, tokio_postgres::Error> {
    let rows = db
        .query(
            "SELECT c.table_name::text, c.column_name::text, c.udt_name::text
             FROM information_schema.columns c
             JOIN information_schema.tables t USING (table_schema, table_name)
             WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
             ORDER BY c.table_name, c.ordinal_position",
            &[],
        )
        .await?;
    let mut tables: HashMap<String, Table> = HashMap::new();
    for row in rows {
        let (table, column, ty): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let entry = tables.entry(table.clone()).or_insert_with(|| Table {
            name: table,
            ..Table::default()
        });
        entry.columns.push((column, ty));
    }
    let keys = db
        .query(
            "SELECT tc.table_name::text, kcu.column_name::text
             FROM information_schema.table_constraints tc
             JOIN information_schema.key_column_usage kcu
               ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema
             WHERE tc.table_schema = 'public' AND tc.constraint_type = 'PRIMARY KEY'
             ORDER BY kcu.ordinal_position",
            &[],
        )
        .await?;
    for row in keys {
        let (table, column): (String, String) = (row.get(0), row.get(1));
        if let Some(t) = tables.get_mut(&table) {
            t.primary_key.push(column);
        }
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn products() -> Table {
        Table {
            name: "products".into(),
            columns: vec![
                ("id".into(), "text".into()),
                ("updated_at".into(), "timestamptz".into()),
                ("price".into(), "numeric".into()),
            ],
            primary_key: vec!["id".into()],
        }
    }

    #[test]
    fn a_keyset_tree_becomes_bound_sql() {
        let q = vec![(
            "or".to_string(),
            r#"(updated_at.gt."2026-11-24T12:00:00Z",and(updated_at.eq."2026-11-24T12:00:00Z",id.gt."a,b"))"#.to_string(),
        )];
        let mut params = Params::default();
        let sql = where_sql(&products(), &filters(&q).unwrap_or_default(), &mut params)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            sql,
            r#"("products"."updated_at" > ($1::text)::timestamptz OR ("products"."updated_at" = ($2::text)::timestamptz AND "products"."id" > ($3::text)::text))"#
        );
        assert_eq!(
            params.values,
            ["2026-11-24T12:00:00Z", "2026-11-24T12:00:00Z", "a,b"]
        );
    }

    #[test]
    fn unknown_columns_and_operators_are_refused() {
        let t = products();
        let mut p = Params::default();
        assert!(filters(&[("nope".into(), "eq.1".into())])
            .and_then(|f| where_sql(&t, &f, &mut p))
            .is_err());
        assert!(filters(&[("id".into(), "approx.1".into())]).is_err());
        assert!(select_sql(&t, Some("id,secret")).is_err());
        assert_eq!(
            select_sql(&t, Some("id,price::text")),
            Ok(r#""products"."id" AS "id", "products"."price"::text AS "price""#.into())
        );
    }
}
