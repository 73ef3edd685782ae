//! Loading a model to run, written once for the engine and every command: the checkpoint, a
//! tokenizer checked to fit it, and the device it runs on.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::Device;

use crate::device::{DecodeWeights, DeviceChoice, select, weight_dtype};
use crate::dirs::{Dirs, save};
use crate::fsutil::{SMALL_FILE, read_text_limited};
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
    pub decode_weights: DecodeWeights,
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
        Ok((build(&checkpoint, &device, self.decode_weights)?, tokenizer))
    }
}

/// `checkpoint` as a model on `device`, in the device's weight dtype, writing with `decode`'s
/// weights.
pub fn build(checkpoint: &Checkpoint, device: &Device, decode: DecodeWeights) -> Result<Ltm> {
    let mut model = checkpoint.model(weight_dtype(device), device)?;
    model.set_decode_dtype(decode.dtype())?;
    Ok(model)
}

/// The model `ltm` ships. Its files are part of the binary and are installed into the data
/// directory's `models/` when it is first asked for (and refreshed when this binary ships other
/// files), so that an installed `ltm` finds it wherever it runs, with no checkout beside it.
pub const BUNDLED_MODEL: &str = "ltm-arith-tiny";

const BUNDLED_FILES: [(&str, &[u8]); 10] = [
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
    (
        "dev-thinking.svg",
        include_bytes!("../models/ltm-arith-tiny/dev-thinking.svg"),
    ),
    (
        "gsm-thinking.svg",
        include_bytes!("../models/ltm-arith-tiny/gsm-thinking.svg"),
    ),
    (
        "recipes.svg",
        include_bytes!("../models/ltm-arith-tiny/recipes.svg"),
    ),
    (
        PROMPTS_FILE,
        include_bytes!("../models/ltm-arith-tiny/prompts.json"),
    ),
];

/// A model directory's prompts to try, shown on first contact (checked by a test to be
/// answered right).
pub const PROMPTS_FILE: &str = "prompts.json";

/// What a front end says about a model on first contact.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Intro {
    /// What the model is for: its card's first paragraph (`README.md`), without markup.
    pub about: Option<String>,
    /// Prompts that work with it.
    pub prompts: Vec<TryPrompt>,
}

/// One prompt to try, with the final answer it gets (for the test that checks it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TryPrompt {
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

impl Intro {
    /// The card and prompts of a model directory; a checkpoint file, or a directory without
    /// them, has none. Neither is needed to run the model, so an unreadable one is left out.
    pub fn read(model: &Path) -> Self {
        if !model.is_dir() {
            return Self::default();
        }
        let about = read_text_limited(&model.join("README.md"), SMALL_FILE)
            .ok()
            .and_then(|card| first_paragraph(&card));
        let prompts = read_text_limited(&model.join(PROMPTS_FILE), SMALL_FILE)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        Self { about, prompts }
    }
}

/// The first paragraph of a Markdown card after its title, as plain text.
fn first_paragraph(card: &str) -> Option<String> {
    let paragraph: Vec<&str> = card
        .lines()
        .skip_while(|l| l.trim().is_empty() || l.starts_with('#'))
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let text = paragraph.join(" ").replace("**", "").replace('`', "");
    (!text.is_empty()).then_some(text)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intro_is_the_cards_first_paragraph_and_the_prompts_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("README.md"),
            "# m\n\nThe **model** for `sums`,\nsmall.\n\n## More\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(PROMPTS_FILE),
            r#"[{"prompt": "1+1?", "answer": "2"}, {"prompt": "Hi"}]"#,
        )
        .unwrap();
        let intro = Intro::read(dir.path());
        assert_eq!(intro.about.as_deref(), Some("The model for sums, small."));
        assert_eq!(intro.prompts.len(), 2);
        assert_eq!(intro.prompts[1].answer, None);
        std::fs::write(dir.path().join(PROMPTS_FILE), "{").unwrap();
        assert!(
            Intro::read(dir.path()).prompts.is_empty(),
            "a broken file is left out"
        );
        assert_eq!(Intro::read(&dir.path().join("README.md")), Intro::default());
    }

    #[test]
    fn every_picture_the_bundled_card_shows_is_bundled() {
        let card = BUNDLED_FILES.iter().find(|(name, _)| *name == "README.md");
        let card = std::str::from_utf8(card.unwrap().1).unwrap();
        let pictures: Vec<&str> = (card.split("](").skip(1))
            .filter_map(|rest| rest.split_once(')'))
            .map(|(link, _)| link)
            .filter(|link| link.ends_with(".svg"))
            .collect();
        assert!(pictures.len() >= 3, "{pictures:?}");
        for picture in pictures {
            assert!(
                BUNDLED_FILES.iter().any(|(name, _)| *name == picture),
                "the card shows {picture}, which an installed model would lack"
            );
        }
    }
}
