//! Custom ops with the backward passes that thinking needs and candle does not give.
//!
//! While thinking, only the thought (μ, logσ²) is learnt: the decoder's weights are constants.
//! candle's matmul backward computes both operand gradients regardless, which for the output
//! layer alone is a third of a thinking step. `linear_input_grad` returns only dx.
//! `token_nll` fuses log-softmax, gather and its backward into single passes over the logits;
//! `output_nll` goes further for the tied output layer and never stores its logits.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, D, DType, Layout, Result, Shape, Tensor,
};
use multiversion::multiversion;
use rayon::prelude::*;

mod attention;
mod gemm;
pub use attention::attention;
use gemm::{View, product};

/// Whether `x` takes the fused kernels below: f32 on the CPU. Other devices and dtypes take the
/// [`composite`]s, which every backend has.
pub fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// The same ops composed of candle's own, differentiable, as CUDA and Metal run them. The CPU
/// runs them too, which is how the tests check every accelerator path against the fused one.
pub mod composite {
    use super::*;

    pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::softmax(x, D::Minus1)
    }

    pub fn rope_interleaved(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        candle_nn::rotary_emb::rope_i_slow(x, cos, sin)
    }

    pub fn swiglu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
        candle_nn::ops::silu(a)? * b
    }

    pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
        candle_nn::ops::rms_norm_slow(x, w, eps)
    }

    pub fn token_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        per_row(logits, targets, row_nll)
    }

    /// `token_nll` of f32 logits [m, v] and targets [m].
    pub(super) fn row_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        candle_nn::ops::log_softmax(logits, D::Minus1)?
            .gather(&targets.unsqueeze(1)?, 1)?
            .squeeze(1)?
            .neg()
    }

    pub fn output_nll(hidden: &Tensor, weight: &Tensor, targets: &Tensor) -> Result<Tensor> {
        token_nll(&linear_input_grad(hidden, weight)?, targets)
    }

    /// [`super::attention`] with the key/value heads repeated, the scores stored and `softmax`
    /// taken in f32: differentiable with a differentiable `softmax`.
    pub fn attention(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        scale: f64,
        softmax: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let rep = q.dim(1)? / k.dim(1)?;
        let k = candle_transformers::utils::repeat_kv(k.clone(), rep)?;
        let v = candle_transformers::utils::repeat_kv(v.clone(), rep)?;
        let scores = (q.matmul(&k.t()?)? * scale)?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let p = softmax(&scores.to_dtype(DType::F32)?)?.to_dtype(q.dtype())?;
        p.matmul(&v.contiguous()?)
    }
}

/// y = x · wᵀ (x: [m, k], w: [n, k]); backward gives dx only.
struct InputGradLinear;

fn matmul_transposed<S: BackendStorage>(
    x: &S,
    lx: &Layout,
    w: &S,
    lw: &Layout,
) -> Result<(S, Shape)> {
    let (m, k) = lx.shape().dims2()?;
    let (n, kw) = lw.shape().dims2()?;
    if k != kw {
        candle_core::bail!(
            "linear: input {:?} does not fit weight {:?}",
            lx.shape(),
            lw.shape()
        );
    }
    let out = x.matmul(w, (1, m, n, k), lx, &lw.transpose(0, 1)?)?;
    Ok((out, Shape::from((m, n))))
}

impl CustomOp2 for InputGradLinear {
    fn name(&self) -> &'static str {
        "linear-input-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        w: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        matmul_transposed(x, lx, w, lw)
    }

    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        lx: &Layout,
        w: &candle_core::CudaStorage,
        lw: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        matmul_transposed(x, lx, w, lw)
    }

    fn metal_fwd(
        &self,
        x: &candle_core::MetalStorage,
        lx: &Layout,
        w: &candle_core::MetalStorage,
        lw: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        matmul_transposed(x, lx, w, lw)
    }

    fn bwd(
        &self,
        _x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(dy.matmul(w)?), None))
    }
}

