//! Supabase rows to and from the canonical records, for the tables `infra/supabase.sql`
//! creates (`customers`, `products`, `orders`; the connection may name others in `tables`).
//!
//! Money columns are `numeric`: they are read as text (`price::text`, PostgREST's cast in
//! `select`), because PostgREST sends `numeric` as a JSON number a float would round, and
//! written as strings, which PostgreSQL takes exactly. Addresses and order lines are `jsonb`
//! with amounts as strings inside. A row with `deleted_at` set reads as deleted.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::domain::EntityType;
use crate::platforms::id_text;
use crate::ports::Origin;
use crate::records::{
    decimal, Address, Body, ChargeLine, Customer, Decimal, Order, OrderLine, Product,
    ProductStatus, Record,
};

/// The columns read and written, per entity (besides the id and modification stamp).
pub fn columns(entity: EntityType) -> &'static [&'static str] {
    match entity {
        EntityType::Customers => &["email", "first_name", "last_name", "billing", "shipping"],
        EntityType::Products => &[
            "sku",
            "name",
            "description",
            "price",
            "sale_price",
            "stock_quantity",
            "status",
        ],
        EntityType::Orders => &[
            "number",
            "status",
            "currency",
            "customer_email",
            "billing",
            "shipping",
            "lines",
            "shipping_lines",
            "fee_lines",
            "discount_total",
            "shipping_total",
            "total_tax",
            "total",
            "prices_include_tax",
            "placed_at",
            "paid_at",
        ],
    }
}

/// `numeric` columns, read as text.
const NUMERIC: &[&str] = &[
    "price",
    "sale_price",
    "discount_total",
    "shipping_total",
    "total_tax",
    "total",
];

/// The `select` that reads an entity's rows: the id, the stamp, `deleted_at`, the columns,
/// money cast to text.
pub fn select(entity: EntityType, id_column: &str, updated_at_column: &str) -> String {
    let mut parts = vec![id_column.to_string(), updated_at_column.to_string()];
    parts.push("deleted_at".into());
    for c in columns(entity) {
        if NUMERIC.contains(c) {
            parts.push(format!("{c}::text"));
        } else {
            parts.push((*c).to_string());
        }
    }
    parts.join(",")
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn optional_text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn money(v: &Value, what: &str) -> Result<Option<Decimal>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => decimal(s).map_err(|e| format!("{what}: {e}")),
        Value::Number(n) => decimal(&n.to_string()).map_err(|e| format!("{what}: {e}")),
        other => Err(format!("{what}: {other} is not an amount")),
    }
}

fn timestamp(v: &Value, what: &str) -> Result<Option<DateTime<Utc>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%#z"))
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| format!("{what}: '{s}' is not a timestamp")),
        other => Err(format!("{what}: {other} is not a timestamp")),
    }
}

fn from_json<T: serde::de::DeserializeOwned + Default>(v: &Value, what: &str) -> Result<T, String> {
    if v.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(v.clone()).map_err(|e| format!("{what}: {e}"))
}

/// One row as read with [`select`].
pub fn record(
    entity: EntityType,
    row: &Value,
    id_column: &str,
    updated_at_column: &str,
) -> Result<Record, String> {
    let id = id_text(row.get(id_column)).ok_or_else(|| format!("the row has no {id_column}"))?;
    let modified_at = timestamp(&row[updated_at_column], updated_at_column)?
        .ok_or_else(|| format!("the row has no {updated_at_column}"))?;
    if !row["deleted_at"].is_null() {
        return Ok(Record {
            id,
            modified_at,
            body: None,
            unknown: Vec::new(),
        });
    }
    let body = match entity {
        EntityType::Customers => Body::Customer(Box::new(Customer {
            email: text(&row["email"]),
            first_name: text(&row["first_name"]),
            last_name: text(&row["last_name"]),
            billing: from_json::<Address>(&row["billing"], "billing")?,
            shipping: from_json::<Address>(&row["shipping"], "shipping")?,
        })),
        EntityType::Products => Body::Product(Box::new(Product {
            sku: optional_text(&row["sku"]),
            name: text(&row["name"]),
            description: text(&row["description"]),
            price: money(&row["price"], "price")?,
            sale_price: money(&row["sale_price"], "sale_price")?,
            stock_quantity: row["stock_quantity"].as_i64(),
            status: if row["status"] == "draft" {
                ProductStatus::Draft
            } else {
                ProductStatus::Active
            },
        })),
        EntityType::Orders => Body::Order(Box::new(Order {
            number: text(&row["number"]),
            status: text(&row["status"]),
            currency: text(&row["currency"]),
            customer_email: optional_text(&row["customer_email"]),
            billing: from_json::<Address>(&row["billing"], "billing")?,
            shipping: from_json::<Address>(&row["shipping"], "shipping")?,
            lines: from_json::<Vec<OrderLine>>(&row["lines"], "lines")?,
            shipping_lines: from_json::<Vec<ChargeLine>>(&row["shipping_lines"], "shipping_lines")?,
            fee_lines: from_json::<Vec<ChargeLine>>(&row["fee_lines"], "fee_lines")?,
            discount_total: money(&row["discount_total"], "discount_total")?.unwrap_or_default(),
            shipping_total: money(&row["shipping_total"], "shipping_total")?.unwrap_or_default(),
            total_tax: money(&row["total_tax"], "total_tax")?.unwrap_or_default(),
            total: money(&row["total"], "total")?.unwrap_or_default(),
            prices_include_tax: row["prices_include_tax"].as_bool().unwrap_or(false),
            placed_at: timestamp(&row["placed_at"], "placed_at")?,
            placed_on: None,
            paid_at: timestamp(&row["paid_at"], "paid_at")?,
        })),
    };
    Ok(Record {
        id,
        modified_at,
        body: Some(body),
        unknown: unknown(entity, row),
    })
}

