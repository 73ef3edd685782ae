//! Slow learning, the dual-rate algorithm: for each batch, fast learning fits a
//! posterior over z per sequence (decoder weights held constant), then one AdamW step on the
//! decoder given the detached z, in the spirit of nanoGPT's loop: the configuration, the batches
//! and the step here; `run` drives it (`data` makes its corpus, `adamw` updates the weights,
//! `card` draws its chart and writes its model card, `saved` keeps the run's directory).

mod adamw;
pub mod card;
pub mod config;
mod data;
pub mod run;
mod saved;
pub mod tokenizer;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use rand::Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::model::{Checkpoint, Config, Ltm, Pass};
use crate::think::{self, Diverged, Sequences};
use adamw::AdamW;
pub use config::{
    DataConfig, HistoryPoint, OptimConfig, ThinkOn, TrainConfig, TrainState, learning_rate,
};
use config::{fast_lr, fast_steps, think_on};
pub use saved::{forget_run, holds_run, read_state};

/// The positions where a window of `len` tokens may start: every BOS token that leaves room for
/// one, or every position when there is no BOS token (or none leaves room).
fn window_starts(tokens: &[u32], bos: Option<u32>, len: usize) -> Vec<usize> {
    let last = tokens.len().saturating_sub(len);
    let at_bos: Vec<usize> = match bos {
        Some(bos) => (0..=last).filter(|&i| tokens[i] == bos).collect(),
        None => Vec::new(),
    };
    if at_bos.is_empty() {
        (0..=last).collect()
    } else {
        at_bos
    }
}

/// Weights of a window's targets: 1 in an answer (after `marker`, up to and including the BOS
/// that ends it), `question` elsewhere, and `fitted` (where given) on the first question's,
/// those a thought was fitted to. A window starts at a problem's BOS, so its first targets are
/// question text.
fn target_weights(
    targets: &[u32],
    bos: Option<u32>,
    marker: &[u32],
    question: f32,
    fitted: Option<f32>,
) -> Vec<f32> {
    let mut in_answer = false;
    let mut weights = Vec::with_capacity(targets.len());
    for (i, &t) in targets.iter().enumerate() {
        weights.push(if in_answer { 1.0 } else { question });
        if Some(t) == bos {
            in_answer = false;
        } else if !marker.is_empty()
            && i + 1 >= marker.len()
            && targets[i + 1 - marker.len()..=i] == *marker
        {
            in_answer = true;
        }
    }
    if let Some(w) = fitted {
        weights[..first_question_len(targets, marker)].fill(w);
    }
    weights
}

/// 1 for each target but those of a verdict: after `marker`, up to and including the next
/// `bos`.
pub(crate) fn unverdicted(targets: &[u32], marker: &[u32], bos: Option<u32>) -> Vec<f32> {
    let mut in_verdict = false;
    let mut scored = Vec::with_capacity(targets.len());
    for (i, &t) in targets.iter().enumerate() {
        scored.push(if in_verdict { 0.0 } else { 1.0 });
        if in_verdict && Some(t) == bos {
            in_verdict = false;
        } else if i + 1 >= marker.len() && targets[i + 1 - marker.len()..=i] == *marker {
            in_verdict = true;
        }
    }
    scored
}

/// How many of a window's targets belong to its first question: up to and including the end
/// of the first `marker` (all of them when there is none).
fn first_question_len(targets: &[u32], marker: &[u32]) -> usize {
    if marker.is_empty() {
        return targets.len();
    }
    targets
        .windows(marker.len())
        .position(|w| w == marker)
        .map_or(targets.len(), |at| at + marker.len())
}

/// Why a batch's thought could not be fitted, naming the learning rate at fault: the slow
/// one when the ELBO was not finite even at the starting thought (the last update broke the
/// weights), else the fast one.
fn diverged(e: anyhow::Error, o: &OptimConfig, iter: usize) -> anyhow::Error {
    match e.downcast_ref::<Diverged>() {
        Some(d) if d.step == 0 => anyhow!(
            "training diverged before iteration {iter}: the loss is not finite even before thinking; lower learning_rate ({:.2e} at the last update)",
            learning_rate(o, iter.saturating_sub(1))
        ),
        Some(_) => e.context(format!(
            "training diverged at iteration {iter} while fitting a thought (fast learning rate {:.3})",
            fast_lr(o, iter)
        )),
        None => e,
    }
}

