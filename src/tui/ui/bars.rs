//! The one-row bars: the header (model, thinking level, mode tabs) and the status line
//! (what runs now, or a flash message, and the main keys).

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::draw_left_right;
use super::format::{count, live_label, ms, next_thinking, spinner};
use crate::tui::app::App;
use crate::tui::session::{Level, Mode, Status};

pub(super) fn draw_header(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let sep = Span::styled(" │ ", t.fg(t.border));
    let mut model = Vec::new();
    let mut details_span = None;
    match &app.model {
        Some(m) => {
            model.push(Span::styled(
                m.name.clone(),
                Style::default().add_modifier(Modifier::BOLD),
            ));
            details_span = Some(Span::styled(
                format!(
                    " · {} · {} params · {}×{} z",
                    m.device,
                    count(m.parameters),
                    m.n_layers,
                    m.z_per_layer
                ),
                t.fg(t.muted),
            ));
        }
        None if app.engine_stopped.is_some() => model.push(Span::styled(
            "no model (it could not be loaded)",
            t.fg(t.error),
        )),
        None => model.push(Span::styled(
            format!("{} loading model…", spinner(app)),
            t.fg(t.warning),
        )),
    }
    let tabs = |titles: bool| {
        let mut tabs = Vec::new();
        for (i, mode) in Mode::ALL.iter().enumerate() {
            let current = *mode == app.session.mode;
            let style = if current { t.selected() } else { t.fg(t.muted) };
            let tab = if titles || current {
                format!(" F{} {} ", i + 1, mode.title())
            } else {
                format!(" F{} ", i + 1)
            };
            tabs.push(Span::styled(tab, style));
        }
        tabs.push(Span::raw(" "));
        Line::from(tabs)
    };
    let left = |details: bool, word: bool| {
        let mut spans = vec![
            Span::styled(" ◆ ltm", t.fg(t.accent).add_modifier(Modifier::BOLD)),
            sep.clone(),
        ];
        spans.extend(model.iter().cloned());
        spans.extend(details.then(|| details_span.clone()).flatten());
        spans.push(sep.clone());
        if word {
            spans.push(Span::styled("thinking ", t.fg(t.muted)));
        }
        spans.push(Span::styled(
            next_thinking(app),
            t.fg(t.thinking).add_modifier(Modifier::BOLD),
        ));
        Line::from(spans)
    };
    // Narrow terminals lose the model's details first, then the other tabs' titles, then the
    // word "thinking": the thinking level stays in view.
    let fallbacks = [
        (true, true, true),
        (false, true, true),
        (false, false, true),
        (false, false, false),
    ];
    let (l, r) = fallbacks
        .iter()
        .map(|&(details, titles, word)| (left(details, word), tabs(titles)))
        .find(|(l, r)| l.width() + r.width() <= usize::from(area.width))
        .unwrap_or_else(|| (left(false, false), tabs(false)));
    draw_left_right(frame, area, l, r);
}

pub(super) fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let mut left = vec![Span::raw(" ")];
    if let Some(f) = &app.flash {
        let c = match f.level {
            Level::Info => t.success,
            Level::Warning => t.warning,
            Level::Error => t.error,
        };
        left.push(Span::styled(
            f.text.clone(),
            t.fg(c).add_modifier(Modifier::BOLD),
        ));
    } else if let Some(run) = app.in_flight() {
        let text = match (run.status, app.writing_since) {
            (Status::Writing, Some(since)) => {
                let secs = app.now.saturating_duration_since(since).as_secs_f64();
                let rate = if secs > 0.05 {
                    format!(" · {:.1} tok/s", run.tokens() as f64 / secs)
                } else {
                    String::new()
                };
                format!("{} writing · {} tokens{rate}", spinner(app), run.tokens())
            }
            _ => live_label(app, run).map_or_else(String::new, |(l, _)| l),
        };
        left.push(Span::styled(text, t.fg(t.thinking)));
        left.push(Span::styled(
            format!(" · thought {}", ms(run.think_ms())),
            t.fg(t.muted),
        ));
    } else if let Some(run) = app.think_run() {
        let rate = run
            .samples
            .iter()
            .find_map(|s| s.done.as_ref())
            .map(|d| format!(" · {:.1} tok/s", d.tok_s));
        let text = format!(
            "ready · thought {}{}",
            ms(run.think_ms()),
            rate.unwrap_or_default()
        );
        left.push(Span::styled(text, t.fg(t.muted)));
    } else {
        left.push(Span::styled("ready", t.fg(t.muted)));
    }
    let left = Line::from(left);
    let left_width = left.width() as u16;
    frame.render_widget(Paragraph::new(left), area);

    let hints: &[(&str, &str)] = if app.busy() {
        &[("Esc", "stop"), ("PgUp/PgDn", "scroll"), ("Ctrl+C", "quit")]
    } else {
        &[
            ("Enter", "send"),
            ("Alt+Enter", "newline"),
            ("F4", "settings"),
            ("?", "help"),
            ("Ctrl+C", "quit"),
        ]
    };
    let mut right = Vec::new();
    for (key, what) in hints {
        right.push(Span::styled(*key, t.fg(t.accent)));
        right.push(Span::styled(format!(" {what}  "), t.fg(t.muted)));
    }
    let width: u16 = right.iter().map(|s| s.width() as u16).sum();
    if area.width >= width + left_width + 2 {
        frame.render_widget(
            Paragraph::new(Line::from(right)).alignment(Alignment::Right),
            area,
        );
    }
}
