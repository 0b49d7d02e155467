//! What follows an order's document in the books: the money paid back, and the money paid.
//!
//! - Each refund of the order is one refund document: a `RefundReceipt` where money went
//!   back out (the order is a sales receipt, or a paid invoice; paid back from
//!   `deposit_account`, else the company's Undeposited Funds), a `CreditMemo` where the order
//!   is an invoice not yet paid (a credit against what the customer owes). Its lines are the
//!   products, shipping and fees the store says were refunded, its tax the tax refunded with
//!   them; an amount the refund does not itemise is booked on [`REFUND_ITEM`] with its share
//!   of the order's tax (see [`refund_lines`]). A fully refunded order keeps its document and
//!   gets a refund document for the whole amount (WooCommerce records a refund for the rest
//!   when an order is set to refunded), so no closed period is rewritten by a void.
//! - An invoice whose order is paid gets a `Payment` of what it still owes, linked to it.
//! - An order that is cancelled or fails after it was refunded has its refund documents
//!   voided with its document: the books never keep a refund of a sale that is gone. So
//!   has one the store deletes (trashed, or gone): its refunds are no longer known by id,
//!   so its refund documents are found by number (its document's, then `-R`) and our note
//!   for the same store.
//!
//! They are written after the document (a payment names it), in one batch for the page,
//! and the order counts as written only once they all are: a failure is retried as a whole.
//! Nothing is made twice on a retry: a refund document is found again by its `DocNumber`
//! (the order's, then `-R` and the refund's id) and a note naming the refund, order and
//! store, whichever kind it is; a payment is made only while the invoice owes, no payment of
//! the customer (voided ones included) carries our note for the order, and no one else paid
//! money towards it: a payment the bookkeeper voided stays voided, one they recorded is
//! theirs to complete (a credit applied, a payment of nothing, is not a payment). A refund document already there
//! with the same amounts is left alone (refunds do not change); one the bookkeeper voided is
//! left voided.

use serde_json::{json, Value};

use super::connector::{QboConnector, TaxRule};
use super::held::Held;
use super::mapping::{self, plus, Document, FEE_ITEM, REFUND_ITEM, SHIPPING_ITEM, UNNAMED_ITEM};
use super::target::{
    lower, marked_order_number, numbered_order_number, update, voids, Op, OrderRefs, Plan,
};
use crate::ports::{Origin, PlatformError, RecordError, Write, WriteOutcome};
use crate::records::{Decimal, Order, Refund};

/// The account a refund receipt pays back from when the connection names none.
pub(super) const UNDEPOSITED_FUNDS: &str = "Undeposited Funds";

/// The kinds of refund document, as QuickBooks names them.
pub(super) const REFUND_ENTITIES: [&str; 2] = ["RefundReceipt", "CreditMemo"];

/// The refund document that goes with an order's document: money paid back where the
/// customer paid (a sales receipt, or an invoice whose order is paid), a credit where the
/// invoice is still owed.
pub(super) fn refund_entity(kind: Document, paid: bool) -> &'static str {
    match kind {
        Document::Invoice if !paid => "CreditMemo",
        _ => "RefundReceipt",
    }
}

/// A refund document's `DocNumber`: the order's, `-R` and the refund's id (cut to
/// QuickBooks' 21 characters; the note tells refunds apart either way).
pub(super) fn refund_number(order_number: &str, refund: &Refund) -> String {
    format!("{}{}", refund_numbers_start(order_number), refund.id)
        .chars()
        .take(21)
        .collect()
}

/// How the numbers of an order's refund documents start (cut as they are).
fn refund_numbers_start(order_number: &str) -> String {
    format!("{order_number}-R").chars().take(21).collect()
}

/// What marks a refund document as this refund's (its `PrivateNote`).
fn refund_marker(origin: &Origin, order: &Order, refund: &Refund) -> String {
    let (before, after) = refunds_marker(origin, &order.number);
    format!("{before}{}{after}", refund.id)
}

