//! The shapes of the HTTP API, as the OpenAPI document describes them.
//!
//! Response objects are built from domain values. Request objects exist for
//! the documentation only: bodies are parsed by [`crate::domain`] so that
//! every bad field is reported at once, which a derived parser cannot do.

use std::borrow::Cow;
use std::marker::PhantomData;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use poem_openapi::{Enum, Object, Union};
use serde_json::Value;

use crate::domain::{self, format_time, Status as DomainStatus};

/// Implements poem-openapi's type traits for a string newtype whose schema
/// is written out by hand.
macro_rules! string_type {
    ($ty:ident, $name:literal, $schema:expr) => {
        impl Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = String;
            type RawElementValueType = String;

            fn name() -> Cow<'static, str> {
                $name.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&String> {
                Some(&self.0)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
                Box::new(std::iter::once(&self.0))
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl ToJSON for $ty {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }

        impl ParseFromJSON for $ty {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value {
                    Some(Value::String(s)) => Ok($ty(s)),
                    other => Err(ParseError::expected_type(other.unwrap_or_default())),
                }
            }
        }

        impl ParseFromParameter for $ty {
            /// Never fails: the text is checked by the domain, which reports
            /// every bad value together.
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                Ok($ty(value.to_string()))
            }
        }
    };
}

/// An amount as the API returns it: a string with exactly two decimals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountText(pub String);

string_type!(AmountText, "AmountText", {
    let mut s = MetaSchema::new_with_format("string", "decimal");
    s.description = Some("Exact decimal with two fractional digits, 0.00 to 99999999.99.");
    s.pattern = Some(r"^\d{1,8}\.\d{2}$".into());
    s.example = Some(Value::String("150.50".into()));
    s
});

/// A time as the API returns it: RFC 3339, UTC, microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp(pub String);

string_type!(Timestamp, "Timestamp", {
    let mut s = MetaSchema::new_with_format("string", "date-time");
    s.description = Some("RFC 3339 time in UTC with microseconds.");
    s.example = Some(Value::String("2026-11-25T19:09:25.123456Z".into()));
    s
});

/// An `{id}` path segment, checked by the handler (digits only: else 422;
/// outside 1…2⁶³−1: 404).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdText(pub String);

string_type!(IdText, "OrderIdNumber", {
    let mut s = MetaSchema::new_with_format("integer", "int64");
    s.minimum = Some(1.0);
    s.description = Some("The order's numeric id.");
    s
});

/// The plain decimal notation an amount string is described with. The
/// service also takes leading zeros (`"007"`), trailing zeros (`"1.230"`)
/// and `"-0"`; this is the canonical subset clients should send.
pub const AMOUNT_TEXT_PATTERN: &str = r"^[0-9]{1,8}(\.[0-9]{1,2})?$";

/// An amount as a client may send it: a JSON number or a decimal string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountInput(pub String);

string_type!(AmountInput, "AmountInput", {
    let mut number = MetaSchema::new("number");
    number.minimum = Some(0.0);
    number.maximum = Some(99_999_999.99);
    number.multiple_of = Some(0.01);
    let mut text = MetaSchema::new("string");
    text.pattern = Some(AMOUNT_TEXT_PATTERN.into());
    let mut s = MetaSchema::ANY;
    s.description = Some(
        "Exact decimal, 0 to 99999999.99, at most two fractional digits (by value: \"1.230\" is \
         1.23). A JSON number (`150.5`, `1e2`) or a string in plain notation (`\"150.50\"`). \
         Never read as a float.",
    );
    s.one_of = vec![
        MetaSchemaRef::Inline(Box::new(number)),
        MetaSchemaRef::Inline(Box::new(text)),
    ];
    s.example = Some(Value::String("150.50".into()));
    s
});

/// What `order_id` and `customer_id` may be: at least one character that
/// is not white space, and no control characters (the rule is checked by
/// [`crate::domain::check_text`]; this is its description for clients).
pub const TEXT_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";

/// Supplies the schema of a documented-only query parameter.
pub trait ParamSchema: Send + Sync + 'static {
    fn schema() -> MetaSchema;
}

/// A query parameter that is declared in the OpenAPI document but parsed by
/// the domain from the raw query string (with every problem reported), so
/// extracting it never fails and its value is not used.
pub struct Doc<M>(PhantomData<M>);

impl<M: ParamSchema> Type for Doc<M> {
    const IS_REQUIRED: bool = true;
    type RawValueType = ();
    type RawElementValueType = ();

    fn name() -> Cow<'static, str> {
        std::any::type_name::<M>().into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(M::schema()))
    }

    fn as_raw_value(&self) -> Option<&()> {
        None
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a ()> + 'a> {
        Box::new(std::iter::empty())
    }
}

impl<M: ParamSchema> ParseFromParameter for Doc<M> {
    fn parse_from_parameter(_value: &str) -> ParseResult<Self> {
        Ok(Doc(PhantomData))
    }

    fn parse_from_parameters<I: IntoIterator<Item = A>, A: AsRef<str>>(_: I) -> ParseResult<Self> {
        Ok(Doc(PhantomData))
    }
}

