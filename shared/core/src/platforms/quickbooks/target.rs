//! QuickBooks as a target: customers, items, and orders as sales receipts or invoices.
//!
//! Never two documents for one order, whatever is lost on the way:
//! 1. the index's link (the engine hands it in as the write's `target_id`);
//! 2. else the natural key, looked up before anything is created: a customer's email, then
//!    its display name (only a customer without an email, or with the same one); an item's
//!    SKU; a document's `DocNumber`;
//! 3. every write carries a `requestid` derived from the source record and revision (the
//!    body we send), so a retry of a write whose answer was lost gets the first answer back
//!    instead of doing it again.
//!
//! Writes go in batches of up to [`BATCH`]; lookups of a page go in one batch of queries.
//! Updates are sparse (`sparse: true`) with the current `SyncToken`; a stale one (fault 5010)
//! is read again and the update retried once. A display name (or item name) QuickBooks
//! already has elsewhere (fault 6240) gets a deterministic suffix naming the source record.
//! Deleted customers and products are made inactive (QuickBooks cannot delete them);
//! deleted, cancelled or failed orders void their document (which keeps the audit trail).
//! Refunds and payments follow the document ([`super::settlements`]): a refunded order keeps
//! its document and gets refund documents. A product without a SKU is refused: it could not
//! be matched again on a retry.

use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::HashMap;

use super::connector::{batch_answers, Body, Fault, OrdersAs, QboConnector, TaxRule, BATCH};
use super::held::Held;
use super::mapping::{
    self, document_id, split_document_id, Document, FEE_ITEM, REFUND_ITEM, SHIPPING_ITEM,
    UNNAMED_ITEM,
};
use super::settlements;
use crate::domain::EntityType;
use crate::ports::{Method, Origin, PlatformError, Target, Write, WriteOutcome};
use crate::records::{Body as RecordBody, Customer, Decimal, Order, Product, Refund};

/// One write to QuickBooks.
pub(super) struct Op {
    entity: &'static str,
    /// `create`, `update` or `void`.
    operation: &'static str,
    body: Value,
    /// The id of the entity an update or void writes (empty for a create).
    id: String,
    /// What makes the `requestid`: the source record and what we send.
    key: String,
    /// On a name clash (6240): the field, and the name to use instead.
    rename: Option<(&'static str, String)>,
    /// On a name clash of a create: the query that finds the same record by its natural key
    /// (created meanwhile by another stream), which is then updated instead.
    rematch: Option<String>,
}

impl Op {
    pub(super) fn new(
        entity: &'static str,
        operation: &'static str,
        body: Value,
        origin: &str,
    ) -> Self {
        let key = format!("{origin}|{entity}|{operation}|{body}");
        Op {
            entity,
            operation,
            body,
            id: String::new(),
            key,
            rename: None,
            rematch: None,
        }
    }

    /// The void of what QuickBooks holds.
    pub(super) fn void(entity: &'static str, existing: &Held, origin: &str) -> Self {
        Op {
            id: existing.id.clone(),
            ..Op::new(entity, "void", existing.version(), origin)
        }
    }

    fn rematched_by(mut self, field: &str, value: &str) -> Self {
        if !value.trim().is_empty() {
            self.rematch = Some(format!(
                "SELECT * FROM {} WHERE {field} = {} AND Active IN (true, false)",
                self.entity,
                super::connector::quoted(value.trim())
            ));
        }
        self
    }

    fn renamed(mut self, field: &'static str, name: String) -> Self {
        self.rename = Some((field, name));
        self
    }
}

/// What to do for one write.
pub(super) enum Plan {
    Op(Op),
    Done(WriteOutcome),
}

/// The name with a suffix that names the source record: `Jane Doe (woocommerce-17)`.
fn suffixed(name: &str, origin: &Origin) -> String {
    let suffix = format!(" ({}-{})", origin.platform, origin.id);
    let room = 100usize.saturating_sub(suffix.chars().count());
    format!("{}{suffix}", name.chars().take(room).collect::<String>())
}

pub(super) fn lower(text: &str) -> String {
    text.trim().to_lowercase()
}

/// A sparse update of `existing` with `fields`.
pub(super) fn update(
    entity: &'static str,
    existing: &Held,
    mut fields: serde_json::Map<String, Value>,
    origin: &str,
) -> Op {
    fields.insert("Id".into(), json!(existing.id));
    fields.insert("SyncToken".into(), json!(existing.sync_token));
    fields.insert("sparse".into(), json!(true));
    Op {
        id: existing.id.clone(),
        ..Op::new(entity, "update", Value::Object(fields), origin)
    }
}

fn deactivate(entity: &'static str, existing: Option<&Held>, origin: &str) -> Plan {
    match existing {
        None => Plan::Done(WriteOutcome::Skipped),
        Some(e) if !e.active => Plan::Done(WriteOutcome::Written {
            target_id: e.id.clone(),
        }),
        Some(e) => {
            let mut fields = serde_json::Map::new();
            fields.insert("Active".into(), json!(false));
            Plan::Op(update(entity, e, fields, origin))
        }
    }
}

impl QboConnector {
    /// Runs the plans: the ops in batches, then the fix-ups faults call for.
    pub(super) async fn apply(&self, plans: Vec<Plan>) -> Result<Vec<WriteOutcome>, PlatformError> {
        Ok(self
            .apply_answered(plans)
            .await?
            .into_iter()
            .map(|(outcome, _)| outcome)
            .collect())
    }

