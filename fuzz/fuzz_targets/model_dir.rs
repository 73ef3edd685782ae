//! A model directory: config.json, model.safetensors and tokenizer.json, as `--model DIR` loads
//! it (the config validated, the weights checked against it, the tokenizer against the model).
#![no_main]
mod common;

use ltm::device::{DecodeWeights, DeviceChoice};
use ltm::runtime::ModelSource;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (config, rest) = common::split(data);
    let (weights, tokenizer) = common::split(rest);
    let dir = common::scratch_dir().join("model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer).unwrap();
    let source = ModelSource {
        path: dir,
        tokenizer: None,
        device: DeviceChoice::Cpu,
        decode_weights: DecodeWeights::Full,
    };
    let _ = source.load_files();
});
