//! A run's text: the training problems (the generator's, with GSM8K's and their renumbered
//! copies where configured) and validation problems, as the few-shot format writes them, and
//! their tokens.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use rand::Rng;
use rand::rngs::StdRng;
use tokenizers::Tokenizer;

use super::DataConfig;
use super::tokenizer::{encode, train_bpe};
use crate::fsutil::{DATA_FILE, MEDIUM_FILE, read_limited, read_text_limited};
use crate::tasks::renumber::Template;
use crate::tasks::step_problems::step_problems;
use crate::tasks::verdict::verdict_example;
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

/// GSM8K's training problems less its validation part (every `gsm8k_val_every`-th line), each
/// followed by `gsm8k_renumbered` copies with new numbers where it has them and by
/// `gsm8k_first_steps` problems of its first calculation and `gsm8k_later_steps` of each later
/// one, where they can be asked.
fn gsm8k_train(path: &Path, d: &DataConfig) -> Result<Vec<Example>> {
    let text =
        read_text_limited(path, DATA_FILE).context("cannot read GSM8K's training problems")?;
    let records = load_jsonl(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut rng = crate::noise::rng(d.seed ^ 0x7265_6e75);
    let val_every = d.gsm8k_val_every;
    let mut out = Vec::new();
    for (_, r) in records
        .into_iter()
        .enumerate()
        .filter(|(i, r)| (val_every == 0 || i % val_every != 0) && r.answer.is_some())
    {
        let answer = r.answer.as_deref().unwrap_or_default();
        out.extend(renumbered(
            &r.question,
            answer,
            d.gsm8k_renumbered,
            &mut rng,
        ));
        let wanted = d.gsm8k_first_steps > 0 || d.gsm8k_later_steps > 0;
        let steps = if wanted {
            step_problems(&r.question, answer)
        } else {
            Vec::new()
        };
        let example = |(_, question, answer): (usize, String, String)| Example { question, answer };
        let (first, later): (Vec<_>, Vec<_>) = steps.into_iter().partition(|(step, ..)| *step == 0);
        if d.gsm8k_first_steps > 0
            && let Some((_, question, answer)) = first.into_iter().next()
        {
            out.extend(renumbered(
                &question,
                &answer,
                d.gsm8k_first_steps - 1,
                &mut rng,
            ));
            out.push(Example { question, answer });
        }
        // A later step's given results are the problem's own: its copies come from copies of
        // the whole problem, where new numbers keep them consistent with the setup.
        if d.gsm8k_later_steps > 0 {
            out.extend(later.into_iter().map(example));
            for whole in renumbered(&r.question, answer, d.gsm8k_later_steps - 1, &mut rng) {
                out.extend(
                    step_problems(&whole.question, &whole.answer)
                        .into_iter()
                        .filter(|(step, ..)| *step > 0)
                        .map(example),
                );
            }
        }
        out.push(Example::from_record(&r));
    }
    Ok(out)
}

/// `copies` draws of a problem with new numbers (none when its numbers cannot be traced).
fn renumbered(question: &str, answer: &str, copies: usize, rng: &mut StdRng) -> Vec<Example> {
    let Some(template) = Template::new(question, answer).filter(|_| copies > 0) else {
        return Vec::new();
    };
    (0..copies)
        .filter_map(|_| {
            let (question, answer, _) = template.draw(rng)?;
            Some(Example { question, answer })
        })
        .collect()
}

/// The training problems: synthetic ones with GSM8K's (when configured) at random places, then
/// verdicts on some of them (when configured) at random places, away from the problems they
/// judge.
fn training_examples(d: &DataConfig) -> Result<Vec<Example>> {
    let mut examples = synthetic(d.train_problems, d.seed);
    if let Some(path) = &d.gsm8k {
        let extra = gsm8k_train(path, d)?;
        examples = scatter(
            examples,
            extra,
            &mut crate::noise::rng(d.seed ^ 0x6753_4d38),
        );
    }
    if d.verdicts > 0.0 {
        let mut rng = crate::noise::rng(d.seed ^ 0x7665_7264);
        let wanted = (d.verdicts * examples.len() as f64).round() as usize;
        let verdicts: Vec<Example> = (0..wanted)
            .filter_map(|k| {
                let judged = &examples[rng.random_range(0..examples.len())];
                verdict_example(judged, k % 2 == 1, &mut rng)
            })
            .collect();
        examples = scatter(examples, verdicts, &mut rng);
    }
    Ok(examples)
}

/// `extra` placed among `examples` at random places, each keeping its order.
fn scatter(examples: Vec<Example>, extra: Vec<Example>, rng: &mut StdRng) -> Vec<Example> {
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
    mixed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::verdict::{RIGHT, WRONG};

    #[test]
    fn verdicts_come_beside_the_problems_half_of_them_on_misreadings() {
        let d = DataConfig {
            train_problems: 400,
            seed: 3,
            verdicts: 0.5,
            ..DataConfig::none()
        };
        let examples = training_examples(&d).unwrap();
        let (verdicts, problems): (Vec<_>, Vec<_>) = examples
            .iter()
            .partition(|e| e.question.contains("\nProposed answer: "));
        assert_eq!(problems.len(), 400);
        let said = |v: &str| verdicts.iter().filter(|e| e.answer == v).count();
        let (right, wrong) = (said(RIGHT), said(WRONG));
        assert_eq!(right + wrong, verdicts.len());
        assert!(right == 100 && wrong > 90, "{right} right, {wrong} wrong");
        // A right verdict proposes the problem's own worked answer, a wrong one another result.
        for v in &verdicts {
            let (question, proposed) = v.question.split_once("\nProposed answer: ").unwrap();
            let judged = problems.iter().find(|p| p.question == question).unwrap();
            let own = judged
                .answer
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            assert_eq!(
                proposed.starts_with(&format!("{own}\n")),
                v.answer == RIGHT,
                "{v:?}"
            );
        }
    }

    #[test]
    fn gsm8k_problems_bring_their_first_steps_and_copies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.jsonl");
        let natalia = r#"{"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?", "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"}"#;
        std::fs::write(&path, format!("{natalia}\n{natalia}\n")).unwrap();
        let config = |renumbered, first_steps| DataConfig {
            gsm8k_val_every: 2, // the first line is validation
            gsm8k_renumbered: renumbered,
            gsm8k_first_steps: first_steps,
            ..DataConfig::none()
        };
        let questions = |d: &DataConfig| -> Vec<String> {
            let examples = gsm8k_train(&path, d).unwrap();
            examples.into_iter().map(|e| e.question).collect()
        };
        assert_eq!(questions(&config(0, 0)).len(), 1);
        let q = questions(&config(1, 3));
        assert_eq!(q.len(), 5, "{q:#?}");
        let asks = |q: &String| q.ends_with("Natalia sold how many clips in May?");
        assert_eq!(q.iter().filter(|q| asks(q)).count(), 3, "{q:#?}");
        // The first step as written, its copies with new numbers, then the problem itself.
        assert!(q[3].contains(" 48 ") && q[4].starts_with("Natalia sold clips to 48 "));
        assert!(!q[1].contains(" 48 ") && !q[2].contains(" 48 "), "{q:#?}");
        // Later steps come after the first, with the results they need given.
        let later = DataConfig {
            gsm8k_later_steps: 2,
            ..config(0, 1)
        };
        let q = questions(&later);
        assert_eq!(q.len(), 4, "{q:#?}");
        let given = |q: &String| {
            q.ends_with("clips in May. Natalia sold how many clips altogether in April and May?")
        };
        assert!(
            given(&q[1]) && q[1].contains(" 48 ") && q[1].contains(" 24 "),
            "{q:#?}"
        );
        // A copy of the whole problem, its given result still half the clips of April.
        assert!(given(&q[2]) && !q[2].contains(" 48 "), "{q:#?}");
        let numbers: Vec<u32> = q[2]
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(numbers.len(), 2, "{q:#?}");
        assert_eq!(numbers[0], 2 * numbers[1], "{q:#?}");
    }
}
