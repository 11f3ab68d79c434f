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

/// Several errors in one message, `; ` between them (every error of a class, or of a
/// mount's attributes, so that one edit can fix them all).
pub fn write_joined<T: std::fmt::Display>(
    f: &mut std::fmt::Formatter<'_>,
    items: &[T],
) -> std::fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// A whole message of at most `max` bytes (cut on a character boundary, with a note of
/// how long it was): a class with thousands of broken objects makes one.
pub fn capped(mut message: String, max: usize) -> String {
    if message.len() <= max {
        return message;
    }
    let total = message.len();
    let mut cut = max.saturating_sub(64);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push_str(&format!("… ({total} bytes in all)"));
    message
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

    #[test]
    fn a_long_message_is_capped() {
        let long = "ab".repeat(10_000);
        let shown = capped(long, 1000);
        assert!(
            shown.len() <= 1000 && shown.ends_with("(20000 bytes in all)"),
            "{shown}"
        );
        assert_eq!(capped("short".into(), 1000), "short");
    }
}
