//! `ltm train`: data, tokenizer, the loop with progress, validation, checkpoints and export.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use candle_core::Device;
use tokenizers::Tokenizer;

use super::tokenizer::{EOS_TOKEN, encode, train_bpe};
use super::{DataConfig, HistoryPoint, Start, TrainConfig, TrainState, Trainer};
use crate::chart::{Curve, TrainingPoint, training_curves};
use crate::fsutil::{
    DATA_FILE, MEDIUM_FILE, SMALL_FILE, read_limited, read_text_limited, write_atomic,
};
use crate::model::Checkpoint;
use crate::model::checkpoint::TOKENIZER_FILE;
use crate::tasks::prompt::worked_problem_format;
use crate::tasks::renumber::Template;
use crate::tasks::{ANSWER_PREFIX, BOS, Example, Split, few_shot_prompt, load_jsonl, problems};
use rand::Rng;

/// The training curve, drawn into the output directory at every checkpoint.
pub const LOSS_CHART: &str = "loss.svg";

/// Draws the training curve of `history` (train loss and the validation ELBO perplexity bound
/// against tokens seen) into `out`/loss.svg.
pub fn write_loss_chart(out: &Path, history: &[HistoryPoint]) -> Result<()> {
    let name = out
        .file_name()
        .map_or("this run".into(), |n| n.to_string_lossy().into_owned());
    let path = out.join(LOSS_CHART);
    write_atomic(&path, training_curves(&[curve(name, history)])?.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A run's history as a chart's curve.
pub fn curve(name: String, history: &[HistoryPoint]) -> Curve {
    Curve {
        name,
        points: history
            .iter()
            .map(|p| TrainingPoint {
                tokens_seen: p.tokens_seen as f64,
                train_loss: p.train_loss,
                val_ppl_bound: p.val_ppl_bound,
            })
            .collect(),
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

pub fn read_config(path: &Path) -> Result<TrainConfig> {
    let text =
        read_text_limited(path, SMALL_FILE).context("cannot read the training configuration")?;
    let config: TrainConfig = toml::from_str(&text)
        .with_context(|| format!("{}: not a valid training configuration", path.display()))?;
    config
        .validate()
        .with_context(|| format!("{}: not a configuration that can train", path.display()))?;
    Ok(config)
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
    /// Save a checkpoint at least this often, besides every validation.
    pub save_every: Option<std::time::Duration>,
    /// The decoder's compute type (see [`Trainer::set_compute_dtype`]).
    pub compute: candle_core::DType,
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
    let d = &config.data;
    let train_examples = training_examples(d)?;
    let train_text = corpus(&train_examples);
    let val_text = corpus(&synthetic(d.val_problems, d.seed.wrapping_add(1_000_003)));
    let saved_tokenizer = match (&options.init, resume) {
        (Some(dir), _) => Some(dir.join(TOKENIZER_FILE)),
        (None, true) => Some(out.join(TOKENIZER_FILE)),
        (None, false) => None,
    };
    let tokenizer = if let Some(path) = saved_tokenizer {
        Tokenizer::from_bytes(read_limited(&path, MEDIUM_FILE)?)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?
    } else {
        let lines: Vec<String> = train_text
            .split_inclusive('\n')
            .map(str::to_string)
            .collect();
        train_bpe(&lines, d.vocab_size)?
    };
    config.model.vocab_size = tokenizer.get_vocab_size(true);
    config.model.bos_token_id = tokenizer.token_to_id(BOS);
    config.model.eos_token_id = tokenizer.token_to_id(EOS_TOKEN);
    config.model.prompt_format = Some(worked_problem_format());
    config.model.calculator = true;
    config.model.temperature = Some(0.0);
    config
        .model
        .validate()
        .map_err(|e| anyhow!("bad model configuration: {e}"))?;
    let train_tokens = encode(&tokenizer, &train_text)?;
    let val_tokens = encode(&tokenizer, &val_text)?;
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
    let o = config.optim.clone();
    eprintln!(
        "training {} parameters on {} tokens ({} problems), {} iterations of {}×{} tokens, {} thinking steps each",
        trainer.parameter_count(),
        train_tokens.len(),
        d.train_problems,
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
    while trainer.state.iter < o.max_iters {
        let super::StepReport {
            loss,
            ppl_bound: ppl,
            ..
        } = trainer.step()?;
        loss_sum += loss;
        loss_count += 1;
        let iter = trainer.state.iter;
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
            let eta = (o.max_iters - iter) as f64 * here / (iter - first_iter) as f64;
            eprintln!(
                "iter {iter}/{} · {figures} · {:.0} min elapsed, {:.0} min to go",
                o.max_iters,
                elapsed / 60.0,
                eta / 60.0
            );
        }
        let out_of_time = options
            .stop_after
            .is_some_and(|t| this_start.elapsed() >= t);
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
            trainer.save(out)?;
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
            trainer.save(out)?;
            saved = std::time::Instant::now();
        }
    }
    bar.finish_and_clear();
    write_atomic(
        &out.join("README.md"),
        model_card(&config, &trainer.state, train_tokens.len()).as_bytes(),
    )?;
    eprintln!(
        "done: {} in {}",
        out.display(),
        humantime(trainer.state.elapsed_s)
    );
    Ok(())
}

/// The model card: data, configuration, tokens seen, wall time and the loss curve (a chart,
/// loss.svg, and a table).
fn model_card(config: &TrainConfig, st: &TrainState, corpus_tokens: usize) -> String {
    let (m, o, d) = (&config.model, &config.optim, &config.data);
    let mut card = format!(
        "# Model card\n\nA Latent Thought Model trained by `ltm train` (dual-rate: {fast} fast-learning steps per batch, \
         then one AdamW step on the decoder).\n\n\
         - **Architecture**: dim {dim}, {layers} layers, {heads} heads ({kv} key/value heads), SwiGLU width {ffn}, \
         {z} thought vectors ({zl} per layer), context {ctx}, window {win}, vocabulary {vocab}.\n\
         - **Data**: {problems} synthetic GSM8K-style word problems (`ltm data arith`, training templates, seed {seed}), \
         {corpus} tokens; validation on {val} problems of another seed.\n\
         - **Training**: {iters} iterations of {batch}×{seq} tokens, {seen} tokens seen, {wall}, lr {lr:e} → {min_lr:e}, \
         fast lr {flr0} → {flr1}.\n\n## Loss curve\n\n![training curve]({chart})\n\n| iteration | tokens seen | train loss | validation ELBO perplexity bound | minutes |\n| --- | --- | --- | --- | --- |\n",
        fast = o.fast_steps_label(),
        dim = m.dim,
        layers = m.n_layers,
        heads = m.n_heads,
        kv = m.n_kv_heads(),
        ffn = m.ffn_dim(),
        z = m.max_z_len,
        zl = m.z_per_layer(),
        ctx = m.max_seq_len,
        win = m.window_size,
        vocab = m.vocab_size,
        problems = d.train_problems,
        seed = d.seed,
        corpus = corpus_tokens,
        val = d.val_problems,
        iters = st.iter,
        batch = o.batch_size,
        seq = o.seq_len,
        seen = st.tokens_seen,
        wall = humantime(st.elapsed_s),
        lr = o.learning_rate,
        min_lr = o.min_lr,
        flr0 = o.initial_fast_lr,
        flr1 = o.final_fast_lr,
        chart = LOSS_CHART,
    );
    for p in &st.history {
        card.push_str(&format!(
            "| {} | {} | {:.3} | {:.1} | {:.1} |\n",
            p.iter,
            p.tokens_seen,
            p.train_loss,
            p.val_ppl_bound,
            p.elapsed_s / 60.0
        ));
    }
    card
}

fn humantime(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(iter: usize, train_loss: f64, val_ppl_bound: f64) -> HistoryPoint {
        HistoryPoint {
            iter,
            tokens_seen: iter * 4096,
            train_loss,
            val_ppl_bound,
            elapsed_s: iter as f64,
        }
    }

    #[test]
    fn the_loss_chart_is_written_and_the_card_links_it() {
        let dir = tempfile::tempdir().unwrap();
        write_loss_chart(dir.path(), &[]).unwrap();
        let empty = std::fs::read_to_string(dir.path().join(LOSS_CHART)).unwrap();
        assert!(
            empty.contains("<svg") && empty.contains("no data"),
            "{empty}"
        );
        let history = vec![
            point(100, 4.0, 60.0),
            point(200, 3.0, 25.0),
            point(300, 2.5, f64::INFINITY),
        ];
        write_loss_chart(dir.path(), &history).unwrap();
        let svg = std::fs::read_to_string(dir.path().join(LOSS_CHART)).unwrap();
        for text in [
            "<svg",
            "Training loss",
            "Validation ELBO perplexity bound",
            "tokens seen",
            "1 point left out",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }

        let config =
            read_config(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ltm-arith-tiny.toml"))
                .unwrap();
        let state = TrainState {
            iter: 300,
            tokens_seen: 300 * 4096,
            elapsed_s: 300.0,
            history,
        };
        let card = model_card(&config, &state, 1000);
        assert!(card.contains("![training curve](loss.svg)"), "{card}");
        assert!(card.contains("| 200 | 819200 | 3.000 | 25.0 |"), "{card}");
    }
}
