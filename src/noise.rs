//! Seeded randomness, the same on every device: the generator behind weight initialisation,
//! thought noise and training batches. It sits below `model` so that the model imports nothing
//! from the layers above it.

use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Standard normal noise drawn on the CPU from `rng`, then moved to `device`.
pub fn gaussian(shape: (usize, usize, usize), rng: &mut StdRng, device: &Device) -> Result<Tensor> {
    let n = shape.0 * shape.1 * shape.2;
    let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    Ok(Tensor::from_vec(v, shape, device)?)
}
