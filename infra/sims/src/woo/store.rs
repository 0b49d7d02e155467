//! The store's data: orders, products and customers as WooCommerce keeps them (ids shared by
//! orders and products as WordPress posts, customers as users), modification times to the
//! second, and the list queries of the REST API.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The three kinds of record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Orders,
    Products,
    Customers,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Orders, Kind::Products, Kind::Customers];

    pub fn from_path(segment: &str) -> Option<Kind> {
        match segment {
            "orders" => Some(Kind::Orders),
            "products" => Some(Kind::Products),
            "customers" => Some(Kind::Customers),
            _ => None,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Kind::Orders => "orders",
            Kind::Products => "products",
            Kind::Customers => "customers",
        }
    }

    /// The webhook resource name.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Orders => "order",
            Kind::Products => "product",
            Kind::Customers => "customer",
        }
    }

    /// The error code WooCommerce answers a missing id with.
    pub fn invalid_id(self) -> &'static str {
        match self {
            Kind::Orders => "woocommerce_rest_shop_order_invalid_id",
            Kind::Products => "woocommerce_rest_product_invalid_id",
            Kind::Customers => "woocommerce_rest_invalid_id",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One record: its fields as the API shows them, without id and dates.
#[derive(Clone, Debug)]
pub struct Doc {
    pub id: u64,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub fields: Map<String, Value>,
    /// The status a trashed record had, restored when it leaves the trash.
    pub trashed_from: Option<String>,
    /// An order's refunds in full, newest first (the order's fields list them briefly).
    pub refunds: Vec<Value>,
}

impl Doc {
    pub fn new(id: u64, at: DateTime<Utc>, fields: Map<String, Value>) -> Self {
        Self {
            id,
            created: at,
            modified: at,
            fields,
            trashed_from: None,
            refunds: Vec::new(),
        }
    }

    pub fn text(&self, field: &str) -> &str {
        self.fields.get(field).and_then(Value::as_str).unwrap_or("")
    }

    pub fn status(&self) -> &str {
        self.text("status")
    }
}

#[derive(Default)]
struct Table {
    docs: BTreeMap<u64, Doc>,
    /// (modified, id), for lists by modification.
    by_modified: BTreeSet<(i64, u64)>,
}

/// The store's records.
pub struct Records {
    tables: [Table; 3],
    next_post: u64,
    next_user: u64,
    pub zone: Tz,
    /// Lists by modification give records of the same second newest id first. WordPress
    /// orders ties by no rule we can rely on; a client must not depend on ids ascending.
    pub ties_newest_first: bool,
}

/// A list query, validated.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub page: usize,
    pub per_page: usize,
    pub offset: Option<usize>,
    pub desc: bool,
    pub orderby: String,
    pub include: Vec<u64>,
    pub exclude: Vec<u64>,
    /// Empty: the default (`any`).
    pub status: Vec<String>,
    pub modified_after: Option<DateTime<Utc>>,
    pub modified_before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
    pub skus: Vec<String>,
    pub email: Option<String>,
    pub role: Option<String>,
    pub search: Option<String>,
    pub customer: Option<u64>,
}

/// Seconds, as WordPress stores times.
pub fn second(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(t.timestamp(), 0).single().unwrap_or(t)
}

pub fn gmt_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

impl Records {
    pub fn new(zone: Tz) -> Self {
        Self {
            tables: Default::default(),
            next_post: 100,
            next_user: 2,
            zone,
            ties_newest_first: false,
        }
    }

    pub fn clear(&mut self) {
        let ties = self.ties_newest_first;
        *self = Self::new(self.zone);
        self.ties_newest_first = ties;
    }

    fn table(&self, kind: Kind) -> &Table {
        &self.tables[kind.index()]
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.table(kind).docs.len()
    }

    pub fn get(&self, kind: Kind, id: u64) -> Option<&Doc> {
        self.table(kind).docs.get(&id)
    }

    /// The next id: orders and products share WordPress's post ids, customers are users.
    pub fn next_id(&mut self, kind: Kind) -> u64 {
        let next = if kind == Kind::Customers {
            &mut self.next_user
        } else {
            &mut self.next_post
        };
        *next += 1;
        *next
    }

    /// Stores a record (new or changed), its times to the second.
    pub fn put(&mut self, kind: Kind, mut doc: Doc) {
        doc.created = second(doc.created);
        doc.modified = second(doc.modified);
        let table = &mut self.tables[kind.index()];
        if let Some(old) = table.docs.get(&doc.id) {
            table
                .by_modified
                .remove(&(old.modified.timestamp(), old.id));
        }
        table.by_modified.insert((doc.modified.timestamp(), doc.id));
        table.docs.insert(doc.id, doc);
    }

