//! Throughput of thinking and writing, and how close the machine's matmul peak they come.
//! Figures are medians over repeated runs.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use crate::generate::{Flow, Sampling, generate};
use crate::model::{Config, Ltm};
use crate::noise::{gaussian, rng};
use crate::think::{FastLearning, Posterior, Sequences, fast_learning};

#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub prompt_len: usize,
    pub steps: usize,
    pub new_tokens: usize,
    pub samples: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub device: String,
    pub parameters: usize,
    pub prompt_len: usize,
    pub samples: usize,
    /// Median wall time of one fast-learning step (forward + backward to the thought + update).
    pub posterior_step_ms: f64,
    pub think_steps_per_s: f64,
    /// Generated tokens per second, over all samples.
    pub gen_tok_s: f64,
    /// Achieved FLOP rate of a thinking step.
    pub gflops: f64,
    /// The machine's measured f32 matmul rate.
    pub peak_gflops: f64,
    pub peak_ratio: f64,
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

/// FLOPs of one forward pass over `n` tokens per sequence (matmuls only; the multiply-adds
/// of every linear layer, attention scores and values, and the tied output layer).
pub fn forward_flops(c: &Config, n: usize, batch: usize) -> f64 {
    let (d, kv, h) = (
        c.dim as f64,
        (c.n_kv_heads() * c.head_dim()) as f64,
        c.ffn_dim() as f64,
    );
    let zl = c.z_per_layer() as f64;
    let n_f = n as f64;
    let window = n.min(c.window_size) as f64;
    let self_attn = n_f * (2.0 * d * d + 2.0 * d * kv) + 2.0 * n_f * window * d;
    let cross_attn = n_f * 2.0 * d * d + zl * 2.0 * d * kv + 2.0 * n_f * zl * d;
    let ffn = n_f * 3.0 * d * h;
    let per_layer = self_attn + cross_attn + ffn;
    let output = n_f * d * c.vocab_size as f64;
    2.0 * batch as f64 * (c.n_layers as f64 * per_layer + output)
}

/// The f32 matmul rate of `device`, measured on the spot (median of several 1024³ products).
pub fn matmul_peak_gflops(device: &Device) -> Result<f64> {
    let n = 1024;
    let a = Tensor::randn(0f32, 1., (n, n), device)?;
    let b = Tensor::randn(0f32, 1., (n, n), device)?;
    let mut times = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        let c = a.matmul(&b)?;
        c.sum_all()?.to_scalar::<f32>()?; // waits for the device
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n as f64).powi(3) / median(times) / 1e9)
}

pub fn run(model: &Ltm, settings: &BenchSettings, device_name: &str) -> Result<BenchReport> {
    let c = model.config().clone();
    let device = model.device();
    let mut r = rng(0);
    let ids: Vec<u32> = (0..settings.prompt_len + 1)
        .map(|i| ((i * 7919 + 13) % c.vocab_size) as u32)
        .collect();
    let text = Sequences::new(&ids, settings.samples, device)?;
    let shape = model.thought_shape(settings.samples);
    let init = Posterior::initial(shape, 0.0, &mut r, device)?;
    let eps = gaussian(shape, &mut r, device)?;

    let mut step_ms = Vec::new();
    let fl = FastLearning {
        steps: settings.steps,
        lr: c.fast_lr,
        tolerance: None,
    };
    let thought = fast_learning(model, &text, &init, &eps, &fl, |s| {
        step_ms.push(s.ms);
        true
    })?;
    // The first step pays for allocation warm-up; the median ignores it.
    let posterior_step_ms = median(step_ms);

    let z = thought.z()?.to_dtype(DType::F32)?;
    let mut gen_times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let (written, _) = generate(
            model,
            &ids[..settings.prompt_len],
            &z,
            &Sampling::greedy(settings.new_tokens),
            None,
            |_| Flow::Continue,
        )?;
        let tokens: usize = written.iter().map(Vec::len).sum();
        gen_times.push(tokens as f64 / start.elapsed().as_secs_f64());
    }

    // A thinking step is a forward pass and a backward pass to the inputs (about as much again).
    let step_flops = 2.0 * forward_flops(&c, settings.prompt_len, settings.samples);
    let gflops = step_flops / (posterior_step_ms / 1e3) / 1e9;
    let peak_gflops = matmul_peak_gflops(device)?;
    Ok(BenchReport {
        device: device_name.to_string(),
        parameters: model.parameter_count(),
        prompt_len: settings.prompt_len,
        samples: settings.samples,
        posterior_step_ms,
        think_steps_per_s: 1e3 / posterior_step_ms,
        gen_tok_s: median(gen_times),
        gflops,
        peak_gflops,
        peak_ratio: gflops / peak_gflops,
    })
}
