//! The cross-entropies: the NLL of each target token given its logits (`token_nll`), and given
//! the hidden states and the tied output layer, without storing the logits (`output_nll`).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, DType, Layout, Result, Shape, Tensor};
use multiversion::multiversion;
use rayon::prelude::*;

use super::gemm::{View, product};
use super::pointwise::{exp_in_place, exp_sum, fast_exp, log_sum_exp, row_max};
use super::{KEPT, Kept, composite, contiguous_f32, fused};

/// Per-row negative log-likelihood of `targets` [m] under `logits` [m, v] (f32, CPU).
///
/// Where a backward pass may follow and the logits fit in [`KEPT`] values (a training batch's
/// do), the forward pass keeps softmax − onehot, which the backward pass scales by dnll in
/// place: one exp a logit instead of two, and no second pass over the logits.
struct TokenNll {
    keep: bool,
    kept: Kept,
}

fn target_ids(s: &CpuStorage, l: &Layout) -> Result<Vec<usize>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("token_nll: targets must be contiguous")
    };
    Ok(s.as_slice::<u32>()?[a..b]
        .iter()
        .map(|&t| t as usize)
        .collect())
}

impl CustomOp2 for TokenNll {
    fn name(&self) -> &'static str {
        "token-nll"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, v) = l1.shape().dims2()?;
        let (logits, targets) = (contiguous_f32(s1, l1, "token_nll")?, target_ids(s2, l2)?);
        if targets.len() != m || targets.iter().any(|&t| t >= v) {
            candle_core::bail!(
                "token_nll: {} targets for {m} rows of {v} logits (or a target out of range)",
                targets.len()
            );
        }
        let nll: Vec<f32> = if self.keep && logits.len() <= KEPT {
            let mut kept = logits.to_vec();
            let nll = kept
                .par_chunks_mut(v)
                .zip(targets.par_iter())
                .map(|(row, &t)| {
                    let (max, target) = (row_max(row, f32::NEG_INFINITY), row[t]);
                    let sum = exp_in_place(row, max);
                    let inv = 1.0 / sum;
                    row.iter_mut().for_each(|p| *p *= inv);
                    row[t] -= 1.0;
                    max + sum.ln() - target
                })
                .collect();
            self.kept.put(kept);
            nll
        } else {
            logits
                .par_chunks(v)
                .zip(targets.par_iter())
                .map(|(row, &t)| log_sum_exp(row) - row[t])
                .collect()
        };
        Ok((CpuStorage::F32(nll), Shape::from(targets.len())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        nll: &Tensor,
        dnll: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if let Some(mut grad) = self.kept.take() {
            let dnll = dnll.to_vec1::<f32>()?;
            let v = logits.dim(1)?;
            grad.par_chunks_mut(v)
                .zip(&dnll)
                .for_each(|(row, &d)| row.iter_mut().for_each(|g| *g *= d));
            return Ok((
                Some(Tensor::from_vec(grad, logits.shape(), logits.device())?),
                None,
            ));
        }
        // log Σ exp = nll + the target's logit: the backward pass needs no second reduction.
        let lse = (nll + logits.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?)?;
        let grad = TokenNllGrad {
            targets: targets.to_vec1::<u32>()?,
            lse: lse.to_vec1()?,
            dnll: dnll.to_vec1()?,
        };
        Ok((Some(logits.apply_op1_no_bwd(&grad)?), None))
    }
}

/// d nll / d logits = (softmax(logits) − onehot(target)) · dnll, in one pass, given each row's
/// target, log Σ exp and dnll (a few numbers a row, where the logits are a vocabulary's).
struct TokenNllGrad {
    targets: Vec<u32>,
    lse: Vec<f32>,
    dnll: Vec<f32>,
}

impl CustomOp1 for TokenNllGrad {
    fn name(&self) -> &'static str {
        "token-nll-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (m, v) = l.shape().dims2()?;
        let logits = contiguous_f32(s, l, "token_nll")?;
        let in_range = self.targets.iter().all(|&t| (t as usize) < v);
        if [self.targets.len(), self.lse.len(), self.dnll.len()] != [m; 3] || !in_range {
            candle_core::bail!("token_nll: the gradient's rows do not match {m} rows of {v} logits")
        }
        let mut grad = vec![0f32; m * v];
        grad.par_chunks_mut(v)
            .zip(logits.par_chunks(v))
            .zip(self.targets.par_iter().zip(&self.lse).zip(&self.dnll))
            .for_each(|((g, row), ((&t, &lse), &d))| {
                softmax_times(g, row, lse, d);
                g[t as usize] -= d;
            });
        Ok((CpuStorage::F32(grad), Shape::from((m, v))))
    }
}

