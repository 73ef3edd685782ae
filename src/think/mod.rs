//! Thinking: fit a Gaussian posterior q(z) = N(μ, exp(logσ²)) over the thought
//! vectors to a prompt by gradient ascent on the ELBO ("fast learning"). Only μ and logσ²
//! are learnt; the decoder runs on its differentiable-in-z path and accumulates no weight gradients.

mod level;

pub use level::{MAX_LEVEL_TOLERANCE, ThinkLevel};

use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rayon::prelude::*;

use crate::model::{FastOptimizer, Ltm, Pass, Prefix};
use crate::noise::{gaussian, rng};

/// The fitted (or initial) posterior over z: μ and logσ², each [B, max_z_len, dim], f32.
#[derive(Debug, Clone)]
pub struct Posterior {
    pub mu: Tensor,
    pub log_var: Tensor,
}

impl Posterior {
    /// The reference's initial posterior: μ = scale·N(0,1) (0 when scale = 0), logσ² = −5 + 0.1·N(0,1).
    pub fn initial(
        shape: (usize, usize, usize),
        mu_scale: f64,
        rng: &mut StdRng,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            mu: (gaussian(shape, rng, device)? * mu_scale)?,
            log_var: ((gaussian(shape, rng, device)? * 0.1)? - 5.0)?,
        })
    }

    /// The reparameterised thought z = μ + ε ⊙ exp(½ logσ²).
    pub fn sample(&self, eps: &Tensor) -> Result<Tensor> {
        Ok((&self.mu + eps.mul(&(&self.log_var * 0.5)?.exp()?)?)?)
    }

    /// KL(q ‖ N(0, I)) per sequence and layer: [B, n_layers].
    pub fn layer_kl(&self, n_layers: usize) -> Result<Tensor> {
        let terms = ((&self.log_var + 1.0)? - self.mu.sqr()? - self.log_var.exp()?)?;
        let b = terms.dim(0)?;
        Ok((terms.reshape((b, n_layers, ()))?.sum(D::Minus1)? * -0.5)?)
    }

    /// Saves μ and logσ² as safetensors (`mu`, `log_var`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors = [
            ("mu", self.mu.to_device(&Device::Cpu)?),
            ("log_var", self.log_var.to_device(&Device::Cpu)?),
        ];
        let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (*k, v)), None)?;
        crate::fsutil::write_atomic(path, &bytes)
    }

    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        use anyhow::Context;
        crate::fsutil::regular_file_len(path)?;
        let mut t = candle_core::safetensors::load(path, device).with_context(|| {
            format!(
                "{}: cannot read the thought (safetensors with `mu`, `log_var`)",
                path.display()
            )
        })?;
        let mut take = |k: &str| {
            t.remove(k)
                .with_context(|| format!("{}: tensor `{k}` is missing", path.display()))
        };
        let (mut mu, mut log_var) = (take("mu")?, take("log_var")?);
        // [max_z_len, dim] is one sample.
        if mu.rank() == 2 && log_var.rank() == 2 {
            (mu, log_var) = (mu.unsqueeze(0)?, log_var.unsqueeze(0)?);
        }
        if mu.dims() != log_var.dims() || mu.rank() != 3 {
            bail!(
                "{}: `mu` {:?} and `log_var` {:?} must have the same [B, max_z_len, dim] (or [max_z_len, dim]) shape",
                path.display(),
                mu.dims(),
                log_var.dims()
            );
        }
        let (mu, log_var) = (mu.to_dtype(DType::F32)?, log_var.to_dtype(DType::F32)?);
        for (name, t) in [("mu", &mu), ("log_var", &log_var)] {
            if !t
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .all(|x| x.is_finite())
            {
                bail!(
                    "{}: `{name}` has values that are not finite",
                    path.display()
                );
            }
        }
        Ok(Self { mu, log_var })
    }
}

