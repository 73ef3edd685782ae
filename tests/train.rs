//! A few steps of the dual-rate trainer on a tiny model: the loss falls, and a resumed run
//! continues exactly as an uninterrupted one.

use candle_core::{DType, Device};
use ltm::train::{Start, ThinkOn, TrainConfig, Trainer};

fn tiny_config() -> TrainConfig {
    let mut c = TrainConfig::read(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ltm-arith-tiny.toml"),
    )
    .unwrap();
    (
        c.model.dim,
        c.model.n_layers,
        c.model.n_heads,
        c.model.n_kv_heads,
    ) = (32, 2, 2, Some(1));
    (
        c.model.max_seq_len,
        c.model.window_size,
        c.model.max_z_len,
        c.model.vocab_size,
    ) = (64, 16, 4, 60);
    (
        c.optim.batch_size,
        c.optim.seq_len,
        c.optim.max_iters,
        c.optim.warmup_iters,
    ) = (4, 32, 40, 2);
    (c.optim.fast_steps, c.optim.learning_rate) = (2, 1e-2);
    // What the recorded losses were made with, whatever the shipped recipe is now.
    (c.optim.min_lr, c.optim.think_on, c.optim.seed) = (3e-4, ThinkOn::Window, 1);
    c
}

/// A toy corpus over 60 token ids with an easy pattern.
fn tokens(n: usize, offset: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * 7 + offset + i / 5) % 60)
        .collect()
}

fn weights(t: &Trainer) -> Vec<(String, Vec<f32>)> {
    let ck = t.checkpoint().unwrap();
    let mut v: Vec<_> = ck
        .tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A tiny run on the toy corpus from `start`, saving into `out`.
fn run(out: &std::path::Path, start: Start) -> Trainer {
    Trainer::new(
        tiny_config(),
        tokens(4000, 0),
        tokens(500, 3),
        vec![],
        out,
        start,
        Device::Cpu,
    )
    .unwrap()
}

/// A new tiny run on the toy corpus, saving into `out`, `steps` steps in.
fn fresh_run(out: &std::path::Path, steps: usize) -> Trainer {
    let mut t = run(out, Start::Fresh);
    for _ in 0..steps {
        t.step().unwrap();
    }
    t
}

#[test]
fn a_few_steps_lower_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = fresh_run(dir.path(), 0);
    let first: f64 = (0..3).map(|_| t.step().unwrap().loss).sum::<f64>() / 3.0;
    for _ in 0..30 {
        t.step().unwrap();
    }
    let last: f64 = (0..3).map(|_| t.step().unwrap().loss).sum::<f64>() / 3.0;
    assert!(last < first * 0.8, "loss went from {first:.3} to {last:.3}");
    assert!(t.validate().unwrap().is_finite());
    let model = t
        .checkpoint()
        .unwrap()
        .model(DType::F32, &Device::Cpu)
        .unwrap();
    assert_eq!(model.config().dim, 32);
}

#[test]
fn resume_continues_exactly_as_an_uninterrupted_run() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let straight = fresh_run(a.path(), 4);
    let first = fresh_run(b.path(), 2);
    first.save(b.path(), false).unwrap();
    drop(first);
    let mut resumed = run(b.path(), Start::Resume);
    assert_eq!(resumed.state.iter, 2);
    for _ in 0..2 {
        resumed.step().unwrap();
    }
    assert_eq!(
        weights(&straight),
        weights(&resumed),
        "resumed weights differ from the uninterrupted run"
    );
}

/// A batch's rows shared among threads (one graph each) learn what one thread learns.
#[test]
fn threads_sharing_a_batch_learn_what_one_thread_learns() {
    let after_two_steps = |threads: usize| {
        let dir = tempfile::tempdir().unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut t = fresh_run(dir.path(), 0);
        let losses: Vec<f64> = pool.install(|| (0..2).map(|_| t.step().unwrap().loss).collect());
        (losses, weights(&t))
    };
    let (one, one_weights) = after_two_steps(1);
    for threads in [2, 3] {
        let (shared, shared_weights) = after_two_steps(threads);
        for (a, b) in one.iter().zip(&shared) {
            assert!(
                (a - b).abs() < 1e-5,
                "{threads} threads: loss {b} against {a}"
            );
        }
        for ((name, a), (_, b)) in one_weights.iter().zip(&shared_weights) {
            let diff = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-5, "{threads} threads: {name} differs by {diff}");
        }
    }
}

