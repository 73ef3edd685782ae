//! A run's text: the training problems (the generator's, with GSM8K's and their renumbered
//! copies where configured) and validation problems, as the few-shot format writes them, and
//! their tokens.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use rand::Rng;
use tokenizers::Tokenizer;

use super::DataConfig;
use super::tokenizer::{encode, train_bpe};
use crate::fsutil::{DATA_FILE, MEDIUM_FILE, read_limited, read_text_limited};
use crate::tasks::renumber::Template;
use crate::tasks::{BOS, Example, Split, few_shot_prompt, load_jsonl, problems};

/// A run's tokens and the tokenizer that made them.
pub struct Corpus {
    pub tokenizer: Tokenizer,
    pub train: Vec<u32>,
    pub val: Vec<u32>,
}

impl Corpus {
    /// The problems of `d` as tokens of the tokenizer in `tokenizer` (a run's own, when it
    /// continues), else of one trained on the training text.
    pub fn prepare(d: &DataConfig, tokenizer: Option<&Path>) -> Result<Self> {
        let train_text = corpus(&training_examples(d)?);
        let val_text = corpus(&synthetic(d.val_problems, d.seed.wrapping_add(1_000_003)));
        let tokenizer = match tokenizer {
            Some(path) => Tokenizer::from_bytes(read_limited(path, MEDIUM_FILE)?)
                .map_err(|e| anyhow!("{}: {e}", path.display()))?,
            None => {
                let lines: Vec<String> = train_text
                    .split_inclusive('\n')
                    .map(str::to_string)
                    .collect();
                train_bpe(&lines, d.vocab_size)?
            }
        };
        Ok(Self {
            train: encode(&tokenizer, &train_text)?,
            val: encode(&tokenizer, &val_text)?,
            tokenizer,
        })
    }
}

/// Training text: problems as the few-shot format writes them, one after another.
fn corpus(examples: &[Example]) -> String {
    // A prompt with every example as a shot and an empty final question is exactly the examples' text.
    let text = few_shot_prompt(examples, "");
    text.trim_end_matches(&format!("{BOS}Question: \n"))
        .to_string()
}

fn synthetic(n: usize, seed: u64) -> Vec<Example> {
    problems(n, seed, Split::Train)
        .iter()
        .map(Example::from)
        .collect()
}

/// GSM8K's training problems less its validation part (every `val_every`-th line), each
/// followed by `renumbered` copies with new numbers where it has them.
fn gsm8k_train(
    path: &Path,
    val_every: usize,
    renumbered: usize,
    seed: u64,
) -> Result<Vec<Example>> {
    let text =
        read_text_limited(path, DATA_FILE).context("cannot read GSM8K's training problems")?;
    let records = load_jsonl(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut rng = crate::noise::rng(seed ^ 0x7265_6e75);
    let mut out = Vec::new();
    for (_, r) in records
        .into_iter()
        .enumerate()
        .filter(|(i, r)| (val_every == 0 || i % val_every != 0) && r.answer.is_some())
    {
        let answer = r.answer.as_deref().unwrap_or_default();
        if let Some(template) = Template::new(&r.question, answer).filter(|_| renumbered > 0) {
            out.extend((0..renumbered).filter_map(|_| {
                let (question, answer, _) = template.draw(&mut rng)?;
                Some(Example { question, answer })
            }));
        }
        out.push(Example::from_record(&r));
    }
    Ok(out)
}

/// The training problems: synthetic ones with GSM8K's (when configured) at random places.
fn training_examples(d: &DataConfig) -> Result<Vec<Example>> {
    let examples = synthetic(d.train_problems, d.seed);
    let Some(path) = &d.gsm8k else {
        return Ok(examples);
    };
    let extra = gsm8k_train(path, d.gsm8k_val_every, d.gsm8k_renumbered, d.seed)?;
    let mut rng = crate::noise::rng(d.seed ^ 0x6753_4d38);
    let mut places: Vec<usize> = extra
        .iter()
        .map(|_| rng.random_range(0..=examples.len()))
        .collect();
    places.sort_unstable();
    let mut extra = extra.into_iter().zip(places).peekable();
    let mut mixed = Vec::with_capacity(examples.len() + extra.len());
    for (i, e) in examples.into_iter().enumerate() {
        while let Some((x, _)) = extra.next_if(|(_, at)| *at <= i) {
            mixed.push(x);
        }
        mixed.push(e);
    }
    mixed.extend(extra.map(|(x, _)| x));
    Ok(mixed)
}
