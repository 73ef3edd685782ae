//! `ltm data arith`: synthetic GSM8K-style word problems as JSONL.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use crate::fsutil::write_atomic_with;
use crate::tasks::{Split, problem_stream};

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
    // One problem at a time, straight to the file: any `--n` in bounded memory.
    let write = |w: &mut dyn Write| -> std::io::Result<()> {
        for p in problem_stream(seed, split).take(n) {
            serde_json::to_writer(&mut *w, &p)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    };
    match out {
        Some(path) => write_atomic_with(&path, write),
        None => Ok(write(&mut std::io::BufWriter::new(
            std::io::stdout().lock(),
        ))?),
    }
}
