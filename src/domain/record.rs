//! One order as a data file carries it (a CSV row, a JSON object), checked
//! by the contract's rules.
//!
//! Every import format goes through here, so a row of a file is held to the
//! same rules as a `POST /commandes` body (the text, amount and status rules
//! come from [`super::validation`]), plus the fields an export carries and
//! the API ignores: an optional `id` from 1 to 2^53 - 1 and optional RFC 3339 `created_at`
//! and `updated_at`, with `updated_at` not before `created_at`.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::Value;

use super::validation::{amount_field, status_field, text_field};
use super::{check_text, Amount, HistoricalOrder, NewOrder, Order, Status};
use super::{FieldError, ValidationErrors};

/// The fields of a record, in the order exports write them.
pub const FIELDS: [&str; 7] = [
    "id",
    "order_id",
    "customer_id",
    "status",
    "total_amount",
    "created_at",
    "updated_at",
];

/// The fields a record must have.
const REQUIRED: [Field; 3] = [Field::OrderId, Field::CustomerId, Field::TotalAmount];

/// One of [`FIELDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Id,
    OrderId,
    CustomerId,
    Status,
    TotalAmount,
    CreatedAt,
    UpdatedAt,
}

impl Field {
    /// Every field, in the order of the canonical columns.
    pub const ALL: [Field; 7] = [
        Field::Id,
        Field::OrderId,
        Field::CustomerId,
        Field::Status,
        Field::TotalAmount,
        Field::CreatedAt,
        Field::UpdatedAt,
    ];

    pub fn name(self) -> &'static str {
        FIELDS[self as usize]
    }

    fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A valid order record: the order, and the `id` and times it may carry.
