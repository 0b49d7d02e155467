//! Parsing of one cron field (values, ranges, steps, names) into a bit set, and the
//! reverse: writing a bit set as the shortest readable EventBridge field text.
//!
//! A field is parsed in the numbering of the dialect it came from and then handed to the
//! caller as a set of *values*, so translating between dialects is a matter of mapping
//! values, never of rewriting text.

use super::ExpressionError;

/// Limits and names of one field in one dialect.
pub(crate) struct FieldRule {
    pub name: &'static str,
    pub min: u32,
    pub max: u32,
    /// Subtracted from every value before it is stored, so that years fit in a [`Bits`].
    pub base: u32,
    /// Names accepted in place of numbers (case-insensitive), paired with their value.
    pub names: &'static [(&'static str, u32)],
}

/// Months by name, shared by every dialect.
pub(crate) const MONTH_NAMES: &[(&str, u32)] = &[
    ("JAN", 1),
    ("FEB", 2),
    ("MAR", 3),
    ("APR", 4),
    ("MAY", 5),
    ("JUN", 6),
    ("JUL", 7),
    ("AUG", 8),
    ("SEP", 9),
    ("OCT", 10),
    ("NOV", 11),
    ("DEC", 12),
];

/// A set of small integers (every field fits in 0..=255 except years, which are offset).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub(crate) struct Bits([u64; 4]);

impl Bits {
    pub fn insert(&mut self, v: u32) {
        self.0[(v / 64) as usize] |= 1 << (v % 64);
    }

    pub fn contains(&self, v: u32) -> bool {
        v < 256 && self.0[(v / 64) as usize] & (1 << (v % 64)) != 0
    }

    /// Smallest member that is `>= from`, if any.
    pub fn next_from(&self, from: u32) -> Option<u32> {
        (from..256).find(|v| self.contains(*v))
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..256).filter(|v| self.contains(*v))
    }

    pub fn range(lo: u32, hi: u32) -> Self {
        let mut b = Bits::default();
        for v in lo..=hi {
            b.insert(v);
        }
        b
    }
}

/// Parses a field such as `*/15`, `1-5`, `MON-FRI`, `0,30`, `5/10` into the set of values it
/// names, in the dialect's own numbering.
pub(crate) fn parse_set(text: &str, rule: &FieldRule) -> Result<Bits, ExpressionError> {
    if text.is_empty() {
        return Err(ExpressionError::new(format!(
            "the {} field is empty",
            rule.name
        )));
    }
    let mut bits = Bits::default();
    for item in text.split(',') {
        parse_item(item, rule, &mut bits)?;
    }
    Ok(bits)
}

fn parse_item(item: &str, rule: &FieldRule, bits: &mut Bits) -> Result<(), ExpressionError> {
    if item.is_empty() {
        return Err(ExpressionError::new(format!(
            "the {} field has an empty list item",
            rule.name
        ))
        .hint("remove the doubled or trailing comma"));
    }
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => (r, Some(parse_step(s, rule)?)),
        None => (item, None),
    };
    let (lo, hi) = if range == "*" {
        (rule.min, rule.max)
    } else if let Some((a, b)) = range.split_once('-') {
        let lo = parse_value(a, rule)?;
        let hi = parse_value(b, rule)?;
        if lo > hi {
            return Err(ExpressionError::new(format!(
                "the {} range '{range}' runs backwards",
                rule.name
            ))
            .hint("write the smaller value first, or split it into two ranges joined by a comma"));
        }
        (lo, hi)
    } else {
        let v = parse_value(range, rule)?;
        // `5/10` means "from 5 to the end, every 10"; a lone value is just itself.
        (v, if step.is_some() { rule.max } else { v })
    };
    let step = step.unwrap_or(1);
    let mut v = lo;
    while v <= hi {
        bits.insert(v - rule.base);
        v += step;
    }
    Ok(())
}

