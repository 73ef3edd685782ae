//! `ltm train`: the run around the loop: its directory and lock, its corpus and tokenizer, the
//! loop with progress, validation and checkpoints, and at the end its model card.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use candle_core::Device;

use super::card::{humantime, model_card, write_loss_chart};
use super::data::Corpus;
use super::tokenizer::encode;
use super::{HistoryPoint, Start, TrainConfig, Trainer};
use crate::fsutil::write_atomic;
use crate::model::checkpoint::TOKENIZER_FILE;
use crate::model::{Checkpoint, Config};
use crate::tasks::prompt::worked_problem_format;
use crate::tasks::verdict::VERDICT_ASKED;
use crate::tasks::{ANSWER_PREFIX, BOS, EOS};
use tokenizers::Tokenizer;

/// The recipe's model configuration with what its tokenizer decides: the vocabulary, the special
/// tokens, and the format the model is asked in, which is the one its training text is written in.
pub(super) fn trained_model_config(recipe: Config, tokenizer: &Tokenizer) -> Config {
    Config {
        vocab_size: tokenizer.get_vocab_size(true),
        bos_token_id: tokenizer.token_to_id(BOS),
        eos_token_id: tokenizer.token_to_id(EOS),
        prompt_format: Some(worked_problem_format()),
        ..recipe
    }
}
/// How a run is carried out, beside what it learns (the configuration).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Continue the run saved in the output directory.
    pub resume: bool,
    /// Start afresh in an output directory that holds a run, replacing it.
    pub force: bool,
    /// Start from this model directory's weights and tokenizer, with a fresh optimizer.
    pub init: Option<std::path::PathBuf>,
    /// Stop (validated, saved, with a model card) once this process has trained this long: for
    /// machines lent for a fixed time, where a run cut off must still leave its weights.
    pub stop_after: Option<std::time::Duration>,
    /// End by then, the schedule fitted to it: `max_iters` becomes the iteration this
    /// process's pace reaches by then (`fitted_max_iters`).
    pub schedule_deadline: Option<std::time::Instant>,
    /// Save a checkpoint at least this often, besides every validation.
    pub save_every: Option<std::time::Duration>,
    /// Keep each save's weights beside the checkpoint (`saved::write`), to average later.
    pub keep_saves: bool,
    /// The decoder's compute type (see [`Trainer::set_compute_dtype`]).
    pub compute: candle_core::DType,
}

/// Iterations a fitted schedule lets pass before measuring its pace, and between re-estimates.
const PACE_WARMUP: usize = 10;
/// Re-estimates a fitted schedule's pace spans, at most: recent enough to follow a machine
/// that slows down (another run starts beside it), long enough to smooth over validations.
const PACE_MARKS: usize = 20;

/// The iteration a run at `iter` reaches in `left_s` seconds at `pace` iterations a second:
/// where a schedule fitted to the time given ends, never past the configured `max_iters`.
fn fitted_max_iters(iter: usize, pace: f64, left_s: f64, max_iters: usize) -> usize {
    let more = (pace * left_s).floor();
    let more = if more.is_finite() && more > 0.0 {
        more as usize
    } else {
        0
    };
    iter.saturating_add(more).min(max_iters).max(iter)
}

