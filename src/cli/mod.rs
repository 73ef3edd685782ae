//! The command line. `main.rs` hands over to [`main`]; each subcommand is an `Args` struct and a
//! `run(args, device)` in its own module.

pub mod bench;
pub mod chat;
pub mod convert;
pub mod data;
pub mod eval;
pub mod generate;
pub mod info;
pub mod ppl;
pub mod train;

use std::process::ExitCode;

use clap::{Args, FromArgMatches, Parser, Subcommand};

/// Which model to load: shared by every command that loads one.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json) or checkpoint file.
    #[arg(long = "model", value_name = "PATH", default_value_os_t = crate::engine::default_model())]
    pub path: std::path::PathBuf,
    /// tokenizer.json to use instead of the model's.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<std::path::PathBuf>,
}

impl ModelArgs {
    /// What the engine needs to load this model on `device`.
    pub fn engine(&self, device: &str) -> crate::engine::EngineOptions {
        crate::engine::EngineOptions {
            model: self.path.clone(),
            device: device.to_string(),
            tokenizer: self.tokenizer.clone(),
        }
    }
}

/// An on/off switch on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    /// `Some(switch)` as a bool, else `default`.
    pub fn or(switch: Option<Switch>, default: bool) -> bool {
        switch.map_or(default, |s| s == Switch::On)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "ltm",
    version,
    about = "Latent Thought Models in the terminal: think, then write."
)]
pub struct Cli {
    /// Where the model runs (auto: CUDA, then Metal, then the CPU).
    #[arg(long, global = true, default_value = "auto", value_parser = ["auto", "cpu", "cuda", "metal"])]
    pub device: String,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The terminal app (the default): chat or pose problems, watch the model think.
    Chat(chat::ChatArgs),
    /// Think on a prompt, then write its continuation to stdout.
    Generate(generate::Args),
    /// Describe a model: architecture, parameters, thought shape, tokenizer, files.
    Info(info::Args),
    /// Convert the authors' PyTorch checkpoint to our model directory.
    Convert(convert::Args),
    /// Measure thinking and writing speed.
    Bench(bench::Args),
    /// Write synthetic data sets (GSM8K-style word problems).
    Data(data::Args),
    /// Train a model with the dual-rate algorithm (fast learning of thoughts, slow learning of weights).
    Train(train::Args),
    /// Few-shot accuracy for several thinking budgets.
    Eval(eval::Args),
    /// The ELBO perplexity bound of a model over a file.
    Ppl(ppl::Args),
}

/// Parses the command line and runs it. Errors are one line on stderr and exit code 1;
/// usage errors exit with 2 (clap's convention).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let device = cli.device.as_str();
    let result = match cli.command {
        Some(Command::Chat(args)) => chat::run(args, device),
        Some(Command::Generate(args)) => generate::run(args, device),
        Some(Command::Info(args)) => info::run(args, device),
        Some(Command::Convert(args)) => convert::run(args, device),
        Some(Command::Bench(args)) => bench::run(args, device),
        Some(Command::Data(args)) => data::run(args, device),
        Some(Command::Train(args)) => train::run(args, device),
        Some(Command::Eval(args)) => eval::run(args, device),
        Some(Command::Ppl(args)) => ppl::run(args, device),
        None => chat_with_defaults(device),
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
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// `ltm` alone is `ltm chat` with its defaults.
fn chat_with_defaults(device: &str) -> anyhow::Result<()> {
    let defaults =
        chat::ChatArgs::augment_args(clap::Command::new("chat")).try_get_matches_from(["chat"])?;
    chat::run(chat::ChatArgs::from_arg_matches(&defaults)?, device)
}
