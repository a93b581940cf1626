//! The time series of `GET /stats/timeseries`: which buckets a query asks
//! for, and the figures of each.
//!
//! Stores group the orders created in `[from, to)` by UTC day and status
//! ([`DayFigures`], a `GROUP BY` in the database); the days are folded into
//! buckets here, so the bucket rules (UTC days, ISO weeks from Monday,
//! calendar months, every bucket present) are written once for both
//! backends.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, SubsecRound, TimeDelta, Utc};

use super::validation::check_text;
use super::{Stats, Status, ValidationErrors};

/// Most buckets one answer holds.
pub const MAX_BUCKETS: usize = 1000;
/// Buckets covered when `from` is not given.
pub const DEFAULT_BUCKETS: u32 = 30;

/// The width of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interval {
    /// A UTC day.
    #[default]
    Day,
    /// An ISO week: Monday 00:00 UTC to the next Monday.
    Week,
    /// A calendar month in UTC.
    Month,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }

    fn parse(text: &str) -> Option<Interval> {
        match text {
            "day" => Some(Interval::Day),
            "week" => Some(Interval::Week),
            "month" => Some(Interval::Month),
            _ => None,
        }
    }

    /// The first day of the bucket holding `day`.
    pub fn floor(self, day: NaiveDate) -> NaiveDate {
        match self {
            Interval::Day => day,
            Interval::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            Interval::Month => day.with_day(1).expect("every month has a first day"),
        }
    }

    /// The first day of the bucket after the one starting on `start`
    /// (`None` past the calendar's end).
    fn next(self, start: NaiveDate) -> Option<NaiveDate> {
        match self {
            Interval::Day => start.checked_add_days(Days::new(1)),
            Interval::Week => start.checked_add_days(Days::new(7)),
            Interval::Month => start.checked_add_months(Months::new(1)),
        }
    }

    /// `n` buckets before the one starting on `start`.
    fn back(self, start: NaiveDate, n: u32) -> Option<NaiveDate> {
        match self {
            Interval::Day => start.checked_sub_days(Days::new(n.into())),
            Interval::Week => start.checked_sub_days(Days::new(7 * u64::from(n))),
            Interval::Month => start.checked_sub_months(Months::new(n)),
        }
    }
}

/// What a time series covers: the orders created in `[from, to)` (and of
/// `status`, and of `customer_id`, when given), in buckets of `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesQuery {
    pub interval: Interval,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub status: Option<Status>,
    pub customer_id: Option<String>,
}

/// Orders created on one UTC day in one status, as a store counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayFigures {
    pub day: NaiveDate,
    pub status: Status,
    pub count: i64,
    /// The sum of their amounts, in cents.
    pub cents: i128,
}

/// One bucket of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Midnight UTC of the bucket's first day (it may lie before the
    /// query's `from`: buckets follow the calendar).
    pub start: DateTime<Utc>,
    pub figures: Stats,
}

const PARAMETERS: &[&str] = &["interval", "from", "to", "status", "customer_id"];

impl SeriesQuery {
    /// Parses the query string; every bad, repeated, empty or unknown
    /// parameter is reported together. Without `to`: the end of the bucket
    /// holding `now` (the current day, week or month is the last one);
    /// without `from`: [`DEFAULT_BUCKETS`] buckets before `to`'s bucket.
    pub fn from_query(
        pairs: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<SeriesQuery, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let mut seen: Vec<&str> = Vec::new();
        let (mut interval, mut from, mut to) = (Interval::Day, None, None);
        let (mut status, mut customer_id) = (None, None);
        for (name, value) in pairs {
            if !PARAMETERS.contains(&name.as_str()) {
                errors.push(name.clone(), "unknown query parameter");
                continue;
            }
            if seen.contains(&name.as_str()) {
                errors.push(name.clone(), "given more than once");
                continue;
            }
            seen.push(name);
            if value.is_empty() {
                errors.push(name.clone(), "must not be empty");
                continue;
            }
            let outcome: Result<(), String> = match name.as_str() {
                "interval" => Interval::parse(value)
                    .map(|i| interval = i)
                    .ok_or_else(|| "must be day, week or month".to_string()),
                "from" => parse_instant(value).map(|t| from = Some(t)),
                "to" => parse_instant(value).map(|t| to = Some(t)),
                "status" => value
                    .parse()
                    .map(|s| status = Some(s))
                    .map_err(|e: super::status::UnknownStatus| e.to_string()),
                _ => check_text(value)
                    .map(|()| customer_id = Some(value.clone()))
                    .map_err(str::to_string),
            };
            if let Err(message) = outcome {
                errors.push(name.clone(), message);
            }
        }
        errors.into_result()?;
        let to = match to {
            Some(t) => t,
            None => interval
                .next(interval.floor(now.date_naive()))
                .map(midnight)
                .ok_or_else(|| ValidationErrors::one("to", "is past the calendar's end"))?,
        };
        let from = match from {
            Some(t) => t,
            None => interval
                .back(interval.floor(to.date_naive()), DEFAULT_BUCKETS)
                .map(midnight)
                .ok_or_else(|| ValidationErrors::one("from", "is before the calendar's start"))?,
        };
        let query = SeriesQuery {
            interval,
            from,
            to,
            status,
            customer_id,
        };
        if from >= to {
            return Err(ValidationErrors::one("from", "must be before to"));
        }
        let n = query.bucket_starts().len();
        if n > MAX_BUCKETS {
            return Err(ValidationErrors::one(
                "interval",
                format!(
                    "gives more than {MAX_BUCKETS} buckets of a {} between from and to; \
                     shorten the range or choose a wider interval",
                    interval.as_str()
                ),
            ));
        }
        Ok(query)
    }

