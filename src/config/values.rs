//! Settings that are parsed, not just read: URLs and the JWT secret become
//! their typed values ([`DatabaseUrl`], [`BrokerUrl`], [`JwksUrl`],
//! [`JwtSecret`]) as the settings are loaded, so a bad one is an error at
//! start-up and nothing downstream parses them again.
//!
//! In `config.toml` and the environment they are strings; an empty string
//! is "not set" for the optional ones. The serde adapters here are used as
//! `#[serde(with = "…")]`; their messages never repeat the value (a URL
//! may carry a password).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

use crate::access::{JwksUrl, JwtSecret};
use crate::relay::BrokerUrl;
use crate::storage::DatabaseUrl;

/// A setting read from a string and written back as one (for figment's
/// defaults, which are serialized).
pub(super) trait TextValue: Sized {
    /// The value `text` stands for, or why it is not one (without `text`).
    fn parse_text(text: &str) -> Result<Self, String>;
    /// The string [`TextValue::parse_text`] reads back to this value.
    fn to_text(&self) -> String;
}

impl TextValue for DatabaseUrl {
    fn parse_text(text: &str) -> Result<Self, String> {
        DatabaseUrl::parse(text)
    }
    fn to_text(&self) -> String {
        self.expose()
    }
}

impl TextValue for BrokerUrl {
    fn parse_text(text: &str) -> Result<Self, String> {
        BrokerUrl::parse(text)
    }
    fn to_text(&self) -> String {
        self.expose().to_string()
    }
}

impl TextValue for JwksUrl {
    fn parse_text(text: &str) -> Result<Self, String> {
        JwksUrl::parse(text)
    }
    fn to_text(&self) -> String {
        self.expose().to_string()
    }
}

impl TextValue for JwtSecret {
    fn parse_text(text: &str) -> Result<Self, String> {
        JwtSecret::new(text)
    }
    fn to_text(&self) -> String {
        self.expose().to_string()
    }
}

/// `#[serde(with = "text")]`: a required value, from its string.
pub(super) mod text {
    use super::*;

    pub fn serialize<T: TextValue, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_text())
    }

    pub fn deserialize<'de, T: TextValue, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        T::parse_text(&text).map_err(D::Error::custom)
    }
}

/// `#[serde(with = "optional_text")]`: an optional value, from its string;
/// the empty string is `None`.
pub(super) mod optional_text {
    use super::*;

    pub fn serialize<T: TextValue, S: Serializer>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.as_ref().map(T::to_text).unwrap_or_default())
    }

    pub fn deserialize<'de, T: TextValue, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        T::parse_text(&text).map(Some).map_err(D::Error::custom)
    }
}