/// g = exp(row − lse) · d: a row's softmax, scaled.
#[multiversion(targets("x86_64+avx2+fma"))]
fn softmax_times(g: &mut [f32], row: &[f32], lse: f32, d: f32) {
    for (gi, &x) in g.iter_mut().zip(row) {
        *gi = fast_exp(x - lse) * d;
    }
}

/// The tied output layer and its cross-entropy in one op: nll of `targets` under logits = h · Eᵀ.
///
/// The vocabulary is read in blocks, in parallel. Each block's logits are made, folded into each
/// row's running log-sum-exp and, for the gradient, into Σ_v softmax_v · e_v (an online softmax,
/// as flash attention does), and dropped: the logits (51 MB for 256 tokens) are never stored.
/// Since dnll/dh = Σ_v softmax_v · e_v − e_target, the forward pass has the gradient but for
/// the factor dnll, which backward applies. E is constant while thinking: no dE.
struct OutputNll {
    targets: Vec<usize>,
    grad: bool,
    /// dnll/dh per row, [m, d], from the forward pass.
    saved: Kept,
}

/// Vocabulary rows per block, and hidden-state rows: a block of E and its logits for a block
/// of rows stay in cache.
pub(super) const VOCAB_BLOCK: usize = 512;
pub(super) const ROW_BLOCK: usize = 256;

/// A share of the vocabulary's softmax, relative to each row's running maximum logit.
struct Partial {
    max: Vec<f32>,
    /// Σ exp(logit − max) per row.
    sum: Vec<f32>,
    /// Σ exp(logit − max) · e_v per row, [m, d]; empty when no gradient is wanted.
    weighted: Vec<f32>,
}

/// exp(from − to), the factor that moves a sum from one maximum to a larger one (0 for a sum
/// with no terms yet).
fn rescale(from: f32, to: f32) -> f32 {
    if from == f32::NEG_INFINITY {
        0.0
    } else {
        (from - to).exp()
    }
}

impl Partial {
    fn new(m: usize, d: usize, grad: bool) -> Self {
        Self {
            max: vec![f32::NEG_INFINITY; m],
            sum: vec![0.0; m],
            weighted: if grad { vec![0.0; m * d] } else { Vec::new() },
        }
    }

    /// Adds the vocabulary rows `block` [vb, d] for the hidden states `h` [m, d]; `logits` is
    /// scratch space.
    fn add(mut self, h: &[f32], block: &[f32], logits: &mut Vec<f32>) -> Self {
        let (m, d) = (self.max.len(), h.len() / self.max.len());
        let vb = block.len() / d;
        logits.resize(m * vb, 0.0);
        product(
            logits,
            View::row_major(m, vb),
            false,
            h,
            View::row_major(m, d),
            block,
            View::row_major(vb, d).t(),
        );
        let grad = !self.weighted.is_empty();
        for (i, row) in logits.chunks_exact_mut(vb).enumerate() {
            let max = row_max(row, self.max[i]);
            let sum = if grad {
                exp_in_place(row, max)
            } else {
                exp_sum(row, max)
            };
            let scale = rescale(self.max[i], max);
            self.sum[i] = self.sum[i] * scale + sum;
            self.max[i] = max;
            if grad && scale != 1.0 {
                self.weighted[i * d..(i + 1) * d]
                    .iter_mut()
                    .for_each(|w| *w *= scale);
            }
        }
        if grad {
            product(
                &mut self.weighted,
                View::row_major(m, d),
                true,
                logits,
                View::row_major(m, vb),
                block,
                View::row_major(vb, d),
            );
        }
        self
    }

    fn merge(mut self, other: Self) -> Self {
        let d = self.weighted.len() / self.max.len().max(1);
        for i in 0..self.max.len() {
            let max = self.max[i].max(other.max[i]);
            let (a, b) = (rescale(self.max[i], max), rescale(other.max[i], max));
            self.sum[i] = self.sum[i] * a + other.sum[i] * b;
            self.max[i] = max;
            let rows = self.weighted[i * d..(i + 1) * d].iter_mut();
            for (w, o) in rows.zip(&other.weighted[i * d..(i + 1) * d]) {
                *w = *w * a + o * b;
            }
        }
        self
    }
}

