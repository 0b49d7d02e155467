//! Canonical records: orders, customers and products as the sync engine carries them
//! between platforms. Each platform's connector maps its own JSON to and from these.
//!
//! Money and quantities are [`Decimal`] end to end (WooCommerce sends strings, PostgreSQL
//! stores `numeric`): no float anywhere on the way. Decimals are kept normalised (`12.50`
//! is `12.5`), so equal amounts compare and fingerprint equal whatever scale a platform
//! uses.
//!
//! A [`Fingerprint`] is a hash per field of a record's content. The engine keeps, for each
//! record on each platform, the fingerprint of what it last wrote there or read from there;
//! a change whose fields equal what the target already holds is not written again (that is
//! how a write of ours coming back as a change — an echo — is recognised and skipped).

use chrono::{DateTime, Utc};
pub use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::crypto::sha256_hex;
use crate::domain::EntityType;

/// The fields of each entity; a platform reads and writes a subset (its capabilities).
pub const CUSTOMER_FIELDS: &[&str] = &["email", "first_name", "last_name", "billing", "shipping"];
pub const PRODUCT_FIELDS: &[&str] = &[
    "sku",
    "name",
    "description",
    "price",
    "sale_price",
    "stock_quantity",
    "status",
];
pub const ORDER_FIELDS: &[&str] = &[
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
];
/// An order's fields with its refunds: what a store reads and the books write (a project's
/// table keeps an order's totals, not its refund documents).
pub const ORDER_FIELDS_WITH_REFUNDS: &[&str] = &[
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
    "refunds",
];

/// A postal address with the contact details platforms keep beside it. Empty strings for
/// what is not known (as WooCommerce sends them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub address_1: String,
    pub address_2: String,
    pub city: String,
    pub state: String,
    pub postcode: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub email: String,
    pub phone: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub billing: Address,
    pub shipping: Address,
}

/// Whether a product is for sale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    #[default]
    Active,
    Draft,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: Option<String>,
    pub name: String,
    pub description: String,
    /// The regular (list) price.
    pub price: Option<Decimal>,
    pub sale_price: Option<Decimal>,
    /// `None`: stock is not tracked.
    pub stock_quantity: Option<i64>,
    pub status: ProductStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: Option<String>,
    pub name: String,
    /// The source's id of the product, when the line names one.
    pub product_id: Option<String>,
    pub quantity: Decimal,
    /// Before discounts, without tax.
    pub subtotal: Decimal,
    /// After discounts, without tax.
    pub total: Decimal,
    pub total_tax: Decimal,
}

/// A shipping or fee line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeLine {
    pub name: String,
    pub total: Decimal,
    pub total_tax: Decimal,
}

/// Money paid back on an order: what was refunded, line by line where the store says.
/// Amounts are positive (WooCommerce writes a refund's lines as negative numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The source's id of the refund.
    pub id: String,
    /// What was paid back, tax included.
    pub amount: Decimal,
    pub reason: String,
    pub refunded_at: Option<DateTime<Utc>>,
    /// The day it was refunded in the shop's own time zone (as `Order::placed_on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_on: Option<chrono::NaiveDate>,
    /// The products refunded (quantity and `total` positive); empty for a refund of an
    /// amount alone.
    #[serde(default)]
    pub lines: Vec<OrderLine>,
    #[serde(default)]
    pub shipping_lines: Vec<ChargeLine>,
    #[serde(default)]
    pub fee_lines: Vec<ChargeLine>,
}

impl Refund {
    /// The tax paid back with the refund's lines; `None` if it is too large to add up.
    pub fn tax(&self) -> Option<Decimal> {
        self.lines
            .iter()
            .map(|l| l.total_tax)
            .chain(self.shipping_lines.iter().map(|c| c.total_tax))
            .chain(self.fee_lines.iter().map(|c| c.total_tax))
            .try_fold(Decimal::ZERO, |sum, tax| sum.checked_add(tax))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The number customers see (WooCommerce's `number`).
    pub number: String,
    pub status: String,
    /// ISO 4217.
    pub currency: String,
    pub customer_email: Option<String>,
    pub billing: Address,
    pub shipping: Address,
    pub lines: Vec<OrderLine>,
    pub shipping_lines: Vec<ChargeLine>,
    pub fee_lines: Vec<ChargeLine>,
    pub discount_total: Decimal,
    pub shipping_total: Decimal,
    pub total_tax: Decimal,
    pub total: Decimal,
    pub prices_include_tax: bool,
    pub placed_at: Option<DateTime<Utc>>,
    /// The day it was placed in the shop's own time zone, as the shop manager and the
    /// accountant see it: the day the books record it on (an evening order in Edmonton is
    /// not booked on the next day by UTC). A companion of `placed_at`, not a field of its
    /// own (it changes only with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_on: Option<chrono::NaiveDate>,
    pub paid_at: Option<DateTime<Utc>>,
    /// The refunds made on it, oldest first. (Left out of its JSON when there are none, so
    /// an order's fingerprint is what it was before orders carried refunds.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refunds: Vec<Refund>,
}

/// A record's content, by entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Customer(Box<Customer>),
    Product(Box<Product>),
    Order(Box<Order>),
}

impl Body {
    pub fn entity(&self) -> EntityType {
        match self {
            Body::Customer(_) => EntityType::Customers,
            Body::Product(_) => EntityType::Products,
            Body::Order(_) => EntityType::Orders,
        }
    }

