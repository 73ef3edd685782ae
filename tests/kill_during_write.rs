//! The real binary killed (SIGKILL) at random moments while it writes: the file it was replacing
//! is always whole (the old one or the new one), and the next run leaves no temporary file.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};

const KILLS_PER_COMMAND: usize = 100;

/// Runs `ltm ARGS` to the end, returning how long it took.
fn run_whole(args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = common::ltm(args);
    assert!(out.status.success(), "{}", common::stderr(&out));
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

/// Kills `ltm ARGS` at `KILLS_PER_COMMAND` random moments of a whole run, each after `reset`;
/// after each, `check` sees whole files. Then one run to the end leaves no temporary in `dir`.
/// Returns how many kills left a temporary behind.
fn kill_at_random_moments(
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
    for i in 0..KILLS_PER_COMMAND {
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
    let left = kill_at_random_moments(&args, dir.path(), 1, reset, |i| {
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
    eprintln!("convert: {KILLS_PER_COMMAND} kills, {left} left a temporary directory behind");
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
    let left = kill_at_random_moments(&new_args, dir.path(), 2, reset, |i| {
        let now = std::fs::read(&file).unwrap();
        assert!(now == old || now == new, "kill {i}: a file that is neither");
    });
    eprintln!("data: {KILLS_PER_COMMAND} kills, {left} left a temporary file behind");
}