/// What one training iteration did.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// The decoder's loss given the fitted thought.
    pub loss: f64,
    /// The batch's ELBO perplexity bound at the last fast-learning step (before its update).
    pub ppl_bound: f64,
    pub times: PhaseTimes,
}

/// Where an iteration's time went, in seconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PhaseTimes {
    /// Fast learning of the batch's thoughts.
    pub think_s: f64,
    /// The decoder's forward and backward pass given the thoughts.
    pub decoder_s: f64,
    /// Gradient clipping and the AdamW update.
    pub optimizer_s: f64,
}

impl PhaseTimes {
    pub fn total_s(&self) -> f64 {
        self.think_s + self.decoder_s + self.optimizer_s
    }
}

/// Whether the decoder can be trained in `dtype` on `device`: f32 anywhere, narrower types on
/// a GPU, and on the CPU bf16 products where it has AMX (candle has no fast bf16 matmul there).
pub fn check_compute_dtype(dtype: DType, device: &Device) -> Result<()> {
    let amx = dtype == DType::BF16 && crate::model::ops::amx::available();
    if dtype != DType::F32 && device.is_cpu() && !amx {
        bail!(
            "training in {dtype:?} on the CPU needs AMX-BF16 (Intel Xeon of the 4th generation or later), which this one lacks; train in f32 or on a GPU"
        );
    }
    Ok(())
}

/// A training run: weights as variables, optimizer state, data.
pub struct Trainer {
    pub config: TrainConfig,
    pub state: TrainState,
    vars: Vec<(String, Var)>,
    opt: AdamW,
    train_tokens: Vec<u32>,
    val_tokens: Vec<u32>,
    /// Where training windows may start: the first token of a problem (so that, as when the
    /// model is used, a question's text begins at position 0), or anywhere without a BOS token.
    train_starts: Vec<usize>,
    val_starts: Vec<usize>,
    /// The tokens after which an answer begins (`\nAnswer:`), when known.
    answer_marker: Vec<u32>,
    /// The tokens after which a verdict begins (`tasks::verdict`), when the data has verdicts.
    verdict_marker: Vec<u32>,
    device: Device,
    /// The weights' type in the decoder's products; the weights themselves, their moments and
    /// the thoughts stay f32.
    compute: DType,
    /// The CPU's way to bf16: f32 tensors, products with weight matrices on AMX tiles.
    bf16_products: bool,
}

/// How many times as wide `want` is as `have`, width, heads and key/value heads alike, if it is
/// a whole number above one.
fn widening(have: &Config, want: &Config) -> Option<usize> {
    let factor = want.dim / have.dim;
    let times = |c: &Config, f: usize| (c.dim * f, c.n_heads * f, c.n_kv_heads() * f);
    (factor > 1 && times(want, 1) == times(have, factor)).then_some(factor)
}

/// Refuses to start a run of shape `want` from weights of another shape.
fn check_same_shape(have: &Config, want: &Config) -> Result<()> {
    // Positions and windows shape no weight; the feed-forward width stands for multiple_of.
    let shape = |c: &Config| {
        c.sizes()
            .into_iter()
            .filter(|(key, _)| !["multiple_of", "max_seq_len", "window_size"].contains(key))
            .chain([("ffn width", c.ffn_dim())])
    };
    for ((name, a), (_, b)) in shape(have).zip(shape(want)) {
        if a != b {
            bail!("the starting weights have {name} = {a}, the configuration {b}");
        }
    }
    Ok(())
}

