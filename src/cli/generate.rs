//! `ltm generate`: think on a prompt, then write. The answer goes to stdout as it is written,
//! thinking progress to stderr; `--json` turns every event into one JSON line on stdout.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;

use anyhow::{Context, Result, anyhow, bail};

use crate::engine::{
    self, Choices, Done, Draft, EngineHandle, Event, Fit, ModelInfo, Request, ThinkLevel, ThinkStep,
};
use crate::generate::DEFAULT_MAX_TOKENS;
use crate::limits::{LR, MAX_TOKENS, SAMPLES, STEPS, TEMPERATURE, TOLERANCE, TOP_K, TOP_P};
use crate::tasks::{Prompt, Verdict, chat};
use crate::text::printable;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub engine: super::EngineArgs,
    /// The prompt (else --prompt, else read from stdin).
    #[arg(value_name = "PROMPT", conflicts_with_all = ["prompt", "prompt_ids"])]
    pub text: Option<String>,
    /// The prompt, as an option.
    #[arg(short, long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// The prompt as token ids instead of text, e.g. 50257,15496,995.
    #[arg(
        long,
        value_name = "IDS",
        value_delimiter = ',',
        conflicts_with = "prompt"
    )]
    pub prompt_ids: Option<Vec<u32>>,
    /// Text appended after thinking and before writing, e.g. "Answer: " (after the prompt
    /// format's own, if it has one).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub answer_prefix: String,
    /// Think on the prompt as given, without the model's prompt format (which a text prompt is
    /// otherwise put in, as in chat).
    #[arg(long)]
    pub raw: bool,
    /// How much to think: off, low, medium (the model's default), high, or max (adaptive: until
    /// −ELBO stops improving, up to a cap); `ltm info` shows a model's steps per level.
    #[arg(long, value_name = "LEVEL", conflicts_with_all = ["steps", "tolerance"])]
    pub think: Option<ThinkLevel>,
    /// Thinking steps, exactly [default: the model's; 0 with --thought].
    #[arg(long, value_name = "N", value_parser = |s: &str| STEPS.parse(s))]
    pub steps: Option<usize>,
    /// Peak fast learning rate [default: the model's].
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = |s: &str| LR.parse(s))]
    pub lr: Option<f64>,
    /// Adaptive thinking: stop once −ELBO per token improves by less than this.
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = |s: &str| TOLERANCE.parse(s))]
    pub tolerance: Option<f64>,
    /// Independent thought samples, thought and written as one batch.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = |s: &str| SAMPLES.parse(s))]
    pub samples: usize,
    /// Most tokens written per sample.
    #[arg(short = 'n', long, value_name = "N", default_value_t = DEFAULT_MAX_TOKENS, value_parser = |s: &str| MAX_TOKENS.parse(s))]
    pub max_tokens: usize,
    /// Sampling temperature (0: greedy) [default: the model's config, else 0].
    #[arg(short, long, visible_alias = "temp", value_name = "F", allow_negative_numbers = true, value_parser = |s: &str| TEMPERATURE.parse(s))]
    pub temperature: Option<f64>,
    /// Sample only among the K most likely tokens (with a temperature above 0).
    #[arg(long, value_name = "K", value_parser = |s: &str| TOP_K.parse(s))]
    pub top_k: Option<usize>,
    /// Nucleus sampling: only among the most likely tokens whose probabilities sum to P
    /// (with a temperature above 0).
    #[arg(long, value_name = "P", allow_negative_numbers = true, value_parser = |s: &str| TOP_P.parse(s))]
    pub top_p: Option<f64>,
    /// Seed of the thought's noise and of sampling.
    #[arg(short, long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Stop a sample once its text contains this (not printed; repeatable).
    #[arg(long, value_name = "TEXT")]
    pub stop: Vec<String>,
    /// GSM8K's calculator: once the text has written `<<EXPR=` with EXPR arithmetic, its exact
    /// result and `>>` are written for the model, which reads them and goes on
    /// [default: the model's config, on for ours].
    #[arg(long, value_name = "on|off")]
    pub calculator: Option<super::Switch>,
    #[command(flatten)]
    pub answers: super::AnswerArgs,
    /// One JSON object per event and line on stdout, tagged by `event` (ready, warning, think,
    /// token, done, finished, error; the README lists their fields); computed tokens carry
    /// `"calc": true`.
    #[arg(long, conflicts_with_all = ["quiet", "verbose"])]
    pub json: bool,
    /// Only the answer: its final number when the text is a worked solution (`#### N`; with
    /// several samples, their majority), else the text; nothing on stderr but warnings.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Every thinking step on its own line, with the KL of each layer.
    #[arg(short, long)]
    pub verbose: bool,
    /// Save the fitted posterior (safetensors `mu`, `log_var`).
    #[arg(long, value_name = "FILE")]
    pub save_thought: Option<PathBuf>,
    /// Start from a saved posterior; with the same --seed and no --steps it gives the same thought.
    #[arg(long, value_name = "FILE")]
    pub thought: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let prompt = match (
        args.text.as_ref().or(args.prompt.as_ref()),
        &args.prompt_ids,
    ) {
        (Some(text), _) => text.clone(),
        (None, Some(_)) => String::new(),
        (None, None) => read_stdin()?,
    };
    if args.prompt_ids.is_none() && prompt.trim().is_empty() {
        bail!("the prompt is empty: there is nothing to think about");
    }
    let (engine, inbox, info) = engine::start(args.engine.source()?)?;
    let result = converse(&engine, &inbox, &info, args, prompt);
    engine.shutdown();
    result
}

