//! A user's theme file in the config directory's themes/.
#![no_main]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = common::scratch_dir().join("themes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mine.toml"), data).unwrap();
    let _ = ltm::tui::theme::Themes::load(Some(&dir), false);
});