/// Where a run's weights come from.
pub enum Start {
    /// Random weights (`Checkpoint::random` from the run's seed).
    Fresh,
    /// The run saved in the output directory: weights, optimizer moments and state.
    Resume,
    /// A trained model's weights, with a fresh optimizer and state: a new stage on other data
    /// or another recipe. A configuration a whole number of times as wide or as deep, and
    /// otherwise of the same shape, grows the model first.
    From(Box<Checkpoint>),
}

impl Trainer {
    /// A run over `train_tokens`, started as `start` says.
    pub fn new(
        config: TrainConfig,
        train_tokens: Vec<u32>,
        val_tokens: Vec<u32>,
        answer_marker: Vec<u32>,
        out: &Path,
        start: Start,
        device: Device,
    ) -> Result<Self> {
        let fresh_state = || TrainState {
            iter: 0,
            tokens_seen: 0,
            elapsed_s: 0.0,
            history: vec![],
        };
        let (weights, state, moments) = match start {
            Start::Resume => {
                let (ckpt, state, moments) = saved::read(out, &device)?;
                (ckpt, state, Some(moments))
            }
            Start::From(ckpt) => {
                let mut ckpt = *ckpt;
                // A wider configuration (width and heads alike) grows the model's width
                // (`Checkpoint::widened`), a deeper one its depth (`Checkpoint::deepened`).
                if let Some(factor) = widening(&ckpt.config, &config.model) {
                    ckpt = ckpt.widened(factor, config.optim.seed)?;
                }
                let (have, want) = (ckpt.config.n_layers, config.model.n_layers);
                if want > have && want % have == 0 {
                    ckpt = ckpt.deepened(want / have)?;
                }
                check_same_shape(&ckpt.config, &config.model)?;
                (ckpt, fresh_state(), None)
            }
            Start::Fresh => {
                let ckpt = Checkpoint::random(config.model.clone(), config.optim.seed)?;
                (ckpt, fresh_state(), None)
            }
        };
        let mut names: Vec<_> = weights.tensors.keys().cloned().collect();
        names.sort();
        let vars: Vec<(String, Var)> = names
            .iter()
            .map(|n| {
                Ok((
                    n.clone(),
                    Var::from_tensor(
                        &weights.tensors[n]
                            .to_dtype(DType::F32)?
                            .to_device(&device)?,
                    )?,
                ))
            })
            .collect::<Result<_>>()?;
        // Weight decay on matrices and embeddings, none on norm weights (as the reference).
        let params = vars
            .iter()
            .map(|(n, v)| (n.clone(), v.clone(), v.rank() >= 2))
            .collect();
        let mut opt = AdamW::new(params)?;
        if let Some(mut moments) = moments {
            for (i, (n, _)) in vars.iter().enumerate() {
                opt.m[i] = moments
                    .remove(&format!("m.{n}"))
                    .with_context(|| format!("optimizer state lacks `m.{n}`"))?;
                opt.v[i] = moments
                    .remove(&format!("v.{n}"))
                    .with_context(|| format!("optimizer state lacks `v.{n}`"))?;
            }
            opt.step = state.iter;
        }
        let min_len = config.optim.seq_len + 2;
        if train_tokens.len() < min_len || val_tokens.len() < min_len {
            bail!(
                "not enough data: {} training and {} validation tokens for sequences of {}",
                train_tokens.len(),
                val_tokens.len(),
                min_len
            );
        }
        let starts = |tokens: &[u32]| window_starts(tokens, config.model.bos_token_id, min_len);
        Ok(Self {
            train_starts: starts(&train_tokens),
            val_starts: starts(&val_tokens),
            config,
            state,
            vars,
            opt,
            train_tokens,
            val_tokens,
            answer_marker,
            verdict_marker: Vec::new(),
            device,
            compute: DType::F32,
            bf16_products: false,
        })
    }

