//! Thinking levels: the words people know (ollama's `--think`, OpenAI's reasoning effort) for
//! how much thinking a prompt gets, mapped to fast-learning steps by each model.

use serde::{Deserialize, Serialize};

use crate::model::config::LevelSteps;

/// Adaptive thinking at level max stops once −ELBO per token improves by less than this.
pub const MAX_LEVEL_TOLERANCE: f64 = 0.01;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum ThinkLevel {
    /// No thinking: the thought stays at the prior.
    Off,
    Low,
    /// The model's default.
    Medium,
    High,
    /// Thinks until −ELBO stops improving, up to the model's cap.
    Max,
}

impl ThinkLevel {
    pub const ALL: [ThinkLevel; 5] = [
        ThinkLevel::Off,
        ThinkLevel::Low,
        ThinkLevel::Medium,
        ThinkLevel::High,
        ThinkLevel::Max,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ThinkLevel::Off => "off",
            ThinkLevel::Low => "low",
            ThinkLevel::Medium => "medium",
            ThinkLevel::High => "high",
            ThinkLevel::Max => "max",
        }
    }

    pub fn parse(name: &str) -> Option<ThinkLevel> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Fast-learning steps and the adaptive tolerance of this level for a model.
    pub fn budget(self, levels: &LevelSteps) -> (usize, Option<f64>) {
        match self {
            ThinkLevel::Off => (0, None),
            ThinkLevel::Low => (levels.low, None),
            ThinkLevel::Medium => (levels.medium, None),
            ThinkLevel::High => (levels.high, None),
            ThinkLevel::Max => (levels.max, Some(MAX_LEVEL_TOLERANCE)),
        }
    }

    /// The level whose budget these settings are, if any.
    pub fn of(steps: usize, tolerance: Option<f64>, levels: &LevelSteps) -> Option<ThinkLevel> {
        Self::ALL
            .into_iter()
            .find(|l| l.budget(levels) == (steps, tolerance))
    }

    /// The level above (`up`) or below these settings: the next one whose steps are more (or
    /// fewer), staying at the ends.
    pub fn next(steps: usize, tolerance: Option<f64>, up: bool, levels: &LevelSteps) -> ThinkLevel {
        let current = Self::of(steps, tolerance, levels);
        let beyond = |l: &ThinkLevel| {
            let s = l.budget(levels).0;
            match current {
                Some(c) if up => *l > c,
                Some(c) => *l < c,
                None if up => s > steps,
                None => s < steps,
            }
        };
        let found = if up {
            Self::ALL.into_iter().find(beyond)
        } else {
            Self::ALL.into_iter().rev().find(beyond)
        };
        found
            .or(current)
            .unwrap_or(if up { ThinkLevel::Max } else { ThinkLevel::Off })
    }
}

impl std::fmt::Display for ThinkLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: LevelSteps = LevelSteps {
        low: 1,
        medium: 2,
        high: 4,
        max: 16,
    };

    #[test]
    fn levels_map_to_steps_and_back() {
        assert_eq!(ThinkLevel::Off.budget(&LEVELS), (0, None));
        assert_eq!(ThinkLevel::Medium.budget(&LEVELS), (2, None));
        assert_eq!(
            ThinkLevel::Max.budget(&LEVELS),
            (16, Some(MAX_LEVEL_TOLERANCE))
        );
        for level in ThinkLevel::ALL {
            let (steps, tol) = level.budget(&LEVELS);
            assert_eq!(ThinkLevel::of(steps, tol, &LEVELS), Some(level));
            assert_eq!(ThinkLevel::parse(level.name()), Some(level));
        }
        // 16 steps without the adaptive stop is no level.
        assert_eq!(ThinkLevel::of(16, None, &LEVELS), None);
        assert_eq!(ThinkLevel::parse("deep"), None);
    }

    #[test]
    fn next_steps_through_the_levels_and_stays_at_the_ends() {
        let up = |s, t| ThinkLevel::next(s, t, true, &LEVELS);
        let down = |s, t| ThinkLevel::next(s, t, false, &LEVELS);
        assert_eq!(up(0, None), ThinkLevel::Low);
        assert_eq!(up(2, None), ThinkLevel::High);
        assert_eq!(up(16, Some(MAX_LEVEL_TOLERANCE)), ThinkLevel::Max);
        assert_eq!(down(0, None), ThinkLevel::Off);
        assert_eq!(down(4, None), ThinkLevel::Medium);
        // From steps that are no level: the nearest level beyond them.
        assert_eq!(up(3, None), ThinkLevel::High);
        assert_eq!(down(3, None), ThinkLevel::Medium);
        assert_eq!(up(100, None), ThinkLevel::Max);
    }
}
