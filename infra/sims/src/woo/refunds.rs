//! Order refunds (`GET` and `POST /orders/{id}/refunds`), as WooCommerce keeps them.
//!
//! A refund is a record of its own, its id from the posts' sequence (as orders'), with its
//! amount (positive) and its lines as negative quantities and amounts; the order lists each
//! refund's id, reason and total (negative), newest first. A refund may not exceed what is
//! left to refund. An order refunded in full becomes `refunded`; an order set to `refunded`
//! with money left gets a refund of that amount without lines ("Order fully refunded."), as
//! WooCommerce's `wc_order_fully_refunded` makes one. Refunding modifies the order and
//! fires its `updated` webhook (`woocommerce_order_refunded`).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::seed::{cents, money};
use super::store::{gmt_text, Doc};

/// Why a refund is refused: the status, WooCommerce's code and its message.
pub type Refused = (u16, &'static str, String);

/// An amount given as a money string or a number, in cents.
fn given_cents(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => Some(cents(s)),
        Value::Number(n) => Some(cents(&n.to_string())),
        _ => None,
    }
}

/// What is left to refund on an order, in cents.
pub fn left(order: &Doc) -> i64 {
    let refunded: i64 = order
        .refunds
        .iter()
        .map(|r| cents(r["amount"].as_str().unwrap_or("0")))
        .sum();
    cents(order.text("total")) - refunded
}

/// A refund of `order` from the API's fields (`amount`, `reason`, `line_items` as `{id,
/// quantity, refund_total, refund_tax}`), made at `at` (`local`: the site's wall time).
pub fn build(
    order: &Doc,
    id: u64,
    given: &Map<String, Value>,
    at: DateTime<Utc>,
    local: String,
) -> Result<Value, Refused> {
    let items = order.fields.get("line_items").and_then(Value::as_array);
    let mut lines = Vec::new();
    let mut itemised = 0;
    let given_lines = given.get("line_items").and_then(Value::as_array);
    for (n, l) in given_lines.into_iter().flatten().enumerate() {
        let item = l["id"]
            .as_u64()
            .and_then(|item_id| {
                items
                    .into_iter()
                    .flatten()
                    .find(|i| i["id"].as_u64() == Some(item_id))
            })
            .ok_or((
                400,
                "woocommerce_rest_invalid_order_refund",
                format!("Invalid line item ID: {}", l["id"]),
            ))?;
        let quantity = l["quantity"].as_i64().unwrap_or(0);
        let total = given_cents(&l["refund_total"]).unwrap_or(0);
        let tax = match &l["refund_tax"] {
            Value::Array(taxes) => taxes
                .iter()
                .filter_map(|t| given_cents(&t["refund_total"]))
                .sum(),
            other => given_cents(other).unwrap_or(0),
        };
        itemised += total + tax;
        lines.push(json!({
            "id": id * 10 + n as u64, "name": item["name"], "product_id": item["product_id"],
            "variation_id": 0, "quantity": -quantity, "tax_class": "",
            "subtotal": money(-total), "subtotal_tax": money(-tax),
            "total": money(-total), "total_tax": money(-tax), "taxes": [], "meta_data": [],
            "sku": item["sku"],
            "price": -(total as f64 / 100.0) / quantity.max(1) as f64,
        }));
    }
    let amount = given
        .get("amount")
        .and_then(given_cents)
        .unwrap_or(itemised);
    if amount <= 0 {
        return Err((
            400,
            "woocommerce_rest_invalid_order_refund",
            "Refund amount must be greater than zero.".into(),
        ));
    }
    if amount > left(order) {
        // WooCommerce answers a refusal of `wc_create_refund` with a 500.
        return Err((
            500,
            "woocommerce_rest_cannot_create_order_refund",
            "Invalid refund amount.".into(),
        ));
    }
    Ok(json!({
        "id": id, "date_created": local, "date_created_gmt": gmt_text(at),
        "amount": money(amount),
        "reason": given.get("reason").and_then(Value::as_str).unwrap_or(""),
        "refunded_by": 1, "refunded_payment": false, "meta_data": [],
        "line_items": lines, "tax_lines": [], "shipping_lines": [], "fee_lines": [],
    }))
}

/// What WooCommerce refunds when an order is set to `refunded` with money left: the rest,
/// without lines.
pub fn rest_of(order: &Doc) -> Map<String, Value> {
    let mut given = Map::new();
    given.insert("amount".into(), json!(money(left(order))));
    given.insert("reason".into(), json!("Order fully refunded."));
    given
}

/// Adds a refund to the order: to its list, and `refunded` once nothing is left.
pub fn add(order: &mut Doc, refund: Value) {
    order.refunds.insert(0, refund);
    let listed: Vec<Value> = order
        .refunds
        .iter()
        .map(|r| {
            json!({
                "id": r["id"], "reason": r["reason"],
                "total": money(-cents(r["amount"].as_str().unwrap_or("0"))),
            })
        })
        .collect();
    order.fields.insert("refunds".into(), Value::Array(listed));
    if left(order) <= 0 {
        order.fields.insert("status".into(), json!("refunded"));
    }
}