/// x · wᵀ over the last dimension of x, differentiable in x only.
pub fn linear_input_grad(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (rows, k) = (x.elem_count() / x.dim(D::Minus1)?, x.dim(D::Minus1)?);
    let mut out_shape = x.dims().to_vec();
    *out_shape.last_mut().expect("x has a last dimension") = w.dim(0)?;
    let x2 = x.reshape((rows, k))?.contiguous()?;
    x2.apply_op2(&w.contiguous()?, InputGradLinear)?
        .reshape(out_shape)
}

/// y = x · wᵀ for a handful of rows (generation: one token per sample). Streams each weight
/// row once for all rows of x, in parallel over weight rows: memory-bound, as it must be, where
/// a general GEMM spends its time packing for a product it cannot block.
struct FewRowsLinear;

/// At most this many rows of x go through `FewRowsLinear`.
pub const FEW_ROWS: usize = 8;

/// An element of a weight matrix that decoding reads: f32, or bf16 at half the bytes.
trait WeightElement: Copy + Send + Sync {
    fn to_f32(self) -> f32;
}

impl WeightElement for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl WeightElement for half::bf16 {
    /// Exact: a bf16 is the upper half of an f32 (written out so that it vectorises).
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.to_bits()) << 16)
    }
}

/// x · w in 32 independent lanes, so that the additions do not wait on each other; with `FMA`,
/// each multiply-add is one fused instruction (only where the CPU has them: elsewhere `mul_add`
/// is a library call).
#[inline(always)]
fn dot<const FMA: bool, W: WeightElement>(x: &[f32], w: &[W]) -> f32 {
    const L: usize = 32;
    let mut acc = [0f32; L];
    for (cx, cw) in x.chunks_exact(L).zip(w.chunks_exact(L)) {
        for i in 0..L {
            acc[i] = if FMA {
                cx[i].mul_add(cw[i].to_f32(), acc[i])
            } else {
                acc[i] + cx[i] * cw[i].to_f32()
            };
        }
    }
    let tail = x.len() - x.len() % L;
    acc.iter().sum::<f32>()
        + x[tail..]
            .iter()
            .zip(&w[tail..])
            .map(|(a, b)| a * b.to_f32())
            .sum::<f32>()
}

/// out[j·m + i] = x_i · w_j for the rows w_j of `wb` and x_i of `x` (rows of length k).
#[multiversion(targets("x86_64+avx2+fma"))]
fn dot_rows<W: WeightElement>(out: &mut [f32], wb: &[W], x: &[f32], k: usize) {
    let m = x.len() / k;
    let fma = multiversion::target::target_cfg_f!(target_feature = "fma");
    for (o, wr) in out.chunks_exact_mut(m).zip(wb.chunks_exact(k)) {
        for (o, xr) in o.iter_mut().zip(x.chunks_exact(k)) {
            *o = if fma {
                dot::<true, W>(xr, wr)
            } else {
                dot::<false, W>(xr, wr)
            };
        }
    }
}

/// y = x · wᵀ for x [m, k], w [n, k]: weight rows in parallel blocks, each streamed once for
/// every row of x.
fn few_rows_product<W: WeightElement>(x: &[f32], w: &[W], m: usize, k: usize) -> Vec<f32> {
    const BLOCK: usize = 64;
    let n = w.len() / k;
    // Block-major [n, m] first, so that each block writes one contiguous piece.
    let mut yt = vec![0f32; n * m];
    yt.par_chunks_mut(BLOCK * m)
        .zip(w.par_chunks(BLOCK * k))
        .for_each(|(out, wb)| dot_rows(out, wb, x, k));
    if m == 1 {
        return yt;
    }
    let mut y = vec![0f32; m * n];
    for (j, row) in yt.chunks_exact(m).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            y[i * n + j] = v;
        }
    }
    y
}