/// Learning rate of step s of T: cosine from lr down to lr/10.
pub fn cosine_lr(lr: f64, step: usize, steps: usize) -> f64 {
    let min = lr / 10.0;
    min + 0.5
        * (1.0 + (std::f64::consts::PI * step as f64 / steps.max(1) as f64).cos())
        * (lr - min)
}

/// ELBO figures of each sequence in the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Elbo {
    /// Summed token cross-entropy per sequence.
    pub nll: Vec<f64>,
    pub kl: Vec<f64>,
    /// KL per sequence and layer.
    pub layer_kl: Vec<Vec<f64>>,
    /// Tokens scored per sequence (their mean, when [`Sequences::scored`] varies by sequence).
    pub tokens: usize,
}

impl Elbo {
    /// The figures of a batch made of `parts`, in order.
    fn concat(parts: &[Elbo]) -> Elbo {
        let rows: usize = parts.iter().map(|e| e.nll.len()).sum();
        let scored: usize = parts.iter().map(|e| e.tokens * e.nll.len()).sum();
        Elbo {
            nll: parts.iter().flat_map(|e| e.nll.clone()).collect(),
            kl: parts.iter().flat_map(|e| e.kl.clone()).collect(),
            layer_kl: parts.iter().flat_map(|e| e.layer_kl.clone()).collect(),
            tokens: (scored as f64 / rows.max(1) as f64).round() as usize,
        }
    }

    pub fn nelbo(&self, i: usize) -> f64 {
        self.nll[i] + self.kl[i]
    }
    /// The NLL of sequence `i` per scored token.
    pub fn nll_per_token(&self, i: usize) -> f64 {
        self.nll[i] / self.tokens as f64
    }
    /// Σ over the batch of −ELBO: the loss fast learning minimises.
    pub fn nelbo_sum(&self) -> f64 {
        (0..self.nll.len()).map(|i| self.nelbo(i)).sum()
    }
    /// exp(−ELBO / tokens): an upper bound on the sequence's perplexity.
    pub fn ppl_bound(&self, i: usize) -> f64 {
        (self.nelbo(i) / self.tokens as f64).exp()
    }
}

/// The prompt as thinking sees it: inputs and next-token targets, [B, N] each.
pub struct Sequences {
    pub inputs: Tensor,
    pub targets: Tensor,
    /// Which targets the likelihood counts (1 or 0, f32 [B, N]); `None`: all of them. Training
    /// fits its thoughts to each window's first question this way, as the app fits them to a
    /// question.
    pub scored: Option<Tensor>,
}

/// Thinking predicts each token from those before it, so it needs at least two.
fn long_enough(ids: &[u32]) -> Result<()> {
    if ids.len() < 2 {
        bail!(
            "thinking needs a prompt of at least 2 tokens, got {}",
            ids.len()
        );
    }
    Ok(())
}

impl Sequences {
    /// `ids` (at least 2 tokens) replicated over `batch` sequences.
    pub fn new(ids: &[u32], batch: usize, device: &Device) -> Result<Self> {
        long_enough(ids)?;
        let n = ids.len() - 1;
        let row = Tensor::new(ids, device)?;
        Ok(Self {
            inputs: row.narrow(0, 0, n)?.unsqueeze(0)?.repeat((batch, 1))?,
            targets: row.narrow(0, 1, n)?.unsqueeze(0)?.repeat((batch, 1))?,
            scored: None,
        })
    }

    /// Texts of different lengths (at least 2 tokens each), one per sequence: the shorter are
    /// padded at the end with their last token, unscored (attention is causal, so the padding
    /// changes nothing before it).
    pub fn padded(texts: &[Vec<u32>], device: &Device) -> Result<Self> {
        let Some(n) = texts.iter().map(|t| t.len()).max() else {
            bail!("no texts to think on");
        };
        texts.iter().try_for_each(|t| long_enough(t))?;
        let (mut ids, mut scored) = (Vec::<u32>::new(), Vec::<f32>::new());
        for t in texts {
            ids.extend(
                t.iter()
                    .chain(std::iter::repeat_n(&t[t.len() - 1], n - t.len())),
            );
            scored.extend((1..n).map(|i| if i < t.len() { 1f32 } else { 0.0 }));
        }
        let ids = Tensor::from_vec(ids, (texts.len(), n), device)?;
        Ok(Self {
            inputs: ids.narrow(1, 0, n - 1)?,
            targets: ids.narrow(1, 1, n - 1)?,
            scored: Some(Tensor::from_vec(scored, (texts.len(), n - 1), device)?),
        })
    }

