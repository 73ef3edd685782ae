//! A training run's configuration (read from TOML, checked before anything runs), its saved
//! state, and the schedules of both learning rates and of the thinking budget.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::model::Config;

/// Everything a run needs, read from TOML. Model sizes use the reference's names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: Config,
    pub data: DataConfig,
    pub optim: OptimConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Training problems drawn from `ltm data arith`'s generator (train templates).
    pub train_problems: usize,
    pub val_problems: usize,
    pub seed: u64,
    /// Size of the BPE vocabulary to train (the model's `vocab_size` is set from it).
    pub vocab_size: usize,
    /// GSM8K's training file (JSONL with `question` and a worked `answer`), mixed into the
    /// training text; a path relative to the working directory.
    #[serde(default)]
    pub gsm8k: Option<PathBuf>,
    /// Every `gsm8k_val_every`-th GSM8K problem (0-based line index divisible by it) is kept out
    /// of training as the GSM8K validation set.
    #[serde(default = "default_gsm8k_val_every")]
    pub gsm8k_val_every: usize,
    /// Copies of each GSM8K training problem with new numbers (`tasks::renumber`), beside
    /// the problem itself; problems whose numbers cannot be traced get none.
    #[serde(default)]
    pub gsm8k_renumbered: usize,
    /// Problems made of each GSM8K training problem's first calculation, asked on its own
    /// (`tasks::step_problems`): people's sentences over one step. The first as written, the
    /// others with new numbers.
    #[serde(default)]
    pub gsm8k_first_steps: usize,
    /// The same for each later calculation that can be asked, with the earlier results it
    /// needs given as sentences ("Natalia sold 24 clips in May.").
    #[serde(default)]
    pub gsm8k_later_steps: usize,
    /// Verdict examples (`tasks::verdict`) beside the training problems, as a share of them: a
    /// problem drawn at random with its worked answer or a misreading of it proposed, and
    /// whether that is right, half of each, at random places. A model trained on them judges
    /// its check's drafts so (the model's `verdicts`).
    #[serde(default)]
    pub verdicts: f64,
}

impl TrainConfig {
    /// The configuration in the TOML file `path`, checked.
    pub fn read(path: &Path) -> Result<Self> {
        use crate::fsutil::{SMALL_FILE, read_text_limited};
        let text = read_text_limited(path, SMALL_FILE)
            .context("cannot read the training configuration")?;
        let config: Self = toml::from_str(&text)
            .with_context(|| format!("{}: not a valid training configuration", path.display()))?;
        config
            .validate()
            .with_context(|| format!("{}: not a configuration that can train", path.display()))?;
        Ok(config)
    }

