//! A thought saved by `--save-thought`, read back by `--thought`.
#![no_main]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = common::scratch("thought.safetensors", data);
    let _ = ltm::think::Posterior::load(&path, &candle_core::Device::Cpu);
});
