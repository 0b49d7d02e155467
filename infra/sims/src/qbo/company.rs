//! One QuickBooks company's books: the entities the sync reads and writes, with the rules
//! QuickBooks enforces on them (`platforms.md` §2.7, §2.10, §2.11): `SyncToken` versions
//! (a stale one is fault 5010), display names unique across customers, vendors and
//! employees (6240), item names unique (6240), required fields (2020), references that
//! must exist (610), and line math (`Amount = Qty × UnitPrice`, 6070). Totals are computed
//! as QuickBooks does: the lines, less discount lines, plus `TxnTaxDetail.TotalTax`.
//! Amounts are decimals throughout.
//!
//! Money back and money in: a `RefundReceipt` is a sales receipt paid back (it needs the
//! `DepositToAccountRef` it is paid from), a `CreditMemo` a credit to a customer (it needs
//! the customer; its `Balance` and `RemainingCredit` are its total). A `Payment` needs the
//! customer and `TotalAmt`; each line applies an amount to an invoice of that customer
//! (`LinkedTxn`), never more than the invoice owes (6000); the rest is `UnappliedAmt`.
//! An invoice's `Balance` is its total less the payments applied to it, which it lists in
//! its `LinkedTxn`; a payment updates the invoices it pays (their `SyncToken` moves).

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::str::FromStr;

use super::query::{self, Query};

/// A QuickBooks fault: HTTP status, `Fault.type`, `Error.code`, message and detail.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub status: u16,
    pub kind: &'static str,
    pub code: String,
    pub message: String,
    pub detail: String,
}

impl Fault {
    pub fn validation(code: &str, message: &str, detail: impl Into<String>) -> Self {
        Fault {
            status: 400,
            kind: "ValidationFault",
            code: code.into(),
            message: message.into(),
            detail: detail.into(),
        }
    }

    pub fn body(&self) -> Value {
        json!({
            "Fault": {
                "Error": [{
                    "Message": self.message,
                    "Detail": self.detail,
                    "code": self.code,
                    "element": "",
                }],
                "type": self.kind,
            },
            "time": stamp(Utc::now()),
        })
    }
}

/// The entities the company keeps, by their names in queries and bodies.
pub const ENTITIES: &[&str] = &[
    "Customer",
    "Item",
    "Invoice",
    "SalesReceipt",
    "RefundReceipt",
    "CreditMemo",
    "Payment",
    "Account",
    "Employee",
    "Vendor",
];

/// Entities the API can write.
pub const WRITABLE: &[&str] = &[
    "Customer",
    "Item",
    "Invoice",
    "SalesReceipt",
    "RefundReceipt",
    "CreditMemo",
    "Payment",
];

/// The transactions: what can be deleted and voided, and has lines.
const TRANSACTIONS: &[&str] = &[
    "Invoice",
    "SalesReceipt",
    "RefundReceipt",
    "CreditMemo",
    "Payment",
];

/// The entity named in a URL (`salesreceipt`) or a body (`SalesReceipt`).
pub fn entity_name(text: &str) -> Option<&'static str> {
    ENTITIES
        .iter()
        .copied()
        .find(|e| e.eq_ignore_ascii_case(text))
}

/// A change, for CDC and webhooks.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub entity: &'static str,
    pub id: String,
    /// `Create`, `Update`, `Delete`, `Void`.
    pub operation: &'static str,
    pub at: DateTime<Utc>,
}

/// A time as QuickBooks writes it: with the company's offset (US Pacific, daylight time).
pub fn stamp(t: DateTime<Utc>) -> String {
    match chrono::FixedOffset::west_opt(7 * 3600) {
        Some(pacific) => t
            .with_timezone(&pacific)
            .to_rfc3339_opts(SecondsFormat::Millis, false),
        None => t.to_rfc3339_opts(SecondsFormat::Millis, false),
    }
}

fn money(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        Value::String(s) => Decimal::from_str(s).ok(),
        _ => None,
    }
}

fn number(d: Decimal) -> Value {
    let d = d.normalize();
    serde_json::from_str(&d.to_string()).unwrap_or(Value::Null)
}

