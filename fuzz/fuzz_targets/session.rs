//! A saved chat session, as `--resume` reads it.
#![no_main]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ltm::tui::session::Session::load(&common::scratch("session.json", data));
});
