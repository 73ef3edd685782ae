//! `ltm bench`: thinking and writing speed, and the achieved compute rate against a matmul
//! peak measured on the spot.

use anyhow::Result;

use crate::device::{describe, select};
use crate::model::{Checkpoint, Config};
use crate::runtime;
use crate::speed::{
    self, BenchReport, BenchSettings, TrainBenchSettings, memory_bandwidth, run as bench,
};

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
    /// Every case of the performance table in one run (random weights): the small shape with
    /// 64-, 256- and 1024-token prompts and with 4 samples, the medium and large shapes; with
    /// the memory bandwidth and how close decoding comes to the bound it sets.
    #[arg(long, conflicts_with_all = ["model", "shape", "prompt_len", "samples"])]
    pub sweep: bool,
    /// Time training iterations instead (random tokens, the reference's optimizer settings): tokens/s,
    /// nominal GFLOP/s against the matmul rate, and the split between fast learning, the decoder's
    /// forward and backward pass and the optimizer. With `--sweep`: the tiny and mini shapes with 1
    /// and 4 fast steps.
    #[arg(long)]
    pub train: bool,
    /// Training sequences per batch.
    #[arg(long, value_name = "N", default_value_t = 16, requires = "train")]
    pub batch: usize,
    /// Tokens per training sequence.
    #[arg(long, value_name = "N", default_value_t = 256, requires = "train")]
    pub seq_len: usize,
    /// Fast-learning steps per training iteration.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "train")]
    pub fast_steps: usize,
    /// Train with bf16 products (as `ltm train --bf16`: on a CPU with AMX-BF16, the products
    /// with weight matrices; on a GPU, the whole decoder).
    #[arg(long, requires = "train")]
    pub bf16: bool,
    /// Timed training iterations (after one to warm up).
    #[arg(long, value_name = "N", default_value_t = 5, requires = "train")]
    pub iters: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: super::DeviceArg,
    #[command(flatten)]
    pub decode: super::DecodeArg,
}

/// Model shapes: the paper's LTM sizes (dim 512, 8 heads, GPT-2 vocabulary, 8 thoughts per
/// layer) and two small ones with a 1,024-token vocabulary, like the bundled model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// The paper's, 3 layers
    Small,
    /// The paper's, 6 layers
    Medium,
    /// The paper's, 12 layers
    Large,
    /// The bundled model's: dim 128, 4 layers, 4 heads (2 kv), 16 thoughts (1.07 M parameters)
    Tiny,
    /// dim 256, 6 layers, 8 heads (4 kv), 24 thoughts (5.87 M parameters)
    Mini,
}

impl Shape {
    fn config(self) -> Config {
        let small = |dim, n_layers, n_heads, max_z_len| Config {
            dim,
            n_layers,
            n_heads,
            n_kv_heads: Some(n_heads / 2),
            vocab_size: 1024,
            max_seq_len: 256,
            max_z_len,
            ..Config::paper_shape(n_layers)
        };
        match self {
            Shape::Small => Config::paper_shape(3),
            Shape::Medium => Config::paper_shape(6),
            Shape::Large => Config::paper_shape(12),
            Shape::Tiny => small(128, 4, 4, 16),
            Shape::Mini => small(256, 6, 8, 24),
        }
    }

    fn checkpoint(self) -> Result<Checkpoint> {
        Checkpoint::random(self.config(), 0)
    }

    fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

/// The sweep's cases: shape, prompt length, samples.
const SWEEP: [(Shape, usize, usize); 6] = [
    (Shape::Small, 64, 1),
    (Shape::Small, 256, 1),
    (Shape::Small, 1024, 1),
    (Shape::Small, 256, 4),
    (Shape::Medium, 256, 1),
    (Shape::Large, 256, 1),
];

/// The training sweep's cases: shape and fast steps.
const TRAIN_SWEEP: [(Shape, usize); 4] = [
    (Shape::Tiny, 1),
    (Shape::Mini, 1),
    (Shape::Tiny, 4),
    (Shape::Mini, 4),
];

pub fn run(args: Args) -> Result<()> {
    let device = select(args.device.device)?;
    if args.train {
        return train(&args, &device);
    }
    if args.sweep {
        return sweep(&args, &device);
    }
    let (name, checkpoint) = match args.shape {
        Some(shape) => (
            format!("LTM {} (random weights)", shape.name()),
            shape.checkpoint()?,
        ),
        None => {
            let path = runtime::resolve_model(&args.model.unwrap_or_else(runtime::default_model))?;
            (path.display().to_string(), Checkpoint::load(&path)?)
        }
    };
    let model = runtime::build(&checkpoint, &device, args.decode.decode_weights)?;
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
        println!("threads            {}", r.threads);
        println!(
            "posterior_step_ms  {:.1}  ({} tokens × {} sample(s))",
            r.posterior_step_ms, r.prompt_len, r.samples
        );
        println!("think steps/s      {:.2}", r.think_steps_per_s);
        println!("gen_tok_s          {:.1}", r.gen_tok_s);
        println!("decode_tok_s       {:.1}", r.decode_tok_s);
        println!("gflops             {:.1}", r.gflops);
        println!(
            "peak_gflops        {:.1}  (f32 matmul, measured now)",
            r.peak_gflops
        );
        println!("ratio              {:.0}%", 100.0 * r.peak_ratio);
    }
    Ok(())
}

