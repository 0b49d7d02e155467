//! QuickBooks entities to and from the canonical records.
//!
//! - Customers: `GivenName`/`FamilyName`, `PrimaryEmailAddr`, `PrimaryPhone`, `CompanyName`,
//!   `BillAddr` and `ShipAddr` (QuickBooks keeps one name per customer: both addresses read
//!   back with it). `DisplayName` is QuickBooks' own unique label, not a canonical field.
//! - Products: `Item` with `Name`, `Sku`, `Description`, `UnitPrice`, `Active`.
//! - Orders: `SalesReceipt` (paid) and `Invoice` (unpaid). Their ids in records carry the
//!   entity: `SalesReceipt:12`, `Invoice:7`. Product lines are `SalesItemLineDetail` lines;
//!   the shipping and fee lines are sales lines on the items named in [`SHIPPING_ITEM`] and
//!   [`FEE_ITEM`]; discounts are one `DiscountLineDetail`; tax is `TxnTaxDetail.TotalTax`.
//! - Money is read from the JSON number's text, never through a float.
//! - Deleted (`status: Deleted`, from CDC) and voided documents read as deleted.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};

use crate::platforms::fields::{read, Money};

use crate::records::{
    Address, Body, ChargeLine, Customer, Decimal, Order, OrderLine, Product, ProductStatus, Record,
};

/// The item shipping lines are booked on.
pub const SHIPPING_ITEM: &str = "Shipping";
/// The item fee lines are booked on.
pub const FEE_ITEM: &str = "Fees";
/// The item for order lines without a SKU.
pub const UNNAMED_ITEM: &str = "Sales";
/// The item a refund's amount is booked on where the store does not say what it paid
/// back for (a refund of an amount alone, or more than its lines).
pub const REFUND_ITEM: &str = "Refunds";

/// The document kinds an order can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Document {
    SalesReceipt,
    Invoice,
}

impl Document {
    pub fn entity(self) -> &'static str {
        match self {
            Document::SalesReceipt => "SalesReceipt",
            Document::Invoice => "Invoice",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "SalesReceipt" => Some(Document::SalesReceipt),
            "Invoice" => Some(Document::Invoice),
            _ => None,
        }
    }
}

/// An order's record id: `SalesReceipt:12`.
pub fn document_id(kind: Document, id: &str) -> String {
    format!("{}:{id}", kind.entity())
}

pub fn split_document_id(text: &str) -> Option<(Document, &str)> {
    let (kind, id) = text.split_once(':')?;
    Some((Document::parse(kind)?, id))
}

/// QuickBooks' JSON with every number kept as its text (a JSON string), so that an amount
/// never passes through a float: `12345678901234.5678` stays exactly that. Read amounts
/// with [`money`].
pub fn exact_json(body: &[u8]) -> Result<Value, String> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 8);
    let (mut in_string, mut escaped) = (false, false);
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
        } else if b == b'"' {
            in_string = true;
            out.push(b);
            i += 1;
        } else if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < body.len()
                && matches!(body[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
            {
                i += 1;
            }
            out.push(b'"');
            out.extend_from_slice(&body[start..i]);
            out.push(b'"');
        } else {
            out.push(b);
            i += 1;
        }
    }
    serde_json::from_slice(&out).map_err(|e| format!("the answer is not JSON: {e}"))
}

/// An amount that must be there: a missing or misspelled field is an error, never a zero.
pub(super) fn money(v: &Value, what: &str) -> Result<Decimal, String> {
    crate::records::money(v, what)?.ok_or_else(|| format!("{what} is missing"))
}

/// `a + b`, or an error naming `what` when it does not fit (never a panic).
pub(super) fn plus(a: Decimal, b: Decimal, what: &str) -> Result<Decimal, String> {
    a.checked_add(b)
        .ok_or_else(|| format!("{what} is too large to add up"))
}

/// A decimal as a JSON number, written from its text.
pub fn number(d: Decimal) -> Value {
    serde_json::from_str(&d.normalize().to_string()).unwrap_or(Value::Null)
}

/// `MetaData.LastUpdatedTime`, which carries an offset.
pub fn updated_at(v: &Value) -> Result<DateTime<Utc>, String> {
    #[derive(serde::Deserialize)]
    struct Stamped {
        #[serde(rename = "MetaData")]
        meta: wire::Meta,
    }
    read::<Stamped>(v, "the entity")?
        .meta
        .last_updated_time
        .0
        .ok_or_else(|| "MetaData.LastUpdatedTime is empty".to_string())
}

