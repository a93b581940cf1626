//! List filters and sorting, parsed from a query string.

use chrono::{DateTime, NaiveDate, NaiveTime, SubsecRound, TimeDelta, Utc};

use super::{check_text, Amount, Order, Status, ValidationErrors};

/// What a list may be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    CreatedAt,
    UpdatedAt,
    TotalAmount,
    Id,
}

/// A sort key and a direction; ties are broken by `id` in the same
/// direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            key: SortKey::CreatedAt,
            descending: true,
        }
    }
}

/// The default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;
/// The default largest `skip` (`server.max_skip`).
pub const DEFAULT_MAX_SKIP: u64 = 10_000;

/// A valid list query. Every bound is inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub customer_id: Option<String>,
    pub min_amount: Option<Amount>,
    pub max_amount: Option<Amount>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub sort: Sort,
    /// Keyset pagination: only orders after this one in the sort order.
    pub cursor: Option<Cursor>,
    pub skip: u64,
    pub limit: u32,
}

/// Where a page ended: the sort key's value and the id of its last order.
/// The next page starts right after it in the request's sort order,
/// whatever was inserted or deleted before, and costs one index seek
/// however deep it is. The sort is not part of the token: the `Link` the
/// service gives repeats it, and any well-formed token is a valid position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The sort column's value: microseconds since the epoch for times,
    /// cents for amounts, the id for `id`.
    pub value: i64,
    pub id: i64,
}

/// The token format, as the OpenAPI document describes it: the hex of
/// `1:<value>:<id>`, each number at most 18 digits (so it always fits).
pub const CURSOR_PATTERN: &str = "^313a(2d)?(3[0-9]){1,18}3a(3[0-9]){1,18}$";

impl Cursor {
    /// The cursor just after `order` in `sort` order.
    pub fn after(order: &Order, sort: Sort) -> Cursor {
        let value = match sort.key {
            SortKey::CreatedAt => order.created_at.timestamp_micros(),
            SortKey::UpdatedAt => order.updated_at.timestamp_micros(),
            SortKey::TotalAmount => order.total_amount.cents(),
            SortKey::Id => order.id,
        };
        Cursor {
            value,
            id: order.id,
        }
    }

    /// An opaque token (hex): clients pass it back, never build it.
    pub fn encode(&self) -> String {
        crate::hex::encode(format!("1:{}:{}", self.value, self.id).as_bytes())
    }

    /// Reads a token made by [`Cursor::encode`].
    pub fn decode(token: &str) -> Option<Cursor> {
        if !token.len().is_multiple_of(2) || token.len() > 200 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..token.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
            .collect();
        let text = String::from_utf8(bytes?).ok()?;
        let mut parts = text.split(':');
        if parts.next()? != "1" {
            return None;
        }
        let number = |part: &str| -> Option<i64> {
            let digits = part.strip_prefix('-').unwrap_or(part);
            let plain = !digits.is_empty()
                && digits.len() <= 18
                && digits.bytes().all(|b| b.is_ascii_digit());
            plain.then(|| part.parse().ok()).flatten()
        };
        let value = number(parts.next()?)?;
        let id = parts
            .next()
            .and_then(|p| (!p.starts_with('-')).then(|| number(p)).flatten())?;
        if parts.next().is_some() {
            return None;
        }
        Some(Cursor { value, id })
    }
}

impl Default for ListFilter {
    fn default() -> Self {
        ListFilter {
            status: None,
            customer_id: None,
            min_amount: None,
            max_amount: None,
            created_from: None,
            created_to: None,
            sort: Sort::default(),
            cursor: None,
            skip: 0,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// Which list is being asked for: the path of the customer and status lists
/// fixes one filter, which then may not appear in the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListScope {
    All,
    Customer,
    Status,
}

/// The pairs of a query string whose name `known` accepts, each name at
/// most once; an unknown or repeated name is recorded in `errors` instead,
/// so that a typo is a 422 naming it, never a silently ignored filter.
pub fn accepted_once<'a>(
    pairs: &'a [(String, String)],
    known: impl Fn(&str) -> bool,
    errors: &mut ValidationErrors,
) -> Vec<(&'a str, &'a str)> {
    let mut accepted: Vec<(&str, &str)> = Vec::new();
    for (name, value) in pairs {
        if !known(name) {
            errors.push(name.clone(), "unknown query parameter");
        } else if accepted.iter().any(|(seen, _)| seen == name) {
            errors.push(name.clone(), "given more than once");
        } else {
            accepted.push((name, value));
        }
    }
    accepted
}

/// The query parameters of the order lists, in the order the OpenAPI
/// document lists them.
pub const LIST_PARAMETERS: [&str; 10] = [
    "status",
    "customer_id",
    "min_amount",
    "max_amount",
    "created_from",
    "created_to",
    "sort",
    "cursor",
    "skip",
    "limit",
];

impl ListScope {
    /// The filter this list takes from its path, not its query.
    pub fn in_path(self) -> Option<&'static str> {
        match self {
            ListScope::All => None,
            ListScope::Customer => Some("customer_id"),
            ListScope::Status => Some("status"),
        }
    }

