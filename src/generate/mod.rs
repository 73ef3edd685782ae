//! Writing (DESIGN §4): continue a prompt given a thought, token by token, through the
//! key/value cache. Several thought samples are written as one batch.

use anyhow::{Result, bail};
use candle_core::{D, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling as Strategy};

use crate::model::Ltm;

/// Sampling settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub max_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub seed: u64,
    /// Generation of a sample ends after any of these tokens (reported, then the sample stops):
    /// end of text, and the start of a new text.
    pub stop_tokens: Vec<u32>,
}

impl Sampling {
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            max_tokens,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
            stop_tokens: Vec::new(),
        }
    }

    fn processor(&self, sample: usize) -> LogitsProcessor {
        let temperature = self.temperature;
        let strategy = if temperature <= 0.0 {
            Strategy::ArgMax
        } else {
            match (self.top_k, self.top_p) {
                (None, None) => Strategy::All { temperature },
                (Some(k), None) => Strategy::TopK { k, temperature },
                (None, Some(p)) => Strategy::TopP { p, temperature },
                (Some(k), Some(p)) => Strategy::TopKThenTopP { k, p, temperature },
            }
        };
        LogitsProcessor::from_sampling(self.seed.wrapping_add(sample as u64), strategy)
    }
}

/// What the caller wants after seeing a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// This sample is finished (e.g. a stop string appeared).
    StopSample,
    /// Stop everything now.
    Cancel,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every sample finished (end of text, stop string or token limit).
    Finished,
    Cancelled,
}

/// Writes a continuation of `prompt` for each thought in `z` [K, max_z_len, dim].
/// Every token is handed to `on_token(sample, id)` as soon as it is chosen.
/// Returns the new tokens of each sample.
pub fn generate(
    model: &Ltm,
    prompt: &[u32],
    z: &Tensor,
    sampling: &Sampling,
    mut on_token: impl FnMut(usize, u32) -> Flow,
) -> Result<(Vec<Vec<u32>>, Ended)> {
    if prompt.is_empty() {
        bail!("generation needs a prompt of at least one token");
    }
    let samples = z.dim(0)?;
    let device = model.device();
    let mut processors: Vec<_> = (0..samples).map(|i| sampling.processor(i)).collect();
    let mut written = vec![Vec::new(); samples];
    let mut active = vec![true; samples];
    let mut cache = model.cache(z)?;
    let mut input = Tensor::new(prompt, device)?
        .unsqueeze(0)?
        .repeat((samples, 1))?;
    for _ in 0..sampling.max_tokens {
        let logits = model.step(&input, &mut cache)?;
        let mut next = Vec::with_capacity(samples);
        for (i, processor) in processors.iter_mut().enumerate() {
            let row = logits.get(i)?;
            let id = if active[i] {
                processor.sample(&row)?
            } else {
                row.argmax(D::Minus1)?.to_scalar::<u32>()?
            };
            next.push(id);
            if !active[i] {
                continue;
            }
            written[i].push(id);
            match on_token(i, id) {
                Flow::Cancel => return Ok((written, Ended::Cancelled)),
                Flow::StopSample => active[i] = false,
                Flow::Continue if sampling.stop_tokens.contains(&id) => active[i] = false,
                Flow::Continue => {}
            }
        }
        if !active.iter().any(|&a| a) {
            break;
        }
        input = Tensor::new(next, device)?.unsqueeze(1)?;
    }
    Ok((written, Ended::Finished))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Checkpoint, Config};
    use candle_core::{DType, Device};

    fn tiny() -> Ltm {
        let mut c = Config::paper_shape(2);
        (
            c.dim,
            c.n_heads,
            c.vocab_size,
            c.max_seq_len,
            c.window_size,
            c.max_z_len,
        ) = (32, 2, 50, 64, 8, 4);
        Checkpoint::random(c, 3)
            .unwrap()
            .model(DType::F32, &Device::Cpu)
            .unwrap()
    }

    #[test]
    fn a_sample_stops_at_a_stop_token_and_the_others_go_on() {
        let model = tiny();
        let z = Tensor::randn(0f32, 1., model.thought_shape(2), &Device::Cpu).unwrap();
        let (free, _) = generate(&model, &[1, 2, 3], &z, &Sampling::greedy(12), |_, _| {
            Flow::Continue
        })
        .unwrap();
        assert_eq!(free.iter().map(Vec::len).collect::<Vec<_>>(), [12, 12]);
        let stop = free[0][4];
        let first = free[0].iter().position(|&t| t == stop).unwrap();
        let sampling = Sampling {
            stop_tokens: vec![stop],
            ..Sampling::greedy(12)
        };
        let (stopped, ended) =
            generate(&model, &[1, 2, 3], &z, &sampling, |_, _| Flow::Continue).unwrap();
        assert_eq!(ended, Ended::Finished);
        assert_eq!(
            stopped[0],
            free[0][..=first],
            "sample 0 ends with its stop token"
        );
        let other = free[1]
            .iter()
            .position(|&t| t == stop)
            .map_or(12, |p| p + 1);
        assert_eq!(stopped[1], free[1][..other]);
    }
}