impl CustomOp2 for OutputNll {
    fn name(&self) -> &'static str {
        "output-nll"
    }

    fn cpu_fwd(
        &self,
        hs: &CpuStorage,
        lh: &Layout,
        es: &CpuStorage,
        le: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((m, d), (v, de)) = (lh.shape().dims2()?, le.shape().dims2()?);
        if self.targets.len() != m || self.targets.iter().any(|&t| t >= v) || d != de {
            candle_core::bail!(
                "output_nll: {} targets for {m} positions of width {d} (or a target outside the {v}-token vocabulary of width {de})",
                self.targets.len()
            );
        }
        let (h, e) = (
            contiguous_f32(hs, lh, "output_nll")?,
            contiguous_f32(es, le, "output_nll")?,
        );
        let grad = self.grad;
        // Rows in blocks too, so that a block's hidden states, logits and sums stay in cache
        // however long the text.
        let shares: Vec<Partial> = h
            .par_chunks(ROW_BLOCK * d)
            .map(|rows| {
                let mb = rows.len() / d;
                e.par_chunks(VOCAB_BLOCK * d)
                    .fold(
                        || (Partial::new(mb, d, grad), Vec::new()),
                        |(part, mut logits), block| (part.add(rows, block, &mut logits), logits),
                    )
                    .map(|(part, _)| part)
                    .reduce(|| Partial::new(mb, d, grad), Partial::merge)
            })
            .collect();
        let total = Partial {
            max: shares.iter().flat_map(|p| p.max.iter().copied()).collect(),
            sum: shares.iter().flat_map(|p| p.sum.iter().copied()).collect(),
            weighted: shares.into_iter().flat_map(|p| p.weighted).collect(),
        };
        let target_row = |i: usize| &e[self.targets[i] * d..(self.targets[i] + 1) * d];
        let nll = (0..m)
            .map(|i| {
                let target_logit: f32 = h[i * d..(i + 1) * d]
                    .iter()
                    .zip(target_row(i))
                    .map(|(a, b)| a * b)
                    .sum();
                total.max[i] + total.sum[i].ln() - target_logit
            })
            .collect();
        if grad {
            let mut g = total.weighted;
            for (i, row) in g.chunks_exact_mut(d).enumerate() {
                let inv = 1.0 / total.sum[i];
                for (x, t) in row.iter_mut().zip(target_row(i)) {
                    *x = *x * inv - t;
                }
            }
            self.saved.put(g);
        }
        Ok((CpuStorage::F32(nll), Shape::from(m)))
    }

    fn bwd(
        &self,
        h: &Tensor,
        _e: &Tensor,
        _nll: &Tensor,
        dnll: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Some(g) = self.saved.take() else {
            candle_core::bail!(
                "output_nll: no gradient saved (backward ran twice, or without grad)"
            );
        };
        let g = Tensor::from_vec(g, h.shape(), h.device())?;
        Ok((Some(g.broadcast_mul(&dnll.unsqueeze(1)?)?), None))
    }
}

/// Cross-entropy of `targets` [..] under the tied output layer: hidden [.., d], weight [v, d].
/// Differentiable in `hidden` only when `grad` (thinking); fused on the CPU in f32.
pub fn output_nll(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    grad: bool,
) -> Result<Tensor> {
    let d = hidden.dim(D::Minus1)?;
    if !fused(hidden) {
        return composite::output_nll(hidden, weight, targets);
    }
    let op = OutputNll {
        targets: target_ids_vec(targets)?,
        grad,
        saved: Default::default(),
    };
    let (h, w) = (hidden.reshape(((), d))?.contiguous()?, weight.contiguous()?);
    let nll = if grad {
        h.apply_op2(&w, op)?
    } else {
        h.apply_op2_no_bwd(&w, &op)?
    };
    nll.reshape(targets.shape())
}

fn target_ids_vec(targets: &Tensor) -> Result<Vec<usize>> {
    Ok(targets
        .flatten_all()?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|t| t as usize)
        .collect())
}

/// Cross-entropy of each target token: logits [.., v], targets [..] (u32) → nll [..] (f32).
pub fn token_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    per_row(logits, targets, |logits, targets| {
        if fused(logits) {
            let op = TokenNll {
                keep: logits.track_op(),
                kept: Kept::default(),
            };
            logits.apply_op2(targets, op)
        } else {
            composite::row_nll(logits, targets)
        }
    })
}