/// `--bf16` on the CPU: where it has AMX, the products with weight matrices round their
/// operands to bf16, and training learns what f32 learns to that precision; elsewhere it is
/// refused with the reason.
#[test]
fn bf16_products_learn_what_f32_learns_to_their_precision() {
    let dir = tempfile::tempdir().unwrap();
    let mut bf16 = fresh_run(dir.path(), 0);
    if !ltm::model::ops::amx::available() {
        let refused = bf16.set_compute_dtype(DType::BF16).unwrap_err().to_string();
        assert!(refused.contains("AMX"), "{refused}");
        eprintln!("bf16 products not measured: this CPU or OS has no AMX");
        return;
    }
    bf16.set_compute_dtype(DType::BF16).unwrap();
    let f32_dir = tempfile::tempdir().unwrap();
    let mut f32 = fresh_run(f32_dir.path(), 0);
    let mut largest = 0f64;
    for i in 0..10 {
        let (a, b) = (f32.step().unwrap().loss, bf16.step().unwrap().loss);
        assert!(
            (a - b).abs() < 0.02 * a,
            "iteration {i}: loss {b} against f32's {a}"
        );
        largest = largest.max((a - b).abs());
    }
    assert!(
        largest > 1e-7,
        "bf16 products gave f32's losses exactly: not used"
    );
}

/// The trainer's kernels may change; what it learns may not. The losses of the first 50
/// iterations of the tiny run, as the trainer before the fused training kernels computed them
/// (composite attention, candle's RMSNorm; commit 4aebe5f).
#[test]
fn fifty_iterations_learn_what_the_composite_trainer_learnt() {
    let recorded: Vec<f64> = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/train-losses-50.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut t = fresh_run(dir.path(), 0);
    for (i, want) in recorded.iter().enumerate() {
        let got = t.step().unwrap().loss;
        assert!(
            (got - want).abs() < 1e-4,
            "iteration {i}: loss {got}, the composite trainer's {want}"
        );
    }
}

/// `n` problems `0 question… 30 31 answer…` (0 is BOS, `30 31` the answer marker) whose
/// questions are the same for every `answer_seed` and whose answers are not.
fn problems(n: u32, answer_seed: u32) -> Vec<u32> {
    let mut text = Vec::new();
    for i in 0..n {
        text.push(0);
        text.extend((0..3 + i % 5).map(|j| (i * 7 + j * 3) % 28 + 2));
        text.extend([30, 31]);
        text.extend((0..2 + i % 3).map(|j| (i * 13 + j * 5 + answer_seed) % 28 + 32));
    }
    text
}

#[test]
fn a_thought_fitted_to_the_question_never_sees_the_answer() {
    // The first step's thinking figures, on two corpora that differ only in their answers;
    // `question_share` 1 makes a window run's every batch think on the question.
    let first_thought = |think_on: ThinkOn, question_share: f64, answer_seed: u32| {
        let mut c = tiny_config();
        c.model.bos_token_id = Some(0);
        (c.optim.think_on, c.optim.question_share) = (think_on, question_share);
        let dir = tempfile::tempdir().unwrap();
        let (train, val) = (problems(300, answer_seed), problems(40, answer_seed));
        let mut t = Trainer::new(
            c,
            train,
            val,
            vec![30, 31],
            dir.path(),
            Start::Fresh,
            Device::Cpu,
        )
        .unwrap();
        t.step().unwrap().ppl_bound
    };
    let on_question = first_thought(ThinkOn::Question, 0.0, 0);
    assert_eq!(on_question, first_thought(ThinkOn::Question, 0.0, 1));
    assert_eq!(on_question, first_thought(ThinkOn::Window, 1.0, 1));
    assert_ne!(
        first_thought(ThinkOn::Window, 0.0, 0),
        first_thought(ThinkOn::Window, 0.0, 1)
    );
}

