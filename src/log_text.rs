//! Text from outside made safe for a log line: bounded in length, with
//! control characters replaced. A leaf, used wherever a log field may hold
//! what a client or a server sent.

/// A duration as a log field: a number of milliseconds to the
/// microsecond (`0.437`, never `0.43720800000000004`: a whole number of
/// microseconds over 1000 prints as its shortest decimal). Every duration
/// in the log goes through here, so they all read alike.
pub fn millis(d: std::time::Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// Longest text from outside (a request, a database message) that goes
/// into one field of a log line, in characters.
pub const MAX_LOGGED_CHARS: usize = 512;

/// `text` made safe for a log field: at most `max_chars` characters (then a
/// marker with the number of bytes left out), control characters replaced,
/// so nothing a client sends can grow a line without bound or forge a new
/// one. Borrowed when nothing had to change.
pub fn clip(text: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    let cut = text
        .char_indices()
        .nth(max_chars)
        .map_or(text.len(), |(at, _)| at);
    let clean = !text[..cut].chars().any(char::is_control);
    if clean && cut == text.len() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out: String = text[..cut]
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if cut < text.len() {
        out.push_str(&format!("…(+{} bytes)", text.len() - cut));
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_milliseconds_to_the_microsecond() {
        use std::time::Duration;
        assert_eq!(millis(Duration::from_nanos(437_208)).to_string(), "0.437");
        assert_eq!(
            serde_json::to_string(&millis(Duration::from_nanos(1_234_567_891))).unwrap(),
            "1234.567"
        );
        assert_eq!(millis(Duration::from_secs(10)), 10_000.0);
    }

    #[test]
    fn clip_bounds_length_and_removes_control_characters() {
        assert!(matches!(
            clip("short", 10),
            std::borrow::Cow::Borrowed("short")
        ));
        assert_eq!(clip("abcdef", 3), "abc…(+3 bytes)");
        assert_eq!(clip("a\nb", 10), "a\u{fffd}b");
        assert_eq!(clip("ééé", 2), "éé…(+2 bytes)");
        let long = "M".repeat(50 * 1024);
        assert!(clip(&long, MAX_LOGGED_CHARS).len() < MAX_LOGGED_CHARS + 32);
    }
}
