//! Progress bars for the long commands (eval, ppl, train): drawn on stderr only when it is a
//! terminal (indicatif hides them otherwise), with the rate and the time left.

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A bar of `len` steps named `what`, starting at `at` (a resumed run).
pub fn bar(len: u64, at: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len).with_position(at);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} {bar:24.cyan/blue} {pos}/{len} · {rate} · {elapsed} elapsed, {eta} to go · {msg}",
        )
        .expect("a valid template")
        .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.1}/s", state.per_sec());
        })
        .progress_chars("█▉▊▋▌▍▎▏ "),
    );
    bar.set_prefix(what.to_string());
    // A resumed run starts at `at`: that is not progress made at some speed.
    bar.reset_eta();
    bar
}
