//! The file formats: CSV (with a header row), a JSON array, NDJSON. Reading
//! and writing both stream, a record at a time, so memory stays flat
//! whatever the size of the file.
//!
//! Readers turn bytes into [`OrderRecord`]s through the domain's one
//! parser, and say where each record starts (its line). A bad record is
//! reported and reading goes on; only a file whose structure is lost (an
//! unreadable header, a JSON array that is not closed, a CSV record longer
//! than [`MAX_RECORD_BYTES`]) stops it. Writers give the canonical form that
//! the readers take back losslessly: decimal strings with two decimals,
//! RFC 3339 UTC times with microseconds, ids.

use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use serde_json::Value;

use crate::domain::record::{write_time, Columns, FIELDS};
use crate::domain::{FieldError, Order, OrderRecord, ValidationErrors};

/// The longest record (a line, or a JSON-array element) read; a real order
/// is a few hundred bytes.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// A data file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header row of field names.
    Csv,
    /// One JSON array of order objects.
    Json,
    /// One JSON object per line (also `.jsonl`).
    Ndjson,
}

impl Format {
    /// The format a file name's extension says, if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            _ => None,
        }
    }

    /// Guesses from the first bytes of a stream without consuming them:
    /// `[` is a JSON array, `{` NDJSON, anything else CSV.
    pub fn sniff(reader: &mut impl BufRead) -> io::Result<Format> {
        let buf = reader.fill_buf()?;
        let buf = buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(buf);
        Ok(
            match buf.iter().find(|b| !b.is_ascii_whitespace()).copied() {
                Some(b'[') => Format::Json,
                Some(b'{') => Format::Ndjson,
                _ => Format::Csv,
            },
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
        }
    }
}

/// A record that breaks the rules, with what it looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub errors: Vec<FieldError>,
    /// The record's text (invalid UTF-8 replaced), cut to a few KiB.
    pub raw: String,
}

/// What a reader finds, record by record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Record { line: u64, record: OrderRecord },
    Rejected(Rejected),
}

/// A reason to stop reading a file: its structure is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    pub line: u64,
    pub message: String,
}

fn fatal(line: u64, message: impl Into<String>) -> Fatal {
    Fatal {
        line,
        message: message.into(),
    }
}

const RAW_KEPT: usize = 4096;

fn raw_text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(RAW_KEPT)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > RAW_KEPT {
        text.push('…');
    }
    text
}

fn rejected(line: u64, errors: ValidationErrors, raw: &[u8]) -> Item {
    Item::Rejected(Rejected {
        line,
        errors: errors.0,
        raw: raw_text(raw),
    })
}

/// Reads every record of `reader` in `format`, handing each to `each`,
/// which returns `false` to stop early.
pub fn read(
    format: Format,
    reader: impl BufRead,
    each: &mut dyn FnMut(Item) -> bool,
) -> Result<(), Fatal> {
    match format {
        Format::Csv => read_csv(reader, each),
        Format::Ndjson => read_ndjson(reader, each),
        Format::Json => read_json_array(reader, each),
    }
}

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

fn read_csv(reader: impl BufRead, each: &mut dyn FnMut(Item) -> bool) -> Result<(), Fatal> {
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
    [
        Field::Id,
        Field::OrderId,
        Field::CustomerId,
        Field::Status,
        Field::TotalAmount,
        Field::CreatedAt,
        Field::UpdatedAt,
    ]
    .into_iter()
    .find(|f| columns.position(*f) == Some(i))
    .map_or("record", |f| f.name())
}

/// Parses one JSON record (an NDJSON line, an array element).
fn json_item(line: u64, bytes: &[u8]) -> Item {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => match OrderRecord::from_json(&value) {
            Ok(record) => Item::Record { line, record },
            Err(errors) => rejected(line, errors, bytes),
        },
        Err(e) => rejected(
            line,
            ValidationErrors::one("record", format!("is not valid JSON: {e}")),
            bytes,
        ),
    }
}

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