    /// As [`Self::apply`], with what QuickBooks answered for each entity written.
    async fn apply_answered(
        &self,
        plans: Vec<Plan>,
    ) -> Result<Vec<(WriteOutcome, Option<Held>)>, PlatformError> {
        let mut outcomes: Vec<Option<(WriteOutcome, Option<Held>)>> =
            Vec::with_capacity(plans.len());
        let mut ops = Vec::new();
        for (i, plan) in plans.into_iter().enumerate() {
            match plan {
                Plan::Done(outcome) => outcomes.push(Some((outcome, None))),
                Plan::Op(op) => {
                    outcomes.push(None);
                    ops.push((i, op));
                }
            }
        }
        // Batch items are create, update or delete: voids go on their own.
        let (voids, ops): (Vec<_>, Vec<_>) =
            ops.into_iter().partition(|(_, op)| op.operation == "void");
        let chunks: Vec<&[(usize, Op)]> = ops.chunks(BATCH).chain(voids.chunks(1)).collect();
        for chunk in chunks {
            let answers = self.batch(chunk.iter().map(|(_, op)| op).collect()).await?;
            for ((i, op), answer) in chunk.iter().zip(answers) {
                let answer = match answer {
                    Err(fault) => self.fix(op, fault).await?,
                    ok => ok,
                };
                outcomes[*i] = Some(match answer.map(|v| Held::read(&v, op.entity)) {
                    // Written, but its answer does not read: the record fails, and its
                    // next run finds what was made by its natural key.
                    Ok(Err(e)) => (
                        WriteOutcome::refused(format!(
                            "QuickBooks answered the write with what we cannot read: {e}"
                        )),
                        None,
                    ),
                    Ok(Ok(entity)) => (
                        WriteOutcome::Written {
                            target_id: match Document::parse(op.entity) {
                                Some(kind) => document_id(kind, &entity.id),
                                None => entity.id.clone(),
                            },
                        },
                        Some(entity),
                    ),
                    Err(fault) if fault.is_transient() => {
                        (WriteOutcome::Unavailable(fault.text()), None)
                    }
                    Err(fault) => (WriteOutcome::Failed(fault.record_error(fault.text())), None),
                });
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or((WriteOutcome::Skipped, None)))
            .collect())
    }

    /// The ops as one batch request (one op: a plain write), each answer in order.
    async fn batch(&self, ops: Vec<&Op>) -> Result<Vec<Result<Value, Fault>>, PlatformError> {
        if let [op] = ops.as_slice() {
            return Ok(vec![self.write_one(op, "").await?]);
        }
        let keys: Vec<&str> = ops.iter().map(|op| op.key.as_str()).collect();
        let items: Vec<Value> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| json!({"bId": format!("b{i}"), "operation": op.operation, op.entity: op.body}))
            .collect();
        let answer = self
            .call(
                Method::Post,
                "batch",
                &[("requestid", self.request_id_now(&keys.join("\n")))],
                Body::Json(json!({"BatchItemRequest": items})),
            )
            .await?;
        let answer = match answer {
            Ok(v) => v,
            Err(fault) => return Ok(ops.iter().map(|_| Err(fault.clone())).collect()),
        };
        let by_id = batch_answers(&answer)?;
        Ok(ops
            .iter()
            .enumerate()
            .map(|(i, op)| match by_id.get(&format!("b{i}")) {
                Some(item) => match (item.get("Fault"), item.get(op.entity)) {
                    (Some(fault), _) => Err(Fault::read(200, fault)),
                    (None, Some(entity)) => Ok(entity.clone()),
                    (None, None) => Err(Fault::unreadable(op.entity)),
                },
                None => Err(Fault {
                    status: 200,
                    kind: "SystemFault".into(),
                    code: "10000".into(),
                    message: "the batch answer left this item out".into(),
                    detail: String::new(),
                }),
            })
            .collect())
    }

    /// One write on its own; `salt` makes its `requestid` differ from an earlier try's.
    async fn write_one(&self, op: &Op, salt: &str) -> Result<Result<Value, Fault>, PlatformError> {
        let mut query = vec![(
            "requestid",
            self.request_id_now(&format!("{}{salt}", op.key)),
        )];
        if op.operation == "void" {
            query.push(("operation", "void".to_string()));
        }
        let answer = self
            .call(
                Method::Post,
                &op.entity.to_lowercase(),
                &query,
                Body::Json(op.body.clone()),
            )
            .await?;
        Ok(answer.and_then(|v| {
            v.get(op.entity)
                .cloned()
                .ok_or_else(|| Fault::unreadable(op.entity))
        }))
    }