/// Trains (or resumes) the run described by `config` into `out`.
/// Holds `out` for this process (an exclusive lock on `out/.lock`, let go when the process
/// ends, however it ends): two runs writing the same checkpoints would corrupt each other.
fn lock_run(out: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let path = out.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another `ltm train` is writing {}: wait for it to end, or give another --out",
            out.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

pub fn run(mut config: TrainConfig, out: &Path, device: Device, options: RunOptions) -> Result<()> {
    let resume = options.resume;
    // Before the data is made: a setting that cannot run fails at once.
    super::check_compute_dtype(options.compute, &device)?;
    if resume && options.init.is_some() {
        bail!("--resume continues a run and --init starts one: give one of them");
    }
    if !resume && !options.force && super::holds_run(out) {
        bail!(
            "{} already holds a training run: --resume continues it, --force replaces it; or give another --out",
            out.display()
        );
    }
    let _lock = lock_run(out)?;
    if options.force && !resume {
        // No longer a run to resume: a new one until its first save, which replaces the rest.
        super::forget_run(out)?;
    }
    let init = options
        .init
        .as_deref()
        .map(|dir| {
            Checkpoint::load(dir).with_context(|| format!("cannot start from {}", dir.display()))
        })
        .transpose()?;
    // A run that goes on keeps the tokenizer its weights were trained with.
    let saved_tokenizer = match (&options.init, resume) {
        (Some(dir), _) => Some(dir.join(TOKENIZER_FILE)),
        (None, true) => Some(out.join(TOKENIZER_FILE)),
        (None, false) => None,
    };
    let Corpus {
        tokenizer,
        train: train_tokens,
        val: val_tokens,
    } = Corpus::prepare(&config.data, saved_tokenizer.as_deref())?;
    config.model = trained_model_config(config.model, &tokenizer);
    config
        .model
        .validate()
        .map_err(|e| anyhow!("bad model configuration: {e}"))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let tokenizer_json = tokenizer
        .to_string(false)
        .map_err(|e| anyhow!("cannot save the tokenizer: {e}"))?;
    write_atomic(&out.join(TOKENIZER_FILE), tokenizer_json.as_bytes())?;
    write_atomic(
        &out.join("train.toml"),
        toml::to_string_pretty(&config)?.as_bytes(),
    )?;

    let answer_marker = encode(&tokenizer, &format!("\n{ANSWER_PREFIX}"))?;
    let mut trainer = Trainer::new(
        config.clone(),
        train_tokens.clone(),
        val_tokens,
        answer_marker,
        out,
        match init {
            Some(ckpt) => Start::From(Box::new(ckpt)),
            None if resume => Start::Resume,
            None => Start::Fresh,
        },
        device,
    )?;
    trainer.set_compute_dtype(options.compute)?;
    if config.data.verdicts > 0.0 {
        trainer.set_verdict_marker(verdict_marker(&tokenizer)?);
    }
    let mut o = config.optim.clone();
    eprintln!(
        "training {} parameters on {} tokens ({} problems), {} iterations of {}×{} tokens, {} thinking steps each",
        trainer.parameter_count(),
        train_tokens.len(),
        config.data.train_problems,
        o.max_iters,
        o.batch_size,
        o.seq_len,
        o.fast_steps_label()
    );
    let started = trainer.started();
    // Rates count this process's work only, also on a resumed run.
    let (this_start, first_iter, first_tokens) = (
        std::time::Instant::now(),
        trainer.state.iter,
        trainer.state.tokens_seen,
    );
    let bar = crate::progress::bar(o.max_iters as u64, first_iter as u64, "training");
    let live = !bar.is_hidden();
    let mut loss_sum = 0.0;
    let mut loss_count = 0;
    let mut saved = std::time::Instant::now();
    // Where a fitted schedule's recent iterations were reached, past the first ones (which
    // compile kernels and warm caches): its pace is measured over them.
    let mut pace_marks: std::collections::VecDeque<(usize, std::time::Instant)> =
        std::collections::VecDeque::new();
    while trainer.state.iter < o.max_iters {
        let super::StepReport {
            loss,
            ppl_bound: ppl,
            ..
        } = trainer.step()?;
        loss_sum += loss;
        loss_count += 1;
        let iter = trainer.state.iter;
        if let Some(deadline) = options.schedule_deadline
            && iter >= first_iter + PACE_WARMUP
            && iter % PACE_WARMUP == 0
        {
            let now = std::time::Instant::now();
            if let Some(&(from, since)) = pace_marks.front() {
                let pace = (iter - from) as f64 / (now - since).as_secs_f64();
                let left = deadline.saturating_duration_since(now).as_secs_f64();
                o.max_iters = fitted_max_iters(iter, pace, left, config.optim.max_iters);
                trainer.config.optim.max_iters = o.max_iters;
                bar.set_length(o.max_iters as u64);
            }
            if pace_marks.len() == PACE_MARKS {
                pace_marks.pop_front();
            }
            pace_marks.push_back((iter, now));
        }
        let elapsed = started.elapsed().as_secs_f64();
        trainer.state.elapsed_s = elapsed;
        let here = this_start.elapsed().as_secs_f64().max(1e-9);
        let tok_s = (trainer.state.tokens_seen - first_tokens) as f64 / here;
        // The bound in nats: its exponential is astronomically large while the KL of the
        // thought's starting width dominates it.
        let nelbo = ppl.ln();
        let figures = format!("loss {loss:.3} · −ELBO {nelbo:.1} nats/token · {tok_s:.0} tok/s");
        if live {
            bar.set_position(iter as u64);
            bar.set_message(figures);
        } else if iter <= first_iter + 3 || iter % 10 == 0 {
            // A fitted schedule ends at its deadline; the average pace, slow at first, would
            // overstate what is left.
            let eta = match options.schedule_deadline {
                Some(deadline) => deadline
                    .saturating_duration_since(std::time::Instant::now())
                    .as_secs_f64(),
                None => (o.max_iters - iter) as f64 * here / (iter - first_iter) as f64,
            };
            eprintln!(
                "iter {iter}/{} · {figures} · {:.0} min elapsed, {:.0} min to go",
                o.max_iters,
                elapsed / 60.0,
                eta / 60.0
            );
        }
        let out_of_time = options
            .stop_after
            .is_some_and(|t| this_start.elapsed() >= t)
            || options
                .schedule_deadline
                .is_some_and(|d| std::time::Instant::now() >= d);
        if iter % o.eval_interval == 0 || iter == o.max_iters || out_of_time {
            let val = trainer.validate()?;
            let point = HistoryPoint {
                iter,
                tokens_seen: trainer.state.tokens_seen,
                train_loss: loss_sum / loss_count as f64,
                val_ppl_bound: val,
                elapsed_s: elapsed,
            };
            (loss_sum, loss_count) = (0.0, 0);
            bar.suspend(|| {
                eprintln!(
                    "  validation at iter {iter}: ELBO perplexity bound {val:.3} (train loss {:.3})",
                    point.train_loss
                )
            });
            trainer.record(point);
            trainer.save(out, options.keep_saves)?;
            // A chart that cannot be drawn must not stop a long run.
            if let Err(e) = write_loss_chart(out, &trainer.state.history) {
                bar.suspend(|| eprintln!("warning: {e:#}"));
            }
            saved = std::time::Instant::now();
            if out_of_time {
                bar.suspend(|| eprintln!("stopping at iteration {iter}: the time given is up"));
                break;
            }
        } else if options.save_every.is_some_and(|t| saved.elapsed() >= t) {
            trainer.save(out, options.keep_saves)?;
            saved = std::time::Instant::now();
        }
    }
    bar.finish_and_clear();
    if options.schedule_deadline.is_some() {
        // The schedule as fitted, so that `--resume --config OUT/train.toml` goes on with it.
        write_atomic(
            &out.join("train.toml"),
            toml::to_string_pretty(&trainer.config)?.as_bytes(),
        )?;
    }
    write_atomic(
        &out.join("README.md"),
        model_card(&trainer.config, &trainer.state, train_tokens.len()).as_bytes(),
    )?;
    eprintln!(
        "done: {} in {}",
        out.display(),
        humantime(trainer.state.elapsed_s)
    );
    Ok(())
}

/// The tokens after which a verdict begins, as the training text has them.
fn verdict_marker(tokenizer: &Tokenizer) -> Result<Vec<u32>> {
    encode(tokenizer, &format!("{VERDICT_ASKED}\n{ANSWER_PREFIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::verdict::verdict_example;
    use crate::tasks::{Example, few_shot_prompt};

    #[test]
    fn thinking_in_training_leaves_out_exactly_the_verdicts() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ltm-arith-tiny/tokenizer.json");
        let tokenizer = Tokenizer::from_file(&path).unwrap();
        let e = Example {
            question: "Ann has 5 apples and gets 3 more. How many apples does she have?".into(),
            answer: "She has 5+3 = <<5+3=8>>8 apples.\n#### 8".into(),
        };
        let mut rng = crate::noise::rng(1);
        let [right, wrong] = [false, true].map(|w| verdict_example(&e, w, &mut rng).unwrap());
        let text = few_shot_prompt(&[right, e.clone(), wrong], "");
        let ids = encode(&tokenizer, &text).unwrap();
        let bos = tokenizer.token_to_id(BOS);
        let scored =
            crate::train::unverdicted(&ids[1..], &verdict_marker(&tokenizer).unwrap(), bos);
        let left_out: Vec<u32> = ids[1..]
            .iter()
            .zip(&scored)
            .filter(|(_, s)| **s == 0.0)
            .map(|(&t, _)| t)
            .collect();
        let verdicts = format!(" yes\n{BOS} no\n{BOS}");
        assert_eq!(left_out, encode(&tokenizer, &verdicts).unwrap());
    }

    #[test]
    fn a_fitted_schedule_ends_where_the_pace_reaches_within_max_iters() {
        assert_eq!(fitted_max_iters(100, 2.0, 60.0, 10_000), 220);
        assert_eq!(fitted_max_iters(100, 2.0, 60.0, 150), 150);
        // No time left, or a pace that cannot be read: it ends now.
        assert_eq!(fitted_max_iters(100, 2.0, 0.0, 10_000), 100);
        assert_eq!(fitted_max_iters(100, f64::NAN, 60.0, 10_000), 100);
        assert_eq!(fitted_max_iters(100, f64::INFINITY, 60.0, 10_000), 100);
    }
}
