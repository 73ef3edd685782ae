//! `ltm train`: the dual-rate trainer.

use std::path::PathBuf;

use anyhow::Result;

use crate::device::select;
use std::time::{Duration, Instant};

use candle_core::DType;

use crate::train::TrainConfig;
use crate::train::run::{RunOptions, run as train};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training configuration (TOML: `[model]`, `[data]`, `[optim]`); see models/ltm-arith-tiny.toml.
    #[arg(long)]
    pub config: PathBuf,
    /// Output directory: checkpoints land here, in the model directory format.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run saved in --out, exactly where it stopped.
    #[arg(long, conflicts_with = "init")]
    pub resume: bool,
    /// Start a new run in --out even though it holds one, which is replaced.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Start from a trained model's weights and tokenizer (a name or a model directory) with a
    /// fresh optimizer and schedule: a new stage on other data or another recipe. Its shape
    /// must be the configuration's, except that a configuration 2, 3, … times as deep grows it
    /// (each layer followed by copies that start out adding nothing), and one 2, 3, … times as
    /// wide, with as many times the heads, widens it (new heads and units that start out adding
    /// nothing).
    #[arg(long, value_name = "MODEL")]
    pub init: Option<String>,
    /// Stop after this many minutes of training (validated and saved; --resume continues it).
    #[arg(long, value_name = "MINUTES", value_parser = minutes)]
    pub minutes: Option<f64>,
    /// End within this many minutes from now (preparing the data included) with the whole
    /// learning-rate schedule fitted into them: the run ends, decayed to min_lr, at the
    /// iteration its pace reaches by then (re-estimated as it goes), or at max_iters if sooner.
    /// For a machine lent for a fixed time.
    #[arg(long, value_name = "MINUTES", value_parser = minutes, conflicts_with = "minutes")]
    pub schedule_minutes: Option<f64>,
    /// Also save a checkpoint at least every this many minutes, between validations.
    #[arg(long, value_name = "MINUTES", value_parser = minutes)]
    pub save_minutes: Option<f64>,
    /// Keep each save's weights as OUT/model-iterN.safetensors too, to average later
    /// (`ltm convert --out DIR OUT/model-iter*.safetensors`).
    #[arg(long)]
    pub keep_saves: bool,
    /// The decoder's products in bf16, with f32 weights, moments, thoughts and losses: on a GPU
    /// the whole decoder, on a CPU with AMX-BF16 (Intel Xeon, 4th generation on) its products
    /// with weight matrices.
    #[arg(long)]
    pub bf16: bool,
    #[command(flatten)]
    pub device: super::DeviceArg,
}

/// A positive, finite number of minutes (at most a year).
fn minutes(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(m) if m > 0.0 && m <= 525_600.0 => Ok(m),
        _ => Err(format!(
            "`{s}` is not a number of minutes between 0 and 525600"
        )),
    }
}

pub fn run(args: Args) -> Result<()> {
    let (config, device) = (
        TrainConfig::read(&args.config)?,
        select(args.device.device)?,
    );
    let duration = |m: Option<f64>| m.map(|m| Duration::from_secs_f64(m * 60.0));
    let init = args
        .init
        .as_deref()
        .map(crate::runtime::resolve_model)
        .transpose()?;
    let options = RunOptions {
        resume: args.resume,
        force: args.force,
        init,
        stop_after: duration(args.minutes),
        schedule_deadline: duration(args.schedule_minutes).map(|d| Instant::now() + d),
        save_every: duration(args.save_minutes),
        keep_saves: args.keep_saves,
        compute: if args.bf16 { DType::BF16 } else { DType::F32 },
    };
    crate::threads::run(|| train(config, &args.out, device, options))
}