/// Only transactions can be `done` (deleted, voided).
fn transaction_only(entity: &str, done: &str) -> Result<(), Fault> {
    if TRANSACTIONS.contains(&entity) {
        return Ok(());
    }
    Err(Fault::validation(
        "6000",
        "A business validation error has occurred",
        format!("{entity} cannot be {done}"),
    ))
}

#[derive(Default)]
pub struct Company {
    /// Entity → id → the entity as stored (deleted ones carry `status: Deleted`).
    data: BTreeMap<&'static str, BTreeMap<u64, Value>>,
    next_id: u64,
    pub changes: Vec<Change>,
}

impl Company {
    /// A company as a new QuickBooks sandbox has it: a chart of accounts, an employee and a
    /// vendor (whose names customers cannot take).
    pub fn new() -> Self {
        let mut c = Company {
            next_id: 100,
            ..Company::default()
        };
        let now = Utc::now();
        for (id, name, kind) in [
            (1, "Services", "Income"),
            (4, "Undeposited Funds", "Other Current Asset"),
            (79, "Sales of Product Income", "Income"),
            (80, "Cost of Goods Sold", "Cost of Goods Sold"),
        ] {
            c.put_raw(
                "Account",
                id,
                json!({"Name": name, "AccountType": kind, "Active": true}),
                now,
            );
        }
        c.put_raw(
            "Employee",
            55,
            json!({"DisplayName": "Emily Platt", "Active": true}),
            now,
        );
        c.put_raw(
            "Vendor",
            56,
            json!({"DisplayName": "Books by Bessie", "Active": true}),
            now,
        );
        c
    }

    fn put_raw(&mut self, entity: &'static str, id: u64, mut body: Value, now: DateTime<Utc>) {
        body["Id"] = json!(id.to_string());
        body["SyncToken"] = json!("0");
        body["domain"] = json!("QBO");
        body["sparse"] = json!(false);
        body["MetaData"] = json!({"CreateTime": stamp(now), "LastUpdatedTime": stamp(now)});
        self.data.entry(entity).or_default().insert(id, body);
    }

    pub fn get(&self, entity: &str, id: &str) -> Option<&Value> {
        let id: u64 = id.parse().ok()?;
        self.data
            .get(entity)?
            .get(&id)
            .filter(|v| v["status"] != "Deleted")
    }

    /// Every entity of a kind, deleted ones included (for admin views).
    pub fn all(&self, entity: &str) -> Vec<Value> {
        self.data
            .get(entity)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn live(&self, entity: &str) -> impl Iterator<Item = &Value> {
        self.data
            .get(entity)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|v| v["status"] != "Deleted")
    }

    /// Answers a query: `QueryResponse` as QuickBooks shapes it (no entity key when empty).
    pub fn query(&self, q: &Query) -> Result<Value, Fault> {
        let entity = entity_name(&q.entity)
            .filter(|e| *e == q.entity)
            .ok_or_else(|| {
                Fault::validation(
                    "4000",
                    "Error parsing query",
                    format!("QueryParserError: Invalid entity name: {}", q.entity),
                )
            })?;
        // Names lists hide inactive entries unless the query asks about `Active`.
        let mentions_active = q.conditions.iter().any(|c| c.property == "Active");
        let mut hits: Vec<&Value> = self
            .live(entity)
            .filter(|v| mentions_active || v["Active"] != json!(false))
            .filter(|v| q.conditions.iter().all(|c| c.holds(v)))
            .collect();
        if q.count {
            return Ok(
                json!({"QueryResponse": {"totalCount": hits.len()}, "time": stamp(Utc::now())}),
            );
        }
        hits.sort_by(|a, b| query::order(q, a, b));
        let page: Vec<Value> = hits
            .into_iter()
            .skip(q.start - 1)
            .take(q.max)
            .cloned()
            .collect();
        let mut response = Map::new();
        if !page.is_empty() {
            response.insert("startPosition".into(), json!(q.start));
            response.insert("maxResults".into(), json!(page.len()));
            response.insert(entity.into(), Value::Array(page));
        }
        Ok(json!({"QueryResponse": response, "time": stamp(Utc::now())}))
    }

