//! The pointwise ops, each with a one-pass backward: softmax (and the row helpers the
//! cross-entropies and attention share), interleaved RoPE, RMSNorm and the SwiGLU gate.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, Layout, Result, Shape, Tensor};
use multiversion::multiversion;
use rayon::prelude::*;

use super::{
    composite, contiguous_f32, contiguous_f32_pair, fused, unwritten, with_values, written,
};
use std::mem::MaybeUninit;

/// exp(x) to within a few ulp, written so that the compiler vectorises it (libm's expf is
/// a call per element and dominated the cross-entropy passes over the vocabulary).
#[inline(always)]
pub(super) fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Adding then subtracting 1.5·2²³ rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    // Cephes' polynomial for exp on [−ln2/2, ln2/2].
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.0e-1;
    let e = p * r * r + r + 1.0;
    // 2ⁿ from n's integer bits, which `shifted` holds in its mantissa above ROUND's: the
    // saturating `n as i32` kept the loops that call this from being vectorised (3 times as
    // slow).
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    e * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// log Σ exp over a row.
pub(super) fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row_max(row, f32::NEG_INFINITY);
    max + exp_sum(row, max).ln()
}

/// Lanes of the loops below: independent maxima and sums, so that they vectorise.
const LANES: usize = 16;

/// The larger of two values in one instruction, where `f32::max`'s NaN rule takes three; a NaN
/// `b` is passed over as `f32::max` passes it (a NaN row still ends in a NaN loss downstream).
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if b > a { b } else { a }
}

/// The lanes folded in halves (eight pairs, then four …): a few vector operations, where
/// folding them one by one takes a dependent scalar step a lane, and rows here are short.
#[inline(always)]
fn fold_lanes(mut lanes: [f32; LANES], op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            lanes[i] = op(lanes[i], lanes[i + width]);
        }
        width /= 2;
    }
    lanes[0]
}

/// The largest of `floor` and the row's values.
#[multiversion(targets("x86_64+avx2+fma"))]
pub(super) fn row_max(row: &[f32], floor: f32) -> f32 {
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut lanes = [floor; LANES];
    for c in chunks {
        for i in 0..LANES {
            lanes[i] = larger(lanes[i], c[i]);
        }
    }
    rest.iter().copied().fold(fold_lanes(lanes, larger), larger)
}

/// Σ exp(x − max) over the row.
#[multiversion(targets("x86_64+avx2+fma"))]
pub(super) fn exp_sum(row: &[f32], max: f32) -> f32 {
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut sums = [0f32; LANES];
    for c in chunks {
        for i in 0..LANES {
            sums[i] += fast_exp(c[i] - max);
        }
    }
    fold_lanes(sums, |a, b| a + b) + rest.iter().map(|&x| fast_exp(x - max)).sum::<f32>()
}

/// Replaces each x of the row by exp(x − max); returns their sum.
#[multiversion(targets("x86_64+avx2+fma"))]
pub(super) fn exp_in_place(row: &mut [f32], max: f32) -> f32 {
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
    fold_lanes(sums, |a, b| a + b) + rest
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
struct InterleavedRope {
    cos: Tensor,
    sin: Tensor,
}

impl InterleavedRope {
    /// Every head of x [.., T, d] rotated by the angles, or back by them with `inverse` (the
    /// backward pass: sin negated).
    fn rotate(&self, x: &[f32], (t, d): (usize, usize), inverse: bool) -> Result<Vec<f32>> {
        let (cos, sin) = (
            self.cos.flatten_all()?.to_vec1::<f32>()?,
            self.sin.flatten_all()?.to_vec1::<f32>()?,
        );
        if d % 2 == 1 || cos.len() != t * d / 2 || sin.len() != cos.len() {
            candle_core::bail!(
                "rope: cos/sin hold {} angles for {t} positions of {d} dims",
                cos.len()
            );
        }
        let sign = if inverse { -1.0 } else { 1.0 };
        let mut y = unwritten(x.len());
        y.par_chunks_mut(t * d)
            .zip(x.par_chunks(t * d))
            .for_each(|(y, x)| rotate_head(y, x, (&cos, &sin), sign));
        // SAFETY: the heads cover y (x's length is a whole number of heads of t × d, d even),
        // and each pair of each is written.
        Ok(unsafe { written(y) })
    }
}

/// One head's pairs rotated: pair i is dims (2k, 2k+1) at position i / (d/2), angle index i.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn rotate_head(y: &mut [MaybeUninit<f32>], x: &[f32], (cos, sin): (&[f32], &[f32]), sign: f32) {
    let pairs = y.chunks_exact_mut(2).zip(x.chunks_exact(2));
    for (((y, x), &c), &s) in pairs.zip(cos).zip(sin) {
        let s = s * sign;
        y[0].write(x[0] * c - x[1] * s);
        y[1].write(x[0] * s + x[1] * c);
    }
}

