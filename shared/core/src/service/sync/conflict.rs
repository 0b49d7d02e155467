//! `newest_wins`: a record is judged by what changed since the two sides last agreed, never
//! by comparing the source's edit time with the copy's (our own write moves the copy's time,
//! so an edit made at the source while that write was in flight would look older).
//!
//! The source record reaching this point has changed since it and its copy last agreed.
//! The copy, read now from the target, is compared with what the two last agreed on (the
//! seal both index entries keep for the pair: what a flow last carried between them, not
//! what some other flow read of the copy since): unchanged, the source's change is carried;
//! changed too, it is a conflict, and the later edit by the platforms' own times wins. On a
//! tie (WooCommerce keeps seconds) the side whose connection id sorts first wins, the same
//! answer from both flows of a two-way pair, so they never undo each other. A copy deleted
//! at the target has no edit time to compare: the source's change is carried.
//!
//! This needs a target that reads its records back as it was given them: a flow into
//! QuickBooks (documents come back numbered and with its own statuses) cannot be made
//! `newest_wins` (see [`crate::platforms::PlatformModule::reads_back_as_written`]); one made
//! before that rule keeps the earlier judgement by times alone (the copy's edit time against
//! the source's).
//!
//! The seal of an agreement is over the fields the flow carried then, which the flow of the
//! other direction chooses by what its own source held: the copy is compared over this
//! record's fields, and over the flow's fields the copy holds, and is unchanged if either
//! matches.

use crate::domain::{Conflict, ConnectionId, FlowId, Winner};
use crate::ports::{Item, RecordState};
use crate::records::Record;

/// What to do with a changed source record under `newest_wins`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Judgement {
    /// Write it: the copy has not changed since we last saw it (or cannot be told apart).
    Carry,
    /// Both changed; the conflict says which won.
    Conflict(Conflict),
    /// The copy could not be read: the record fails (counted towards its quarantine) rather
    /// than overwriting an edit it cannot see.
    Unreadable(String),
}

/// The flow and the two ends a judgement is about.
pub(super) struct Sides<'a> {
    pub flow: FlowId,
    pub source: ConnectionId,
    pub target: ConnectionId,
    /// The fields the flow carries.
    pub fields: &'a [&'static str],
    /// Whether the target reads its records back as it was given them.
    pub faithful: bool,
}

/// What the index says the record and its copy last were.
pub(super) struct Known<'a> {
    /// The seal of what the two last agreed on (over the same fields).
    pub agreed: Option<&'a String>,
    /// The copy's own entry (for entries made before agreements were kept).
    pub copy: Option<&'a RecordState>,
}