/// What every [`refund_marker`] of an order of this store holds: before the refund's id,
/// and after it.
fn refunds_marker(origin: &Origin, order_number: &str) -> (String, String) {
    (
        format!("{} refund ", origin.platform),
        format!(
            " of order {order_number} from connection {}",
            origin.connection
        ),
    )
}

/// What marks a payment as this order's.
fn payment_marker(origin: &Origin, order: &Order) -> String {
    format!(
        "{} payment of order {} from connection {}",
        origin.platform, order.number, origin.connection
    )
}

/// One line of a refund document, before its item is resolved.
pub(super) enum RefundLine<'a> {
    /// A product, by SKU (`None`: the item for lines without one).
    Product {
        sku: Option<&'a str>,
        name: &'a str,
        quantity: Decimal,
        amount: Decimal,
    },
    /// Shipping or a fee, on its item.
    Charge {
        item: &'static str,
        name: &'a str,
        amount: Decimal,
    },
    /// An amount the refund does not itemise.
    Rest(Decimal),
}

/// A refund's document lines and its tax: its products, shipping and fees with the tax the
/// store refunded on them, and what its amount holds beyond them with its share of the
/// order's tax: the tax the order still holds in proportion to what is still unrefunded of
/// it, or all that tax when the refund takes the rest of the order (as the refund WooCommerce
/// makes when an order is set to refunded). Earlier refunds (the order's, oldest first) are
/// taken off first. A refund whose lines come to more than its amount (WooCommerce lets the
/// amount win) is its amount alone.
pub(super) fn refund_lines<'a>(
    order: &Order,
    refund: &'a Refund,
) -> Result<(Vec<RefundLine<'a>>, Decimal), String> {
    let too_large = || "the refund's amounts are too large to add up".to_string();
    let mut left = (order.total, order.total_tax);
    for earlier in order.refunds.iter().take_while(|r| r.id != refund.id) {
        let (_, tax) = one_refund(earlier, left)?;
        left = (
            left.0.checked_sub(earlier.amount).ok_or_else(too_large)?,
            left.1.checked_sub(tax).ok_or_else(too_large)?,
        );
    }
    one_refund(refund, left)
}

/// [`refund_lines`] of one refund, given what the order still holds (gross, tax) before it.
fn one_refund(
    refund: &Refund,
    (gross_left, tax_left): (Decimal, Decimal),
) -> Result<(Vec<RefundLine<'_>>, Decimal), String> {
    let what = "the refund's amounts";
    let too_large = || format!("{what} are too large to add up");
    let mut tax = refund.tax().ok_or_else(too_large)?;
    let mut itemised = Decimal::ZERO;
    let mut lines = Vec::new();
    for l in &refund.lines {
        itemised = plus(itemised, l.total, what)?;
        lines.push(RefundLine::Product {
            sku: l.sku.as_deref().filter(|s| !s.is_empty()),
            name: &l.name,
            quantity: l.quantity,
            amount: l.total,
        });
    }
    for (item, charges) in [
        (SHIPPING_ITEM, &refund.shipping_lines),
        (FEE_ITEM, &refund.fee_lines),
    ] {
        for c in charges.iter().filter(|c| c.total != Decimal::ZERO) {
            itemised = plus(itemised, c.total, what)?;
            lines.push(RefundLine::Charge {
                item,
                name: &c.name,
                amount: c.total,
            });
        }
    }
    let mut rest = refund
        .amount
        .checked_sub(tax)
        .and_then(|r| r.checked_sub(itemised))
        .ok_or_else(too_large)?;
    if rest < Decimal::ZERO {
        lines.clear();
        tax = Decimal::ZERO;
        rest = refund.amount;
    }
    if rest > Decimal::ZERO {
        // What the order holds once this refund's itemised part is off it.
        let gross = gross_left
            .checked_sub(refund.amount - rest)
            .ok_or_else(too_large)?;
        let tax_left = tax_left.checked_sub(tax).ok_or_else(too_large)?;
        let share = if rest >= gross {
            tax_left
        } else {
            rest.checked_mul(tax_left)
                .and_then(|x| x.checked_div(gross))
                .ok_or_else(too_large)?
                .round_dp(2)
        };
        let share = share.min(rest).max(Decimal::ZERO);
        tax = tax.checked_add(share).ok_or_else(too_large)?;
        lines.push(RefundLine::Rest(rest - share));
    }
    Ok((lines, tax))
}

