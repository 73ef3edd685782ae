//! Writing: continue a prompt given a thought, token by token, through the
//! key/value cache. Several thought samples are written as one batch. With the calculator on, a
//! computed result is forced into a sample's text after `<<EXPR=` (see [`calculator`]).

pub mod calculator;
pub mod flaws;
pub mod numbers;

use anyhow::{Result, bail};
use candle_core::{D, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling as Strategy};

use serde::{Deserialize, Serialize};

use crate::model::Ltm;
pub use calculator::{Calculator, Codec};
pub use numbers::NumberGuard;

/// Tokens written per sample unless a front end asks otherwise.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// How to write: the sampling settings of one request (part of the engine's protocol).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleSettings {
    /// Most tokens written per sample.
    pub max_tokens: usize,
    /// A sample ends when its text ends with one of these (the stop string is not kept); the
    /// engine applies them to the decoded text, `generate` works on tokens.
    pub stop: Vec<String>,
    /// The sampler's seed: a request asked again with it writes the same text.
    pub seed: u64,
    /// 0 means greedy (arg-max).
    pub temperature: f64,
    /// Sample among the k likeliest tokens only.
    pub top_k: Option<usize>,
    /// Sample within the likeliest tokens whose probabilities reach p together (nucleus).
    pub top_p: Option<f64>,
    /// GSM8K's calculator: after `<<EXPR=` the exact result and `>>` are forced (needs a [`Codec`]).
    #[serde(default)]
    pub calculator: bool,
    /// Numbers only as the prompt gives them, earlier results or constants (see [`numbers`];
    /// needs a [`Codec`]).
    #[serde(default)]
    pub copy_numbers: bool,
}

/// Greedy, no calculator, [`DEFAULT_MAX_TOKENS`], seed 0, no stop strings.
impl Default for SampleSettings {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
            stop: Vec::new(),
            seed: 0,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            calculator: false,
            copy_numbers: false,
        }
    }
}

/// What [`generate`] writes with: a request's settings and the tokens that end a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub settings: SampleSettings,
    /// Generation of a sample ends after any of these tokens (reported, then the sample stops):
    /// end of text, and the start of a new text.
    pub stop_tokens: Vec<u32>,
    /// The samples whose answers are held back (needs a [`Codec`]).
    pub hold: Hold,
}

/// Which samples may not begin their answer while their calculations leave a number of
/// `question` unused ([`flaws::AnswerHold`]); none by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hold {
    pub question: String,
    /// Whether each sample is held; a sample past the end is not.
    pub samples: Vec<bool>,
}

impl Sampling {
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            settings: SampleSettings {
                max_tokens,
                ..SampleSettings::default()
            },
            stop_tokens: Vec::new(),
            hold: Hold::default(),
        }
    }
}

