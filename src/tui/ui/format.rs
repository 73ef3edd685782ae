//! How things are written on screen: figures, durations and step counts, word wrap, and the
//! one-line summaries of a run that more than one region shows.

use ratatui::style::{Modifier, Style};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::engine::ThinkLevel;
use crate::tui::app::App;
use crate::tui::session::{Run, Status};

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// A figure with about four significant digits.
pub(super) fn num(x: f64) -> String {
    match x.abs() {
        a if a >= 1e6 => format!("{x:.2e}"),
        a if a >= 1000.0 => format!("{x:.0}"),
        a if a >= 100.0 => format!("{x:.1}"),
        a if a >= 1.0 => format!("{x:.2}"),
        _ => format!("{x:.3}"),
    }
}

pub(super) fn count(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

pub(super) fn ms(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.2} s", x / 1000.0)
    } else {
        format!("{x:.0} ms")
    }
}

pub(super) fn spinner(app: &App) -> &'static str {
    SPINNER[(app.tick % SPINNER.len() as u64) as usize]
}

/// "medium · 2 steps" for a thinking level, "3 steps" for a budget that is none.
pub(super) fn level_label(steps: usize, level: Option<ThinkLevel>) -> String {
    match level {
        Some(ThinkLevel::Max) => format!("max · up to {}", steps_label(steps)),
        Some(level) => format!("{level} · {}", steps_label(steps)),
        None => steps_label(steps),
    }
}

/// The label of the thinking the settings ask for next.
pub(super) fn next_thinking(app: &App) -> String {
    let d = app.defaults();
    level_label(
        app.settings.choices.steps(&d),
        app.settings.choices.level(&d),
    )
}

/// `text` in at most `width` columns: cut with "…" when it is wider.
pub(super) fn ellipsized(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut w = 0;
    for ch in text.chars() {
        let cw = ch.width().unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        out.push(ch);
        w += cw;
    }
    out.push('…');
    out
}

/// Word-wrap `text` to `width` columns (explicit newlines kept, long words broken).
pub(super) fn wrap(text: &str, width: usize) -> Vec<String> {
    wrap_ranges(text, width)
        .into_iter()
        .map(|(a, b)| text[a..b].to_string())
        .collect()
}

/// [`wrap`], as the byte range of `text` that each line shows.
pub(super) fn wrap_ranges(text: &str, width: usize) -> Vec<(usize, usize)> {
    let width = width.max(1);
    let trim_end = |a: usize, b: usize| a + text[a..b].trim_end().len();
    let mut out = Vec::new();
    let mut at = 0;
    for para in text.split('\n') {
        // The line being filled is text[start..end].
        let (mut start, mut end) = (at, at);
        let mut w = 0;
        for word in para.split_inclusive(' ') {
            let ww = word.trim_end().width();
            if w + ww > width && w > 0 {
                out.push((start, trim_end(start, end)));
                (start, end) = (at, at);
                w = 0;
            }
            for (i, ch) in word.char_indices() {
                let cw = ch.width().unwrap_or(0);
                if w + cw > width && ch != ' ' {
                    out.push((start, end));
                    start = at + i;
                    w = 0;
                }
                end = at + i + ch.len_utf8();
                w += cw;
            }
            at += word.len();
        }
        out.push((start, trim_end(start, end)));
        at += 1;
    }
    out
}

/// One line about how a run thought and wrote.
pub(super) fn run_meta(run: &Run) -> String {
    let steps = run.request.think.steps;
    let level = run.samples.iter().find_map(|s| s.done.as_ref()?.level);
    let mut parts = vec![if steps == 0 {
        "no thinking".to_string()
    } else {
        level_label(steps, level)
    }];
    if let Some(fit) = run.fit() {
        parts.push(fit.summary());
    }
    if run.think_ms() > 0.0 {
        parts.push(format!("thought {}", ms(run.think_ms())));
    }
    if let Some(d) = run.samples.iter().find_map(|s| s.done.as_ref()) {
        parts.push(format!("{:.1} tok/s", d.tok_s));
    }
    parts.join(" · ")
}

pub(super) fn live_label(app: &App, run: &Run) -> Option<(String, Style)> {
    let t = &app.theme;
    let think = t.fg(t.thinking);
    let label = match run.status {
        Status::Queued => return Some(("queued".into(), t.fg(t.muted))),
        Status::Sent => format!("{} waiting for the engine…", spinner(app)),
        Status::Thinking => {
            let s = run.think.last();
            let step = s.map_or(0, |s| s.step + 1);
            let fig = run
                .fit()
                .map(|f| format!(" · {}", f.brief()))
                .unwrap_or_default();
            format!(
                "{} thinking · step {step}/{}{fig}",
                spinner(app),
                run.request.think.steps
            )
        }
        Status::Cancelled => {
            return Some((
                "cancelled".into(),
                t.fg(t.muted).add_modifier(Modifier::ITALIC),
            ));
        }
        Status::Failed => return Some(("failed".into(), t.fg(t.error))),
        Status::Writing | Status::Done => return None,
    };
    Some((label, think))
}

/// "1 step", "16 steps".
pub(super) fn steps_label(n: usize) -> String {
    if n == 1 {
        "1 step".to_string()
    } else {
        format!("{n} steps")
    }
}