/// Whether an item is one of those the sync books order charges on (shipping, fees, lines
/// without a SKU): bookkeeping, not a product to sync elsewhere.
pub fn is_charge_item(v: &Value) -> bool {
    read::<wire::Item>(v, "the item").is_ok_and(|item| {
        item.sku.as_str().is_empty()
            && [SHIPPING_ITEM, FEE_ITEM, UNNAMED_ITEM, REFUND_ITEM].contains(&item.name.as_str())
    })
}

/// Whether QuickBooks reports an entity deleted or voided, by its `status` (CDC's) and its
/// `PrivateNote` (a void writes `Voided` at its start).
pub(super) fn is_voided(status: &str, note: &str) -> bool {
    matches!(status, "Deleted" | "Voided") || note.starts_with("Voided")
}

/// Whether QuickBooks' `key` holds the canonical `field` (`None`: the key is always sent).
fn key_field(key: &str) -> Option<&'static str> {
    match key {
        "GivenName" => Some("first_name"),
        "FamilyName" => Some("last_name"),
        "PrimaryEmailAddr" => Some("email"),
        "CompanyName" | "PrimaryPhone" | "BillAddr" => Some("billing"),
        "ShipAddr" => Some("shipping"),
        "Name" => Some("name"),
        "Sku" => Some("sku"),
        "Description" => Some("description"),
        "UnitPrice" => Some("price"),
        "Active" => Some("status"),
        _ => None,
    }
}

/// Only the keys that hold one of `fields` (and those always sent): a field the source does
/// not carry is left as QuickBooks has it.
pub fn carried(mut map: Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    map.retain(|key, _| key_field(key).is_none_or(|f| fields.contains(&f)));
    map
}

/// The entities as QuickBooks answers them (read with [`exact_json`], numbers as text).
/// QuickBooks leaves out a field it holds nothing in, so only what it always sends is
/// required; an amount the mapping needs is checked where it is used.
pub(super) mod wire {
    use serde::Deserialize;

    use serde_json::Value;

    use crate::platforms::fields::{Id, Money, Stamp, Text};

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct Meta {
        pub last_updated_time: Stamp,
        /// Read where it is used (an unreadable one is not the record's failure).
        #[serde(default)]
        pub create_time: Value,
    }

    /// What every entity has: its id, when it changed, and whether it is gone.
    #[derive(Deserialize)]
    pub struct Head {
        #[serde(rename = "Id")]
        pub id: Id,
        #[serde(rename = "MetaData")]
        pub meta: Meta,
        #[serde(default)]
        pub status: Text,
        #[serde(rename = "PrivateNote", default)]
        pub private_note: Text,
        #[serde(rename = "Active", default)]
        pub active: Option<bool>,
    }

