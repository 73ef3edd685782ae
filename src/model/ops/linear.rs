//! Products with a weight matrix: y = x · wᵀ with only the input's gradient (thinking), with
//! bf16 products on AMX tiles (`ltm train --bf16`), and for a handful of rows (writing).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, D, Layout, Result, Shape, Tensor};
use multiversion::multiversion;
use rayon::prelude::*;

use super::amx;
use super::gemm::View;
use super::{contiguous_f32, contiguous_f32_pair};

/// y = x · wᵀ (x: [m, k], w: [n, k]), in f32 with dx alone as its backward (thinking), or
/// with bf16 products on AMX tiles (see [`Bf16Product`]) and dw too with `weight_grad`.
enum Linear {
    InputGrad,
    Bf16 { weight_grad: bool },
}

/// x · wᵀ on any backend, each operand with its layout.
fn matmul_transposed<S: BackendStorage>(
    (x, lx): (&S, &Layout),
    (w, lw): (&S, &Layout),
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

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        match self {
            Linear::InputGrad => "linear-input-grad",
            Linear::Bf16 { .. } => "bf16-linear",
        }
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        w: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match self {
            Linear::InputGrad => matmul_transposed((x, lx), (w, lw)),
            Linear::Bf16 { .. } => Bf16Product {
                transpose_a: false,
                transpose_b: true,
            }
            .cpu_fwd(x, lx, w, lw),
        }
    }

    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        lx: &Layout,
        w: &candle_core::CudaStorage,
        lw: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        matmul_transposed((x, lx), (w, lw))
    }

    fn metal_fwd(
        &self,
        x: &candle_core::MetalStorage,
        lx: &Layout,
        w: &candle_core::MetalStorage,
        lw: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        matmul_transposed((x, lx), (w, lw))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let weight_grad = match self {
            Linear::InputGrad => return Ok((Some(dy.matmul(w)?), None)),
            Linear::Bf16 { weight_grad } => *weight_grad,
        };
        let dy = dy.contiguous()?;
        let product = |a: &Tensor, b: &Tensor, transpose_a| {
            let op = Bf16Product {
                transpose_a,
                transpose_b: false,
            };
            a.apply_op2_no_bwd(b, &op)
        };
        let dx = product(&dy, w, false)?;
        if !weight_grad {
            return Ok((Some(dx), None));
        }
        // dw = dyᵀ · x, or (xᵀ · dy)ᵀ: the first operand is read transposed, which costs more
        // than the product's other work; the narrower of the two is chosen.
        let (n, k) = w.dims2()?;
        let dw = if n <= k {
            product(&dy, x, true)?
        } else {
            product(x, &dy, true)?.t()?.contiguous()?
        };
        Ok((Some(dx), Some(dw)))
    }
}

/// x · wᵀ over the last dimension of x, differentiable in x only.
pub fn linear_input_grad(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    over_last_dim(x, w, Linear::InputGrad)
}

/// x · wᵀ over the last dimension of x with bf16 products and f32 accumulation, where
/// [`amx::available`] (f32 on the CPU); differentiable in x, and in w with `weight_grad`.
pub fn bf16_linear(x: &Tensor, w: &Tensor, weight_grad: bool) -> Result<Tensor> {
    over_last_dim(x, w, Linear::Bf16 { weight_grad })
}

/// `op`, a product x · wᵀ of 2-D tensors, over the last dimension of x.
fn over_last_dim(
    x: &Tensor,
    w: &Tensor,
    op: impl CustomOp2 + Send + Sync + 'static,
) -> Result<Tensor> {
    let (rows, k) = (x.elem_count() / x.dim(D::Minus1)?, x.dim(D::Minus1)?);
    let mut out_shape = x.dims().to_vec();
    *out_shape.last_mut().expect("x has a last dimension") = w.dim(0)?;
    let x2 = x.reshape((rows, k))?.contiguous()?;
    x2.apply_op2(&w.contiguous()?, op)?.reshape(out_shape)
}

/// a · b of 2-D f32 tensors, a read as its transpose with `transpose_a` and b with
/// `transpose_b`, both rounded to bf16 and multiplied on AMX tiles (`amx`); no backward.
struct Bf16Product {
    transpose_a: bool,
    transpose_b: bool,
}

