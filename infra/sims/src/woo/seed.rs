//! Deterministic store data: the same seed gives the same products, customers and orders
//! (amounts, names, lines), dated back from the moment of seeding. Some names carry accents
//! and some descriptions slashes, as real stores' do, so encodings are exercised.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use super::store::{Doc, Kind, Records};

/// How much to seed.
#[derive(Clone, Copy, Debug, serde::Deserialize)]
#[serde(default)]
pub struct Seed {
    pub products: usize,
    pub customers: usize,
    pub orders: usize,
    pub seed: u64,
}

impl Default for Seed {
    fn default() -> Self {
        Self {
            products: 20,
            customers: 15,
            orders: 60,
            seed: 1,
        }
    }
}

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const ADJECTIVES: &[&str] = &[
    "Classic", "Organic", "Rustic", "Crème", "Smoky", "Bold", "Gentle", "Café", "Alpine", "Golden",
];
const NOUNS: &[&str] = &[
    "Mug",
    "Tea Blend",
    "Coffee Beans",
    "Notebook",
    "Candle",
    "Scarf",
    "Tote Bag",
    "Honey",
    "Soap",
    "Poster",
];
const FIRST: &[&str] = &[
    "Jane", "Amélie", "Omar", "Zoë", "Liam", "Priya", "Mateo", "Chloé", "Noah", "Ava",
];
const LAST: &[&str] = &[
    "Smith", "Nguyen", "García", "Müller", "Okafor", "Brown", "Tremblay", "Rossi", "Kowalski",
    "Lee",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Edmonton", "AB", "CA"),
    ("Calgary", "AB", "CA"),
    ("Montréal", "QC", "CA"),
    ("Seattle", "WA", "US"),
    ("Austin", "TX", "US"),
];
const ORDER_STATUSES: &[&str] = &[
    "processing",
    "completed",
    "completed",
    "on-hold",
    "pending",
    "cancelled",
    "refunded",
];

/// Cents as WooCommerce's money string (`"12.50"`).
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// A money string as cents (two decimals at most; anything else is 0).
pub fn cents(text: &str) -> i64 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    let whole: i64 = whole.trim_start_matches('-').parse().unwrap_or(0);
    let frac: i64 = format!("{frac:0<2}")[..2].parse().unwrap_or(0);
    sign * (whole * 100 + frac)
}