    /// The fields as a JSON object (decimals as text), the form fingerprints hash.
    pub fn fields(&self) -> Map<String, Value> {
        let value = match self {
            Body::Customer(c) => serde_json::to_value(c),
            Body::Product(p) => serde_json::to_value(p),
            Body::Order(o) => serde_json::to_value(o),
        };
        match value {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// The natural key a target can match an unlinked record by: a product's SKU, a
    /// customer's email (lower-cased). Orders have none.
    pub fn natural_key(&self) -> Option<String> {
        match self {
            Body::Product(p) => p.sku.clone().filter(|s| !s.is_empty()),
            Body::Customer(c) => {
                Some(c.email.trim().to_ascii_lowercase()).filter(|e| !e.is_empty())
            }
            Body::Order(_) => None,
        }
    }
}

/// One record as a source read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The platform's id of the record.
    pub id: String,
    pub modified_at: DateTime<Utc>,
    /// `None`: deleted (or trashed) at the source.
    pub body: Option<Body>,
    /// Fields the source holds no value for (a database column left null): they are not
    /// carried to targets, so a copy that never had them does not blank them elsewhere.
    pub unknown: Vec<&'static str>,
}

impl Record {
    pub fn is_deleted(&self) -> bool {
        self.body.is_none()
    }

    /// A hash per field of `fields` (and of whether the record is deleted).
    pub fn fingerprint(&self, fields: &[&str]) -> Fingerprint {
        let mut out = BTreeMap::new();
        out.insert(DELETED.to_string(), hash(&Value::Bool(self.is_deleted())));
        if let Some(body) = &self.body {
            let values = body.fields();
            for field in fields {
                let value = values.get(*field).cloned().unwrap_or(Value::Null);
                out.insert((*field).to_string(), hash(&value));
            }
        }
        Fingerprint(out)
    }
}

/// The pseudo-field every fingerprint has: whether the record is deleted.
const DELETED: &str = "_deleted";

/// The first 16 hex digits of the SHA-256 of a value's JSON text (serde_json writes object
/// keys in order, so equal values give equal text).
fn hash(value: &Value) -> String {
    sha256_hex(value.to_string().as_bytes())[..16].to_string()
}

/// A hash per field of a record's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint(pub BTreeMap<String, String>);

impl Fingerprint {
    /// Whether `other`'s fields are all held here with the same hashes (fields `other`
    /// lacks are not compared; a field this one lacks is covered while `other` holds
    /// nothing in it, so a field a flow starts to carry is no change until it has a
    /// value). A deleted record matches only a deleted one.
    pub fn covers(&self, other: &Fingerprint) -> bool {
        let null = hash(&Value::Null);
        other.0.iter().all(|(f, h)| match self.0.get(f) {
            Some(mine) => mine == h,
            None => *h == null,
        })
    }

    /// These fields over the old ones; the others kept.
    pub fn merged(&self, newer: &Fingerprint) -> Fingerprint {
        let mut out = self.0.clone();
        out.extend(newer.0.clone());
        Fingerprint(out)
    }