    /// What a fault calls for: a stale `SyncToken` is read again and the write retried once;
    /// a name clash retried once with the suffixed name; a service fault retried once.
    async fn fix(&self, op: &Op, fault: Fault) -> Result<Result<Value, Fault>, PlatformError> {
        if fault.is_stale() {
            let id = op.id.as_str();
            let current = self
                .call(
                    Method::Get,
                    &format!("{}/{id}", op.entity.to_lowercase()),
                    &[],
                    Body::None,
                )
                .await?;
            let token = match current {
                Ok(v) => match v.get(op.entity).map(|e| Held::read(e, op.entity)) {
                    Some(Ok(held)) => json!(held.sync_token),
                    _ => return Ok(Err(Fault::unreadable(op.entity))),
                },
                Err(f) => return Ok(Err(f)),
            };
            tracing::info!(realm = %self.realm, entity = op.entity, id, "stale SyncToken; read again and retrying once");
            let mut body = op.body.clone();
            body["SyncToken"] = token.clone();
            let retry = Op {
                body,
                key: format!("{}|stale:{token}", op.key),
                id: op.id.clone(),
                rename: None,
                rematch: None,
                ..*op
            };
            return self.write_one(&retry, "").await;
        }
        if fault.is_duplicate_name() {
            if let Some(statement) = op.rematch.as_ref().filter(|_| op.operation == "create") {
                let found = Held::all(self.query(op.entity, statement).await?, op.entity)?;
                if let Some(existing) = found.first() {
                    tracing::info!(realm = %self.realm, entity = op.entity, "name clash with the same record created meanwhile; updating it");
                    let fields = op.body.as_object().cloned().unwrap_or_default();
                    let retry = update(op.entity, existing, fields, &op.key);
                    return self.write_one(&retry, "").await;
                }
            }
            if let Some((field, name)) = &op.rename {
                let mut body = op.body.clone();
                body[*field] = json!(name);
                let retry = Op {
                    body,
                    key: format!("{}|renamed", op.key),
                    id: op.id.clone(),
                    rename: None,
                    rematch: None,
                    ..*op
                };
                return self.write_one(&retry, "").await;
            }
        }
        if fault.is_transient() {
            // A create QuickBooks may have committed is not sent again under another id (a
            // second document); the record fails, and the next run's look-up by natural key
            // finds it if it was made. An update can be: it is the same change twice.
            if op.operation == "create" {
                return Ok(Err(fault));
            }
            return self.write_one(op, "|again").await;
        }
        Ok(Err(fault))
    }

    async fn write_customers(&self, writes: &[Write]) -> Result<Vec<WriteOutcome>, PlatformError> {
        let linked: Vec<String> = writes.iter().filter_map(|w| w.target_id.clone()).collect();
        let customers: Vec<Option<&Customer>> = writes
            .iter()
            .map(|w| match &w.record.body {
                Some(RecordBody::Customer(c)) => Some(c.as_ref()),
                _ => None,
            })
            .collect();
        let emails: Vec<String> = customers
            .iter()
            .flatten()
            .map(|c| c.email.trim().to_string())
            .collect();
        let names: Vec<String> = customers
            .iter()
            .flatten()
            .map(|c| mapping::display_name(c))
            .collect();
        let mut statements = Self::lookups("Customer", "Id", &linked);
        statements.extend(Self::lookups("Customer", "PrimaryEmailAddr", &emails));
        statements.extend(Self::lookups("Customer", "DisplayName", &names));
        let found = self.held(statements).await?;
        let by_id: HashMap<&str, &Held> = found.iter().map(|v| (v.id.as_str(), v)).collect();
        let by_email: HashMap<String, &Held> = found
            .iter()
            .filter_map(|v| Some((lower(v.email.as_deref()?), v)))
            .filter(|(e, _)| !e.is_empty())
            .collect();
        let by_name: HashMap<String, &Held> = found
            .iter()
            .filter_map(|v| Some((lower(v.display_name.as_deref()?), v)))
            .collect();
        let mut plans = Vec::new();
        let mut taken = std::collections::HashSet::new();
        for (w, customer) in writes.iter().zip(&customers) {
            let origin = w.origin.key();
            let existing = w
                .target_id
                .as_ref()
                .and_then(|id| by_id.get(id.as_str()))
                .copied()
                .or_else(|| {
                    let c = customer.as_ref()?;
                    by_email
                        .get(&lower(&c.email))
                        .copied()
                        .filter(|_| !c.email.trim().is_empty())
                        .or_else(|| {
                            by_name
                                .get(&lower(&mapping::display_name(c)))
                                .copied()
                                .filter(|v| {
                                    let theirs = lower(v.email.as_deref().unwrap_or_default());
                                    theirs.is_empty() || theirs == lower(&c.email)
                                })
                        })
                });
            let Some(c) = customer else {
                plans.push(deactivate("Customer", existing, &origin));
                continue;
            };
            let name = mapping::display_name(c);
            let alternative = suffixed(&name, &w.origin);
            let name = match existing {
                // A customer that took the suffixed name keeps it (no flip-flop back to a
                // clash).
                Some(e) if e.display_name.as_deref() == Some(alternative.as_str()) => {
                    alternative.clone()
                }
                // Someone else has the name already (or another record of this page takes
                // it): the suffixed name at once, rather than a 6240 and a second call.
                None if by_name.contains_key(&lower(&name)) || taken.contains(&lower(&name)) => {
                    alternative.clone()
                }
                _ => name,
            };
            taken.insert(lower(&name));
            let fields = mapping::carried(mapping::customer_json(c, &name), &w.fields);
            let op = match existing {
                Some(e) => update("Customer", e, fields, &origin),
                None => Op::new("Customer", "create", Value::Object(fields), &origin)
                    .rematched_by("PrimaryEmailAddr", &c.email),
            };
            plans.push(Plan::Op(op.renamed("DisplayName", alternative)));
        }
        self.apply(plans).await
    }

    fn income_account(&self) -> Result<String, String> {
        self.books.income_account.clone().ok_or_else(|| {
            "the QuickBooks connection has no income_account (the id of the income account products are booked to)".to_string()
        })
    }