impl CustomOp2 for FewRowsLinear {
    fn name(&self) -> &'static str {
        "few-rows-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        lx: &Layout,
        ws: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(xs, lx, "linear")?;
        let ((m, k), (n, kw)) = (lx.shape().dims2()?, lw.shape().dims2()?);
        let Some((a, b)) = lw.contiguous_offsets().filter(|_| k == kw) else {
            candle_core::bail!("linear: weight {:?} for input {:?}", lw.shape(), lx.shape());
        };
        let y = match ws {
            CpuStorage::F32(w) => few_rows_product(x, &w[a..b], m, k),
            CpuStorage::BF16(w) => few_rows_product(x, &w[a..b], m, k),
            _ => candle_core::bail!("linear: f32 or bf16 weights only"),
        };
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }
}

/// x · wᵀ for at most `FEW_ROWS` rows of x [m, k] in f32 on the CPU, w in f32 or bf16 (no
/// backward).
pub fn few_rows_linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2_no_bwd(&w.contiguous()?, &FewRowsLinear)
}

/// Per-row negative log-likelihood of `targets` [m] under `logits` [m, v] (f32, CPU).
struct TokenNll;

fn target_ids(s: &CpuStorage, l: &Layout) -> Result<Vec<usize>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("token_nll: targets must be contiguous")
    };
    Ok(s.as_slice::<u32>()?[a..b]
        .iter()
        .map(|&t| t as usize)
        .collect())
}

/// exp(x) to within a few ulp, written so that the compiler vectorises it (libm's expf is
/// a call per element and dominated the cross-entropy passes over the vocabulary).
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Adding then subtracting 1.5·2²³ rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    // Cephes' polynomial for exp on [−ln2/2, ln2/2].
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.0e-1;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// log Σ exp over a row.
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row_max(row, f32::NEG_INFINITY);
    max + exp_sum(row, max).ln()
}

/// Lanes of the loops below: independent maxima and sums, so that they vectorise.
const LANES: usize = 16;

/// The largest of `floor` and the row's values.
#[multiversion(targets("x86_64+avx2+fma"))]
fn row_max(row: &[f32], floor: f32) -> f32 {
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut lanes = [floor; LANES];
    for c in chunks {
        for i in 0..LANES {
            lanes[i] = lanes[i].max(c[i]);
        }
    }
    rest.iter().chain(&lanes).copied().fold(floor, f32::max)
}

/// Σ exp(x − max) over the row.
#[multiversion(targets("x86_64+avx2+fma"))]
fn exp_sum(row: &[f32], max: f32) -> f32 {
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut sums = [0f32; LANES];
    for c in chunks {
        for i in 0..LANES {
            sums[i] += fast_exp(c[i] - max);
        }
    }
    sums.iter().sum::<f32>() + rest.iter().map(|&x| fast_exp(x - max)).sum::<f32>()
}

