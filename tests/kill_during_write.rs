//! The real binary killed (SIGKILL) at random moments while it writes: the file it was replacing
//! is always whole (the old one or the new one), and the next run leaves no temporary file.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};

/// Runs `ltm ARGS` to the end, returning how long it took.
fn run_whole(args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = common::ltm(args);
    common::succeeded(&out);
    start.elapsed()
}

/// Starts `ltm ARGS` and kills it after `after`.
fn run_killed(args: &[&str], after: Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ltm"))
        .env("LTM_DEVICE", "cpu")
        .env("LTM_DATA_DIR", common::data_dir())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let _ = child.kill();
    child.wait().unwrap();
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

/// Kills `ltm ARGS` at `kills` random moments of a whole run, each after `reset`;
/// after each, `check` sees whole files. Then one run to the end leaves no temporary in `dir`.
/// Returns how many kills left a temporary behind.
fn kill_at_random_moments(
    kills: usize,
    args: &[&str],
    dir: &Path,
    seed: u64,
    reset: impl Fn(),
    check: impl Fn(usize),
) -> usize {
    reset();
    let whole = run_whole(args);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut left_behind = 0;
    for i in 0..kills {
        reset();
        run_killed(args, whole.mul_f64(rng.random_range(0.0..1.2)));
        check(i);
        left_behind += temporaries(dir).len().min(1);
    }
    reset();
    run_whole(args);
    assert_eq!(temporaries(dir), Vec::<String>::new(), "temporaries left");
    left_behind
}

#[test]
fn convert_killed_mid_write_leaves_no_model_or_a_whole_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let ckpt = format!("{}/ckpt.pt", common::FIXTURE);
    let tokenizer = dir.path().join("tokenizer.json");
    std::fs::write(&tokenizer, common::char_tokenizer()).unwrap();
    let (out_arg, tokenizer_arg) = (out.to_str().unwrap(), tokenizer.to_str().unwrap());
    let args = [
        "convert",
        &ckpt,
        "--out",
        out_arg,
        "--tokenizer",
        tokenizer_arg,
    ];
    run_whole(&args);
    let files = [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "prompts.json",
    ];
    let whole: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    let reset = || {
        if out.exists() {
            std::fs::remove_dir_all(&out).unwrap();
        }
    };
    let left = kill_at_random_moments(100, &args, dir.path(), 1, reset, |i| {
        // The directory is renamed into place complete, or not at all.
        if out.exists() {
            for (file, want) in files.iter().zip(&whole) {
                assert_eq!(
                    &std::fs::read(out.join(file)).unwrap(),
                    want,
                    "kill {i}: {file}"
                );
            }
        }
    });
    eprintln!("convert: 100 kills, {left} left a temporary directory behind");
}

#[test]
fn data_killed_mid_write_leaves_the_old_or_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("problems.jsonl");
    let path = file.to_str().unwrap();
    let old_args = [
        "data", "arith", "--n", "20000", "--seed", "1", "--out", path,
    ];
    run_whole(&old_args);
    let old = std::fs::read(&file).unwrap();
    let new_args = [
        "data", "arith", "--n", "20000", "--seed", "2", "--out", path,
    ];
    let new = {
        run_whole(&new_args);
        std::fs::read(&file).unwrap()
    };
    assert_ne!(old, new);
    let reset = || std::fs::write(&file, &old).unwrap();
    let left = kill_at_random_moments(100, &new_args, dir.path(), 2, reset, |i| {
        let now = std::fs::read(&file).unwrap();
        assert!(now == old || now == new, "kill {i}: a file that is neither");
    });
    eprintln!("data: 100 kills, {left} left a temporary file behind");
}