    /// A bulk edit: every record of `kind` gets `set` over its fields and is modified at
    /// `at` (one second for all of them, as a plugin's bulk update leaves them).
    pub fn touch_all(&mut self, kind: Kind, set: &Map<String, Value>, at: DateTime<Utc>) -> usize {
        let ids: Vec<u64> = self.table(kind).docs.keys().copied().collect();
        for id in &ids {
            if let Some(mut doc) = self.tables[kind.index()].docs.get(id).cloned() {
                doc.fields.extend(set.clone());
                doc.modified = at;
                self.put(kind, doc);
            }
        }
        ids.len()
    }

    pub fn remove(&mut self, kind: Kind, id: u64) -> Option<Doc> {
        let table = &mut self.tables[kind.index()];
        let doc = table.docs.remove(&id)?;
        table.by_modified.remove(&(doc.modified.timestamp(), id));
        Some(doc)
    }

    /// Site-local wall time, as the non-`_gmt` dates show it.
    pub fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.zone)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    }

    /// The REST representation of a record.
    pub fn render(&self, kind: Kind, doc: &Doc, home: &str) -> Value {
        let mut v = Map::new();
        v.insert("id".into(), json!(doc.id));
        for (k, value) in &doc.fields {
            v.insert(k.clone(), value.clone());
        }
        v.insert("date_created".into(), json!(self.local(doc.created)));
        v.insert("date_created_gmt".into(), json!(gmt_text(doc.created)));
        v.insert("date_modified".into(), json!(self.local(doc.modified)));
        v.insert("date_modified_gmt".into(), json!(gmt_text(doc.modified)));
        let collection = format!("{home}/wp-json/wc/v3/{}", kind.path());
        v.insert(
            "_links".into(),
            json!({
                "self": [{"href": format!("{collection}/{}", doc.id)}],
                "collection": [{"href": collection}],
            }),
        );
        Value::Object(v)
    }

    /// Turns a date parameter into UTC: with `dates_are_gmt` a naive date is UTC, otherwise
    /// it is the site's wall time; a date with an offset means what it says.
    pub fn date_param(&self, text: &str, gmt: bool) -> Option<DateTime<Utc>> {
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(t.with_timezone(&Utc));
        }
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S"))
            .ok()?;
        if gmt {
            Some(naive.and_utc())
        } else {
            self.zone
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        }
    }

    /// Whether a record passes a query's filters.
    fn passes(&self, kind: Kind, doc: &Doc, q: &ListQuery) -> bool {
        if !q.include.is_empty() && !q.include.contains(&doc.id) {
            return false;
        }
        if q.exclude.contains(&doc.id) {
            return false;
        }
        // Second-granular and exclusive, as WP_Date_Query builds it.
        let m = doc.modified.timestamp();
        let c = doc.created.timestamp();
        if q.modified_after.is_some_and(|t| m <= t.timestamp())
            || q.modified_before.is_some_and(|t| m >= t.timestamp())
            || q.after.is_some_and(|t| c <= t.timestamp())
            || q.before.is_some_and(|t| c >= t.timestamp())
        {
            return false;
        }
        match kind {
            Kind::Orders | Kind::Products => {
                let status = doc.status();
                let wanted = if q.status.is_empty() {
                    vec!["any".to_string()]
                } else {
                    q.status.clone()
                };
                // `any` is every status but trash (and drafts still being made).
                let hit = wanted.iter().any(|w| {
                    w == status
                        || (w == "any"
                            && !matches!(status, "trash" | "auto-draft" | "checkout-draft"))
                });
                if !hit {
                    return false;
                }
                if kind == Kind::Products
                    && !q.skus.is_empty()
                    && !q.skus.iter().any(|s| s == doc.text("sku"))
                {
                    return false;
                }
                if kind == Kind::Orders
                    && q.customer
                        .is_some_and(|c| doc.fields.get("customer_id") != Some(&json!(c)))
                {
                    return false;
                }
            }
            Kind::Customers => {
                let role = q.role.as_deref().unwrap_or("customer");
                if role != "all" && doc.text("role") != role {
                    return false;
                }
                if q.email
                    .as_ref()
                    .is_some_and(|e| !doc.text("email").eq_ignore_ascii_case(e))
                {
                    return false;
                }
            }
        }
        if let Some(search) = &q.search {
            let needle = search.to_lowercase();
            let hay = ["name", "sku", "email", "first_name", "last_name", "number"]
                .iter()
                .map(|f| doc.text(f).to_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            if !hay.contains(&needle) {
                return false;
            }
        }
        true
    }

    /// A page of a list and the number of records the query matches.
    pub fn list(&self, kind: Kind, q: &ListQuery) -> (Vec<&Doc>, usize) {
        let table = self.table(kind);
        let skip = q.offset.unwrap_or((q.page - 1) * q.per_page);
        // Lists by modification time (or by id) ascending walk an index in order; the rest
        // are gathered and sorted.
        let ordered: Option<Box<dyn Iterator<Item = &Doc>>> =
            match (q.orderby.as_str(), q.desc, q.include.is_empty()) {
                ("modified", false, true) if !self.ties_newest_first => {
                    let from = q.modified_after.map_or(i64::MIN, |t| t.timestamp() + 1);
                    Some(Box::new(
                        table
                            .by_modified
                            .range((from, 0)..)
                            .filter_map(|(_, id)| table.docs.get(id)),
                    ))
                }
                ("id", false, true) => Some(Box::new(table.docs.values())),
                _ => None,
            };
        if let Some(docs) = ordered {
            let mut total = 0;
            let mut page = Vec::with_capacity(q.per_page.min(100));
            for doc in docs.filter(|d| self.passes(kind, d, q)) {
                if total >= skip && page.len() < q.per_page {
                    page.push(doc);
                }
                total += 1;
            }
            return (page, total);
        }
        let mut all: Vec<&Doc> = table
            .docs
            .values()
            .filter(|d| self.passes(kind, d, q))
            .collect();
        let name = |d: &Doc| {
            if kind == Kind::Customers {
                format!("{} {}", d.text("last_name"), d.text("first_name")).to_lowercase()
            } else {
                d.text("name").to_lowercase()
            }
        };
        match q.orderby.as_str() {
            "id" => all.sort_by_key(|d| d.id),
            "modified" if self.ties_newest_first => {
                all.sort_by_key(|d| (d.modified, std::cmp::Reverse(d.id)))
            }
            "modified" => all.sort_by_key(|d| (d.modified, d.id)),
            "include" => all.sort_by_key(|d| q.include.iter().position(|i| *i == d.id)),
            "title" | "name" | "slug" => all.sort_by_key(|d| (name(d), d.id)),
            // `date` and `registered_date`: by creation, then id.
            _ => all.sort_by_key(|d| (d.created, d.id)),
        }
        if q.desc {
            all.reverse();
        }
        let total = all.len();
        let page = all.into_iter().skip(skip).take(q.per_page).collect();
        (page, total)
    }

    /// The customer with this email, if any.
    pub fn customer_by_email(&self, email: &str) -> Option<&Doc> {
        self.table(Kind::Customers)
            .docs
            .values()
            .find(|d| d.text("email").eq_ignore_ascii_case(email))
    }

    /// The product (not deleted) with this SKU, if any.
    pub fn product_by_sku(&self, sku: &str) -> Option<&Doc> {
        self.table(Kind::Products)
            .docs
            .values()
            .find(|d| d.text("sku") == sku)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: u64, modified: i64, status: &str) -> Doc {
        let t = Utc.timestamp_opt(modified, 0).single().unwrap_or_default();
        let mut fields = Map::new();
        fields.insert("status".into(), json!(status));
        Doc::new(id, t, fields)
    }

    fn query() -> ListQuery {
        ListQuery {
            page: 1,
            per_page: 100,
            orderby: "modified".into(),
            ..Default::default()
        }
    }

    #[test]
    fn modified_after_is_exclusive_to_the_second_and_any_leaves_trash_out() {
        let mut r = Records::new(chrono_tz::America::Edmonton);
        r.put(Kind::Orders, doc(1, 1_000, "processing"));
        r.put(Kind::Orders, doc(2, 1_001, "completed"));
        r.put(Kind::Orders, doc(3, 1_001, "trash"));
        let mut q = query();
        q.modified_after = Utc.timestamp_opt(1_000, 0).single();
        let (page, total) = r.list(Kind::Orders, &q);
        assert_eq!(
            (page.iter().map(|d| d.id).collect::<Vec<_>>(), total),
            (vec![2], 1)
        );
        q.status = vec!["trash".into(), "completed".into()];
        assert_eq!(r.list(Kind::Orders, &q).1, 2);
    }

    #[test]
    fn a_change_moves_a_record_to_the_end_of_the_modified_order() {
        let mut r = Records::new(chrono_tz::America::Edmonton);
        r.put(Kind::Products, doc(1, 1_000, "publish"));
        r.put(Kind::Products, doc(2, 1_001, "publish"));
        r.put(Kind::Products, doc(1, 1_002, "publish"));
        let (page, _) = r.list(Kind::Products, &query());
        assert_eq!(page.iter().map(|d| d.id).collect::<Vec<_>>(), vec![2, 1]);
        let mut q = query();
        q.desc = true;
        let (page, _) = r.list(Kind::Products, &q);
        assert_eq!(page.iter().map(|d| d.id).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn naive_dates_are_site_time_unless_dates_are_gmt() {
        let r = Records::new(chrono_tz::America::Edmonton);
        let gmt = r.date_param("2026-11-24T18:00:00", true);
        let local = r.date_param("2026-11-24T11:00:00", false);
        assert_eq!(gmt, local);
        assert_eq!(r.date_param("2026-11-24T18:00:00Z", false), gmt);
        assert_eq!(r.date_param("yesterday", true), None);
    }
}
