//! `newest_wins`: a record is judged by what changed since the two sides last agreed, never
//! by comparing the source's edit time with the copy's (our own write moves the copy's time,
//! so an edit made at the source while that write was in flight would look older).
//!
//! The source record reaching this point has changed since it and its copy last agreed.
//! The copy, read now from the target, is compared with what the index last saw there (our
//! write, or a read of it): unchanged, the source's change is carried; changed too, it is a
//! conflict, and the later edit by the platforms' own times wins. On a tie (WooCommerce keeps
//! seconds) the side whose connection id sorts first wins, the same answer from both flows of
//! a two-way pair, so they never undo each other.

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
    /// The copy could not be read: the record fails (and is tried again) rather than
    /// overwriting an edit it cannot see.
    Unreadable(String),
}

/// The flow and the two ends a judgement is about.
pub(super) struct Sides<'a> {
    pub flow: FlowId,
    pub source: ConnectionId,
    pub target: ConnectionId,
    /// The fields the flow carries that the target also reads back.
    pub fields: &'a [&'static str],
}

/// Judges `record` against its copy `copy` (id `target_id`), of which the index last saw
/// `seen`. No copy read (the target cannot be read) carries the change.
pub(super) fn judge(
    sides: &Sides<'_>,
    record: &Record,
    target_id: &str,
    copy: Option<&Item>,
    seen: Option<&RecordState>,
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
    // Compared: the fields the copy reads back, that the index holds a value for.
    let seen = seen.map(|s| &s.fingerprint).filter(|f| !f.is_empty());
    if let Some(seen) = seen {
        let fields: Vec<&'static str> = sides
            .fields
            .iter()
            .copied()
            .filter(|f| !copy.unknown.contains(f) && seen.0.contains_key(*f))
            .collect();
        if seen.covers(&copy.fingerprint(&fields)) {
            return Judgement::Carry;
        }
    }
    // The copy already holds what the source now has: nothing is lost by writing it.
    if copy.fingerprint(sides.fields) == record.fingerprint(sides.fields) {
        return Judgement::Carry;
    }
    let tie = record.modified_at == copy.modified_at;
    let source_first =
        record.modified_at > copy.modified_at || (tie && sides.source < sides.target);
    Judgement::Conflict(Conflict {
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
    })
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
        }
    }

    fn seen(r: &Record) -> RecordState {
        RecordState {
            fingerprint: r.fingerprint(FIELDS),
            written: true,
            ..RecordState::default()
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
            judge(&s, &edited, "b1", Some(&copy), Some(&seen(&written))),
            Judgement::Carry
        );
    }

    #[test]
    fn when_both_changed_the_later_edit_wins() {
        let t0 = Utc::now();
        let agreed = product("b1", "10", t0);
        let theirs = Item::Record(product("b1", "30", t0 + Duration::seconds(9)));
        let ours = product("a1", "12", t0 + Duration::seconds(4));
        let s = sides(ConnectionId::new_random(), ConnectionId::new_random());
        let Judgement::Conflict(c) = judge(&s, &ours, "b1", Some(&theirs), Some(&seen(&agreed)))
        else {
            panic!("a conflict")
        };
        assert_eq!((c.winner, c.tie), (Winner::Target, false));
        let later = product("a1", "12", t0 + Duration::seconds(20));
        let Judgement::Conflict(c) = judge(&s, &later, "b1", Some(&theirs), Some(&seen(&agreed)))
        else {
            panic!("a conflict")
        };
        assert_eq!((c.winner, c.tie), (Winner::Source, false));
    }

    #[test]
    fn a_tie_is_decided_the_same_way_from_both_directions() {
        let t0 = Utc::now();
        let (a, b) = (ConnectionId::new_random(), ConnectionId::new_random());
        let agreed = product("x", "10", t0);
        let on_a = product("a1", "12", t0 + Duration::seconds(3));
        let on_b = product("b1", "30", t0 + Duration::seconds(3));
        let winner_of = |s: Sides<'_>, mine: &Record, theirs: &Record| -> ConnectionId {
            match judge(
                &s,
                mine,
                "t",
                Some(&Item::Record(theirs.clone())),
                Some(&seen(&agreed)),
            ) {
                Judgement::Conflict(c) => {
                    assert!(c.tie);
                    if c.winner == Winner::Source {
                        s.source
                    } else {
                        s.target
                    }
                }
                other => panic!("{other:?}"),
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
            judge(&s, &r, "b1", Some(&bad), None),
            Judgement::Unreadable(_)
        ));
        assert_eq!(judge(&s, &r, "b1", None, None), Judgement::Carry);
    }
}
