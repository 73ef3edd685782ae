//! `ltm chat` (and `ltm` alone): the terminal app, a client of the engine thread.

use clap::Args;

use crate::engine::{self};
use crate::tui::{self, TuiOptions};

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub engine: super::EngineArgs,
    /// Resume a saved session: its id, a file, or `last` (the default when no value is given).
    #[arg(long, value_name = "SESSION", num_args = 0..=1, default_missing_value = "last")]
    pub resume: Option<String>,
    /// Colour theme: dark, light, high-contrast, or one of yours in the config directory.
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
    /// Colour: auto (none when NO_COLOR is set), always or never.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t)]
    pub color: tui::Color,
    /// Start in this mode.
    #[arg(long, value_parser = ["chat", "fewshot", "ladder"])]
    pub mode: Option<String>,
    #[command(flatten, next_help_heading = "Settings")]
    pub settings: SettingsArgs,
}

/// Settings for this run, over the saved ones; each is also a `/command` in the app.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// How much to think: off, low, medium (the model's default), high, or max (adaptive).
    #[arg(long, value_name = "LEVEL", conflicts_with_all = ["steps", "tolerance"])]
    pub think: Option<crate::engine::ThinkLevel>,
    /// Thinking steps, exactly (`auto`: the model's default).
    #[arg(long, value_name = "N|auto")]
    pub steps: Option<String>,
    /// Peak fast learning rate (`auto`: the model's default).
    #[arg(long, value_name = "X|auto", allow_negative_numbers = true)]
    pub lr: Option<String>,
    /// Thought samples per question.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub samples: Option<String>,
    /// Sampling temperature (0 = greedy; `auto`: the model's config).
    #[arg(
        short,
        long,
        visible_alias = "temp",
        value_name = "X|auto",
        allow_negative_numbers = true
    )]
    pub temperature: Option<String>,
    /// Top-k sampling (`off` to disable).
    #[arg(long, value_name = "N|off", allow_negative_numbers = true)]
    pub top_k: Option<String>,
    /// Nucleus sampling (`off` to disable).
    #[arg(long, value_name = "X|off", allow_negative_numbers = true)]
    pub top_p: Option<String>,
    /// Most tokens written per answer.
    #[arg(short = 'n', long, value_name = "N", allow_negative_numbers = true)]
    pub max_tokens: Option<String>,
    /// Sampling seed.
    #[arg(short, long, value_name = "N")]
    pub seed: Option<u64>,
    /// Adaptive thinking: stop once −ELBO per token improves by less than this (`off`), as
    /// `ltm generate --tolerance` (`--adaptive` is an older name).
    #[arg(
        long = "tolerance",
        alias = "adaptive",
        value_name = "X|off",
        allow_negative_numbers = true
    )]
    pub tolerance: Option<String>,
    /// Start each chat turn's thought from the previous one (on | off).
    #[arg(long, value_name = "on|off")]
    pub warm_start: Option<String>,
    /// GSM8K's calculator: `<<EXPR=` gets its exact result (`auto`: the model's config).
    #[arg(long, value_name = "on|off|auto")]
    pub calculator: Option<String>,
    /// Keep the numbers written to the question's, earlier results and constants (`auto`: the
    /// model's config).
    #[arg(long, value_name = "on|off|auto")]
    pub copy_numbers: Option<String>,
    /// Check answers: drafts at several depths of thought, the likeliest kept (`auto`: the
    /// model's config).
    #[arg(long, value_name = "on|off|auto")]
    pub check: Option<String>,
}

impl ChatArgs {
    /// The settings given on the command line as the app's `/commands`, each checked as the
    /// app would take it; a bad one is refused here, naming its option, before the app starts.
    fn commands(&self) -> anyhow::Result<Vec<String>> {
        let s = &self.settings;
        let given = [
            ("mode", "--mode", self.mode.clone()),
            ("think", "--think", s.think.map(|l| l.to_string())),
            ("steps", "--steps", s.steps.clone()),
            ("lr", "--lr", s.lr.clone()),
            ("samples", "--samples", s.samples.clone()),
            ("temp", "--temperature", s.temperature.clone()),
            ("topk", "--top-k", s.top_k.clone()),
            ("topp", "--top-p", s.top_p.clone()),
            ("max", "--max-tokens", s.max_tokens.clone()),
            ("seed", "--seed", s.seed.map(|v| v.to_string())),
            ("adaptive", "--tolerance", s.tolerance.clone()),
            ("warm", "--warm-start", s.warm_start.clone()),
            ("calc", "--calculator", s.calculator.clone()),
            ("copy", "--copy-numbers", s.copy_numbers.clone()),
            ("check", "--check", s.check.clone()),
        ];
        given
            .into_iter()
            .filter_map(|(command, flag, value)| Some((format!("{command} {}", value?), flag)))
            .map(|(line, flag)| {
                tui::check_command(&line, flag).map_err(anyhow::Error::msg)?;
                Ok(line)
            })
            .collect()
    }
}

/// Open the terminal app on the model; returns when the user quits.
pub fn run(args: ChatArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let commands = args.commands()?;
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        anyhow::bail!(
            "the terminal app needs a terminal; for scripts and pipes use `ltm generate`"
        );
    }
    let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
    let engine = engine::spawn(args.engine.source()?, move |event| {
        // The receiver is gone only once the app has quit.
        let _ = events.send(event);
    });
    let options = TuiOptions {
        settings_override: commands,
        resume: args.resume,
        theme: args.theme,
        color: args.color,
        dirs: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(tui::run(&engine, receiver, options));
    engine.shutdown();
    result
}