fn address(rng: &mut Rng, first: &str, last: &str, email: Option<&str>) -> Value {
    let (city, state, country) = CITIES[rng.below(CITIES.len() as u64) as usize];
    let mut v = json!({
        "first_name": first, "last_name": last, "company": "",
        "address_1": format!("{} {} Street", 100 + rng.below(9000), rng.pick(LAST)),
        "address_2": "", "city": city, "state": state,
        "postcode": format!("T{}X {}A{}", rng.below(10), rng.below(10), rng.below(10)),
        "country": country, "phone": format!("780-555-{:04}", rng.below(10000)),
    });
    if let Some(e) = email {
        v["email"] = json!(e);
    }
    v
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub fn product_fields(
    sku: &str,
    name: &str,
    price_cents: i64,
    stock: Option<i64>,
    description: &str,
) -> Map<String, Value> {
    let price = money(price_cents);
    object(json!({
        "name": name, "slug": name.to_lowercase().replace(' ', "-"), "type": "simple",
        "status": "publish", "featured": false, "catalog_visibility": "visible",
        "description": description, "short_description": "", "sku": sku,
        "price": price, "regular_price": price, "sale_price": "", "on_sale": false,
        "manage_stock": stock.is_some(), "stock_quantity": stock,
        "stock_status": "instock", "meta_data": [],
    }))
}

pub fn customer_fields(
    email: &str,
    first: &str,
    last: &str,
    billing: Value,
    shipping: Value,
) -> Map<String, Value> {
    object(json!({
        "email": email, "first_name": first, "last_name": last, "role": "customer",
        "username": email.split('@').next().unwrap_or(email),
        "billing": billing, "shipping": shipping, "is_paying_customer": false,
        "avatar_url": "", "meta_data": [],
    }))
}

/// Fills `records` with `seed`'s data, the newest record modified at `now`.
pub fn fill(records: &mut Records, seed: &Seed, now: DateTime<Utc>) {
    let mut rng = Rng(seed.seed);
    let span = (seed.products + seed.customers + seed.orders) as i64;
    // One record a minute, oldest first, products then customers then orders.
    let mut at = now - Duration::minutes(span);
    let mut tick = || {
        at += Duration::minutes(1);
        at
    };
    let mut products = Vec::new();
    for i in 0..seed.products {
        let name = format!("{} {}", rng.pick(ADJECTIVES), rng.pick(NOUNS));
        let price = 300 + rng.below(9700) as i64;
        let stock = (rng.below(4) != 0).then(|| rng.below(200) as i64);
        let description = format!("<p>{name} — 1/{} of our range</p>", seed.products.max(1));
        let sku = format!("SKU-{:05}", i + 1);
        let id = records.next_id(Kind::Products);
        let t = tick();
        records.put(
            Kind::Products,
            Doc::new(
                id,
                t,
                product_fields(&sku, &name, price, stock, &description),
            ),
        );
        products.push((id, sku, name, price));
    }
    let mut customers = Vec::new();
    for i in 0..seed.customers {
        let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
        let email = format!("customer{:05}@example.com", i + 1);
        let billing = address(&mut rng, first, last, Some(&email));
        let shipping = address(&mut rng, first, last, None);
        let id = records.next_id(Kind::Customers);
        let t = tick();
        records.put(
            Kind::Customers,
            Doc::new(
                id,
                t,
                customer_fields(&email, first, last, billing.clone(), shipping.clone()),
            ),
        );
        customers.push((id, email, billing, shipping));
    }
    let mut placed = Vec::new();
    for _ in 0..seed.orders {
        let id = records.next_id(Kind::Orders);
        let mut fields = order_fields(&mut rng, id, &products, &customers);
        let t = tick();
        // Orders being processed or done have been paid, when they were placed.
        if matches!(fields["status"].as_str(), Some("processing" | "completed")) {
            let paid = json!(t.format("%Y-%m-%dT%H:%M:%S").to_string());
            fields.insert("date_paid".into(), paid.clone());
            fields.insert("date_paid_gmt".into(), paid);
        }
        records.put(Kind::Orders, Doc::new(id, t, fields));
        placed.push((id, t));
    }
    // Refunds, after every order so that orders keep their ids: a refunded order was
    // refunded in full (an amount alone, as WooCommerce does when the status is set), and
    // every fifth completed order had one of its first line's units refunded.
    for (id, t) in placed {
        let Some(mut doc) = records.get(Kind::Orders, id).cloned() else {
            continue;
        };
        let given = match doc.status() {
            "refunded" => super::refunds::rest_of(&doc),
            "completed" if id % 5 == 0 => {
                let Some(line) = doc.fields.get("line_items").and_then(|l| l.get(0)).cloned()
                else {
                    continue;
                };
                let units = line["quantity"].as_i64().unwrap_or(1).max(1);
                let each = cents(line["total"].as_str().unwrap_or("0")) / units;
                let each_tax = cents(line["total_tax"].as_str().unwrap_or("0")) / units;
                let given = json!({"reason": "Returned", "line_items": [{
                    "id": line["id"], "quantity": 1,
                    "refund_total": money(each), "refund_tax": money(each_tax),
                }]});
                given.as_object().cloned().unwrap_or_default()
            }
            _ => continue,
        };
        let refund_id = records.next_id(Kind::Orders);
        let local = records.local(t);
        if let Ok(refund) = super::refunds::build(&doc, refund_id, &given, t, local) {
            super::refunds::add(&mut doc, refund);
            records.put(Kind::Orders, doc);
        }
    }
}

type SeededCustomer = (u64, String, Value, Value);

fn order_fields(
    rng: &mut Rng,
    id: u64,
    products: &[(u64, String, String, i64)],
    customers: &[SeededCustomer],
) -> Map<String, Value> {
    // A quarter of orders are guests (customer_id 0).
    let (customer_id, billing, shipping) =
        match customers.get(rng.below(customers.len() as u64 * 4 / 3 + 1) as usize) {
            Some((cid, _, b, s)) => (*cid, b.clone(), s.clone()),
            None => {
                let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
                let email = format!("guest{id}@example.net");
                (
                    0,
                    address(rng, first, last, Some(&email)),
                    address(rng, first, last, None),
                )
            }
        };
    let mut lines = Vec::new();
    let mut subtotal = 0;
    let mut discount = 0;
    let mut tax = 0;
    for n in 0..(1 + rng.below(3)) {
        let Some((pid, sku, name, price)) = products.get(rng.below(products.len() as u64) as usize)
        else {
            break;
        };
        let qty = 1 + rng.below(3) as i64;
        let line_sub = price * qty;
        let line_discount = if rng.below(5) == 0 { line_sub / 10 } else { 0 };
        let line_total = line_sub - line_discount;
        let line_tax = line_total * 5 / 100;
        subtotal += line_sub;
        discount += line_discount;
        tax += line_tax;
        lines.push(json!({
            "id": id * 10 + n, "name": name, "product_id": pid, "variation_id": 0,
            "quantity": qty, "tax_class": "", "subtotal": money(line_sub),
            "subtotal_tax": money(line_sub * 5 / 100), "total": money(line_total),
            "total_tax": money(line_tax), "taxes": [], "meta_data": [], "sku": sku,
            // A number, not a string: per unit, after discounts, before tax.
            "price": (line_total as f64 / 100.0) / qty as f64,
        }));
    }
    let shipping_total = if rng.below(3) == 0 { 0 } else { 1000 };
    let shipping_tax = shipping_total * 5 / 100;
    let fee = if rng.below(6) == 0 { 250 } else { 0 };
    let fee_tax = fee * 5 / 100;
    let total_tax = tax + shipping_tax + fee_tax;
    let total = subtotal - discount + shipping_total + fee + total_tax;
    let status = rng.pick(ORDER_STATUSES);
    let fees = if fee > 0 {
        json!([{"id": id * 10 + 8, "name": "Gift wrap", "tax_class": "", "tax_status": "taxable",
                "total": money(fee), "total_tax": money(fee_tax), "taxes": [], "meta_data": []}])
    } else {
        json!([])
    };
    let shipping_lines = if shipping_total > 0 {
        json!([{"id": id * 10 + 9, "method_title": "Flat rate", "method_id": "flat_rate",
                "instance_id": "1", "total": money(shipping_total), "total_tax": money(shipping_tax),
                "taxes": [], "meta_data": []}])
    } else {
        json!([])
    };
    object(json!({
        "parent_id": 0, "number": id.to_string(), "order_key": format!("wc_order_{:x}", rng.next() >> 16),
        "created_via": "checkout", "version": "9.4.0", "status": status, "currency": "CAD",
        "discount_total": money(discount), "discount_tax": "0.00",
        "shipping_total": money(shipping_total), "shipping_tax": money(shipping_tax),
        "cart_tax": money(tax), "total": money(total), "total_tax": money(total_tax),
        "prices_include_tax": false, "customer_id": customer_id, "customer_note": "",
        "billing": billing, "shipping": shipping, "payment_method": "stripe",
        "payment_method_title": "Credit card", "transaction_id": "",
        "date_paid": null, "date_paid_gmt": null, "date_completed": null, "date_completed_gmt": null,
        "meta_data": [], "line_items": lines, "tax_lines": [], "shipping_lines": shipping_lines,
        "fee_lines": fees, "coupon_lines": [], "refunds": [],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_store() {
        let now = Utc::now();
        let mut a = Records::new(chrono_tz::America::Edmonton);
        let mut b = Records::new(chrono_tz::America::Edmonton);
        fill(&mut a, &Seed::default(), now);
        fill(&mut b, &Seed::default(), now);
        for kind in Kind::ALL {
            assert_eq!(a.count(kind), b.count(kind));
        }
        let order = |r: &Records| r.get(Kind::Orders, 136).map(|d| d.fields.clone());
        assert!(order(&a).is_some());
        assert_eq!(order(&a), order(&b));
    }

    #[test]
    fn order_totals_add_up_exactly() {
        let mut r = Records::new(chrono_tz::America::Edmonton);
        fill(&mut r, &Seed::default(), Utc::now());
        let q = super::super::store::ListQuery {
            page: 1,
            per_page: 100,
            orderby: "id".into(),
            status: vec!["any".into(), "trash".into()],
            ..Default::default()
        };
        let (orders, _) = r.list(Kind::Orders, &q);
        assert_eq!(orders.len(), 60);
        for o in orders {
            let f = &o.fields;
            let lines: i64 = f["line_items"].as_array().map_or(0, |l| {
                l.iter()
                    .map(|x| cents(x["total"].as_str().unwrap_or("")))
                    .sum()
            });
            let extra: i64 = ["shipping_total", "total_tax"]
                .iter()
                .map(|k| cents(f[*k].as_str().unwrap_or("")))
                .sum::<i64>()
                + f["fee_lines"].as_array().map_or(0, |l| {
                    l.iter()
                        .map(|x| cents(x["total"].as_str().unwrap_or("")))
                        .sum()
                });
            assert_eq!(cents(f["total"].as_str().unwrap_or("")), lines + extra);
        }
        assert_eq!(
            (money(1050), money(-5), cents("12.5"), cents("-0.05")),
            ("10.50".into(), "-0.05".into(), 1250, -5)
        );
    }
}
