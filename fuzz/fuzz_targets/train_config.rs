//! A training configuration (`ltm train --config`): refused with a message, or valid.
#![no_main]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(config) = ltm::train::run::read_config(&common::scratch("train.toml", data)) {
        config.validate().expect("a configuration read is a valid one");
    }
});
