//! `ltm bench`: thinking and writing speed, and the achieved compute rate against a matmul
//! peak measured on the spot.

use anyhow::Result;

use crate::device::{describe, select, weight_dtype};
use crate::model::{Checkpoint, Config};
use crate::runtime;
use crate::speed::{BenchSettings, run as bench};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a name, a model directory or a checkpoint file [default: $LTM_MODEL, else the
    /// bundled model].
    #[arg(short, long, value_name = "NAME|PATH", conflicts_with = "shape")]
    pub model: Option<String>,
    /// One of the paper's shapes with random weights instead of a model.
    #[arg(long, value_enum)]
    pub shape: Option<Shape>,
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub prompt_len: usize,
    /// Thinking steps.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub steps: usize,
    /// Tokens written per sample.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub new_tokens: usize,
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub samples: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: super::DeviceArg,
}

/// The paper's LTM sizes: dim 512, 8 heads, GPT-2 vocabulary, 8 thoughts per layer.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shape {
    /// 3 layers
    Small,
    /// 6 layers
    Medium,
    /// 12 layers
    Large,
}

pub fn run(args: Args) -> Result<()> {
    let device = select(args.device.device)?;
    let (name, checkpoint) = match args.shape {
        Some(shape) => {
            let layers = match shape {
                Shape::Small => 3,
                Shape::Medium => 6,
                Shape::Large => 12,
            };
            (
                format!("LTM {shape:?} (random weights)").to_lowercase(),
                Checkpoint::random(Config::paper_shape(layers), 0)?,
            )
        }
        None => {
            let path = runtime::resolve_model(&args.model.unwrap_or_else(runtime::default_model))?;
            (path.display().to_string(), Checkpoint::load(&path)?)
        }
    };
    let model = checkpoint.model(weight_dtype(&device), &device)?;
    let settings = BenchSettings {
        prompt_len: args.prompt_len,
        steps: args.steps,
        new_tokens: args.new_tokens,
        samples: args.samples,
    };
    if !args.json {
        eprintln!("benchmarking {name} on {}…", describe(&device));
    }
    let r = bench(&model, &settings, describe(&device))?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("parameters         {}", r.parameters);
        println!(
            "posterior_step_ms  {:.1}  ({} tokens × {} sample(s))",
            r.posterior_step_ms, r.prompt_len, r.samples
        );
        println!("think steps/s      {:.2}", r.think_steps_per_s);
        println!("gen_tok_s          {:.1}", r.gen_tok_s);
        println!("gflops             {:.1}", r.gflops);
        println!(
            "peak_gflops        {:.1}  (f32 matmul, measured now)",
            r.peak_gflops
        );
        println!("ratio              {:.0}%", 100.0 * r.peak_ratio);
    }
    Ok(())
}