#[test]
fn a_run_started_from_a_model_has_its_weights_and_a_fresh_state() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let trained = fresh_run(a.path(), 3);
    let start_from = |config: TrainConfig| {
        Trainer::new(
            config,
            tokens(4000, 0),
            tokens(500, 3),
            vec![],
            b.path(),
            Start::From(Box::new(trained.checkpoint().unwrap())),
            Device::Cpu,
        )
    };
    let started = start_from(tiny_config()).unwrap();
    assert_eq!(weights(&started), weights(&trained));
    assert_eq!((started.state.iter, started.state.tokens_seen), (0, 0));

    let mut wider = tiny_config();
    wider.model.dim = 64;
    let err = start_from(wider.clone()).err().unwrap().to_string();
    assert!(err.contains("dim = 32, the configuration 64"), "{err}");

    // Twice as wide, heads too: the model widens, its trained norm weights first, shrunk by √2.
    (wider.model.n_heads, wider.model.n_kv_heads) = (4, Some(2));
    let widened = weights(&start_from(wider).unwrap());
    let norm = |w: &[(String, Vec<f32>)]| {
        w.iter()
            .find(|(n, _)| n == "norm.weight")
            .unwrap()
            .1
            .clone()
    };
    let (old_norm, new_norm) = (norm(&weights(&trained)), norm(&widened));
    assert_eq!(new_norm.len(), 2 * old_norm.len());
    assert!(
        old_norm
            .iter()
            .zip(&new_norm)
            .all(|(a, b)| (a / 2f32.sqrt() - b).abs() < 1e-6)
    );

    // Twice as deep: the model grows, its first layers the trained ones.
    let mut deeper = tiny_config();
    (deeper.model.n_layers, deeper.model.max_z_len) = (4, 8);
    let grown = weights(&start_from(deeper).unwrap());
    assert_eq!(grown.len(), 2 + 4 * 14);
    let trained = weights(&trained);
    let find = |w: &[(String, Vec<f32>)], name: &str| w.iter().find(|(n, _)| n == name).cloned();
    let wq = |w: &[(String, Vec<f32>)], layer: usize| {
        let name = format!("layers.{layer}.attention.wq.weight");
        find(w, &name).unwrap().1
    };
    assert_eq!(wq(&trained, 1), wq(&grown, 2));
    let copy_output = find(&grown, "layers.3.feed_forward.w2.weight").unwrap().1;
    assert!(copy_output.iter().all(|&x| x == 0.0));
}

/// Fuzzing the training configuration: 2,000 copies of the shipped one, each with a value
/// swapped for a hostile one, a line dropped or a key misspelt. None may panic; each is either
/// refused with a message naming the file or within every limit.
#[test]
fn no_training_configuration_panics_and_each_is_refused_or_valid() {
    use rand::{Rng, SeedableRng};
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ltm-arith-tiny.toml"),
    )
    .unwrap();
    let lines: Vec<&str> = shipped.lines().collect();
    let hostile = [
        "0",
        "-1",
        "1e308",
        "-1e308",
        "nan",
        "inf",
        "-inf",
        "18446744073709551615",
        "9223372036854775807",
        "100000000000",
        "0.0",
        "1e-300",
        "\"x\"",
        "true",
        "[]",
        "{}",
        "\"question\"",
        "\"\"",
        "3",
        "1",
        "2",
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.toml");
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let (mut refused, mut valid) = (0, 0);
    for _ in 0..2000 {
        let mut mutated: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for _ in 0..rng.random_range(1..=3) {
            let i = rng.random_range(0..mutated.len());
            let Some((key, _)) = mutated[i].split_once(" = ") else {
                continue;
            };
            let key = key.to_string();
            mutated[i] = match rng.random_range(0..10) {
                0 => String::new(),
                1 => format!("{key}x = 1"),
                _ => format!("{key} = {}", hostile[rng.random_range(0..hostile.len())]),
            };
        }
        std::fs::write(&path, mutated.join("\n")).unwrap();
        match TrainConfig::read(&path) {
            Ok(c) => {
                c.validate().unwrap();
                valid += 1;
            }
            Err(e) => {
                assert!(format!("{e:#}").contains("fuzz.toml"), "{e:#}");
                refused += 1;
            }
        }
    }
    assert!(
        refused > 1000 && valid > 0,
        "{refused} refused, {valid} valid"
    );
}
