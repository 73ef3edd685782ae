//! The authors' PyTorch checkpoints: a zip holding a pickle (whose opcodes we interpret, never
//! execute) and raw tensor storages.
#![no_main]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ltm::model::Checkpoint::load(&common::scratch("ckpt.pt", data));
});