/// Replaces each x of the row by exp(x − max); returns their sum.
#[multiversion(targets("x86_64+avx2+fma"))]
fn exp_in_place(row: &mut [f32], max: f32) -> f32 {
    let mut chunks = row.chunks_exact_mut(LANES);
    let mut sums = [0f32; LANES];
    for c in &mut chunks {
        for i in 0..LANES {
            c[i] = fast_exp(c[i] - max);
            sums[i] += c[i];
        }
    }
    let rest: f32 = chunks
        .into_remainder()
        .iter_mut()
        .map(|x| {
            *x = fast_exp(*x - max);
            *x
        })
        .sum();
    sums.iter().sum::<f32>() + rest
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
        let nll: Vec<f32> = logits
            .par_chunks(v)
            .zip(targets.par_iter())
            .map(|(row, &t)| log_sum_exp(row) - row[t])
            .collect();
        Ok((CpuStorage::F32(nll), Shape::from(m)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        nll: &Tensor,
        dnll: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // log Σ exp = nll + the target's logit: the backward pass needs no second reduction.
        let lse = (nll + logits.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?)?;
        let scaled = Tensor::stack(&[&lse, &dnll.contiguous()?], 1)?;
        let dlogits = logits.apply_op3_no_bwd(targets, &scaled, &TokenNllGrad)?;
        Ok((Some(dlogits), None))
    }
}

/// d nll / d logits = (softmax(logits) − onehot(target)) · dnll, in one pass.
/// Its third argument holds (log Σ exp, dnll) per row.
struct TokenNllGrad;

impl CustomOp3 for TokenNllGrad {
    fn name(&self) -> &'static str {
        "token-nll-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, v) = l1.shape().dims2()?;
        let (logits, targets, scaled) = (
            contiguous_f32(s1, l1, "token_nll")?,
            target_ids(s2, l2)?,
            contiguous_f32(s3, l3, "token_nll")?,
        );
        let mut grad = vec![0f32; m * v];
        grad.par_chunks_mut(v)
            .zip(logits.par_chunks(v))
            .zip(targets.par_iter().zip(scaled.par_chunks(2)))
            .for_each(|((g, row), (&t, ld))| {
                let (lse, d) = (ld[0], ld[1]);
                softmax_times(g, row, lse, d);
                g[t] -= d;
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
    saved: std::sync::Mutex<Option<Vec<f32>>>,
}

/// Vocabulary rows per block, and hidden-state rows: a block of E and its logits for a block
/// of rows stay in cache.
const VOCAB_BLOCK: usize = 512;
const ROW_BLOCK: usize = 256;

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
            *self.saved.lock().expect("output_nll state") = Some(g);
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
        let Some(g) = self.saved.lock().expect("output_nll state").take() else {
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

/// Runs `f` on the values of f32 tensors on the CPU, each made contiguous first: the fused
/// backward passes read their inputs directly. `what` names each for errors.
fn with_values<const N: usize, R>(
    tensors: [(&Tensor, &str); N],
    f: impl FnOnce([&[f32]; N]) -> Result<R>,
) -> Result<R> {
    let owned: Vec<Tensor> = tensors
        .iter()
        .map(|(t, _)| t.contiguous())
        .collect::<Result<_>>()?;
    let guards: Vec<_> = owned.iter().map(Tensor::storage_and_layout).collect();
    let slices: Vec<&[f32]> = guards
        .iter()
        .zip(&tensors)
        .map(|((s, l), (_, what))| contiguous_f32(cpu_storage(s)?, l, what))
        .collect::<Result<_>>()?;
    f(slices.try_into().expect("one slice per tensor"))
}

/// A tensor's storage, which the fused backward passes read directly, on the CPU.
fn cpu_storage(s: &candle_core::Storage) -> Result<&CpuStorage> {
    match s {
        candle_core::Storage::Cpu(c) => Ok(c),
        _ => candle_core::bail!("the fused backward passes run on the CPU"),
    }
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous f32"),
    }
}

/// Softmax of a row of scores, in place; −∞ (masked) gives exactly 0.
fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        // exp(−∞) of a masked score is exactly 0, not fast_exp's smallest normal.
        *x = if *x == f32::NEG_INFINITY {
            0.0
        } else {
            fast_exp(*x - max)
        };
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// Softmax over the last dimension, in one pass per row; backward y ⊙ (g − Σ g ⊙ y).
struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax-bwd"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "softmax")?;
        let d = l.dims().last().copied().unwrap_or(1);
        let mut y = x.to_vec();
        y.par_chunks_mut(d).for_each(softmax_in_place);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let dot = (g * y)?.sum_keepdim(D::Minus1)?;
        Ok(Some((y * g.broadcast_sub(&dot)?)?))
    }
}

/// Softmax over the last dimension, differentiable; one fused pass on the CPU in f32.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(Softmax)
    } else {
        composite::softmax_last_dim(x)
    }
}

