//! The optional parts of the binary (Cargo features), and the one check
//! that a setting does not ask for a part the binary was built without.
//!
//! A default build has every part. A small (embedded) build made with
//! `--no-default-features` leaves out the broker clients, the JWKS client and the OpenTelemetry
//! exporter; a setting that needs one of them is then refused
//! when the settings are loaded (a clear message, exit code 2), not
//! ignored and not a panic later. The check takes the set of parts as a
//! value, so the default build's tests can check the refusal too.

/// One optional part of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// The event relay to NATS JetStream (`nats`).
    Nats,
    /// The event relay to RabbitMQ (`amqp`).
    Amqp,
    /// Fetching JWT keys from a JWKS URL (`jwks`).
    Jwks,
    /// OpenTelemetry traces over OTLP (`otel`).
    Otel,
}

impl Feature {
    /// Every optional part.
    pub const ALL: [Feature; 4] = [Feature::Nats, Feature::Amqp, Feature::Jwks, Feature::Otel];

    /// The Cargo feature's name.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Nats => "nats",
            Feature::Amqp => "amqp",
            Feature::Jwks => "jwks",
            Feature::Otel => "otel",
        }
    }

    /// Why `setting` (its name, never its value) cannot be used by a
    /// binary built without this part, and how to get one that has it.
    pub fn missing(self, setting: &str) -> String {
        let name = self.name();
        format!(
            "{setting} needs {}, which this binary was built without \
             (Cargo feature `{name}`): leave the setting empty, or use a binary \
             built with it (the default build has it; \
             `cargo build --release --features {name}`)",
            self.what()
        )
    }

    /// What it brings, for a message.
    fn what(self) -> &'static str {
        match self {
            Feature::Nats => "the NATS relay",
            Feature::Amqp => "the RabbitMQ relay",
            Feature::Jwks => "the JWKS client",
            Feature::Otel => "the OpenTelemetry exporter",
        }
    }
}

/// A set of optional parts: the ones a binary was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    nats: bool,
    amqp: bool,
    jwks: bool,
    otel: bool,
}

impl Features {
    /// The parts this binary was built with.
    pub const BUILT: Features = Features {
        nats: cfg!(feature = "nats"),
        amqp: cfg!(feature = "amqp"),
        jwks: cfg!(feature = "jwks"),
        otel: cfg!(feature = "otel"),
    };

    /// No optional part: what `--no-default-features` builds.
    pub const NONE: Features = Features {
        nats: false,
        amqp: false,
        jwks: false,
        otel: false,
    };

    /// Whether `feature` is in the set.
    pub fn has(self, feature: Feature) -> bool {
        match feature {
            Feature::Nats => self.nats,
            Feature::Amqp => self.amqp,
            Feature::Jwks => self.jwks,
            Feature::Otel => self.otel,
        }
    }

    /// The names of the parts in the set (for a log line).
    pub fn names(self) -> Vec<&'static str> {
        Feature::ALL
            .into_iter()
            .filter(|f| self.has(*f))
            .map(Feature::name)
            .collect()
    }

    /// Refuses `setting` (its name, never its value) when it needs
    /// `feature` and the set does not have it ([`Feature::missing`]).
    pub fn require(self, feature: Feature, setting: &str) -> Result<(), String> {
        if self.has(feature) {
            Ok(())
        } else {
            Err(feature.missing(setting))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_part_is_named_with_how_to_get_it() {
        let e = Features::NONE
            .require(Feature::Amqp, "events.relay_url")
            .unwrap_err();
        assert!(
            e.starts_with("events.relay_url needs the RabbitMQ relay"),
            "{e}"
        );
        assert!(e.contains("--features amqp"), "{e}");
        let mut some = Features::NONE;
        some.amqp = true;
        assert!(some.require(Feature::Amqp, "events.relay_url").is_ok());
        assert!(some.require(Feature::Nats, "events.relay_url").is_err());
        assert_eq!(some.names(), ["amqp"]);
    }

    /// The default build has every part (the README's commands keep
    /// everything).
    #[test]
    #[cfg(all(feature = "nats", feature = "amqp", feature = "jwks", feature = "otel"))]
    fn the_default_build_has_every_part() {
        assert_eq!(Features::BUILT.names(), ["nats", "amqp", "jwks", "otel"]);
    }
}