    async fn write_products(&self, writes: &[Write]) -> Result<Vec<WriteOutcome>, PlatformError> {
        let linked: Vec<String> = writes.iter().filter_map(|w| w.target_id.clone()).collect();
        let products: Vec<Option<&Product>> = writes
            .iter()
            .map(|w| match &w.record.body {
                Some(RecordBody::Product(p)) => Some(p.as_ref()),
                _ => None,
            })
            .collect();
        let skus: Vec<String> = products
            .iter()
            .flatten()
            .filter_map(|p| p.sku.clone())
            .collect();
        let mut statements = Self::lookups("Item", "Id", &linked);
        statements.extend(Self::lookups("Item", "Sku", &skus));
        let found = self.held(statements).await?;
        let by_id: HashMap<&str, &Held> = found.iter().map(|v| (v.id.as_str(), v)).collect();
        let by_sku: HashMap<&str, &Held> = found
            .iter()
            .filter_map(|v| Some((v.sku.as_deref()?, v)))
            .collect();
        let mut plans = Vec::new();
        for (w, product) in writes.iter().zip(&products) {
            let origin = w.origin.key();
            let existing = w
                .target_id
                .as_ref()
                .and_then(|id| by_id.get(id.as_str()))
                .or_else(|| {
                    product
                        .and_then(|p| p.sku.as_deref())
                        .and_then(|s| by_sku.get(s))
                })
                .copied();
            let Some(p) = product else {
                plans.push(deactivate("Item", existing, &origin));
                continue;
            };
            let Some(sku) = p.sku.as_ref().filter(|s| !s.is_empty()) else {
                plans.push(Plan::Done(WriteOutcome::Failed(crate::ports::RecordError::new(
                    crate::ports::MISSING_KEY,
                    "a product without a SKU cannot be matched in QuickBooks, so it is not created (a retry could duplicate it)",
                ))));
                continue;
            };
            let alternative = format!("{} ({sku})", p.name.chars().take(80).collect::<String>());
            let name = match existing {
                Some(e) if e.name.as_deref() == Some(alternative.as_str()) => alternative.clone(),
                _ => p.name.chars().take(100).collect(),
            };
            let plan = match existing {
                Some(e) => {
                    let mut fields =
                        mapping::carried(mapping::product_json(p, &name, ""), &w.fields);
                    // The item's type and account are the bookkeeper's once it exists.
                    fields.remove("Type");
                    fields.remove("IncomeAccountRef");
                    Plan::Op(update("Item", e, fields, &origin).renamed("Name", alternative))
                }
                None => match self.income_account() {
                    Ok(account) => Plan::Op(
                        Op::new(
                            "Item",
                            "create",
                            Value::Object(mapping::product_json(p, &name, &account)),
                            &origin,
                        )
                        .rematched_by("Sku", sku)
                        .renamed("Name", alternative),
                    ),
                    Err(e) => Plan::Done(WriteOutcome::refused(e)),
                },
            };
            plans.push(plan);
        }
        self.apply(plans).await
    }
}

/// What an order needs from QuickBooks before its document can be written.
pub(super) struct OrderRefs<'a> {
    documents: HashMap<(Document, String), &'a Held>,
    /// Documents by `DocNumber` (several may share one).
    by_number: HashMap<String, Vec<(Document, &'a Held)>>,
    /// Refund documents by `DocNumber`, with their entity.
    pub(super) refund_documents: HashMap<String, Vec<(&'static str, &'a Held)>>,
    customers_by_email: HashMap<String, String>,
    customers_by_name: HashMap<String, String>,
    pub(super) items_by_sku: HashMap<String, String>,
    pub(super) items_by_name: HashMap<String, String>,
    /// The company's Undeposited Funds account, when a refund receipt may need it.
    pub(super) undeposited_funds: Option<String>,
}

impl<'a> OrderRefs<'a> {
    /// What the lookups of [`QboConnector::order_lookups`] found, by what it is.
    fn from_found(found: &'a [(String, Held)]) -> Self {
        let mut refs = OrderRefs {
            documents: HashMap::new(),
            by_number: HashMap::new(),
            refund_documents: HashMap::new(),
            customers_by_email: HashMap::new(),
            customers_by_name: HashMap::new(),
            items_by_sku: HashMap::new(),
            items_by_name: HashMap::new(),
            undeposited_funds: None,
        };
        for (entity, v) in found {
            let refund_entity = settlements::REFUND_ENTITIES
                .into_iter()
                .find(|e| e == entity);
            if let Some(refund_entity) = refund_entity {
                if let Some(n) = &v.doc_number {
                    refs.refund_documents
                        .entry(n.clone())
                        .or_default()
                        .push((refund_entity, v));
                }
                continue;
            }
            if entity == "Account" {
                if v.active {
                    refs.undeposited_funds = Some(v.id.clone());
                }
                continue;
            }
            match Document::parse(entity) {
                Some(kind) => {
                    refs.documents.insert((kind, v.id.clone()), v);
                    if let Some(n) = &v.doc_number {
                        // Several documents may share a number (the company's own, another
                        // store's made while two flows raced for one prefix).
                        refs.by_number.entry(n.clone()).or_default().push((kind, v));
                    }
                }
                None if entity == "Customer" => {
                    if let Some(e) = &v.email {
                        refs.customers_by_email.insert(lower(e), v.id.clone());
                    }
                    if let Some(n) = &v.display_name {
                        refs.customers_by_name.insert(lower(n), v.id.clone());
                    }
                }
                None => {
                    if let Some(s) = &v.sku {
                        refs.items_by_sku.insert(s.clone(), v.id.clone());
                    }
                    if let Some(n) = &v.name {
                        refs.items_by_name.insert(lower(n), v.id.clone());
                    }
                }
            }
        }
        refs
    }
}

impl<'a> OrderRefs<'a> {
    /// The document the record index links the write's order to, as QuickBooks holds it.
    pub(super) fn linked(&self, w: &Write) -> Option<(Document, &'a Held)> {
        let (kind, id) = split_document_id(w.target_id.as_deref()?)?;
        self.documents
            .get(&(kind, id.to_string()))
            .map(|held| (kind, *held))
    }
}

