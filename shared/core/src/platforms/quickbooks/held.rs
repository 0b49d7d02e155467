//! What QuickBooks holds: an entity as a look-up or a write answers it, read at the edge
//! into the fields the target decides by: its id and `SyncToken` (to update or void it),
//! the keys it is found again by, whether it is gone, what its note says, an invoice's
//! balance, what a payment pays, a refund document's amounts. A field that must be there
//! and is not, or one of the wrong kind, fails the read and names the field: a document we
//! cannot read is never taken for one that is not there (that would make a second one).
//! `raw` keeps the answer for the fields copied onto another document as they stand
//! (`CustomerRef`, `BillAddr`).

use serde::Deserialize;
use serde_json::Value;

use super::connector::QboConnector;
use super::mapping::{is_voided, wire};
use crate::platforms::fields::{read, Id, Money, Text};
use crate::ports::PlatformError;
use crate::records::Decimal;

/// One entity QuickBooks holds.
#[derive(Clone, Debug)]
pub(super) struct Held {
    pub id: String,
    pub sync_token: String,
    /// `Active: false` (customers, items, accounts); documents are active.
    pub active: bool,
    /// Deleted or voided.
    pub gone: bool,
    pub doc_number: Option<String>,
    pub note: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub sku: Option<String>,
    pub name: Option<String>,
    /// What an invoice still owes.
    pub balance: Option<Decimal>,
    pub total: Option<Decimal>,
    pub customer: Option<String>,
    /// The invoices a payment's lines pay.
    pub pays_invoices: Vec<String>,
    /// The sum of its sales lines; `None` when one of their amounts does not read.
    pub sales_total: Option<Decimal>,
    /// `TxnTaxDetail.TotalTax` (QuickBooks leaves a tax of nothing out: zero).
    pub tax: Decimal,
    pub raw: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Linked {
    #[serde(default)]
    txn_id: Text,
    #[serde(default)]
    txn_type: Text,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Line {
    #[serde(default)]
    detail_type: Text,
    /// Read on the sales lines only (a line of another kind may hold anything).
    #[serde(default)]
    amount: Value,
    #[serde(default)]
    linked_txn: Vec<Linked>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Fields {
    id: Id,
    sync_token: Text,
    #[serde(default)]
    active: Option<bool>,
    #[serde(rename = "status", default)]
    status: Text,
    #[serde(default)]
    doc_number: Text,
    #[serde(default)]
    private_note: Text,
    #[serde(default)]
    display_name: Text,
    #[serde(default)]
    primary_email_addr: wire::Email,
    #[serde(default)]
    sku: Text,
    #[serde(default)]
    name: Text,
    #[serde(default)]
    balance: Money,
    #[serde(default)]
    total_amt: Money,
    #[serde(default)]
    customer_ref: wire::Ref,
    #[serde(default)]
    line: Vec<Line>,
    #[serde(default)]
    txn_tax_detail: wire::TaxDetail,
}

impl Held {
    /// The entity `what` (its kind, for the error) from QuickBooks' answer.
    pub fn read(v: &Value, what: &str) -> Result<Held, String> {
        let f: Fields = read(v, what)?;
        if f.sync_token.as_str().is_empty() {
            return Err(format!("{what}: SyncToken is empty"));
        }
        let sales_total = f
            .line
            .iter()
            .filter(|l| l.detail_type.as_str() == "SalesItemLineDetail")
            .try_fold(Decimal::ZERO, |sum, l| {
                let amount = crate::records::unlabelled_money(&l.amount).ok()??;
                sum.checked_add(amount)
            });
        let pays_invoices = f
            .line
            .iter()
            .flat_map(|l| &l.linked_txn)
            .filter(|t| t.txn_type.as_str() == "Invoice")
            .filter_map(|t| t.txn_id.non_empty())
            .collect();
        Ok(Held {
            id: f.id.0,
            sync_token: f.sync_token.0,
            active: f.active != Some(false),
            gone: is_voided(f.status.as_str(), f.private_note.as_str()),
            doc_number: f.doc_number.non_empty(),
            note: f.private_note.0,
            display_name: f.display_name.non_empty(),
            email: f.primary_email_addr.address.non_empty(),
            sku: f.sku.non_empty(),
            name: f.name.non_empty(),
            balance: f.balance.0,
            total: f.total_amt.0,
            customer: f.customer_ref.value.non_empty(),
            pays_invoices,
            sales_total,
            tax: f.txn_tax_detail.total_tax.or_zero(),
            raw: v.clone(),
        })
    }

    /// Every entity of a look-up's answer, or the first that does not read.
    pub fn all(list: Vec<Value>, entity: &str) -> Result<Vec<Held>, PlatformError> {
        list.iter()
            .map(|v| Held::read(v, entity))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                PlatformError::Unavailable(format!(
                    "QuickBooks answered with what we cannot read: {e}"
                ))
            })
    }

    /// The id and `SyncToken` an update or a void names.
    pub fn version(&self) -> Value {
        serde_json::json!({"Id": self.id, "SyncToken": self.sync_token})
    }
}

impl QboConnector {
    /// What the look-ups find, each answer read (see [`Held`]).
    pub(super) async fn holdings(
        &self,
        statements: &[(String, String)],
    ) -> Result<Vec<Vec<Held>>, PlatformError> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        self.queries(statements)
            .await?
            .into_iter()
            .zip(statements)
            .map(|(list, (entity, _))| Held::all(list, entity))
            .collect()
    }

