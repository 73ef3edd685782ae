//! What a front end chooses for a request, and the one place where those choices meet a
//! model's defaults to make a [`Request`]: the app's settings, `ltm generate`'s options and
//! `ltm eval` only fill in [`Choices`].

use serde::{Deserialize, Serialize};

use super::protocol::{DEFAULT_MAX_TOKENS, ModelInfo, Request, SampleSettings, ThinkLevel};
use crate::model::config::{DEFAULT_FAST_LR, DEFAULT_NUM_STEPS, LevelSteps};
use crate::tasks::Prompt;

/// A model's defaults for what a front end leaves to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    pub steps: usize,
    pub lr: f64,
    pub calculator: bool,
    pub copy_numbers: bool,
    pub check: bool,
    pub temperature: f64,
    pub levels: LevelSteps,
}

impl Default for Defaults {
    /// Before a model is loaded: the defaults of a model whose config sets nothing.
    fn default() -> Self {
        Self {
            steps: DEFAULT_NUM_STEPS,
            lr: DEFAULT_FAST_LR,
            calculator: false,
            copy_numbers: false,
            check: false,
            temperature: SampleSettings::default().temperature,
            levels: LevelSteps::around(DEFAULT_NUM_STEPS),
        }
    }
}

impl ModelInfo {
    /// This model's defaults: its thinking steps, levels and fast learning rate, its temperature
    /// (else greedy) and its calculator setting.
    pub fn defaults(&self) -> Defaults {
        Defaults {
            steps: self.default_steps,
            lr: self.default_lr,
            calculator: self.calculator,
            copy_numbers: self.copy_numbers,
            check: self.check,
            temperature: self
                .default_temperature
                .unwrap_or(Defaults::default().temperature),
            levels: self.levels,
        }
    }
}

/// The settings a person (or a command) chose; `None` leaves one to the model's [`Defaults`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Choices {
    /// A thinking level, whose steps and adaptive stop come from the model; set, it stands for
    /// `steps` and `tolerance`.
    pub level: Option<ThinkLevel>,
    /// Thinking steps, gradient steps on the ELBO.
    pub steps: Option<usize>,
    /// Thinking's peak fast learning rate.
    pub lr: Option<f64>,
    /// Independent thought samples, fitted as one batch.
    pub samples: usize,
    /// How to write, as [`SampleSettings`] has it; a `None` temperature is the model's.
    pub temperature: Option<f64>,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub max_tokens: usize,
    pub seed: u64,
    /// Adaptive thinking tolerance (−ELBO per token); `None` runs every step.
    pub tolerance: Option<f64>,
    /// Each chat turn's thought starts from the previous turn's.
    pub warm_start: bool,
    /// GSM8K's calculator while writing.
    pub calculator: Option<bool>,
    /// Numbers kept to the prompt's, earlier results and constants while writing.
    pub copy_numbers: Option<bool>,
    /// Answers checked: drafts under several thoughts, the likeliest kept (one sample).
    pub check: Option<bool>,
}

impl Default for Choices {
    fn default() -> Self {
        Self {
            level: None,
            steps: None,
            lr: None,
            samples: 1,
            temperature: None,
            top_k: None,
            top_p: None,
            max_tokens: DEFAULT_MAX_TOKENS,
            seed: 0,
            tolerance: None,
            warm_start: false,
            calculator: None,
            copy_numbers: None,
            check: None,
        }
    }
}

impl Choices {
    /// The request for `prompt` with these choices, the rest from `d`.
    pub fn request(&self, id: u64, prompt: Prompt, d: &Defaults) -> Request {
        let mut r = Request::new(id, prompt);
        let (t, s) = (&mut r.think, &mut r.sample);
        (t.steps, t.tolerance, t.lr) = (self.steps(d), self.tolerance(d), self.lr(d));
        (t.samples, t.warm_start, t.check) = (self.samples, self.warm_start, self.check(d));
        (s.max_tokens, s.temperature, s.seed) = (self.max_tokens, self.temperature(d), self.seed);
        (s.top_k, s.top_p, s.calculator) = (self.top_k, self.top_p, self.calculator(d));
        s.copy_numbers = self.copy_numbers(d);
        r
    }

    pub fn steps(&self, d: &Defaults) -> usize {
        match self.level {
            Some(level) => level.budget(&d.levels).0,
            None => self.steps.unwrap_or(d.steps),
        }
    }

    /// The adaptive stop (−ELBO per token), if thinking stops early.
    pub fn tolerance(&self, d: &Defaults) -> Option<f64> {
        match self.level {
            Some(level) => level.budget(&d.levels).1,
            None => self.tolerance,
        }
    }

    pub fn lr(&self, d: &Defaults) -> f64 {
        self.lr.unwrap_or(d.lr)
    }