/// Whether any refund of the order books an amount on [`REFUND_ITEM`].
pub(super) fn needs_refund_item(order: &Order) -> bool {
    order.refunds.iter().any(|r| {
        refund_lines(order, r)
            .is_ok_and(|(lines, _)| lines.iter().any(|l| matches!(l, RefundLine::Rest(_))))
    })
}

impl QboConnector {
    /// The refund documents and payment that follow each written document, written in one
    /// batch; an order whose follow-ups do not all succeed takes the first failure as its
    /// outcome.
    pub(super) async fn settle(
        &self,
        writes: &[Write],
        orders: &[Option<&Order>],
        refs: &OrderRefs<'_>,
        answered: Vec<(WriteOutcome, Option<Held>)>,
    ) -> Result<Vec<WriteOutcome>, crate::ports::PlatformError> {
        let mut owners = Vec::new();
        let mut plans = Vec::new();
        let mut to_pay = Vec::new();
        let mut deleted = Vec::new();
        for (i, ((w, order), (outcome, document))) in
            writes.iter().zip(orders).zip(&answered).enumerate()
        {
            if order.is_none() && matches!(outcome, WriteOutcome::Written { .. }) {
                // Deleted in the store: its refunds are no longer known by id.
                if let Some((_, document)) = refs.linked(w) {
                    deleted.push((i, w, document));
                }
                continue;
            }
            let (Some(o), WriteOutcome::Written { target_id }) = (order, outcome) else {
                continue;
            };
            if voids(o) {
                // Its document is voided (or was gone): so are its refunds.
                for plan in self.refund_voids(w, o, refs) {
                    owners.push(i);
                    plans.push(plan);
                }
                continue;
            }
            let Some(document) = document.as_ref().filter(|d| !d.gone) else {
                continue;
            };
            let Some((kind, _)) = mapping::split_document_id(target_id) else {
                continue;
            };
            for refund in &o.refunds {
                owners.push(i);
                plans.push(self.refund_plan(w, o, refund, kind, document, refs));
            }
            if kind == Document::Invoice && o.paid_at.is_some() && owes(document) {
                to_pay.push((i, w, o, document));
            }
        }
        if !to_pay.is_empty() {
            let customers: Vec<String> = to_pay
                .iter()
                .filter_map(|(_, _, _, d)| d.customer.clone())
                .collect();
            let payments = self
                .held(Self::lookups("Payment", "CustomerRef", &customers))
                .await?;
            for (i, w, o, invoice) in to_pay {
                let marker = payment_marker(&w.origin, o);
                let made = payments.iter().any(|p| p.note.contains(&marker));
                if !made && !paid_by_others(&payments, invoice) {
                    owners.push(i);
                    plans.push(self.payment_plan(w, o, invoice));
                }
            }
        }
        for (i, plan) in self.deleted_orders_refund_voids(&deleted).await? {
            owners.push(i);
            plans.push(plan);
        }
        let mut outcomes: Vec<WriteOutcome> = answered.into_iter().map(|(o, _)| o).collect();
        if plans.is_empty() {
            return Ok(outcomes);
        }
        for (i, outcome) in owners.into_iter().zip(self.apply(plans).await?) {
            let failed = matches!(
                outcome,
                WriteOutcome::Failed(_) | WriteOutcome::Unavailable(_)
            );
            if failed && matches!(outcomes[i], WriteOutcome::Written { .. }) {
                outcomes[i] = match outcome {
                    WriteOutcome::Failed(e) => WriteOutcome::Failed(RecordError::new(
                        e.code,
                        format!("its refund or payment: {}", e.message),
                    )),
                    WriteOutcome::Unavailable(e) => {
                        WriteOutcome::Unavailable(format!("its refund or payment: {e}"))
                    }
                    other => other,
                };
            }
        }
        Ok(outcomes)
    }

