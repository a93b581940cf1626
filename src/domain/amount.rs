//! Money: an exact amount with two decimals, held as integer cents.
//!
//! Amounts arrive as JSON numbers or strings and are parsed from their text,
//! never through a float: `serde_json` keeps the literal digits of a number
//! (`arbitrary_precision`), so `150.5` is read as the characters `150.5`.

use std::fmt;

use rust_decimal::Decimal;

/// The largest amount an order may carry: what `numeric(10,2)` can hold.
pub const MAX_CENTS: i64 = 9_999_999_999;

/// A non-negative amount of money with exactly two decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

/// Why a text is not an acceptable amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be a decimal number such as \"150.50\"")]
    Syntax,
    #[error("must have at most two decimal places")]
    TooPrecise,
    #[error("must be between 0 and 99999999.99")]
    OutOfRange,
}

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// An amount from integer cents; `None` outside 0…[`MAX_CENTS`].
    pub fn from_cents(cents: i64) -> Option<Amount> {
        (0..=MAX_CENTS).contains(&cents).then_some(Amount(cents))
    }

    /// The amount in cents.
    pub fn cents(self) -> i64 {
        self.0
    }

    /// The amount as a `Decimal` with scale 2 (`150.50`).
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 2)
    }

    /// An amount from a `Decimal` (as read from `numeric(10,2)`).
    pub fn from_decimal(value: Decimal) -> Result<Amount, AmountError> {
        let mut exact = value;
        exact.rescale(2);
        if exact != value {
            return Err(AmountError::TooPrecise);
        }
        let cents = i64::try_from(exact.mantissa()).map_err(|_| AmountError::OutOfRange)?;
        Amount::from_cents(cents).ok_or(AmountError::OutOfRange)
    }

    /// Parses the contract's string form: plain decimal notation, an optional
    /// leading `-` (only `-0` survives the range check), digits on both sides
    /// of a dot, no exponent, no `+`, no spaces.
    pub fn parse_str(text: &str) -> Result<Amount, AmountError> {
        let unsigned = text.strip_prefix('-').unwrap_or(text);
        let (int, frac) = match unsigned.split_once('.') {
            Some((int, frac)) => (int, frac),
            None => (unsigned, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || (unsigned.contains('.') && !digits(frac)) {
            return Err(AmountError::Syntax);
        }
        from_parts(text.starts_with('-'), int, frac, 0)
    }

    /// Parses a JSON number literal (`150.5`, `1e2`, `-0`), exactly.
    pub fn parse_json_number(text: &str) -> Result<Amount, AmountError> {
        let negative = text.starts_with('-');
        let unsigned = text.strip_prefix('-').unwrap_or(text);
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], &unsigned[at + 1..]),
            None => (unsigned, "0"),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        // serde_json has already checked the syntax; only the size of the
        // exponent is ours to bound.
        let exponent: i64 = match exponent.trim_start_matches('+').parse() {
            Ok(e) => e,
            Err(_) if exponent.starts_with('-') => -1_000_000,
            Err(_) => 1_000_000,
        };
        from_parts(negative, int, frac, exponent)
    }
}