/// `nll` of f32 logits [m, v] and targets [m], shaped back as `targets`.
pub(super) fn per_row(
    logits: &Tensor,
    targets: &Tensor,
    nll: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let v = logits.dim(D::Minus1)?;
    let rows = logits
        .to_dtype(DType::F32)?
        .reshape(((), v))?
        .contiguous()?;
    nll(&rows, &targets.flatten_all()?.contiguous()?)?.reshape(targets.shape())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::max_diff;
    use candle_core::Device;

    /// The online softmax: blocks added one after another into one share, or into two shares
    /// then merged, give each row's log-sum-exp and Σ softmax_v · e_v over the whole vocabulary.
    #[test]
    fn vocabulary_shares_add_and_merge_to_the_whole_softmax() -> Result<()> {
        let (m, d, v) = (3, 8, 20);
        // Later rows are larger, so that each block's maximum moves the running one.
        let growth = (Tensor::arange(4f32, 4. + v as f32, &Device::Cpu)?.unsqueeze(1)? / 4.0)?;
        let e = Tensor::randn(0f32, 1., (v, d), &Device::Cpu)?.broadcast_mul(&growth)?;
        let h = Tensor::randn(0f32, 1., (m, d), &Device::Cpu)?;
        let logits = h.matmul(&e.t()?)?;
        let max = logits.max_keepdim(1)?;
        let shifted_sum = logits.broadcast_sub(&max)?.exp()?.sum_keepdim(1)?;
        let want_lse = (shifted_sum.log()? + max)?.squeeze(1)?;
        let want_weighted = candle_nn::ops::softmax_last_dim(&logits)?.matmul(&e)?;
        let (hv, ev) = (
            h.flatten_all()?.to_vec1::<f32>()?,
            e.flatten_all()?.to_vec1::<f32>()?,
        );
        let blocks: Vec<&[f32]> = ev.chunks(5 * d).collect();
        let mut scratch = Vec::new();
        let mut add = |p: Partial, b: &[f32]| p.add(&hv, b, &mut scratch);
        let one_by_one = blocks
            .iter()
            .fold(Partial::new(m, d, true), |p, b| add(p, b));
        let first = add(Partial::new(m, d, true), blocks[0]);
        let first = add(first, blocks[1]);
        let second = add(Partial::new(m, d, true), blocks[2]);
        let second = add(second, blocks[3]);
        for whole in [one_by_one, first.merge(second)] {
            let lse: Vec<f32> = whole
                .max
                .iter()
                .zip(&whole.sum)
                .map(|(m, s)| m + s.ln())
                .collect();
            let weighted: Vec<f32> = whole
                .weighted
                .chunks(d)
                .zip(&whole.sum)
                .flat_map(|(w, s)| w.iter().map(move |x| x / s))
                .collect();
            let lse = Tensor::new(lse, &Device::Cpu)?;
            let weighted = Tensor::from_vec(weighted, (m, d), &Device::Cpu)?;
            assert!(max_diff(&lse, &want_lse)? < 1e-4);
            assert!(max_diff(&weighted, &want_weighted)? < 1e-4);
        }
        Ok(())
    }

    /// The backward pass from what the forward pass kept, and by a second pass over the logits
    /// (a batch too large to keep): the same losses and nearly the same gradients.
    #[test]
    fn kept_and_recomputed_softmax_agree() -> Result<()> {
        let logits = candle_core::Var::from_tensor(
            &(Tensor::randn(0f32, 1., (6, 40), &Device::Cpu)? * 4.0)?,
        )?;
        let targets = Tensor::new(&[0u32, 39, 7, 7, 12, 3], &Device::Cpu)?;
        let weights = Tensor::randn(0f32, 1., 6, &Device::Cpu)?;
        let run = |keep: bool| -> Result<(Tensor, Tensor)> {
            let op = TokenNll {
                keep,
                kept: Kept::default(),
            };
            let nll = logits.apply_op2(&targets, op)?;
            let grads = (&nll * &weights)?.sum_all()?.backward()?;
            Ok((nll, grads.get(&logits).unwrap().clone()))
        };
        let ((nll_kept, g_kept), (nll, g)) = (run(true)?, run(false)?);
        assert!(max_diff(&nll_kept, &nll)? < 1e-5);
        // Gradients reach |weight| (about 3): 1e-5 is a few dozen f32 ulps there, where sums
        // split differently across threads have been seen to differ by more than 1e-6.
        assert!(max_diff(&g_kept, &g)? < 1e-5);
        Ok(())
    }
}
