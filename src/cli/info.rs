//! `ltm info`: what a model is — architecture, size, thought shape, tokenizer, thinking defaults, files.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::model::Config;
use crate::model::checkpoint::{CONFIG_FILE, TOKENIZER_FILE};
use crate::model::config::LevelSteps;
use crate::text::printable;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Info {
    model: PathBuf,
    config: Config,
    parameters: usize,
    head_dim: usize,
    ffn_dim: usize,
    /// Thought vectors per layer; a thought is [n_layers × z_per_layer, dim].
    z_per_layer: usize,
    thought_values: usize,
    /// Thinking steps of the levels low, medium, high and max (`--think`).
    levels: LevelSteps,
    tokenizer: TokenizerInfo,
    files: Vec<FileSize>,
}

#[derive(Debug, Serialize)]
struct TokenizerInfo {
    source: String,
    vocab_size: usize,
    specials: Vec<(u32, String)>,
}

#[derive(Debug, Serialize)]
struct FileSize {
    path: PathBuf,
    bytes: u64,
}

pub fn run(args: Args) -> Result<()> {
    // The device plays no part in describing a model.
    let source = args.model.source(Default::default(), Default::default())?;
    let (checkpoint, tokenizer) = source.load_files()?;
    let c = checkpoint.config;
    let dir = if source.path.is_dir() {
        source.path.as_path()
    } else {
        source.path.parent().unwrap_or(Path::new("."))
    };
    let candidates = [
        checkpoint.source,
        dir.join(CONFIG_FILE),
        args.model
            .tokenizer
            .clone()
            .unwrap_or_else(|| dir.join(TOKENIZER_FILE)),
    ];
    let mut files: Vec<FileSize> = Vec::new();
    for path in candidates {
        if path.is_file() && !files.iter().any(|f| f.path == path) {
            files.push(FileSize {
                bytes: std::fs::metadata(&path)?.len(),
                path,
            });
        }
    }
    let info = Info {
        model: source.path.clone(),
        parameters: checkpoint.tensors.values().map(|t| t.elem_count()).sum(),
        head_dim: c.head_dim(),
        ffn_dim: c.ffn_dim(),
        z_per_layer: c.z_per_layer(),
        thought_values: c.max_z_len * c.dim,
        levels: c.level_steps(),
        tokenizer: TokenizerInfo {
            source: tokenizer.source().to_string(),
            vocab_size: tokenizer.vocab_size(),
            specials: tokenizer.specials(),
        },
        files,
        config: c,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print!("{}", printable(&human(&info)));
    }
    Ok(())
}

fn human(i: &Info) -> String {
    let c = &i.config;
    let specials: Vec<String> = i
        .tokenizer
        .specials
        .iter()
        .map(|(id, t)| format!("{t} = {id}"))
        .collect();
    let ids = [("bos", c.bos_token_id), ("eos", c.eos_token_id)]
        .iter()
        .filter_map(|(k, v)| Some(format!("{k} {}", (*v)?)))
        .collect::<Vec<_>>();
    let files: Vec<String> = i
        .files
        .iter()
        .map(|f| format!("{} ({})", f.path.display(), size(f.bytes)))
        .collect();
    let mut out = format!(
        "model         {}\n\
         parameters    {} ({})\n\
         architecture  dim {} · {} layers · {} heads ({} key/value) · head {} · ffn {} · vocab {}\n\
         context       {} tokens, self-attention window {}\n\
         thought       {} layers × {} vectors × {} = {} values per sample\n\
         thinking      {} steps at fast lr {} (defaults); levels low {} · medium {} · high {} · max {} (adaptive)\n\
         tokenizer     {}: {} tokens; special: {}\n",
        i.model.display(),
        i.parameters,
        size_of_count(i.parameters),
        c.dim,
        c.n_layers,
        c.n_heads,
        c.n_kv_heads(),
        i.head_dim,
        i.ffn_dim,
        c.vocab_size,
        c.max_seq_len,
        c.window_size,
        c.n_layers,
        i.z_per_layer,
        c.dim,
        i.thought_values,
        c.num_steps,
        c.fast_lr,
        i.levels.low,
        i.levels.medium,
        i.levels.high,
        i.levels.max,
        i.tokenizer.source,
        i.tokenizer.vocab_size,
        if specials.is_empty() {
            "none".into()
        } else {
            specials.join(", ")
        },
    );
    if !ids.is_empty() {
        out += &format!("token ids     {}\n", ids.join(", "));
    }
    if let Some(format) = &c.prompt_format {
        out += &format!("prompt        {format:?}\n");
    }
    if c.calculator {
        out += "calculator    on (`<<EXPR=` gets its computed result)\n";
    }
    if c.copy_numbers {
        out += "copy numbers  on (numbers written: the question's, results, constants)\n";
    }
    if c.check {
        out += "check         on (drafts at several depths of thought, the likeliest kept)\n";
    }
    out += &format!("files         {}\n", files.join(", "));
    out
}

pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn size_of_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}
