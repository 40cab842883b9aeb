//! Durations as Kubernetes writes them ("30s", "5m", "1h30m"), positive, checked by the API server.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// What the API server accepts, as a CEL regular expression: a sequence of number+unit pairs.
const PATTERN: &str = "^([0-9]+([.][0-9]+)?(ms|s|m|h))+$";

/// A positive duration in Go's `time.ParseDuration` format restricted to the units ms, s, m and h.
///
/// The schema carries a CEL rule, so the API server refuses "5 min", "-1m" or "0s" with a message
/// that names the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> Self {
        Duration(std::time::Duration::from_millis(millis))
    }

    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a positive duration such as 30s, 5m or 1h30m (units: ms, s, m, h)")]
pub struct ParseDurationError(String);

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDurationError(s.to_string());
        let mut rest = s;
        let mut total_nanos: f64 = 0.0;
        if rest.is_empty() {
            return Err(err());
        }
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(err)?;
            let (number, tail) = rest.split_at(number_len);
            if number.is_empty()
                || number.starts_with('.')
                || number.ends_with('.')
                || number.matches('.').count() > 1
            {
                return Err(err());
            }
            let value: f64 = number.parse().map_err(|_| err())?;
            let (unit_nanos, unit_len) = if tail.starts_with("ms") {
                (1e6, 2)
            } else if tail.starts_with('s') {
                (1e9, 1)
            } else if tail.starts_with('m') {
                (60e9, 1)
            } else if tail.starts_with('h') {
                (3600e9, 1)
            } else {
                return Err(err());
            };
            total_nanos += value * unit_nanos;
            rest = &tail[unit_len..];
        }
        // Larger than ten years is a typo, not a policy.
        if !(1.0..10.0 * 365.0 * 86400e9).contains(&total_nanos) {
            return Err(err());
        }
        Ok(Duration(std::time::Duration::from_nanos(
            total_nanos.round() as u64
        )))
    }
}

impl fmt::Display for Duration {
    /// The shortest exact form: "90s" prints as "1m30s", "1500ms" as "1.5s".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis == 0 {
            return write!(f, "{}ms", self.0.as_secs_f64() * 1000.0);
        }
        let (h, m, s, ms) = (
            millis / 3_600_000,
            millis / 60_000 % 60,
            millis / 1000 % 60,
            millis % 1000,
        );
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        match (s, ms) {
            (0, 0) => Ok(()),
            (s, 0) => write!(f, "{s}s"),
            (0, ms) if h == 0 && m == 0 => write!(f, "{ms}ms"),
            (s, ms) => write!(f, "{}s", format!("{s}.{ms:03}").trim_end_matches('0')),
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(deserializer)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 32,
            "x-kubernetes-validations": [{
                "rule": format!("self.matches('{PATTERN}') && duration(self) > duration('0s')"),
                "message": "must be a positive duration such as 30s, 5m or 1h30m (units: ms, s, m, h)",
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_kubernetes_writes() {
        for (text, secs) in [
            ("30s", 30.0),
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("1.5s", 1.5),
            ("250ms", 0.25),
            ("2h", 7200.0),
        ] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.as_std().as_secs_f64(), secs, "{text}");
        }
    }

    #[test]
    fn refuses_what_the_api_server_refuses() {
        for text in [
            "", "5", "5 m", "-1m", "0s", "1d", "m", ".5s", "1.s", "1..2s", "10µs", "100000h",
        ] {
            assert!(text.parse::<Duration>().is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn prints_the_shortest_exact_form() {
        for (text, printed) in [
            ("90s", "1m30s"),
            ("1500ms", "1.5s"),
            ("1h0m5s", "1h5s"),
            ("250ms", "250ms"),
            ("60m", "1h"),
        ] {
            assert_eq!(text.parse::<Duration>().unwrap().to_string(), printed);
        }
    }

    #[test]
    fn round_trips_through_json() {
        let d: Duration = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1h30m\"");
        let err = serde_json::from_str::<Duration>("\"soon\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a positive duration"), "{err}");
    }
}
