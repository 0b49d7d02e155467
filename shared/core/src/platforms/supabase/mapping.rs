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
use crate::platforms::fields::read;
use crate::platforms::id_text;
use crate::ports::Origin;
use crate::records::{Body, Customer, Decimal, Order, Product, ProductStatus, Record};

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

fn timestamp(v: &Value, what: &str) -> Result<Option<DateTime<Utc>>, String> {
    crate::platforms::fields::stamp(v).map_err(|e| format!("{what}: {e}"))
}

/// The rows as [`select`] reads them: every column selected must be there (a misspelled
/// or missing column fails the row, never reads as empty); a column may be null.
mod wire {
    use serde::Deserialize;

    use crate::platforms::fields::{Money, Nullable, Stamp, Text};
    use crate::records::{Address, ChargeLine, OrderLine};

    #[derive(Deserialize)]
    pub struct Customer {
        pub email: Text,
        pub first_name: Text,
        pub last_name: Text,
        pub billing: Nullable<Address>,
        pub shipping: Nullable<Address>,
    }

    #[derive(Deserialize)]
    pub struct Product {
        pub sku: Text,
        pub name: Text,
        pub description: Text,
        pub price: Money,
        pub sale_price: Money,
        pub stock_quantity: Nullable<i64>,
        pub status: Text,
    }

    #[derive(Deserialize)]
    pub struct Order {
        pub number: Text,
        pub status: Text,
        pub currency: Text,
        pub customer_email: Text,
        pub billing: Nullable<Address>,
        pub shipping: Nullable<Address>,
        pub lines: Nullable<Vec<OrderLine>>,
        pub shipping_lines: Nullable<Vec<ChargeLine>>,
        pub fee_lines: Nullable<Vec<ChargeLine>>,
        pub discount_total: Money,
        pub shipping_total: Money,
        pub total_tax: Money,
        pub total: Money,
        pub prices_include_tax: Nullable<bool>,
        pub placed_at: Stamp,
        pub paid_at: Stamp,
    }
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
    // Soft-deleted: `deleted_at` set (a table without the column deletes rows outright).
    if row.get("deleted_at").is_some_and(|at| !at.is_null()) {
        return Ok(Record {
            id,
            modified_at,
            body: None,
            unknown: Vec::new(),
        });
    }
    let body = match entity {
        EntityType::Customers => {
            let c: wire::Customer = read(row, "the row")?;
            Body::Customer(Box::new(Customer {
                email: c.email.0,
                first_name: c.first_name.0,
                last_name: c.last_name.0,
                billing: c.billing.0.unwrap_or_default(),
                shipping: c.shipping.0.unwrap_or_default(),
            }))
        }
        EntityType::Products => {
            let p: wire::Product = read(row, "the row")?;
            Body::Product(Box::new(Product {
                sku: p.sku.non_empty(),
                name: p.name.0,
                description: p.description.0,
                price: p.price.0,
                sale_price: p.sale_price.0,
                stock_quantity: p.stock_quantity.0,
                status: if p.status.as_str() == "draft" {
                    ProductStatus::Draft
                } else {
                    ProductStatus::Active
                },
            }))
        }
        EntityType::Orders => {
            let o: wire::Order = read(row, "the row")?;
            Body::Order(Box::new(Order {
                number: o.number.0,
                status: o.status.0,
                currency: o.currency.0,
                customer_email: o.customer_email.non_empty(),
                billing: o.billing.0.unwrap_or_default(),
                shipping: o.shipping.0.unwrap_or_default(),
                lines: o.lines.0.unwrap_or_default(),
                shipping_lines: o.shipping_lines.0.unwrap_or_default(),
                fee_lines: o.fee_lines.0.unwrap_or_default(),
                discount_total: o.discount_total.or_zero(),
                shipping_total: o.shipping_total.or_zero(),
                total_tax: o.total_tax.or_zero(),
                total: o.total.or_zero(),
                prices_include_tax: o.prices_include_tax.0.unwrap_or(false),
                placed_at: o.placed_at.0,
                placed_on: None,
                paid_at: o.paid_at.0,
                refunds: Vec::new(),
            }))
        }
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
    use crate::records::OrderLine;

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