    /// Sequences `rows` of the batch.
    pub fn rows(&self, rows: &Range<usize>) -> Result<Self> {
        let take = |t: &Tensor| t.narrow(0, rows.start, rows.len());
        Ok(Self {
            inputs: take(&self.inputs)?,
            targets: take(&self.targets)?,
            scored: self.scored.as_ref().map(take).transpose()?,
        })
    }
}

/// A batch of `rows` sequences on `device` shared among the CPU's threads, a run of rows each.
/// Graphs built and differentiated on threads of their own keep every core busy where one graph
/// does not: candle keeps a backward pass's gradient sums on the thread that runs it
/// (PERFORMANCE.md). An accelerator takes the batch whole.
pub fn thread_shares(rows: usize, device: &Device) -> Vec<Range<usize>> {
    let threads = if device.is_cpu() {
        rayon::current_num_threads()
    } else {
        1
    };
    let shares = threads.clamp(1, rows.max(1));
    (0..shares)
        .map(|k| k * rows / shares..(k + 1) * rows / shares)
        .collect()
}

/// −ELBO of `text` under posterior `q` with noise `eps`: the scalar loss (Σ over the batch) and its figures.
pub fn elbo(
    model: &Ltm,
    text: &Sequences,
    q: &Posterior,
    eps: &Tensor,
    pass: Pass,
) -> Result<(Tensor, Elbo)> {
    let prefix = model.prefix(&text.inputs, pass)?;
    elbo_after(model, &prefix, text, q, eps, pass)
}

/// `elbo` with the text's [`Prefix`] computed already (it does not depend on the thought).
fn elbo_after(
    model: &Ltm,
    prefix: &Prefix,
    text: &Sequences,
    q: &Posterior,
    eps: &Tensor,
    pass: Pass,
) -> Result<(Tensor, Elbo)> {
    let z = q.sample(eps)?;
    let (nll, tokens) = match &text.scored {
        None => (
            model.token_nll(prefix, &text.targets, &z, pass)?.sum(1)?,
            text.inputs.dim(1)?,
        ),
        Some(scored) => {
            let nll = (model.token_nll(prefix, &text.targets, &z, pass)? * scored)?;
            let mean = scored.sum_all()?.to_scalar::<f32>()? / scored.dim(0)? as f32;
            (nll.sum(1)?, mean.round().max(1.0) as usize)
        }
    };
    let layer_kl = q.layer_kl(model.config().n_layers)?;
    let kl = layer_kl.sum(1)?;
    let loss = (&nll + &kl)?.sum_all()?;
    let to_vec = |t: &Tensor| -> Result<Vec<f64>> { Ok(t.to_dtype(DType::F64)?.to_vec1::<f64>()?) };
    let figures = Elbo {
        nll: to_vec(&nll)?,
        kl: to_vec(&kl)?,
        layer_kl: layer_kl.to_dtype(DType::F64)?.to_vec2::<f64>()?,
        tokens,
    };
    Ok((loss, figures))
}

/// Fast-learning settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FastLearning {
    pub steps: usize,
    pub lr: f64,
    /// Stop early once the batch's mean −ELBO per token improves by less than this.
    pub tolerance: Option<f64>,
    /// Measure the figures at the final posterior (one more forward pass). Without it, the
    /// thought carries the last step's figures, from before its update: training needs only z.
    pub measure_final: bool,
}

