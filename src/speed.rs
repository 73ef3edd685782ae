//! Throughput of thinking and writing, and how close they come to the machine's limits: its
//! matmul peak for thinking, its memory bandwidth for writing. Figures are medians over repeated
//! runs.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::Serialize;

use crate::generate::{Flow, Sampling, generate};
use crate::model::{Config, Ltm};
use crate::noise::{gaussian, rng};
use crate::think::{FastLearning, Posterior, Sequences, fast_learning};
use crate::train::{DataConfig, OptimConfig, PhaseTimes, Start, TrainConfig, Trainer};

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
    /// Compute threads used (fewer than the cores while other programs keep cores busy).
    pub threads: usize,
    pub parameters: usize,
    pub prompt_len: usize,
    pub samples: usize,
    /// Median wall time of one fast-learning step (forward + backward to the thought + update).
    pub posterior_step_ms: f64,
    pub think_steps_per_s: f64,
    /// Generated tokens per second, over all samples, the prompt's prefill included.
    pub gen_tok_s: f64,
    /// Tokens per second once the prompt is read: one decoding step per token and sample.
    pub decode_tok_s: f64,
    /// Weight bytes one decoding step reads (the model's, whatever the batch).
    pub decode_weight_bytes: usize,
    /// Achieved FLOP rate of a thinking step.
    pub gflops: f64,
    /// The machine's measured f32 matmul rate.
    pub peak_gflops: f64,
    pub peak_ratio: f64,
}

/// What the memory allows a decoding step: tokens per second if its weights streamed at the
/// measured read bandwidth, and the share of that reached.
#[derive(Debug, Clone, Serialize)]
pub struct BandwidthBound {
    pub bound_tok_s: f64,
    pub ratio: f64,
}

impl BenchReport {
    /// Decoding against the bandwidth bound: the tokens per second if each step's weights
    /// streamed at the measured read rate (a step reads them once and writes a token for every
    /// sample).
    pub fn bandwidth_bound(&self, bandwidth: &Bandwidth) -> BandwidthBound {
        let steps_per_s = bandwidth.read_gbs * 1e9 / self.decode_weight_bytes as f64;
        let bound_tok_s = steps_per_s * self.samples as f64;
        BandwidthBound {
            bound_tok_s,
            ratio: self.decode_tok_s / bound_tok_s,
        }
    }
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

/// The machine's memory bandwidth, measured on a buffer far larger than the caches.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bandwidth {
    /// A parallel read (a sum): what decoding does with its weights.
    pub read_gbs: f64,
    /// A parallel copy, bytes read plus bytes written per second (STREAM's convention; the
    /// destination's cache-line fills are not counted).
    pub copy_gbs: f64,
}

/// Σ xs in 32 lanes, compiled for AVX2 as the decoding kernels are: the read rate is then the
/// memory's, not the loop's.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn sum(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 32];
    for block in xs.chunks_exact(32) {
        for (l, x) in lanes.iter_mut().zip(block) {
            *l += x;
        }
    }
    lanes.iter().sum()
}

pub fn memory_bandwidth() -> Bandwidth {
    const LEN: usize = 32 << 20; // 128 MB of f32
    const CHUNK: usize = 1 << 16;
    const BYTES: f64 = (LEN * size_of::<f32>()) as f64;
    fn timed(mut f: impl FnMut()) -> f64 {
        // The first run maps the pages; the median of the others is the figure.
        let times: Vec<f64> = (0..6)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .skip(1)
            .collect();
        median(times)
    }
    let src = vec![1f32; LEN];
    let mut dst = vec![0f32; LEN];
    let read = timed(|| {
        let sum: f32 = src.par_chunks(CHUNK).map(sum).sum();
        std::hint::black_box(sum);
    });
    let copy = timed(|| {
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| d.copy_from_slice(s));
        std::hint::black_box(&dst);
    });
    Bandwidth {
        read_gbs: BYTES / read / 1e9,
        copy_gbs: 2.0 * BYTES / copy / 1e9,
    }
}

pub fn run(model: &Ltm, settings: &BenchSettings, device_name: &str) -> Result<BenchReport> {
    crate::threads::run(|| measure(model, settings, device_name))
}

fn measure(model: &Ltm, settings: &BenchSettings, device_name: &str) -> Result<BenchReport> {
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
        measure_final: true,
    };
    let thought = fast_learning(model, &text, &init, &eps, &fl, |s| {
        step_ms.push(s.ms);
        true
    })?;
    // The first step pays for allocation warm-up; the median ignores it.
    let posterior_step_ms = median(step_ms);

    let z = thought.z()?.to_dtype(DType::F32)?;
    let (mut gen_rates, mut decode_rates) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let start = Instant::now();
        // The first token of each sample comes with the prompt's prefill; decoding starts after.
        let mut first_step_done = None;
        let (written, _) = generate(
            model,
            &ids[..settings.prompt_len],
            &z,
            &Sampling::greedy(settings.new_tokens),
            None,
            |_| {
                first_step_done.get_or_insert_with(Instant::now);
                Flow::Continue
            },
        )?;
        let end = Instant::now();
        let tokens: usize = written.iter().map(Vec::len).sum();
        gen_rates.push(tokens as f64 / (end - start).as_secs_f64());
        if let Some(first) = first_step_done.filter(|_| settings.new_tokens > 1) {
            let decoded = tokens - settings.samples;
            decode_rates.push(decoded as f64 / (end - first).as_secs_f64());
        }
    }

    // A thinking step is a forward pass and a backward pass to the inputs (about as much again).
    let step_flops = 2.0 * forward_flops(&c, settings.prompt_len, settings.samples);
    let gflops = step_flops / (posterior_step_ms / 1e3) / 1e9;
    let peak_gflops = matmul_peak_gflops(device)?;
    Ok(BenchReport {
        device: device_name.to_string(),
        // The compute threads' pool is the one running this.
        threads: rayon::current_num_threads(),
        parameters: model.parameter_count(),
        prompt_len: settings.prompt_len,
        samples: settings.samples,
        posterior_step_ms,
        think_steps_per_s: 1e3 / posterior_step_ms,
        gen_tok_s: median(gen_rates),
        decode_tok_s: median(decode_rates),
        decode_weight_bytes: model.decode_weight_bytes(),
        gflops,
        peak_gflops,
        peak_ratio: gflops / peak_gflops,
    })
}