/// A training run of a tiny model that checkpoints every 4 iterations.
fn tiny_training(dir: &Path, max_iters: usize) -> std::path::PathBuf {
    let config = dir.join(format!("train-{max_iters}.toml"));
    let text = format!(
        "[model]\ndim = 32\nn_layers = 2\nn_heads = 2\nn_kv_heads = 1\nvocab_size = 300\nmultiple_of = 16\n\
         max_seq_len = 64\nwindow_size = 64\nmax_z_len = 4\n\
         [data]\ntrain_problems = 300\nval_problems = 20\nseed = 1\nvocab_size = 300\n\
         [optim]\nbatch_size = 4\nseq_len = 64\nmax_iters = {max_iters}\nwarmup_iters = 2\nlearning_rate = 3e-3\n\
         min_lr = 3e-4\nweight_decay = 0.1\nbeta1 = 0.9\nbeta2 = 0.95\ngrad_clip = 1.0\nfast_steps = 1\n\
         initial_fast_lr = 0.3\nfinal_fast_lr = 0.3\neval_interval = 4\neval_batches = 1\nseed = 1\n"
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// The iteration stamped in a checkpoint file's safetensors metadata.
fn stamped_iter(file: &Path) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    header.metadata().as_ref().unwrap()["iter"].parse().unwrap()
}

#[test]
fn train_killed_mid_checkpoint_keeps_a_consistent_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (out, start) = (dir.path().join("run"), dir.path().join("start"));
    let (short, long) = (tiny_training(dir.path(), 8), tiny_training(dir.path(), 24));
    // A run checkpointed at iteration 8, the start of every resumed run below.
    run_whole(&train_args(&short, &start, &[]));
    let args = train_args(&long, &out, &["--resume"]);
    let reset = || {
        if out.exists() {
            std::fs::remove_dir_all(&out).unwrap();
        }
        std::fs::create_dir(&out).unwrap();
        for entry in std::fs::read_dir(&start).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), out.join(entry.file_name())).unwrap();
        }
    };
    let left = kill_at_random_moments(40, &args, &out, 3, reset, |i| {
        // The next reader finishes a save the kill interrupted during its renames.
        let info = common::ltm(["info", "--model", out.to_str().unwrap()]);
        common::succeeded(&info);
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("train_state.json")).unwrap()).unwrap();
        let iter = state["iter"].as_u64().unwrap();
        assert!(
            iter >= 8 && iter.is_multiple_of(4),
            "kill {i}: iteration {iter}"
        );
        for file in ["model.safetensors", "optimizer.safetensors"] {
            assert_eq!(stamped_iter(&out.join(file)), iter, "kill {i}: {file}");
        }
    });
    eprintln!("train: 40 kills, {left} left a temporary file behind");
}

/// `ltm train` of `config` into `out`, with `more` arguments.
fn train_args<'a>(config: &'a Path, out: &'a Path, more: &[&'a str]) -> Vec<&'a str> {
    let paths = [config, out].map(|p| p.to_str().unwrap());
    let mut a = vec!["train", "--config", paths[0], "--out", paths[1]];
    a.extend(more);
    a
}

/// `ltm train` of `config` into `out` for about a second (`--resume`d when `resume`).
fn briefly<'a>(config: &'a Path, out: &'a Path, resume: bool) -> Vec<&'a str> {
    let resumed: &[&str] = if resume { &["--resume"] } else { &[] };
    train_args(config, out, &[&["--minutes", "0.02"], resumed].concat())
}

/// A run given minutes stops by the clock, validated and saved with its model card, and a
/// resumed run continues from there.
#[test]
fn train_stops_when_its_time_is_up_and_resumes_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = (tiny_training(dir.path(), 1_000_000), dir.path().join("run"));
    let args = |resume: bool| briefly(&config, &out, resume);
    let state = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("train_state.json")).unwrap()).unwrap()
    };
    let took = run_whole(&args(false));
    assert!(took < Duration::from_secs(60), "stopped after {took:?}");
    let first = state()["iter"].as_u64().unwrap();
    assert!((1..1_000_000).contains(&first));
    assert_eq!(stamped_iter(&out.join("model.safetensors")), first);
    let history = state()["history"].as_array().unwrap().clone();
    assert_eq!(history.last().unwrap()["iter"].as_u64(), Some(first));
    assert!(out.join("README.md").exists());
    // Without --resume the run is not replaced.
    let again = common::ltm(args(false));
    assert!(!again.status.success());
    let err = common::stderr(&again);
    assert!(err.contains("already holds a training run"), "{err}");
    assert_eq!(state()["iter"].as_u64(), Some(first));
    run_whole(&args(true));
    assert!(state()["iter"].as_u64().unwrap() > first);
    // --force replaces it: a new run, its training time counted from 0 again.
    let resumed_s = state()["elapsed_s"].as_f64().unwrap();
    let mut forced = args(false);
    forced.push("--force");
    run_whole(&forced);
    let forced_s = state()["elapsed_s"].as_f64().unwrap();
    assert!(forced_s < resumed_s, "{forced_s} s after {resumed_s} s");
}

