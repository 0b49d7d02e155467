//! Values that reach a log line from outside (a request path, a header) are clipped first,
//! so a client cannot fill the logs (or the bill for them) with one long request.

use std::borrow::Cow;

/// Longest outside value a log line carries, in characters.
pub const MAX_LOGGED_CHARS: usize = 128;

/// `text` as it may be logged: whole when short, else its first [`MAX_LOGGED_CHARS`]
/// characters followed by how long it was.
pub fn clip(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_LOGGED_CHARS) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…({} bytes in all)", &text[..end], text.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_logged_whole_and_long_ones_clipped_on_a_character_boundary() {
        assert_eq!(clip("/webhooks/woocommerce/1"), "/webhooks/woocommerce/1");
        let long = "é".repeat(60_000);
        let shown = clip(&long);
        assert!(shown.starts_with(&"é".repeat(MAX_LOGGED_CHARS)));
        assert!(shown.ends_with("…(120000 bytes in all)"), "{shown}");
        assert!(shown.chars().count() < MAX_LOGGED_CHARS + 40);
    }
}