/// Whether an order in this state keeps no document (its document is voided). A refunded
/// order keeps its document: its refunds are documents of their own.
pub(super) fn voids(order: &Order) -> bool {
    matches!(order.status.as_str(), "cancelled" | "failed")
}

impl QboConnector {
    /// The order's `DocNumber`: the flow's prefix (the company's old setting for a flow
    /// made before flows had one) and the order's number.
    pub(super) fn doc_number(&self, write: &Write, order: &Order) -> Result<String, String> {
        let prefix = write
            .number_prefix
            .as_deref()
            .unwrap_or(&self.books.doc_number_prefix);
        let number = format!("{prefix}{}", order.number);
        if number.is_empty() || number.chars().count() > 21 {
            return Err(format!(
                "the document number '{number}' is not 1 to 21 characters (QuickBooks' DocNumber)"
            ));
        }
        Ok(number)
    }

    fn document_body(
        &self,
        order: &Order,
        kind: Document,
        refs: &OrderRefs<'_>,
        write: &Write,
    ) -> Result<Value, String> {
        let item = |sku: Option<&String>| -> Result<String, String> {
            sku.and_then(|s| refs.items_by_sku.get(s))
                .or_else(|| refs.items_by_name.get(&lower(UNNAMED_ITEM)))
                .cloned()
                .ok_or_else(|| "an item for an order line is missing in QuickBooks".to_string())
        };
        let special = |name: &str| {
            refs.items_by_name
                .get(&lower(name))
                .cloned()
                .ok_or_else(|| format!("the item '{name}' is missing in QuickBooks"))
        };
        let mut lines = Vec::new();
        for line in &order.lines {
            lines.push(mapping::sales_line(
                line.subtotal,
                line.quantity,
                &item(line.sku.as_ref())?,
                &line.name,
            ));
        }
        for charge in &order.shipping_lines {
            lines.push(mapping::sales_line(
                charge.total,
                Decimal::ONE,
                &special(SHIPPING_ITEM)?,
                &charge.name,
            ));
        }
        for charge in &order.fee_lines {
            lines.push(mapping::sales_line(
                charge.total,
                Decimal::ONE,
                &special(FEE_ITEM)?,
                &charge.name,
            ));
        }
        if order.discount_total > Decimal::ZERO {
            lines.push(json!({
                "DetailType": "DiscountLineDetail",
                "Amount": mapping::number(order.discount_total),
                "DiscountLineDetail": {"PercentBased": false},
            }));
        }
        let mut body = json!({
            "DocNumber": self.doc_number(write, order)?,
            "Line": lines,
            "BillAddr": mapping::address_json(&order.billing),
            "ShipAddr": mapping::address_json(&order.shipping),
            "PrivateNote": marker(&write.origin, order),
        });
        // The books' day is the shop's: its local date, when the source gives it.
        if let Some(day) = order
            .placed_on
            .or_else(|| order.placed_at.map(|t| t.date_naive()))
        {
            body["TxnDate"] = json!(day.format("%Y-%m-%d").to_string());
        }
        if let Some(email) = order.customer_email.as_ref().filter(|e| !e.is_empty()) {
            body["BillEmail"] = json!({"Address": email});
        }
        if let Some(customer) = self.order_customer(order, refs) {
            body["CustomerRef"] = json!({"value": customer});
        } else if kind == Document::Invoice {
            return Err("an invoice needs a customer, and none could be found or created".into());
        }
        if self.books.tax == TaxRule::OrderTotal {
            body["TxnTaxDetail"] = json!({"TotalTax": mapping::number(order.total_tax)});
        }
        if kind == Document::SalesReceipt {
            if let Some(account) = &self.books.deposit_account {
                body["DepositToAccountRef"] = json!({"value": account});
            }
        }
        Ok(body)
    }

    fn order_customer(&self, order: &Order, refs: &OrderRefs<'_>) -> Option<String> {
        match order
            .customer_email
            .as_ref()
            .filter(|e| !e.trim().is_empty())
        {
            Some(email) => refs.customers_by_email.get(&lower(email)).cloned(),
            None => refs
                .customers_by_name
                .get(&lower(&mapping::display_name(&order_customer(order))))
                .cloned(),
        }
    }

    /// Orders as documents: what QuickBooks holds of them and of what they name (one batch
    /// of queries), the customers and items they need that it lacks, each order's document
    /// written, then its refunds and payment ([`QboConnector::settle`]).
    async fn write_orders(&self, writes: &[Write]) -> Result<Vec<WriteOutcome>, PlatformError> {
        let orders: Vec<Option<&Order>> = writes
            .iter()
            .map(|w| match &w.record.body {
                Some(RecordBody::Order(o)) => Some(o.as_ref()),
                _ => None,
            })
            .collect();
        let statements = self.order_lookups(writes, &orders);
        let answers = self.holdings(&statements).await?;
        let mut found: Vec<(String, Held)> = Vec::new();
        for ((entity, _), list) in statements.iter().zip(answers) {
            found.extend(list.into_iter().map(|v| (entity.clone(), v)));
        }
        let mut refs = OrderRefs::from_found(&found);
        for (need, id) in self.prerequisites(writes, &refs).await? {
            match need {
                Need::Email(e) => refs.customers_by_email.insert(e, id),
                Need::Guest(n) => refs.customers_by_name.insert(n, id),
                Need::Sku(s) => refs.items_by_sku.insert(s, id),
                Need::Item(n) => refs.items_by_name.insert(n, id),
            };
        }
        let plans = writes
            .iter()
            .zip(&orders)
            .map(|(w, order)| self.order_plan(w, *order, &refs))
            .collect();
        let answered = self.apply_answered(plans).await?;
        self.settle(writes, &orders, &refs, answered).await
    }