impl CustomOp1 for InterleavedRope {
    fn name(&self) -> &'static str {
        "rope-interleaved-bwd"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "rope")?;
        let (_, _, t, d) = l.shape().dims4()?;
        Ok((
            CpuStorage::F32(self.rotate(x, (t, d), false)?),
            l.shape().clone(),
        ))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, t, d) = g.dims4()?;
        let dx = with_values([(g, "rope gradient")], |[g]| self.rotate(g, (t, d), true))?;
        Ok(Some(Tensor::from_vec(dx, g.shape(), g.device())?))
    }
}

/// Interleaved rotary embedding, differentiable in x; x [B, H, T, d], cos and sin [T, d/2].
pub fn rope_interleaved(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if fused(x) {
        let op = InterleavedRope {
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

/// Σᵢ Πₖ factors[k][i] over a row, in lanes.
#[inline(always)]
fn sum_of_products<const K: usize>(factors: [&[f32]; K]) -> f32 {
    let n = factors.iter().map(|f| f.len()).min().unwrap_or(0);
    let whole = n - n % LANES;
    let mut sums = [0f32; LANES];
    for at in (0..whole).step_by(LANES) {
        let chunk = factors.map(|f| &f[at..at + LANES]);
        for i in 0..LANES {
            sums[i] += chunk.iter().map(|c| c[i]).product::<f32>();
        }
    }
    let rest = (whole..n).map(|i| factors.iter().map(|f| f[i]).product::<f32>());
    fold_lanes(sums, |a, b| a + b) + rest.sum::<f32>()
}

/// Σ x² over a row.
#[multiversion(targets("x86_64+avx2+fma"))]
fn sum_of_squares(x: &[f32]) -> f32 {
    sum_of_products([x, x])
}

/// Σ a ⊙ b ⊙ c over a row.
#[multiversion(targets("x86_64+avx2+fma"))]
fn dot3(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
    sum_of_products([a, b, c])
}

/// One row of RMSNorm: y = w ⊙ x ⊙ r.
#[multiversion(targets("x86_64+avx2+fma"))]
fn rms_norm_row(y: &mut [MaybeUninit<f32>], x: &[f32], w: &[f32], r: f32) {
    for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
        y.write(x * r * w);
    }
}

/// One row of RMSNorm's backward: dx, and its share added to dw when the weight learns.
#[multiversion(targets("x86_64+avx2+fma"))]
fn rms_norm_row_gradients(
    (dx, dw): (&mut [MaybeUninit<f32>], &mut [f32]),
    (x, w, g): (&[f32], &[f32], &[f32]),
    (r, proj): (f32, f32),
) {
    for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
        dx.write(r * g * w - x * proj);
    }
    for ((dw, &x), &g) in dw.iter_mut().zip(x).zip(g) {
        *dw += g * x * r;
    }
}

impl RmsNorm {
    fn inverse_rms(&self, x: &[f32]) -> f32 {
        1.0 / (sum_of_squares(x) / x.len() as f32 + self.eps).sqrt()
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
        let (x, w) = contiguous_f32_pair((s, l), (ws, wl), "rms_norm")?;
        let d = w.len();
        if l.dims().last() != Some(&d) {
            candle_core::bail!("rms_norm: a weight of {d} for rows of {:?}", l.dims());
        }
        let mut y = unwritten(x.len());
        y.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .for_each(|(y, x)| rms_norm_row(y, x, w, self.inverse_rms(x)));
        // SAFETY: the rows cover y, and each is written whole.
        let y = unsafe { written(y) };
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
        let mut dx = unwritten(x.len());
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
                    let proj = dot3(g, w, x) / d as f32 * r * r * r;
                    rms_norm_row_gradients((dx, &mut dw), (x, w, g), (r, proj));
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
        // SAFETY: the chunks cover dx, and each row is written whole.
        (unsafe { written(dx) }, dw)
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

/// The SwiGLU gate of rows [gate | up] (h values each): y = silu(a) ⊙ b, a the gate and b
/// the up half, with a one-pass backward: with σ = sigmoid(a), da = g ⊙ b ⊙ σ (1 + a (1 − σ))
/// and db = g ⊙ a σ, written into one gradient as the input's halves.
struct SwiGlu;

/// Values per parallel task of the SwiGLU kernels (whole rows).
const SWIGLU_CHUNK: usize = 1 << 14;

#[inline(always)]
fn sigmoid(a: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-a))
}

/// Rows per parallel task, and the half width, of gate rows [.., 2h].
fn swiglu_rows(l: &Layout) -> Result<(usize, usize)> {
    let width = l.dims().last().copied().unwrap_or(0);
    if width % 2 == 1 {
        candle_core::bail!("swiglu: rows of {width} do not halve into gate and up");
    }
    Ok(((SWIGLU_CHUNK / width.max(1)).max(1), width / 2))
}

impl CustomOp1 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu-bwd"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "swiglu")?;
        let (rows, h) = swiglu_rows(l)?;
        let mut shape = l.dims().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = h;
        }
        let mut y = unwritten(x.len() / 2);
        if h > 0 {
            y.par_chunks_mut(rows * h)
                .zip(x.par_chunks(rows * 2 * h))
                .for_each(|(y, x)| {
                    for (y, x) in y.chunks_exact_mut(h).zip(x.chunks_exact(2 * h)) {
                        let (a, b) = x.split_at(h);
                        swiglu_run(y, a, b);
                    }
                });
        }
        // SAFETY: the rows cover y (h values each), and each is written whole.
        let y = unsafe { written(y) };
        Ok((CpuStorage::F32(y), Shape::from(shape)))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (rows, h) = swiglu_rows(x.layout())?;
        let inputs = [(x, "swiglu input"), (g, "swiglu gradient")];
        let dx = with_values(inputs, |[x, g]| Ok(swiglu_gradients(x, g, rows, h)))?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