macro_rules! param_schema {
    ($name:ident, $body:expr) => {
        pub struct $name;
        impl ParamSchema for $name {
            fn schema() -> MetaSchema {
                $body
            }
        }
    };
}

param_schema!(StatusParam, {
    let mut s = MetaSchema::new("string");
    s.enum_items = DomainStatus::ALL
        .iter()
        .map(|s| Value::String(s.as_str().into()))
        .collect();
    s
});
param_schema!(TextParam, {
    let mut s = MetaSchema::new("string");
    s.min_length = Some(1);
    s.max_length = Some(50);
    s.pattern = Some(TEXT_PATTERN.into());
    s
});
param_schema!(AmountParam, {
    let mut s = MetaSchema::new_with_format("string", "decimal");
    s.pattern = Some(AMOUNT_TEXT_PATTERN.into());
    s.example = Some(Value::String("10.00".into()));
    s
});
param_schema!(TimeBoundParam, {
    let mut s = MetaSchema::ANY;
    s.description = Some("RFC 3339 timestamp, or YYYY-MM-DD for the whole UTC day");
    s.any_of = vec![
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time"))),
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date"))),
    ];
    s.example = Some(Value::String("2026-11-25".into()));
    s
});
param_schema!(SortParam, {
    let mut s = MetaSchema::new("string");
    s.enum_items = [
        "created_at",
        "-created_at",
        "updated_at",
        "-updated_at",
        "total_amount",
        "-total_amount",
        "id",
        "-id",
    ]
    .into_iter()
    .map(|v| Value::String(v.into()))
    .collect();
    s.default = Some(Value::String("-created_at".into()));
    s
});
param_schema!(CursorParam, {
    let mut s = MetaSchema::new("string");
    s.pattern = Some(crate::domain::filter::CURSOR_PATTERN.into());
    s.max_length = Some(200);
    s.description = Some("An opaque token from a `Link: rel=\"next\"` header");
    s
});
param_schema!(SkipParam, {
    let mut s = MetaSchema::new_with_format("integer", "int64");
    s.minimum = Some(0.0);
    // The default cap: the document is built from types, so a cap changed
    // in the settings is not reflected here (the description says so).
    s.maximum = Some(crate::domain::filter::DEFAULT_MAX_SKIP as f64);
    s.default = Some(Value::from(0));
    s
});
param_schema!(LimitParam, {
    let mut s = MetaSchema::new_with_format("integer", "int32");
    s.minimum = Some(1.0);
    s.maximum = Some(1000.0);
    s.default = Some(Value::from(100));
    s
});

/// Where an order is in its life. `pending → processing | cancelled`,
/// `processing → completed | cancelled`; `completed` and `cancelled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Processing,
    Completed,
    Cancelled,
}

impl From<DomainStatus> for Status {
    fn from(s: DomainStatus) -> Self {
        match s {
            DomainStatus::Pending => Status::Pending,
            DomainStatus::Processing => Status::Processing,
            DomainStatus::Completed => Status::Completed,
            DomainStatus::Cancelled => Status::Cancelled,
        }
    }
}

/// An order.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Order {
    /// Assigned by the service; never reused, even after a delete.
    #[oai(validator(minimum(value = "1")))]
    pub id: i64,
    /// The business identifier: 1–50 characters, not blank, no control
    /// characters, unique (case-sensitive).
    pub order_id: String,
    /// The customer (a reference to the customers service, not resolved here).
    pub customer_id: String,
    /// Where the order is in its life.
    pub status: Status,
    /// Always a string with exactly two decimals.
    pub total_amount: AmountText,
    /// When the order was created (RFC 3339, UTC, microseconds).
    pub created_at: Timestamp,
    /// Changes on every change, and only then.
    pub updated_at: Timestamp,
}

impl From<domain::Order> for Order {
    fn from(o: domain::Order) -> Self {
        Order {
            id: o.id,
            order_id: o.order_id,
            customer_id: o.customer_id,
            status: o.status.into(),
            total_amount: AmountText(o.total_amount.to_string()),
            created_at: Timestamp(format_time(&o.created_at)),
            updated_at: Timestamp(format_time(&o.updated_at)),
        }
    }
}

/// A new order. `id`, `created_at` and `updated_at` are ignored if sent;
/// any other unknown field is refused (422).
#[derive(Debug, Clone, Object)]
#[oai(rename = "NewOrder")]
pub struct NewOrderRequest {
    /// Ignored if sent (the service assigns it).
    #[oai(read_only)]
    pub id: Option<i64>,
    /// 1–50 characters, not blank, no control characters; unique (409 if taken).
    #[oai(validator(
        min_length = 1,
        max_length = 50,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    ))]
    pub order_id: String,
    /// 1–50 characters, not blank, no control characters.
    #[oai(validator(
        min_length = 1,
        max_length = 50,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    ))]
    pub customer_id: String,
    /// Defaults to `pending`. Any status may be given (imports of
    /// historical orders need this).
    pub status: Option<Status>,
    /// The order's total: a JSON number or a decimal string, 0 to
    /// 99999999.99, at most two decimals.
    pub total_amount: AmountInput,
    /// Ignored if sent.
    #[oai(read_only)]
    pub created_at: Option<Timestamp>,
    /// Ignored if sent.
    #[oai(read_only)]
    pub updated_at: Option<Timestamp>,
}