    /// The refund's document as QuickBooks has it, of either kind, if we wrote it: found by
    /// its number and our note.
    fn existing_refund<'r>(
        &self,
        write: &Write,
        order: &Order,
        refund: &Refund,
        refs: &OrderRefs<'r>,
    ) -> Option<(&'static str, &'r Held)> {
        let number = refund_number(&self.doc_number(write, order).ok()?, refund);
        let marker = refund_marker(&write.origin, order, refund);
        refs.refund_documents
            .get(&number)?
            .iter()
            .find(|(_, d)| d.note.contains(&marker))
            .copied()
    }

    /// Voids of the order's refund documents that are still live.
    fn refund_voids(&self, write: &Write, order: &Order, refs: &OrderRefs<'_>) -> Vec<Plan> {
        order
            .refunds
            .iter()
            .filter_map(|refund| {
                let (entity, e) = self.existing_refund(write, order, refund, refs)?;
                let origin = format!("{}|refund:{}", write.origin.key(), refund.id);
                (!e.gone).then(|| Plan::Op(Op::void(entity, e, &origin)))
            })
            .collect()
    }

    /// Voids of the refund documents we made for orders the store deleted (trashed, or
    /// gone). Their refunds are no longer known by id, so the documents are found by the
    /// number we gave them (the order's document number as we number it, then `-R`) and
    /// our note naming that order and store. The order's number is read from our note on
    /// its document, so a document the bookkeeper renumbered never leads to another order's
    /// refunds; only where QuickBooks replaced the note of the voided document (`Voided`,
    /// on a later try) is it read from its `DocNumber`, and only under the flow's own
    /// non-empty prefix. The look-ups go in one batch; each order takes its own answer: a
    /// look-up QuickBooks refuses fails that order (counted, quarantined after its tries),
    /// an outage leaves it to be tried again, and neither touches the rest of the page.
    async fn deleted_orders_refund_voids(
        &self,
        deleted: &[(usize, &Write, &Held)],
    ) -> Result<Vec<(usize, Plan)>, PlatformError> {
        let mut plans = Vec::new();
        let mut asks = Vec::new();
        for (i, w, document) in deleted {
            let Some(number) = self.deleted_order_number(w, document) else {
                tracing::warn!(
                    document = %document.id,
                    "the document of an order deleted in the store carries neither our note nor \
                     our number: its refund documents, if any, are left as they are"
                );
                continue;
            };
            let order = Order {
                number,
                ..Order::default()
            };
            match self.doc_number(w, &order) {
                Ok(doc_number) => {
                    asks.push((*i, *w, order.number, refund_numbers_start(&doc_number)))
                }
                Err(e) => plans.push((*i, Plan::Done(WriteOutcome::refused(e)))),
            }
        }
        let failed = |e: String| format!("its refund documents could not be looked up: {e}");
        let mut answers = match self.queries_each(&refund_lookups(&asks)).await {
            Ok(answers) => answers.into_iter(),
            Err(PlatformError::Unavailable(e)) => {
                for (i, ..) in asks {
                    let outcome = WriteOutcome::Unavailable(failed(e.clone()));
                    plans.push((i, Plan::Done(outcome)));
                }
                return Ok(plans);
            }
            Err(e) => return Err(e),
        };
        for (i, w, number, prefix) in asks {
            let mut found = Vec::new();
            let mut failure = None;
            for entity in REFUND_ENTITIES {
                let outcome = match answers.next() {
                    Some(Ok(list)) => match Held::all(list, entity) {
                        Ok(docs) => {
                            found.push((entity, docs));
                            continue;
                        }
                        Err(e) => WriteOutcome::refused(failed(e.to_string())),
                    },
                    Some(Err(f)) if f.is_refusal() => {
                        WriteOutcome::Failed(f.record_error(failed(f.text())))
                    }
                    Some(Err(f)) => WriteOutcome::Unavailable(failed(f.text())),
                    None => WriteOutcome::Unavailable(failed("an answer is missing".into())),
                };
                failure.get_or_insert(outcome);
            }
            if let Some(outcome) = failure {
                plans.push((i, Plan::Done(outcome)));
                continue;
            }
            let (before, after) = refunds_marker(&w.origin, &number);
            for (entity, docs) in found {
                for d in docs {
                    let ours = d
                        .doc_number
                        .as_ref()
                        .is_some_and(|n| n.starts_with(&prefix))
                        && d.note.contains(&before)
                        && d.note.contains(&after);
                    if ours && !d.gone {
                        let origin = format!("{}|refund-document:{}", w.origin.key(), d.id);
                        plans.push((i, Plan::Op(Op::void(entity, &d, &origin))));
                    }
                }
            }
        }
        Ok(plans)
    }

    /// The number of the order a deleted order's document is for: from our note on it;
    /// from its `DocNumber` only when QuickBooks replaced the note on voiding it (the note
    /// is just `Voided`) and the number carries the flow's own non-empty prefix. A note
    /// naming two orders, or one the bookkeeper rewrote, is no guess.
    fn deleted_order_number(&self, write: &Write, document: &Held) -> Option<String> {
        if let Some(number) = marked_order_number(&document.note, write) {
            return Some(number);
        }
        let replaced_on_void = document.gone && document.note.trim() == "Voided";
        let prefix = write
            .number_prefix
            .as_deref()
            .unwrap_or(&self.books.doc_number_prefix);
        if !replaced_on_void || prefix.is_empty() {
            return None;
        }
        numbered_order_number(document.doc_number.as_deref()?, prefix)
    }

    fn refund_plan(
        &self,
        write: &Write,
        order: &Order,
        refund: &Refund,
        kind: Document,
        document: &Held,
        refs: &OrderRefs<'_>,
    ) -> Plan {
        let entity = refund_entity(kind, order.paid_at.is_some());
        let ours = match self.refund_body(write, order, refund, entity, document, refs) {
            Ok(Some(ours)) => ours,
            Ok(None) => return Plan::Done(WriteOutcome::Skipped),
            Err(e) => return Plan::Done(WriteOutcome::refused(e)),
        };
        let origin = format!("{}|refund:{}", write.origin.key(), refund.id);
        match self.existing_refund(write, order, refund, refs) {
            // Made as the other kind (the order was paid since, or its document remade):
            // still this refund's, and left as it is.
            Some((made_as, e)) if made_as != entity || e.gone || same_amounts(e, &ours) => {
                Plan::Done(WriteOutcome::Written {
                    target_id: e.id.clone(),
                })
            }
            Some((_, e)) => {
                let fields = ours.body.as_object().cloned().unwrap_or_default();
                Plan::Op(update(entity, e, fields, &origin))
            }
            None => Plan::Op(Op::new(entity, "create", ours.body, &origin)),
        }
    }

    /// The refund document's body; `None` for a refund of nothing.
    fn refund_body(
        &self,
        write: &Write,
        order: &Order,
        refund: &Refund,
        entity: &str,
        document: &Held,
        refs: &OrderRefs<'_>,
    ) -> Result<Option<RefundBody>, String> {
        let (lines, tax) = refund_lines(order, refund)?;
        if lines.is_empty() {
            return Ok(None);
        }
        let item = |name: &str| {
            refs.items_by_name
                .get(&lower(name))
                .cloned()
                .ok_or_else(|| format!("the item '{name}' is missing in QuickBooks"))
        };
        let mut out = Vec::new();
        let mut total = Decimal::ZERO;
        for line in &lines {
            let (amount, quantity, item_id, description) = match line {
                RefundLine::Product {
                    sku,
                    name,
                    quantity,
                    amount,
                } => {
                    let id = match sku.and_then(|s| refs.items_by_sku.get(s)) {
                        Some(id) => id.clone(),
                        None => item(UNNAMED_ITEM)?,
                    };
                    (*amount, *quantity, id, name.to_string())
                }
                RefundLine::Charge {
                    item: on,
                    name,
                    amount,
                } => (*amount, Decimal::ONE, item(on)?, name.to_string()),
                RefundLine::Rest(amount) => (
                    *amount,
                    Decimal::ONE,
                    item(REFUND_ITEM)?,
                    refund.reason.clone(),
                ),
            };
            total = plus(total, amount.round_dp(2), "the refund's amounts")?;
            out.push(mapping::sales_line(
                amount,
                quantity,
                &item_id,
                &description,
            ));
        }
        let order_number = self.doc_number(write, order)?;
        let mut body = json!({
            "DocNumber": refund_number(&order_number, refund),
            "Line": out,
            "PrivateNote": refund_marker(&write.origin, order, refund),
        });
        for field in ["CustomerRef", "BillAddr", "BillEmail", "CurrencyRef"] {
            if let Some(v) = document.raw.get(field).filter(|v| !v.is_null()) {
                body[field] = v.clone();
            }
        }
        if let Some(day) = refund
            .refunded_on
            .or_else(|| refund.refunded_at.map(|t| t.date_naive()))
        {
            body["TxnDate"] = json!(day.format("%Y-%m-%d").to_string());
        }
        let sales = total;
        let tax = (self.books.tax == TaxRule::OrderTotal).then_some(tax);
        if let Some(tax) = tax {
            body["TxnTaxDetail"] = json!({"TotalTax": mapping::number(tax)});
            total = plus(total, tax, "the refund's amounts")?;
        }
        body["TotalAmt"] = mapping::number(total);
        if entity == "RefundReceipt" {
            let account = self
                .books
                .deposit_account
                .clone()
                .or_else(|| refs.undeposited_funds.clone())
                .ok_or_else(|| {
                    format!(
                        "a refund receipt is paid back from an account: the QuickBooks connection has no deposit_account and the company no '{UNDEPOSITED_FUNDS}' account"
                    )
                })?;
            body["DepositToAccountRef"] = json!({"value": account});
        }
        Ok(Some(RefundBody { body, sales, tax }))
    }

    /// A payment of what the invoice still owes (see [`owes`]).
    fn payment_plan(&self, write: &Write, order: &Order, invoice: &Held) -> Plan {
        let (Some(owed), Some(customer)) = (invoice.balance, &invoice.customer) else {
            return Plan::Done(WriteOutcome::refused(
                "the invoice QuickBooks answered has no Balance or no CustomerRef to pay".into(),
            ));
        };
        let reference: String = invoice
            .doc_number
            .as_deref()
            .unwrap_or(&order.number)
            .chars()
            .take(21)
            .collect();
        let mut body = json!({
            "CustomerRef": {"value": customer},
            "TotalAmt": mapping::number(owed),
            "PaymentRefNum": reference,
            "PrivateNote": payment_marker(&write.origin, order),
            "Line": [{
                "Amount": mapping::number(owed),
                "LinkedTxn": [{"TxnId": invoice.id, "TxnType": "Invoice"}],
            }],
        });
        if let Some(day) = order.paid_at.map(|t| t.date_naive()) {
            body["TxnDate"] = json!(day.format("%Y-%m-%d").to_string());
        }
        if let Some(account) = &self.books.deposit_account {
            body["DepositToAccountRef"] = json!({"value": account});
        }
        let origin = format!("{}|payment", write.origin.key());
        Plan::Op(Op::new("Payment", "create", body, &origin))
    }
}