/// A training benchmark's batch: `batch_size` sequences of `seq_len` random tokens, each
/// iteration thinking for `fast_steps`; `iters` timed iterations after one to warm up.
#[derive(Debug, Clone)]
pub struct TrainBenchSettings {
    pub batch_size: usize,
    pub seq_len: usize,
    pub fast_steps: usize,
    pub iters: usize,
    /// The decoder's compute type (`Trainer::set_compute_dtype`).
    pub compute: DType,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainBenchReport {
    pub device: String,
    pub threads: usize,
    pub parameters: usize,
    pub batch_size: usize,
    pub seq_len: usize,
    pub fast_steps: usize,
    /// Median wall time of a whole iteration.
    pub iter_ms: f64,
    /// Training tokens per second at that median.
    pub tok_s: f64,
    /// Medians of the iteration's parts, in milliseconds: fast learning, the decoder's forward
    /// and backward pass, the optimizer.
    pub think_ms: f64,
    pub decoder_ms: f64,
    pub optimizer_ms: f64,
    /// Nominal FLOP rate ([`train_iteration_flops`] over the median iteration).
    pub gflops: f64,
    /// The machine's f32 matmul rate, measured beside it.
    pub peak_gflops: f64,
    pub peak_ratio: f64,
}

/// Nominal FLOPs of one training iteration: each fast-learning step is a forward pass and a
/// backward pass to the thought (counted as much again), the decoder's update a forward pass
/// and a backward pass to inputs and weights (counted twice the forward). Work a trainer saves
/// (the weights' gradients in fast learning) shows as speed.
pub fn train_iteration_flops(c: &Config, s: &TrainBenchSettings) -> f64 {
    forward_flops(c, s.seq_len, s.batch_size) * (3.0 + 2.0 * s.fast_steps as f64)
}

/// Times whole training iterations of a model of shape `model` on random tokens.
pub fn train(
    model: &Config,
    settings: &TrainBenchSettings,
    device: &Device,
    device_name: &str,
) -> Result<TrainBenchReport> {
    crate::threads::run(|| measure_training(model, settings, device, device_name))
}

fn measure_training(
    model: &Config,
    s: &TrainBenchSettings,
    device: &Device,
    device_name: &str,
) -> Result<TrainBenchReport> {
    use rand::Rng;
    let model = Config {
        // No BOS: windows start anywhere in the random text.
        bos_token_id: None,
        max_seq_len: model.max_seq_len.max(s.seq_len),
        ..model.clone()
    };
    let mut r = rng(0);
    let mut random_text = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| r.random_range(0..model.vocab_size as u32))
            .collect()
    };
    let train_tokens = random_text(s.batch_size * (s.seq_len + 1) * 8);
    let val_tokens = random_text(2 * (s.seq_len + 2));
    let config = TrainConfig {
        model: model.clone(),
        data: DataConfig::none(),
        optim: OptimConfig::reference(s.batch_size, s.seq_len, s.fast_steps),
    };
    let mut trainer = Trainer::new(
        config,
        train_tokens,
        val_tokens,
        vec![],
        std::path::Path::new(""),
        Start::Fresh,
        device.clone(),
    )?;
    trainer.set_compute_dtype(s.compute)?;
    trainer.step()?; // allocation warm-up
    let times: Vec<PhaseTimes> = (0..s.iters.max(1))
        .map(|_| Ok(trainer.step()?.times))
        .collect::<Result<_>>()?;
    let ms = |f: fn(&PhaseTimes) -> f64| median(times.iter().map(|t| 1e3 * f(t)).collect());
    let iter_ms = ms(PhaseTimes::total_s);
    let gflops = train_iteration_flops(&model, s) / (iter_ms / 1e3) / 1e9;
    let peak_gflops = matmul_peak_gflops(device)?;
    Ok(TrainBenchReport {
        device: device_name.to_string(),
        threads: rayon::current_num_threads(),
        parameters: trainer.parameter_count(),
        batch_size: s.batch_size,
        seq_len: s.seq_len,
        fast_steps: s.fast_steps,
        iter_ms,
        tok_s: (s.batch_size * s.seq_len) as f64 / (iter_ms / 1e3),
        think_ms: ms(|t| t.think_s),
        decoder_ms: ms(|t| t.decoder_s),
        optimizer_ms: ms(|t| t.optimizer_s),
        gflops,
        peak_gflops,
        peak_ratio: gflops / peak_gflops,
    })
}
