//! The decoder's optimizer: AdamW as PyTorch computes it, with global-norm clipping.

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::OptimConfig;

/// AdamW with PyTorch's semantics, state kept in plain tensors so that it can be saved.
pub(super) struct AdamW {
    params: Vec<(String, Var, bool)>,
    pub(super) m: Vec<Tensor>,
    pub(super) v: Vec<Tensor>,
    pub(super) step: usize,
}

impl AdamW {
    pub(super) fn new(params: Vec<(String, Var, bool)>) -> Result<Self> {
        let zeros = || -> candle_core::Result<Vec<Tensor>> {
            params
                .iter()
                .map(|(_, p, _)| p.as_tensor().zeros_like())
                .collect()
        };
        Ok(Self {
            m: zeros()?,
            v: zeros()?,
            params,
            step: 0,
        })
    }

    /// One update; `decay` params get decoupled weight decay. Gradients are clipped to a
    /// global norm of `o.grad_clip` first. Returns the norm before clipping.
    pub(super) fn step(&mut self, grads: &GradStore, o: &OptimConfig, lr: f64) -> Result<f64> {
        let gs: Vec<Tensor> = self
            .params
            .iter()
            .map(|(n, p, _)| {
                grads
                    .get(p)
                    .cloned()
                    .with_context(|| format!("no gradient for `{n}`"))
            })
            .collect::<Result<_>>()?;
        let norm = gs
            .iter()
            .map(|g| Ok(g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64))
            .sum::<Result<f64>>()?
            .sqrt();
        let clip = (o.grad_clip / (norm + 1e-6)).min(1.0);
        self.step += 1;
        let (bc1, bc2) = (
            1.0 - o.beta1.powi(self.step as i32),
            1.0 - o.beta2.powi(self.step as i32),
        );
        for (i, ((_, p, decay), g)) in self.params.iter().zip(gs).enumerate() {
            let g = (g * clip)?;
            self.m[i] = ((&self.m[i] * o.beta1)? + (&g * (1.0 - o.beta1))?)?;
            self.v[i] = ((&self.v[i] * o.beta2)? + (g.sqr()? * (1.0 - o.beta2))?)?;
            let decayed = if *decay {
                (p.as_tensor() * (1.0 - lr * o.weight_decay))?
            } else {
                p.as_tensor().clone()
            };
            let update = ((&self.m[i] / bc1)? / ((&self.v[i] / bc2)?.sqrt()? + 1e-8)?)?;
            p.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(norm)
    }
}