/// Judges `record` (its fingerprint over `fields`) against its copy `copy` (id
/// `target_id`). No copy read (the target cannot be read) carries the change.
pub(super) fn judge(
    sides: &Sides<'_>,
    record: &Record,
    fields: &[&'static str],
    target_id: &str,
    copy: Option<&Item>,
    known: &Known<'_>,
) -> Judgement {
    let copy = match copy {
        None => return Judgement::Carry,
        Some(Item::Bad { error, .. }) => {
            return Judgement::Unreadable(format!(
                "its copy {target_id} at the target could not be read to compare edits: {error}"
            ))
        }
        Some(Item::Record(c)) => c,
    };
    if copy.is_deleted() {
        return Judgement::Carry;
    }
    if !sides.faithful {
        return if copy.modified_at > record.modified_at {
            Judgement::Conflict(decided(sides, record, target_id, copy))
        } else {
            Judgement::Carry
        };
    }
    let theirs = copy.fingerprint(fields);
    let held: Vec<&'static str> = sides
        .fields
        .iter()
        .copied()
        .filter(|f| !copy.unknown.contains(f))
        .collect();
    let unchanged = match known.agreed {
        Some(seal) => theirs.seal() == *seal || copy.fingerprint(&held).seal() == *seal,
        // No agreement kept yet: what the index last saw of the copy.
        None => known
            .copy
            .map(|s| &s.fingerprint)
            .is_some_and(|seen| !seen.is_empty() && seen.covers(&theirs)),
    };
    // Unchanged, or already holding what the source now has: nothing is lost by writing.
    if unchanged || theirs == record.fingerprint(fields) {
        return Judgement::Carry;
    }
    Judgement::Conflict(decided(sides, record, target_id, copy))
}

/// Both changed: the later edit wins; on a tie, the connection id that sorts first.
fn decided(sides: &Sides<'_>, record: &Record, target_id: &str, copy: &Record) -> Conflict {
    let tie = record.modified_at == copy.modified_at;
    let source_first =
        record.modified_at > copy.modified_at || (tie && sides.source < sides.target);
    Conflict {
        record_id: record.id.clone(),
        flow_id: sides.flow,
        target_id: target_id.to_string(),
        source_modified_at: record.modified_at,
        target_modified_at: copy.modified_at,
        winner: if source_first {
            Winner::Source
        } else {
            Winner::Target
        },
        tie,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Body, Product};
    use chrono::{DateTime, Duration, Utc};

    fn product(id: &str, price: &str, at: DateTime<Utc>) -> Record {
        Record {
            id: id.into(),
            modified_at: at,
            body: Some(Body::Product(Box::new(Product {
                sku: Some("SKU-1".into()),
                name: "Mug".into(),
                price: price.parse().ok(),
                ..Product::default()
            }))),
            unknown: Vec::new(),
        }
    }

    const FIELDS: &[&str] = &["sku", "name", "price"];

    fn sides(source: ConnectionId, target: ConnectionId) -> Sides<'static> {
        Sides {
            flow: FlowId::new_random(),
            source,
            target,
            fields: FIELDS,
            faithful: true,
        }
    }

    /// The seal of what a pair agreeing on `r` keeps.
    fn seal(r: &Record) -> String {
        r.fingerprint(FIELDS).seal()
    }

    fn judged(
        s: &Sides<'_>,
        mine: &Record,
        copy: Option<&Item>,
        agreed: Option<&String>,
    ) -> Judgement {
        judge(s, mine, FIELDS, "b1", copy, &Known { agreed, copy: None })
    }

    fn conflict(j: Judgement) -> Conflict {
        match j {
            Judgement::Conflict(c) => c,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn a_copy_unchanged_since_our_write_takes_the_change_however_late_its_time() {
        let t0 = Utc::now();
        let written = product("b1", "10", t0 + Duration::seconds(5));
        // The source was edited before our write landed: its time is older than the copy's.
        let edited = product("a1", "12", t0 + Duration::seconds(2));
        let s = sides(ConnectionId::new_random(), ConnectionId::new_random());
        let copy = Item::Record(written.clone());
        assert_eq!(
            judged(&s, &edited, Some(&copy), Some(&seal(&written))),
            Judgement::Carry
        );
    }

    #[test]
    fn when_both_changed_the_later_edit_wins() {
        let t0 = Utc::now();
        let agreed = seal(&product("b1", "10", t0));
        let theirs = Item::Record(product("b1", "30", t0 + Duration::seconds(9)));
        let ours = product("a1", "12", t0 + Duration::seconds(4));
        let s = sides(ConnectionId::new_random(), ConnectionId::new_random());
        let c = conflict(judged(&s, &ours, Some(&theirs), Some(&agreed)));
        assert_eq!((c.winner, c.tie), (Winner::Target, false));
        let later = product("a1", "12", t0 + Duration::seconds(20));
        let c = conflict(judged(&s, &later, Some(&theirs), Some(&agreed)));
        assert_eq!((c.winner, c.tie), (Winner::Source, false));
    }

    #[test]
    fn a_copy_agreed_over_the_other_directions_fields_reads_as_unchanged() {
        let t0 = Utc::now();
        // The other direction's flow last carried every field (its source held a price).
        let copy = product("b1", "10", t0 + Duration::seconds(9));
        let agreed = seal(&copy);
        // This record holds no price, so its own fields leave price out.
        let mut ours = product("a1", "10", t0 + Duration::seconds(2));
        if let Some(Body::Product(p)) = ours.body.as_mut() {
            p.name = "Big mug".into();
        }
        let s = sides(ConnectionId::new_random(), ConnectionId::new_random());
        let known = Known {
            agreed: Some(&agreed),
            copy: None,
        };
        assert_eq!(
            judge(
                &s,
                &ours,
                &["sku", "name"],
                "b1",
                Some(&Item::Record(copy)),
                &known
            ),
            Judgement::Carry
        );
    }

    #[test]
    fn a_flow_into_a_target_that_reads_back_its_own_way_is_judged_by_times_alone() {
        let t0 = Utc::now();
        let mut s = sides(ConnectionId::new_random(), ConnectionId::new_random());
        s.faithful = false;
        let copy = Item::Record(product("b1", "99", t0 + Duration::seconds(9)));
        let older = product("a1", "12", t0);
        assert_eq!(
            conflict(judged(&s, &older, Some(&copy), None)).winner,
            Winner::Target
        );
        let newer = product("a1", "12", t0 + Duration::seconds(20));
        assert_eq!(judged(&s, &newer, Some(&copy), None), Judgement::Carry);
    }

    #[test]
    fn what_another_flow_read_of_the_copy_since_does_not_make_it_unchanged() {
        let t0 = Utc::now();
        let agreed = seal(&product("b1", "10", t0));
        // The copy was edited after the source; another flow read it meanwhile, so the
        // copy's own entry holds the edit, but the pair never agreed on it.
        let edited_copy = product("b1", "30", t0 + Duration::seconds(9));
        let read_since = RecordState {
            fingerprint: edited_copy.fingerprint(FIELDS),
            ..RecordState::default()
        };
        let ours = product("a1", "12", t0 + Duration::seconds(4));
        let s = sides(ConnectionId::new_random(), ConnectionId::new_random());
        let known = Known {
            agreed: Some(&agreed),
            copy: Some(&read_since),
        };
        let copy = Item::Record(edited_copy);
        let c = conflict(judge(&s, &ours, FIELDS, "b1", Some(&copy), &known));
        assert_eq!(c.winner, Winner::Target);
    }

    #[test]
    fn a_copy_deleted_at_the_target_takes_the_change() {
        let t0 = Utc::now();
        let gone = Item::Record(Record {
            id: "b1".into(),
            modified_at: t0 + Duration::days(1),
            body: None,
            unknown: Vec::new(),
        });
        let ours = product("a1", "12", t0 + Duration::seconds(4));
        let s = sides(ConnectionId::new_random(), ConnectionId::new_random());
        let agreed = seal(&product("b1", "10", t0));
        assert_eq!(
            judged(&s, &ours, Some(&gone), Some(&agreed)),
            Judgement::Carry
        );
    }

    #[test]
    fn a_tie_is_decided_the_same_way_from_both_directions() {
        let t0 = Utc::now();
        let (a, b) = (ConnectionId::new_random(), ConnectionId::new_random());
        let agreed = seal(&product("x", "10", t0));
        let on_a = product("a1", "12", t0 + Duration::seconds(3));
        let on_b = product("b1", "30", t0 + Duration::seconds(3));
        let winner_of = |s: Sides<'_>, mine: &Record, theirs: &Record| -> ConnectionId {
            let c = conflict(judged(
                &s,
                mine,
                Some(&Item::Record(theirs.clone())),
                Some(&agreed),
            ));
            assert!(c.tie);
            if c.winner == Winner::Source {
                s.source
            } else {
                s.target
            }
        };
        assert_eq!(
            winner_of(sides(a, b), &on_a, &on_b),
            winner_of(sides(b, a), &on_b, &on_a)
        );
    }

    #[test]
    fn an_unreadable_copy_fails_the_record_and_no_copy_read_carries_it() {
        let r = product("a1", "12", Utc::now());
        let s = sides(ConnectionId::new_random(), ConnectionId::new_random());
        let bad = Item::Bad {
            id: "b1".into(),
            error: "no date".into(),
        };
        assert!(matches!(
            judged(&s, &r, Some(&bad), None),
            Judgement::Unreadable(_)
        ));
        assert_eq!(judged(&s, &r, None, None), Judgement::Carry);
    }
}