/// Interleaved rotary embedding of x [B, H, T, d] with cos, sin [T, d/2]. Its backward is
/// the inverse rotation (sin negated).
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope-interleaved-bwd"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "rope")?;
        let (_, _, t, d) = l.shape().dims4()?;
        let (cos, sin) = (
            self.cos.flatten_all()?.to_vec1::<f32>()?,
            self.sin.flatten_all()?.to_vec1::<f32>()?,
        );
        if cos.len() != t * d / 2 || sin.len() != cos.len() {
            candle_core::bail!(
                "rope: cos/sin hold {} angles for {t} positions of {d} dims",
                cos.len()
            );
        }
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(t * d)
            .zip(x.par_chunks(t * d))
            .for_each(|(y, x)| {
                // Pair i of a head is dims (2k, 2k+1) at position i / (d/2): angle index i.
                for (i, (yp, xp)) in y.chunks_exact_mut(2).zip(x.chunks_exact(2)).enumerate() {
                    let (c, s) = (cos[i], sin[i]);
                    yp[0] = xp[0] * c - xp[1] * s;
                    yp[1] = xp[0] * s + xp[1] * c;
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(candle_nn::rotary_emb::rope_i(
            &g.contiguous()?,
            &self.cos,
            &self.sin.neg()?,
        )?))
    }
}

/// Interleaved rotary embedding, differentiable in x; x [B, H, T, d], cos and sin [T, d/2].
pub fn rope_interleaved(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if fused(x) {
        let op = Rope {
            cos: cos.contiguous()?,
            sin: sin.contiguous()?,
        };
        x.contiguous()?.apply_op1(op)
    } else {
        composite::rope_interleaved(x, cos, sin)
    }
}

/// RMSNorm, y = w ⊙ x ⊙ r with r = (mean x² + eps)^−½, with a one-pass backward:
/// dx = r (g ⊙ w) − x r³ mean(g ⊙ w ⊙ x), and dw = Σ_rows g ⊙ x ⊙ r when the weight learns.
struct RmsNorm {
    eps: f32,
    weight_grad: bool,
}

impl RmsNorm {
    fn inverse_rms(&self, x: &[f32]) -> f32 {
        1.0 / (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32 + self.eps).sqrt()
    }
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (
            contiguous_f32(s, l, "rms_norm")?,
            contiguous_f32(ws, wl, "rms_norm")?,
        );
        let d = w.len();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(y, x)| {
            let r = self.inverse_rms(x);
            for ((yi, &xi), &wi) in y.iter_mut().zip(x).zip(w) {
                *yi = xi * r * wi;
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let inputs = [
            (x, "rms_norm input"),
            (w, "rms_norm weight"),
            (g, "rms_norm gradient"),
        ];
        let (dx, dw) = with_values(inputs, |[x, w, g]| Ok(self.gradients(x, w, g)))?;
        let dw = match self.weight_grad {
            true => Some(Tensor::from_vec(dw, w.shape(), w.device())?),
            false => None,
        };
        Ok((Some(Tensor::from_vec(dx, x.shape(), x.device())?), dw))
    }
}

impl RmsNorm {
    /// dx, and dw when the weight learns (else empty).
    fn gradients(&self, x: &[f32], w: &[f32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let d = w.len();
        let mut dx = vec![0f32; x.len()];
        // Rows in chunks, each chunk adding up its share of dw.
        const ROWS: usize = 64;
        let dw = dx
            .par_chunks_mut(ROWS * d)
            .zip(x.par_chunks(ROWS * d).zip(g.par_chunks(ROWS * d)))
            .map(|(dx, (x, g))| {
                let mut dw = if self.weight_grad {
                    vec![0f32; d]
                } else {
                    Vec::new()
                };
                for ((dx, x), g) in dx
                    .chunks_exact_mut(d)
                    .zip(x.chunks_exact(d))
                    .zip(g.chunks_exact(d))
                {
                    let r = self.inverse_rms(x);
                    let proj = g
                        .iter()
                        .zip(w)
                        .zip(x)
                        .map(|((g, w), x)| g * w * x)
                        .sum::<f32>()
                        / d as f32
                        * r
                        * r
                        * r;
                    for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
                        *dx = r * g * w - x * proj;
                    }
                    for ((dw, &x), &g) in dw.iter_mut().zip(x).zip(g) {
                        *dw += g * x * r;
                    }
                }
                dw
            })
            .reduce(Vec::new, |a, b| {
                if a.is_empty() {
                    b
                } else {
                    a.iter().zip(&b).map(|(a, b)| a + b).collect()
                }
            });
        (dx, dw)
    }
}

/// RMSNorm of x with weight w, differentiable in x and, with `weight_grad`, in w (the weight
/// is constant while thinking).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f32, weight_grad: bool) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?
            .apply_op2(&w.contiguous()?, RmsNorm { eps, weight_grad })
    } else {
        composite::rms_norm(x, w, eps)
    }
}