    /// Whether this list takes the query parameter `name`.
    pub fn takes(self, name: &str) -> bool {
        LIST_PARAMETERS.contains(&name) && self.in_path() != Some(name)
    }
}

impl ListFilter {
    /// Parses the query pairs of a list request. Unknown, repeated, empty and
    /// bad parameters are all reported together. `skip` may be at most
    /// `max_skip`: an offset costs a read of every row it skips, so deep
    /// pages are reached with the cursor instead.
    pub fn from_query(
        pairs: &[(String, String)],
        scope: ListScope,
        max_skip: u64,
    ) -> Result<ListFilter, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let mut filter = ListFilter::default();
        for (name, value) in accepted_once(pairs, |name| scope.takes(name), &mut errors) {
            if value.is_empty() {
                errors.push(name, "must not be empty");
                continue;
            }
            let outcome: Result<(), String> = match name {
                "status" => value
                    .parse()
                    .map(|s| filter.status = Some(s))
                    .map_err(|e: super::status::UnknownStatus| e.to_string()),
                "customer_id" => check_text(value)
                    .map(|()| filter.customer_id = Some(value.to_string()))
                    .map_err(str::to_string),
                "min_amount" => Amount::parse_str(value)
                    .map(|a| filter.min_amount = Some(a))
                    .map_err(|e| e.to_string()),
                "max_amount" => Amount::parse_str(value)
                    .map(|a| filter.max_amount = Some(a))
                    .map_err(|e| e.to_string()),
                "created_from" => {
                    parse_bound(value, Bound::From).map(|t| filter.created_from = Some(t))
                }
                "created_to" => parse_bound(value, Bound::To).map(|t| filter.created_to = Some(t)),
                "sort" => parse_sort(value).map(|s| filter.sort = s),
                "cursor" => Cursor::decode(value)
                    .map(|c| filter.cursor = Some(c))
                    .ok_or_else(|| "is not a cursor this service issued".to_string()),
                "skip" => parse_skip(value, max_skip).map(|n| filter.skip = n),
                "limit" => value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| {
                        (1..=MAX_LIMIT).contains(n) && value.bytes().all(|b| b.is_ascii_digit())
                    })
                    .map(|n| filter.limit = n)
                    .ok_or_else(|| "must be an integer from 1 to 1000".to_string()),
                _ => unreachable!("checked against the allowed list"),
            };
            if let Err(message) = outcome {
                errors.push(name, message);
            }
        }
        errors.into_result()?;
        Ok(filter)
    }
}

#[derive(Clone, Copy)]
enum Bound {
    From,
    To,
}

/// An RFC 3339 timestamp, or a `YYYY-MM-DD` day meaning its first (`From`)
/// or last (`To`) microsecond in UTC.
fn parse_bound(value: &str, bound: Bound) -> Result<DateTime<Utc>, String> {
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        if value.len() == 10 {
            let start = day.and_time(NaiveTime::MIN).and_utc();
            return Ok(match bound {
                Bound::From => start,
                Bound::To => start + TimeDelta::days(1) - TimeDelta::microseconds(1),
            });
        }
    }
    let time = DateTime::parse_from_rfc3339(value)
        .map_err(|_| "must be an RFC 3339 timestamp or a YYYY-MM-DD date".to_string())?
        .with_timezone(&Utc);
    // Stored times have microseconds: round a finer lower bound up so it
    // does not admit the microsecond before it.
    Ok(match bound {
        Bound::From if time.trunc_subsecs(6) < time => {
            time.trunc_subsecs(6) + TimeDelta::microseconds(1)
        }
        _ => time.trunc_subsecs(6),
    })
}

/// `skip`: digits, at most `max_skip`.
fn parse_skip(value: &str, max_skip: u64) -> Result<u64, String> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a non-negative integer".into());
    }
    match value.parse::<u64>() {
        Ok(n) if n <= max_skip => Ok(n),
        _ => Err(format!(
            "must be at most {max_skip}; to read further, follow the Link header's \
             rel=\"next\" URL (its cursor parameter costs the same at any depth)"
        )),
    }
}