impl Bf16Product {
    fn view(l: &Layout, transpose: bool) -> Result<View> {
        let (rows, cols) = l.shape().dims2()?;
        let v = View::row_major(rows, cols);
        Ok(if transpose { v.t() } else { v })
    }
}

impl CustomOp2 for Bf16Product {
    fn name(&self) -> &'static str {
        "bf16-product"
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        la: &Layout,
        b: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (av, bv) = (
            Self::view(la, self.transpose_a)?,
            Self::view(lb, self.transpose_b)?,
        );
        if av.cols != bv.rows {
            candle_core::bail!(
                "bf16 product: {:?} does not fit {:?}",
                la.shape(),
                lb.shape()
            );
        }
        let (a, b) = contiguous_f32_pair((a, la), (b, lb), "bf16 product")?;
        let out = amx::product(a, av, b, bv);
        Ok((CpuStorage::F32(out), Shape::from((av.rows, bv.cols))))
    }
}

/// y = x · wᵀ for a handful of rows (generation: one token per sample). Streams each weight
/// row once for all rows of x, in parallel over weight rows: memory-bound, as it must be, where
/// a general GEMM spends its time packing for a product it cannot block.
struct FewRowsLinear;

/// At most this many rows of x go through `FewRowsLinear`.
pub const FEW_ROWS: usize = 32;

/// An element of a weight matrix that decoding reads: f32, or bf16 at half the bytes.
trait WeightElement: Copy + Send + Sync {
    /// Whether this is bf16 (else f32).
    const BF16: bool;
    fn to_f32(self) -> f32;
}

impl WeightElement for f32 {
    const BF16: bool = false;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl WeightElement for half::bf16 {
    const BF16: bool = true;
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

/// out[j·m + i] = x_i · w_j for the rows w_j of `wb` and x_i of `x` (rows of length k): with
/// AVX-512, in tiles (see [`avx512::tiles`]); elsewhere a dot product at a time.
fn dot_rows<W: WeightElement>(out: &mut [f32], wb: &[W], x: &[f32], k: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: the CPU has the features the kernel is compiled for.
        return unsafe { avx512::tiles(out, wb, x, k) };
    }
    dot_rows_lanes(out, wb, x, k)
}

#[multiversion(targets("x86_64+avx2+fma"))]
fn dot_rows_lanes<W: WeightElement>(out: &mut [f32], wb: &[W], x: &[f32], k: usize) {
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

/// Few-row products in tiles of up to 4 rows of x by 4 rows of w: each 16 values loaded feed
/// up to 16 multiply-adds into 16 of AVX-512's 32 registers, where a dot product at a time
/// loads two values for each (writing's check multiplies 19 rows by each weight row).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::WeightElement;
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")
    }

