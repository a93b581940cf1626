//! Reading NDJSON (also `.jsonl`): one JSON object per line, each line
//! read with a bound on what is kept.

use std::io::{self, BufRead};

use super::{fatal, json_item, too_long, Fatal, Item, MAX_RECORD_BYTES};

/// Reads up to the next `\n` into `buf`, keeping at most `limit` bytes;
/// returns the bytes consumed (0 at the end) and whether the line was cut.
fn read_line_limited(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut cut = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed, cut));
        }
        let (chunk, done) = match memchr_newline(available) {
            Some(at) => (&available[..=at], true),
            None => (available, false),
        };
        let room = limit.saturating_sub(buf.len());
        if chunk.len() > room {
            cut = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        reader.consume(n);
        consumed += n;
        if done {
            return Ok((consumed, cut));
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

/// Reads NDJSON: one JSON object per line; blank lines are skipped.
pub(super) fn read(
    mut reader: impl BufRead,
    each: &mut dyn FnMut(Item) -> bool,
) -> Result<(), Fatal> {
    let mut buf = Vec::with_capacity(1024);
    let mut line = 0u64;
    loop {
        buf.clear();
        let (n, cut) = read_line_limited(&mut reader, &mut buf, MAX_RECORD_BYTES)
            .map_err(|e| fatal(line + 1, format!("cannot read: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        let item = if cut {
            too_long(line, &buf)
        } else {
            let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let text = if line == 1 {
                text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text)
            } else {
                text
            };
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            json_item(line, text)
        };
        if !each(item) {
            return Ok(());
        }
    }
}
