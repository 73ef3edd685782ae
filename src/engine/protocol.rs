//! The engine's language: requests in, typed events out. No tensors cross this line,
//! so every front end (CLI, TUI, tests) speaks it without knowing candle.

use serde::{Deserialize, Serialize};

pub use crate::generate::{DEFAULT_MAX_TOKENS, SampleSettings};
use crate::model::config::{DEFAULT_FAST_LR, LevelSteps};
use crate::runtime::Intro;
use crate::tasks::vote::{shown, tally};
use crate::tasks::{Prompt, answer_of};
pub use crate::think::ThinkLevel;

/// How hard to think: fast-learning settings for one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThinkSettings {
    /// Steps of fast learning (0 = no thinking: z is drawn around the prior mean).
    pub steps: usize,
    /// Peak fast learning rate (cosine-decayed to lr/10).
    pub lr: f64,
    /// Independent thought samples, fitted as one batch.
    pub samples: usize,
    /// Start μ from the previous request's fitted μ (when shapes allow).
    pub warm_start: bool,
    /// Adaptive thinking: stop once −ELBO per token improves by less than this between steps.
    pub tolerance: Option<f64>,
    /// Start from this saved posterior (safetensors `mu`, `log_var`) instead of the prior;
    /// with `steps = 0` it is reused as is. ε depends only on the seed, so the same seed gives the same thought.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<std::path::PathBuf>,
    /// Save the fitted posterior here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_thought: Option<std::path::PathBuf>,
    /// Check the answer (with one sample and some thinking): write drafts under thoughts of
    /// several depths and keep the one the model finds likeliest ([`Check`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
}

/// One job: think on `prompt`, then write a continuation per thought sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    /// The text the thought is fitted to.
    pub prompt: String,
    /// Token ids to use instead of encoding `prompt` (e.g. to replay a reference prompt exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_ids: Option<Vec<u32>>,
    /// Appended after thinking, before writing (few-shot: `"Answer: "`); not part of the fitted text.
    pub answer_prefix: String,
    pub think: ThinkSettings,
    pub sample: SampleSettings,
}

/// No thinking (the thought is drawn around the prior), one sample.
impl Default for ThinkSettings {
    fn default() -> Self {
        Self {
            steps: 0,
            lr: DEFAULT_FAST_LR,
            samples: 1,
            warm_start: false,
            tolerance: None,
            thought: None,
            save_thought: None,
            check: false,
        }
    }
}

impl Request {
    /// A request to think on `prompt` and write its answer, with the default settings (a
    /// model's own defaults and a front end's choices: [`super::Choices::request`]).
    pub fn new(id: u64, prompt: Prompt) -> Self {
        Request {
            id,
            prompt: prompt.text,
            prompt_ids: None,
            answer_prefix: prompt.prefix,
            think: ThinkSettings::default(),
            sample: SampleSettings {
                stop: prompt.stop,
                ..SampleSettings::default()
            },
        }
    }
}

/// Figures of one fast-learning step for one thought sample (the loss *before* that step's update).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThinkStep {
    pub sample: usize,
    pub step: usize,
    pub steps: usize,
    pub lr: f64,
    /// −ELBO of the sequence (NLL + KL), in nats.
    pub nelbo: f64,
    pub nll_per_token: f64,
    pub kl: f64,
    /// exp(−ELBO / tokens): the perplexity bound.
    pub ppl_bound: f64,
    /// KL of each layer's thought vectors.
    pub layer_kl: Vec<f64>,
    /// Wall time of this step.
    pub ms: f64,
}

impl ThinkStep {
    /// The fit at this step against `first`, the same sample's first step (live figures:
    /// each is measured before its step's update).
    pub fn fit_since(&self, first: &ThinkStep) -> Fit {
        Fit {
            nll_per_token: self.nll_per_token,
            kl: self.kl,
            start_nll_per_token: first.nll_per_token,
            start_kl: first.kl,
        }
    }
}

/// How well a thought explains its prompt, in figures a person can read, the same in every
/// front end: the prompt's NLL per token given the thought and its perplexity, and what
/// thinking changed since the starting thought: the NLL down, at the cost of KL (the thought's
/// distance from the prior). The raw −ELBO is mostly the starting posterior's KL, whatever the
/// prompt, so it stays in verbose and expanded views.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// The prompt's NLL per token given the thought, in nats.
    pub nll_per_token: f64,
    /// KL of the posterior from the prior, in nats.
    pub kl: f64,
    /// The same two before thinking (at the starting posterior).
    pub start_nll_per_token: f64,
    pub start_kl: f64,
}

impl Fit {
    /// exp(NLL per token): the prompt's perplexity given the thought.
    pub fn perplexity(&self) -> f64 {
        self.nll_per_token.exp()
    }

