//! What a valid thinking or sampling setting is, in one place: the command line parses its
//! options with these, the TUI's `/commands` check with them, model configs are checked with
//! them, and the engine refuses a request that breaks them — each time naming the setting.

use std::fmt::Display;
use std::str::FromStr;

/// The values a setting may take: from `min` (excluded when `open`) to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Limit<T> {
    pub name: &'static str,
    pub min: T,
    pub max: T,
    pub open: bool,
}

pub const STEPS: Limit<usize> = Limit::within("thinking steps", 0, 10_000);
pub const LR: Limit<f64> = Limit::above("the fast learning rate", 0.0, 100.0);
pub const TOLERANCE: Limit<f64> = Limit::above("the adaptive tolerance", 0.0, 1e6);
pub const SAMPLES: Limit<usize> = Limit::within("thought samples", 1, 64);
pub const TEMPERATURE: Limit<f64> = Limit::within("the temperature", 0.0, 10.0);
pub const TOP_K: Limit<usize> = Limit::within("top-k", 1, 1_000_000);
pub const TOP_P: Limit<f64> = Limit::above("top-p", 0.0, 1.0);
pub const SHOTS: Limit<usize> = Limit::within("worked examples (shots)", 0, 1_000);
pub const MAX_TOKENS: Limit<usize> = Limit::within("max tokens", 1, 100_000);

impl<T> Limit<T> {
    /// From `min` to `max`, both included.
    pub const fn within(name: &'static str, min: T, max: T) -> Self {
        Self {
            name,
            min,
            max,
            open: false,
        }
    }

    /// Above `min`, at most `max`.
    pub const fn above(name: &'static str, min: T, max: T) -> Self {
        Self {
            name,
            min,
            max,
            open: true,
        }
    }

    /// The same range under another name (a config key that takes the setting's values).
    pub fn named(self, name: &'static str) -> Self {
        Self { name, ..self }
    }
}

impl<T: Copy + PartialOrd + Display + FromStr> Limit<T> {
    /// `value` if it is within the limit (NaN never is), else what is wrong with it.
    pub fn check(&self, value: T) -> Result<T, String> {
        let above = if self.open {
            value > self.min
        } else {
            value >= self.min
        };
        if above && value <= self.max {
            Ok(value)
        } else {
            Err(format!(
                "{} must be {}, not {value}",
                self.name,
                self.range()
            ))
        }
    }

    /// Reads and checks a value typed by a person.
    pub fn parse(&self, text: &str) -> Result<T, String> {
        let value = text.trim().parse::<T>().map_err(|_| {
            format!(
                "{} must be a number {}, not {text:?}",
                self.name,
                self.range()
            )
        })?;
        self.check(value)
    }

    /// "from 0 to 10", "above 0, at most 1".
    fn range(&self) -> String {
        if self.open {
            format!("above {}, at most {}", self.min, self.max)
        } else {
            format!("from {} to {}", self.min, self.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_accept_their_range_and_name_what_they_refuse() {
        assert_eq!(TEMPERATURE.parse("0"), Ok(0.0));
        assert_eq!(TEMPERATURE.parse(" 10 "), Ok(10.0));
        for bad in ["-1", "10.5", "NaN", "inf", "hot"] {
            let e = TEMPERATURE.parse(bad).unwrap_err();
            assert!(e.starts_with("the temperature must be"), "{e}");
        }
        assert!(TOP_P.parse("0").is_err(), "top-p 0 keeps nothing");
        assert_eq!(TOP_P.parse("1"), Ok(1.0));
        assert!(TOP_K.parse("0").is_err());
        assert!(LR.check(-1.0).unwrap_err().contains("above 0, at most 100"));
        assert!(STEPS.parse("10001").is_err());
        assert!(SAMPLES.parse("-3").is_err());
    }
}