    /// Whether it is the fingerprint of a deleted record.
    pub fn is_deleted(&self) -> bool {
        self.0.get(DELETED) == Some(&hash(&Value::Bool(true)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `field` held a value (anything but null) when this was taken.
    pub fn had_value(&self, field: &str) -> bool {
        // An address with nothing in it is no value either (a NULL address column reads as
        // an empty address).
        let empty_address = serde_json::to_value(Address::default()).unwrap_or(Value::Null);
        self.0
            .get(field)
            .is_some_and(|h| *h != hash(&Value::Null) && *h != hash(&empty_address))
    }

    /// One short text for the whole fingerprint: which fields it has and what they hold.
    /// Two seals are equal when both are, so a stored seal answers "unchanged since?" for
    /// the same fields in one comparison, at a fraction of the fingerprint's size.
    pub fn seal(&self) -> String {
        let fields: Vec<&str> = self.0.keys().map(String::as_str).collect();
        let content: Vec<String> = self.0.iter().map(|(f, h)| format!("{f}={h}")).collect();
        format!(
            "{}:{}",
            &sha256_hex(fields.join(",").as_bytes())[..8],
            &sha256_hex(content.join(";").as_bytes())[..16]
        )
    }
}

/// The canonical fields of `entity`.
pub fn entity_fields(entity: EntityType) -> &'static [&'static str] {
    match entity {
        EntityType::Orders => ORDER_FIELDS,
        EntityType::Customers => CUSTOMER_FIELDS,
        EntityType::Products => PRODUCT_FIELDS,
    }
}

/// A decimal from text, normalised; `None` for empty text. (`12.50` → `12.5`; JSON's
/// exponent form, `1e2`, is read too.)
pub fn decimal(text: &str) -> Result<Option<Decimal>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let parsed = if t.contains(['e', 'E']) {
        Decimal::from_scientific(t)
    } else {
        t.parse::<Decimal>()
    };
    parsed
        .map(|d| Some(d.normalize()))
        .map_err(|_| format!("'{t}' is not a decimal number"))
}

/// The one reader of money in a platform's JSON: a string or a number, read from its text
/// (never through a float); `None` for null or empty text; anything else is an error
/// naming `what`.
pub fn money(v: &serde_json::Value, what: &str) -> Result<Option<Decimal>, String> {
    unlabelled_money(v).map_err(|e| format!("{what}: {e}"))
}

/// [`money`], its error naming no field (where the caller's path names it).
pub fn unlabelled_money(v: &serde_json::Value) -> Result<Option<Decimal>, String> {
    use serde_json::Value;
    match v {
        Value::Null => Ok(None),
        Value::String(s) => decimal(s),
        Value::Number(n) => decimal(&n.to_string()),
        other => Err(format!("{other} is not an amount")),
    }
}

/// A decimal that must be there (empty text is zero, as WooCommerce writes zero totals).
pub fn amount(text: &str) -> Result<Decimal, String> {
    decimal(text).map(|d| d.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_address_or_a_null_is_no_value_to_clear() {
        let customer = |city: &str| Record {
            id: "c".into(),
            modified_at: DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default(),
            body: Some(Body::Customer(Box::new(Customer {
                email: "a@example.com".into(),
                billing: Address {
                    city: city.into(),
                    ..Address::default()
                },
                ..Customer::default()
            }))),
            unknown: Vec::new(),
        };
        let fields = ["email", "billing", "shipping"];
        let empty = customer("").fingerprint(&fields);
        assert!(!empty.had_value("billing"), "an empty address");
        assert!(!empty.had_value("shipping"));
        assert!(!empty.had_value("phone"), "a field it does not have");
        assert!(customer("Edmonton")
            .fingerprint(&fields)
            .had_value("billing"));
    }

    fn product(price: &str) -> Record {
        Record {
            id: "1".into(),
            modified_at: DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default(),
            body: Some(Body::Product(Box::new(Product {
                sku: Some("SKU-1".into()),
                name: "Mug".into(),
                price: decimal(price).unwrap_or_default(),
                ..Product::default()
            }))),
            unknown: Vec::new(),
        }
    }

    #[test]
    fn equal_amounts_at_different_scales_fingerprint_the_same() {
        let a = product("12.50").fingerprint(PRODUCT_FIELDS);
        let b = product("12.5000").fingerprint(PRODUCT_FIELDS);
        assert_eq!(a, b);
        let c = product("12.51").fingerprint(PRODUCT_FIELDS);
        assert_ne!(a, c);
    }

    #[test]
    fn a_fingerprint_covers_another_on_the_fields_that_one_has() {
        let full = product("10").fingerprint(PRODUCT_FIELDS);
        let price_only = product("10").fingerprint(&["price"]);
        assert!(full.covers(&price_only));
        assert!(!price_only.covers(&full));
        let cheaper = product("9").fingerprint(&["price"]);
        assert!(!full.covers(&cheaper));
        let deleted = Record {
            body: None,
            ..product("10")
        }
        .fingerprint(PRODUCT_FIELDS);
        assert!(!full.covers(&deleted));
        assert!(deleted.covers(&deleted.clone()));
    }

    #[test]
    fn a_field_a_flow_starts_to_carry_is_no_change_until_it_holds_something() {
        let order = |refunds: Vec<Refund>| Record {
            id: "7".into(),
            modified_at: DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default(),
            body: Some(Body::Order(Box::new(Order {
                number: "7".into(),
                total: Decimal::ONE,
                refunds,
                ..Order::default()
            }))),
            unknown: Vec::new(),
        };
        let before = order(Vec::new()).fingerprint(ORDER_FIELDS);
        assert!(before.covers(&order(Vec::new()).fingerprint(ORDER_FIELDS_WITH_REFUNDS)));
        let refunded = order(vec![Refund {
            id: "9".into(),
            amount: Decimal::ONE,
            ..Refund::default()
        }]);
        assert!(!before.covers(&refunded.fingerprint(ORDER_FIELDS_WITH_REFUNDS)));
    }

    #[test]
    fn decimals_never_go_through_a_float() {
        let big = "12345678901234567890.123456789";
        assert_eq!(
            decimal(big).map(|d| d.map(|d| d.to_string())),
            Ok(Some(big.into()))
        );
        assert_eq!(decimal("0.1").map(|d| d.map(|d| d + d + d)), decimal("0.3"));
        assert!(decimal("abc").is_err());
        assert_eq!(decimal("  "), Ok(None));
        assert_eq!(amount(""), Ok(Decimal::ZERO));
    }
}
