//! Custom ops with the backward passes that thinking needs and candle does not give.
//!
//! While thinking, only the thought (μ, logσ²) is learnt: the decoder's weights are constants.
//! candle's matmul backward computes both operand gradients regardless, which for the output
//! layer alone is a third of a thinking step. `linear_input_grad` returns only dx.
//! `token_nll` fuses log-softmax, gather and its backward into single passes over the logits.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, D,
};
use rayon::prelude::*;

/// y = x · wᵀ (x: [m, k], w: [n, k]); backward gives dx only.
struct InputGradLinear;

fn matmul_transposed<S: BackendStorage>(x: &S, lx: &Layout, w: &S, lw: &Layout) -> Result<(S, Shape)> {
    let (m, k) = lx.shape().dims2()?;
    let (n, kw) = lw.shape().dims2()?;
    if k != kw {
        candle_core::bail!("linear: input {:?} does not fit weight {:?}", lx.shape(), lw.shape());
    }
    let out = x.matmul(w, (1, m, n, k), lx, &lw.transpose(0, 1)?)?;
    Ok((out, Shape::from((m, n))))
}

impl CustomOp2 for InputGradLinear {
    fn name(&self) -> &'static str {
        "linear-input-grad"
    }

    fn cpu_fwd(&self, x: &CpuStorage, lx: &Layout, w: &CpuStorage, lw: &Layout) -> Result<(CpuStorage, Shape)> {
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

    fn bwd(&self, _x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(dy.matmul(w)?), None))
    }
}

/// x · wᵀ over the last dimension of x, differentiable in x only.
pub fn linear_input_grad(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (rows, k) = (x.elem_count() / x.dim(D::Minus1)?, x.dim(D::Minus1)?);
    let mut out_shape = x.dims().to_vec();
    *out_shape.last_mut().expect("x has a last dimension") = w.dim(0)?;
    let x2 = x.reshape((rows, k))?.contiguous()?;
    x2.apply_op2(&w.contiguous()?, InputGradLinear)?.reshape(out_shape)
}

/// Per-row negative log-likelihood of `targets` [m] under `logits` [m, v] (f32, CPU).
struct TokenNll;

fn rows<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("token_nll: logits must be contiguous"),
    }
}

fn target_ids(s: &CpuStorage, l: &Layout) -> Result<Vec<usize>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("token_nll: targets must be contiguous")
    };
    Ok(s.as_slice::<u32>()?[a..b].iter().map(|&t| t as usize).collect())
}

fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + row.iter().map(|&x| (x - max).exp()).sum::<f32>().ln()
}

impl CustomOp2 for TokenNll {
    fn name(&self) -> &'static str {
        "token-nll"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (m, v) = l1.shape().dims2()?;
        let (logits, targets) = (rows(s1, l1)?, target_ids(s2, l2)?);
        if targets.len() != m || targets.iter().any(|&t| t >= v) {
            candle_core::bail!("token_nll: {} targets for {m} rows of {v} logits (or a target out of range)", targets.len());
        }
        let nll: Vec<f32> = logits
            .par_chunks(v)
            .zip(targets.par_iter())
            .map(|(row, &t)| log_sum_exp(row) - row[t])
            .collect();
        Ok((CpuStorage::F32(nll), Shape::from(m)))
    }

    fn bwd(&self, logits: &Tensor, targets: &Tensor, _nll: &Tensor, dnll: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dlogits = logits.apply_op3_no_bwd(targets, &dnll.contiguous()?, &TokenNllGrad)?;
        Ok((Some(dlogits), None))
    }
}

/// d nll / d logits = (softmax(logits) − onehot(target)) · dnll, in one pass.
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
        let (logits, targets, dnll) = (rows(s1, l1)?, target_ids(s2, l2)?, rows(s3, l3)?);
        let mut grad = vec![0f32; m * v];
        grad.par_chunks_mut(v)
            .zip(logits.par_chunks(v))
            .zip(targets.par_iter().zip(dnll.par_iter()))
            .for_each(|((g, row), (&t, &d))| {
                let lse = log_sum_exp(row);
                for (gi, &x) in g.iter_mut().zip(row) {
                    *gi = (x - lse).exp() * d;
                }
                g[t] -= d;
            });
        Ok((CpuStorage::F32(grad), Shape::from((m, v))))
    }
}

/// Cross-entropy of each target token: logits [.., v], targets [..] (u32) → nll [..] (f32).
/// Fused on CPU; composite (and still differentiable) on accelerators.
pub fn token_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let v = logits.dim(D::Minus1)?;
    let out_shape = targets.shape().clone();
    let logits = logits.to_dtype(DType::F32)?.reshape(((), v))?.contiguous()?;
    let targets = targets.flatten_all()?.contiguous()?;
    let nll = if matches!(logits.device(), Device::Cpu) {
        logits.apply_op2(&targets, TokenNll)?
    } else {
        let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        log_probs.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?
    };
    nll.reshape(out_shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn linear_matches_matmul_and_its_input_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1., (2, 3, 5), &dev)?;
        let w = Tensor::randn(0f32, 1., (4, 5), &dev)?;
        let y = linear_input_grad(x.as_tensor(), &w)?;
        let reference = x.as_tensor().broadcast_matmul(&w.t()?)?;
        assert!(y.sub(&reference)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
        let g = y.sqr()?.sum_all()?.backward()?;
        let g_ref = reference.sqr()?.sum_all()?.backward()?;
        let (a, b) = (g.get(&x).unwrap(), g_ref.get(&x).unwrap());
        assert!(a.sub(b)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-4);
        Ok(())
    }

    #[test]
    fn token_nll_matches_log_softmax_and_its_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Var::randn(0f32, 3., (6, 11), &dev)?;
        let targets = Tensor::new(&[0u32, 3, 10, 5, 5, 1], &dev)?;
        let fused = token_nll(logits.as_tensor(), &targets)?;
        let log_probs = candle_nn::ops::log_softmax(logits.as_tensor(), D::Minus1)?;
        let composite = log_probs.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
        assert!(fused.sub(&composite)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
        let weights = Tensor::new(&[1f32, 2., 3., 4., 5., 6.], &dev)?;
        let g = (fused * &weights)?.sum_all()?.backward()?;
        let g_ref = (composite * &weights)?.sum_all()?.backward()?;
        let (a, b) = (g.get(&logits).unwrap(), g_ref.get(&logits).unwrap());
        assert!(a.sub(b)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-4);
        Ok(())
    }
}
