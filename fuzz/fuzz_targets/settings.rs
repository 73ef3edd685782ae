//! The app's settings.toml (what parses is kept, the rest reported).
#![no_main]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ltm::tui::settings::Settings::load(&common::scratch("settings.toml", data));
});