/// Changes to an order: any non-empty subset of the four fields. A change
/// of status must follow the transitions; fields equal to the stored ones
/// are a no-op. `id`, `created_at` and `updated_at` are ignored if sent.
#[derive(Debug, Clone, Object)]
#[oai(rename = "OrderPatch")]
pub struct OrderPatchRequest {
    /// Ignored if sent.
    #[oai(read_only)]
    pub id: Option<i64>,
    /// A new business identifier (unique: 409 if taken).
    #[oai(validator(
        min_length = 1,
        max_length = 50,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    ))]
    pub order_id: Option<String>,
    /// A new customer.
    #[oai(validator(
        min_length = 1,
        max_length = 50,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    ))]
    pub customer_id: Option<String>,
    /// A new status, reachable from the current one (409 otherwise).
    pub status: Option<Status>,
    /// A new total: a JSON number or a decimal string.
    pub total_amount: Option<AmountInput>,
    /// Ignored if sent.
    #[oai(read_only)]
    pub created_at: Option<Timestamp>,
    /// Ignored if sent.
    #[oai(read_only)]
    pub updated_at: Option<Timestamp>,
}

/// The new status, wrapped. `id`, `created_at` and `updated_at` are
/// ignored if sent; any other field is a 422.
#[derive(Debug, Clone, Object)]
pub struct StatusObject {
    /// Ignored if sent.
    #[oai(read_only)]
    pub id: Option<i64>,
    /// The new status.
    pub status: Status,
    /// Ignored if sent.
    #[oai(read_only)]
    pub created_at: Option<Timestamp>,
    /// Ignored if sent.
    #[oai(read_only)]
    pub updated_at: Option<Timestamp>,
}

/// A new status: a bare JSON string (`"processing"`, as the original
/// service took it) or `{"status": "processing"}`.
#[derive(Debug, Clone, Union)]
pub enum StatusUpdate {
    Bare(Status),
    Wrapped(StatusObject),
}

/// Counts per status; all four are always present.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct StatusCounts {
    /// Orders waiting to be processed.
    pub pending: i64,
    /// Orders being processed.
    pub processing: i64,
    /// Orders fulfilled.
    pub completed: i64,
    /// Orders cancelled.
    pub cancelled: i64,
}

/// Amounts per status, as decimal strings; all four are always present.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct StatusAmounts {
    /// Sum over pending orders.
    pub pending: AmountText,
    /// Sum over orders being processed.
    pub processing: AmountText,
    /// Sum over completed orders.
    pub completed: AmountText,
    /// Sum over cancelled orders.
    pub cancelled: AmountText,
}

/// Figures over all orders, cancelled ones included.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Stats {
    /// How many orders there are.
    pub total_orders: i64,
    /// How many orders are in each status.
    pub by_status: StatusCounts,
    /// The sum of the amounts in each status.
    pub amount_by_status: StatusAmounts,
    /// Sum of all amounts.
    pub total_amount: AmountText,
    /// Mean amount, rounded half away from zero; `"0.00"` when there are no orders.
    pub average_amount: AmountText,
}

impl From<domain::Stats> for Stats {
    fn from(s: domain::Stats) -> Self {
        let amount = |i: usize| AmountText(domain::amount::format_cents(s.sums[i]));
        Stats {
            total_orders: s.total_orders(),
            by_status: StatusCounts {
                pending: s.counts[0],
                processing: s.counts[1],
                completed: s.counts[2],
                cancelled: s.counts[3],
            },
            amount_by_status: StatusAmounts {
                pending: amount(0),
                processing: amount(1),
                completed: amount(2),
                cancelled: amount(3),
            },
            total_amount: AmountText(s.total_amount()),
            average_amount: AmountText(s.average_amount()),
        }
    }
}

/// Service information.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ServiceInfo {
    /// Always `commandes`.
    pub service: String,
    /// The service's version.
    pub version: String,
    /// The git revision the binary was built from (short hash), or
    /// `unknown`.
    pub revision: String,
    /// `ok` while the process serves requests.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub storage: String,
    /// Where the API documentation is.
    pub docs: String,
}

/// A probe's answer.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ProbeStatus {
    /// `ok`, or `unavailable`.
    pub status: String,
    /// Why the service is not ready (only when unavailable).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A `{status}` path segment, checked by the handler (422 if unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusText(pub String);

string_type!(StatusText, "StatusName", StatusParam::schema());

/// An `Idempotency-Key` header value, checked by the domain (422 if bad).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKeyText(pub String);

string_type!(IdempotencyKeyText, "IdempotencyKey", {
    let mut s = MetaSchema::new("string");
    s.min_length = Some(1);
    s.max_length = Some(crate::domain::idempotency::MAX_KEY_LEN);
    s.pattern = Some("^[!-~]([ -~]*[!-~])?$".into());
    s.example = Some(Value::String("3f1c2a9e-order-7".into()));
    s
});