/// The look-ups of the refund documents numbered from each prefix: one query per kind of
/// refund document, per order.
fn refund_lookups(asks: &[(usize, &Write, String, String)]) -> Vec<(String, String)> {
    asks.iter()
        .flat_map(|(_, _, _, prefix)| {
            let like = super::connector::quoted(&format!("{prefix}%"));
            REFUND_ENTITIES.iter().map(move |entity| {
                (
                    entity.to_string(),
                    format!("SELECT * FROM {entity} WHERE DocNumber LIKE {like} MAXRESULTS 1000"),
                )
            })
        })
        .collect()
}

/// A refund document's body, with the amounts it is compared by.
struct RefundBody {
    body: Value,
    /// The sum of its sales lines.
    sales: Decimal,
    /// Its tax, where we set the tax.
    tax: Option<Decimal>,
}

/// Whether an invoice has a balance to pay.
fn owes(invoice: &Held) -> bool {
    invoice.balance.is_some_and(|b| b > Decimal::ZERO)
}

/// Whether a payment of money (not a credit applied, which QuickBooks records as a payment
/// of nothing) made by someone else, the bookkeeper, pays part of the invoice: the rest is
/// theirs to settle.
fn paid_by_others(payments: &[Held], invoice: &Held) -> bool {
    payments.iter().any(|p| {
        p.pays_invoices.contains(&invoice.id) && p.total.is_some_and(|a| a > Decimal::ZERO)
    })
}

