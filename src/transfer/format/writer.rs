//! Writing orders in the canonical form every reader takes back.

use std::io::{self, Write};

use super::Format;
use crate::domain::record::{write_time, FIELDS};
use crate::domain::Order;

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
