//! What the fuzzing properties share: how many cases they run, and inputs made by mutating
//! real documents (a platform's payload, an API request body) so that most cases get past
//! the first check and reach the code behind it.
//!
//! Every property runs [`cases`] cases: a few hundred in the test command, and as many as
//! `FUZZ_CASES` says in the long run (`infra/fuzz.sh`, a million each).

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};

/// Cases a property runs: `FUZZ_CASES` from the environment, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A proptest configuration of [`cases`] cases that keeps no failure files: a failing case
/// is printed, shrunk to the smallest input that still fails, and can be made a test.
pub fn config(default: u32) -> ProptestConfig {
    round(cases(default))
}

/// Most cases of one round of a property that keeps a world between its cases: a long run
/// is cut into rounds, each with a fresh world, so it does not slow as the world grows.
pub const ROUND: u32 = 5_000;

/// The sizes of the rounds that make up [`cases`]`(default)` cases.
pub fn rounds(default: u32) -> Vec<u32> {
    let total = cases(default);
    let mut out = vec![ROUND; (total / ROUND) as usize];
    if total % ROUND > 0 {
        out.push(total % ROUND);
    }
    out
}

/// A proptest configuration of exactly `cases` cases (one round), keeping no failure files.
pub fn round(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// HTTP answers counted by their hundreds (index 2 holds the 2xx, 5 the 5xx and beyond).
pub type Answers = [usize; 6];

/// Runs `property` on [`cases`]`(default)` cases in [`rounds`], each round with a fresh
/// world from `world` (which also gives the strategy the round's cases are drawn from). The
/// property answers the HTTP status of its case, or `None` for a case that is not one (a
/// request API Gateway would not hand over). Panics with proptest's smallest failing case;
/// returns the statuses by their hundreds, having checked that cases reached both the
/// handlers (2xx) and the refusals (4xx).
pub fn http_rounds<W, S: Strategy>(
    default: u32,
    mut world: impl FnMut() -> (W, S),
    property: impl Fn(&W, S::Value) -> Result<Option<u16>, TestCaseError>,
) -> Answers {
    let answered = std::cell::RefCell::new([0usize; 6]);
    for cases in rounds(default) {
        let (w, strategy) = world();
        let result = TestRunner::new(round(cases)).run(&strategy, |case| {
            if let Some(status) = property(&w, case)? {
                answered.borrow_mut()[usize::from(status / 100).min(5)] += 1;
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }
    let answered = answered.into_inner();
    assert!(
        answered[2] > 0 && answered[4] > 0,
        "the cases reached both the handlers and the refusals: {answered:?}"
    );
    answered
}

/// Text that parsers trip on: empty, huge numbers, odd dates, control and wide characters.
pub fn odd_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("1e400".to_string()),
        Just("-0".to_string()),
        Just("NaN".to_string()),
        Just("99999999999999999999999999999".to_string()),
        Just("0000-00-00T00:00:00".to_string()),
        Just("2026-02-30T25:61:61Z".to_string()),
        Just("2026-11-01T01:30:00".to_string()),
        Just("null".to_string()),
        "[0-9T:+Z. -]{0,30}",
        "\\PC{0,24}",
        any::<String>().prop_map(|s| s.chars().take(40).collect()),
    ]
}

/// A JSON value of any type, odd ones favoured.
pub fn odd_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        odd_text().prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer in `v`, the root's included.
pub fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, here: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    walk(child, format!("{here}/{key}"), out);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    walk(child, format!("{here}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(here);
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

/// One change to a document.
#[derive(Clone, Debug)]
enum Change {
    Replace(Value),
    Remove,
    WrapInArray,
    Stringify,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => odd_value().prop_map(Change::Replace),
        2 => Just(Change::Remove),
        1 => Just(Change::WrapInArray),
        1 => Just(Change::Stringify),
    ]
}

fn apply(doc: &mut Value, pointer: &str, change: Change) {
    if let Change::Remove = change {
        if let Some((parent, last)) = pointer.rsplit_once('/') {
            let key = last.replace("~1", "/").replace("~0", "~");
            match doc.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(&key);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = key.parse::<usize>() {
                        if i < a.len() {
                            a.remove(i);
                        }
                    }
                }
                _ => {}
            }
        }
        return;
    }
    let Some(slot) = doc.pointer_mut(pointer) else {
        return;
    };
    *slot = match change {
        Change::Replace(v) => v,
        Change::WrapInArray => json!([slot.take()]),
        Change::Stringify => Value::from(slot.to_string()),
        Change::Remove => return,
    };
}

/// `seed` with up to `most` of its values changed: replaced by odd values, removed, wrapped
/// in an array or turned into their JSON text.
pub fn mutated(seed: Value, most: usize) -> impl Strategy<Value = Value> {
    let places = pointers(&seed);
    let count = places.len().max(1);
    proptest::collection::vec((0..count, change()), 0..=most).prop_map(move |changes| {
        let mut doc = seed.clone();
        for (at, change) in changes {
            if let Some(pointer) = places.get(at) {
                apply(&mut doc, pointer, change);
            }
        }
        doc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_add_up_to_the_cases_asked_for() {
        let sum = |v: Vec<u32>| v.iter().sum::<u32>();
        assert_eq!(sum(rounds(12_345)), cases(12_345));
        assert!(rounds(12_345).iter().all(|r| *r <= ROUND && *r > 0));
    }

    #[test]
    fn pointers_name_every_value_and_a_change_lands_where_it_points() {
        let doc = json!({"a": [1, {"b/c": 2}], "d": null});
        let mut places = pointers(&doc);
        places.sort();
        assert_eq!(places, ["", "/a", "/a/0", "/a/1", "/a/1/b~1c", "/d"]);
        let mut changed = doc.clone();
        apply(&mut changed, "/a/1/b~1c", Change::Replace(json!("x")));
        apply(&mut changed, "/a/0", Change::Remove);
        apply(&mut changed, "/d", Change::WrapInArray);
        assert_eq!(changed, json!({"a": [{"b/c": "x"}], "d": [null]}));
    }
}
