//! WooCommerce JSON (REST API v3) to and from the canonical records.
//!
//! - Dates: `*_gmt` fields, `YYYY-MM-DDTHH:MM:SS` with no offset, are UTC.
//! - Money: strings (`"12.50"`), parsed as decimals; a number that slips in is read from its
//!   JSON text, never through a float. `line_items[].price` (a float, after discounts) is not
//!   used: lines carry their subtotal and total.
//! - Deleted: a `trash` status reads as deleted.
//! - Refunds: an order lists each refund's id and its total as a negative string; the
//!   refund itself (`/orders/{id}/refunds`) has its lines, as negative quantities and
//!   amounts. Both read as positive amounts, oldest refund first.
//! - Products: the regular price is the canonical price; stock is tracked only when
//!   `manage_stock` is on; `publish` is active, any other status a draft.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::platforms::fields::{read, Text};
use crate::platforms::id_text;
use crate::records::{
    Address, Body, ChargeLine, Customer, Decimal, Order, OrderLine, Product, ProductStatus, Record,
    Refund,
};

/// A `*_gmt` date (no offset, UTC); `None` when empty or null.
pub fn gmt(v: &Value) -> Result<Option<DateTime<Utc>>, String> {
    crate::platforms::fields::gmt(v)
}

/// The form WooCommerce takes dates in (`modified_after` with `dates_are_gmt=true`).
pub fn gmt_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// The payloads as WooCommerce sends them (REST API v3 and webhooks). A field WooCommerce
/// always sends is required: missing, it fails the record; `#[serde(default)]` marks what
/// may be left out (absent from a summary, or from an older store).
mod wire {
    use serde::Deserialize;
    use serde_json::Value;

    use crate::platforms::fields::{Gmt, Id, LenientGmt, Money, Text};

    /// What every record has: enough to place it in time and to tell a deletion.
    #[derive(Deserialize)]
    pub struct Head {
        pub id: Id,
        #[serde(default)]
        pub status: Text,
        #[serde(default)]
        pub date_modified_gmt: Gmt,
        #[serde(default)]
        pub date_created_gmt: Gmt,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Address {
        pub first_name: Text,
        pub last_name: Text,
        pub company: Text,
        pub address_1: Text,
        pub address_2: Text,
        pub city: Text,
        pub state: Text,
        pub postcode: Text,
        pub country: Text,
        pub email: Text,
        pub phone: Text,
    }

    /// A product line (of an order, or of a refund, negative there).
    #[derive(Deserialize)]
    pub struct Line {
        #[serde(default)]
        pub sku: Text,
        #[serde(default)]
        pub name: Text,
        #[serde(default)]
        pub product_id: Option<Value>,
        pub quantity: Money,
        pub subtotal: Money,
        pub total: Money,
        pub total_tax: Money,
    }

    /// A shipping line (named by `method_title`) or a fee line (by `name`).
    #[derive(Deserialize)]
    pub struct Charge {
        #[serde(default)]
        pub method_title: Text,
        #[serde(default)]
        pub name: Text,
        pub total: Money,
        pub total_tax: Money,
    }

    /// A refund in full (`/orders/{id}/refunds`), or as an order lists it (its id, reason
    /// and `total`, negative).
    #[derive(Deserialize)]
    pub struct Refund {
        pub id: Id,
        #[serde(default)]
        pub amount: Money,
        #[serde(default)]
        pub total: Money,
        #[serde(default)]
        pub reason: Text,
        #[serde(default)]
        pub date_created_gmt: Gmt,
        #[serde(default)]
        pub date_created: LenientGmt,
        #[serde(default)]
        pub line_items: Vec<Line>,
        #[serde(default)]
        pub shipping_lines: Vec<Charge>,
        #[serde(default)]
        pub fee_lines: Vec<Charge>,
    }

    #[derive(Deserialize)]
    pub struct Order {
        #[serde(default)]
        pub number: Text,
        pub status: Text,
        #[serde(default)]
        pub currency: Text,
        #[serde(default)]
        pub billing: Address,
        #[serde(default)]
        pub shipping: Address,
        pub line_items: Vec<Line>,
        #[serde(default)]
        pub shipping_lines: Vec<Charge>,
        #[serde(default)]
        pub fee_lines: Vec<Charge>,
        pub discount_total: Money,
        pub shipping_total: Money,
        pub total_tax: Money,
        pub total: Money,
        #[serde(default)]
        pub prices_include_tax: bool,
        #[serde(default)]
        pub date_created_gmt: Gmt,
        /// The site's own wall time: its day is the shop's.
        #[serde(default)]
        pub date_created: LenientGmt,
        #[serde(default)]
        pub date_paid_gmt: Gmt,
        #[serde(default)]
        pub refunds: Vec<Refund>,
    }