/// What each step reports (figures are the loss *before* the step's update).
#[derive(Debug, Clone)]
pub struct Step {
    pub step: usize,
    pub steps: usize,
    pub lr: f64,
    pub elbo: Elbo,
    pub ms: f64,
}

/// The end of thinking.
#[derive(Debug, Clone)]
pub struct Thought {
    pub posterior: Posterior,
    /// The noise held through every step; z = μ + ε ⊙ σ.
    pub eps: Tensor,
    /// Figures at the final posterior (or of the last step, see [`FastLearning::measure_final`]).
    pub elbo: Elbo,
    /// Figures at the starting posterior, before thinking (the final ones when no step ran).
    pub start: Elbo,
    /// Steps actually taken (fewer than asked when adaptive thinking stopped early).
    pub steps: usize,
}

impl Thought {
    pub fn z(&self) -> Result<Tensor> {
        self.posterior.sample(&self.eps)
    }
}

/// The ELBO stopped being finite at `step`; at step 0 it already was at the starting thought,
/// so the model is at fault, not the fast learning rate.
#[derive(Debug, thiserror::Error)]
pub struct Diverged {
    pub step: usize,
    pub lr: f64,
}

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.step == 0 {
            write!(
                f,
                "the ELBO is not finite at the starting thought: the model's outputs are not finite"
            )
        } else {
            write!(
                f,
                "thinking diverged at step {}: the ELBO is not finite (lr {:.3}); try a lower fast learning rate",
                self.step, self.lr
            )
        }
    }
}

/// Thinking was cancelled by the caller.
#[derive(Debug, thiserror::Error)]
#[error("thinking cancelled")]
pub struct Cancelled;

/// One step of fast learning on μ and logσ² (see [`FastOptimizer`]).
enum Stepper {
    Adam(AdamW),
    Normalized(Vec<Var>, f64),
}

impl Stepper {
    /// AdamW with betas 0.9/0.999, eps 1e-8 and decoupled weight decay 0.01, as the authors'.
    fn new(kind: FastOptimizer, vars: Vec<Var>, lr: f64) -> Result<Self> {
        Ok(match kind {
            FastOptimizer::Adam => {
                let params = ParamsAdamW {
                    lr,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.01,
                };
                Stepper::Adam(AdamW::new(vars, params)?)
            }
            FastOptimizer::Normalized => Stepper::Normalized(vars, lr),
        })
    }

    fn set_learning_rate(&mut self, lr: f64) {
        match self {
            Stepper::Adam(opt) => opt.set_learning_rate(lr),
            Stepper::Normalized(_, rate) => *rate = lr,
        }
    }

    fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        match self {
            Stepper::Adam(opt) => opt.backward_step(loss)?,
            Stepper::Normalized(vars, lr) => {
                let grads = loss.backward()?;
                for var in vars.iter() {
                    let Some(g) = grads.get(var) else { continue };
                    // Per sequence: the root mean square over its thought, [B, 1, 1].
                    let rms = (g.sqr()?.mean_keepdim(D::Minus1)?.mean_keepdim(1)?.sqrt()? + 1e-12)?;
                    var.set(&(var.as_tensor() - (g.broadcast_div(&rms)? * *lr)?)?)?;
                }
            }
        }
        Ok(())
    }
}