    /// The queries that find what the page's orders name, in one batch: their documents (by
    /// link and by number), their refund documents, the customers (by email, and guests by
    /// name), the items (by SKU, and the items charges are booked on), and the account a
    /// refund receipt pays back from when the connection names none.
    fn order_lookups(&self, writes: &[Write], orders: &[Option<&Order>]) -> Vec<(String, String)> {
        let numbers: Vec<String> = writes
            .iter()
            .zip(orders)
            .filter_map(|(w, o)| self.doc_number(w, (*o)?).ok())
            .collect();
        let mut statements = Vec::new();
        for kind in [Document::SalesReceipt, Document::Invoice] {
            let linked: Vec<String> = writes
                .iter()
                .filter_map(|w| split_document_id(w.target_id.as_deref()?))
                .filter(|(k, _)| *k == kind)
                .map(|(_, id)| id.to_string())
                .collect();
            statements.extend(Self::lookups(kind.entity(), "Id", &linked));
            statements.extend(Self::lookups(kind.entity(), "DocNumber", &numbers));
        }
        let live: Vec<&Order> = orders
            .iter()
            .flatten()
            .copied()
            .filter(|o| !voids(o))
            .collect();
        let emails: Vec<String> = live
            .iter()
            .filter_map(|o| o.customer_email.clone())
            .collect();
        // Guests without an email are matched by name; the others' names are looked up too,
        // so a customer created for an order takes a free name at once.
        let guests: Vec<String> = live
            .iter()
            .map(|o| mapping::display_name(&order_customer(o)))
            .collect();
        let skus: Vec<String> = live
            .iter()
            .flat_map(|o| {
                o.lines
                    .iter()
                    .chain(o.refunds.iter().flat_map(|r| &r.lines))
                    .filter_map(|l| l.sku.clone())
            })
            .collect();
        let specials: Vec<String> = [SHIPPING_ITEM, FEE_ITEM, UNNAMED_ITEM, REFUND_ITEM]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Refund documents (to write, or to void with a cancelled order's) are looked for
        // in the same batch: no call more for them.
        let refund_numbers: Vec<String> = writes
            .iter()
            .zip(orders)
            .filter_map(|(w, o)| Some((self.doc_number(w, (*o)?).ok()?, (*o)?)))
            .flat_map(|(number, o)| {
                o.refunds
                    .iter()
                    .map(move |r| settlements::refund_number(&number, r))
            })
            .collect();
        for entity in settlements::REFUND_ENTITIES {
            statements.extend(Self::lookups(entity, "DocNumber", &refund_numbers));
        }
        if !refund_numbers.is_empty() && self.books.deposit_account.is_none() {
            statements.extend(Self::lookups(
                "Account",
                "Name",
                &[settlements::UNDEPOSITED_FUNDS.to_string()],
            ));
        }
        statements.extend(Self::lookups("Customer", "PrimaryEmailAddr", &emails));
        statements.extend(Self::lookups("Customer", "DisplayName", &guests));
        statements.extend(Self::lookups("Item", "Sku", &skus));
        statements.extend(Self::lookups("Item", "Name", &specials));
        statements
    }

    /// One order's document: voided (cancelled or failed), updated, or created, as what
    /// QuickBooks holds of it says.
    fn order_plan(&self, w: &Write, order: Option<&Order>, refs: &OrderRefs<'_>) -> Plan {
        let origin = w.origin.key();
        let existing = refs.linked(w).or_else(|| {
            // A document found by number alone is ours only if it says so: the
            // company may number its own invoices the same way, or another store
            // send the same number.
            let o = order.as_ref()?;
            let number = self.doc_number(w, o).ok()?;
            refs.by_number
                .get(&number)?
                .iter()
                .copied()
                .find(|(_, d)| is_marked(&d.note, w, o))
        });
        let void = order.is_none_or(voids);
        if let (Some(o), Some((kind, e))) = (order, existing) {
            if o.status == "refunded" && e.gone {
                // Voided when refunded orders were still voided: its money is off the
                // books already, and a refund document would take it off twice.
                return Plan::Done(WriteOutcome::Written {
                    target_id: document_id(kind, &e.id),
                });
            }
        }
        if void {
            return match existing {
                None => Plan::Done(WriteOutcome::Skipped),
                Some((kind, e)) if e.gone => Plan::Done(WriteOutcome::Written {
                    target_id: document_id(kind, &e.id),
                }),
                Some((kind, e)) => Plan::Op(Op::void(kind.entity(), e, &origin)),
            };
        }
        let Some(o) = order else {
            return Plan::Done(WriteOutcome::Skipped);
        };
        let kind = match (existing, self.books.orders_as) {
            (Some((kind, _)), _) => kind,
            (None, OrdersAs::Always(kind)) => kind,
            (None, OrdersAs::ByPayment) if o.paid_at.is_some() => Document::SalesReceipt,
            (None, OrdersAs::ByPayment) => Document::Invoice,
        };
        let body = match self.document_body(o, kind, refs, w) {
            Ok(b) => b,
            Err(e) => return Plan::Done(WriteOutcome::refused(e)),
        };
        Plan::Op(match existing {
            Some((_, e)) => {
                let fields = body.as_object().cloned().unwrap_or_default();
                update(kind.entity(), e, fields, &origin)
            }
            None => Op::new(kind.entity(), "create", body, &origin),
        })
    }
}

/// What marks a document as written for this order of this source connection (its
/// `PrivateNote`): two stores' orders with the same number are told apart.
fn marker(origin: &Origin, order: &Order) -> String {
    format!(
        "{} order {} from connection {}",
        origin.platform, order.number, origin.connection
    )
}

/// Whether a document's note marks it as this order's: today's marker anywhere in it (a
/// bookkeeper may add to the note), or, for a flow made before flows had a prefix of their
/// own, exactly the marker written before markers named the connection.
fn is_marked(note: &str, write: &Write, order: &Order) -> bool {
    note.contains(&marker(&write.origin, order))
        || (write.number_prefix.is_none()
            && note == format!("{} order {}", write.origin.platform, order.number))
}

/// The order number a document's note marks it with ([`is_marked`] read the other way):
/// a number (no spaces) right before ` from connection {id}` of this source; for a flow made
/// before markers named the connection, the old marker that was the whole note (or all of
/// it after QuickBooks' `Voided - `). `None` when no marker is there, or when the note names
/// two different orders (a bookkeeper's note quoting another one): never a guess.
pub(super) fn marked_order_number(note: &str, write: &Write) -> Option<String> {
    let start = format!("{} order ", write.origin.platform);
    let end = format!(" from connection {}", write.origin.connection);
    let mut found: Vec<&str> = note
        .match_indices(&start)
        .filter_map(|(at, _)| {
            let rest = &note[at + start.len()..];
            let number = rest.split(char::is_whitespace).next()?;
            rest[number.len()..].starts_with(&end).then_some(number)
        })
        .filter(|n| !n.is_empty())
        .collect();
    if found.is_empty() && write.number_prefix.is_none() {
        let unvoided = note.strip_prefix("Voided - ").unwrap_or(note);
        found.extend(
            unvoided
                .strip_prefix(&start)
                .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace)),
        );
    }
    found.dedup();
    match found.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