    /// Change data capture: every entity of the kinds named changed after `since`, deleted
    /// ones as `{Id, status: Deleted, MetaData}`, at most `limit` objects in all.
    pub fn cdc(&self, entities: &[&'static str], since: DateTime<Utc>, limit: usize) -> Value {
        let mut left = limit;
        let mut groups = Vec::new();
        for entity in entities {
            let mut changed: Vec<Value> = self
                .data
                .get(entity)
                .into_iter()
                .flat_map(|m| m.values())
                .filter(|v| {
                    query::property(v, "MetaData.LastUpdatedTime")
                        .and_then(Value::as_str)
                        .and_then(query::parse_time)
                        .is_some_and(|t| t > since)
                })
                .take(left)
                .cloned()
                .collect();
            left -= changed.len();
            for v in &mut changed {
                if v["status"] == "Deleted" {
                    *v = json!({"Id": v["Id"], "status": "Deleted", "domain": "QBO", "MetaData": v["MetaData"]});
                }
            }
            let mut group = Map::new();
            if !changed.is_empty() {
                group.insert(entity.to_string(), Value::Array(changed));
            }
            groups.push(Value::Object(group));
        }
        json!({"CDCResponse": [{"QueryResponse": groups}], "time": stamp(Utc::now())})
    }

    fn name_taken(&self, name: &str, except: Option<(&str, &str)>) -> Option<String> {
        let wanted = name.trim().to_lowercase();
        ["Customer", "Vendor", "Employee"].iter().find_map(|e| {
            self.live(e)
                .find(|v| {
                    v["DisplayName"].as_str().map(|n| n.trim().to_lowercase())
                        == Some(wanted.clone())
                        && except != Some((e, v["Id"].as_str().unwrap_or_default()))
                })
                .map(|v| v["Id"].as_str().unwrap_or_default().to_string())
        })
    }

    fn reference_exists(&self, entity: &str, r: &Value) -> bool {
        r["value"]
            .as_str()
            .and_then(|id| self.get(entity, id))
            .is_some_and(|v| v["Active"] != json!(false))
    }

    /// Checks an entity about to be stored and fills what QuickBooks computes.
    fn check(&self, entity: &str, body: &mut Value, id: Option<&str>) -> Result<(), Fault> {
        let required = |field: &str| {
            Fault::validation(
                "2020",
                "Required param missing, need to supply the required value for the API",
                format!("Required parameter {field} is missing in the request"),
            )
        };
        let duplicate = |other: String| {
            Fault::validation(
                "6240",
                "Duplicate Name Exists Error",
                format!("The name supplied already exists. : Id={other}"),
            )
        };
        match entity {
            "Customer" => {
                if body["DisplayName"]
                    .as_str()
                    .is_none_or(|n| n.trim().is_empty())
                {
                    let parts: Vec<&str> = ["GivenName", "FamilyName"]
                        .iter()
                        .filter_map(|f| body[*f].as_str())
                        .filter(|s| !s.is_empty())
                        .collect();
                    if parts.is_empty() {
                        return Err(required("DisplayName"));
                    }
                    body["DisplayName"] = json!(parts.join(" "));
                }
                let name = body["DisplayName"].as_str().unwrap_or_default().to_string();
                if name.len() > 500 {
                    return Err(Fault::validation(
                        "6000",
                        "A business validation error has occurred",
                        "DisplayName is longer than 500 characters",
                    ));
                }
                if let Some(other) = self.name_taken(&name, id.map(|i| ("Customer", i))) {
                    return Err(duplicate(other));
                }
                body["FullyQualifiedName"] = json!(name);
                if body.get("Active").is_none() {
                    body["Active"] = json!(true);
                }
            }
            "Item" => {
                let name = body["Name"].as_str().unwrap_or_default().trim().to_string();
                if name.is_empty() {
                    return Err(required("Name"));
                }
                if let Some(other) = self
                    .live("Item")
                    .find(|v| {
                        v["Name"].as_str().map(|n| n.to_lowercase()) == Some(name.to_lowercase())
                            && v["Id"].as_str() != id
                    })
                    .map(|v| v["Id"].as_str().unwrap_or_default().to_string())
                {
                    return Err(duplicate(other));
                }
                let kind = body["Type"].as_str().unwrap_or("Service").to_string();
                if !matches!(kind.as_str(), "Service" | "NonInventory" | "Inventory") {
                    return Err(Fault::validation(
                        "2170",
                        "Invalid Enumeration",
                        format!("Invalid Type: {kind}"),
                    ));
                }
                body["Type"] = json!(kind);
                if body.get("IncomeAccountRef").is_none() {
                    return Err(required("IncomeAccountRef"));
                }
                if !self.reference_exists("Account", &body["IncomeAccountRef"]) {
                    return Err(Fault::validation("610", "Object Not Found", "Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees."));
                }
                body["FullyQualifiedName"] = json!(name);
                if body.get("Active").is_none() {
                    body["Active"] = json!(true);
                }
            }
            "Payment" => {
                if body.get("CustomerRef").is_none() {
                    return Err(required("CustomerRef"));
                }
                if !self.reference_exists("Customer", &body["CustomerRef"]) {
                    return Err(Fault::validation("610", "Object Not Found", "Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees."));
                }
                self.payment(body, id)?;
            }
            "Invoice" | "SalesReceipt" | "RefundReceipt" | "CreditMemo" => {
                if matches!(entity, "Invoice" | "CreditMemo") && body.get("CustomerRef").is_none() {
                    return Err(required("CustomerRef"));
                }
                if entity == "RefundReceipt" {
                    if body.get("DepositToAccountRef").is_none() {
                        return Err(required("DepositToAccountRef"));
                    }
                    if !self.reference_exists("Account", &body["DepositToAccountRef"]) {
                        return Err(Fault::validation("610", "Object Not Found", "Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees."));
                    }
                }
                if let Some(r) = body.get("CustomerRef") {
                    if !self.reference_exists("Customer", r) {
                        return Err(Fault::validation("610", "Object Not Found", "Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees."));
                    }
                }
                self.lines(body)?;
            }
            _ => {
                return Err(Fault::validation(
                    "2500",
                    "Invalid Reference Id",
                    format!("{entity} cannot be written"),
                ))
            }
        }
        Ok(())
    }

    /// Checks a payment's lines against the invoices they pay (of its customer, no more
    /// than each owes, not counting this payment itself); sets `UnappliedAmt`.
    fn payment(&self, body: &mut Value, id: Option<&str>) -> Result<(), Fault> {
        let bad = |detail: String| {
            Fault::validation("6000", "A business validation error has occurred", detail)
        };
        let total = body.get("TotalAmt").and_then(money).ok_or_else(|| {
            Fault::validation(
                "2020",
                "Required param missing, need to supply the required value for the API",
                "Required parameter TotalAmt is missing in the request",
            )
        })?;
        let mut applied = Decimal::ZERO;
        for (n, line) in body["Line"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let amount = line
                .get("Amount")
                .and_then(money)
                .ok_or_else(|| bad(format!("Line {}: Amount is missing", n + 1)))?;
            for linked in line["LinkedTxn"].as_array().cloned().unwrap_or_default() {
                let invoice_id = linked["TxnId"].as_str().unwrap_or_default();
                let invoice = self
                    .get("Invoice", invoice_id)
                    .filter(|_| linked["TxnType"] == "Invoice")
                    .ok_or_else(|| {
                        Fault::validation(
                            "610",
                            "Object Not Found",
                            format!("Line {}: the invoice {invoice_id} does not exist", n + 1),
                        )
                    })?;
                if invoice["CustomerRef"]["value"] != body["CustomerRef"]["value"] {
                    return Err(bad(format!(
                        "Line {}: the invoice is another customer's",
                        n + 1
                    )));
                }
                let owed = invoice.get("TotalAmt").and_then(money).unwrap_or_default()
                    - self.paid_toward(invoice_id, id);
                if amount > owed {
                    return Err(bad(format!(
                        "Line {}: {amount} is more than the invoice's balance of {owed}",
                        n + 1
                    )));
                }
            }
            applied += amount;
        }
        if applied > total {
            return Err(bad(
                "The payment's lines apply more than its TotalAmt".into()
            ));
        }
        body["UnappliedAmt"] = number(total - applied);
        body["TotalAmt"] = number(total);
        Ok(())
    }

    /// What live payments (but `except`) apply to an invoice, and those payments' ids.
    fn payments_of(&self, invoice_id: &str, except: Option<&str>) -> (Decimal, Vec<String>) {
        let mut paid = Decimal::ZERO;
        let mut ids = Vec::new();
        for payment in self.live("Payment") {
            if payment["Id"].as_str() == except || payment["TotalAmt"] == json!(0) {
                continue;
            }
            for line in payment["Line"].as_array().into_iter().flatten() {
                let pays =
                    line["LinkedTxn"].as_array().into_iter().flatten().any(|l| {
                        l["TxnId"].as_str() == Some(invoice_id) && l["TxnType"] == "Invoice"
                    });
                if pays {
                    paid += line.get("Amount").and_then(money).unwrap_or_default();
                    ids.push(payment["Id"].as_str().unwrap_or_default().to_string());
                }
            }
        }
        (paid, ids)
    }

    fn paid_toward(&self, invoice_id: &str, except: Option<&str>) -> Decimal {
        self.payments_of(invoice_id, except).0
    }

    /// An invoice's `Balance` and `LinkedTxn` from the payments applied to it.
    fn apply_payments(&self, invoice: &mut Value) {
        let id = invoice["Id"].as_str().unwrap_or_default().to_string();
        let (paid, payments) = self.payments_of(&id, None);
        let total = invoice.get("TotalAmt").and_then(money).unwrap_or_default();
        invoice["Balance"] = number((total - paid).max(Decimal::ZERO));
        let linked: Vec<Value> = payments
            .iter()
            .map(|p| json!({"TxnId": p, "TxnType": "Payment"}))
            .collect();
        match invoice.as_object_mut() {
            Some(o) if linked.is_empty() => {
                o.remove("LinkedTxn");
            }
            Some(o) => {
                o.insert("LinkedTxn".into(), Value::Array(linked));
            }
            None => {}
        }
    }

    /// Checks the lines' math and references; sets `TotalAmt`, `Balance` and the subtotal
    /// line.
    fn lines(&self, body: &mut Value) -> Result<(), Fault> {
        let lines = body["Line"].as_array().cloned().unwrap_or_default();
        let mut out = Vec::new();
        let mut subtotal = Decimal::ZERO;
        let mut discount = Decimal::ZERO;
        let mut sales = 0;
        for (n, mut line) in lines.into_iter().enumerate() {
            let kind = line["DetailType"].as_str().unwrap_or_default().to_string();
            let amount = line.get("Amount").map(|a| money(a).ok_or(()));
            let bad = |what: &str| {
                Fault::validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    format!("Line {}: {what}", n + 1),
                )
            };
            match kind.as_str() {
                "SalesItemLineDetail" => {
                    let amount = amount
                        .ok_or_else(|| bad("Amount is missing"))?
                        .map_err(|_| bad("Amount is not a number"))?;
                    let detail = &line["SalesItemLineDetail"];
                    if !self.reference_exists("Item", &detail["ItemRef"]) {
                        return Err(Fault::validation(
                            "610",
                            "Object Not Found",
                            format!("Line {}: the item does not exist or is inactive", n + 1),
                        ));
                    }
                    if let (Some(qty), Some(price)) = (
                        detail.get("Qty").and_then(money),
                        detail.get("UnitPrice").and_then(money),
                    ) {
                        if (qty * price).round_dp(2) != amount.round_dp(2) {
                            return Err(Fault::validation(
                                "6070",
                                "Amount is not equal to UnitPrice * Qty",
                                format!("Line {}: {qty} × {price} is not {amount}", n + 1),
                            ));
                        }
                    }
                    subtotal += amount;
                    sales += 1;
                    line["Amount"] = number(amount);
                }
                "DiscountLineDetail" => {
                    let amount = amount
                        .ok_or_else(|| bad("Amount is missing"))?
                        .map_err(|_| bad("Amount is not a number"))?;
                    if amount < Decimal::ZERO {
                        return Err(bad("a discount amount is positive"));
                    }
                    discount += amount;
                    line["Amount"] = number(amount);
                }
                "SubTotalLineDetail" => continue,
                "DescriptionOnly" => {}
                other => return Err(bad(&format!("unknown DetailType {other}"))),
            }
            line["Id"] = json!((out.len() + 1).to_string());
            line["LineNum"] = json!(out.len() + 1);
            out.push(line);
        }
        if sales == 0 {
            return Err(Fault::validation(
                "6000",
                "A business validation error has occurred",
                "You must fill out at least one split line.",
            ));
        }
        let tax = body["TxnTaxDetail"]
            .get("TotalTax")
            .and_then(money)
            .unwrap_or_default();
        let total = subtotal - discount + tax;
        if total < Decimal::ZERO {
            return Err(Fault::validation(
                "6000",
                "A business validation error has occurred",
                "Transaction total cannot be negative.",
            ));
        }
        out.push(json!({"Amount": number(subtotal), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}));
        body["Line"] = Value::Array(out);
        body["TotalAmt"] = number(total);
        if body.get("TxnTaxDetail").is_some() {
            body["TxnTaxDetail"]["TotalTax"] = number(tax);
        }
        body["Balance"] = if body.get("CustomerRef").is_some()
            && body["Balance"].is_null()
            && body.get("DepositToAccountRef").is_none()
            && body.get("PaymentMethodRef").is_none()
        {
            number(total)
        } else {
            json!(0)
        };
        Ok(())
    }