/// The most a prompt read from stdin may be (a pipe from /dev/zero must not take the memory).
const STDIN_PROMPT_BYTES: u64 = 16 << 20;

fn read_stdin() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!(
            "no prompt: pass it as an argument (ltm generate \"…\"), --prompt-ids IDS, or pipe it on stdin"
        );
    }
    let mut text = String::new();
    stdin
        .take(STDIN_PROMPT_BYTES + 1)
        .read_to_string(&mut text)
        .context("cannot read the prompt from stdin")?;
    if text.len() as u64 > STDIN_PROMPT_BYTES {
        bail!(
            "the prompt on stdin is over {} MiB",
            STDIN_PROMPT_BYTES >> 20
        );
    }
    // `echo … |` adds a newline that is not part of the prompt.
    Ok(text
        .strip_suffix('\n')
        .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t))
        .to_string())
}

fn converse(
    engine: &EngineHandle,
    inbox: &mpsc::Receiver<Event>,
    info: &ModelInfo,
    args: Args,
    prompt: String,
) -> Result<()> {
    let mut report: Box<dyn Report> = if args.json {
        Box::new(Json)
    } else {
        let verbosity = match (args.quiet, args.verbose) {
            (true, _) => Verbosity::Quiet,
            (_, true) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        };
        Box::new(Human::new(args.samples, verbosity))
    };
    report.event(&Event::Ready(info.clone()))?;
    if !args.json
        && !args.raw
        && args.prompt_ids.is_none()
        && let Some(notice) = info.scope_notice(&prompt)
    {
        eprintln!("note: {notice}");
    }
    engine.submit(request(args, info, prompt));
    for event in inbox {
        report.event(&event)?;
        match event {
            Event::Finished { .. } => return Ok(()),
            Event::Cancelled { .. } => bail!("cancelled"),
            Event::Error { message, .. } => return Err(anyhow!(message)),
            _ => {}
        }
    }
    bail!("the engine stopped unexpectedly")
}

fn request(args: Args, info: &ModelInfo, prompt: String) -> Request {
    // A text prompt is asked as in chat: in the model's prompt format, with its stop strings.
    let asked = if args.raw || args.prompt_ids.is_some() {
        Prompt::raw(prompt)
    } else {
        chat(info.prompt_format.as_deref(), &prompt)
    };
    let choices = Choices {
        level: args.think,
        // A saved thought is reused as is unless more thinking is asked for.
        steps: args.steps.or(args.thought.as_ref().map(|_| 0)),
        tolerance: args.tolerance,
        lr: args.lr,
        samples: args.samples,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        max_tokens: args.max_tokens,
        seed: args.seed,
        warm_start: false,
        calculator: args.calculator.map(super::Switch::on),
        copy_numbers: args.answers.copy_numbers(),
        check: args.answers.check(),
    };
    let mut r = choices.request(0, asked, &info.defaults());
    r.prompt_ids = args.prompt_ids;
    r.answer_prefix += &args.answer_prefix;
    (r.think.thought, r.think.save_thought) = (args.thought, args.save_thought);
    r.sample.stop.extend(args.stop);
    r
}

/// How events are shown.
trait Report {
    fn event(&mut self, event: &Event) -> Result<()>;
}

struct Json;

impl Report for Json {
    fn event(&mut self, event: &Event) -> Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string(event)?)?;
        Ok(out.flush()?)
    }
}

/// How much `Human` says on stderr beside the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verbosity {
    /// Warnings only.
    Quiet,
    /// A progress line while thinking (redrawn in place on a terminal) and a statistics line.
    Normal,
    /// Every thinking step on a line of its own with the KL of each layer, and statistics.
    Verbose,
}

/// For people: thinking progress on stderr, then the answer on stdout. One sample is streamed
/// as it is written; several are printed whole, each under a header.
struct Human {
    samples: usize,
    /// Each finished sample's answer and −ELBO, for the verdict of several.
    answers: Vec<(Option<String>, f64)>,
    verbosity: Verbosity,
    live: bool,
    /// The current step's NLL per token and KL, summed over the samples seen so far.
    sums: [f64; 2],
    /// The first step's means of the same, which the fit is measured against.
    start: Option<[f64; 2]>,
    /// The thinking bar, while it is drawn.
    bar: Option<indicatif::ProgressBar>,
}