/// The fields a row holds no value for: a product's null price, sale price or stock, a
/// customer's empty address (a row another platform's copy created without them). Orders
/// have none: a null `paid_at` means unpaid.
fn unknown(entity: EntityType, row: &Value) -> Vec<&'static str> {
    let candidates: &[&'static str] = match entity {
        EntityType::Products => &["price", "sale_price", "stock_quantity"],
        EntityType::Customers => &["billing", "shipping"],
        EntityType::Orders => &[],
    };
    candidates
        .iter()
        .copied()
        .filter(|c| match &row[*c] {
            Value::Null => true,
            Value::Object(o) => o.is_empty(),
            _ => false,
        })
        .collect()
}

fn amount(d: &Decimal) -> Value {
    Value::String(d.to_string())
}

fn optional_amount(d: &Option<Decimal>) -> Value {
    d.as_ref().map_or(Value::Null, amount)
}

fn time(t: &Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

/// The row to upsert for a live record: the columns of `fields` (a flow's, so every row of
/// a chunk has the same keys; the others keep what the row holds), `deleted_at` cleared (a
/// restore undeletes), and where it came from.
pub fn row(
    body: &Body,
    id_column: &str,
    id: &str,
    origin: &Origin,
    fields: &[&str],
) -> Map<String, Value> {
    let columns = match body {
        Body::Customer(c) => json!({
            "email": c.email, "first_name": c.first_name, "last_name": c.last_name,
            "billing": c.billing, "shipping": c.shipping,
        }),
        Body::Product(p) => json!({
            "sku": p.sku, "name": p.name, "description": p.description,
            "price": optional_amount(&p.price), "sale_price": optional_amount(&p.sale_price),
            "stock_quantity": p.stock_quantity,
            "status": match p.status { ProductStatus::Active => "active", ProductStatus::Draft => "draft" },
        }),
        Body::Order(o) => json!({
            "number": o.number, "status": o.status, "currency": o.currency,
            "customer_email": o.customer_email, "billing": o.billing, "shipping": o.shipping,
            "lines": o.lines, "shipping_lines": o.shipping_lines, "fee_lines": o.fee_lines,
            "discount_total": amount(&o.discount_total), "shipping_total": amount(&o.shipping_total),
            "total_tax": amount(&o.total_tax), "total": amount(&o.total),
            "prices_include_tax": o.prices_include_tax,
            "placed_at": time(&o.placed_at), "paid_at": time(&o.paid_at),
        }),
    };
    let mut row = columns.as_object().cloned().unwrap_or_default();
    row.retain(|column, _| fields.contains(&column.as_str()));
    row.insert(id_column.to_string(), Value::String(id.to_string()));
    row.insert("deleted_at".into(), Value::Null);
    row.insert("source".into(), Value::String(origin.platform.to_string()));
    row.insert("source_id".into(), Value::String(origin.id.clone()));
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConnectionId, Platform};

    #[test]
    fn an_order_row_round_trips_with_exact_money() {
        let order = Order {
            number: "1042".into(),
            currency: "CAD".into(),
            total: "12345678901234.5678".parse().unwrap_or_default(),
            lines: vec![OrderLine {
                sku: Some("MUG".into()),
                quantity: "2".parse().unwrap_or_default(),
                total: "0.1".parse().unwrap_or_default(),
                ..OrderLine::default()
            }],
            ..Order::default()
        };
        let body = Body::Order(Box::new(order));
        let origin = Origin {
            connection: ConnectionId::new_random(),
            platform: Platform::WooCommerce,
            id: "1042".into(),
        };
        let mut row = Value::Object(row(
            &body,
            "id",
            "r1",
            &origin,
            crate::records::ORDER_FIELDS,
        ));
        row["updated_at"] = json!("2026-11-24T18:05:09.123456+00:00");
        let back =
            record(EntityType::Orders, &row, "id", "updated_at").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.body, Some(body));
        assert_eq!(row["total"], "12345678901234.5678");
        assert_eq!(row["lines"][0]["total"], "0.1");
        assert_eq!(row["source"], "woocommerce");
    }

    #[test]
    fn money_is_read_as_text_and_deleted_rows_are_deleted() {
        assert_eq!(
            select(EntityType::Products, "id", "updated_at"),
            "id,updated_at,deleted_at,sku,name,description,price::text,sale_price::text,stock_quantity,status"
        );
        let row = json!({"id": "p1", "updated_at": "2026-11-24T18:05:09+00:00", "deleted_at": "2026-11-24T19:00:00+00:00"});
        assert_eq!(
            record(EntityType::Products, &row, "id", "updated_at").map(|r| r.is_deleted()),
            Ok(true)
        );
    }
}