    /// The first day of every bucket that meets `[from, to)`, in order;
    /// stops after [`MAX_BUCKETS`] + 1 (too many).
    pub fn bucket_starts(&self) -> Vec<NaiveDate> {
        let mut starts = Vec::new();
        let mut start = Some(self.interval.floor(self.from.date_naive()));
        while let Some(day) = start {
            if midnight(day) >= self.to || starts.len() > MAX_BUCKETS {
                break;
            }
            starts.push(day);
            start = self.interval.next(day);
        }
        starts
    }

    /// Every bucket, empty ones included, with the figures of `days` (the
    /// store's answer to this query) added to the bucket of their day.
    pub fn buckets(&self, days: &[DayFigures]) -> Vec<Bucket> {
        let starts = self.bucket_starts();
        let mut buckets: Vec<Bucket> = starts
            .iter()
            .map(|d| Bucket {
                start: midnight(*d),
                figures: Stats::default(),
            })
            .collect();
        for row in days {
            let start = self.interval.floor(row.day);
            // Ordered starts: a binary search finds the bucket. A day
            // outside the range (which a store does not send) is dropped.
            if let Ok(i) = starts.binary_search(&start) {
                buckets[i].figures.add(row.status, row.count, row.cents);
            }
        }
        buckets
    }
}

/// How a store reads a series without a customer: the whole UTC days of
/// `[from, to)` from figures kept per day, and the partial days at either
/// edge (when `from` or `to` falls inside a day) from the orders
/// themselves, so the answer stays exact to the microsecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaySplit {
    /// The whole days `[first, last)`; empty when `first >= last`.
    pub days: (NaiveDate, NaiveDate),
    /// The orders created in `[head.0, head.1)` are read one by one (the
    /// part of `from`'s day before the first whole day; the whole range
    /// when it holds no whole day).
    pub head: (DateTime<Utc>, DateTime<Utc>),
    /// Likewise `[tail.0, tail.1)`: the part of `to`'s day after the last
    /// whole day (empty when `to` is a midnight).
    pub tail: (DateTime<Utc>, DateTime<Utc>),
}

impl SeriesQuery {
    /// See [`DaySplit`].
    pub fn day_split(&self) -> DaySplit {
        let day = self.from.date_naive();
        let first = if midnight(day) == self.from {
            Some(day)
        } else {
            day.checked_add_days(Days::new(1))
        };
        let last = self.to.date_naive();
        match first {
            Some(first) if first < last => DaySplit {
                days: (first, last),
                head: (self.from, midnight(first)),
                tail: (midnight(last), self.to),
            },
            _ => DaySplit {
                days: (last, last),
                head: (self.from, self.to),
                tail: (self.to, self.to),
            },
        }
    }
}

