//! Prefetch profiles: how many steps ahead to fetch, named or as a number, or `auto`.

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// How far ahead the scheduler fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrefetchProfile {
    /// Distance 1: one step ahead (the least memory; easiest to follow in a trace).
    Debug,
    /// Distance 2.
    #[default]
    Default,
    /// Distance 4.
    Fast,
    /// Distance 8.
    Heavy,
    /// Starts at 2; goes up while passes wait for layers and the budget allows, down when the
    /// window does not fit the budget.
    Auto,
    /// A fixed distance of at least 1.
    Distance(usize),
}

/// The largest distance `auto` goes to.
pub const AUTO_MAX_DISTANCE: usize = 16;

impl PrefetchProfile {
    /// The distance it starts at.
    pub fn distance(self) -> usize {
        match self {
            PrefetchProfile::Debug => 1,
            PrefetchProfile::Default | PrefetchProfile::Auto => 2,
            PrefetchProfile::Fast => 4,
            PrefetchProfile::Heavy => 8,
            PrefetchProfile::Distance(n) => n.max(1),
        }
    }

    pub fn is_auto(self) -> bool {
        self == PrefetchProfile::Auto
    }
}

impl fmt::Display for PrefetchProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefetchProfile::Debug => f.write_str("debug"),
            PrefetchProfile::Default => f.write_str("default"),
            PrefetchProfile::Fast => f.write_str("fast"),
            PrefetchProfile::Heavy => f.write_str("heavy"),
            PrefetchProfile::Auto => f.write_str("auto"),
            PrefetchProfile::Distance(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for PrefetchProfile {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" => Ok(PrefetchProfile::Debug),
            "default" => Ok(PrefetchProfile::Default),
            "fast" => Ok(PrefetchProfile::Fast),
            "heavy" => Ok(PrefetchProfile::Heavy),
            "auto" => Ok(PrefetchProfile::Auto),
            other => match other.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(PrefetchProfile::Distance(n)),
                _ => Err(Error::Config(format!(
                    "prefetch profile '{s}': expected debug, default, fast, heavy, auto or a \
                     distance of at least 1"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_parse() {
        let cases = [
            ("debug", 1),
            ("default", 2),
            ("FAST", 4),
            ("heavy", 8),
            ("auto", 2),
            ("3", 3),
        ];
        for (s, d) in cases {
            let p: PrefetchProfile = s.parse().unwrap();
            assert_eq!(p.distance(), d, "{s}");
            assert_eq!(p.to_string().parse::<PrefetchProfile>().unwrap(), p);
        }
        for bad in ["0", "-1", "turbo", ""] {
            assert!(bad.parse::<PrefetchProfile>().is_err(), "{bad}");
        }
    }
}