    /// Refuses, naming the key, a setting that cannot train (an empty batch, no validation),
    /// trains the wrong way (a negative learning rate) or would exhaust the machine.
    pub fn validate(&self) -> Result<()> {
        use crate::limits::{LR, Limit, STEPS};
        self.model
            .validate()
            .map_err(|e| anyhow::anyhow!("[model]: {e}"))?;
        let (d, o) = (&self.data, &self.optim);
        let count = Limit::<usize>::within;
        let counts = [
            (count("data.train_problems", 0, 5_000_000), d.train_problems),
            (count("data.val_problems", 0, 1_000_000), d.val_problems),
            (count("data.gsm8k_renumbered", 0, 100), d.gsm8k_renumbered),
            (count("data.gsm8k_first_steps", 0, 100), d.gsm8k_first_steps),
            (count("data.gsm8k_later_steps", 0, 100), d.gsm8k_later_steps),
            (count("optim.batch_size", 1, 4096), o.batch_size),
            (count("optim.seq_len", 1, self.model.max_seq_len), o.seq_len),
            (count("optim.max_iters", 1, 100_000_000), o.max_iters),
            (count("optim.warmup_iters", 0, o.max_iters), o.warmup_iters),
            (
                count("optim.eval_interval", 1, 100_000_000),
                o.eval_interval,
            ),
            (count("optim.eval_batches", 1, 100_000), o.eval_batches),
            (STEPS.named("optim.fast_steps"), o.fast_steps),
            (STEPS.named("optim.max_fast_steps"), o.max_fast_steps),
        ];
        for (limit, value) in counts {
            limit.check(value).map_err(anyhow::Error::msg)?;
        }
        let (within, above) = (Limit::<f64>::within, Limit::<f64>::above);
        let reals = [
            (above("optim.learning_rate", 0.0, 1.0), o.learning_rate),
            (within("optim.min_lr", 0.0, o.learning_rate), o.min_lr),
            (within("optim.weight_decay", 0.0, 10.0), o.weight_decay),
            (within("optim.beta1", 0.0, 0.9999), o.beta1),
            (within("optim.beta2", 0.0, 0.9999), o.beta2),
            (above("optim.grad_clip", 0.0, 1e6), o.grad_clip),
            (LR.named("optim.initial_fast_lr"), o.initial_fast_lr),
            (LR.named("optim.final_fast_lr"), o.final_fast_lr),
            (
                within("optim.question_loss_weight", 0.0, 100.0),
                o.question_loss_weight,
            ),
            (
                within("optim.thought_question_weight", 0.0, 100.0),
                o.thought_question_weight.unwrap_or(0.0),
            ),
            (within("optim.unthought_share", 0.0, 1.0), o.unthought_share),
            (within("optim.question_share", 0.0, 1.0), o.question_share),
            (within("data.verdicts", 0.0, 1.0), d.verdicts),
        ];
        for (limit, value) in reals {
            limit.check(value).map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }
}

fn default_gsm8k_val_every() -> usize {
    15
}

impl DataConfig {
    /// No generated data: for runs given their tokens directly (benchmarks).
    pub fn none() -> Self {
        Self {
            train_problems: 0,
            val_problems: 0,
            seed: 0,
            vocab_size: 0,
            gsm8k: None,
            gsm8k_val_every: default_gsm8k_val_every(),
            gsm8k_renumbered: 0,
            gsm8k_first_steps: 0,
            gsm8k_later_steps: 0,
            verdicts: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub batch_size: usize,
    /// Tokens per training sequence (inputs; one more is read for the targets).
    pub seq_len: usize,
    pub max_iters: usize,
    pub warmup_iters: usize,
    pub learning_rate: f64,
    pub min_lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub grad_clip: f64,
    /// Fast-learning steps per batch during training.
    pub fast_steps: usize,
    /// When above `fast_steps`, each batch thinks for a power of two times `fast_steps`, drawn
    /// uniformly up to this many: the decoder then learns to read thoughts of every budget the
    /// app offers, not only of the one it was trained with (0: always `fast_steps`).
    #[serde(default)]
    pub max_fast_steps: usize,
    /// Share of batches whose thought is not fitted (0 steps, the app's `off`): the decoder also
    /// learns to answer without a thought, so that one it cannot read steers it less (0: none;
    /// on the bundled model it did not make thinking pay: see its model card).
    #[serde(default)]
    pub unthought_share: f64,
    pub initial_fast_lr: f64,
    pub final_fast_lr: f64,
    pub eval_interval: usize,
    pub eval_batches: usize,
    pub seed: u64,
    /// Weight of the question tokens in the decoder's loss (answer tokens weigh 1): below 1
    /// spends the updates on what the model must get right, the answers, while it still learns
    /// the questions' text that thinking is fitted to.
    #[serde(default = "one")]
    pub question_loss_weight: f64,
    /// Weight of the tokens a batch's thought was fitted to (with `think_on = "question"`, the
    /// window's first question) when that batch thinks; unset: `question_loss_weight`. At 0 the
    /// decoder is never taught to read a question back out of the thought fitted to it, only
    /// to answer from it.
    #[serde(default)]
    pub thought_question_weight: Option<f64>,
    /// Iteration at which this stage's warm-up and cosine begin: a run resumed with a larger
    /// `max_iters` starts a new schedule here instead of jumping back up the old one.
    #[serde(default)]
    pub stage_start: usize,
    /// The text each batch's thoughts are fitted to.
    #[serde(default)]
    pub think_on: ThinkOn,
    /// With `think_on = "window"`, the share of batches whose thought is fitted to the
    /// question alone, as the app fits it (drawn per iteration): the decoder learns to read
    /// what a thought can carry and also the thought it is given when asked (0: none).
    #[serde(default)]
    pub question_share: f64,
}

/// What fast learning fits a training window's thought to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkOn {
    /// Every token of the window, answers included (the reference's training).
    #[default]
    Window,
    /// The window's first question, up to and including `Answer:`: what the app fits a
    /// thought to. The decoder still learns from the whole window, so it learns to read a
    /// thought that knows the question and not the answer, as it is given when asked.
    Question,
}

impl OptimConfig {
    /// The reference trainer's settings (AdamW lr 4e-4 → 4e-5, betas 0.9/0.95, weight decay
    /// 0.1, clip 1.0, fast lr 0.3) for batches of `batch_size` × `seq_len` tokens.
    pub fn reference(batch_size: usize, seq_len: usize, fast_steps: usize) -> Self {
        Self {
            batch_size,
            seq_len,
            max_iters: 10_000,
            warmup_iters: 100,
            learning_rate: 4e-4,
            min_lr: 4e-5,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            grad_clip: 1.0,
            fast_steps,
            max_fast_steps: 0,
            unthought_share: 0.0,
            initial_fast_lr: 0.3,
            final_fast_lr: 0.3,
            eval_interval: 1_000,
            eval_batches: 1,
            seed: 0,
            question_loss_weight: 1.0,
            thought_question_weight: None,
            stage_start: 0,
            think_on: ThinkOn::Window,
            question_share: 0.0,
        }
    }