    /// How much thinking changed the NLL per token (−0.23: 23 % lower), when it did.
    fn change(&self) -> Option<f64> {
        let change = self.nll_per_token / self.start_nll_per_token - 1.0;
        (change.is_finite() && change.abs() >= 5e-4).then_some(change)
    }

    /// For a narrow column: "NLL 1.84/token, −23 %".
    pub fn brief(&self) -> String {
        let nll = format!("NLL {:.2}/token", self.nll_per_token);
        match self.change() {
            Some(change) => format!("{nll}, {} %", signed(change * 100.0)),
            None => nll,
        }
    }

    /// "NLL 1.84 nats/token (ppl 6.3), −23 % by thinking, KL +12 nats".
    pub fn summary(&self) -> String {
        let fit = format!(
            "NLL {:.2} nats/token (ppl {})",
            self.nll_per_token,
            readable(self.perplexity())
        );
        match self.change() {
            Some(change) => format!(
                "{fit}, {} % by thinking, KL {} nats",
                signed(change * 100.0),
                signed(self.kl - self.start_kl)
            ),
            None => fit,
        }
    }
}

/// A positive figure in a few digits: "6.3", "1234", "3.1e9", "∞".
fn readable(x: f64) -> String {
    if !x.is_finite() {
        "∞".into()
    } else if x < 100.0 {
        format!("{x:.1}")
    } else if x < 1e6 {
        format!("{x:.0}")
    } else {
        format!("{x:.1e}")
    }
}

/// "+12", "−23" (a true minus sign).
fn signed(x: f64) -> String {
    let r = x.round();
    if r < 0.0 {
        format!("−{}", -r)
    } else {
        format!("+{r}")
    }
}

/// What a front end needs to show about the loaded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub device: String,
    pub parameters: usize,
    pub n_layers: usize,
    pub z_per_layer: usize,
    pub dim: usize,
    pub max_seq_len: usize,
    pub default_steps: usize,
    pub default_lr: f64,
    /// Thinking steps of the levels low, medium, high and max for this model.
    pub levels: LevelSteps,
    /// How the model expects a question to be wrapped, with `{question}` as the hole.
    pub prompt_format: Option<String>,
    /// Whether the calculator is on by default for this model (its config's `calculator`).
    #[serde(default)]
    pub calculator: bool,
    /// Whether numbers are kept to the prompt's by default (its config's `copy_numbers`).
    #[serde(default)]
    pub copy_numbers: bool,
    /// Whether answers are checked by default (its config's `check`).
    #[serde(default)]
    pub check: bool,
    /// The sampling temperature the model's config asks front ends to default to.
    #[serde(default)]
    pub default_temperature: Option<f64>,
    /// How many worked examples the model's default few-shot prompt has.
    #[serde(default)]
    pub default_shots: Option<usize>,
    /// What the model is for, in a line (its config's `scope`); absent for general models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// What the model is for and prompts to try (from its directory), for first contact.
    #[serde(default)]
    pub intro: Intro,
    /// Bytes of worked-problem text per token of the model's tokenizer, measured at load on the
    /// stock worked examples: front ends, which have no tokenizer, size prompts with it.
    #[serde(default)]
    pub bytes_per_token: Option<f64>,
}

impl ModelInfo {
    /// A one-line notice when `question` gives no number and the model is for arithmetic (it has
    /// a scope): the answer will still be a worked problem, so the person is told why.
    pub fn scope_notice(&self, question: &str) -> Option<String> {
        self.scope.as_ref()?;
        (!crate::tasks::mentions_number(question)).then(|| {
            format!(
                "no number given: {} answers word problems, so expect a made-up one",
                self.name
            )
        })
    }

    /// Tokens a prompt may take: the context less room for the answer (`max_tokens`, at most a
    /// quarter of the context) and the `prefix` tokens written after thinking. The engine drops
    /// worked examples, whole and oldest first, that would go beyond it.
    pub fn prompt_budget(&self, max_tokens: usize, prefix: usize) -> usize {
        let room = max_tokens.min(self.max_seq_len / 4) + prefix;
        self.max_seq_len.saturating_sub(room)
    }

    /// About how many tokens `text` takes ([`ModelInfo::bytes_per_token`], rounded up by a
    /// tenth to err on the long side); `None` when the model did not say.
    pub fn estimated_tokens(&self, text: &str) -> Option<usize> {
        let per_token = self.bytes_per_token.filter(|b| *b > 0.0)?;
        Some((1.1 * text.len() as f64 / per_token).ceil() as usize)
    }
}

