//! `ltm curves`: the training curves of several runs on one chart, to compare recipes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::chart::training_curves;
use crate::fsutil::write_atomic;
use crate::train::card::curve;
use crate::train::read_state;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directories of `ltm train`, each `DIR` or `NAME=DIR` (the legend shows NAME, else
    /// the directory's name).
    #[arg(required = true, value_name = "[NAME=]DIR")]
    pub runs: Vec<String>,
    /// The SVG to write.
    #[arg(long, value_name = "FILE.svg")]
    pub out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let curves = args
        .runs
        .iter()
        .map(|run| {
            let (name, dir) = match run.split_once('=') {
                Some((name, dir)) => (name.to_string(), Path::new(dir)),
                None => (dir_name(Path::new(run)), Path::new(run.as_str())),
            };
            let state = read_state(dir)?;
            if state.history.is_empty() {
                bail!("{}: the run has no validation points yet", dir.display());
            }
            Ok(curve(name, &state.history))
        })
        .collect::<Result<Vec<_>>>()?;
    write_atomic(&args.out, training_curves(&curves)?.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("wrote {} ({} runs)", args.out.display(), curves.len());
    Ok(())
}

fn dir_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string())
}