    pub fn temperature(&self, d: &Defaults) -> f64 {
        self.temperature.unwrap_or(d.temperature)
    }

    pub fn calculator(&self, d: &Defaults) -> bool {
        self.calculator.unwrap_or(d.calculator)
    }

    pub fn copy_numbers(&self, d: &Defaults) -> bool {
        self.copy_numbers.unwrap_or(d.copy_numbers)
    }

    pub fn check(&self, d: &Defaults) -> bool {
        self.check.unwrap_or(d.check)
    }

    /// The thinking level these choices are, if they are one.
    pub fn level(&self, d: &Defaults) -> Option<ThinkLevel> {
        self.level
            .or_else(|| ThinkLevel::of(self.steps(d), self.tolerance, &d.levels))
    }

    /// Think at `level`, whatever its steps are for the model loaded now or later.
    pub fn set_level(&mut self, level: ThinkLevel) {
        (self.level, self.steps, self.tolerance) = (Some(level), None, None);
    }

    /// One level up (`up`) or down from these choices.
    pub fn step_level(&mut self, up: bool, d: &Defaults) {
        self.set_level(ThinkLevel::next(
            self.steps(d),
            self.tolerance(d),
            up,
            &d.levels,
        ));
    }

    /// Steps and stop as numbers from now on (before one of them is set by hand).
    pub fn without_level(&mut self, d: &Defaults) {
        if self.level.is_some() {
            (self.steps, self.tolerance) = (Some(self.steps(d)), self.tolerance(d));
            self.level = None;
        }
    }
}

/// The budgets the thinking ladder compares: every level's steps (max without its adaptive stop).
pub fn ladder(d: &Defaults) -> Vec<usize> {
    ThinkLevel::ALL
        .iter()
        .map(|l| l.budget(&d.levels).0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_takes_what_was_chosen_and_the_models_defaults_for_the_rest() {
        let d = Defaults {
            steps: 2,
            lr: 0.3,
            calculator: true,
            copy_numbers: true,
            check: true,
            temperature: 0.7,
            levels: LevelSteps::around(2),
        };
        let prompt = || Prompt::raw(String::from("2+2?"));
        let r = Choices::default().request(5, prompt(), &d);
        assert_eq!(r.id, 5);
        assert_eq!(
            (r.think.steps, r.think.lr, r.think.tolerance, r.think.check),
            (2, 0.3, None, true)
        );
        let s = &r.sample;
        assert_eq!(
            (s.temperature, s.calculator, s.copy_numbers),
            (0.7, true, true)
        );
        assert_eq!(r.sample.max_tokens, DEFAULT_MAX_TOKENS);
        let chosen = Choices {
            level: Some(ThinkLevel::Max),
            lr: Some(0.1),
            samples: 3,
            temperature: Some(0.0),
            top_k: Some(5),
            max_tokens: 40,
            seed: 9,
            calculator: Some(false),
            copy_numbers: Some(false),
            check: Some(false),
            ..Choices::default()
        };
        let r = chosen.request(6, prompt(), &d);
        assert_eq!(
            (r.think.steps, r.think.lr, r.think.samples, r.think.check),
            (8, 0.1, 3, false)
        );
        assert!(r.think.tolerance.is_some(), "max thinks adaptively");
        let s = &r.sample;
        assert_eq!(
            (
                s.temperature,
                s.top_k,
                s.max_tokens,
                s.seed,
                s.calculator,
                s.copy_numbers
            ),
            (0.0, Some(5), 40, 9, false, false)
        );
        r.validate().unwrap();
    }

    #[test]
    fn levels_step_through_the_models_budgets_and_saturate() {
        let d = Defaults {
            levels: LevelSteps {
                low: 1,
                medium: 2,
                high: 4,
                max: 16,
            },
            steps: 2,
            ..Defaults::default()
        };
        let mut c = Choices::default();
        assert_eq!(
            c.level(&d),
            Some(ThinkLevel::Medium),
            "the default is medium"
        );
        c.step_level(true, &d);
        assert_eq!((c.steps(&d), c.tolerance(&d)), (4, None));
        c.step_level(true, &d);
        assert_eq!(c.level(&d), Some(ThinkLevel::Max));
        assert!(c.tolerance(&d).is_some(), "max thinks adaptively");
        c.step_level(true, &d);
        assert_eq!(c.level(&d), Some(ThinkLevel::Max));
        c.set_level(ThinkLevel::Off);
        c.step_level(false, &d);
        assert_eq!((c.steps(&d), c.level(&d)), (0, Some(ThinkLevel::Off)));
        assert_eq!(ladder(&d), vec![0, 1, 2, 4, 16]);
    }
}