    /// The budgets a batch may think for (see [`OptimConfig::max_fast_steps`]).
    fn fast_step_budgets(&self) -> Vec<usize> {
        let budgets: Vec<usize> =
            std::iter::successors(Some(self.fast_steps.max(1)), |s| Some(s * 2))
                .take_while(|&s| s <= self.max_fast_steps)
                .collect();
        if budgets.len() < 2 {
            vec![self.fast_steps]
        } else {
            budgets
        }
    }

    /// The fast-learning steps per batch, for logs and model cards: "1", or "1–16" when drawn.
    pub fn fast_steps_label(&self) -> String {
        let drawn = match self.fast_step_budgets()[..] {
            [first, .., last] => format!("{first}–{last} (powers of two)"),
            _ => self.fast_steps.to_string(),
        };
        if self.unthought_share > 0.0 {
            format!(
                "{drawn}, none in {:.0} % of batches",
                self.unthought_share * 100.0
            )
        } else {
            drawn
        }
    }
}

fn one() -> f64 {
    1.0
}

/// Where a run is, saved with every checkpoint so that `--resume` continues it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub iter: usize,
    pub tokens_seen: usize,
    pub elapsed_s: f64,
    pub history: Vec<HistoryPoint>,
}

/// One validation point of the loss curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub iter: usize,
    pub tokens_seen: usize,
    pub train_loss: f64,
    pub val_ppl_bound: f64,
    pub elapsed_s: f64,
}

/// Learning rate at `iter`: linear warm-up from `stage_start`, then cosine down to `min_lr` at
/// `max_iters`.
pub fn learning_rate(o: &OptimConfig, iter: usize) -> f64 {
    let iter = iter.saturating_sub(o.stage_start);
    if iter < o.warmup_iters {
        return o.learning_rate * (iter + 1) as f64 / o.warmup_iters as f64;
    }
    let span = (o.max_iters.saturating_sub(o.stage_start))
        .saturating_sub(o.warmup_iters)
        .max(1);
    let progress = ((iter - o.warmup_iters) as f64 / span as f64).min(1.0);
    o.min_lr + 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()) * (o.learning_rate - o.min_lr)
}

