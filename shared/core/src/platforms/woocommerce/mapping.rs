//! WooCommerce JSON (REST API v3) to and from the canonical records.
//!
//! - Dates: `*_gmt` fields, `YYYY-MM-DDTHH:MM:SS` with no offset, are UTC.
//! - Money: strings (`"12.50"`), parsed as decimals; a number that slips in is read from its
//!   JSON text, never through a float. `line_items[].price` (a float, after discounts) is not
//!   used: lines carry their subtotal and total.
//! - Deleted: a `trash` status reads as deleted.
//! - Products: the regular price is the canonical price; stock is tracked only when
//!   `manage_stock` is on; `publish` is active, any other status a draft.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Map, Value};

use crate::platforms::id_text;
use crate::records::{
    decimal, Address, Body, ChargeLine, Customer, Decimal, Order, OrderLine, Product,
    ProductStatus, Record,
};

/// A `*_gmt` date (no offset, UTC); `None` when empty or null.
pub fn gmt(v: &Value) -> Result<Option<DateTime<Utc>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
            .map(|t| Some(t.and_utc()))
            .or_else(|_| DateTime::parse_from_rfc3339(s).map(|t| Some(t.with_timezone(&Utc))))
            .map_err(|_| format!("'{s}' is not a date")),
        other => Err(format!("{other} is not a date")),
    }
}

/// The form WooCommerce takes dates in (`modified_after` with `dates_are_gmt=true`).
pub fn gmt_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// A money string (or a JSON number, read from its text); empty or null is zero.
fn money(v: &Value, what: &str) -> Result<Decimal, String> {
    optional_money(v, what).map(Option::unwrap_or_default)
}

fn optional_money(v: &Value, what: &str) -> Result<Option<Decimal>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => decimal(s).map_err(|e| format!("{what}: {e}")),
        Value::Number(n) => decimal(&n.to_string()).map_err(|e| format!("{what}: {e}")),
        other => Err(format!("{what}: {other} is not an amount")),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn address(v: &Value) -> Address {
    let f = |name: &str| text(&v[name]);
    Address {
        first_name: f("first_name"),
        last_name: f("last_name"),
        company: f("company"),
        address_1: f("address_1"),
        address_2: f("address_2"),
        city: f("city"),
        state: f("state"),
        postcode: f("postcode"),
        country: f("country"),
        email: f("email"),
        phone: f("phone"),
    }
}

fn address_json(a: &Address, with_email: bool) -> Value {
    let mut v = json!({
        "first_name": a.first_name, "last_name": a.last_name, "company": a.company,
        "address_1": a.address_1, "address_2": a.address_2, "city": a.city, "state": a.state,
        "postcode": a.postcode, "country": a.country, "phone": a.phone,
    });
    if with_email {
        v["email"] = json!(a.email);
    }
    v
}

fn id(v: &Value) -> Result<String, String> {
    id_text(v.get("id")).ok_or_else(|| "the record has no id".to_string())
}

fn modified(v: &Value) -> Result<DateTime<Utc>, String> {
    gmt(&v["date_modified_gmt"])?
        .or(gmt(&v["date_created_gmt"])?)
        .ok_or_else(|| "the record has no modification date".to_string())
}

/// A list of charge lines (shipping, fees).
fn charges(v: &Value, name_field: &str) -> Result<Vec<ChargeLine>, String> {
    v.as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|l| {
                    Ok(ChargeLine {
                        name: text(&l[name_field]),
                        total: money(&l["total"], "line total")?,
                        total_tax: money(&l["total_tax"], "line tax")?,
                    })
                })
                .collect()
        })
        .unwrap_or(Ok(Vec::new()))
}

