//! `ltm models`: the models `--model NAME` finds — the bundled one, those in the data
//! directory's `models/`, and `$LTM_MODEL` — with their size and thought shape.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::dirs::Dirs;
use crate::model::Checkpoint;
use crate::model::checkpoint::{CONFIG_FILE, WEIGHTS_FILE, parameter_shapes, read_config};
use crate::runtime::{BUNDLED_MODEL, install_bundled, resolve_model};
use crate::text::printable;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object per model, one per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    /// "bundled", "installed" (in the data directory) or "LTM_MODEL".
    origin: &'static str,
    path: PathBuf,
    parameters: usize,
    /// Thought vectors: layers × vectors per layer × their size.
    thought: [usize; 3],
    /// Bytes of the weights on disk.
    bytes: u64,
}

pub fn run(args: Args) -> Result<()> {
    let models = Dirs::resolve()?.models_dir();
    let mut listed = vec![describe("bundled", &install_bundled(&models)?)?];
    if let Ok(entries) = std::fs::read_dir(&models) {
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.join(CONFIG_FILE).is_file() && !p.ends_with(BUNDLED_MODEL))
            .collect();
        dirs.sort();
        for dir in dirs {
            // One unreadable model does not hide the others.
            match describe("installed", &dir) {
                Ok(model) => listed.push(model),
                Err(e) => eprintln!(
                    "warning: {}",
                    printable(&format!("{}: {e:#}", dir.display()))
                ),
            }
        }
    }
    if let Some(spec) = std::env::var("LTM_MODEL").ok().filter(|m| !m.is_empty()) {
        // A wrong $LTM_MODEL is said, and the models that are there are still listed.
        let model =
            resolve_model(&spec).and_then(|path| match listed.iter().any(|m| m.path == path) {
                true => Ok(None),
                false => describe("LTM_MODEL", &path).map(Some),
            });
        match model {
            Ok(model) => listed.extend(model),
            Err(e) => eprintln!("warning: $LTM_MODEL: {}", printable(&format!("{e:#}"))),
        }
    }
    if args.json {
        for model in &listed {
            println!("{}", serde_json::to_string(model)?);
        }
        return Ok(());
    }
    println!(
        "{:<24} {:<10} {:>10} {:>9}  {:<14} PATH",
        "NAME", "FROM", "PARAMS", "SIZE", "THOUGHT"
    );
    for m in &listed {
        println!(
            "{:<24} {:<10} {:>10} {:>9}  {:<14} {}",
            printable(&m.name),
            m.origin,
            m.parameters,
            super::info::size(m.bytes),
            format!("{}×{}×{}", m.thought[0], m.thought[1], m.thought[2]),
            printable(&m.path.display().to_string())
        );
    }
    Ok(())
}

/// A model, named as `--model` finds it: by its directory's or file's name. A model directory
/// is read from its config alone; a checkpoint file is loaded.
fn describe(origin: &'static str, path: &Path) -> Result<Listed> {
    let (config, weights) = if path.is_dir() {
        (
            read_config(&path.join(CONFIG_FILE))?,
            path.join(WEIGHTS_FILE),
        )
    } else {
        (Checkpoint::load(path)?.config, path.to_path_buf())
    };
    Ok(Listed {
        name: path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        origin,
        path: path.to_path_buf(),
        parameters: parameter_shapes(&config)
            .iter()
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum(),
        thought: [config.n_layers, config.z_per_layer(), config.dim],
        bytes: std::fs::metadata(&weights).map(|m| m.len()).unwrap_or(0),
    })
}
