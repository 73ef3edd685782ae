//! Malformed models get one line naming the file and the tensor or key at fault, never a panic.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::{FIXTURE, char_tokenizer, ltm, one_line_error, tiny_config};
use ltm::model::{Checkpoint, Config};

/// Writes a model directory from `config` and `tensors` (and the character tokenizer).
fn write_model(dir: &Path, config: &Config, tensors: &HashMap<String, Tensor>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string(config).unwrap(),
    )
    .unwrap();
    candle_core::safetensors::save(tensors, dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("tokenizer.json"), char_tokenizer()).unwrap();
    dir.to_path_buf()
}

/// A valid model's configuration and weights, for breaking.
fn valid() -> (Config, HashMap<String, Tensor>) {
    let config = tiny_config(101);
    let tensors = Checkpoint::random(config.clone(), 1).unwrap().tensors;
    (config, tensors)
}

/// A model directory of [`valid`]'s configuration and weights after `spoil`, and the
/// temporary directory that holds it.
fn spoilt(
    spoil: impl FnOnce(&mut Config, &mut HashMap<String, Tensor>),
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, mut tensors) = valid();
    spoil(&mut config, &mut tensors);
    let model = write_model(dir.path(), &config, &tensors);
    (dir, model)
}

/// `ltm info` on `model` fails with one line containing every one of `names`.
fn fails_naming(model: &Path, names: &[&str]) {
    let err = one_line_error(&ltm(["info", "--model", model.to_str().unwrap()]));
    for name in names {
        assert!(err.contains(name), "{name:?} not in {err:?}");
    }
}

#[test]
fn a_missing_tensor() {
    let (_dir, model) = spoilt(|_, tensors| {
        tensors.remove("layers.1.cross_attention.wv.weight");
    });
    fails_naming(
        &model,
        &[
            "model.safetensors",
            "layers.1.cross_attention.wv.weight",
            "missing",
        ],
    );
}

#[test]
fn an_extra_or_misshapen_tensor() {
    let cases = [
        (
            "layers.0.adapter.weight",
            4,
            &["layers.0.adapter.weight"][..],
        ),
        (
            "layers.0.ffn_norm.weight",
            33,
            &["layers.0.ffn_norm.weight", "[33]", "[32]"],
        ),
    ];
    for (name, len, named) in cases {
        let (_dir, model) = spoilt(|_, tensors| {
            let t = Tensor::ones(len, candle_core::DType::F32, &Device::Cpu).unwrap();
            tensors.insert(name.into(), t);
        });
        fails_naming(&model, &[&["model.safetensors"], named].concat());
    }
}

#[test]
fn a_nan_weight() {
    let name = "layers.1.attention.wq.weight";
    let (_dir, model) = spoilt(|_, tensors| {
        let mut values = tensors[name]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        values[5] = f32::NAN;
        tensors.insert(
            name.into(),
            Tensor::from_vec(values, tensors[name].dims(), &Device::Cpu).unwrap(),
        );
    });
    fails_naming(&model, &["model.safetensors", name, "NaN"]);
}

#[test]
fn a_truncated_safetensors_file() {
    let (_dir, model) = spoilt(|_, _| {});
    let weights = model.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    fails_naming(&model, &["model.safetensors", "truncated"]);
}

#[test]
fn a_truncated_pt_file() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt.pt");
    let bytes = std::fs::read(format!("{FIXTURE}/ckpt.pt")).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() / 2]).unwrap();
    fails_naming(&ckpt, &["ckpt.pt", "truncated"]);
}

#[test]
fn a_config_whose_heads_do_not_divide_dim() {
    let (_dir, model) = spoilt(|config, _| {
        config.n_heads = 5;
        config.n_kv_heads = Some(5);
    });
    fails_naming(
        &model,
        &[
            model.to_str().unwrap(),
            "config.json",
            "`dim` (32)",
            "`n_heads` (5)",
        ],
    );
}

#[test]
fn a_config_whose_layers_do_not_divide_the_thoughts() {
    let (_dir, model) = spoilt(|config, _| {
        config.max_z_len = 7;
    });
    fails_naming(
        &model,
        &[
            model.to_str().unwrap(),
            "config.json",
            "`max_z_len` (7)",
            "`n_layers` (2)",
        ],
    );
}

#[test]
fn a_tokenizer_larger_than_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(50);
    let tensors = Checkpoint::random(config.clone(), 1).unwrap().tensors;
    let model = write_model(dir.path(), &config, &tensors);
    fails_naming(&model, &["tokenizer.json", "model.safetensors", "97", "50"]);
}