impl SampleSettings {
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

/// One token of one sample, as it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub sample: usize,
    pub id: u32,
    /// Forced by the calculator rather than sampled (the model still reads it).
    pub computed: bool,
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
/// Every token is handed to `on_token` as soon as it is chosen (or forced by the calculator,
/// which needs `codec` to read the samples' text and write its results).
/// Returns the new tokens of each sample.
pub fn generate(
    model: &Ltm,
    prompt: &[u32],
    z: &Tensor,
    sampling: &Sampling,
    codec: Option<&dyn Codec>,
    mut on_token: impl FnMut(Token) -> Flow,
) -> Result<(Vec<Vec<u32>>, Ended)> {
    if prompt.is_empty() {
        bail!("generation needs a prompt of at least one token");
    }
    let samples = z.dim(0)?;
    let settings = &sampling.settings;
    let mut calculator = match (settings.calculator, codec) {
        (false, _) => None,
        (true, Some(codec)) => Some(Calculator::new(codec, samples)),
        (true, None) => bail!("the calculator needs a tokenizer"),
    };
    let guard = match (settings.copy_numbers, codec) {
        (false, _) => None,
        (true, Some(codec)) => {
            let vocab = model.config().vocab_size;
            Some(NumberGuard::new(codec, vocab, &codec.decode(prompt)?))
        }
        (true, None) => bail!("copying numbers needs a tokenizer"),
    };
    let held = |i: usize| sampling.hold.samples.get(i) == Some(&true);
    let hold = match ((0..samples).any(held), codec) {
        (false, _) => None,
        (true, Some(codec)) => Some(flaws::AnswerHold::new(
            codec,
            model.config().vocab_size,
            &sampling.hold.question,
        )),
        (true, None) => bail!("holding answers back needs a tokenizer"),
    };
    let device = model.device();
    let mut processors: Vec<_> = (0..samples).map(|i| settings.processor(i)).collect();
    let mut written = vec![Vec::new(); samples];
    let mut active = vec![true; samples];
    let mut cache = model.cache(z)?;
    let mut input = Tensor::new(prompt, device)?
        .unsqueeze(0)?
        .repeat((samples, 1))?;
    for _ in 0..settings.max_tokens {
        let logits = model.step(&input, &mut cache)?;
        let mut next = Vec::with_capacity(samples);
        for (i, processor) in processors.iter_mut().enumerate() {
            let row = logits.get(i)?;
            let forced = calculator
                .as_mut()
                .filter(|_| active[i])
                .and_then(|c| c.next_forced(i));
            let id = match forced {
                Some(id) => id,
                None if active[i] => {
                    // The guard and the hold read the text; each has a codec (above).
                    let sample_hold = hold.as_ref().filter(|_| held(i));
                    let text = match codec {
                        Some(codec) if guard.is_some() || sample_hold.is_some() => {
                            codec.decode(&written[i])?
                        }
                        _ => String::new(),
                    };
                    let mut row = row;
                    if let Some(guard) = &guard {
                        row = guard.filter(&row, &text)?;
                    }
                    if let Some(hold) = sample_hold {
                        row = hold.filter(&row, &text)?;
                    }
                    processor.sample(&row)?
                }
                None => row.argmax(D::Minus1)?.to_scalar::<u32>()?,
            };
            next.push(id);
            if !active[i] {
                continue;
            }
            written[i].push(id);
            let computed = forced.is_some();
            match on_token(Token {
                sample: i,
                id,
                computed,
            }) {
                Flow::Cancel => return Ok((written, Ended::Cancelled)),
                Flow::StopSample => active[i] = false,
                Flow::Continue if sampling.stop_tokens.contains(&id) => active[i] = false,
                Flow::Continue => {}
            }
            if let Some(c) = calculator.as_mut() {
                if !active[i] {
                    c.clear(i);
                } else if !computed {
                    c.observe(i, &written[i])?;
                }
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

    pub(super) fn tiny() -> Ltm {
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
        let (free, _) = generate(&model, &[1, 2, 3], &z, &Sampling::greedy(12), None, |_| {
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
            generate(&model, &[1, 2, 3], &z, &sampling, None, |_| Flow::Continue).unwrap();
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

    /// A codec over the tiny model's ids: id → its text in `texts`; encoding finds each
    /// character's id.
    pub(super) struct Table(pub(super) Vec<String>);

    impl Codec for Table {
        fn encode(&self, text: &str) -> Result<Vec<u32>> {
            text.chars()
                .map(|c| {
                    let id = self.0.iter().position(|t| *t == c.to_string());
                    id.map(|i| i as u32)
                        .ok_or_else(|| anyhow::anyhow!("no token for {c:?}"))
                })
                .collect()
        }
        fn decode(&self, ids: &[u32]) -> Result<String> {
            Ok(ids.iter().map(|&i| self.0[i as usize].as_str()).collect())
        }
    }

    /// Writes with `sampling` and the calculator; also returns each token's `computed` flag.
    fn with_calculator(
        model: &Ltm,
        prompt: &[u32],
        z: &Tensor,
        sampling: &Sampling,
        table: &Table,
    ) -> (Vec<Vec<u32>>, Vec<Vec<bool>>) {
        let mut sampling = sampling.clone();
        sampling.settings.calculator = true;
        let mut flags = vec![Vec::new(); z.dim(0).unwrap()];
        let (written, _) = generate(model, prompt, z, &sampling, Some(table), |t| {
            flags[t.sample].push(t.computed);
            Flow::Continue
        })
        .unwrap();
        (written, flags)
    }

    /// Each computable `<<EXPR=` in `written` is followed by its result and `>>`, flagged; every
    /// other token is unflagged. Returns the number of computed tokens.
    fn check_forcing(table: &Table, written: &[u32], flags: &[bool]) -> usize {
        let mut expect = std::collections::VecDeque::new();
        let mut computed = 0;
        for (p, (&id, &flag)) in written.iter().zip(flags).enumerate() {
            match expect.pop_front() {
                Some(e) => {
                    assert_eq!((id, flag), (e, true), "token {p}");
                    computed += 1;
                }
                None => {
                    assert!(!flag, "token {p}");
                    let text = table.decode(&written[..=p]).unwrap();
                    if let Some(r) =
                        calculator::pending_expression(&text).and_then(calculator::compute)
                    {
                        expect = table.encode(&format!("{r}>>")).unwrap().into();
                    }
                }
            }
        }
        computed
    }

    /// Texts for the tiny model's 50 ids: `x`, but the given expressions and, on ids of their
    /// own, the characters of results.
    fn texts(expressions: &[(u32, &str)]) -> Table {
        let mut texts = vec!["x".to_string(); 50];
        for &(id, e) in expressions {
            texts[id as usize] = e.into();
        }
        let mut spare = (0..50u32).filter(|i| expressions.iter().all(|(id, _)| id != i));
        for c in ["4", "2", "0", ".", "7", "5", ">"] {
            texts[spare.next().unwrap() as usize] = c.into();
        }
        Table(texts)
    }

    #[test]
    fn each_sample_of_a_batch_gets_its_own_results() {
        let model = tiny();
        let prompt = [1, 2, 3];
        let z = Tensor::randn(0f32, 1., model.thought_shape(2), &Device::Cpu).unwrap();
        let n = 24;
        let mut sampling = Sampling::greedy(n);
        (sampling.settings.temperature, sampling.settings.seed) = (1.0, 7);
        let (free, _) = generate(&model, &prompt, &z, &sampling, None, |_| Flow::Continue).unwrap();
        // A token only sample 0 writes closes an expression, another one only sample 1 writes,
        // and a third (if any) a malformed one.
        let only = |a: &[u32], b: &[u32]| {
            *a.iter()
                .find(|t| !b.contains(t))
                .unwrap_or_else(|| panic!("{free:?}"))
        };
        let (t0, t1) = (only(&free[0], &free[1]), only(&free[1], &free[0]));
        let (k0, k1) = (
            free[0].iter().position(|&t| t == t0).unwrap(),
            free[1].iter().position(|&t| t == t1).unwrap(),
        );
        assert!(k0 + 5 <= n && k1 + 7 <= n, "{free:?}");
        let mut expressions = vec![(t0, " <<6*7="), (t1, " <<(1+2)/4=")];
        if let Some(&t2) = free[0].iter().find(|&&t| t != t0 && t != t1) {
            expressions.push((t2, " <<1/0="));
        }
        let table = texts(&expressions);
        let (written, flags) = with_calculator(&model, &prompt, &z, &sampling, &table);
        for (i, (k, result)) in [(k0, "42>>"), (k1, "0.75>>")].into_iter().enumerate() {
            let forced = table.encode(result).unwrap();
            let end = k + 1 + forced.len();
            assert_eq!(
                written[i][..=k],
                free[i][..=k],
                "sample {i} as before up to its expression"
            );
            assert_eq!(written[i][k + 1..end], forced, "sample {i} gets {result}");
            assert!(check_forcing(&table, &written[i], &flags[i]) >= forced.len());
        }
    }

    #[test]
    fn the_model_reads_the_forced_tokens() {
        let model = tiny();
        let prompt = [1, 2, 3];
        // A fixed thought: with a random one the next token after the forced ones now and then
        // matched the free run's by chance, failing the last check.
        let mut rng = crate::noise::rng(7);
        let z = crate::noise::gaussian(model.thought_shape(1), &mut rng, &Device::Cpu).unwrap();
        let greedy = Sampling::greedy(16);
        let (free, _) = generate(&model, &prompt, &z, &greedy, None, |_| Flow::Continue).unwrap();
        let t = free[0][0];
        let table = texts(&[(t, "<<6*7=")]);
        let (written, flags) = with_calculator(&model, &prompt, &z, &greedy, &table);
        let forced = table.encode("42>>").unwrap();
        assert_eq!(written[0][1..5], forced);
        assert!(check_forcing(&table, &written[0], &flags[0]) >= 4);
        // Writing on from the prompt and what was written gives the same tokens as writing
        // through the forced ones (up to the next expression, after which both may differ).
        let so_far: Vec<u32> = prompt.iter().chain(&written[0][..5]).copied().collect();
        let (after, _) = generate(&model, &so_far, &z, &Sampling::greedy(4), None, |_| {
            Flow::Continue
        })
        .unwrap();
        let later = &written[0][5..];
        let m = later
            .iter()
            .position(|&id| id == t)
            .map_or(4, |p| p + 1)
            .min(4);
        assert_eq!(after[0][..m], later[..m]);
        assert_ne!(
            after[0][0], free[0][1],
            "the forced tokens changed what comes next: {free:?} vs {written:?}"
        );
    }

    #[test]
    fn without_a_codec_the_calculator_is_an_error_and_off_it_changes_nothing() {
        let model = tiny();
        let z = Tensor::randn(0f32, 1., model.thought_shape(1), &Device::Cpu).unwrap();
        let mut sampling = Sampling::greedy(4);
        sampling.settings.calculator = true;
        let err = generate(&model, &[1, 2], &z, &sampling, None, |_| Flow::Continue).unwrap_err();
        assert!(err.to_string().contains("tokenizer"), "{err}");
        // Every token an expression, but the calculator is off.
        let table = Table((0..50).map(|i| format!("<<{i}+1=")).collect());
        let (free, _) = generate(
            &model,
            &[1, 2],
            &z,
            &Sampling::greedy(6),
            Some(&table),
            |t| {
                assert!(!t.computed);
                Flow::Continue
            },
        )
        .unwrap();
        let (plain, _) = generate(&model, &[1, 2], &z, &Sampling::greedy(6), None, |_| {
            Flow::Continue
        })
        .unwrap();
        assert_eq!(free, plain);
    }
}
