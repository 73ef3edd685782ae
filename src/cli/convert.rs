//! `ltm convert`: the authors' PyTorch checkpoint, or any we read, to our model directory
//! (config.json, model.safetensors, tokenizer.json), written all at once; several checkpoints
//! of one shape become their mean (a run's kept saves: model card, "Stage 18").

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::fsutil::{MEDIUM_FILE, SMALL_FILE, read_limited, temporary_beside, write_atomic};
use crate::model::Checkpoint;
use crate::model::checkpoint::TOKENIZER_FILE;
use crate::runtime::PROMPTS_FILE;
use crate::tasks::{BOS, EOS};
use crate::text::{GPT2_TOKENIZER_JSON, Tokenizer};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The checkpoint (the authors' ckpt_*.pt, or anything `--model` accepts); several of one
    /// shape are averaged (`ltm train --keep-saves` keeps a run's saves as model-iterN.safetensors).
    #[arg(value_name = "CKPT", required = true, num_args = 1..)]
    pub checkpoints: Vec<PathBuf>,
    /// The model directory to create.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// tokenizer.json to ship with the model [default: the tokenizer.json beside the checkpoint,
    /// else GPT-2's plus <|beginoftext|>, as the authors use].
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Write the weights in bf16 (rounded to nearest): half the bytes, as the bundled model ships.
    #[arg(long)]
    pub bf16: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut loaded = (args.checkpoints.iter())
        .map(|c| Checkpoint::load(c))
        .collect::<Result<Vec<_>>>()?;
    let mut checkpoint = if loaded.len() == 1 {
        loaded.remove(0)
    } else {
        Checkpoint::mean(&loaded)?
    };
    if args.bf16 {
        checkpoint = checkpoint.rounded_to_bf16()?;
    }
    let first = &args.checkpoints[0];
    // The tokenizer asked for, else the one beside the (first) checkpoint (a model directory's
    // own), else GPT-2's, which the authors use.
    let chosen = args
        .tokenizer
        .clone()
        .or_else(|| beside_file(first, TOKENIZER_FILE));
    let (json, tokenizer) = match &chosen {
        Some(path) => {
            let json = read_limited(path, MEDIUM_FILE).context("cannot read the tokenizer")?;
            let tokenizer = Tokenizer::from_bytes(&json, path.display().to_string())?;
            (json, tokenizer)
        }
        None => (GPT2_TOKENIZER_JSON.to_vec(), Tokenizer::gpt2()),
    };
    tokenizer
        .check_fits(checkpoint.config.vocab_size, &checkpoint.source)
        .map_err(|e| {
            anyhow::anyhow!(
                "{e:#}; pass --tokenizer FILE, the tokenizer.json the model was trained with"
            )
        })?;
    // The authors' configs carry no special-token ids; the tokenizer knows them.
    let c = &mut checkpoint.config;
    c.bos_token_id = c.bos_token_id.or(tokenizer.token_id(BOS));
    c.eos_token_id = c.eos_token_id.or(tokenizer.token_id(EOS));
    // Prompts to try on first contact: the source directory's own, else text to continue, as
    // the authors' models were trained on web text.
    let prompts = beside_file(first, PROMPTS_FILE)
        .and_then(|p| read_limited(&p, SMALL_FILE).ok())
        .unwrap_or_else(|| TEXT_PROMPTS.as_bytes().to_vec());
    write_dir(&args.out, |dir| {
        checkpoint.save_dir(dir)?;
        write_atomic(&dir.join(TOKENIZER_FILE), &json)?;
        write_atomic(&dir.join(PROMPTS_FILE), &prompts)
    })?;
    let averaged = match args.checkpoints.len() {
        1 => String::new(),
        n => format!("the mean of {n} checkpoints, "),
    };
    eprintln!(
        "wrote {} ({averaged}tokenizer: {})",
        args.out.display(),
        tokenizer.source()
    );
    Ok(())
}

/// Prompts for a model that continues text.
const TEXT_PROMPTS: &str = r#"[
  {"prompt": "The history of the city begins"},
  {"prompt": "Scientists have discovered a new way to"},
  {"prompt": "Once upon a time, in a small village by the sea,"}
]
"#;

/// `name` in the checkpoint's directory (the directory itself for a model directory), if it
/// is there.
fn beside_file(checkpoint: &Path, name: &str) -> Option<PathBuf> {
    let dir = if checkpoint.is_dir() {
        checkpoint
    } else {
        checkpoint.parent()?
    };
    Some(dir.join(name)).filter(|p| p.is_file())
}

/// Fills a directory under a temporary name beside `out`, then renames it into place, so that
/// `out` is either absent or complete. An existing `out` must be empty.
fn write_dir(out: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let occupied =
        out.exists() && std::fs::read_dir(out).map_or(true, |mut entries| entries.next().is_some());
    if occupied {
        bail!(
            "{}: already exists and is not an empty directory",
            out.display()
        );
    }
    let tmp = temporary_beside(out)?;
    let result = fill(&tmp).and_then(|()| {
        if out.exists() {
            std::fs::remove_dir(out)?;
        }
        std::fs::rename(&tmp, out)
            .with_context(|| format!("cannot move {} into place", out.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