    #[derive(Deserialize)]
    pub struct Product {
        #[serde(default)]
        pub sku: Text,
        #[serde(default)]
        pub name: Text,
        #[serde(default)]
        pub description: Text,
        pub regular_price: Money,
        #[serde(default)]
        pub sale_price: Money,
        /// `true`, `false`, or `"parent"` on a variation.
        #[serde(default)]
        pub manage_stock: Value,
        /// Read only where stock is managed: a whole number, as a number (`5`, or `5.0`
        /// where a plugin makes stock a float) or text.
        #[serde(default)]
        pub stock_quantity: Value,
        pub status: Text,
    }

    #[derive(Deserialize)]
    pub struct Customer {
        pub email: Text,
        #[serde(default)]
        pub first_name: Text,
        #[serde(default)]
        pub last_name: Text,
        #[serde(default)]
        pub billing: Address,
        #[serde(default)]
        pub shipping: Address,
    }
}

fn address(a: wire::Address) -> Address {
    Address {
        first_name: a.first_name.0,
        last_name: a.last_name.0,
        company: a.company.0,
        address_1: a.address_1.0,
        address_2: a.address_2.0,
        city: a.city.0,
        state: a.state.0,
        postcode: a.postcode.0,
        country: a.country.0,
        email: a.email.0,
        phone: a.phone.0,
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

/// A record's head, and whether it is deleted (`trash`), before the rest is read.
fn head(v: &Value, what: &str) -> Result<(String, DateTime<Utc>, bool), String> {
    let head: wire::Head = read(v, what)?;
    let modified = head
        .date_modified_gmt
        .0
        .or(head.date_created_gmt.0)
        .ok_or_else(|| "the record has no modification date".to_string())?;
    Ok((head.id.0, modified, head.status.as_str() == "trash"))
}

fn deleted(id: String, modified_at: DateTime<Utc>) -> Record {
    Record {
        id,
        modified_at,
        body: None,
        unknown: Vec::new(),
    }
}

fn charge(c: wire::Charge, name: Text) -> ChargeLine {
    ChargeLine {
        name: name.0,
        total: c.total.or_zero(),
        total_tax: c.total_tax.or_zero(),
    }
}

fn shipping_lines(lines: Vec<wire::Charge>) -> Vec<ChargeLine> {
    lines
        .into_iter()
        .map(|c| {
            let name = c.method_title.clone();
            charge(c, name)
        })
        .collect()
}

fn fee_lines(lines: Vec<wire::Charge>) -> Vec<ChargeLine> {
    lines
        .into_iter()
        .map(|c| {
            let name = c.name.clone();
            charge(c, name)
        })
        .collect()
}

/// An order's (or a refund's) product lines.
fn order_lines(lines: Vec<wire::Line>) -> Vec<OrderLine> {
    lines
        .into_iter()
        .map(|l| OrderLine {
            sku: l.sku.non_empty(),
            name: l.name.0,
            product_id: id_text(l.product_id.as_ref()).filter(|p| p != "0"),
            quantity: l.quantity.or_zero(),
            subtotal: l.subtotal.or_zero(),
            total: l.total.or_zero(),
            total_tax: l.total_tax.or_zero(),
        })
        .collect()
}

/// A refund's line as what was paid back (WooCommerce writes it negative).
fn paid_back(line: OrderLine) -> OrderLine {
    OrderLine {
        quantity: line.quantity.abs(),
        subtotal: line.subtotal.abs(),
        total: line.total.abs(),
        total_tax: line.total_tax.abs(),
        ..line
    }
}

fn charge_paid_back(line: ChargeLine) -> ChargeLine {
    ChargeLine {
        total: line.total.abs(),
        total_tax: line.total_tax.abs(),
        ..line
    }
}

/// An order's refunds, oldest first: the refunds themselves where the connector put them
/// in place of the order's own list, else each refund's amount alone (its `total`).
fn refunds(list: Vec<wire::Refund>) -> Result<Vec<Refund>, String> {
    let mut out =
        list.into_iter()
            .map(|r| {
                let amount = r.amount.0.or(r.total.0).ok_or_else(|| {
                    format!("refund {} has neither an amount nor a total", r.id.0)
                })?;
                Ok(Refund {
                    id: r.id.0,
                    amount: amount.abs(),
                    reason: r.reason.0,
                    refunded_at: r.date_created_gmt.0,
                    refunded_on: r.date_created.0.map(|t| t.date_naive()),
                    lines: order_lines(r.line_items)
                        .into_iter()
                        .map(paid_back)
                        .collect(),
                    shipping_lines: shipping_lines(r.shipping_lines)
                        .into_iter()
                        .map(charge_paid_back)
                        .collect(),
                    fee_lines: fee_lines(r.fee_lines)
                        .into_iter()
                        .map(charge_paid_back)
                        .collect(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
    out.sort_by(|a, b| {
        let number = |id: &str| id.parse::<u64>().unwrap_or(u64::MAX);
        number(&a.id).cmp(&number(&b.id)).then(a.id.cmp(&b.id))
    });
    Ok(out)
}

/// An order as the API (or an order webhook) returns it.
pub fn order(v: &Value) -> Result<Record, String> {
    let (id, modified_at, trashed) = head(v, "order")?;
    if trashed {
        return Ok(deleted(id, modified_at));
    }
    let o: wire::Order = read(v, "order")?;
    let billing = address(o.billing);
    let order = Order {
        number: o.number.non_empty().unwrap_or_else(|| id.clone()),
        status: o.status.0,
        currency: o.currency.0,
        customer_email: Some(billing.email.clone()).filter(|e| !e.is_empty()),
        shipping: address(o.shipping),
        billing,
        lines: order_lines(o.line_items),
        shipping_lines: shipping_lines(o.shipping_lines),
        fee_lines: fee_lines(o.fee_lines),
        discount_total: o.discount_total.or_zero(),
        shipping_total: o.shipping_total.or_zero(),
        total_tax: o.total_tax.or_zero(),
        total: o.total.or_zero(),
        prices_include_tax: o.prices_include_tax,
        placed_at: o.date_created_gmt.0,
        // (Not the order's failure if unreadable: the UTC day stands in for it.)
        placed_on: o.date_created.0.map(|t| t.date_naive()),
        paid_at: o.date_paid_gmt.0,
        refunds: refunds(o.refunds)?,
    };
    Ok(Record {
        id,
        modified_at,
        body: Some(Body::Order(Box::new(order))),
        unknown: Vec::new(),
    })
}

pub fn product(v: &Value) -> Result<Record, String> {
    let (id, modified_at, trashed) = head(v, "product")?;
    if trashed {
        return Ok(deleted(id, modified_at));
    }
    let p: wire::Product = read(v, "product")?;
    let product = Product {
        sku: p.sku.non_empty(),
        name: p.name.0,
        description: p.description.0,
        price: p.regular_price.0,
        sale_price: p.sale_price.0,
        stock_quantity: if p.manage_stock == Value::Bool(true) {
            Some(stock(&p.stock_quantity)?)
        } else {
            None
        },
        status: if p.status.as_str() == "publish" {
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

/// A managed stock quantity: a whole number (none written is zero).
fn stock(v: &Value) -> Result<i64, String> {
    match crate::records::money(v, "product: stock_quantity")? {
        None => Ok(0),
        Some(d) if d.fract().is_zero() => {
            i64::try_from(d).map_err(|_| format!("product: stock_quantity: {d} is too large"))
        }
        Some(d) => Err(format!(
            "product: stock_quantity: {d} is not a whole number"
        )),
    }
}

pub fn customer(v: &Value) -> Result<Record, String> {
    let (id, modified_at, _) = head(v, "customer")?;
    let c: wire::Customer = read(v, "customer")?;
    let customer = Customer {
        email: c.email.0,
        first_name: c.first_name.0,
        last_name: c.last_name.0,
        billing: address(c.billing),
        shipping: address(c.shipping),
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
    use crate::records::decimal;

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
    fn refunds_read_as_positive_amounts_oldest_first_from_the_refunds_or_the_orders_list() {
        let order_of = |refunds: Value| {
            json!({
                "id": 7, "status": "refunded", "date_modified_gmt": "2026-11-24T18:05:09",
                "line_items": [], "discount_total": "0", "shipping_total": "0",
                "total_tax": "0", "total": "30.00", "refunds": refunds,
            })
        };
        let summary = order_of(json!([{"id": 12, "reason": "broken", "total": "-5.00"},
                        {"id": 9, "reason": "", "total": "-10.50"}]));
        let Ok(Record {
            body: Some(Body::Order(o)),
            ..
        }) = order(&summary)
        else {
            panic!("not an order")
        };
        let amounts: Vec<(String, String)> = o
            .refunds
            .iter()
            .map(|r| (r.id.clone(), r.amount.to_string()))
            .collect();
        assert_eq!(
            amounts,
            [("9".into(), "10.5".into()), ("12".into(), "5".into())]
        );
        let full = order_of(
            json!([{"id": 9, "amount": "10.50", "reason": "", "date_created_gmt": "2026-11-25T02:00:00",
                         "date_created": "2026-11-24T19:00:00",
                         "line_items": [{"id": 3, "name": "Mug", "sku": "MUG-1", "product_id": 17,
                                         "quantity": -1, "subtotal": "-10.00", "total": "-10.00", "total_tax": "-0.50"}],
                         "shipping_lines": [], "fee_lines": []}]),
        );
        let Ok(Record {
            body: Some(Body::Order(o)),
            ..
        }) = order(&full)
        else {
            panic!("not an order")
        };
        let refund = &o.refunds[0];
        assert_eq!(refund.amount.to_string(), "10.5");
        assert_eq!(refund.lines[0].quantity.to_string(), "1");
        assert_eq!(refund.lines[0].total.to_string(), "10");
        assert_eq!(refund.tax().map(|t| t.to_string()), Some("0.5".into()));
        assert_eq!(
            refund.refunded_on.map(|d| d.to_string()).as_deref(),
            Some("2026-11-24")
        );
        let bad = order_of(json!([{"id": 9, "amount": "ten"}]));
        assert!(order(&bad).is_err_and(|e| e.contains("refunds[0].amount")));
        let none = order_of(json!([{"id": 9, "reason": "no amount"}]));
        assert!(order(&none).is_err_and(|e| e.contains("neither an amount nor a total")));
    }

    #[test]
    fn a_bad_or_missing_amount_is_an_error_naming_the_field_and_trash_is_deleted() {
        let v = json!({"id": 1, "date_modified_gmt": "2026-11-24T18:05:09", "total": "abc"});
        assert!(order(&v).is_err_and(|e| e.contains("total")));
        // A field WooCommerce always sends, missing (misspelled): never a silent zero.
        let misspelled = json!({
            "id": 1, "status": "processing", "date_modified_gmt": "2026-11-24T18:05:09",
            "line_items": [{"quantity": 1, "subtotal": "5", "totl": "5", "total_tax": "0"}],
            "discount_total": "0", "shipping_total": "0", "total_tax": "0", "total": "5",
        });
        let e = order(&misspelled);
        assert!(
            e.as_ref()
                .is_err_and(|e| e.contains("line_items[0]") && e.contains("`total`")),
            "{e:?}"
        );
        let stocked = |manage: Value, stock: Value| {
            let v = json!({"id": 3, "status": "publish", "date_modified_gmt": "2026-11-24T18:05:09",
                           "regular_price": "5", "manage_stock": manage, "stock_quantity": stock});
            match product(&v).map(|r| r.body) {
                Ok(Some(Body::Product(p))) => Ok(p.stock_quantity),
                other => Err(format!("{other:?}")),
            }
        };
        // A plugin's float stock, a variation's "parent", a null stock where none is kept.
        assert_eq!(stocked(json!(true), json!(5.0)), Ok(Some(5)));
        assert_eq!(stocked(json!("parent"), json!(7)), Ok(None));
        assert_eq!(stocked(json!(false), json!(null)), Ok(None));
        assert!(stocked(json!(true), json!(2.5)).is_err_and(|e| e.contains("whole number")));
        let no_price =
            json!({"id": 2, "status": "publish", "date_modified_gmt": "2026-11-24T18:05:09"});
        assert!(product(&no_price).is_err_and(|e| e.contains("regular_price")));
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