/// The order number a document's `DocNumber` carries after `prefix` (how the flow numbers
/// its documents: the prefix, then the order's number).
pub(super) fn numbered_order_number(doc_number: &str, prefix: &str) -> Option<String> {
    doc_number
        .strip_prefix(prefix)
        .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
        .map(str::to_string)
}

/// The customer an order's billing details describe.
fn order_customer(order: &Order) -> Customer {
    Customer {
        email: order.customer_email.clone().unwrap_or_default(),
        first_name: order.billing.first_name.clone(),
        last_name: order.billing.last_name.clone(),
        billing: order.billing.clone(),
        shipping: order.shipping.clone(),
    }
}

/// Something an order's document refers to, by the key it is looked up with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Need {
    Email(String),
    Guest(String),
    Sku(String),
    Item(String),
}

impl QboConnector {
    /// Creates the customers and items the orders need that QuickBooks does not have yet;
    /// returns what each created one is found by, and its id. One that could not be created
    /// fails its orders (they name what is missing).
    async fn prerequisites(
        &self,
        writes: &[Write],
        refs: &OrderRefs<'_>,
    ) -> Result<Vec<(Need, String)>, PlatformError> {
        let mut needs: Vec<Need> = Vec::new();
        let mut plans = Vec::new();
        let mut taken = std::collections::HashSet::new();
        let account = self.income_account();
        for w in writes {
            let Some(RecordBody::Order(o)) = &w.record.body else {
                continue;
            };
            if voids(o) {
                continue;
            }
            let customer = order_customer(o);
            let name = mapping::display_name(&customer);
            let need = match o.customer_email.as_ref().filter(|e| !e.trim().is_empty()) {
                Some(e) if !refs.customers_by_email.contains_key(&lower(e)) => {
                    Some(Need::Email(lower(e)))
                }
                None if !refs.customers_by_name.contains_key(&lower(&name)) => {
                    Some(Need::Guest(lower(&name)))
                }
                _ => None,
            };
            if let Some(need) = need.filter(|n| !needs.contains(n)) {
                let alternative = suffixed(&name, &w.origin);
                let name = if matches!(need, Need::Email(_))
                    && (refs.customers_by_name.contains_key(&lower(&name))
                        || taken.contains(&lower(&name)))
                {
                    alternative.clone()
                } else {
                    name
                };
                taken.insert(lower(&name));
                let fields = mapping::customer_json(&customer, &name);
                let key = format!("customer-of:{need:?}");
                needs.push(need);
                plans.push(Plan::Op(
                    Op::new("Customer", "create", Value::Object(fields), &key)
                        .rematched_by("PrimaryEmailAddr", &customer.email)
                        .renamed("DisplayName", alternative),
                ));
            }
            for (need, (name, sku)) in items_needed(o, refs) {
                if needs.contains(&need) {
                    continue;
                }
                let Ok(account) = &account else { continue };
                plans.push(Plan::Op(item_create(&need, &name, sku.as_deref(), account)));
                needs.push(need);
            }
        }
        if plans.is_empty() {
            return Ok(Vec::new());
        }
        let outcomes = self.apply(plans).await?;
        let mut made = Vec::new();
        for (need, outcome) in needs.into_iter().zip(outcomes) {
            match outcome {
                WriteOutcome::Written { target_id } => made.push((need, target_id)),
                other => {
                    tracing::warn!(realm = %self.realm, ?need, ?other, "could not create what an order refers to")
                }
            }
        }
        Ok(made)
    }
}