/// Builds cents from `int.frac × 10^exponent`, looking only at the digits.
fn from_parts(negative: bool, int: &str, frac: &str, exponent: i64) -> Result<Amount, AmountError> {
    let all: String = [int, frac].concat();
    let point = int.len() as i64 + exponent;
    let first = all.find(|c| c != '0');
    let Some(first) = first else {
        return Ok(Amount::ZERO); // all zeros, "-0" included
    };
    let last = all.rfind(|c| c != '0').unwrap_or(first);
    // Position of the last significant digit relative to the point.
    let fractional_digits = last as i64 + 1 - point;
    if fractional_digits > 2 {
        return Err(AmountError::TooPrecise);
    }
    let integer_digits = point - first as i64;
    if integer_digits > 8 {
        return Err(AmountError::OutOfRange);
    }
    if negative {
        return Err(AmountError::OutOfRange);
    }
    // At most 10 significant digits here, so i64 cannot overflow.
    let mut cents: i64 = 0;
    for pos in first as i64..point + 2 {
        let digit = if pos < all.len() as i64 {
            (all.as_bytes()[pos as usize] - b'0') as i64
        } else {
            0
        };
        cents = cents * 10 + digit;
    }
    Amount::from_cents(cents).ok_or(AmountError::OutOfRange)
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// Divides `total` cents by `count`, rounding half away from zero.
pub fn average_cents(total: i128, count: i64) -> i128 {
    if count == 0 {
        return 0;
    }
    let count = count as i128;
    (2 * total + count) / (2 * count)
}

/// Formats a possibly large number of cents (a sum over many orders).
pub fn format_cents(cents: i128) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Result<String, AmountError> {
        Amount::parse_str(text).map(|a| a.to_string())
    }

    fn n(text: &str) -> Result<String, AmountError> {
        Amount::parse_json_number(text).map(|a| a.to_string())
    }

    #[test]
    fn strings_in_plain_notation_are_exact() {
        assert_eq!(s("150"), Ok("150.00".into()));
        assert_eq!(s("150.5"), Ok("150.50".into()));
        assert_eq!(s("150.50"), Ok("150.50".into()));
        assert_eq!(s("007"), Ok("7.00".into()));
        assert_eq!(s("1.230"), Ok("1.23".into()));
        assert_eq!(s("-0"), Ok("0.00".into()));
        assert_eq!(s("-0.00"), Ok("0.00".into()));
        assert_eq!(s("0"), Ok("0.00".into()));
        assert_eq!(s("99999999.99"), Ok("99999999.99".into()));
        assert_eq!(
            s("00000000000000000000000001.10000000000000"),
            Ok("1.10".into())
        );
    }

    #[test]
    fn strings_outside_the_grammar_are_refused() {
        for bad in [
            "", ".5", "5.", "1e2", "+1", " 1", "1 ", "1,5", "abc", "-", "1.2.3", "٣", "0x10",
        ] {
            assert_eq!(s(bad), Err(AmountError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn precision_and_range_are_checked_on_the_value() {
        assert_eq!(s("1.234"), Err(AmountError::TooPrecise));
        assert_eq!(s("0.001"), Err(AmountError::TooPrecise));
        assert_eq!(s("100000000"), Err(AmountError::OutOfRange));
        assert_eq!(s("100000000.00"), Err(AmountError::OutOfRange));
        assert_eq!(s("-1"), Err(AmountError::OutOfRange));
        assert_eq!(s("-0.01"), Err(AmountError::OutOfRange));
        assert_eq!(s(&"9".repeat(400)), Err(AmountError::OutOfRange));
    }

    #[test]
    fn json_numbers_use_any_json_syntax() {
        assert_eq!(n("150.5"), Ok("150.50".into()));
        assert_eq!(n("1e2"), Ok("100.00".into()));
        assert_eq!(n("1E+2"), Ok("100.00".into()));
        assert_eq!(n("15e-1"), Ok("1.50".into()));
        assert_eq!(n("1.5e-2"), Err(AmountError::TooPrecise));
        assert_eq!(n("1.25e1"), Ok("12.50".into()));
        assert_eq!(n("-0"), Ok("0.00".into()));
        assert_eq!(n("0.1"), Ok("0.10".into()));
        assert_eq!(n("1e400"), Err(AmountError::OutOfRange));
        assert_eq!(n("1e-400"), Err(AmountError::TooPrecise));
        assert_eq!(n("0e999999999999999999999"), Ok("0.00".into()));
        assert_eq!(n("-5"), Err(AmountError::OutOfRange));
        assert_eq!(n("99999999.99"), Ok("99999999.99".into()));
        assert_eq!(n("99999999.991"), Err(AmountError::TooPrecise));
    }

    #[test]
    fn averages_round_half_away_from_zero() {
        assert_eq!(average_cents(0, 0), 0);
        assert_eq!(average_cents(5, 2), 3); // 2.5 cents → 3
        assert_eq!(average_cents(4, 3), 1);
        assert_eq!(average_cents(100, 3), 33);
        assert_eq!(format_cents(12345), "123.45");
        assert_eq!(format_cents(5), "0.05");
    }
}
