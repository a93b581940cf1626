//! Reading CSV: a header row of field names (any order, optional columns
//! left out), then one order per record. The parser holds a whole record,
//! so a record's size is bounded while it is read.

use std::io::{self, BufRead, Read};

use super::{fatal, raw_text, rejected, Fatal, Item, Rejected, MAX_RECORD_BYTES};
use crate::domain::record::Columns;
use crate::domain::{FieldError, OrderRecord, ValidationErrors};

/// The CSV parser's read buffer: it reads at most this far ahead of the
/// record it is parsing.
const CSV_BUFFER: usize = 64 * 1024;

/// Where the record being parsed began: its byte offset and line.
type RecordStart = std::rc::Rc<std::cell::Cell<(u64, u64)>>;

/// Fails a read once the record being parsed has grown past the limit, so
/// that neither a line without line breaks nor a quoted field running over
/// many short lines (an unclosed quote) can fill the memory: the CSV parser
/// holds a whole record. The reading loop sets `start` before each record.
struct RecordLimit<R> {
    inner: R,
    /// Bytes handed to the parser so far.
    read: u64,
    start: RecordStart,
}

impl<R: Read> Read for RecordLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let (start, line) = self.start.get();
        // The record so far, and what the parser read ahead of it (less
        // than its buffer: a record within that much of the limit may be
        // refused too; no order comes near).
        if self.read.saturating_sub(start) > MAX_RECORD_BYTES as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                RecordTooLong(line),
            ));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct RecordTooLong(u64);

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the record starting on line {} is longer than {} bytes",
            self.0, MAX_RECORD_BYTES
        )
    }
}

impl std::error::Error for RecordTooLong {}

fn csv_fatal(e: csv::Error) -> Fatal {
    let line = e.position().map_or(0, |p| p.line());
    if let csv::ErrorKind::Io(io) = e.kind() {
        if let Some(RecordTooLong(at)) = io.get_ref().and_then(|inner| inner.downcast_ref()) {
            return fatal(
                *at,
                format!(
                    "the record is longer than {MAX_RECORD_BYTES} bytes (a very long line, or \
                     an unclosed quote running over the lines after it); no order is that long"
                ),
            );
        }
        return fatal(line, format!("cannot read: {io}"));
    }
    fatal(line, format!("not valid CSV: {e}"))
}

/// Reads a CSV file: a header row of field names, then one order per
/// record.
pub(super) fn read(reader: impl BufRead, each: &mut dyn FnMut(Item) -> bool) -> Result<(), Fatal> {
    let start = RecordStart::new(std::cell::Cell::new((0, 1)));
    let limited = RecordLimit {
        inner: reader,
        read: 0,
        start: start.clone(),
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(CSV_BUFFER)
        .from_reader(limited);
    let mut record = csv::ByteRecord::new();
    if !csv.read_byte_record(&mut record).map_err(csv_fatal)? {
        return Err(fatal(
            1,
            "the file is empty: a CSV file starts with a header row",
        ));
    }
    let names: Vec<&str> = record
        .iter()
        .map(std::str::from_utf8)
        .collect::<Result<_, _>>()
        .map_err(|_| fatal(1, "the header row is not valid UTF-8"))?;
    let columns = Columns::from_header(&names).map_err(|e| {
        fatal(
            record.position().map_or(1, |p| p.line()),
            format!("bad header row: {}", e.summary()),
        )
    })?;
    loop {
        let at = csv.position();
        start.set((at.byte(), at.line()));
        if !csv.read_byte_record(&mut record).map_err(csv_fatal)? {
            return Ok(());
        }
        let line = record.position().map_or(0, |p| p.line());
        let raw = || {
            record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect::<Vec<_>>()
                .join(",")
        };
        if record.len() != columns.width() {
            let item = Item::Rejected(Rejected {
                line,
                errors: vec![FieldError::new(
                    "record",
                    format!(
                        "has {} fields where the header has {} (a truncated line?)",
                        record.len(),
                        columns.width()
                    ),
                )],
                raw: raw_text(raw().as_bytes()),
            });
            if !each(item) {
                return Ok(());
            }
            continue;
        }
        let mut cells: Vec<&str> = Vec::with_capacity(columns.width());
        let mut errors = ValidationErrors::default();
        for (i, field) in record.iter().enumerate() {
            match std::str::from_utf8(field) {
                Ok(text) => cells.push(text),
                Err(_) => {
                    errors.push(names_at(&columns, i), "is not valid UTF-8");
                    cells.push("");
                }
            }
        }
        let item = if !errors.is_empty() {
            rejected(line, errors, raw().as_bytes())
        } else {
            match OrderRecord::from_text(&columns, &cells) {
                Ok(record) => Item::Record { line, record },
                Err(errors) => rejected(line, errors, raw().as_bytes()),
            }
        };
        if !each(item) {
            return Ok(());
        }
    }
}

/// The field name of column `i`.
fn names_at(columns: &Columns, i: usize) -> &'static str {
    use crate::domain::record::Field;
    Field::ALL
        .into_iter()
        .find(|f| columns.position(*f) == Some(i))
        .map_or("record", |f| f.name())
}