/// The SwiGLU gate, y = silu(a) ⊙ b, with a one-pass backward: with σ = sigmoid(a),
/// da = g ⊙ b ⊙ σ (1 + a (1 − σ)) and db = g ⊙ a σ.
struct SwiGlu;

/// Values per parallel task of the SwiGLU kernels.
const SWIGLU_CHUNK: usize = 1 << 14;

fn sigmoid(a: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-a))
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu-bwd"
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        la: &Layout,
        b: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (
            contiguous_f32(a, la, "swiglu")?,
            contiguous_f32(b, lb, "swiglu")?,
        );
        let mut y = vec![0f32; a.len()];
        y.par_chunks_mut(SWIGLU_CHUNK)
            .zip(a.par_chunks(SWIGLU_CHUNK).zip(b.par_chunks(SWIGLU_CHUNK)))
            .for_each(|(y, (a, b))| {
                for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                    *y = a * sigmoid(a) * b;
                }
            });
        Ok((CpuStorage::F32(y), la.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let inputs = [
            (a, "swiglu gate"),
            (b, "swiglu input"),
            (g, "swiglu gradient"),
        ];
        let (da, db) = with_values(inputs, |[a, b, g]| Ok(swiglu_gradients(a, b, g)))?;
        Ok((
            Some(Tensor::from_vec(da, a.shape(), a.device())?),
            Some(Tensor::from_vec(db, b.shape(), b.device())?),
        ))
    }
}

/// da and db of silu(a) ⊙ b given the output's gradient g.
fn swiglu_gradients(a: &[f32], b: &[f32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (mut da, mut db) = (vec![0f32; a.len()], vec![0f32; a.len()]);
    da.par_chunks_mut(SWIGLU_CHUNK)
        .zip(db.par_chunks_mut(SWIGLU_CHUNK))
        .zip(
            a.par_chunks(SWIGLU_CHUNK)
                .zip(b.par_chunks(SWIGLU_CHUNK))
                .zip(g.par_chunks(SWIGLU_CHUNK)),
        )
        .for_each(|((da, db), ((a, b), g))| {
            for ((((da, db), &a), &b), &g) in da.iter_mut().zip(db).zip(a).zip(b).zip(g) {
                let s = sigmoid(a);
                *da = g * b * s * (1.0 + a * (1.0 - s));
                *db = g * a * s;
            }
        });
    (da, db)
}

/// silu(a) ⊙ b, differentiable in both.
pub fn swiglu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if fused(a) && a.shape() == b.shape() {
        a.contiguous()?.apply_op2(&b.contiguous()?, SwiGlu)
    } else {
        composite::swiglu(a, b)
    }
}

/// Cross-entropy of each target token: logits [.., v], targets [..] (u32) → nll [..] (f32).
pub fn token_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    per_row(logits, targets, |logits, targets| {
        if fused(logits) {
            logits.apply_op2(targets, TokenNll)
        } else {
            composite::row_nll(logits, targets)
        }
    })
}

