//! `ltm data arith`: synthetic GSM8K-style word problems as JSONL.

use std::path::PathBuf;

use anyhow::Result;

use crate::fsutil::write_atomic;
use crate::tasks::{Split, problems};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub set: DataSet,
}

#[derive(Debug, clap::Subcommand)]
pub enum DataSet {
    /// Grade-school word problems: 1–4 steps, calculator annotations, a final `#### N` line.
    Arith {
        /// Number of problems.
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// `train` templates, or the `test` templates reserved for measuring generalisation.
        #[arg(long, default_value = "train", value_parser = ["train", "test"])]
        split: String,
        /// Output file (JSONL); standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> Result<()> {
    let DataSet::Arith {
        n,
        seed,
        split,
        out,
    } = args.set;
    let split = if split == "test" {
        Split::Test
    } else {
        Split::Train
    };
    let mut jsonl = String::new();
    for p in problems(n, seed, split) {
        jsonl.push_str(&serde_json::to_string(&p)?);
        jsonl.push('\n');
    }
    match out {
        Some(path) => write_atomic(&path, jsonl.as_bytes()),
        None => {
            use std::io::Write;
            Ok(std::io::stdout().write_all(jsonl.as_bytes())?)
        }
    }
}
