//! The command line. `main.rs` hands over to [`main`]; each subcommand is an `Args` struct and a
//! `run(args)` in its own module.

pub mod bench;
pub mod chat;
pub mod completions;
pub mod convert;
pub mod curves;
pub mod data;
pub mod eval;
pub mod generate;
pub mod info;
pub mod models;
pub mod ppl;
pub mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::device::{DecodeWeights, DeviceChoice};
use crate::runtime::ModelSource;
use crate::text::printable;

/// Where the model runs: shared by every command that computes.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct DeviceArg {
    /// Where the model runs (auto: CUDA, then Metal, then the CPU).
    #[arg(long, value_enum, default_value_t, env = "LTM_DEVICE")]
    pub device: DeviceChoice,
}

/// How the model writes: shared by every command that writes.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct DecodeArg {
    /// The weights writing reads on the CPU: bf16 halves the bytes per token and nearly doubles
    /// the speed, and may change a token where two are nearly tied.
    #[arg(long, value_enum, default_value_t, env = "LTM_DECODE_WEIGHTS")]
    pub decode_weights: DecodeWeights,
}

/// Which model to load: shared by every command that loads one.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// The model: a name (`ltm models` lists them; the bundled one is ltm-arith-tiny), a model
    /// directory (config.json, model.safetensors, tokenizer.json) or a checkpoint file
    /// (.safetensors, or the authors' .pt). Default: $LTM_MODEL, else the bundled model.
    #[arg(short, long = "model", value_name = "NAME|PATH", default_value_t = crate::runtime::default_model())]
    pub model: String,
    /// tokenizer.json to use instead of the model's.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<std::path::PathBuf>,
}

impl ModelArgs {
    /// This model on `device`, found by name or path.
    pub fn source(&self, device: DeviceArg, decode: DecodeArg) -> anyhow::Result<ModelSource> {
        Ok(ModelSource {
            path: crate::runtime::resolve_model(&self.model)?,
            tokenizer: self.tokenizer.clone(),
            device: device.device,
            decode_weights: decode.decode_weights,
        })
    }
}

/// The model and how it runs: shared by the commands that think and write (chat, generate,
/// eval).
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub decode: DecodeArg,
}

impl EngineArgs {
    pub fn source(&self) -> anyhow::Result<ModelSource> {
        self.model.source(self.device, self.decode)
    }
}

/// How answers are written, for `generate` and `eval`: numbers copied, answers checked.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct AnswerArgs {
    /// Keep the numbers written to those the prompt gives (as digits or words), earlier
    /// results and constants such as 12 in a dozen: a miscopied number is not written
    /// [default: the model's config].
    #[arg(long, value_name = "on|off")]
    copy_numbers: Option<Switch>,
    /// Check the answer (with one sample): drafts written under thoughts of the steps asked, a
    /// quarter of them and none, and under thoughts drawn from the prior (more, the more
    /// thinking; at low and medium some held from answering until they use every number
    /// given); of different answers, the one the model finds likeliest with a thought fitted to
    /// question and draft, and that most drafts reach, is kept [default: the model's config].
    #[arg(long, value_name = "on|off")]
    check: Option<Switch>,
}

impl AnswerArgs {
    pub fn copy_numbers(&self) -> Option<bool> {
        self.copy_numbers.map(Switch::on)
    }

    pub fn check(&self) -> Option<bool> {
        self.check.map(Switch::on)
    }
}

/// An on/off switch on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn on(self) -> bool {
        self == Switch::On
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "ltm",
    version,
    about = "Latent Thought Models in the terminal: think, then write.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// `ltm` alone is `ltm chat`, and takes its options.
    #[command(flatten)]
    pub chat: chat::ChatArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The terminal app (the default): chat or pose problems, watch the model think.
    #[command(after_help = "Examples:
  ltm chat                         the bundled model, thinking at its default level
  ltm chat --think high            think more before each answer (+ and − change it in the app)
  ltm chat --resume last           go on with the last session")]
    Chat(chat::ChatArgs),
    /// Think on a prompt, then write its continuation to stdout.
    #[command(after_help = "Examples:
  ltm generate \"Sam has 14 apples and buys 9 more. How many apples does Sam have now?\"
  ltm generate -q --think max \"I had 50 dollars and spent 18. How much is left?\"   the answer alone
  echo \"A pen costs 3 dollars. How much do 4 pens cost?\" | ltm generate --json")]
    Generate(generate::Args),
    /// Describe a model: architecture, parameters, thought shape, tokenizer, files.
    Info(info::Args),
    /// List the models `--model NAME` finds: the bundled one, the data directory's, $LTM_MODEL.
    Models(models::Args),
    /// Convert the authors' PyTorch checkpoint, or average several, to our model directory.
    Convert(convert::Args),
    /// Measure thinking and writing speed.
    Bench(bench::Args),
    /// Write synthetic data sets (GSM8K-style word problems).
    Data(data::Args),
    /// Train a model with the dual-rate algorithm (fast learning of thoughts, slow learning of weights).
    Train(train::Args),
    /// Few-shot accuracy for several thinking budgets.
    #[command(after_help = "Examples:
  ltm eval arith                                  100 fresh problems of the training templates
  ltm eval arith --data problems.jsonl --samples 1 --steps 0,2,8
  ltm eval arith --limit 20 --chart thinking.svg  accuracy and the ELBO against thinking steps")]
    Eval(eval::Args),
    /// Draw the training curves of several `ltm train` runs on one chart.
    Curves(curves::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// The ELBO perplexity bound of a model over a file.
    Ppl(ppl::Args),
}

/// Parses the command line and runs it. Errors are one line on stderr and exit code 1;
/// usage errors exit with 2 (clap's convention).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Chat(args)) => chat::run(args),
        Some(Command::Generate(args)) => generate::run(args),
        Some(Command::Info(args)) => info::run(args),
        Some(Command::Models(args)) => models::run(args),
        Some(Command::Convert(args)) => convert::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Data(args)) => data::run(args),
        Some(Command::Train(args)) => train::run(args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Curves(args)) => curves::run(args),
        Some(Command::Completions(args)) => completions::run(args),
        Some(Command::Ppl(args)) => ppl::run(args),
        None => chat::run(cli.chat),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`ltm generate | head`): nothing left to say.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", printable(&one_line(&e)));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line. Only each cause's first line is kept: candle puts a
/// backtrace under its message when `RUST_BACKTRACE` is set, and that belongs to no one-line
/// message.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let first = text.lines().next().unwrap_or("").trim();
        // A context often repeats its cause's text; say it once.
        if !first.is_empty() && !parts.iter().any(|p| p.contains(first)) {
            parts.push(first.to_string());
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_one_line_without_backtraces() {
        let cause =
            anyhow::anyhow!("shape mismatch\n   0: candle_core::error::Error::bt\n   1: main");
        let e = cause.context("thinking failed");
        assert_eq!(one_line(&e), "thinking failed: shape mismatch");
    }
}