    /// [`Self::holdings`], all in one list.
    pub(super) async fn held(
        &self,
        statements: Vec<(String, String)>,
    ) -> Result<Vec<Held>, PlatformError> {
        Ok(self
            .holdings(&statements)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entity_without_its_id_or_sync_token_does_not_read_and_the_error_names_the_field() {
        let missing = Held::read(&json!({"Id": "7", "DocNumber": "1001"}), "Invoice");
        assert!(
            missing.as_ref().is_err_and(|e| e.contains("SyncToken")),
            "{missing:?}"
        );
        let no_id = Held::read(&json!({"SyncToken": "0"}), "Invoice");
        assert!(no_id.as_ref().is_err_and(|e| e.contains("Id")), "{no_id:?}");
        let bad = Held::read(
            &json!({"Id": "7", "SyncToken": "0", "Balance": "lots"}),
            "Invoice",
        );
        assert!(
            bad.as_ref().is_err_and(|e| e.contains("Balance")),
            "{bad:?}"
        );
    }

    #[test]
    fn a_document_reads_its_keys_amounts_links_and_whether_it_is_gone() {
        let line = |amount: Value| json!({"DetailType": "SalesItemLineDetail", "Amount": amount});
        let held = Held::read(
            &json!({"Id": "9", "SyncToken": "2", "DocNumber": "S-1001", "Balance": 30,
                "CustomerRef": {"value": "58"}, "PrivateNote": "Voided - woocommerce order 1001",
                "Line": [line(json!(10)), line(json!("2.50")),
                    {"DetailType": "SubTotalLineDetail", "Amount": "anything"},
                    {"Amount": 5, "LinkedTxn": [{"TxnId": "9", "TxnType": "Invoice"}, {"TxnId": "3", "TxnType": "CreditMemo"}]}]}),
            "Invoice",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(held.doc_number.as_deref(), Some("S-1001"));
        assert_eq!(held.balance, Some(Decimal::from(30)));
        assert_eq!(held.customer.as_deref(), Some("58"));
        assert_eq!(held.sales_total, Some(Decimal::new(1250, 2)));
        assert_eq!(held.pays_invoices, vec!["9".to_string()]);
        assert_eq!(held.tax, Decimal::ZERO);
        assert!(held.gone && held.active);
        let unreadable = Held::read(
            &json!({"Id": "9", "SyncToken": "2", "Line": [line(json!("ten"))]}),
            "RefundReceipt",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unreadable.sales_total, None);
    }
}