/// Times a record lacks are filled in by [`OrderRecord::to_historical`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub id: Option<i64>,
    pub order: NewOrder,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl OrderRecord {
    /// Parses a JSON object (a JSON-array element or an NDJSON line).
    /// `null` for `id`, `created_at` or `updated_at` means absent.
    pub fn from_json(value: &Value) -> Result<OrderRecord, ValidationErrors> {
        let Some(map) = value.as_object() else {
            return Err(ValidationErrors::one("record", "must be a JSON object"));
        };
        let mut errors = ValidationErrors::default();
        for key in map.keys() {
            if Field::from_name(key).is_none() {
                errors.push(key.clone(), "unknown field");
            }
        }
        for field in REQUIRED {
            if !map.contains_key(field.name()) {
                errors.push(field.name(), "is required");
            }
        }
        let get = |f: Field| map.get(f.name()).filter(|v| !v.is_null() || !f.nullable());
        let order_id = get(Field::OrderId).and_then(|v| text_field("order_id", v, &mut errors));
        let customer_id =
            get(Field::CustomerId).and_then(|v| text_field("customer_id", v, &mut errors));
        let total_amount =
            get(Field::TotalAmount).and_then(|v| amount_field("total_amount", v, &mut errors));
        let status = match get(Field::Status) {
            None => Some(Status::Pending),
            Some(v) => status_field("status", v, &mut errors),
        };
        let id = get(Field::Id).and_then(|v| match v.as_i64().filter(|id| id_in_range(*id)) {
            Some(id) => Some(id),
            None => {
                errors.push("id", ID_MESSAGE);
                None
            }
        });
        let mut time = |f: Field| {
            get(f).and_then(|v| match v.as_str().map(parse_time) {
                Some(Ok(t)) => Some(t),
                Some(Err(message)) => {
                    errors.push(f.name(), message);
                    None
                }
                None => {
                    errors.push(f.name(), TIME_MESSAGE);
                    None
                }
            })
        };
        let created_at = time(Field::CreatedAt);
        let updated_at = time(Field::UpdatedAt);
        finish(
            errors,
            id,
            order_id,
            customer_id,
            status,
            total_amount,
            created_at,
            updated_at,
        )
    }

    /// Parses the text cells of a CSV row, laid out as `columns` says. An
    /// empty cell of an optional field (`id`, `status`, the times) means
    /// absent.
    pub fn from_text(columns: &Columns, cells: &[&str]) -> Result<OrderRecord, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let cell = |f: Field| columns.position(f).and_then(|i| cells.get(i).copied());
        let optional = |f: Field| cell(f).filter(|c| !c.is_empty());
        let text = |f: Field, errors: &mut ValidationErrors| {
            let value = cell(f).unwrap_or_default();
            match check_text(value) {
                Ok(()) => Some(value.to_string()),
                Err(message) => {
                    errors.push(f.name(), message);
                    None
                }
            }
        };
        let order_id = text(Field::OrderId, &mut errors);
        let customer_id = text(Field::CustomerId, &mut errors);
        let total_amount = match Amount::parse_str(cell(Field::TotalAmount).unwrap_or_default()) {
            Ok(a) => Some(a),
            Err(e) => {
                errors.push("total_amount", e.to_string());
                None
            }
        };
        let status = match optional(Field::Status) {
            None => Some(Status::Pending),
            Some(s) => match s.parse::<Status>() {
                Ok(status) => Some(status),
                Err(e) => {
                    errors.push("status", e.to_string());
                    None
                }
            },
        };
        let id = optional(Field::Id).and_then(|s| match parse_id(s) {
            Some(id) => Some(id),
            None => {
                errors.push("id", ID_MESSAGE);
                None
            }
        });
        let mut time = |f: Field| {
            optional(f).and_then(|s| match parse_time(s) {
                Ok(t) => Some(t),
                Err(message) => {
                    errors.push(f.name(), message);
                    None
                }
            })
        };
        let created_at = time(Field::CreatedAt);
        let updated_at = time(Field::UpdatedAt);
        finish(
            errors,
            id,
            order_id,
            customer_id,
            status,
            total_amount,
            created_at,
            updated_at,
        )
    }

    /// A stored order as a record carrying everything (for `copy`).
    pub fn from_order(order: &Order) -> OrderRecord {
        OrderRecord {
            id: Some(order.id),
            order: NewOrder {
                order_id: order.order_id.clone(),
                customer_id: order.customer_id.clone(),
                status: order.status,
                total_amount: order.total_amount,
            },
            created_at: Some(order.created_at),
            updated_at: Some(order.updated_at),
        }
    }

    /// The order with both times: a missing `created_at` is the
    /// `updated_at` if given, else `now`; a missing `updated_at` is the
    /// `created_at`.
    pub fn to_historical(&self, now: DateTime<Utc>) -> HistoricalOrder {
        let created_at = self.created_at.or(self.updated_at).unwrap_or(now);
        HistoricalOrder {
            order: self.order.clone(),
            created_at,
            updated_at: self.updated_at.unwrap_or(created_at),
        }
    }
}

impl Field {
    /// Whether `null` (JSON) means absent.
    fn nullable(self) -> bool {
        matches!(self, Field::Id | Field::CreatedAt | Field::UpdatedAt)
    }
}

/// The largest id a record may carry: 2^53 - 1. Stores move their id
/// sequence past the highest imported id, so an id near `i64::MAX` would
/// leave no room for the next `POST`; this leaves ~2^63 of them, and every
/// id stays exact in JavaScript (`Number.MAX_SAFE_INTEGER`).
pub const MAX_IMPORTED_ID: i64 = (1 << 53) - 1;

const ID_MESSAGE: &str = "must be an integer from 1 to 9007199254740991 (2^53 - 1)";

fn id_in_range(id: i64) -> bool {
    (1..=MAX_IMPORTED_ID).contains(&id)
}
const TIME_MESSAGE: &str = "must be an RFC 3339 timestamp such as \"2026-11-25T19:09:25.123456Z\"";