    /// Creates an entity; returns it as stored.
    pub fn create(
        &mut self,
        entity: &'static str,
        mut body: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        if !body.is_object() {
            return Err(Fault::validation(
                "2010",
                "Request has invalid or unsupported property",
                "the body is not an object",
            ));
        }
        if let Some(o) = body.as_object_mut() {
            for computed in ["Id", "SyncToken", "MetaData", "status", "sparse"] {
                o.remove(computed);
            }
        }
        if matches!(entity, "Invoice" | "CreditMemo") {
            body["Balance"] = Value::Null;
        }
        self.check(entity, &mut body, None)?;
        if matches!(entity, "SalesReceipt" | "RefundReceipt") {
            body["Balance"] = json!(0);
        }
        if entity == "CreditMemo" {
            body["RemainingCredit"] = body["Balance"].clone();
        }
        if let Some(o) = body.as_object_mut() {
            o.retain(|_, v| !v.is_null());
        }
        self.next_id += 1;
        let id = self.next_id;
        self.put_raw(entity, id, body, now);
        self.changes.push(Change {
            entity,
            id: id.to_string(),
            operation: "Create",
            at: now,
        });
        let created = self.data[entity][&id].clone();
        if entity == "Payment" {
            self.update_paid_invoices(&created, now);
        }
        Ok(created)
    }