impl Request {
    /// Checks every setting against [`crate::limits`]; the message names the first one out of
    /// bounds.
    pub fn validate(&self) -> Result<(), String> {
        use crate::limits::{LR, MAX_TOKENS, SAMPLES, STEPS, TEMPERATURE, TOLERANCE, TOP_K, TOP_P};
        let (t, s) = (&self.think, &self.sample);
        STEPS.check(t.steps)?;
        LR.check(t.lr)?;
        SAMPLES.check(t.samples)?;
        if let Some(tol) = t.tolerance {
            TOLERANCE.check(tol)?;
        }
        TEMPERATURE.check(s.temperature)?;
        if let Some(k) = s.top_k {
            TOP_K.check(k)?;
        }
        if let Some(p) = s.top_p {
            TOP_P.check(p)?;
        }
        MAX_TOKENS.check(s.max_tokens)?;
        Ok(())
    }
}

/// One sample finished writing: the engine's `done` event, and what a session keeps of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    // Sessions saved before this was one type kept only the figures below.
    #[serde(default)]
    pub sample: usize,
    /// Empty in sessions, where the sample keeps the text it streamed. Always written, also
    /// when empty, so that every `done` line has it.
    #[serde(default)]
    pub text: String,
    /// The answer a worked solution ends with (`#### N`, by the tasks' rule; a `####` line cut
    /// off is read as the result it was copying, `writer::Writer::answer`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(default)]
    pub tokens: usize,
    /// Final −ELBO of this sample's thought (lower = the thought explains the prompt better).
    pub nelbo: f64,
    /// The final thought's fit, readably (absent from sessions saved before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<Fit>,
    /// Prompt tokens the −ELBO is summed over (the prompt as the engine took it).
    #[serde(default)]
    pub prompt_tokens: usize,
    /// Thinking steps taken (fewer than asked when adaptive thinking stopped early).
    #[serde(default)]
    pub think_steps: usize,
    /// The thinking level the request's budget is, if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<ThinkLevel>,
    pub think_ms: f64,
    pub gen_ms: f64,
    pub tok_s: f64,
    /// How the check chose this text among its drafts, when the request asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
}

impl Done {
    /// The sample's answer, given the text it wrote (`text` here, or a session's sample): a
    /// worked solution's [`Done::answer`], else, for a reply without a `####` line (a few-shot
    /// " 48"), its last number. Every front end reads a finished sample's answer here.
    pub fn answer_in(&self, text: &str) -> Option<String> {
        if text.contains("####") {
            self.answer.clone()
        } else {
            answer_of(text)
        }
    }
}

/// The check of an answer: drafts written under thoughts fitted to the question for fewer
/// steps than the request's (the request's own thought first) and under thoughts drawn from
/// the prior, and of the drafts with different answers (those without a flaw, if any has
/// none) the one whose −ELBO, with a thought fitted to question and draft together, less
/// [`super::AGREEMENT`] times the log of how many drafts gave its answer, is lowest
/// (`check::choose`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub drafts: Vec<Draft>,
    /// Which draft was kept (its text is the sample's).
    pub kept: usize,
}

/// One draft of a checked answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    /// Thinking steps of the thought it was written under.
    pub steps: usize,
    /// Written under a thought drawn from the prior N(0, I) (no steps) rather than fitted.
    #[serde(default)]
    pub drawn: bool,
    /// Written with its answer held back while its calculations left a number of the question
    /// unused (`generate::AnswerHold`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    pub answer: Option<String>,
    /// −ELBO of question and draft (nats), or for a model that judges by verdicts −log of its
    /// "yes" (`check::verdicts`); absent when it was not checked: the drafts agreed, it has no
    /// answer, or an earlier draft gave its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nelbo: Option<f64>,
    /// Why it cannot be right, whatever the question means (`generate::flaws::flaw`): the
    /// check keeps a draft with a flaw only when every draft with an answer has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flaw: Option<String>,
    /// How many of the question's numbers its calculations leave out
    /// (`generate::flaws::unused`): the check chooses among the drafts it would keep those
    /// that leave out fewest.
    #[serde(default)]
    pub unused: usize,
    /// What it wrote, so that a reader of the `done` event (or of `ltm eval --json`) sees why
    /// it was kept or passed over; empty until written.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

impl Draft {
    /// The thought it was written under, in words: "the thought of 2 steps".
    pub fn thought(&self) -> String {
        match (self.drawn, self.held) {
            (true, false) => "a thought drawn from the prior".into(),
            (true, true) => {
                "a thought drawn from the prior, the answer held to every number".into()
            }
            (false, _) => format!("the thought of {} steps", self.steps),
        }
    }
}