/// Fits the posterior to `text` from `init` with the model's fast optimizer (see
/// [`FastOptimizer`]) under the cosine schedule, holding `eps`. `on_step` sees each step and
/// may stop thinking by returning `false` (the result is then `Err(Cancelled)`).
pub fn fast_learning(
    model: &Ltm,
    text: &Sequences,
    init: &Posterior,
    eps: &Tensor,
    settings: &FastLearning,
    mut on_step: impl FnMut(&Step) -> bool,
) -> Result<Thought> {
    let mu = Var::from_tensor(&init.mu)?;
    let log_var = Var::from_tensor(&init.log_var)?;
    let mut opt = Stepper::new(
        model.config().fast_optimizer,
        vec![mu.clone(), log_var.clone()],
        settings.lr,
    )?;
    let mut previous: Option<f64> = None;
    let mut taken = 0;
    let (mut first, mut last) = (None, None);
    let prefix = model.prefix(&text.inputs, Pass::Think)?;
    for step in 0..settings.steps {
        let start = Instant::now();
        let lr = cosine_lr(settings.lr, step, settings.steps);
        let q = Posterior {
            mu: mu.as_tensor().clone(),
            log_var: log_var.as_tensor().clone(),
        };
        let (loss, figures) = elbo_after(model, &prefix, text, &q, eps, Pass::Think)?;
        let total = figures.nelbo_sum();
        if !total.is_finite() {
            return Err(Diverged { step, lr }.into());
        }
        opt.set_learning_rate(lr);
        opt.backward_step(&loss)?;
        taken = step + 1;
        let report = Step {
            step,
            steps: settings.steps,
            lr,
            elbo: figures,
            ms: start.elapsed().as_secs_f64() * 1e3,
        };
        if !on_step(&report) {
            return Err(Cancelled.into());
        }
        let per_token = total / (report.elbo.tokens * report.elbo.nll.len()) as f64;
        first.get_or_insert_with(|| report.elbo.clone());
        last = Some(report.elbo);
        if let (Some(tol), Some(prev)) = (settings.tolerance, previous)
            && prev - per_token < tol
        {
            break;
        }
        previous = Some(per_token);
    }
    let posterior = Posterior {
        mu: mu.as_tensor().detach(),
        log_var: log_var.as_tensor().detach(),
    };
    let final_elbo = match last {
        Some(last) if !settings.measure_final => last,
        _ => elbo(model, text, &posterior, eps, Pass::Infer)?.1,
    };
    if !final_elbo.nelbo_sum().is_finite() {
        bail!("thinking diverged: the final ELBO is not finite; try a lower fast learning rate");
    }
    Ok(Thought {
        posterior,
        eps: eps.clone(),
        start: first.unwrap_or_else(|| final_elbo.clone()),
        elbo: final_elbo,
        steps: taken,
    })
}

/// Fast learning from the reference's initial posterior (μ = 0) with fresh noise, no reporting:
/// for training, scoring and benchmarks.
pub fn think_afresh(
    model: &Ltm,
    text: &Sequences,
    steps: usize,
    lr: f64,
    measure_final: bool,
    rng: &mut StdRng,
) -> Result<Thought> {
    let shape = model.thought_shape(text.inputs.dim(0)?);
    let init = Posterior::initial(shape, 0.0, rng, model.device())?;
    let eps = gaussian(shape, rng, model.device())?;
    fit_rows(model, text, &init, &eps, steps, lr, measure_final)
}

/// [`think_afresh`] with one start and one noise for every sequence (a sequence alone draws
/// the same), so that their −ELBOs differ by their texts and not by their draws: for comparing
/// texts.
pub fn think_alike(
    model: &Ltm,
    text: &Sequences,
    steps: usize,
    lr: f64,
    rng: &mut StdRng,
) -> Result<Thought> {
    let one = model.thought_shape(1);
    let init = Posterior::initial(one, 0.0, rng, model.device())?;
    let eps = gaussian(one, rng, model.device())?;
    let every = |t: &Tensor| t.repeat((text.inputs.dim(0)?, 1, 1));
    let init = Posterior {
        mu: every(&init.mu)?,
        log_var: every(&init.log_var)?,
    };
    fit_rows(model, text, &init, &every(&eps)?, steps, lr, true)
}