/// An order as the API (or an order webhook) returns it.
pub fn order(v: &Value) -> Result<Record, String> {
    let id = id(v)?;
    let modified_at = modified(v)?;
    if v["status"] == "trash" {
        return Ok(Record {
            id,
            modified_at,
            body: None,
            unknown: Vec::new(),
        });
    }
    let lines = v["line_items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|l| {
                    Ok(OrderLine {
                        sku: Some(text(&l["sku"])).filter(|s| !s.is_empty()),
                        name: text(&l["name"]),
                        product_id: id_text(l.get("product_id")).filter(|p| p != "0"),
                        quantity: money(&l["quantity"], "quantity")?,
                        subtotal: money(&l["subtotal"], "line subtotal")?,
                        total: money(&l["total"], "line total")?,
                        total_tax: money(&l["total_tax"], "line tax")?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .unwrap_or(Ok(Vec::new()))?;
    let billing = address(&v["billing"]);
    let order = Order {
        number: Some(text(&v["number"]))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.clone()),
        status: text(&v["status"]),
        currency: text(&v["currency"]),
        customer_email: Some(billing.email.clone()).filter(|e| !e.is_empty()),
        shipping: address(&v["shipping"]),
        billing,
        lines,
        shipping_lines: charges(&v["shipping_lines"], "method_title")?,
        fee_lines: charges(&v["fee_lines"], "name")?,
        discount_total: money(&v["discount_total"], "discount_total")?,
        shipping_total: money(&v["shipping_total"], "shipping_total")?,
        total_tax: money(&v["total_tax"], "total_tax")?,
        total: money(&v["total"], "total")?,
        prices_include_tax: v["prices_include_tax"].as_bool().unwrap_or(false),
        placed_at: gmt(&v["date_created_gmt"])?,
        // `date_created` is the site's own wall time: its day is the shop's.
        // (Not the order's failure if unreadable: the UTC day stands in for it.)
        placed_on: gmt(&v["date_created"])
            .ok()
            .flatten()
            .map(|t| t.date_naive()),
        paid_at: gmt(&v["date_paid_gmt"])?,
    };
    Ok(Record {
        id,
        modified_at,
        body: Some(Body::Order(Box::new(order))),
        unknown: Vec::new(),
    })
}

pub fn product(v: &Value) -> Result<Record, String> {
    let id = id(v)?;
    let modified_at = modified(v)?;
    let status = text(&v["status"]);
    if status == "trash" {
        return Ok(Record {
            id,
            modified_at,
            body: None,
            unknown: Vec::new(),
        });
    }
    let managed = v["manage_stock"].as_bool().unwrap_or(false);
    let product = Product {
        sku: Some(text(&v["sku"])).filter(|s| !s.is_empty()),
        name: text(&v["name"]),
        description: text(&v["description"]),
        price: optional_money(&v["regular_price"], "regular_price")?,
        sale_price: optional_money(&v["sale_price"], "sale_price")?,
        stock_quantity: if managed {
            Some(v["stock_quantity"].as_i64().unwrap_or(0))
        } else {
            None
        },
        status: if status == "publish" {
            ProductStatus::Active
        } else {
            ProductStatus::Draft
        },
    };
    Ok(Record {
        id,
        modified_at,
        body: Some(Body::Product(Box::new(product))),
        unknown: Vec::new(),
    })
}

pub fn customer(v: &Value) -> Result<Record, String> {
    let id = id(v)?;
    let modified_at = modified(v)?;
    let customer = Customer {
        email: text(&v["email"]),
        first_name: text(&v["first_name"]),
        last_name: text(&v["last_name"]),
        billing: address(&v["billing"]),
        shipping: address(&v["shipping"]),
    };
    Ok(Record {
        id,
        modified_at,
        body: Some(Body::Customer(Box::new(customer))),
        unknown: Vec::new(),
    })
}

fn price_text(p: Option<Decimal>) -> String {
    p.map(|d| d.to_string()).unwrap_or_default()
}

/// Whether WooCommerce's `key` holds the canonical `field`.
fn holds(key: &str, field: &str) -> bool {
    match field {
        "price" => key == "regular_price",
        "stock_quantity" => key == "manage_stock" || key == "stock_quantity",
        other => key == other,
    }
}

/// Only the keys that hold `fields`.
fn only(v: Value, fields: &[&str]) -> Map<String, Value> {
    let mut map = v.as_object().cloned().unwrap_or_default();
    map.retain(|key, _| fields.iter().any(|f| holds(key, f)));
    map
}

/// The fields WooCommerce takes to create or update a product, of those in `fields`.
pub fn product_json(p: &Product, fields: &[&str]) -> Map<String, Value> {
    let v = json!({
        "sku": p.sku.clone().unwrap_or_default(),
        "name": p.name,
        "description": p.description,
        "regular_price": price_text(p.price),
        "sale_price": price_text(p.sale_price),
        "manage_stock": p.stock_quantity.is_some(),
        "stock_quantity": p.stock_quantity,
        "status": match p.status {
            ProductStatus::Active => "publish",
            ProductStatus::Draft => "draft",
        },
    });
    only(v, fields)
}

/// The fields WooCommerce takes to create or update a customer, of those in `fields`.
pub fn customer_json(c: &Customer, fields: &[&str]) -> Map<String, Value> {
    let v = json!({
        "email": c.email,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "billing": address_json(&c.billing, true),
        "shipping": address_json(&c.shipping, false),
    });
    only(v, fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_maps_with_exact_amounts_and_utc_dates() {
        let v = json!({
            "id": 1042, "number": "1042", "status": "processing", "currency": "CAD",
            "date_created_gmt": "2026-11-24T18:00:00", "date_modified_gmt": "2026-11-24T18:05:09",
            "date_paid_gmt": null, "prices_include_tax": false,
            "discount_total": "5.00", "shipping_total": "10.00", "total_tax": "3.38", "total": "45.88",
            "billing": {"first_name": "Jane", "email": "jane@example.com", "country": "CA"},
            "shipping": {"first_name": "Jane"},
            "line_items": [{"id": 1, "name": "Mug", "product_id": 17, "sku": "MUG-1", "quantity": 2,
                            "subtotal": "30.00", "total": "25.00", "total_tax": "1.25", "price": 12.5}],
            "shipping_lines": [{"method_title": "Flat rate", "total": "10.00", "total_tax": "0.50"}],
            "fee_lines": [{"name": "Gift wrap", "total": "2.50", "total_tax": "0.13"}],
        });
        let r = order(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.id, "1042");
        assert_eq!(r.modified_at.to_rfc3339(), "2026-11-24T18:05:09+00:00");
        let Some(Body::Order(o)) = r.body else {
            panic!("not an order")
        };
        assert_eq!(o.total.to_string(), "45.88");
        assert_eq!(o.discount_total.to_string(), "5");
        assert_eq!(o.lines[0].quantity.to_string(), "2");
        assert_eq!(o.lines[0].product_id.as_deref(), Some("17"));
        assert_eq!(o.fee_lines[0].total.to_string(), "2.5");
        assert_eq!(o.customer_email.as_deref(), Some("jane@example.com"));
        assert_eq!(o.paid_at, None);
    }

    #[test]
    fn a_bad_amount_is_an_error_naming_the_field_and_trash_is_deleted() {
        let v = json!({"id": 1, "date_modified_gmt": "2026-11-24T18:05:09", "total": "abc"});
        assert!(order(&v).is_err_and(|e| e.contains("total")));
        let trashed =
            json!({"id": 1, "date_modified_gmt": "2026-11-24T18:05:09", "status": "trash"});
        assert_eq!(order(&trashed).map(|r| r.is_deleted()), Ok(true));
        assert_eq!(product(&trashed).map(|r| r.is_deleted()), Ok(true));
    }

    #[test]
    fn a_product_round_trips_through_its_json() {
        let v = json!({
            "id": 17, "date_modified_gmt": "2026-11-24T18:05:09", "sku": "MUG-1", "name": "Mug",
            "description": "<p>Big</p>", "regular_price": "12.50", "sale_price": "",
            "manage_stock": true, "stock_quantity": 4, "status": "publish",
        });
        let r = product(&v).unwrap_or_else(|e| panic!("{e}"));
        let Some(Body::Product(p)) = &r.body else {
            panic!("not a product")
        };
        assert_eq!(
            (p.price.map(|d| d.to_string()), p.sale_price),
            (Some("12.5".into()), None)
        );
        let mut again = Value::Object(product_json(p, crate::records::PRODUCT_FIELDS));
        again["id"] = json!(17);
        again["date_modified_gmt"] = json!("2026-11-24T18:05:09");
        assert_eq!(product(&again), Ok(r));
    }

    #[test]
    fn a_field_the_flow_does_not_carry_is_left_out_of_the_write() {
        let p = Product {
            sku: Some("MUG-1".into()),
            name: "Mug".into(),
            price: decimal("12.50").unwrap_or_default(),
            stock_quantity: Some(5),
            ..Product::default()
        };
        let carried = product_json(&p, &["sku", "name", "price"]);
        let keys: Vec<&str> = carried.keys().map(String::as_str).collect();
        assert_eq!(keys, ["name", "regular_price", "sku"]);
        let all = product_json(&p, crate::records::PRODUCT_FIELDS);
        assert_eq!(all["manage_stock"], true);
        assert_eq!(all["stock_quantity"], 5);
    }
}
