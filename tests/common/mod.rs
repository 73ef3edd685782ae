//! Shared by the command-line tests: small models written on the spot, and running the binary.

#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ltm::model::{Checkpoint, Config};
use serde_json::json;

pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/reference/tiny-gqa"
);

/// A character-level tokenizer: newline and printable ASCII, then `<|beginoftext|>` (97 tokens).
pub fn char_tokenizer() -> String {
    let chars: Vec<char> = std::iter::once('\n').chain(' '..='~').collect();
    let vocab: serde_json::Map<String, serde_json::Value> = chars
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), json!(i)))
        .collect();
    let bos = json!({"id": chars.len(), "content": "<|beginoftext|>", "single_word": false, "lstrip": false,
                     "rstrip": false, "normalized": false, "special": true});
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [bos],
        "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": {"type": "Fuse"},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": []}
    })
    .to_string()
}

pub fn tiny_config(vocab_size: usize) -> Config {
    serde_json::from_value(json!({"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": vocab_size,
                                  "multiple_of": 16, "max_seq_len": 64, "window_size": 16, "max_z_len": 8}))
    .unwrap()
}

/// A model directory with random weights (vocabulary 101) and the character tokenizer.
pub fn tiny_model(dir: &Path) -> PathBuf {
    Checkpoint::random(tiny_config(101), 7)
        .unwrap()
        .save_dir(dir)
        .unwrap();
    std::fs::write(dir.join("tokenizer.json"), char_tokenizer()).unwrap();
    dir.to_path_buf()
}

/// A data directory of the test run's own, so that installing the bundled model never touches
/// the user's.
pub fn data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("ltm-test-data-{}", std::process::id()))
}

/// Runs `ltm ARGS…` on the CPU.
pub fn ltm<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ltm"))
        .env("LTM_DEVICE", "cpu")
        .env("LTM_DATA_DIR", data_dir())
        .args(args)
        .output()
        .expect("run ltm")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The command succeeded; its stdout.
pub fn succeeded(out: &Output) -> String {
    assert!(out.status.success(), "ltm failed: {}", stderr(out));
    stdout(out)
}

/// The command succeeded; its stdout read as one JSON value.
pub fn json_out(out: &Output) -> serde_json::Value {
    serde_json::from_str(succeeded(out).trim()).expect("stdout is one JSON value")
}

/// Sets `key` of the model in `model`'s config.json to `value`.
pub fn set_config(model: &Path, key: &str, value: serde_json::Value) {
    let path = model.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config[key] = value;
    std::fs::write(&path, config.to_string()).unwrap();
}

/// The command exited with `code` (1: an error, 2: bad usage), saying `says` on stderr.
pub fn refused(out: &Output, code: i32, says: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(says), "{says:?} not in: {err}");
}

/// The command failed with one error line (see [`one_line_error`]) that says `says`.
pub fn error_says(out: &Output, says: &str) {
    let err = one_line_error(out);
    assert!(err.contains(says), "{says:?} not in: {err}");
}

/// stderr holds `text`.
pub fn stderr_has(out: &Output, text: &str) {
    let err = stderr(out);
    assert!(err.contains(text), "{text:?} not in: {err}");
}

/// The command failed with exit code 1 and exactly one line on stderr: `error: …`; returns it.
pub fn one_line_error(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit code 1; stderr: {err}"
    );
    assert!(
        err.starts_with("error: ") && err.trim_end().lines().count() == 1,
        "not one error line: {err:?}"
    );
    err.trim_end().to_string()
}