/// Fast learning of each sequence's thought from `init` with noise `eps`, the rows shared
/// among the threads.
fn fit_rows(
    model: &Ltm,
    text: &Sequences,
    init: &Posterior,
    eps: &Tensor,
    steps: usize,
    lr: f64,
    measure_final: bool,
) -> Result<Thought> {
    let settings = FastLearning {
        steps,
        lr,
        tolerance: None,
        measure_final,
    };
    // Each sequence's thought is fitted on its own (the loss is a sum over sequences), so the
    // batch's rows can be shared among the threads.
    let parts = thread_shares(text.inputs.dim(0)?, model.device())
        .into_par_iter()
        .map(|rows| {
            let take = |t: &Tensor| t.narrow(0, rows.start, rows.len());
            let init = Posterior {
                mu: take(&init.mu)?,
                log_var: take(&init.log_var)?,
            };
            fast_learning(
                model,
                &text.rows(&rows)?,
                &init,
                &take(eps)?,
                &settings,
                |_| true,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let cat =
        |part: fn(&Thought) -> &Tensor| Tensor::cat(&parts.iter().map(part).collect::<Vec<_>>(), 0);
    Ok(Thought {
        posterior: Posterior {
            mu: cat(|t| &t.posterior.mu)?,
            log_var: cat(|t| &t.posterior.log_var)?,
        },
        eps: eps.clone(),
        elbo: Elbo::concat(&parts.iter().map(|t| t.elbo.clone()).collect::<Vec<_>>()),
        start: Elbo::concat(&parts.iter().map(|t| t.start.clone()).collect::<Vec<_>>()),
        steps: parts.iter().map(|t| t.steps).max().unwrap_or(0),
    })
}

/// −ELBO of a long text in its two parts, summed over its windows: what the decoder pays for
/// the tokens, and what the thoughts cost against the prior.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TextElbo {
    /// Summed token cross-entropy.
    pub nll: f64,
    /// Summed KL of each window's thought from the prior.
    pub kl: f64,
    /// Tokens scored.
    pub tokens: usize,
}

impl TextElbo {
    pub fn nelbo(&self) -> f64 {
        self.nll + self.kl
    }
}

/// The ELBO of a long text: cut into windows of the model's context, each thought about for
/// `steps` steps on its own. `progress` hears (windows done, windows in all) after each window.
pub fn text_elbo(
    model: &Ltm,
    ids: &[u32],
    steps: usize,
    lr: f64,
    seed: u64,
    mut progress: impl FnMut(usize, usize),
) -> Result<TextElbo> {
    let window = model.config().max_seq_len;
    let mut sum = TextElbo::default();
    let mut rng = rng(seed);
    let windows = ids.chunks(window).filter(|c| c.len() >= 2).count();
    for (i, chunk) in ids.chunks(window).filter(|c| c.len() >= 2).enumerate() {
        let text = Sequences::new(chunk, 1, model.device())?;
        let thought = think_afresh(model, &text, steps, lr, true, &mut rng)?;
        sum.nll += thought.elbo.nll.iter().sum::<f64>();
        sum.kl += thought.elbo.kl.iter().sum::<f64>();
        sum.tokens += thought.elbo.tokens;
        progress(i + 1, windows);
    }
    if sum.tokens == 0 {
        bail!("the text is too short to score (it needs at least 2 tokens)");
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Checkpoint, Config};

    #[test]
    fn texts_thought_about_alike_differ_by_their_texts_alone() {
        let mut c = Config::paper_shape(2);
        (c.dim, c.n_heads, c.vocab_size, c.max_z_len) = (32, 2, 50, 4);
        let model = Checkpoint::random(c, 3)
            .unwrap()
            .model(DType::F32, &Device::Cpu)
            .unwrap();
        let (short, long) = (vec![1, 2, 3, 4, 5], vec![1, 2, 3, 4, 9, 8, 7, 6, 5]);
        let nelbo = |texts: &[&Vec<u32>]| -> Vec<f64> {
            let texts: Vec<Vec<u32>> = texts.iter().map(|t| t.to_vec()).collect();
            let seq = Sequences::padded(&texts, &Device::Cpu).unwrap();
            let t = think_alike(&model, &seq, 2, 0.3, &mut crate::noise::rng(7)).unwrap();
            (0..texts.len()).map(|i| t.elbo.nelbo(i)).collect()
        };
        let (alone, both, swapped) = (
            nelbo(&[&short]),
            nelbo(&[&short, &long]),
            nelbo(&[&long, &short]),
        );
        let near = |a: f64, b: f64| (a - b).abs() < 1e-4 * a.abs();
        // Padding changes nothing before it, and every row starts from the same draws.
        assert!(
            near(alone[0], both[0]) && near(alone[0], swapped[1]),
            "{alone:?} {both:?} {swapped:?}"
        );
        assert!(near(both[1], swapped[0]));
        assert!(!near(both[0], both[1]), "different texts, different −ELBO");
        assert!(Sequences::padded(&[vec![1]], &Device::Cpu).is_err());
    }

    #[test]
    fn schedule_runs_from_lr_to_a_tenth() {
        assert!((cosine_lr(0.34, 0, 16) - 0.34).abs() < 1e-12);
        assert!((cosine_lr(0.34, 8, 16) - 0.187).abs() < 1e-12);
        assert!((cosine_lr(0.34, 16, 16) - 0.034).abs() < 1e-12);
    }
    #[test]
    fn a_normalized_step_keeps_the_gradients_proportions_in_each_sequence() {
        // loss = Σ c ⊙ μ, so the gradient is c: sequence 0 has a coordinate without gradient.
        let c = Tensor::new(&[[[3f32, 0.0, -4.0]], [[1.0, 1.0, 1.0]]], &Device::Cpu).unwrap();
        let mu = Var::zeros((2, 1, 3), DType::F32, &Device::Cpu).unwrap();
        let mut stepper = Stepper::new(FastOptimizer::Normalized, vec![mu.clone()], 0.3).unwrap();
        let loss = (mu.as_tensor() * &c).unwrap().sum_all().unwrap();
        stepper.backward_step(&loss).unwrap();
        let got: Vec<Vec<f32>> = mu.as_tensor().squeeze(1).unwrap().to_vec2().unwrap();
        // Root mean squares 5/√3 and 1: each step has root mean square 0.3.
        let k = 0.3 * 3f32.sqrt() / 5.0;
        let want = [[-3.0 * k, 0.0, 4.0 * k], [-0.3, -0.3, -0.3]];
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((g - w).abs() < 1e-6, "{got:?} against {want:?}");
        }
        // Adam's first step moves every coordinate with a gradient by ±lr, whatever its size.
        let mu = Var::zeros((2, 1, 3), DType::F32, &Device::Cpu).unwrap();
        let mut adam = Stepper::new(FastOptimizer::Adam, vec![mu.clone()], 0.3).unwrap();
        adam.backward_step(&(mu.as_tensor() * &c).unwrap().sum_all().unwrap())
            .unwrap();
        let first: Vec<f32> = mu.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            (first[0] + 0.3).abs() < 1e-4 && (first[2] - 0.3).abs() < 1e-4,
            "{first:?}"
        );
    }

    #[test]
    fn a_saved_posterior_loads_and_one_with_nan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("thought.safetensors");
        let mut q = Posterior::initial((1, 2, 3), 0.5, &mut rng(1), &Device::Cpu).unwrap();
        q.save(&path).unwrap();
        let back = Posterior::load(&path, &Device::Cpu).unwrap();
        assert_eq!(
            back.mu.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            q.mu.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        q.mu = Tensor::new(&[[[0f32, f32::NAN, 1.0], [0.0; 3]]], &Device::Cpu).unwrap();
        q.save(&path).unwrap();
        let err = Posterior::load(&path, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`mu` has values that are not finite"), "{err}");
        // A [max_z_len, dim] thought is one sample.
        let flat = Posterior {
            mu: Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap(),
            log_var: Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(),
        };
        flat.save(&path).unwrap();
        assert_eq!(
            Posterior::load(&path, &Device::Cpu).unwrap().mu.dims(),
            &[1, 2, 3]
        );
    }
}