    /// 16 weights from `w` widened to f32: bf16 is the upper half of an f32.
    #[inline(always)]
    unsafe fn load<W: WeightElement>(w: *const W) -> __m512 {
        unsafe {
            if W::BF16 {
                let half = _mm256_loadu_si256(w.cast());
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(half)))
            } else {
                _mm512_loadu_ps(w.cast())
            }
        }
    }

    /// The R × C dot products of rows i.. of x with rows j.. of w into `out` ([n, m]).
    #[inline(always)]
    unsafe fn tile<W: WeightElement, const R: usize, const C: usize>(
        out: &mut [f32],
        wb: &[W],
        x: &[f32],
        (i, j): (usize, usize),
        k: usize,
    ) {
        let m = x.len() / k;
        assert!((i + R) * k <= x.len() && (j + C) * k <= wb.len());
        let body = k - k % 16;
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); C]; R];
            let mut at = 0;
            while at < body {
                let mut w = [_mm512_setzero_ps(); C];
                for (c, w) in w.iter_mut().enumerate() {
                    *w = load(wb.as_ptr().add((j + c) * k + at));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_loadu_ps(x.as_ptr().add((i + r) * k + at));
                    for (acc, w) in acc.iter_mut().zip(&w) {
                        *acc = _mm512_fmadd_ps(x, *w, *acc);
                    }
                }
                at += 16;
            }
            for (r, acc) in acc.iter().enumerate() {
                for (c, acc) in acc.iter().enumerate() {
                    let (x, w) = (&x[(i + r) * k..][..k], &wb[(j + c) * k..][..k]);
                    let tail: f32 = (body..k).map(|at| x[at] * w[at].to_f32()).sum();
                    out[(j + c) * m + i + r] = _mm512_reduce_add_ps(*acc) + tail;
                }
            }
        }
    }

    /// out[j·m + i] = x_i · w_j, in tiles of 4 × 4 and what is left of them.
    #[target_feature(enable = "avx512f,fma")]
    pub unsafe fn tiles<W: WeightElement>(out: &mut [f32], wb: &[W], x: &[f32], k: usize) {
        let (m, n) = (x.len() / k, wb.len() / k);
        let (whole_m, whole_n) = (m - m % 4, n - n % 4);
        unsafe {
            for j in (0..whole_n).step_by(4) {
                for i in (0..whole_m).step_by(4) {
                    tile::<W, 4, 4>(out, wb, x, (i, j), k);
                }
                for i in whole_m..m {
                    tile::<W, 1, 4>(out, wb, x, (i, j), k);
                }
            }
            for j in whole_n..n {
                for i in 0..m {
                    tile::<W, 1, 1>(out, wb, x, (i, j), k);
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::{largest_difference, max_diff};
    use candle_core::{DType, Device};

    /// bf16 products and their gradients (dw both ways round) are f32's to bf16's precision.
    #[test]
    fn bf16_linear_and_its_gradients_match_f32() -> Result<()> {
        if !amx::available() {
            eprintln!("skipped: this CPU or OS has no AMX bf16");
            return Ok(());
        }
        let x = candle_core::Var::randn(0f32, 1., (3, 37, 50), &Device::Cpu)?;
        for n in [20, 70] {
            let w = candle_core::Var::randn(0f32, 1., (n, 50), &Device::Cpu)?;
            let r = Tensor::randn(0f32, 1., (3, 37, n), &Device::Cpu)?;
            let grads = |y: Tensor| -> Result<(Tensor, Option<Tensor>)> {
                let g = (y * &r)?.sum_all()?.backward()?;
                Ok((g.get(&x).unwrap().clone(), g.get(&w).cloned()))
            };
            let want_y = x.broadcast_matmul(&w.t()?)?;
            let got_y = bf16_linear(&x, &w, true)?;
            let (want, got) = (grads(want_y.clone())?, grads(got_y.clone())?);
            let relative = |a: &Tensor, b: &Tensor| -> Result<f32> {
                Ok(max_diff(a, b)? / a.abs()?.max_all()?.to_scalar::<f32>()?)
            };
            let (want_dw, got_dw) = (want.1.unwrap(), got.1.unwrap());
            for (what, a, b) in [
                ("y", &want_y, &got_y),
                ("dx", &want.0, &got.0),
                ("dw", &want_dw, &got_dw),
            ] {
                let e = relative(a, b)?;
                assert!(
                    e < 1e-2 && e > 1e-6,
                    "{n} outputs, {what}: relative error {e}"
                );
            }
            let (dx, dw) = grads(bf16_linear(&x, &w, false)?)?;
            assert!(dw.is_none(), "without weight_grad, w gets no gradient");
            assert_eq!(max_diff(&dx, &got.0)?, 0.0);
        }
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
        // The kernel for CPUs without AVX-512 gives what this CPU's gives (without AVX-512, both calls run it).
        let (x, w) = (
            x.flatten_all()?.to_vec1::<f32>()?,
            w.flatten_all()?.to_vec1::<f32>()?,
        );
        let (mut tiled, mut lanes) = (vec![0f32; 150 * FEW_ROWS], vec![0f32; 150 * FEW_ROWS]);
        dot_rows(&mut tiled, &w, &x, 37);
        dot_rows_lanes(&mut lanes, &w, &x, 37);
        let worst = largest_difference(&tiled, &lanes);
        assert!(worst < 1e-4, "the two kernels differ by {worst}");
        Ok(())
    }
}