    /// The decoder over the current weights; `tracked` keeps them as variables (for the
    /// decoder update), otherwise it is a detached view (for fast learning).
    fn model(&self, tracked: bool) -> Result<Ltm> {
        let tensors: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(n, v)| {
                let weight = if tracked {
                    v.as_tensor().clone()
                } else {
                    v.as_tensor().detach()
                };
                // The cast is part of the graph: gradients reach the f32 weights.
                Ok((n.clone(), weight.to_dtype(self.compute)?))
            })
            .collect::<Result<_>>()?;
        let mut model = Ltm::new(
            &self.config.model,
            VarBuilder::from_tensors(tensors, self.compute, &self.device),
        )?;
        model.set_bf16_products(self.bf16_products)?;
        Ok(model)
    }

    /// `batch` random windows of `seq_len + 1` tokens, reproducible from (seed, iter, stream).
    fn batch(
        &self,
        tokens: &[u32],
        starts: &[usize],
        iter: usize,
        stream: u64,
    ) -> Result<Sequences> {
        let o = &self.config.optim;
        let mut rng =
            crate::noise::rng(o.seed ^ (iter as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream);
        let n = o.seq_len;
        let mut inputs = Vec::with_capacity(o.batch_size * n);
        let mut targets = Vec::with_capacity(o.batch_size * n);
        for _ in 0..o.batch_size {
            let start = starts[rng.random_range(0..starts.len())];
            inputs.extend_from_slice(&tokens[start..start + n]);
            targets.extend_from_slice(&tokens[start + 1..start + n + 1]);
        }
        Ok(Sequences {
            inputs: Tensor::from_vec(inputs, (o.batch_size, n), &self.device)?,
            targets: Tensor::from_vec(targets, (o.batch_size, n), &self.device)?,
            scored: None,
        })
    }

    /// The decoder loss's weight of each target (see [`target_weights`]).
    fn loss_weights(
        &self,
        targets: &Tensor,
        thought_fitted: bool,
        think_on: ThinkOn,
    ) -> Result<Tensor> {
        let o = &self.config.optim;
        let fitted = o
            .thought_question_weight
            .filter(|_| thought_fitted && think_on == ThinkOn::Question)
            .map(|w| w as f32);
        let rows = targets.to_vec2::<u32>()?;
        let weights = rows
            .iter()
            .flat_map(|row| {
                target_weights(
                    row,
                    self.config.model.bos_token_id,
                    &self.answer_marker,
                    o.question_loss_weight as f32,
                    fitted,
                )
            })
            .collect();
        Ok(Tensor::from_vec(
            weights,
            targets.shape(),
            targets.device(),
        )?)
    }

    /// What fast learning sees of a batch (see [`ThinkOn`]): the whole windows, or their first
    /// questions, cut to the longest of them with the rest of each row not scored.
    fn thinking_text(&self, text: &Sequences, think_on: ThinkOn) -> Result<Sequences> {
        if think_on == ThinkOn::Window {
            // A verdict is not thought about: the app's thought never sees the one it asks for.
            let rows = match self.verdict_marker.is_empty() {
                true => Vec::new(),
                false => text.targets.to_vec2::<u32>()?,
            };
            let bos = self.config.model.bos_token_id;
            let scored: Vec<f32> = rows
                .iter()
                .flat_map(|row| unverdicted(row, &self.verdict_marker, bos))
                .collect();
            let scored = match scored.contains(&0.0) {
                true => Some(Tensor::from_vec(
                    scored,
                    text.targets.shape(),
                    &self.device,
                )?),
                false => None,
            };
            return Ok(Sequences {
                inputs: text.inputs.clone(),
                targets: text.targets.clone(),
                scored,
            });
        }
        let lens: Vec<usize> = text
            .targets
            .to_vec2::<u32>()?
            .iter()
            .map(|row| first_question_len(row, &self.answer_marker))
            .collect();
        let n = lens.iter().copied().max().unwrap_or(1).max(1);
        let scored: Vec<f32> = lens
            .iter()
            .flat_map(|&len| (0..n).map(move |i| if i < len { 1.0 } else { 0.0 }))
            .collect();
        Ok(Sequences {
            inputs: text.inputs.narrow(1, 0, n)?,
            targets: text.targets.narrow(1, 0, n)?,
            scored: Some(Tensor::from_vec(scored, (lens.len(), n), &self.device)?),
        })
    }

    /// Fast learning on a batch with the detached decoder; the fitted thought z and its figures
    /// (at the fitted posterior when `measure_final`, else of the last step).
    fn think(
        &self,
        model: &Ltm,
        text: &Sequences,
        (steps, lr): (usize, f64),
        measure_final: bool,
        seed: u64,
    ) -> Result<(Tensor, think::Elbo)> {
        let mut rng = crate::noise::rng(seed);
        let thought = think::think_afresh(model, text, steps, lr, measure_final, &mut rng)?;
        Ok((thought.z()?, thought.elbo))
    }

    /// The decoder's loss given the thoughts `z`, each target weighted by `weights` (else all
    /// alike), and its gradients, the batch's rows shared among the threads
    /// ([`think::thread_shares`]): the shares' losses and gradients add up to the batch's.
    fn decoder_gradients(
        &self,
        text: &Sequences,
        z: &Tensor,
        weights: Option<&Tensor>,
    ) -> Result<(f64, GradStore)> {
        let model = self.model(true)?;
        let total_weight = match weights {
            Some(w) => w.sum_all()?.to_scalar::<f32>()? as f64,
            None => text.inputs.elem_count() as f64,
        };
        let share = |rows: Range<usize>| -> Result<(f64, GradStore)> {
            let take = |t: &Tensor| t.narrow(0, rows.start, rows.len());
            let text = text.rows(&rows)?;
            let prefix = model.prefix(&text.inputs, Pass::Train)?;
            let nll = model.token_nll(&prefix, &text.targets, &take(z)?.detach(), Pass::Train)?;
            let weighted = match weights {
                Some(w) => (nll * take(w)?)?,
                None => nll,
            };
            let loss = (weighted.sum_all()? / total_weight)?;
            Ok((loss.to_scalar::<f32>()? as f64, loss.backward()?))
        };
        let mut parts = think::thread_shares(text.inputs.dim(0)?, &self.device)
            .into_par_iter()
            .map(share)
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let (mut loss, mut grads) = parts.next().context("a batch without rows")?;
        for (part_loss, part_grads) in parts {
            loss += part_loss;
            for (_, var) in &self.vars {
                if let Some(g) = part_grads.get(var) {
                    let sum = match grads.get(var) {
                        Some(sum) => (sum + g)?,
                        None => g.clone(),
                    };
                    grads.insert(var, sum);
                }
            }
        }
        Ok((loss, grads))
    }

    /// One iteration: think, then one AdamW step on the decoder.
    pub fn step(&mut self) -> Result<StepReport> {
        let o = self.config.optim.clone();
        let iter = self.state.iter;
        let text = self.batch(&self.train_tokens, &self.train_starts, iter, 1)?;
        let started = Instant::now();
        let (steps, on) = (fast_steps(&o, iter), think_on(&o, iter));
        let (z, elbo) = self
            .think(
                &self.model(false)?,
                &self.thinking_text(&text, on)?,
                (steps, fast_lr(&o, iter)),
                false,
                o.seed.wrapping_add(iter as u64),
            )
            .map_err(|e| diverged(e, &o, iter))?;
        let thought = Instant::now();
        let tokens = text.inputs.elem_count();
        let uniform = o.question_loss_weight == 1.0 && o.thought_question_weight.is_none();
        let weights = if uniform || self.answer_marker.is_empty() {
            None
        } else {
            Some(self.loss_weights(&text.targets, steps > 0, on)?)
        };
        let (loss_value, grads) = self.decoder_gradients(&text, &z, weights.as_ref())?;
        if !loss_value.is_finite() {
            bail!(
                "training diverged at iteration {iter}: the loss is not finite; lower learning_rate ({:.2e} here)",
                learning_rate(&o, iter)
            );
        }
        let decoded = Instant::now();
        self.opt.step(&grads, &o, learning_rate(&o, iter))?;
        let updated = Instant::now();
        self.state.iter += 1;
        self.state.tokens_seen += tokens;
        Ok(StepReport {
            loss: loss_value,
            ppl_bound: (elbo.nelbo_sum() / (elbo.tokens * elbo.nll.len()) as f64).exp(),
            times: PhaseTimes {
                think_s: (thought - started).as_secs_f64(),
                decoder_s: (decoded - thought).as_secs_f64(),
                optimizer_s: (updated - decoded).as_secs_f64(),
            },
        })
    }

    /// The ELBO perplexity bound on validation batches with the run's thinking budget.
    pub fn validate(&self) -> Result<f64> {
        let o = &self.config.optim;
        let model = self.model(false)?;
        let mut total = 0.0;
        let mut count = 0;
        for b in 0..o.eval_batches {
            let text = self.batch(&self.val_tokens, &self.val_starts, b, 2)?;
            let (_, elbo) = self.think(
                &model,
                &text,
                (o.fast_steps, o.final_fast_lr),
                true,
                b as u64,
            )?;
            total += elbo.nelbo_sum();
            count += elbo.tokens * elbo.nll.len();
        }
        Ok((total / count as f64).exp())
    }

    /// Verdict examples in the data start their verdict after `marker`; thinking leaves those
    /// targets out.
    pub fn set_verdict_marker(&mut self, marker: Vec<u32>) {
        self.verdict_marker = marker;
    }

    /// Computes the decoder in `dtype`, keeping f32 weights, moments, thoughts and losses: bf16
    /// on a GPU (products at twice the rate or more), and on a CPU with AMX the products with
    /// weight matrices alone ([`Ltm::set_bf16_products`]).
    pub fn set_compute_dtype(&mut self, dtype: DType) -> Result<()> {
        check_compute_dtype(dtype, &self.device)?;
        if self.device.is_cpu() {
            self.bf16_products = dtype == DType::BF16;
        } else {
            self.compute = dtype;
        }
        Ok(())
    }

    /// Number of parameters (each trained tensor once; the output layer is tied).
    pub fn parameter_count(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Current weights as a checkpoint.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let tensors = self
            .vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().detach().to_device(&Device::Cpu)?)))
            .collect::<Result<_>>()?;
        Ok(Checkpoint {
            config: self.config.model.clone(),
            tensors,
            source: PathBuf::from("(training)"),
        })
    }

    /// Saves weights, optimizer moments and state into `out`, the weights also kept under their
    /// iteration's name if `keep` (`saved::write`).
    pub fn save(&self, out: &Path, keep: bool) -> Result<()> {
        let mut moments = HashMap::new();
        for (i, (n, _)) in self.vars.iter().enumerate() {
            moments.insert(format!("m.{n}"), self.opt.m[i].to_device(&Device::Cpu)?);
            moments.insert(format!("v.{n}"), self.opt.v[i].to_device(&Device::Cpu)?);
        }
        saved::write(out, &self.checkpoint()?, &moments, &self.state, keep)
    }

    pub fn record(&mut self, point: HistoryPoint) {
        self.state.history.push(point);
    }

    pub fn started(&self) -> Instant {
        Instant::now() - std::time::Duration::from_secs_f64(self.state.elapsed_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_divergence_names_the_learning_rate_at_fault() {
        let o = OptimConfig::reference(4, 32, 1);
        let at = |step| diverged(Diverged { step, lr: 0.3 }.into(), &o, 7).to_string();
        // Not finite at the starting thought: the weights broke in the last update.
        let slow = at(0);
        assert!(
            slow.contains("before iteration 7") && slow.contains("lower learning_rate"),
            "{slow}"
        );
        assert!(!slow.contains("fast learning rate"), "{slow}");
        // Not finite after some thinking: the fast learning rate.
        let fast = format!(
            "{:#}",
            diverged(Diverged { step: 3, lr: 0.3 }.into(), &o, 7)
        );
        assert!(fast.contains("fast learning rate"), "{fast}");
        assert!(!fast.contains("lower learning_rate"), "{fast}");
    }

    #[test]
    fn thinking_leaves_out_a_verdict_up_to_the_next_text() {
        // BOS = 0; the verdict marker is [7, 8]; a verdict (4) and its newline (5).
        let targets = [1, 7, 8, 4, 5, 0, 3, 7, 8, 4];
        let scored = unverdicted(&targets, &[7, 8], Some(0));
        assert_eq!(scored, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]);
        assert!(
            unverdicted(&[1, 7, 2, 8], &[7, 8], Some(0))
                .iter()
                .all(|&s| s == 1.0)
        );
    }

    #[test]
    fn answers_weigh_one_and_questions_their_weight() {
        // BOS = 0; the marker is [7, 8]; question tokens 1–3, answer tokens 4–5.
        let targets = [1, 2, 7, 8, 4, 5, 0, 3, 7, 8, 4];
        let w = target_weights(&targets, Some(0), &[7, 8], 0.25, None);
        assert_eq!(
            w,
            [0.25, 0.25, 0.25, 0.25, 1.0, 1.0, 1.0, 0.25, 0.25, 0.25, 1.0]
        );
        // The first question, which the thought was fitted to, may weigh otherwise.
        let w = target_weights(&targets, Some(0), &[7, 8], 0.25, Some(0.0));
        assert_eq!(
            w,
            [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.25, 0.25, 0.25, 1.0]
        );
        // Without a marker everything is question text.
        assert!(
            target_weights(&targets, Some(0), &[], 0.5, None)
                .iter()
                .all(|&x| x == 0.5)
        );
    }

    #[test]
    fn a_config_that_cannot_train_is_refused_by_name() {
        let text = std::fs::read_to_string("models/ltm-arith-tiny.toml").unwrap();
        let shipped: TrainConfig = toml::from_str(&text).unwrap();
        shipped.validate().unwrap();
        type Spoil = fn(&mut TrainConfig);
        let spoilt: [(Spoil, &str); 7] = [
            (|c| c.optim.batch_size = 0, "optim.batch_size"),
            (|c| c.optim.seq_len = 0, "optim.seq_len"),
            (|c| c.optim.eval_interval = 0, "optim.eval_interval"),
            (|c| c.optim.learning_rate = -1.0, "optim.learning_rate"),
            (|c| c.optim.grad_clip = f64::NAN, "optim.grad_clip"),
            (|c| c.optim.batch_size = 100_000_000, "optim.batch_size"),
            (
                |c| c.data.train_problems = 100_000_000_000,
                "data.train_problems",
            ),
        ];
        for (spoil, says) in spoilt {
            let mut bad = shipped.clone();
            spoil(&mut bad);
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(says), "{says}: {err}");
        }
        let misspelt = text.replacen("\nlearning_rate =", "\nlearnin_rate =", 1);
        let err = toml::from_str::<TrainConfig>(&misspelt)
            .unwrap_err()
            .to_string();
        assert!(err.contains("learnin_rate"), "{err}");
    }

    #[test]
    fn the_bundled_models_defaults_for_front_ends_are_its_recipes() {
        let text = std::fs::read_to_string("models/ltm-arith-tiny.toml").unwrap();
        let recipe = toml::from_str::<TrainConfig>(&text).unwrap().model;
        let tokenizer =
            tokenizers::Tokenizer::from_file("models/ltm-arith-tiny/tokenizer.json").unwrap();
        let path = Path::new("models/ltm-arith-tiny/config.json");
        let bundled = crate::model::checkpoint::read_config(path).unwrap();
        // What `ltm train` writes is what ships: no default is set by hand afterwards.
        assert_eq!(run::trained_model_config(recipe, &tokenizer), bundled);
        assert_eq!((bundled.calculator, bundled.temperature), (true, Some(0.0)));
    }

    #[test]
    fn a_first_question_ends_with_the_first_marker() {
        let targets = [1, 2, 7, 8, 4, 5, 0, 3, 7, 8, 4];
        assert_eq!(first_question_len(&targets, &[7, 8]), 4);
        assert_eq!(first_question_len(&targets, &[9]), targets.len());
        assert_eq!(first_question_len(&targets, &[]), targets.len());
    }
}