fn parse_step(text: &str, rule: &FieldRule) -> Result<u32, ExpressionError> {
    let step = parse_number(text).ok_or_else(|| {
        ExpressionError::new(format!(
            "the {} step '{text}' is not a whole number",
            rule.name
        ))
    })?;
    if step == 0 || step > rule.max - rule.min + 1 {
        return Err(
            ExpressionError::new(format!("the {} step {step} is out of range", rule.name))
                .hint(format!("use a step from 1 to {}", rule.max - rule.min + 1)),
        );
    }
    Ok(step)
}

/// A number or a name, checked against the field's range.
pub(crate) fn parse_value(text: &str, rule: &FieldRule) -> Result<u32, ExpressionError> {
    let value = match parse_number(text) {
        Some(v) => v,
        None => rule
            .names
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                ExpressionError::new(format!("'{text}' is not a valid {} value", rule.name))
                    .hint(range_hint(rule))
            })?,
    };
    if value < rule.min || value > rule.max {
        return Err(ExpressionError::new(format!(
            "{value} is out of range for the {} field",
            rule.name
        ))
        .hint(range_hint(rule)));
    }
    Ok(value)
}

fn range_hint(rule: &FieldRule) -> String {
    let mut hint = format!("{} takes {} to {}", rule.name, rule.min, rule.max);
    if let (Some(first), Some(last)) = (rule.names.first(), rule.names.last()) {
        hint.push_str(&format!(" or the names {}-{}", first.0, last.0));
    }
    hint
}

/// Parses an unsigned decimal of at most 9 digits (no signs, no spaces).
pub(crate) fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Writes a set as EventBridge field text: `*` when it is the whole range, `a/step` for an
/// arithmetic run to the end of the range, otherwise a list of values and ranges.
/// `label` turns a value into its printed form (names for days of the week).
pub(crate) fn format_set(bits: &Bits, min: u32, max: u32, label: &dyn Fn(u32) -> String) -> String {
    let values: Vec<u32> = bits.iter().filter(|v| *v >= min && *v <= max).collect();
    if values.len() as u32 == max - min + 1 {
        return "*".to_string();
    }
    if values.len() >= 3 {
        let step = values[1] - values[0];
        let arithmetic = step > 1 && values.windows(2).all(|w| w[1] - w[0] == step);
        if arithmetic && values[values.len() - 1] + step > max {
            return format!("{}/{}", label(values[0]), step);
        }
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let start = values[i];
        let mut end = start;
        while i + 1 < values.len() && values[i + 1] == end + 1 {
            i += 1;
            end = values[i];
        }
        parts.push(match end - start {
            0 => label(start),
            1 => format!("{},{}", label(start), label(end)),
            _ => format!("{}-{}", label(start), label(end)),
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: FieldRule = FieldRule {
        name: "minute",
        min: 0,
        max: 59,
        base: 0,
        names: &[],
    };

    fn num(v: u32) -> String {
        v.to_string()
    }

    #[test]
    fn a_step_over_the_whole_range_is_written_from_its_start() {
        let bits = parse_set("*/15", &MINUTE).unwrap();
        assert_eq!(format_set(&bits, 0, 59, &num), "0/15");
    }

    #[test]
    fn ranges_and_singles_are_compressed() {
        let bits = parse_set("1,2,3,7,9,10", &MINUTE).unwrap();
        assert_eq!(format_set(&bits, 0, 59, &num), "1-3,7,9,10");
    }

    #[test]
    fn a_backwards_range_is_rejected_with_a_fix() {
        let err = parse_set("30-10", &MINUTE).unwrap_err();
        assert!(err.to_string().contains("runs backwards"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_limits() {
        let err = parse_set("60", &MINUTE).unwrap_err().to_string();
        assert!(err.contains("0 to 59"), "{err}");
    }

    #[test]
    fn a_zero_step_is_rejected() {
        assert!(parse_set("*/0", &MINUTE).is_err());
    }
}