/// `--keep-saves` keeps each save's weights under its iteration, and `ltm convert` of several
/// writes their mean (in bf16 with `--bf16`): a model that loads.
#[test]
fn kept_saves_average_into_a_model() {
    use candle_core::{DType, Device};
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = (tiny_training(dir.path(), 8), dir.path().join("run"));
    run_whole(&train_args(&config, &out, &["--keep-saves"]));
    let kept = [4, 8].map(|i| out.join(format!("model-iter{i}.safetensors")));
    assert_eq!(kept.each_ref().map(|f| stamped_iter(f)), [4, 8]);
    let last = std::fs::read(out.join("model.safetensors")).unwrap();
    assert_eq!(
        std::fs::read(&kept[1]).unwrap(),
        last,
        "the last kept save is the checkpoint's"
    );
    let mean = dir.path().join("mean");
    let paths = [&mean, &kept[0], &kept[1]].map(|p| p.to_str().unwrap());
    run_whole(&["convert", "--bf16", "--out", paths[0], paths[1], paths[2]]);
    let load = |f: &Path| candle_core::safetensors::load(f, &Device::Cpu).unwrap();
    let (a, b, m) = (
        load(&kept[0]),
        load(&kept[1]),
        load(&mean.join("model.safetensors")),
    );
    let name = "layers.0.attention.wq.weight";
    assert_eq!(m[name].dtype(), DType::BF16);
    let values = |t: &candle_core::Tensor| -> Vec<f32> {
        t.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let expected = ((&a[name] + &b[name]).unwrap() / 2.0)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    assert_eq!(values(&m[name]), values(&expected));
    assert_ne!(values(&a[name]), values(&b[name]), "the saves differ");
    run_whole(&["info", "--model", paths[0]]);
}

/// A run given its minutes with `--schedule-minutes` ends where its pace puts the end of the
/// schedule, far short of `max_iters`, and records the fitted `max_iters` for a resume.
#[test]
fn a_fitted_schedule_ends_by_the_clock_at_its_fitted_end() {
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = (tiny_training(dir.path(), 1_000_000), dir.path().join("run"));
    let took = run_whole(&train_args(&config, &out, &["--schedule-minutes", "0.1"]));
    assert!(took < Duration::from_secs(60), "stopped after {took:?}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("train_state.json")).unwrap()).unwrap();
    let reached = state["iter"].as_u64().unwrap();
    let recipe: toml::Table = std::fs::read_to_string(out.join("train.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let fitted = recipe["optim"]["max_iters"].as_integer().unwrap() as u64;
    assert!(fitted < 1_000_000, "max_iters not fitted: {fitted}");
    // Ended at the fitted end, or by the clock close to it (the pace is re-estimated every 10
    // iterations).
    assert!(
        reached <= fitted && reached * 10 >= fitted * 8,
        "reached {reached} of a schedule fitted to {fitted}"
    );
}

/// Two runs never write one directory: the second is refused while the first runs, and a run
/// that was killed leaves nothing behind that stops a resume.
#[test]
fn a_second_train_on_a_running_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = (tiny_training(dir.path(), 1_000_000), dir.path().join("run"));
    let args = |resume: bool| briefly(&config, &out, resume);
    run_whole(&args(false));
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_ltm"))
        .env("LTM_DEVICE", "cpu")
        .args(args(true).iter().take(5))
        .arg("--resume")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it trains: its progress reaches stderr.
    let mut stderr = std::io::BufReader::new(first.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("iter ") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0);
    }
    let second = common::ltm(args(true));
    assert!(!second.status.success());
    let err = common::stderr(&second);
    assert!(err.contains("another `ltm train` is writing"), "{err}");
    first.kill().unwrap();
    first.wait().unwrap();
    run_whole(&args(true));
}
