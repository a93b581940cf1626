//! An error and its causes written on one line, for logs and start-up
//! messages. A leaf, so that every layer (storage, relay, transfer, the
//! HTTP API) can use it without depending on another.

use std::error::Error;

/// An error and its causes on one line, for the logs.
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    chain(e, false)
}

/// The error and its causes in one line, leaving out a cause whose text is
/// already in the line (a store error shows its source in its own text).
pub fn distinct_chain(e: &(dyn Error + 'static)) -> String {
    chain(e, true)
}

fn chain(e: &(dyn Error + 'static), skip_repeated: bool) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !(skip_repeated && text.contains(&cause_text)) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_follow_on_one_line() {
        let e = Outer(std::io::Error::other("refused"));
        assert_eq!(error_chain(&e), "cannot connect: refused: refused");
        assert_eq!(distinct_chain(&e), "cannot connect: refused");
    }
}