    #[derive(Deserialize, Default)]
    pub struct Ref {
        #[serde(default)]
        pub value: Text,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Email {
        pub address: Text,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Phone {
        pub free_form_number: Text,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Addr {
        pub line1: Text,
        pub line2: Text,
        pub city: Text,
        pub country_sub_division_code: Text,
        pub postal_code: Text,
        pub country: Text,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    #[derive(Default)]
    pub struct Customer {
        pub given_name: Text,
        pub family_name: Text,
        pub company_name: Text,
        pub primary_email_addr: Email,
        pub primary_phone: Phone,
        pub bill_addr: Addr,
        pub ship_addr: Addr,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct Item {
        pub name: Text,
        #[serde(default)]
        pub sku: Text,
        #[serde(default)]
        pub description: Text,
        #[serde(default)]
        pub unit_price: Money,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct TaxDetail {
        pub total_tax: Money,
    }

    /// `Qty` and a line's `Amount` are read only on the lines the mapping uses (a line of
    /// another kind may hold anything).
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct SalesDetail {
        pub item_ref: Ref,
        pub qty: Value,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct Line {
        #[serde(default)]
        pub detail_type: Text,
        #[serde(default)]
        pub amount: Value,
        #[serde(default)]
        pub description: Option<String>,
        #[serde(default)]
        pub sales_item_line_detail: SalesDetail,
    }

    /// A sales receipt or an invoice.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct Document {
        #[serde(default)]
        pub doc_number: Text,
        #[serde(default)]
        pub currency_ref: Ref,
        #[serde(default)]
        pub bill_email: Email,
        #[serde(default)]
        pub bill_addr: Addr,
        #[serde(default)]
        pub ship_addr: Addr,
        #[serde(default)]
        pub txn_tax_detail: TaxDetail,
        pub total_amt: Money,
        #[serde(default)]
        pub balance: Money,
        #[serde(default)]
        pub txn_date: Text,
        #[serde(default)]
        pub line: Vec<Line>,
    }
}

/// An entity's id, when it last changed, and whether QuickBooks reports it gone (deleted,
/// voided, or for names inactive), read before the rest.
fn head(v: &Value) -> Result<wire::Head, String> {
    read(v, "the entity")
}

fn deleted(id: String, modified_at: DateTime<Utc>) -> Record {
    Record {
        id,
        modified_at,
        body: None,
        unknown: Vec::new(),
    }
}

fn modified(head: &wire::Head) -> Result<DateTime<Utc>, String> {
    head.meta
        .last_updated_time
        .0
        .ok_or_else(|| "MetaData.LastUpdatedTime is missing".to_string())
}

fn head_is_gone(head: &wire::Head) -> bool {
    is_voided(head.status.as_str(), head.private_note.as_str())
}

fn address(
    a: wire::Addr,
    given: &str,
    family: &str,
    company: &str,
    email: &str,
    phone: &str,
) -> Address {
    Address {
        first_name: given.into(),
        last_name: family.into(),
        company: company.into(),
        address_1: a.line1.0,
        address_2: a.line2.0,
        city: a.city.0,
        state: a.country_sub_division_code.0,
        postcode: a.postal_code.0,
        country: a.country.0,
        email: email.into(),
        phone: phone.into(),
    }
}

pub fn address_json(a: &Address) -> Value {
    json!({
        "Line1": a.address_1, "Line2": a.address_2, "City": a.city,
        "CountrySubDivisionCode": a.state, "PostalCode": a.postcode, "Country": a.country,
    })
}

pub fn customer(v: &Value) -> Result<Record, String> {
    let head = head(v)?;
    let (id, modified_at) = (head.id.0.clone(), modified(&head)?);
    if head_is_gone(&head) || head.active == Some(false) {
        return Ok(deleted(id, modified_at));
    }
    let c: wire::Customer = read(v, "the customer")?;
    let (given, family) = (c.given_name.0, c.family_name.0);
    let company = c.company_name.0;
    let email = c.primary_email_addr.address.0;
    let phone = c.primary_phone.free_form_number.0;
    Ok(Record {
        id,
        modified_at,
        body: Some(Body::Customer(Box::new(Customer {
            billing: address(c.bill_addr, &given, &family, &company, &email, &phone),
            shipping: address(c.ship_addr, &given, &family, &company, "", ""),
            email,
            first_name: given,
            last_name: family,
        }))),
        unknown: Vec::new(),
    })
}

pub fn product(v: &Value) -> Result<Record, String> {
    let head = head(v)?;
    let (id, modified_at) = (head.id.0.clone(), modified(&head)?);
    if head_is_gone(&head) {
        return Ok(deleted(id, modified_at));
    }
    let item: wire::Item = read(v, "the item")?;
    Ok(Record {
        id,
        modified_at,
        body: Some(Body::Product(Box::new(Product {
            sku: item.sku.non_empty(),
            name: item.name.0,
            description: item.description.0,
            price: item.unit_price.0,
            sale_price: None,
            stock_quantity: None,
            status: if head.active == Some(false) {
                ProductStatus::Draft
            } else {
                ProductStatus::Active
            },
        }))),
        unknown: Vec::new(),
    })
}

/// An order from a sales receipt or an invoice. `items` names the items by id (for the
/// shipping and fee lines, and SKUs).
/// An item's name and SKU.
pub type ItemName = (String, Option<String>);

pub fn order(
    kind: Document,
    v: &Value,
    items: &dyn Fn(&str) -> Option<ItemName>,
) -> Result<Record, String> {
    let head = head(v)?;
    let id = document_id(kind, &head.id.0);
    let modified_at = modified(&head)?;
    if head_is_gone(&head) {
        return Ok(deleted(id, modified_at));
    }
    let d: wire::Document = read(v, "the document")?;
    let txn_day = NaiveDate::parse_from_str(d.txn_date.as_str(), "%Y-%m-%d").ok();
    let required = |m: Money, what: &str| m.0.ok_or_else(|| format!("{what} is missing"));
    let mut order = Order {
        number: d.doc_number.0,
        status: match kind {
            Document::SalesReceipt => "completed".into(),
            Document::Invoice if required(d.balance, "Balance")? == Decimal::ZERO => {
                "completed".into()
            }
            Document::Invoice => "pending".into(),
        },
        currency: d.currency_ref.value.0,
        customer_email: d.bill_email.address.non_empty(),
        billing: address(d.bill_addr, "", "", "", "", ""),
        shipping: address(d.ship_addr, "", "", "", "", ""),
        total_tax: d.txn_tax_detail.total_tax.or_zero(),
        total: required(d.total_amt, "TotalAmt")?,
        // The document's real creation instant; its transaction day as the day placed.
        placed_on: txn_day,
        placed_at: crate::platforms::fields::stamp(&head.meta.create_time)
            .ok()
            .flatten()
            .or_else(|| {
                txn_day
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|d| d.and_utc())
            }),
        ..Order::default()
    };
    for line in d.line {
        // Only the lines read here must have an amount (subtotal and other lines need not).
        let amount = money(&line.amount, "Line.Amount");
        match line.detail_type.as_str() {
            "SalesItemLineDetail" => {
                let amount = amount?;
                let detail = line.sales_item_line_detail;
                let item_id = detail.item_ref.value.0;
                let (item_name, sku) = items(&item_id).unwrap_or_default();
                let name = line.description.unwrap_or(item_name.clone());
                if item_name == SHIPPING_ITEM || item_name == FEE_ITEM {
                    let charge = ChargeLine {
                        name,
                        total: amount,
                        total_tax: Decimal::ZERO,
                    };
                    if item_name == SHIPPING_ITEM {
                        order.shipping_total = plus(order.shipping_total, amount, "shipping")?;
                        order.shipping_lines.push(charge);
                    } else {
                        order.fee_lines.push(charge);
                    }
                    continue;
                }
                order.lines.push(OrderLine {
                    sku,
                    name,
                    product_id: Some(item_id).filter(|s| !s.is_empty()),
                    quantity: crate::records::money(&detail.qty, "Qty")?.unwrap_or_default(),
                    subtotal: amount,
                    total: amount,
                    total_tax: Decimal::ZERO,
                });
            }
            "DiscountLineDetail" => {
                order.discount_total = plus(order.discount_total, amount?, "discount")?;
            }
            _ => {}
        }
    }
    // The discount comes off the product lines, in proportion, to the cent; the last line
    // takes what rounding leaves.
    let subtotal = order
        .lines
        .iter()
        .try_fold(Decimal::ZERO, |sum, l| plus(sum, l.subtotal, "the lines"))?;
    if order.discount_total > Decimal::ZERO && subtotal > Decimal::ZERO {
        let too_large = || "the discount is too large to share out".to_string();
        let mut left = order.discount_total;
        let n = order.lines.len();
        for (i, line) in order.lines.iter_mut().enumerate() {
            let share = if i + 1 == n {
                left
            } else {
                order
                    .discount_total
                    .checked_mul(line.subtotal)
                    .and_then(|d| d.checked_div(subtotal))
                    .ok_or_else(too_large)?
                    .round_dp(2)
            };
            left = left.checked_sub(share).ok_or_else(too_large)?;
            line.total = line
                .subtotal
                .checked_sub(share)
                .ok_or_else(too_large)?
                .normalize();
        }
    }
    if kind == Document::SalesReceipt {
        order.paid_at = order.placed_at;
    }
    order.discount_total = order.discount_total.normalize();
    order.shipping_total = order.shipping_total.normalize();
    Ok(Record {
        id,
        modified_at,
        body: Some(Body::Order(Box::new(order))),
        unknown: Vec::new(),
    })
}

/// The fields of a customer we own, for a create or a sparse update.
pub fn customer_json(c: &Customer, display_name: &str) -> Map<String, Value> {
    let given = if c.first_name.is_empty() {
        &c.billing.first_name
    } else {
        &c.first_name
    };
    let family = if c.last_name.is_empty() {
        &c.billing.last_name
    } else {
        &c.last_name
    };
    let mut out = Map::new();
    out.insert("DisplayName".into(), json!(display_name));
    out.insert("GivenName".into(), json!(given));
    out.insert("FamilyName".into(), json!(family));
    out.insert("CompanyName".into(), json!(c.billing.company));
    out.insert("PrimaryEmailAddr".into(), json!({"Address": c.email}));
    out.insert(
        "PrimaryPhone".into(),
        json!({"FreeFormNumber": c.billing.phone}),
    );
    out.insert("BillAddr".into(), address_json(&c.billing));
    out.insert("ShipAddr".into(), address_json(&c.shipping));
    out.insert("Active".into(), json!(true));
    out
}

/// The label QuickBooks shows (and keeps unique): the name, else the company, else the email.
pub fn display_name(c: &Customer) -> String {
    let name = format!("{} {}", c.first_name, c.last_name)
        .trim()
        .to_string();
    let name = if name.is_empty() {
        format!("{} {}", c.billing.first_name, c.billing.last_name)
            .trim()
            .to_string()
    } else {
        name
    };
    [name, c.billing.company.clone(), c.email.clone()]
        .into_iter()
        .find(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "Customer".into())
        .chars()
        .take(100)
        .collect()
}

pub fn product_json(p: &Product, name: &str, income_account: &str) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("Name".into(), json!(name));
    out.insert("Sku".into(), json!(p.sku));
    out.insert("Description".into(), json!(p.description));
    out.insert("Type".into(), json!("NonInventory"));
    out.insert("IncomeAccountRef".into(), json!({"value": income_account}));
    if let Some(price) = p.price {
        out.insert("UnitPrice".into(), number(price));
    }
    out.insert("Active".into(), json!(p.status == ProductStatus::Active));
    out
}

/// `Amount = Qty × UnitPrice` to the cent, as QuickBooks checks it: the unit price is the
/// amount over the quantity to seven places.
pub fn sales_line(amount: Decimal, qty: Decimal, item: &str, description: &str) -> Value {
    // A quantity the amount cannot be divided by (none, or one so small the unit price
    // overflows) is booked as one unit of the whole amount.
    let (qty, unit) = match amount.checked_div(qty) {
        Some(unit) if qty != Decimal::ZERO => (qty, unit.round_dp(7)),
        _ => (Decimal::ONE, amount.round_dp(7)),
    };
    json!({
        "DetailType": "SalesItemLineDetail",
        "Amount": number(amount.round_dp(2)),
        "Description": description,
        "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": number(qty), "UnitPrice": number(unit)},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amount_that_does_not_divide_evenly_still_satisfies_quickbooks_line_math() {
        let line = sales_line(Decimal::new(1000, 2), Decimal::from(3), "1", "x");
        let unit: Decimal = line["SalesItemLineDetail"]["UnitPrice"]
            .to_string()
            .parse()
            .unwrap();
        assert_eq!((unit * Decimal::from(3)).round_dp(2), Decimal::new(1000, 2));
    }

    #[test]
    fn a_sales_receipt_reads_as_a_paid_order_with_its_lines_shipping_fees_and_discount() {
        let v = json!({"Id": "9", "DocNumber": "1001", "TxnDate": "2026-11-01", "TotalAmt": 27.5,
            "MetaData": {"LastUpdatedTime": "2026-11-01T10:00:00-07:00"}, "TxnTaxDetail": {"TotalTax": 2.5},
            "Line": [
                {"DetailType": "SalesItemLineDetail", "Amount": 20, "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 2}},
                {"DetailType": "SalesItemLineDetail", "Amount": 5, "Description": "Flat rate", "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 1}},
                {"DetailType": "DiscountLineDetail", "Amount": 2},
                {"DetailType": "SalesItemLineDetail", "Amount": 2, "SalesItemLineDetail": {"ItemRef": {"value": "3"}, "Qty": 1}},
                {"DetailType": "SubTotalLineDetail", "Amount": 27}]});
        let names = |id: &str| match id {
            "1" => Some(("Mug".to_string(), Some("MUG-1".to_string()))),
            "2" => Some((SHIPPING_ITEM.to_string(), None)),
            "3" => Some((FEE_ITEM.to_string(), None)),
            _ => None,
        };
        let r = order(Document::SalesReceipt, &v, &names).unwrap();
        assert_eq!(r.id, "SalesReceipt:9");
        let Some(Body::Order(o)) = r.body else {
            panic!("not an order")
        };
        assert_eq!(o.lines[0].sku.as_deref(), Some("MUG-1"));
        assert_eq!(
            (o.lines[0].subtotal, o.lines[0].total),
            (Decimal::from(20), Decimal::from(18))
        );
        assert_eq!(o.shipping_lines[0].name, "Flat rate");
        assert_eq!(o.fee_lines.len(), 1);
        assert_eq!(o.total, Decimal::new(275, 1));
        assert!(o.paid_at.is_some());
    }

    fn receipt(total: &str, lines: &str) -> Vec<u8> {
        format!(
            r#"{{"Id": "9", "DocNumber": "1001", "TxnDate": "2026-11-01", {total}
            "MetaData": {{"LastUpdatedTime": "2026-11-01T10:00:00-07:00"}},
            "Line": [{lines}]}}"#
        )
        .into_bytes()
    }

    fn read(body: &[u8]) -> Result<Order, String> {
        let v = exact_json(body)?;
        let names = |_: &str| Some(("Mug".to_string(), Some("MUG-1".to_string())));
        match order(Document::SalesReceipt, &v, &names)?.body {
            Some(Body::Order(o)) => Ok(*o),
            _ => Err("not an order".into()),
        }
    }

    #[test]
    fn amounts_are_read_exactly_as_quickbooks_wrote_them_never_through_a_float() {
        let o = read(&receipt(
            r#""TotalAmt": 12345678901234.5678,"#,
            r#"{"DetailType": "SalesItemLineDetail", "Amount": 0.1, "Description": "a \"quoted\" -1.5 e", "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 3.0}},
               {"DetailType": "SalesItemLineDetail", "Amount": 1e2, "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": -1}}"#,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.total.to_string(), "12345678901234.5678");
        assert_eq!(o.lines[0].subtotal.to_string(), "0.1");
        assert_eq!(o.lines[0].name, r#"a "quoted" -1.5 e"#);
        // 3.0 and 3 are the same amount.
        assert_eq!(o.lines[0].quantity, Decimal::from(3));
        assert_eq!(o.lines[0].quantity.to_string(), "3");
        assert_eq!(o.lines[1].subtotal, Decimal::from(100));
        assert_eq!(o.lines[1].quantity, Decimal::from(-1));
    }

    #[test]
    fn a_missing_amount_is_an_error_and_an_overflow_fails_the_record_without_a_panic() {
        let line = r#"{"DetailType": "SalesItemLineDetail", "Amount": 5, "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1}}"#;
        let missing = read(&receipt(r#""TotalAmount": 5,"#, line)).unwrap_err();
        assert!(missing.contains("`TotalAmt`"), "{missing}");
        let no_line_amount = read(&receipt(
            r#""TotalAmt": 5,"#,
            r#"{"DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}"#,
        ))
        .unwrap_err();
        assert!(no_line_amount.contains("Line.Amount"), "{no_line_amount}");
        let huge = "79228162514264337593543950335";
        let discount = format!(r#"{{"DetailType": "DiscountLineDetail", "Amount": {huge}}}"#);
        let overflow = read(&receipt(
            r#""TotalAmt": 5,"#,
            &format!("{line}, {discount}, {discount}"),
        ))
        .unwrap_err();
        assert!(overflow.contains("too large"), "{overflow}");
        // A number QuickBooks could not have meant is a failed record, not a zero.
        let garbled = read(&receipt(r#""TotalAmt": 1.2.3,"#, line)).unwrap_err();
        assert!(garbled.contains("TotalAmt"), "{garbled}");
        assert!(exact_json(b"{\"TotalAmt\": }").is_err());
    }

    #[test]
    fn a_field_the_flow_does_not_carry_is_left_as_quickbooks_has_it() {
        let c = Customer {
            email: "jane@example.com".into(),
            first_name: "Jane".into(),
            ..Customer::default()
        };
        let sent = carried(
            customer_json(&c, "Jane"),
            &["email", "first_name", "last_name"],
        );
        let keys: Vec<&str> = sent.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["DisplayName", "FamilyName", "GivenName", "PrimaryEmailAddr"]
        );
    }
}
