//! Parsing untrusted JSON into domain values, reporting every bad field.
//!
//! This is the one place where the contract's field rules live. The API
//! hands it a parsed `serde_json::Value`; it returns a valid value or the
//! full list of problems, never just the first.

use serde_json::{Map, Value};

use super::{Amount, AmountError, NewOrder, OrderPatch, Status};

/// The longest `order_id` / `customer_id`, in Unicode code points.
pub const MAX_TEXT_CHARS: usize = 50;

/// Fields a client may send back as it read them; they are ignored.
const READ_ONLY: [&str; 3] = ["id", "created_at", "updated_at"];

/// One problem with one field or parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field or parameter name (`body` for the document as a whole).
    pub field: String,
    /// What is wrong, in words a client can show.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every problem found in one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> ValidationErrors {
        ValidationErrors(vec![FieldError::new(field, message)])
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// The fields with a problem, sorted (tests compare them).
    #[cfg(test)]
    pub(crate) fn sorted_fields(self) -> Vec<String> {
        let mut fields: Vec<String> = self.0.into_iter().map(|e| e.field).collect();
        fields.sort();
        fields
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Err(self)` when anything was reported.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// One sentence naming every problem, for the `detail` of a response.
    pub fn summary(&self) -> String {
        self.0
            .iter()
            .map(|e| format!("{} {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Checks `order_id` / `customer_id` text: 1–50 code points, not blank, no
/// control characters (Unicode category Cc).
pub fn check_text(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("must not be empty");
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err("must be at most 50 characters");
    }
    if value.chars().all(char::is_whitespace) {
        return Err("must not be blank");
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

pub(super) fn text_field(
    name: &str,
    value: &Value,
    errors: &mut ValidationErrors,
) -> Option<String> {
    match value {
        Value::String(s) => match check_text(s) {
            Ok(()) => Some(s.clone()),
            Err(message) => {
                errors.push(name, message);
                None
            }
        },
        _ => {
            errors.push(name, "must be a string");
            None
        }
    }
}

pub(super) fn status_field(
    name: &str,
    value: &Value,
    errors: &mut ValidationErrors,
) -> Option<Status> {
    match value.as_str().map(str::parse::<Status>) {
        Some(Ok(status)) => Some(status),
        _ => {
            errors.push(
                name,
                "must be one of pending, processing, completed, cancelled",
            );
            None
        }
    }
}

pub(super) fn amount_field(
    name: &str,
    value: &Value,
    errors: &mut ValidationErrors,
) -> Option<Amount> {
    let parsed = match value {
        Value::String(s) => Amount::parse_str(s),
        // `arbitrary_precision` keeps the literal, so no float is involved.
        Value::Number(n) => Amount::parse_json_number(&n.to_string()),
        _ => Err(AmountError::Syntax),
    };
    match parsed {
        Ok(amount) => Some(amount),
        Err(AmountError::Syntax) if !value.is_string() => {
            errors.push(
                name,
                "must be a number or a decimal string such as \"150.50\"",
            );
            None
        }
        Err(e) => {
            errors.push(name, e.to_string());
            None
        }
    }
}

fn object(body: &Value) -> Result<&Map<String, Value>, ValidationErrors> {
    body.as_object()
        .ok_or_else(|| ValidationErrors::one("body", "must be a JSON object"))
}

/// Reports every key that is neither known nor read-only.
fn unknown_fields(map: &Map<String, Value>, known: &[&str], errors: &mut ValidationErrors) {
    for key in map.keys() {
        if !known.contains(&key.as_str()) && !READ_ONLY.contains(&key.as_str()) {
            errors.push(key.clone(), "unknown field");
        }
    }
}

const FIELDS: [&str; 4] = ["order_id", "customer_id", "status", "total_amount"];

impl NewOrder {
    /// Parses a `POST /commandes` body.
    pub fn from_json(body: &Value) -> Result<NewOrder, ValidationErrors> {
        let map = object(body)?;
        let mut errors = ValidationErrors::default();
        unknown_fields(map, &FIELDS, &mut errors);
        let mut required = |name: &str| {
            let value = map.get(name);
            if value.is_none() {
                errors.push(name, "is required");
            }
            value
        };
        let order_id = required("order_id");
        let customer_id = required("customer_id");
        let total_amount = required("total_amount");
        let order_id = order_id.and_then(|v| text_field("order_id", v, &mut errors));
        let customer_id = customer_id.and_then(|v| text_field("customer_id", v, &mut errors));
        let total_amount = total_amount.and_then(|v| amount_field("total_amount", v, &mut errors));
        let status = match map.get("status") {
            None => Some(Status::Pending),
            Some(v) => status_field("status", v, &mut errors),
        };
        errors.into_result()?;
        Ok(NewOrder {
            order_id: order_id.expect("checked"),
            customer_id: customer_id.expect("checked"),
            status: status.expect("checked"),
            total_amount: total_amount.expect("checked"),
        })
    }
}

impl OrderPatch {
    /// Parses a `PUT /commandes/{id}` body: any non-empty subset of the
    /// four fields.
    pub fn from_json(body: &Value) -> Result<OrderPatch, ValidationErrors> {
        let map = object(body)?;
        let mut errors = ValidationErrors::default();
        unknown_fields(map, &FIELDS, &mut errors);
        let patch = OrderPatch {
            order_id: map
                .get("order_id")
                .and_then(|v| text_field("order_id", v, &mut errors)),
            customer_id: map
                .get("customer_id")
                .and_then(|v| text_field("customer_id", v, &mut errors)),
            status: map
                .get("status")
                .and_then(|v| status_field("status", v, &mut errors)),
            total_amount: map
                .get("total_amount")
                .and_then(|v| amount_field("total_amount", v, &mut errors)),
        };
        if errors.is_empty() && patch == OrderPatch::default() {
            errors.push(
                "body",
                "nothing to change: give at least one of order_id, customer_id, status, total_amount",
            );
        }
        errors.into_result()?;
        Ok(patch)
    }
}

/// Parses a `PUT /commandes/{id}/status` body: `"processing"` or
/// `{"status": "processing"}`. The object ignores the read-only fields, as
/// every request body does.
pub fn status_from_json(body: &Value) -> Result<Status, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let status = match body {
        Value::String(_) => status_field("status", body, &mut errors),
        Value::Object(map) => {
            unknown_fields(map, &["status"], &mut errors);
            match map.get("status") {
                Some(v) => status_field("status", v, &mut errors),
                None => {
                    errors.push("status", "is required");
                    None
                }
            }
        }
        _ => {
            errors.push(
                "body",
                "must be a status string or an object with a status field",
            );
            None
        }
    };
    errors.into_result()?;
    Ok(status.expect("checked"))
}

/// Parses an `{id}` path segment: ASCII digits only (else an error); `None`
/// when the number is outside 1…2⁶³−1, where no order can exist.
pub fn parse_id(text: &str) -> Result<Option<i64>, ValidationErrors> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValidationErrors::one("id", "must be a positive integer"));
    }
    Ok(text.parse::<i64>().ok().filter(|id| *id >= 1))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_valid_new_order_defaults_to_pending() {
        let o = NewOrder::from_json(&json!({
            "order_id": "CMD001", "customer_id": "C1", "total_amount": 150.5,
            "id": 99, "created_at": "whatever"
        }))
        .unwrap();
        assert_eq!(o.status, Status::Pending);
        assert_eq!(o.total_amount.to_string(), "150.50");
    }

    #[test]
    fn every_bad_field_is_reported_together() {
        let e = NewOrder::from_json(&json!({
            "order_id": "", "customer_id": 5, "total_amount": "1.234",
            "status": "lost", "colour": "red"
        }))
        .unwrap_err();
        assert_eq!(
            e.sorted_fields(),
            [
                "colour",
                "customer_id",
                "order_id",
                "status",
                "total_amount"
            ]
        );
        let e = NewOrder::from_json(&json!({})).unwrap_err();
        assert_eq!(
            e.sorted_fields(),
            ["customer_id", "order_id", "total_amount"]
        );
    }

    #[test]
    fn text_rules_count_code_points() {
        assert!(check_text(&"é".repeat(50)).is_ok());
        assert!(check_text(&"é".repeat(51)).is_err());
        assert!(check_text("   ").is_err());
        assert!(check_text("\u{3000}").is_err()); // ideographic space is blank
        assert!(check_text("a\u{0}b").is_err());
        assert!(check_text("a\u{7f}").is_err());
        assert!(check_text("a\u{85}").is_err()); // C1
        assert!(check_text("CMD/2025/001").is_ok());
    }

    #[test]
    fn a_patch_needs_something_to_change() {
        assert!(OrderPatch::from_json(&json!({})).is_err());
        assert!(OrderPatch::from_json(&json!({"id": 3, "updated_at": "x"})).is_err());
        assert!(OrderPatch::from_json(&json!([])).is_err());
        let p = OrderPatch::from_json(&json!({"total_amount": "0"})).unwrap();
        assert_eq!(p.total_amount, Amount::from_cents(0));
        let e = OrderPatch::from_json(&json!({"status": null, "order_id": " "})).unwrap_err();
        assert_eq!(e.sorted_fields(), ["order_id", "status"]);
    }

    #[test]
    fn a_status_body_is_a_string_or_an_object() {
        assert_eq!(
            status_from_json(&json!("processing")),
            Ok(Status::Processing)
        );
        assert_eq!(
            status_from_json(&json!({"status": "cancelled"})),
            Ok(Status::Cancelled)
        );
        assert!(status_from_json(&json!("done")).is_err());
        assert!(status_from_json(&json!({"status": "pending", "x": 1})).is_err());
        assert_eq!(
            status_from_json(&json!({"status": "pending", "id": 7, "updated_at": null})),
            Ok(Status::Pending)
        );
        assert!(status_from_json(&json!({})).is_err());
        assert!(status_from_json(&json!(3)).is_err());
    }

    #[test]
    fn ids_are_digits_in_range() {
        assert_eq!(parse_id("1"), Ok(Some(1)));
        assert_eq!(parse_id("0042"), Ok(Some(42)));
        assert_eq!(parse_id("0"), Ok(None));
        assert_eq!(parse_id("9223372036854775807"), Ok(Some(i64::MAX)));
        assert_eq!(parse_id("9223372036854775808"), Ok(None));
        assert_eq!(parse_id(&"9".repeat(100)), Ok(None));
        for bad in ["", "abc", "1.5", "+1", "-1", "1e3", " 1", "١"] {
            assert!(parse_id(bad).is_err(), "{bad:?}");
        }
    }
}