impl Human {
    fn new(samples: usize, verbosity: Verbosity) -> Self {
        Self {
            samples,
            answers: Vec::new(),
            verbosity,
            live: verbosity == Verbosity::Normal && std::io::stderr().is_terminal(),
            sums: [0.0; 2],
            start: None,
            bar: None,
        }
    }

    fn think(&mut self, s: &ThinkStep) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        if self.verbosity == Verbosity::Verbose {
            let layers: Vec<String> = s.layer_kl.iter().map(|kl| format!("{kl:.1}")).collect();
            eprintln!(
                "think {}/{} sample {}  lr {:.3}  −ELBO {:.2}  nll/token {:.3}  kl {:.2} (by layer {})  {:.0} ms",
                s.step + 1,
                s.steps,
                s.sample + 1,
                s.lr,
                s.nelbo,
                s.nll_per_token,
                s.kl,
                layers.join(" / "),
                s.ms
            );
            return;
        }
        for (sum, x) in self.sums.iter_mut().zip([s.nll_per_token, s.kl]) {
            *sum += x;
        }
        if s.sample + 1 < self.samples {
            return;
        }
        let k = self.samples as f64;
        let [nll, kl] = std::mem::take(&mut self.sums).map(|sum| sum / k);
        let [start_nll, start_kl] = *self.start.get_or_insert([nll, kl]);
        let fit = Fit {
            nll_per_token: nll,
            kl,
            start_nll_per_token: start_nll,
            start_kl,
        };
        let of = if self.samples > 1 {
            format!(" (mean of {} samples)", self.samples)
        } else {
            String::new()
        };
        let figures = format!("{}  {:.0} ms{of}", fit.summary(), s.ms);
        let (done, steps) = (s.step + 1, s.steps);
        if self.live {
            let bar = self
                .bar
                .get_or_insert_with(|| crate::progress::bar(steps as u64, 0, "thinking"));
            bar.set_position(done as u64);
            bar.set_message(figures);
        } else {
            eprintln!("think {done}/{steps}  {figures}");
        }
    }

    fn end_progress(&mut self) {
        self.start = None;
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Report for Human {
    fn event(&mut self, event: &Event) -> Result<()> {
        if !matches!(event, Event::Think { .. }) {
            self.end_progress();
        }
        let mut out = std::io::stdout().lock();
        match event {
            Event::Warning { message, .. } => eprintln!("warning: {}", printable(message)),
            Event::Think { step, .. } => self.think(step),
            Event::Token { text, .. }
                if self.samples == 1 && self.verbosity != Verbosity::Quiet =>
            {
                write!(out, "{text}")?;
                out.flush()?;
            }
            Event::Done { done, .. } => {
                let Done {
                    sample,
                    text,
                    answer,
                    tokens,
                    nelbo,
                    fit,
                    think_steps,
                    level,
                    think_ms,
                    tok_s,
                    check,
                    ..
                } = done;
                self.answers.push((answer.clone(), *nelbo));
                if self.verbosity == Verbosity::Quiet {
                    if self.samples == 1 {
                        writeln!(out, "{}", answer.as_deref().unwrap_or(text.trim()))?;
                    }
                } else if self.samples == 1 {
                    writeln!(out)?;
                    // The draft streamed is the request's own; the check may keep another.
                    if let Some(c) = check.as_ref().filter(|c| c.kept != 0) {
                        let thought = c.drafts.get(c.kept).map(Draft::thought);
                        writeln!(
                            out,
                            "── checked: kept the draft under {} ──\n{text}",
                            thought.unwrap_or_default()
                        )?;
                    }
                } else {
                    writeln!(
                        out,
                        "── sample {} · −ELBO {nelbo:.2} ──\n{text}",
                        sample + 1
                    )?;
                }
                out.flush()?;
                if self.verbosity != Verbosity::Quiet {
                    let level = level.map_or(String::new(), |l| format!(", {l}"));
                    let mut figures = fit
                        .map(|f| format!(" · {}", f.summary()))
                        .unwrap_or_default();
                    if self.verbosity == Verbosity::Verbose {
                        figures += &format!(" · −ELBO {nelbo:.2}");
                    }
                    eprintln!(
                        "[{tokens} tokens · thought {think_steps} steps{level} in {think_ms:.0} ms · {tok_s:.1} tok/s{figures}]"
                    );
                    if let Some(c) = check {
                        eprintln!("[check: {}]", c.line());
                    }
                }
            }
            Event::Finished { .. } if self.samples > 1 => {
                let (answers, nelbo): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut self.answers).into_iter().unzip();
                let verdict = Verdict::of(&answers, &nelbo);
                if self.verbosity == Verbosity::Quiet {
                    writeln!(out, "{}", verdict.majority.as_deref().unwrap_or("—"))?;
                } else {
                    writeln!(out, "── {} ──", verdict.line(self.samples))?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
