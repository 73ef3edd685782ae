//! Custom ops with the backward passes that thinking needs and candle does not give, a room
//! per kind: products with a weight matrix (`linear`), the cross-entropies (`nll`), the
//! pointwise ops (`pointwise`: softmax, RoPE, RMSNorm, SwiGLU) and attention. Each has a fused
//! CPU kernel and a [`composite`] of candle's own ops for the other devices; the choice between
//! them is made here, by [`fused`].
//!
//! While thinking, only the thought (μ, logσ²) is learnt: the decoder's weights are constants.
//! candle's matmul backward computes both operand gradients regardless, which for the output
//! layer alone is a third of a thinking step. `linear_input_grad` returns only dx.
//! `token_nll` fuses log-softmax, gather and its backward into single passes over the logits;
//! `output_nll` goes further for the tied output layer and never stores its logits.

use candle_core::{CpuStorage, D, DType, Layout, Result, Tensor};
use std::mem::MaybeUninit;
use std::sync::Mutex;

pub mod amx;
mod attention;
mod gemm;
mod linear;
mod nll;
mod pointwise;
pub use attention::attention;
pub use linear::{FEW_ROWS, bf16_linear, few_rows_linear, linear_input_grad};
use nll::per_row;
pub use nll::{output_nll, token_nll};
pub use pointwise::{rms_norm, rope_interleaved, softmax_last_dim, swiglu};

/// The most values an op keeps from its forward pass for the backward pass (64 MB); larger
/// ops recompute what they need there.
const KEPT: usize = 16 << 20;

/// Values an op's forward pass keeps for its backward pass, which takes them once.
#[derive(Default)]
struct Kept(Mutex<Option<Vec<f32>>>);

impl Kept {
    fn put(&self, values: Vec<f32>) {
        *self.lock() = Some(values);
    }

    fn take(&self) -> Option<Vec<f32>> {
        self.lock().take()
    }

    #[cfg(test)]
    fn holds(&self) -> bool {
        self.lock().is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<f32>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An attention's queries [B, H, T, D], keys and values [B, G, S, D] (G divides H: each
/// key/value head serves H/G query heads).
pub type Qkv<'a> = (&'a Tensor, &'a Tensor, &'a Tensor);

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

    pub fn swiglu(gate_up: &Tensor) -> Result<Tensor> {
        let h = gate_up.dim(D::Minus1)? / 2;
        candle_nn::ops::silu(&gate_up.narrow(D::Minus1, 0, h)?)?
            * gate_up.narrow(D::Minus1, h, h)?
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
        (q, k, v): Qkv,
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

/// Both operands of a binary op, each as [`contiguous_f32`].
fn contiguous_f32_pair<'a>(
    (a, la): (&'a CpuStorage, &Layout),
    (b, lb): (&'a CpuStorage, &Layout),
    what: &str,
) -> Result<(&'a [f32], &'a [f32])> {
    Ok((contiguous_f32(a, la, what)?, contiguous_f32(b, lb, what)?))
}

/// A vector of `n` values for a caller to write every one of, not zeroed first (a full pass
/// over memory, for nothing); [`written`] makes it a vector of values.
pub(super) fn unwritten<T>(n: usize) -> Vec<MaybeUninit<T>> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: MaybeUninit needs no initialisation.
    unsafe { v.set_len(n) };
    v
}

/// # Safety
/// Every value of `v` has been written.
pub(super) unsafe fn written<T>(v: Vec<MaybeUninit<T>>) -> Vec<T> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: MaybeUninit<T> has T's layout; the caller vouches for the values; the vector is
    // not used as itself again.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
}

/// The largest difference between two tensors' values, for the rooms' tests.
#[cfg(test)]
fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    a.sub(b)?.abs()?.max_all()?.to_scalar::<f32>()
}

/// The largest difference between two slices' values, for tests.
#[cfg(test)]
pub(crate) fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[cfg(test)]
mod tests {
    use super::nll::{ROW_BLOCK, VOCAB_BLOCK};
    use super::*;
    use candle_core::{Device, Var};

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
        // Both halves of the gate's input, over more values than a task takes.
        let wide = |x: &Tensor| x * 3.0;
        same_value_and_gradient(
            &[3, 7, 7000],
            |x| swiglu(&wide(x)?),
            |x| composite::swiglu(&wide(x)?),
        )?;
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
        // One vocabulary block; several, a short last one, and logits large enough that each
        // block's maximum moves the running one; more rows than a row block.
        let small = Tensor::randn(0f32, 1., (13, 8), &Device::Cpu)?;
        let blocks = (Tensor::randn(0f32, 1., (3 * VOCAB_BLOCK + 77, 8), &Device::Cpu)? * 4.0)?;
        let rows = ROW_BLOCK + 44;
        let ids: Vec<u32> = (0..2 * rows as u32).map(|i| (i * 37) % 1613).collect();
        let cases = [
            (
                small,
                Tensor::new(&[[0u32, 12, 5], [7, 7, 1]], &Device::Cpu)?,
            ),
            (
                blocks.clone(),
                Tensor::new(&[[0u32, 1600, 513], [1611, 7, 1024]], &Device::Cpu)?,
            ),
            (
                (&blocks / 4.0)?,
                Tensor::from_vec(ids, (2, rows), &Device::Cpu)?,
            ),
        ];
        for (e, targets) in &cases {
            same_value_and_gradient(
                &[2, targets.dim(1)?, 8],
                |h| output_nll(h, e, targets, true),
                |h| composite::output_nll(h, e, targets),
            )?;
        }
        let (e, targets) = &cases[1];
        // Without a gradient, the same values.
        let h = Tensor::randn(0f32, 1., (2, 3, 8), &Device::Cpu)?;
        let diff = max_diff(
            &output_nll(&h, e, targets, false)?,
            &output_nll(&h, e, targets, true)?,
        )?;
        assert_eq!(diff, 0.0);
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
}
