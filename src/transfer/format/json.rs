//! Reading a JSON array of order objects without holding it whole.

use std::io::BufRead;

use super::{fatal, json_item, too_long, Fatal, Item, MAX_RECORD_BYTES};

/// A byte-at-a-time view of a buffered reader that counts lines.
struct Bytes<R> {
    reader: R,
    line: u64,
}

impl<R: BufRead> Bytes<R> {
    fn peek(&mut self) -> Result<Option<u8>, Fatal> {
        match self.reader.fill_buf() {
            Ok(b) => Ok(b.first().copied()),
            Err(e) => Err(fatal(self.line, format!("cannot read: {e}"))),
        }
    }

    fn bump(&mut self, b: u8) {
        self.reader.consume(1);
        if b == b'\n' {
            self.line += 1;
        }
    }

    fn skip_whitespace(&mut self) -> Result<Option<u8>, Fatal> {
        loop {
            match self.peek()? {
                Some(b) if b.is_ascii_whitespace() => self.bump(b),
                other => return Ok(other),
            }
        }
    }
}

/// Reads a top-level JSON array element by element: a small scanner finds
/// where each element ends (tracking strings and nesting), and only that
/// element is parsed, so the array is never held whole.
pub(super) fn read(reader: impl BufRead, each: &mut dyn FnMut(Item) -> bool) -> Result<(), Fatal> {
    let mut input = Bytes { reader, line: 1 };
    if input.peek()? == Some(0xEF) {
        for _ in 0..3 {
            input.bump(0);
        }
    }
    match input.skip_whitespace()? {
        Some(b'[') => input.bump(b'['),
        _ => {
            return Err(fatal(
                input.line,
                "a JSON file must hold one array of order objects",
            ))
        }
    }
    if input.skip_whitespace()? == Some(b']') {
        input.bump(b']');
        return expect_end(&mut input);
    }
    let mut buf = Vec::with_capacity(1024);
    loop {
        if input.skip_whitespace()?.is_none() {
            return Err(fatal(
                input.line,
                "the file ends inside the array (truncated?)",
            ));
        }
        let line = input.line;
        buf.clear();
        let mut cut = false;
        let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
        loop {
            let Some(b) = input.peek()? else {
                return Err(fatal(
                    line,
                    "the file ends inside this element (truncated?)",
                ));
            };
            if !in_string && depth == 0 && (b == b',' || b == b']') {
                break;
            }
            input.bump(b);
            if buf.len() < MAX_RECORD_BYTES {
                buf.push(b);
            } else {
                cut = true;
            }
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth == 0 => {
                        return Err(fatal(input.line, "unbalanced brackets in the array"))
                    }
                    b'}' | b']' => depth -= 1,
                    _ => {}
                }
            }
        }
        let item = if cut {
            too_long(line, &buf)
        } else {
            json_item(line, &buf)
        };
        if !each(item) {
            return Ok(());
        }
        match input.peek()? {
            Some(b',') => input.bump(b','),
            Some(b']') => {
                input.bump(b']');
                return expect_end(&mut input);
            }
            _ => unreachable!("the scanner stops only at , or ]"),
        }
    }
}

fn expect_end<R: BufRead>(input: &mut Bytes<R>) -> Result<(), Fatal> {
    match input.skip_whitespace()? {
        None => Ok(()),
        Some(_) => Err(fatal(input.line, "unexpected data after the array")),
    }
}