fn parse_sort(value: &str) -> Result<Sort, String> {
    let (descending, name) = match value.strip_prefix('-') {
        Some(name) => (true, name),
        None => (false, value),
    };
    let key = match name {
        "created_at" => SortKey::CreatedAt,
        "updated_at" => SortKey::UpdatedAt,
        "total_amount" => SortKey::TotalAmount,
        "id" => SortKey::Id,
        _ => return Err(
            "must be one of created_at, updated_at, total_amount, id, optionally prefixed with -"
                .into(),
        ),
    };
    Ok(Sort { key, descending })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let f = ListFilter::from_query(&[], ListScope::All, DEFAULT_MAX_SKIP).unwrap();
        assert_eq!(f, ListFilter::default());
        assert_eq!(
            f.sort,
            Sort {
                key: SortKey::CreatedAt,
                descending: true
            }
        );
    }

    #[test]
    fn a_full_query_parses() {
        let f = ListFilter::from_query(
            &q(&[
                ("status", "pending"),
                ("customer_id", "C1"),
                ("min_amount", "10"),
                ("max_amount", "20.5"),
                ("created_from", "2026-01-01"),
                ("created_to", "2026-01-31"),
                ("sort", "total_amount"),
                ("skip", "5"),
                ("limit", "1000"),
            ]),
            ListScope::All,
            DEFAULT_MAX_SKIP,
        )
        .unwrap();
        assert_eq!(f.status, Some(Status::Pending));
        assert_eq!(f.max_amount.unwrap().to_string(), "20.50");
        assert_eq!(
            f.created_to.unwrap().to_rfc3339(),
            "2026-01-31T23:59:59.999999+00:00"
        );
        assert_eq!(
            f.sort,
            Sort {
                key: SortKey::TotalAmount,
                descending: false
            }
        );
        assert_eq!((f.skip, f.limit), (5, 1000));
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let e = ListFilter::from_query(
            &q(&[
                ("status", "lost"),
                ("limit", "0"),
                ("skip", "-1"),
                ("sort", "name"),
                ("min_amount", "1.234"),
                ("created_from", "yesterday"),
                ("colour", "red"),
                ("customer_id", ""),
            ]),
            ListScope::All,
            DEFAULT_MAX_SKIP,
        )
        .unwrap_err();
        let mut names: Vec<_> = e.0.iter().map(|e| e.field.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "colour",
                "created_from",
                "customer_id",
                "limit",
                "min_amount",
                "skip",
                "sort",
                "status"
            ]
        );
    }

    #[test]
    fn fixed_filters_are_unknown_on_their_lists() {
        assert!(ListFilter::from_query(
            &q(&[("customer_id", "C1")]),
            ListScope::Customer,
            DEFAULT_MAX_SKIP
        )
        .is_err());
        assert!(ListFilter::from_query(
            &q(&[("status", "pending")]),
            ListScope::Status,
            DEFAULT_MAX_SKIP
        )
        .is_err());
        assert!(ListFilter::from_query(
            &q(&[("status", "pending")]),
            ListScope::Customer,
            DEFAULT_MAX_SKIP
        )
        .is_ok());
        assert!(
            ListFilter::from_query(&q(&[("limit", "1001")]), ListScope::All, DEFAULT_MAX_SKIP)
                .is_err()
        );
        assert!(
            ListFilter::from_query(&q(&[("limit", "+5")]), ListScope::All, DEFAULT_MAX_SKIP)
                .is_err()
        );
        assert!(ListFilter::from_query(
            &q(&[("limit", "5"), ("limit", "6")]),
            ListScope::All,
            DEFAULT_MAX_SKIP
        )
        .is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let c = Cursor {
            value: -12_345,
            id: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        let pattern_ok = |t: &str| t.starts_with("313a") && t.len() <= 200;
        assert!(pattern_ok(&c.encode()));
        for bad in [
            "",
            "zz",
            "31",
            "0",
            &"0".repeat(300),
            &crate::hex::encode(b"1:1:-5"),
            &crate::hex::encode(b"2:1:1"),
            &crate::hex::encode(b"1:1234567890123456789:1"),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
        let token = c.encode();
        let f = ListFilter::from_query(
            &q(&[("sort", "total_amount"), ("cursor", &token)]),
            ListScope::All,
            DEFAULT_MAX_SKIP,
        )
        .unwrap();
        assert_eq!(f.cursor, Some(c));
    }

    #[test]
    fn skip_stops_at_the_cap_and_says_where_to_go() {
        let skip = |v: &str| ListFilter::from_query(&q(&[("skip", v)]), ListScope::All, 10);
        assert_eq!(skip("10").unwrap().skip, 10);
        for v in ["11", "9223372036854775808", &"9".repeat(100)] {
            let e = skip(v).unwrap_err();
            assert_eq!(e.0[0].field, "skip");
            assert!(e.0[0].message.contains("at most 10") && e.0[0].message.contains("cursor"));
        }
        assert_eq!(
            skip("-1").unwrap_err().0[0].message,
            "must be a non-negative integer"
        );
    }

    #[test]
    fn a_fine_lower_bound_rounds_up() {
        let t = parse_bound("2026-01-01T00:00:00.0000001Z", Bound::From).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-01T00:00:00.000001+00:00");
        let t = parse_bound("2026-01-01T01:00:00+01:00", Bound::To).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-01T00:00:00+00:00");
    }
}