/// The items an order's lines, charges and refunds are booked on that QuickBooks lacks, each
/// with the name and SKU it is made with.
fn items_needed(o: &Order, refs: &OrderRefs<'_>) -> Vec<(Need, (String, Option<String>))> {
    let mut items = Vec::new();
    for line in o
        .lines
        .iter()
        .chain(o.refunds.iter().flat_map(|r| &r.lines))
    {
        match line.sku.as_ref().filter(|s| !s.is_empty()) {
            Some(sku) if !refs.items_by_sku.contains_key(sku) => {
                items.push((
                    Need::Sku(sku.clone()),
                    (line.name.clone(), Some(sku.clone())),
                ));
            }
            Some(_) => {}
            None => items.push((Need::Item(lower(UNNAMED_ITEM)), (UNNAMED_ITEM.into(), None))),
        }
    }
    let charged =
        |of: fn(&Order) -> bool, refund: fn(&Refund) -> bool| of(o) || o.refunds.iter().any(refund);
    if charged(
        |o| !o.shipping_lines.is_empty(),
        |r| !r.shipping_lines.is_empty(),
    ) {
        items.push((
            Need::Item(lower(SHIPPING_ITEM)),
            (SHIPPING_ITEM.into(), None),
        ));
    }
    if charged(|o| !o.fee_lines.is_empty(), |r| !r.fee_lines.is_empty()) {
        items.push((Need::Item(lower(FEE_ITEM)), (FEE_ITEM.into(), None)));
    }
    if settlements::needs_refund_item(o) {
        items.push((Need::Item(lower(REFUND_ITEM)), (REFUND_ITEM.into(), None)));
    }
    items.retain(|(need, _)| match need {
        Need::Item(n) => !refs.items_by_name.contains_key(n),
        _ => true,
    });
    items
}

/// The create of an item an order needs: a product by SKU (found again by it, or renamed
/// if its name is taken), or a service item by name.
fn item_create(need: &Need, name: &str, sku: Option<&str>, account: &str) -> Op {
    let name: String = name.chars().take(100).collect();
    let product = Product {
        sku: sku.map(str::to_string),
        name: name.clone(),
        ..Product::default()
    };
    let mut fields = mapping::product_json(&product, &name, account);
    if sku.is_none() {
        fields.insert("Type".into(), json!("Service"));
        fields.remove("Sku");
    }
    let key = format!("item-for:{need:?}");
    let op = Op::new("Item", "create", Value::Object(fields), &key);
    match sku {
        Some(sku) => op.rematched_by("Sku", sku).renamed(
            "Name",
            format!("{} ({sku})", name.chars().take(80).collect::<String>()),
        ),
        None => op.rematched_by("Name", &name),
    }
}

#[async_trait]
impl Target for QboConnector {
    async fn write(
        &self,
        entity: EntityType,
        writes: &[Write],
    ) -> Result<Vec<WriteOutcome>, PlatformError> {
        match entity {
            EntityType::Customers => self.write_customers(writes).await,
            EntityType::Products => self.write_products(writes).await,
            EntityType::Orders => self.write_orders(writes).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConnectionId, Platform};
    use crate::records::Record;

    fn write(prefix: Option<&str>) -> Write {
        Write {
            record: Record {
                id: "7".into(),
                modified_at: chrono::Utc::now(),
                body: None,
                unknown: Vec::new(),
            },
            target_id: None,
            origin: Origin {
                connection: ConnectionId::new_random(),
                platform: Platform::WooCommerce,
                id: "7".into(),
            },
            fields: Vec::new(),
            number_prefix: prefix.map(str::to_string),
        }
    }

    #[test]
    fn the_order_number_is_read_back_from_our_note_of_this_store_only() {
        let w = write(Some("S1-"));
        let order = |number: &str| Order {
            number: number.into(),
            ..Order::default()
        };
        let read = |note: &str, w: &Write| marked_order_number(note, w);
        let ours = marker(&w.origin, &order("1042"));
        assert_eq!(read(&ours, &w).as_deref(), Some("1042"));
        let added_to = format!("Gift wrap. {ours} (checked)");
        assert_eq!(read(&added_to, &w).as_deref(), Some("1042"));
        assert_eq!(
            read(&format!("Voided - {ours}"), &w).as_deref(),
            Some("1042")
        );
        let quoted = format!("re woocommerce order 11 (dup). {ours}");
        assert_eq!(read(&quoted, &w).as_deref(), Some("1042"));
        // Two orders named: no guess.
        let two = format!("Replaces {}. {ours}", marker(&w.origin, &order("12")));
        assert_eq!(read(&two, &w), None);
        let twice = format!("{ours} {ours}");
        assert_eq!(read(&twice, &w).as_deref(), Some("1042"));
        let other_store = marker(&write(Some("S2-")).origin, &order("1042"));
        assert_eq!(read(&other_store, &w), None);
        assert_eq!(read("", &w), None);
        assert_eq!(read("Voided", &w), None);
        assert_eq!(read("woocommerce order 1042", &w), None);
        let before_prefixes = write(None);
        for note in ["woocommerce order 1042", "Voided - woocommerce order 1042"] {
            assert_eq!(
                read(note, &before_prefixes).as_deref(),
                Some("1042"),
                "{note}"
            );
        }
        assert_eq!(
            read("woocommerce order 1042 and more", &before_prefixes),
            None
        );
    }

    #[test]
    fn the_order_number_is_read_back_from_a_document_number_after_the_flows_prefix() {
        assert_eq!(
            numbered_order_number("S1-1042", "S1-").as_deref(),
            Some("1042")
        );
        assert_eq!(numbered_order_number("S2-1042", "S1-"), None);
        assert_eq!(numbered_order_number("S1-", "S1-"), None);
        assert_eq!(numbered_order_number("S1-1042 adj", "S1-"), None);
    }
}