/// Midnight UTC of `day`.
fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// A `YYYY-MM-DD` day (its midnight UTC) or an RFC 3339 timestamp. Stored
/// times have microseconds: a finer bound is rounded up to the next one,
/// so `[from, to)` admits exactly the stored times it contains.
fn parse_instant(value: &str) -> Result<DateTime<Utc>, String> {
    if value.len() == 10 {
        if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            return Ok(midnight(day));
        }
    }
    let time = DateTime::parse_from_rfc3339(value)
        .map_err(|_| "must be an RFC 3339 timestamp or a YYYY-MM-DD date".to_string())?
        .with_timezone(&Utc);
    let micros = time.trunc_subsecs(6);
    Ok(if micros < time {
        micros + TimeDelta::microseconds(1)
    } else {
        micros
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<SeriesQuery, Vec<String>> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let now = "2026-03-18T15:30:00Z".parse().unwrap();
        SeriesQuery::from_query(&pairs, now).map_err(|e| e.0.into_iter().map(|e| e.field).collect())
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_are_the_last_thirty_buckets_up_to_the_current_one() {
        let d = q(&[]).unwrap();
        assert_eq!(d.interval, Interval::Day);
        assert_eq!(d.to, midnight(day("2026-03-19")));
        assert_eq!(d.from, midnight(day("2026-02-17")));
        assert_eq!(d.bucket_starts().len(), 30);
        // 2026-03-18 is a Wednesday: the week of Monday 16th is the last.
        let w = q(&[("interval", "week")]).unwrap();
        assert_eq!(w.to, midnight(day("2026-03-23")));
        assert_eq!(w.bucket_starts().len(), 30);
        assert_eq!(w.bucket_starts()[0].weekday(), chrono::Weekday::Mon);
        let m = q(&[("interval", "month")]).unwrap();
        assert_eq!(m.to, midnight(day("2026-04-01")));
        assert_eq!(m.from, midnight(day("2023-10-01")));
    }

    #[test]
    fn buckets_follow_the_calendar_and_cover_the_range() {
        let w = q(&[
            ("interval", "week"),
            ("from", "2026-01-01"),
            ("to", "2026-01-15T12:00:00Z"),
        ])
        .unwrap();
        // Thursday 1st is in the week of Monday 2025-12-29.
        assert_eq!(
            w.bucket_starts(),
            [day("2025-12-29"), day("2026-01-05"), day("2026-01-12")]
        );
        let rows = [
            DayFigures {
                day: day("2026-01-01"),
                status: Status::Pending,
                count: 2,
                cents: 350,
            },
            DayFigures {
                day: day("2026-01-04"),
                status: Status::Cancelled,
                count: 1,
                cents: 100,
            },
            DayFigures {
                day: day("2026-01-05"),
                status: Status::Pending,
                count: 1,
                cents: 1,
            },
        ];
        let b = w.buckets(&rows);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].figures.total_orders(), 3);
        assert_eq!(b[0].figures.total_amount(), "4.50");
        assert_eq!(b[1].figures.counts, [1, 0, 0, 0]);
        assert_eq!(b[2].figures, Stats::default());
        let m = q(&[
            ("interval", "month"),
            ("from", "2026-01-31"),
            ("to", "2026-03-01"),
        ])
        .unwrap();
        assert_eq!(m.bucket_starts(), [day("2026-01-01"), day("2026-02-01")]);
    }

    #[test]
    fn bad_parameters_are_named() {
        assert_eq!(q(&[("interval", "hour")]).unwrap_err(), ["interval"]);
        assert_eq!(
            q(&[("from", "yesterday"), ("to", ""), ("x", "1")]).unwrap_err(),
            ["from", "to", "x"]
        );
        assert_eq!(q(&[("status", "lost")]).unwrap_err(), ["status"]);
        assert_eq!(q(&[("customer_id", " ")]).unwrap_err(), ["customer_id"]);
        assert_eq!(
            q(&[("from", "2026-02-01"), ("to", "2026-02-01")]).unwrap_err(),
            ["from"]
        );
        // 1000 days are fine, 1001 are not.
        assert!(q(&[("from", "2026-01-01"), ("to", "2028-09-27")]).is_ok());
        assert_eq!(
            q(&[("from", "2026-01-01"), ("to", "2028-09-28")]).unwrap_err(),
            ["interval"]
        );
        assert!(q(&[
            ("from", "0001-01-01"),
            ("to", "9999-12-31"),
            ("interval", "month")
        ])
        .is_err());
    }

    #[test]
    fn whole_days_come_from_the_figures_and_edges_from_the_orders() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let split = |from: &str, to: &str| q(&[("from", from), ("to", to)]).unwrap().day_split();
        // Midnight to midnight: days only, empty edges.
        let s = split("2026-01-01", "2026-01-31");
        assert_eq!(s.days, (day("2026-01-01"), day("2026-01-31")));
        assert_eq!(
            s.head,
            (t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            s.tail,
            (t("2026-01-31T00:00:00Z"), t("2026-01-31T00:00:00Z"))
        );
        // Inside days at both ends.
        let s = split("2026-01-01T13:00:00Z", "2026-01-05T06:00:00Z");
        assert_eq!(s.days, (day("2026-01-02"), day("2026-01-05")));
        assert_eq!(
            s.head,
            (t("2026-01-01T13:00:00Z"), t("2026-01-02T00:00:00Z"))
        );
        assert_eq!(
            s.tail,
            (t("2026-01-05T00:00:00Z"), t("2026-01-05T06:00:00Z"))
        );
        // No whole day in between: everything from the orders.
        for (from, to) in [
            ("2026-01-01T13:00:00Z", "2026-01-02T06:00:00Z"),
            ("2026-01-01T13:00:00Z", "2026-01-01T14:00:00Z"),
            ("2026-01-01T00:00:00Z", "2026-01-01T14:00:00Z"),
        ] {
            let s = split(from, to);
            assert!(s.days.0 >= s.days.1, "{from} {to}");
            assert_eq!(s.head, (t(from), t(to)));
            assert_eq!(s.tail.0, s.tail.1);
        }
    }

    #[test]
    fn a_fine_bound_rounds_up_to_the_next_microsecond() {
        let t = parse_instant("2026-01-01T00:00:00.0000001Z").unwrap();
        assert_eq!(t.timestamp_subsec_micros(), 1);
        let t = parse_instant("2026-01-01T01:00:00+01:00").unwrap();
        assert_eq!(t, midnight(day("2026-01-01")));
    }
}
