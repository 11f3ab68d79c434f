//! Class input quoted in messages: at most a bounded prefix of it. A 262,000-character
//! objectName must not become a 524 KB log line, or a gRPC status too large for the
//! driver's client to read.

/// Characters of one input shown in a message.
pub const MAX_QUOTED_CHARS: usize = 160;

/// `text`, or its first [`MAX_QUOTED_CHARS`] characters followed by how much was left out.
pub fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…({} bytes in all)", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_long_text_is_cut_on_a_character_boundary() {
        assert_eq!(bounded("db-password"), "db-password");
        let long = "é".repeat(1000);
        let shown = bounded(&long);
        assert!(shown.starts_with(&"é".repeat(MAX_QUOTED_CHARS)));
        assert!(shown.ends_with("…(2000 bytes in all)"), "{shown}");
    }
}