fn read_ndjson(mut reader: impl BufRead, each: &mut dyn FnMut(Item) -> bool) -> Result<(), Fatal> {
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
            rejected(
                line,
                ValidationErrors::one(
                    "record",
                    format!("is longer than {MAX_RECORD_BYTES} bytes; no order is that long"),
                ),
                &buf,
            )
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
fn read_json_array(reader: impl BufRead, each: &mut dyn FnMut(Item) -> bool) -> Result<(), Fatal> {
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
            rejected(
                line,
                ValidationErrors::one(
                    "record",
                    format!("is longer than {MAX_RECORD_BYTES} bytes; no order is that long"),
                ),
                &buf,
            )
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

/// The text of each field of an order, in [`FIELDS`] order, reusing one
/// buffer.
struct Cells {
    text: String,
    ends: [usize; 7],
}

impl Cells {
    fn new() -> Cells {
        Cells {
            text: String::with_capacity(256),
            ends: [0; 7],
        }
    }

    fn fill(&mut self, o: &Order) {
        use std::fmt::Write as _;
        self.text.clear();
        let _ = write!(self.text, "{}", o.id);
        self.ends[0] = self.text.len();
        self.text.push_str(&o.order_id);
        self.ends[1] = self.text.len();
        self.text.push_str(&o.customer_id);
        self.ends[2] = self.text.len();
        self.text.push_str(o.status.as_str());
        self.ends[3] = self.text.len();
        let _ = write!(self.text, "{}", o.total_amount);
        self.ends[4] = self.text.len();
        write_time(&mut self.text, &o.created_at);
        self.ends[5] = self.text.len();
        write_time(&mut self.text, &o.updated_at);
        self.ends[6] = self.text.len();
    }

    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

/// Writes orders in a format: CSV with a header, a JSON array, or NDJSON,
/// one order per line, fields in [`FIELDS`] order.
pub struct OrderWriter<W: Write> {
    format: Format,
    out: Option<W>,
    csv: Option<csv::Writer<W>>,
    cells: Cells,
    line: Vec<u8>,
    written: u64,
}

impl<W: Write> OrderWriter<W> {
    pub fn new(format: Format, mut out: W) -> io::Result<OrderWriter<W>> {
        let mut csv = None;
        let mut plain = None;
        match format {
            Format::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .buffer_capacity(64 * 1024)
                    .from_writer(out);
                w.write_record(FIELDS)?;
                csv = Some(w);
            }
            Format::Json => {
                out.write_all(b"[\n")?;
                plain = Some(out);
            }
            Format::Ndjson => plain = Some(out),
        }
        Ok(OrderWriter {
            format,
            out: plain,
            csv,
            cells: Cells::new(),
            line: Vec::with_capacity(256),
            written: 0,
        })
    }

    pub fn write(&mut self, order: &Order) -> io::Result<()> {
        self.cells.fill(order);
        if let Some(csv) = &mut self.csv {
            let c = &self.cells;
            csv.write_record([
                c.get(0),
                c.get(1),
                c.get(2),
                c.get(3),
                c.get(4),
                c.get(5),
                c.get(6),
            ])?;
        } else if let Some(out) = &mut self.out {
            self.line.clear();
            if self.format == Format::Json && self.written > 0 {
                self.line.extend_from_slice(b",\n");
            }
            let c = &self.cells;
            self.line.extend_from_slice(b"{\"id\":");
            self.line.extend_from_slice(c.get(0).as_bytes());
            for (i, name) in FIELDS.iter().enumerate().skip(1) {
                self.line.extend_from_slice(b",\"");
                self.line.extend_from_slice(name.as_bytes());
                self.line.extend_from_slice(b"\":");
                serde_json::to_writer(&mut self.line, c.get(i))?;
            }
            self.line.push(b'}');
            if self.format == Format::Ndjson {
                self.line.push(b'\n');
            }
            out.write_all(&self.line)?;
        }
        self.written += 1;
        Ok(())
    }

    /// How many orders were written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Ends the document and flushes; gives the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        if let Some(csv) = self.csv.take() {
            return csv.into_inner().map_err(|e| e.into_error());
        }
        let mut out = self.out.take().expect("a writer");
        if self.format == Format::Json {
            out.write_all(if self.written > 0 { b"\n]\n" } else { b"]\n" })?;
        }
        out.flush()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    use crate::domain::format_time;
    use crate::domain::generate::{Generator, Spec};

    fn orders(n: u64) -> Vec<Order> {
        let mut v: Vec<Order> =
            Generator::new(Spec::new(n, 7, "2026-01-01T00:00:00Z".parse().unwrap())).collect();
        v[0].order_id = "=cmd|' /C calc'!A0".into();
        v[1].customer_id = "a \"quoted\", comma\u{e9}".into();
        v
    }

    fn write_all(format: Format, orders: &[Order]) -> Vec<u8> {
        let mut w = OrderWriter::new(format, Vec::new()).unwrap();
        for o in orders {
            w.write(o).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(format: Format, bytes: &[u8]) -> (Vec<Item>, Result<(), Fatal>) {
        let mut items = Vec::new();
        let r = read(format, bytes, &mut |item| {
            items.push(item);
            true
        });
        (items, r)
    }

    fn records(items: &[Item]) -> Vec<Order> {
        items
            .iter()
            .map(|i| match i {
                Item::Record { record, .. } => {
                    let h = record.to_historical(Utc::now());
                    Order {
                        id: record.id.unwrap(),
                        order_id: h.order.order_id,
                        customer_id: h.order.customer_id,
                        status: h.order.status,
                        total_amount: h.order.total_amount,
                        created_at: h.created_at,
                        updated_at: h.updated_at,
                    }
                }
                Item::Rejected(r) => panic!("rejected: {r:?}"),
            })
            .collect()
    }

    #[test]
    fn every_format_reads_back_what_it_wrote() {
        let orders = orders(50);
        for format in [Format::Csv, Format::Json, Format::Ndjson] {
            let bytes = write_all(format, &orders);
            let (items, end) = read_all(format, &bytes);
            assert_eq!(end, Ok(()), "{format:?}");
            assert_eq!(records(&items), orders, "{format:?}");
            assert_eq!(Format::sniff(&mut &bytes[..]).unwrap(), format);
        }
        let empty = write_all(Format::Json, &[]);
        assert_eq!(read_all(Format::Json, &empty).1, Ok(()));
    }

    #[test]
    fn times_are_written_as_the_contract_shows_them() {
        for o in orders(20) {
            let mut s = String::new();
            write_time(&mut s, &o.created_at);
            assert_eq!(s, format_time(&o.created_at));
        }
    }

    #[test]
    fn ndjson_lines_are_canonical() {
        let o = &orders(2)[0];
        let text = String::from_utf8(write_all(Format::Ndjson, std::slice::from_ref(o))).unwrap();
        assert!(text
            .starts_with("{\"id\":1,\"order_id\":\"=cmd|' /C calc'!A0\",\"customer_id\":\"CUST"));
        assert!(text.ends_with("Z\"}\n"));
    }

    #[test]
    fn csv_rows_are_checked_and_located() {
        let file = b"order_id,customer_id,total_amount\nA,C,1.00\nB,C\n\"C\",\xff,2\nD,C,1.234\n";
        let (items, end) = read_all(Format::Csv, file);
        assert_eq!(end, Ok(()));
        assert!(matches!(items[0], Item::Record { line: 2, .. }));
        let lines: Vec<(u64, String)> = items[1..]
            .iter()
            .map(|i| match i {
                Item::Rejected(r) => (r.line, r.errors[0].field.clone()),
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            lines,
            [
                (3, "record".to_string()),
                (4, "customer_id".to_string()),
                (5, "total_amount".to_string())
            ]
        );
        let e = read_all(Format::Csv, b"order_id,colour\nA,red\n")
            .1
            .unwrap_err();
        assert!(e.message.contains("colour"), "{e:?}");
        assert!(read_all(Format::Csv, b"").1.is_err());
    }

    #[test]
    fn a_huge_line_is_refused_without_being_held() {
        let mut file = b"order_id,customer_id,total_amount\nA,C,1\n".to_vec();
        file.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        file.extend_from_slice(b",C,1\n");
        let e = read_all(Format::Csv, &file).1.unwrap_err();
        assert_eq!(e.line, 3);
        let mut file = b"{\"order_id\":\"".to_vec();
        file.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        file.extend_from_slice(
            b"\"}\n{\"order_id\":\"A\",\"customer_id\":\"C\",\"total_amount\":1}\n",
        );
        let (items, end) = read_all(Format::Ndjson, &file);
        assert_eq!(end, Ok(()));
        assert!(matches!(&items[0], Item::Rejected(r) if r.line == 1 && r.raw.len() < 5000));
        assert!(matches!(items[1], Item::Record { line: 2, .. }));
    }

    #[test]
    fn a_quoted_field_over_many_short_lines_is_bounded() {
        // An unclosed quote: every later line is part of one field.
        let mut file = b"order_id,customer_id,total_amount\nA,C,1\n\"B".to_vec();
        for _ in 0..MAX_RECORD_BYTES / 10 + 10 {
            file.extend_from_slice(b",C,1\nxxxx\n");
        }
        let (items, end) = read_all(Format::Csv, &file);
        assert_eq!(items.len(), 1, "the first row is read");
        let e = end.unwrap_err();
        assert_eq!(e.line, 3, "{e:?}");
        assert!(e.message.contains("an unclosed quote"), "{e:?}");
        // A quoted field may span lines, within reason.
        let (items, end) = read_all(
            Format::Csv,
            b"order_id,customer_id,total_amount\n\"A\nB\",C,1\nD,C,2\n",
        );
        assert_eq!(end, Ok(()));
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], Item::Record { line: 4, .. }));
        // Records ended by a lone CR are records, not one long line.
        let mut file = b"order_id,customer_id,total_amount\r".to_vec();
        for i in 0..MAX_RECORD_BYTES / 8 {
            file.extend_from_slice(format!("A{i},C,1\r").as_bytes());
        }
        let (items, end) = read_all(Format::Csv, &file);
        assert_eq!(end, Ok(()));
        assert_eq!(items.len(), MAX_RECORD_BYTES / 8);
    }

    #[test]
    fn json_arrays_stream_and_report_structure_errors() {
        let file = b"[\n {\"order_id\":\"A\",\"customer_id\":\"C\",\"total_amount\":1},\n {\"order_id\":\"B]\",\"customer_id\":\"C\",\"total_amount\":\"x\"},\n 5\n]\n";
        let (items, end) = read_all(Format::Json, file);
        assert_eq!(end, Ok(()));
        assert!(matches!(items[0], Item::Record { line: 2, .. }));
        assert!(
            matches!(&items[1], Item::Rejected(r) if r.line == 3 && r.errors[0].field == "total_amount")
        );
        assert!(matches!(&items[2], Item::Rejected(r) if r.line == 4));
        let truncated =
            b"[{\"order_id\":\"A\",\"customer_id\":\"C\",\"total_amount\":1},\n{\"order_id\":\"B\"";
        let (items, end) = read_all(Format::Json, truncated);
        assert_eq!(items.len(), 1);
        assert_eq!(end.unwrap_err().line, 2);
        assert!(read_all(Format::Json, b"{}").1.is_err());
        assert!(read_all(Format::Json, b"[] x").1.is_err());
    }
}