impl Check {
    /// "drafts 17 · 15 (2, 1, 0 steps) · 17 ×6 · 15 · 9 (6 drawn) · 17 ×2 · 8 (3 held) · 2 with
    /// a flaw: kept 17": the fitted thoughts' drafts, then the answers of the drawn ones and of
    /// the held ones (`Draft::held`), each with its count, then how many drafts could not be
    /// right (`Draft::flaw`).
    pub fn line(&self) -> String {
        let fitted = self.drafts.iter().filter(|d| !d.drawn);
        let answers: Vec<String> = fitted.clone().map(|d| shown(&d.answer)).collect();
        let steps: Vec<String> = fitted.map(|d| d.steps.to_string()).collect();
        let mut line = format!(
            "drafts {} ({} steps)",
            answers.join(" · "),
            steps.join(", ")
        );
        for (held, name) in [(false, "drawn"), (true, "held")] {
            let answers: Vec<String> = (self.drafts.iter())
                .filter(|d| d.drawn && d.held == held)
                .map(|d| shown(&d.answer))
                .collect();
            if answers.is_empty() {
                continue;
            }
            let counted: Vec<String> = tally(answers.iter().map(String::as_str))
                .into_iter()
                .map(|(a, n)| match n {
                    1 => a.to_string(),
                    n => format!("{a} ×{n}"),
                })
                .collect();
            line += &format!(" · {} ({} {name})", counted.join(" · "), answers.len());
        }
        let flawed = self.drafts.iter().filter(|d| d.flaw.is_some()).count();
        if flawed > 0 {
            line += &format!(" · {flawed} with a flaw");
        }
        format!(
            "{line}: kept {}",
            shown(&self.drafts.get(self.kept).and_then(|d| d.answer.clone()))
        )
    }
}

/// Everything the engine says. As JSON (`ltm generate --json`, README "JSON events") each
/// event is one object tagged by `event`, its fields flat beside the tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The model is loaded and the engine takes requests.
    Ready(ModelInfo),
    /// A warning that does not stop the request (e.g. the prompt was cut to fit the context).
    Warning {
        request: u64,
        message: String,
    },
    Think {
        request: u64,
        #[serde(flatten)]
        step: ThinkStep,
    },
    /// One new token of one sample; `text` is the newly completed UTF-8 text (may be empty).
    Token {
        request: u64,
        sample: usize,
        id: u32,
        text: String,
        /// Computed by the calculator (forced), not sampled.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        calc: bool,
    },
    /// One sample finished writing.
    Done {
        request: u64,
        #[serde(flatten)]
        done: Done,
    },
    /// Every sample of the request is done.
    Finished {
        request: u64,
    },
    Cancelled {
        request: u64,
    },
    Error {
        request: Option<u64>,
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::{Done, Fit};

    #[test]
    fn a_finished_samples_answer_is_the_engines_reading_else_the_last_number() {
        let done = |answer: Option<&str>| -> Done {
            let fields = serde_json::json!({"nelbo": 1.0, "think_ms": 0.0, "gen_ms": 0.0,
                "tok_s": 0.0, "answer": answer});
            serde_json::from_value(fields).unwrap()
        };
        // A `####` line cut off while copying a result: the result, not the digits written.
        let cut = " 1/6+1/4 = <<1/6+1/4=0.4166667>>0.4166667 pounds.\n#### 0.41";
        assert_eq!(
            done(Some("0.4166667")).answer_in(cut).as_deref(),
            Some("0.4166667")
        );
        assert_eq!(done(None).answer_in(cut), None, "no reading, no answer");
        // A reply without a `####` line (few-shot): its last number.
        assert_eq!(done(None).answer_in(" 48").as_deref(), Some("48"));
    }

    fn fit(nll: f64, kl: f64) -> Fit {
        Fit {
            nll_per_token: nll,
            kl,
            start_nll_per_token: 2.0,
            start_kl: 8000.0,
        }
    }

    #[test]
    fn a_fit_reads_as_nll_perplexity_and_what_thinking_changed() {
        assert_eq!(
            fit(1.5, 8012.4).summary(),
            "NLL 1.50 nats/token (ppl 4.5), −25 % by thinking, KL +12 nats"
        );
        assert_eq!(fit(1.5, 8012.4).brief(), "NLL 1.50/token, −25 %");
        // No thinking: nothing changed, so nothing is claimed.
        assert_eq!(fit(2.0, 8000.0).summary(), "NLL 2.00 nats/token (ppl 7.4)");
        assert_eq!(fit(2.0, 8000.0).brief(), "NLL 2.00/token");
        // An untrained model's perplexity stays readable.
        assert!(fit(30.0, 8000.0).summary().contains("ppl 1.1e13"));
        assert!(fit(800.0, 8000.0).summary().contains("ppl ∞"));
    }
}