/// Fast-learning steps of the batch of `iter` (see [`OptimConfig::max_fast_steps`]), drawn from
/// the run's seed and the iteration so that a resumed run draws the same.
pub(super) fn fast_steps(o: &OptimConfig, iter: usize) -> usize {
    let budgets = o.fast_step_budgets();
    let mut rng = crate::noise::rng(o.seed ^ (iter as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let budget = budgets[rng.random_range(0..budgets.len())];
    if o.unthought_share > 0.0 && rng.random_bool(o.unthought_share) {
        0
    } else {
        budget
    }
}

/// The text the thought of the batch of `iter` is fitted to (see
/// [`OptimConfig::question_share`]), drawn as [`fast_steps`] draws, from a stream of its own.
pub(super) fn think_on(o: &OptimConfig, iter: usize) -> ThinkOn {
    let mut rng = crate::noise::rng(!o.seed ^ (iter as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    if o.think_on == ThinkOn::Window && o.question_share > 0.0 && rng.random_bool(o.question_share)
    {
        ThinkOn::Question
    } else {
        o.think_on
    }
}

/// The fast learning rate moves linearly over training.
pub(super) fn fast_lr(o: &OptimConfig, iter: usize) -> f64 {
    let t = iter as f64 / o.max_iters.max(1) as f64;
    o.initial_fast_lr + t * (o.final_fast_lr - o.initial_fast_lr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_steps_are_powers_of_two_up_to_the_maximum_and_fixed_by_iteration() {
        let text = std::fs::read_to_string("models/ltm-arith-tiny.toml").unwrap();
        let mut o = toml::from_str::<TrainConfig>(&text).unwrap().optim;
        (o.fast_steps, o.max_fast_steps) = (1, 0);
        assert!((0..50).all(|i| fast_steps(&o, i) == 1));
        o.max_fast_steps = 20;
        let drawn: Vec<usize> = (0..400).map(|i| fast_steps(&o, i)).collect();
        for budget in [1, 2, 4, 8, 16] {
            assert!(drawn.contains(&budget), "{budget} never drawn");
        }
        assert!(drawn.iter().all(|s| [1, 2, 4, 8, 16].contains(s)));
        assert_eq!(
            drawn,
            (0..400).map(|i| fast_steps(&o, i)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_share_of_batches_thinks_not_at_all() {
        let text = std::fs::read_to_string("models/ltm-arith-tiny.toml").unwrap();
        let mut config = toml::from_str::<TrainConfig>(&text).unwrap();
        config.optim.unthought_share = 0.25;
        let unthought = (0..4000)
            .filter(|&i| fast_steps(&config.optim, i) == 0)
            .count();
        assert!((800..1200).contains(&unthought), "{unthought} of 4000");
        assert!((0..4000).all(|i| [0, 1].contains(&fast_steps(&config.optim, i))));
        config.optim.unthought_share = 1.5;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("optim.unthought_share"), "{err}");
    }

    #[test]
    fn a_share_of_window_batches_thinks_on_the_question() {
        let text = std::fs::read_to_string("models/ltm-arith-tiny.toml").unwrap();
        let mut config = toml::from_str::<TrainConfig>(&text).unwrap();
        config.optim.think_on = ThinkOn::Window;
        assert!((0..1000).all(|i| think_on(&config.optim, i) == ThinkOn::Window));
        config.optim.question_share = 0.25;
        let on_question = |o: &OptimConfig| {
            (0..4000)
                .filter(|&i| think_on(o, i) == ThinkOn::Question)
                .count()
        };
        let drawn = on_question(&config.optim);
        assert!((800..1200).contains(&drawn), "{drawn} of 4000");
        config.optim.think_on = ThinkOn::Question;
        assert_eq!(on_question(&config.optim), 4000);
        config.optim.question_share = -0.1;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("optim.question_share"), "{err}");
    }

    #[test]
    fn a_resumed_stage_warms_up_and_anneals_on_its_own_schedule() {
        let text = std::fs::read_to_string("models/ltm-arith-tiny.toml").unwrap();
        let mut o = toml::from_str::<TrainConfig>(&text).unwrap().optim;
        (o.warmup_iters, o.learning_rate, o.min_lr) = (10, 1e-3, 1e-4);
        (o.stage_start, o.max_iters) = (1500, 2500);
        assert!((learning_rate(&o, 1500) - 1e-4).abs() < 1e-12);
        assert!((learning_rate(&o, 1509) - 1e-3).abs() < 1e-12);
        assert!(learning_rate(&o, 2000) < learning_rate(&o, 1600));
        assert!((learning_rate(&o, 2500) - 1e-4).abs() < 1e-12);
        // Without a stage the schedule starts at iteration 0.
        o.stage_start = 0;
        assert!((learning_rate(&o, 9) - 1e-3).abs() < 1e-12);
    }
}
