//! `ltm train`: the dual-rate trainer.

use std::path::PathBuf;

use anyhow::Result;

use crate::device::select;
use crate::train::run::{read_config, run as train};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training configuration (TOML: [model], [data], [optim]); see models/ltm-arith-tiny.toml.
    #[arg(long)]
    pub config: PathBuf,
    /// Output directory: checkpoints land here, in the model directory format.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run saved in --out, exactly where it stopped.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub device: super::DeviceArg,
}

pub fn run(args: Args) -> Result<()> {
    let (config, device) = (read_config(&args.config)?, select(args.device.device)?);
    crate::threads::run(|| train(config, &args.out, args.resume, device))
}