    fn current(&self, entity: &'static str, body: &Value) -> Result<(u64, Value), Fault> {
        let id = body["Id"].as_str().ok_or_else(|| {
            Fault::validation(
                "2020",
                "Required param missing, need to supply the required value for the API",
                "Required parameter Id is missing in the request",
            )
        })?;
        let stored = self.get(entity, id).cloned().ok_or_else(|| Fault::validation("610", "Object Not Found", format!("Object Not Found : Something you're trying to use has been made inactive or deleted. {entity} Id={id}")))?;
        if body["SyncToken"].as_str() != stored["SyncToken"].as_str() {
            return Err(Fault::validation("5010", "Stale Object Error", format!("Stale Object Error : You and {} were working on this at the same time. {} finished before you did, so your work was not saved.", "QuickBooks user", "QuickBooks user")));
        }
        Ok((id.parse().unwrap_or_default(), stored))
    }

    fn bump(
        &mut self,
        entity: &'static str,
        id: u64,
        mut next: Value,
        operation: &'static str,
        now: DateTime<Utc>,
    ) -> Value {
        let token: u64 = next["SyncToken"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        next["SyncToken"] = json!((token + 1).to_string());
        next["MetaData"]["LastUpdatedTime"] = json!(stamp(now));
        next["sparse"] = json!(false);
        self.data
            .entry(entity)
            .or_default()
            .insert(id, next.clone());
        self.changes.push(Change {
            entity,
            id: id.to_string(),
            operation,
            at: now,
        });
        next
    }

    /// Updates an entity: a full replace, or with `sparse: true` only the fields sent.
    /// `SyncToken` must be the current one (else fault 5010).
    pub fn update(
        &mut self,
        entity: &'static str,
        body: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        let (id, stored) = self.current(entity, &body)?;
        let mut next = if body["sparse"] == json!(true) {
            let mut merged = stored.clone();
            if let (Some(m), Some(b)) = (merged.as_object_mut(), body.as_object()) {
                for (k, v) in b {
                    m.insert(k.clone(), v.clone());
                }
            }
            merged
        } else {
            let mut replaced = body.clone();
            for keep in ["Id", "SyncToken", "MetaData", "domain"] {
                replaced[keep] = stored[keep].clone();
            }
            replaced
        };
        if matches!(
            entity,
            "Invoice" | "SalesReceipt" | "RefundReceipt" | "CreditMemo"
        ) {
            next["Balance"] = if matches!(entity, "Invoice" | "CreditMemo") {
                Value::Null
            } else {
                json!(0)
            };
        }
        let id_text = id.to_string();
        self.check(entity, &mut next, Some(&id_text))?;
        if entity == "Invoice" {
            self.apply_payments(&mut next);
        }
        if entity == "CreditMemo" {
            next["RemainingCredit"] = next["Balance"].clone();
        }
        next["SyncToken"] = stored["SyncToken"].clone();
        next["MetaData"] = stored["MetaData"].clone();
        Ok(self.bump(entity, id, next, "Update", now))
    }

    /// The invoices a payment pays, with their balance and links brought up to date.
    fn update_paid_invoices(&mut self, payment: &Value, now: DateTime<Utc>) {
        let ids: Vec<String> = payment["Line"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| l["LinkedTxn"].as_array().cloned().unwrap_or_default())
            .filter(|l| l["TxnType"] == "Invoice")
            .filter_map(|l| l["TxnId"].as_str().map(str::to_string))
            .collect();
        for id in ids {
            let Some(mut invoice) = self.get("Invoice", &id).cloned() else {
                continue;
            };
            self.apply_payments(&mut invoice);
            let Ok(number) = id.parse::<u64>() else {
                continue;
            };
            self.bump("Invoice", number, invoice, "Update", now);
        }
    }

    /// `operation=delete`: transactions are deleted; names lists cannot be (QuickBooks
    /// makes them inactive instead, with an update).
    pub fn delete(
        &mut self,
        entity: &'static str,
        body: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        transaction_only(entity, "deleted; make it inactive")?;
        let (id, stored) = self.current(entity, &body)?;
        let mut gone = stored.clone();
        gone["status"] = json!("Deleted");
        self.bump(entity, id, gone, "Delete", now);
        if entity == "Payment" {
            // What it paid is owed again.
            self.update_paid_invoices(&stored, now);
        }
        Ok(json!({"Id": stored["Id"], "status": "Deleted", "domain": "QBO"}))
    }

    /// `operation=void`: the transaction stays, with zero amounts.
    pub fn void(
        &mut self,
        entity: &'static str,
        body: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        transaction_only(entity, "voided")?;
        let (id, mut stored) = self.current(entity, &body)?;
        let before = stored.clone();
        if let Some(lines) = stored["Line"].as_array_mut() {
            for line in lines {
                line["Amount"] = json!(0);
                if let Some(d) = line.get_mut("SalesItemLineDetail") {
                    d["Qty"] = json!(0);
                }
            }
        }
        stored["TotalAmt"] = json!(0);
        stored["Balance"] = json!(0);
        let note = stored["PrivateNote"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        stored["PrivateNote"] = json!(format!("Voided - {note}")
            .trim_end_matches(" - ")
            .to_string());
        let voided = self.bump(entity, id, stored, "Void", now);
        if entity == "Payment" {
            // What it paid is owed again.
            self.update_paid_invoices(&before, now);
        }
        Ok(voided)
    }

    /// A change made in QuickBooks' own screens (no `SyncToken` check): the entity given
    /// with `Id` is merged into the stored one; without, it is created.
    pub fn edit(
        &mut self,
        entity: &'static str,
        body: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        match body["Id"]
            .as_str()
            .and_then(|id| self.get(entity, id))
            .cloned()
        {
            Some(stored) => {
                let mut sparse = body.clone();
                sparse["SyncToken"] = stored["SyncToken"].clone();
                sparse["sparse"] = json!(true);
                self.update(entity, sparse, now)
            }
            None => self.create(entity, body, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn company_with_item() -> (Company, String, String) {
        let mut c = Company::new();
        let now = Utc::now();
        let cust = c
            .create("Customer", json!({"DisplayName": "Jane Doe"}), now)
            .unwrap();
        let item = c.create("Item", json!({"Name": "SKU-1", "Type": "NonInventory", "IncomeAccountRef": {"value": "79"}}), now).unwrap();
        (
            c,
            cust["Id"].as_str().unwrap().into(),
            item["Id"].as_str().unwrap().into(),
        )
    }

    #[test]
    fn a_display_name_used_by_a_vendor_or_another_customer_is_fault_6240() {
        let (mut c, _, _) = company_with_item();
        for name in ["jane doe", "Books by Bessie", "Emily Platt"] {
            let e = c
                .create("Customer", json!({"DisplayName": name}), Utc::now())
                .unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "6240"), "{name}");
        }
    }

    #[test]
    fn an_update_with_an_old_sync_token_is_fault_5010_and_a_sparse_one_keeps_other_fields() {
        let (mut c, id, _) = company_with_item();
        let now = Utc::now();
        let v1 = c
            .update(
                "Customer",
                json!({"Id": id, "SyncToken": "0", "sparse": true, "Notes": "a"}),
                now,
            )
            .unwrap();
        assert_eq!(
            (v1["SyncToken"].as_str(), v1["DisplayName"].as_str()),
            (Some("1"), Some("Jane Doe"))
        );
        let stale = c
            .update(
                "Customer",
                json!({"Id": id, "SyncToken": "0", "sparse": true, "Notes": "b"}),
                now,
            )
            .unwrap_err();
        assert_eq!(stale.code, "5010");
    }

    #[test]
    fn totals_are_lines_less_discounts_plus_tax_and_bad_line_math_is_refused() {
        let (mut c, cust, item) = company_with_item();
        let line = |amount: f64, qty: f64, price: f64| json!({"DetailType": "SalesItemLineDetail", "Amount": amount, "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": qty, "UnitPrice": price}});
        let receipt = c.create("SalesReceipt", json!({"CustomerRef": {"value": cust}, "Line": [line(20.0, 2.0, 10.0), line(5.55, 1.0, 5.55), {"DetailType": "DiscountLineDetail", "Amount": 2.5, "DiscountLineDetail": {"PercentBased": false}}], "TxnTaxDetail": {"TotalTax": 1.1}}), Utc::now()).unwrap();
        assert_eq!(receipt["TotalAmt"], json!(24.15));
        let bad = c
            .create(
                "Invoice",
                json!({"CustomerRef": {"value": cust}, "Line": [line(21.0, 2.0, 10.0)]}),
                Utc::now(),
            )
            .unwrap_err();
        assert_eq!(bad.code, "6070");
    }

    #[test]
    fn a_deleted_invoice_leaves_queries_and_shows_in_cdc_as_deleted() {
        let (mut c, cust, item) = company_with_item();
        let since = Utc::now() - chrono::Duration::seconds(1);
        let inv = c.create("Invoice", json!({"CustomerRef": {"value": cust}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1, "SalesItemLineDetail": {"ItemRef": {"value": item}}}]}), Utc::now()).unwrap();
        c.delete(
            "Invoice",
            json!({"Id": inv["Id"], "SyncToken": "0"}),
            Utc::now(),
        )
        .unwrap();
        let q = query::parse("select * from Invoice").unwrap();
        assert_eq!(c.query(&q).unwrap()["QueryResponse"], json!({}));
        let cdc = c.cdc(&["Invoice"], since, 1000);
        assert_eq!(
            cdc["CDCResponse"][0]["QueryResponse"][0]["Invoice"][0]["status"],
            "Deleted"
        );
    }
}