// Long runs of independent values: as wide a vector as the CPU has.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn swiglu_run(y: &mut [MaybeUninit<f32>], a: &[f32], b: &[f32]) {
    for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
        y.write(a * sigmoid(a) * b);
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn swiglu_gradient_run(
    (da, db): (&mut [MaybeUninit<f32>], &mut [MaybeUninit<f32>]),
    (a, b, g): (&[f32], &[f32], &[f32]),
) {
    for ((((da, db), &a), &b), &g) in da.iter_mut().zip(db).zip(a).zip(b).zip(g) {
        let s = sigmoid(a);
        da.write(g * b * s * (1.0 + a * (1.0 - s)));
        db.write(g * a * s);
    }
}

/// The gradient of rows [gate | up] given the output's gradient g (rows of h).
fn swiglu_gradients(x: &[f32], g: &[f32], rows: usize, h: usize) -> Vec<f32> {
    let mut dx = unwritten(x.len());
    if h > 0 {
        dx.par_chunks_mut(rows * 2 * h)
            .zip(x.par_chunks(rows * 2 * h).zip(g.par_chunks(rows * h)))
            .for_each(|(dx, (x, g))| {
                let rows = dx.chunks_exact_mut(2 * h).zip(x.chunks_exact(2 * h));
                for ((dx, x), g) in rows.zip(g.chunks_exact(h)) {
                    let ((da, db), (a, b)) = (dx.split_at_mut(h), x.split_at(h));
                    swiglu_gradient_run((da, db), (a, b, g));
                }
            });
    }
    // SAFETY: the rows cover dx (2h values each), and both halves of each are written.
    unsafe { written(dx) }
}

/// silu(gate) ⊙ up of `gate_up` [.., 2h], the gate in its first half; differentiable.
pub fn swiglu(gate_up: &Tensor) -> Result<Tensor> {
    if fused(gate_up) {
        gate_up.contiguous()?.apply_op1(SwiGlu)
    } else {
        composite::swiglu(gate_up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