fn sweep(args: &Args, device: &candle_core::Device) -> Result<()> {
    if !args.json {
        eprintln!("sweeping {} cases on {}…", SWEEP.len(), describe(device));
    }
    let bandwidth = memory_bandwidth();
    if !args.json {
        println!(
            "memory: read {:.1} GB/s, copy {:.1} GB/s (read + written); the bound is the read rate",
            bandwidth.read_gbs, bandwidth.copy_gbs
        );
        println!(
            "{:<22} {:>3} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8} {:>9} {:>8}",
            "case",
            "thr",
            "step ms",
            "GFLOP/s",
            "of peak",
            "gen tok/s",
            "decode/s",
            "MB/step",
            "bound/s",
            "of bound"
        );
    }
    let mut reports: Vec<(String, BenchReport)> = Vec::new();
    let mut model = None;
    for (shape, prompt_len, samples) in SWEEP {
        if model.as_ref().is_none_or(|(s, _)| *s != shape) {
            let built = runtime::build(&shape.checkpoint()?, device, args.decode.decode_weights)?;
            model = Some((shape, built));
        }
        let (_, model) = model.as_ref().expect("built above");
        let settings = BenchSettings {
            prompt_len,
            steps: args.steps,
            new_tokens: args.new_tokens,
            samples,
        };
        let r = bench(model, &settings, describe(device))?;
        let case = format!("{}, {prompt_len} tokens × {samples}", shape.name());
        if !args.json {
            let bound = r.bandwidth_bound(&bandwidth);
            println!(
                "{case:<22} {:>3} {:>8.1} {:>8.1} {:>6.0}% {:>9.1} {:>9.1} {:>8.1} {:>9.1} {:>7.0}%",
                r.threads,
                r.posterior_step_ms,
                r.gflops,
                100.0 * r.peak_ratio,
                r.gen_tok_s,
                r.decode_tok_s,
                r.decode_weight_bytes as f64 / 1e6,
                bound.bound_tok_s,
                100.0 * bound.ratio
            );
        }
        reports.push((case, r));
    }
    if args.json {
        let cases: Vec<_> = reports
            .iter()
            .map(|(case, r)| {
                serde_json::json!({
                    "case": case,
                    "report": r,
                    "bandwidth_bound": r.bandwidth_bound(&bandwidth),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "bandwidth": bandwidth, "cases": cases })
        );
    }
    Ok(())
}

fn train(args: &Args, device: &candle_core::Device) -> Result<()> {
    let cases: Vec<(String, Config, usize)> = if args.sweep {
        TRAIN_SWEEP
            .iter()
            .map(|&(shape, steps)| (shape.name(), shape.config(), steps))
            .collect()
    } else {
        let (name, config) = match (args.shape, &args.model) {
            (Some(shape), _) => (shape.name(), shape.config()),
            (None, Some(model)) => {
                let path = runtime::resolve_model(model)?;
                (path.display().to_string(), Checkpoint::load(&path)?.config)
            }
            (None, None) => (Shape::Tiny.name(), Shape::Tiny.config()),
        };
        vec![(name, config, args.fast_steps)]
    };
    if !args.json {
        eprintln!(
            "timing training iterations of {} × {} random tokens on {}…",
            args.batch,
            args.seq_len,
            describe(device)
        );
        println!(
            "{:<8} {:>9} {:>5} {:>3} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7}",
            "shape",
            "params",
            "fast",
            "thr",
            "tok/s",
            "iter ms",
            "think ms",
            "dec. ms",
            "opt. ms",
            "GFLOP/s",
            "peak",
            "of peak"
        );
    }
    let mut reports = Vec::new();
    for (name, config, fast_steps) in cases {
        let settings = TrainBenchSettings {
            batch_size: args.batch,
            seq_len: args.seq_len,
            fast_steps,
            iters: args.iters,
            compute: if args.bf16 {
                candle_core::DType::BF16
            } else {
                candle_core::DType::F32
            },
        };
        let r = speed::train(&config, &settings, device, describe(device))?;
        if !args.json {
            println!(
                "{name:<8} {:>9} {:>5} {:>3} {:>9.0} {:>9.1} {:>9.1} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>6.0}%",
                r.parameters,
                r.fast_steps,
                r.threads,
                r.tok_s,
                r.iter_ms,
                r.think_ms,
                r.decoder_ms,
                r.optimizer_ms,
                r.gflops,
                r.peak_gflops,
                100.0 * r.peak_ratio
            );
        }
        reports.push(serde_json::json!({ "case": name, "report": r }));
    }
    if args.json {
        println!("{}", serde_json::json!({ "cases": reports }));
    }
    Ok(())
}