/// `nll` of f32 logits [m, v] and targets [m], shaped back as `targets`.
fn per_row(
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
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        a.sub(b)?.abs()?.max_all()?.to_scalar::<f32>()
    }

    /// Value and input gradient of `f` against `reference` on the same random input.
    fn same_value_and_gradient(
        shape: &[usize],
        f: impl Fn(&Tensor) -> Result<Tensor>,
        reference: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<()> {
        let x = Var::randn(0f32, 1., shape, &Device::Cpu)?;
        let (y, y_ref) = (f(x.as_tensor())?, reference(x.as_tensor())?);
        assert_eq!(y.dims(), y_ref.dims());
        let diff = max_diff(&y, &y_ref)?;
        assert!(diff < 1e-5, "values differ by {diff}");
        let weights = Tensor::randn(0f32, 1., y.shape(), &Device::Cpu)?;
        let g = (y * &weights)?.sum_all()?.backward()?;
        let g_ref = (y_ref * &weights)?.sum_all()?.backward()?;
        let diff = max_diff(g.get(&x).unwrap(), g_ref.get(&x).unwrap())?;
        assert!(diff < 1e-4, "gradients differ by {diff}");
        Ok(())
    }

    #[test]
    fn linear_matches_matmul_and_its_input_gradient() -> Result<()> {
        let w = Tensor::randn(0f32, 1., (4, 5), &Device::Cpu)?;
        same_value_and_gradient(
            &[2, 3, 5],
            |x| linear_input_grad(x, &w),
            |x| x.broadcast_matmul(&w.t()?),
        )
    }

    /// Every op's fused kernel against the composite that CUDA and Metal run.
    #[test]
    fn fused_ops_match_the_accelerators_composites() -> Result<()> {
        same_value_and_gradient(&[2, 3, 7], softmax_last_dim, composite::softmax_last_dim)?;
        // Both operands of the gate, over more values than a chunk.
        let b = (Tensor::randn(0f32, 1., (3, 7000), &Device::Cpu)? * 3.0)?;
        same_value_and_gradient(&[3, 7000], |a| swiglu(a, &b), |a| composite::swiglu(a, &b))?;
        let a = (Tensor::randn(0f32, 1., (3, 7000), &Device::Cpu)? * 3.0)?;
        same_value_and_gradient(&[3, 7000], |b| swiglu(&a, b), |b| composite::swiglu(&a, b))?;
        let cos = Tensor::randn(0f32, 1., (5, 4), &Device::Cpu)?;
        let sin = Tensor::randn(0f32, 1., (5, 4), &Device::Cpu)?;
        same_value_and_gradient(
            &[2, 3, 5, 8],
            |x| rope_interleaved(x, &cos, &sin),
            |x| composite::rope_interleaved(x, &cos, &sin),
        )?;
        let w = Tensor::randn(0f32, 1., 6, &Device::Cpu)?;
        same_value_and_gradient(
            &[2, 4, 6],
            |x| rms_norm(x, &w, 1e-5, false),
            |x| composite::rms_norm(x, &w, 1e-5),
        )?;
        // The weight's gradient too, over more rows than a chunk of the backward.
        let x = Tensor::randn(0f32, 1., (3, 50, 6), &Device::Cpu)?;
        let w = Var::randn(0f32, 1., 6, &Device::Cpu)?;
        let weights = Tensor::randn(0f32, 1., (3, 50, 6), &Device::Cpu)?;
        let dw = |y: Tensor| -> Result<Tensor> {
            Ok((y * &weights)?
                .sum_all()?
                .backward()?
                .get(&w)
                .unwrap()
                .clone())
        };
        let fused_dw = dw(rms_norm(&x, w.as_tensor(), 1e-5, true)?)?;
        let composite_dw = dw(composite::rms_norm(&x, w.as_tensor(), 1e-5)?)?;
        assert!(max_diff(&fused_dw, &composite_dw)? < 1e-4);
        let targets = Tensor::new(&[[0u32, 3, 10], [5, 5, 1]], &Device::Cpu)?;
        same_value_and_gradient(
            &[2, 3, 11],
            |x| token_nll(&(x * 3.0)?, &targets),
            |x| composite::token_nll(&(x * 3.0)?, &targets),
        )?;
        let e = Tensor::randn(0f32, 1., (13, 8), &Device::Cpu)?;
        let targets = Tensor::new(&[[0u32, 12, 5], [7, 7, 1]], &Device::Cpu)?;
        same_value_and_gradient(
            &[2, 3, 8],
            |h| output_nll(h, &e, &targets, true),
            |h| composite::output_nll(h, &e, &targets),
        )?;
        // Several vocabulary blocks, a short last one, and logits large enough that each
        // block's maximum moves the running one.
        let e = (Tensor::randn(0f32, 1., (3 * VOCAB_BLOCK + 77, 8), &Device::Cpu)? * 4.0)?;
        let targets = Tensor::new(&[[0u32, 1600, 513], [1611, 7, 1024]], &Device::Cpu)?;
        same_value_and_gradient(
            &[2, 3, 8],
            |h| output_nll(h, &e, &targets, true),
            |h| composite::output_nll(h, &e, &targets),
        )?;
        // More rows than a row block.
        let rows = ROW_BLOCK + 44;
        let ids: Vec<u32> = (0..2 * rows as u32).map(|i| (i * 37) % 1613).collect();
        let targets = Tensor::from_vec(ids, (2, rows), &Device::Cpu)?;
        let unit = (&e / 4.0)?;
        same_value_and_gradient(
            &[2, rows, 8],
            |h| output_nll(h, &unit, &targets, true),
            |h| composite::output_nll(h, &unit, &targets),
        )?;
        let targets = Tensor::new(&[[0u32, 1600, 513], [1611, 7, 1024]], &Device::Cpu)?;
        // Without a gradient, the same values.
        let h = Tensor::randn(0f32, 1., (2, 3, 8), &Device::Cpu)?;
        let diff = max_diff(
            &output_nll(&h, &e, &targets, false)?,
            &output_nll(&h, &e, &targets, true)?,
        )?;
        assert_eq!(diff, 0.0);
        Ok(())
    }

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

    #[test]
    fn only_f32_on_the_cpu_takes_the_fused_kernels() -> Result<()> {
        let x = Tensor::randn(0f32, 1., (2, 7), &Device::Cpu)?;
        assert!(fused(&x));
        let half = x.to_dtype(DType::BF16)?;
        assert!(!fused(&half));
        // A bf16 model on the CPU runs the composites, and gets the same values.
        let via_dispatch = softmax_last_dim(&half)?.to_dtype(DType::F32)?;
        let composite = composite::softmax_last_dim(&half)?.to_dtype(DType::F32)?;
        assert_eq!(max_diff(&via_dispatch, &composite)?, 0.0);
        Ok(())
    }

    #[test]
    fn few_rows_linear_matches_matmul() -> Result<()> {
        let x = Tensor::randn(0f32, 1., (3, 37), &Device::Cpu)?;
        let w = Tensor::randn(0f32, 1., (150, 37), &Device::Cpu)?;
        let diff = max_diff(&few_rows_linear(&x, &w)?, &x.matmul(&w.t()?)?)?;
        assert!(diff < 1e-4, "differs by {diff}");
        // bf16 weights give the product with those weights, exactly widened to f32.
        let w16 = w.to_dtype(DType::BF16)?;
        let want = x.matmul(&w16.to_dtype(DType::F32)?.t()?)?;
        let diff = max_diff(&few_rows_linear(&x, &w16)?, &want)?;
        assert!(diff < 1e-4, "bf16 weights: differs by {diff}");
        assert!(max_diff(&want, &x.matmul(&w.t()?)?)? > 1e-3, "bf16 rounds");
        // Every batch size a decoding step can have.
        let x = Tensor::randn(0f32, 1., (FEW_ROWS, 37), &Device::Cpu)?;
        for m in 1..=FEW_ROWS {
            let x = x.narrow(0, 0, m)?;
            for w in [&w, &w16] {
                let want = x.matmul(&w.to_dtype(DType::F32)?.t()?)?;
                let diff = max_diff(&few_rows_linear(&x, w)?, &want)?;
                assert!(
                    diff < 1e-4,
                    "{m} rows of {:?}: differs by {diff}",
                    w.dtype()
                );
            }
        }
        Ok(())
    }

    #[test]
    fn fast_exp_is_accurate() {
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let (got, want) = (fast_exp(x), x.exp());
            assert!(
                (got - want).abs() <= 4e-7 * want,
                "exp({x}) = {want}, got {got}"
            );
        }
        assert!(fast_exp(f32::NEG_INFINITY) < 1e-37);
    }
}