#[allow(clippy::too_many_arguments)]
fn finish(
    mut errors: ValidationErrors,
    id: Option<i64>,
    order_id: Option<String>,
    customer_id: Option<String>,
    status: Option<Status>,
    total_amount: Option<Amount>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
) -> Result<OrderRecord, ValidationErrors> {
    if let (Some(c), Some(u)) = (created_at, updated_at) {
        if u < c {
            errors.push("updated_at", "must not be before created_at");
        }
    }
    errors.into_result()?;
    Ok(OrderRecord {
        id,
        order: NewOrder {
            order_id: order_id.expect("checked"),
            customer_id: customer_id.expect("checked"),
            status: status.expect("checked"),
            total_amount: total_amount.expect("checked"),
        },
        created_at,
        updated_at,
    })
}

/// ASCII digits making 1…[`MAX_IMPORTED_ID`].
fn parse_id(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().filter(|id| id_in_range(*id))
}

/// An RFC 3339 timestamp, in any offset, as UTC. Stores keep microseconds,
/// so a finer time is refused rather than silently changed; years run from
/// 0001 to 9999 (what both stores hold and sort correctly).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, &'static str> {
    let time = DateTime::parse_from_rfc3339(text)
        .map_err(|_| TIME_MESSAGE)?
        .with_timezone(&Utc);
    if time.nanosecond() % 1000 != 0 {
        return Err("must have at most six fractional digits (microseconds)");
    }
    if !(1..=9999).contains(&time.year()) {
        return Err("must be between the years 0001 and 9999 (UTC)");
    }
    Ok(time)
}

/// Appends `t` as [`super::format_time`] writes it (UTC, microseconds,
/// `Z`), without going through a format string: bulk paths format two
/// times per order.
pub fn write_time(out: &mut String, t: &DateTime<Utc>) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 1000
    );
}

/// Where each field is in the rows of a CSV file, read from its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    positions: [Option<usize>; 7],
    width: usize,
}

