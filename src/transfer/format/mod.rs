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
//!
//! Each format is read by its own file (`csv.rs`, `json.rs`, `ndjson.rs`)
//! and all three are written by `writer.rs`; this file holds what they
//! share: the format names, what a reader yields, and the size bound. The
//! tests here go through [`read`] and [`OrderWriter`], so every format is
//! checked by reading back what it wrote.

mod csv;
mod json;
mod ndjson;
mod writer;

use std::io::{self, BufRead};
use std::path::Path;

use serde_json::Value;

use crate::domain::{FieldError, OrderRecord, ValidationErrors};

pub use writer::OrderWriter;

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
        Format::Csv => csv::read(reader, each),
        Format::Ndjson => ndjson::read(reader, each),
        Format::Json => json::read(reader, each),
    }
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

/// A JSON record (an NDJSON line, an array element) past the size limit:
/// rejected, with only its start kept.
fn too_long(line: u64, bytes: &[u8]) -> Item {
    rejected(
        line,
        ValidationErrors::one(
            "record",
            format!("is longer than {MAX_RECORD_BYTES} bytes; no order is that long"),
        ),
        bytes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    use crate::domain::generate::{Generator, Spec};
    use crate::domain::record::write_time;
    use crate::domain::{format_time, Order};

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
