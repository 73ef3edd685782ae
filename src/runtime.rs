//! Loading a model to run, written once for the engine and every command: the checkpoint, a
//! tokenizer checked to fit it, and the device it runs on.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::device::{DeviceChoice, select, weight_dtype};
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
        let checkpoint = load_checkpoint(&self.path)?;
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

/// $LTM_MODEL, else the bundled model.
pub fn default_model() -> PathBuf {
    match std::env::var_os("LTM_MODEL") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ltm-arith-tiny"),
    }
}

/// `Checkpoint::load`, with a message saying what to do when the default model is missing.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    if !path.exists() && path == default_model() {
        bail!(
            "no model at {} (the default: $LTM_MODEL, else the bundled model, which ships in the repository's models/ folder); pass --model PATH",
            path.display()
        );
    }
    Checkpoint::load(path)
}