impl Columns {
    /// Reads a header row: the contract's field names, in any order, each at
    /// most once; `order_id`, `customer_id` and `total_amount` are required.
    /// Names are matched exactly (a byte-order mark before the first is
    /// ignored).
    pub fn from_header(names: &[&str]) -> Result<Columns, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let mut positions = [None; 7];
        for (i, raw) in names.iter().enumerate() {
            let name = if i == 0 {
                raw.trim_start_matches('\u{feff}')
            } else {
                raw
            };
            match Field::from_name(name) {
                Some(f) if positions[f as usize].is_some() => {
                    errors.push(name, "column given more than once")
                }
                Some(f) => positions[f as usize] = Some(i),
                None if name.is_empty() => errors
                    .0
                    .push(FieldError::new(format!("column {}", i + 1), "has no name")),
                None => errors.push(
                    name,
                    format!("unknown column (the columns are {})", FIELDS.join(", ")),
                ),
            }
        }
        for f in REQUIRED {
            if positions[f as usize].is_none() {
                errors.push(f.name(), "column is required");
            }
        }
        errors.into_result()?;
        Ok(Columns {
            positions,
            width: names.len(),
        })
    }

    /// The index of `field`'s cell, if the file has that column.
    pub fn position(&self, field: Field) -> Option<usize> {
        self.positions[field as usize]
    }

    /// How many cells every row has.
    pub fn width(&self) -> usize {
        self.width
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_full_json_record_keeps_its_id_and_times() {
        let r = OrderRecord::from_json(&json!({
            "id": 7, "order_id": "CMD7", "customer_id": "C1", "status": "completed",
            "total_amount": "150.5", "created_at": "2026-01-01T10:00:00+01:00",
            "updated_at": "2026-01-02T00:00:00.000001Z"
        }))
        .unwrap();
        assert_eq!(r.id, Some(7));
        assert_eq!(r.order.total_amount.to_string(), "150.50");
        assert_eq!(
            crate::domain::format_time(&r.created_at.unwrap()),
            "2026-01-01T09:00:00.000000Z"
        );
    }

    #[test]
    fn json_records_follow_the_api_rules() {
        let e = OrderRecord::from_json(&json!({
            "id": 0, "order_id": " ", "customer_id": 5, "status": "lost",
            "total_amount": 1.234, "created_at": "yesterday", "colour": "red"
        }))
        .unwrap_err();
        assert_eq!(
            e.sorted_fields(),
            [
                "colour",
                "created_at",
                "customer_id",
                "id",
                "order_id",
                "status",
                "total_amount"
            ]
        );
        let r = OrderRecord::from_json(&json!({
            "id": null, "order_id": "A", "customer_id": "B", "total_amount": 1e2,
            "created_at": null
        }))
        .unwrap();
        assert_eq!((r.id, r.created_at), (None, None));
        assert_eq!(r.order.status, Status::Pending);
        assert_eq!(r.order.total_amount.to_string(), "100.00");
        assert!(OrderRecord::from_json(&json!([1])).is_err());
        let e = OrderRecord::from_json(&json!({"order_id": "A", "customer_id": "B",
            "total_amount": "1", "status": null}))
        .unwrap_err();
        assert_eq!(e.sorted_fields(), ["status"]);
    }

    #[test]
    fn csv_cells_are_text_and_empty_optional_cells_are_absent() {
        let columns = Columns::from_header(&[
            "order_id",
            "total_amount",
            "customer_id",
            "status",
            "id",
            "created_at",
        ])
        .unwrap();
        let r = OrderRecord::from_text(&columns, &["=cmd|' /C calc'!A0", "007", "C", "", "", ""])
            .unwrap();
        assert_eq!(r.order.order_id, "=cmd|' /C calc'!A0");
        assert_eq!(r.order.status, Status::Pending);
        assert_eq!(r.order.total_amount.to_string(), "7.00");
        let e = OrderRecord::from_text(&columns, &["", "1e2", "C", "x", "-1", "2026-13-01"])
            .unwrap_err();
        assert_eq!(
            e.sorted_fields(),
            ["created_at", "id", "order_id", "status", "total_amount"]
        );
    }

    #[test]
    fn times_are_checked() {
        assert!(parse_time("2026-11-25T19:09:25.123456Z").is_ok());
        assert!(parse_time("2026-11-25T19:09:25.123456000Z").is_ok());
        assert!(parse_time("2026-11-25T19:09:25.1234567Z").is_err());
        assert!(parse_time("0000-01-01T00:00:00Z").is_err());
        assert!(parse_time("2026-11-25 19:09:25").is_err());
        let columns = Columns::from_header(&[
            "order_id",
            "customer_id",
            "total_amount",
            "created_at",
            "updated_at",
        ])
        .unwrap();
        let e = OrderRecord::from_text(
            &columns,
            &[
                "A",
                "B",
                "1",
                "2026-01-02T00:00:00Z",
                "2026-01-01T00:00:00Z",
            ],
        )
        .unwrap_err();
        assert_eq!(e.sorted_fields(), ["updated_at"]);
    }

    #[test]
    fn headers_name_known_columns_once() {
        let e = Columns::from_header(&["order_id", "colour", "order_id", ""]).unwrap_err();
        assert_eq!(
            e.sorted_fields(),
            [
                "colour",
                "column 4",
                "customer_id",
                "order_id",
                "total_amount"
            ]
        );
        let c = Columns::from_header(&["\u{feff}order_id", "customer_id", "total_amount"]).unwrap();
        assert_eq!(c.position(Field::OrderId), Some(0));
        assert_eq!(c.width(), 3);
    }

    #[test]
    fn missing_times_are_filled_in() {
        let now: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        let t: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut r = OrderRecord::from_order(&Order {
            id: 1,
            order_id: "A".into(),
            customer_id: "B".into(),
            status: Status::Pending,
            total_amount: Amount::ZERO,
            created_at: t,
            updated_at: t,
        });
        r.created_at = None;
        r.updated_at = None;
        assert_eq!(r.to_historical(now).created_at, now);
        r.updated_at = Some(t);
        let h = r.to_historical(now);
        assert_eq!((h.created_at, h.updated_at), (t, t));
    }
}
