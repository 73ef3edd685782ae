//! Loading a model to run, written once for the engine and every command: the checkpoint, a
//! tokenizer checked to fit it, and the device it runs on.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::device::{DeviceChoice, select, weight_dtype};
use crate::dirs::{Dirs, save};
use crate::model::checkpoint::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::model::{Checkpoint, Ltm};
use crate::text::Tokenizer;

/// Which model to load, with which tokenizer, where.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSource {
    /// A model directory (config.json, model.safetensors, tokenizer.json) or a checkpoint file.
    pub path: PathBuf,
    /// A tokenizer.json to use instead of the model's own.
    pub tokenizer: Option<PathBuf>,
    pub device: DeviceChoice,
}

impl ModelSource {
    /// The model's name as front ends show it: its directory's or file's name.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .unwrap_or(self.path.as_os_str())
            .to_string_lossy()
            .into_owned()
    }

    /// The checkpoint and its tokenizer, without building the model on a device.
    pub fn load_files(&self) -> Result<(Checkpoint, Tokenizer)> {
        let checkpoint = Checkpoint::load(&self.path)?;
        let tokenizer = Tokenizer::for_model(&self.path, self.tokenizer.as_deref())?;
        tokenizer.check_fits(checkpoint.config.vocab_size, &checkpoint.source)?;
        Ok((checkpoint, tokenizer))
    }

    /// The model on its device, with its tokenizer.
    pub fn load(&self) -> Result<(Ltm, Tokenizer)> {
        let device = select(self.device)?;
        let (checkpoint, tokenizer) = self.load_files()?;
        Ok((checkpoint.model(weight_dtype(&device), &device)?, tokenizer))
    }
}

/// The model `ltm` ships. Its files are part of the binary and are installed into the data
/// directory's `models/` when it is first asked for (and refreshed when this binary ships other
/// files), so that an installed `ltm` finds it wherever it runs, with no checkout beside it.
pub const BUNDLED_MODEL: &str = "ltm-arith-tiny";

const BUNDLED_FILES: [(&str, &[u8]); 6] = [
    (
        CONFIG_FILE,
        include_bytes!("../models/ltm-arith-tiny/config.json"),
    ),
    (
        WEIGHTS_FILE,
        include_bytes!("../models/ltm-arith-tiny/model.safetensors"),
    ),
    (
        TOKENIZER_FILE,
        include_bytes!("../models/ltm-arith-tiny/tokenizer.json"),
    ),
    (
        "README.md",
        include_bytes!("../models/ltm-arith-tiny/README.md"),
    ),
    (
        "loss.svg",
        include_bytes!("../models/ltm-arith-tiny/loss.svg"),
    ),
    (
        "thinking.svg",
        include_bytes!("../models/ltm-arith-tiny/thinking.svg"),
    ),
];

/// $LTM_MODEL, else the bundled model's name.
pub fn default_model() -> String {
    std::env::var("LTM_MODEL")
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| BUNDLED_MODEL.to_string())
}

/// Finds the model `spec` names: a path that exists; else the bundled model by its name
/// (installed first); else a model of that name in the data directory's `models/`.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let models = Dirs::resolve()?.models_dir();
    if spec == BUNDLED_MODEL {
        return install_bundled(&models);
    }
    let named = models.join(spec);
    if path.components().count() == 1 && named.is_dir() {
        return Ok(named);
    }
    bail!(
        "no model {spec}: no such file or directory, and no model of that name in {} (--model takes a path or a name that `ltm models` lists)",
        models.display()
    )
}

/// Writes the bundled model's files into `models`/ltm-arith-tiny where they are missing or
/// differ; returns that directory.
pub fn install_bundled(models: &Path) -> Result<PathBuf> {
    let dir = models.join(BUNDLED_MODEL);
    for (name, bytes) in BUNDLED_FILES {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(bytes) {
            save(&path, bytes).with_context(|| {
                format!("cannot install the bundled model into {}", dir.display())
            })?;
        }
    }
    Ok(dir)
}