/// Whether a refund document already holds the amounts we would write: its lines' sum, and
/// its tax where we set the tax (QuickBooks' own `TotalAmt` adds the tax it computes itself).
fn same_amounts(existing: &Held, ours: &RefundBody) -> bool {
    existing.sales_total == Some(ours.sales) && ours.tax.is_none_or(|t| existing.tax == t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{ChargeLine, OrderLine};

    fn d(text: &str) -> Decimal {
        text.parse().unwrap_or_default()
    }

    fn amounts(refund: &Refund) -> (Vec<String>, String) {
        amounts_in(&Order::default(), refund)
    }

    fn amounts_in(order: &Order, refund: &Refund) -> (Vec<String>, String) {
        let (lines, tax) = refund_lines(order, refund).unwrap_or_else(|e| panic!("{e}"));
        let lines = lines
            .iter()
            .map(|l| match l {
                RefundLine::Product { amount, .. } => format!("product {amount}"),
                RefundLine::Charge { item, amount, .. } => format!("{item} {amount}"),
                RefundLine::Rest(amount) => format!("rest {amount}"),
            })
            .collect();
        (lines, tax.to_string())
    }

    #[test]
    fn a_refund_is_its_lines_its_tax_and_what_its_amount_holds_beyond_them() {
        let refund = Refund {
            id: "9".into(),
            amount: d("17.85"),
            lines: vec![OrderLine {
                sku: Some("MUG".into()),
                quantity: d("1"),
                total: d("10"),
                total_tax: d("0.5"),
                ..OrderLine::default()
            }],
            shipping_lines: vec![ChargeLine {
                name: "Flat".into(),
                total: d("5"),
                total_tax: d("0.25"),
            }],
            ..Refund::default()
        };
        assert_eq!(
            amounts(&refund),
            (
                vec![
                    "product 10".to_string(),
                    "Shipping 5".into(),
                    "rest 2.10".into()
                ],
                "0.75".into()
            )
        );
        let amount_only = Refund {
            amount: d("4"),
            ..Refund::default()
        };
        assert_eq!(
            amounts(&amount_only),
            (vec!["rest 4".to_string()], "0".into())
        );
        let less_than_its_lines = Refund {
            amount: d("3"),
            ..refund
        };
        assert_eq!(
            amounts(&less_than_its_lines),
            (vec!["rest 3".to_string()], "0".into())
        );
        assert_eq!(
            amounts(&Refund::default()),
            (Vec::<String>::new(), "0".into())
        );
    }

    #[test]
    fn an_amount_refunded_alone_pays_back_its_share_of_the_orders_tax_and_the_last_all_that_is_left(
    ) {
        let refund = |id: &str, amount: &str| Refund {
            id: id.into(),
            amount: d(amount),
            ..Refund::default()
        };
        // 100 of sales and 7 of tax; a mug (10 and 0.70 of tax) refunded first.
        let order = Order {
            total: d("107"),
            total_tax: d("7"),
            refunds: vec![
                Refund {
                    lines: vec![OrderLine {
                        sku: Some("MUG".into()),
                        quantity: d("1"),
                        total: d("10"),
                        total_tax: d("0.70"),
                        ..OrderLine::default()
                    }],
                    ..refund("1", "10.70")
                },
                refund("2", "21.40"),
                refund("3", "74.90"),
            ],
            ..Order::default()
        };
        assert_eq!(
            amounts_in(&order, &order.refunds[0]),
            (vec!["product 10".to_string()], "0.70".into())
        );
        assert_eq!(
            amounts_in(&order, &order.refunds[1]),
            (vec!["rest 20.00".to_string()], "1.40".into())
        );
        // The rest of the order: all the tax still on it, to the cent.
        assert_eq!(
            amounts_in(&order, &order.refunds[2]),
            (vec!["rest 70.00".to_string()], "4.90".into())
        );
        // Set to refunded at once: the whole tax.
        let whole = Order {
            refunds: vec![refund("4", "107")],
            ..order.clone()
        };
        assert_eq!(
            amounts_in(&whole, &whole.refunds[0]),
            (vec!["rest 100".to_string()], "7".into())
        );
    }

    #[test]
    fn a_refund_document_is_the_kind_of_money_that_went_back() {
        assert_eq!(refund_entity(Document::SalesReceipt, true), "RefundReceipt");
        assert_eq!(refund_entity(Document::Invoice, true), "RefundReceipt");
        assert_eq!(refund_entity(Document::Invoice, false), "CreditMemo");
    }

    fn held(mut v: Value) -> Held {
        v["Id"] = json!(v.get("Id").cloned().unwrap_or(json!("9")));
        v["SyncToken"] = json!("0");
        Held::read(&v, "the entity").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_refund_document_with_the_same_lines_and_tax_is_the_same_whatever_tax_quickbooks_added() {
        let line = |amount: &str| json!({"DetailType": "SalesItemLineDetail", "Amount": amount});
        let ours = RefundBody {
            body: json!({}),
            sales: d("12.5"),
            tax: None,
        };
        let theirs = held(json!({
            "Line": [line("10.00"), line("2.50"), {"DetailType": "SubTotalLineDetail", "Amount": "12.5"}],
            "TotalAmt": "13.44",
        }));
        assert!(same_amounts(&theirs, &ours));
        assert!(!same_amounts(&held(json!({"Line": [line("10")]})), &ours));
        let taxed = RefundBody {
            tax: Some(d("0.94")),
            ..ours
        };
        assert!(!same_amounts(&theirs, &taxed));
        // No tax written by QuickBooks is a tax of nothing.
        let untaxed = RefundBody {
            tax: Some(Decimal::ZERO),
            ..taxed
        };
        assert!(same_amounts(&theirs, &untaxed));
    }

    #[test]
    fn an_invoice_waits_for_our_payment_while_it_owes_and_no_one_else_paid_money_towards_it() {
        assert!(owes(&held(json!({"Balance": "30"}))));
        assert!(!owes(&held(json!({"Balance": "0"}))));
        assert!(!owes(&held(json!({}))));
        let invoice = held(json!({"Id": "9", "Balance": "30"}));
        let payment = |amount: &str, invoice: &str| {
            held(
                json!({"Id": "70", "TotalAmt": amount, "Line": [{"LinkedTxn": [{"TxnId": invoice, "TxnType": "Invoice"}]}]}),
            )
        };
        assert!(paid_by_others(&[payment("20", "9")], &invoice));
        // A credit memo applied (a payment of nothing), or a payment of another invoice.
        assert!(!paid_by_others(
            &[payment("0", "9"), payment("20", "8")],
            &invoice
        ));
    }

    #[test]
    fn a_refund_number_fits_quickbooks_and_names_the_refund() {
        let refund = Refund {
            id: "10046".into(),
            ..Refund::default()
        };
        assert_eq!(refund_number("STOR-10045", &refund), "STOR-10045-R10046");
        assert_eq!(
            refund_number("A-VERY-LONG-PREFIX-10045", &refund)
                .chars()
                .count(),
            21
        );
        // A deleted order's refund documents are found by how their numbers start.
        for order in ["STOR-10045", "A-VERY-LONG-PREFIX-10045"] {
            assert!(refund_number(order, &refund).starts_with(&refund_numbers_start(order)));
        }
    }
}
