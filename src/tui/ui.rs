//! Rendering: `draw(frame, &App)` turns the state into a frame and changes nothing but the
//! transcript's "lines seen" figure, which paging keys read.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Bar, BarChart, BarGroup, Block, BorderType, Borders, Chart, Clear, Dataset, GraphType,
    LineGauge, List, ListItem, ListState, Paragraph, Wrap,
};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::app::{App, Focus, Overlay, Target};
use super::session::{Entry, Level, Mode, Run, SampleText, Status};
use super::settings::{Field, LADDER, preset_name};
use super::theme::Theme;
use crate::engine::protocol::ThinkStep;
use crate::tasks::prompt::answer_of;
use crate::tasks::vote;

/// Below this the layout cannot work; a message says so instead.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub fn draw(frame: &mut Frame, app: &App) {
    let t = &app.theme;
    let area = frame.area();
    frame.render_widget(Block::default().style(t.base()), area);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = vec![
            Line::styled(
                "terminal too small",
                t.fg(t.warning).add_modifier(Modifier::BOLD),
            ),
            Line::styled(
                format!(
                    "{}×{} — needs at least {MIN_WIDTH}×{MIN_HEIGHT}",
                    area.width, area.height
                ),
                t.fg(t.muted),
            ),
        ];
        let y = area.y + area.height.saturating_sub(2) / 2;
        let rect = Rect {
            y,
            height: 2.min(area.height),
            ..area
        };
        frame.render_widget(Paragraph::new(msg).alignment(Alignment::Center), rect);
        return;
    }

    let (input_rows, _) = app.input.layout(area.width.saturating_sub(2) as usize);
    let input_h = input_rows.len().clamp(1, 6) as u16 + 2;
    let run = app.think_run();
    let full = run
        .is_some_and(|r| app.think_expanded || matches!(r.status, Status::Sent | Status::Thinking));
    let spare = area.height - 2 - input_h;
    let think_h = if full {
        (spare * 45 / 100).clamp(7, 15).min(spare - 3)
    } else {
        1
    };
    let [header, main, think, input, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(think_h),
        Constraint::Length(input_h),
        Constraint::Length(1),
    ])
    .areas(area);

    draw_header(frame, header, app);
    if app.session.mode == Mode::FewShot {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(36), Constraint::Min(20)]).areas(main);
        draw_examples(frame, left, app);
        draw_transcript(frame, right, app);
    } else {
        draw_transcript(frame, main, app);
    }
    match run {
        Some(run) if full => draw_thinking(frame, think, app, run),
        _ => draw_think_summary(frame, think, app, run),
    }
    draw_input(frame, input, app);
    draw_status(frame, status, app);
    match app.overlay {
        Some(Overlay::Help) => draw_help(frame, area, t),
        Some(Overlay::Settings { selected }) => draw_settings(frame, area, app, selected),
        None => {}
    }
}

// ---------------------------------------------------------------- formatting

/// A figure with about four significant digits.
pub fn num(x: f64) -> String {
    match x.abs() {
        a if a >= 1e6 => format!("{x:.2e}"),
        a if a >= 1000.0 => format!("{x:.0}"),
        a if a >= 100.0 => format!("{x:.1}"),
        a if a >= 1.0 => format!("{x:.2}"),
        _ => format!("{x:.3}"),
    }
}

fn count(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn ms(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.2} s", x / 1000.0)
    } else {
        format!("{x:.0} ms")
    }
}

fn spinner(app: &App) -> &'static str {
    SPINNER[(app.tick % SPINNER.len() as u64) as usize]
}

fn preset_label(steps: usize) -> String {
    match preset_name(steps) {
        Some(name) => format!("{name} · {}", steps_label(steps)),
        None => steps_label(steps),
    }
}

/// Word-wrap `text` to `width` columns (explicit newlines kept, long words broken).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    wrap_ranges(text, width)
        .into_iter()
        .map(|(a, b)| text[a..b].to_string())
        .collect()
}

/// [`wrap`], as the byte range of `text` that each line shows.
fn wrap_ranges(text: &str, width: usize) -> Vec<(usize, usize)> {
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

/// The winning figures of a run's latest step: the sample with the lowest −ELBO.
fn best_step(run: &Run) -> Option<&ThinkStep> {
    run.last_steps()
        .into_iter()
        .min_by(|a, b| a.nelbo.total_cmp(&b.nelbo))
}

/// One line about how a run thought and wrote.
fn run_meta(run: &Run) -> String {
    let steps = run.request.think.steps;
    let mut parts = vec![if steps == 0 {
        "no thinking".to_string()
    } else {
        preset_label(steps)
    }];
    if let Some(s) = best_step(run) {
        parts.push(format!("−ELBO {}", num(s.nelbo)));
        parts.push(format!("ppl ≤ {}", num(s.ppl_bound)));
    }
    if run.think_ms() > 0.0 {
        parts.push(format!("thought {}", ms(run.think_ms())));
    }
    if let Some(d) = run.samples.iter().find_map(|s| s.done) {
        parts.push(format!("{:.1} tok/s", d.tok_s));
    }
    parts.join(" · ")
}

fn live_label(app: &App, run: &Run) -> Option<(String, Style)> {
    let t = &app.theme;
    let think = t.fg(t.thinking);
    let label = match run.status {
        Status::Queued => return Some(("queued".into(), t.fg(t.muted))),
        Status::Sent => format!("{} waiting for the engine…", spinner(app)),
        Status::Thinking => {
            let s = run.think.last();
            let step = s.map_or(0, |s| s.step + 1);
            let fig = best_step(run)
                .map(|s| format!(" · −ELBO {}", num(s.nelbo)))
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

// ---------------------------------------------------------------- header and status

fn draw_header(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let sep = Span::styled(" │ ", t.fg(t.border));
    let mut spans = vec![
        Span::styled(" ◆ ltm", t.fg(t.accent).add_modifier(Modifier::BOLD)),
        sep.clone(),
    ];
    match &app.model {
        Some(m) => {
            spans.push(Span::styled(
                m.name.clone(),
                Style::default().add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::styled(
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
        None => spans.push(Span::styled(
            format!("{} loading model…", spinner(app)),
            t.fg(t.warning),
        )),
    }
    spans.push(sep);
    let steps = app.settings.steps(app.defaults());
    spans.push(Span::styled("thinking ", t.fg(t.muted)));
    spans.push(Span::styled(
        preset_label(steps),
        t.fg(t.thinking).add_modifier(Modifier::BOLD),
    ));
    let mut tabs = Vec::new();
    for (i, mode) in Mode::ALL.iter().enumerate() {
        let style = if *mode == app.session.mode {
            t.selected()
        } else {
            t.fg(t.muted)
        };
        tabs.push(Span::styled(
            format!(" F{} {} ", i + 1, mode.title()),
            style,
        ));
    }
    tabs.push(Span::raw(" "));
    draw_left_right(frame, area, Line::from(spans), Line::from(tabs));
}

/// One row: `right` flush right, `left` in what remains (cut, never drawn under `right`).
fn draw_left_right(frame: &mut Frame, area: Rect, left: Line, right: Line) {
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(right.width() as u16)])
            .areas(area);
    frame.render_widget(Paragraph::new(left), left_area);
    frame.render_widget(Paragraph::new(right), right_area);
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
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
            .find_map(|s| s.done)
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

// ---------------------------------------------------------------- transcript

/// Lines being built for the transcript, wrapped to `width`.
struct Lines<'a> {
    t: &'a Theme,
    width: usize,
    out: Vec<Line<'static>>,
}

impl Lines<'_> {
    fn text(&mut self, indent: usize, text: &str, style: Style) {
        for l in wrap(text, self.width.saturating_sub(indent)) {
            self.out.push(Line::from(vec![
                Span::raw(" ".repeat(indent)),
                Span::styled(l, style),
            ]));
        }
    }

    /// A sample's text, wrapped, its start trimmed (and its end with `trim_end`), then `cursor`;
    /// what the calculator wrote is drawn in the theme's computed style.
    fn sample(
        &mut self,
        indent: usize,
        s: &SampleText,
        trim_end: bool,
        cursor: &str,
        style: Style,
    ) {
        let body = if trim_end {
            s.text.trim()
        } else {
            s.text.trim_start()
        };
        let start = s.text.len() - s.text.trim_start().len();
        let end = start + body.len();
        let shown = format!("{body}{cursor}");
        let computed: Vec<(usize, usize)> = s
            .computed
            .iter()
            .map(|&(a, b)| (a.clamp(start, end) - start, b.clamp(start, end) - start))
            .filter(|&(a, b)| a < b && shown.is_char_boundary(a) && shown.is_char_boundary(b))
            .collect();
        let calc = style.patch(self.t.computed());
        for (a, b) in wrap_ranges(&shown, self.width.saturating_sub(indent)) {
            let mut spans = vec![Span::raw(" ".repeat(indent))];
            let mut at = a;
            for &(ca, cb) in &computed {
                let (ca, cb) = (ca.max(at), cb.min(b));
                if ca >= cb {
                    continue;
                }
                if at < ca {
                    spans.push(Span::styled(shown[at..ca].to_string(), style));
                }
                spans.push(Span::styled(shown[ca..cb].to_string(), calc));
                at = cb;
            }
            if at < b || spans.len() == 1 {
                spans.push(Span::styled(shown[at..b].to_string(), style));
            }
            self.out.push(Line::from(spans));
        }
    }

    /// A label with muted figures after it, or below it when they do not fit.
    fn head(&mut self, label: Span<'static>, meta: String) {
        let style = self.t.fg(self.t.muted);
        if label.width() + 2 + meta.width() <= self.width {
            self.push(vec![label, Span::raw("  "), Span::styled(meta, style)]);
        } else {
            self.push(vec![label]);
            self.text(3, &meta, style);
        }
    }

    fn push(&mut self, spans: Vec<Span<'static>>) {
        self.out.push(Line::from(spans));
    }
}

fn transcript_lines(app: &App, width: usize) -> Vec<Line<'static>> {
    let t = &app.theme;
    let mut l = Lines {
        t,
        width,
        out: Vec::new(),
    };
    for entry in &app.session.entries {
        if !l.out.is_empty() {
            l.out.push(Line::default());
        }
        match entry {
            Entry::User(text) => {
                l.push(vec![Span::styled(
                    "▍you",
                    t.fg(t.user).add_modifier(Modifier::BOLD),
                )]);
                l.text(2, text, t.fg(t.foreground));
            }
            Entry::Reply(run) => {
                l.head(
                    Span::styled("◆ ltm", t.fg(t.accent).add_modifier(Modifier::BOLD)),
                    run_meta(run),
                );
                reply_body(&mut l, app, run);
            }
            Entry::FewShot { question, run } => {
                l.push(vec![
                    Span::styled("▍Q  ", t.fg(t.user).add_modifier(Modifier::BOLD)),
                    Span::styled(
                        question.clone(),
                        Style::default().add_modifier(Modifier::BOLD),
                    ),
                ]);
                l.text(3, &run_meta(run), t.fg(t.muted));
                few_shot_body(&mut l, app, run);
            }
            Entry::Ladder { question, runs } => {
                l.push(vec![
                    Span::styled("▍ladder  ", t.fg(t.user).add_modifier(Modifier::BOLD)),
                    Span::styled(
                        question.clone(),
                        Style::default().add_modifier(Modifier::BOLD),
                    ),
                ]);
                ladder_body(&mut l, app, runs);
            }
            Entry::Notice { level, text } => {
                let (mark, c) = match level {
                    Level::Info => ("•", t.muted),
                    Level::Warning => ("!", t.warning),
                    Level::Error => ("✗", t.error),
                };
                l.text(0, &format!("{mark} {text}"), t.fg(c));
            }
        }
    }
    l.out
}

fn reply_body(l: &mut Lines, app: &App, run: &Run) {
    let t = l.t;
    if let Some((label, style)) = live_label(app, run) {
        l.text(2, &label, style);
    }
    let several = run.samples.len() > 1;
    for (i, s) in run.samples.iter().enumerate() {
        if several && (!s.text.is_empty() || s.done.is_some()) {
            let nelbo = s
                .done
                .map(|d| format!(" · −ELBO {}", num(d.nelbo)))
                .unwrap_or_default();
            l.push(vec![Span::styled(
                format!("  sample {}{nelbo}", i + 1),
                t.fg(t.series(i)),
            )]);
        }
        let cursor = if run.status == Status::Writing && s.done.is_none() {
            "▍"
        } else {
            ""
        };
        if !s.text.is_empty() || !cursor.is_empty() {
            l.sample(2, s, false, cursor, t.fg(t.assistant));
        }
    }
}

fn answers(run: &Run) -> Vec<Option<String>> {
    run.samples.iter().map(|s| answer_of(&s.text)).collect()
}

fn few_shot_body(l: &mut Lines, app: &App, run: &Run) {
    let t = l.t;
    if let Some((label, style)) = live_label(app, run) {
        l.text(3, &label, style);
    }
    let answers = answers(run);
    for (i, (s, a)) in run.samples.iter().zip(&answers).enumerate() {
        if s.text.is_empty() && s.done.is_none() {
            continue;
        }
        let answer = match a {
            Some(a) => Span::styled(
                format!("→ {a}"),
                t.fg(t.accent).add_modifier(Modifier::BOLD),
            ),
            None => Span::styled("→ ?", t.fg(t.muted)),
        };
        let nelbo = s
            .done
            .map(|d| format!("   −ELBO {}", num(d.nelbo)))
            .unwrap_or_default();
        l.push(vec![
            Span::styled(
                format!("   #{} ", i + 1),
                t.fg(t.series(i)).add_modifier(Modifier::BOLD),
            ),
            answer,
            Span::styled(nelbo, t.fg(t.muted)),
        ]);
        l.sample(6, s, true, "", t.fg(t.assistant));
    }
    let done: Vec<f64> = run
        .samples
        .iter()
        .filter_map(|s| s.done.map(|d| d.nelbo))
        .collect();
    if run.status != Status::Done || done.len() != run.samples.len() {
        return;
    }
    let majority = vote::majority(&answers);
    let best = vote::elbo_best(&answers, &done);
    let agree = majority.as_ref().map_or(0, |(_, n)| *n);
    let show = |a: Option<&String>| a.cloned().unwrap_or_else(|| "—".into());
    l.push(vec![
        Span::styled(
            format!("   agreement {agree}/{}", answers.len()),
            t.fg(t.muted),
        ),
        Span::styled("  ·  majority ", t.fg(t.muted)),
        Span::styled(
            show(majority.as_ref().map(|(a, _)| a)),
            t.fg(t.success).add_modifier(Modifier::BOLD),
        ),
        Span::styled("  ·  ELBO-best ", t.fg(t.muted)),
        Span::styled(
            show(best.as_ref()),
            t.fg(t.success).add_modifier(Modifier::BOLD),
        ),
    ]);
}

/// Four runs side by side: each column wrapped on its own, then zipped row by row.
fn ladder_body(l: &mut Lines, app: &App, runs: &[Run]) {
    let t = l.t;
    let n = runs.len().max(1);
    let gap = 3;
    let col = (l.width.saturating_sub(gap * (n - 1)) / n).max(8);
    let columns: Vec<Vec<Line<'static>>> = runs
        .iter()
        .map(|run| {
            let mut c = Lines {
                t,
                width: col,
                out: Vec::new(),
            };
            let steps = run.request.think.steps;
            c.push(vec![Span::styled(
                steps_label(steps),
                t.fg(t.thinking)
                    .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            )]);
            let fig = match (best_step(run), steps) {
                (_, 0) => "prior thought".to_string(),
                (Some(s), _) => format!("−ELBO {} · {}", num(s.nelbo), ms(run.think_ms())),
                (None, _) => "—".to_string(),
            };
            c.text(0, &fig, t.fg(t.muted));
            if let Some((label, style)) = live_label(app, run) {
                c.text(0, &label, style);
            }
            let sample = &run.samples[0];
            if !run.request.answer_prefix.is_empty() && run.status == Status::Done {
                let a = answer_of(&sample.text).unwrap_or_else(|| "?".into());
                c.push(vec![Span::styled(
                    format!("→ {a}"),
                    t.fg(t.accent).add_modifier(Modifier::BOLD),
                )]);
            }
            c.sample(0, sample, true, "", t.fg(t.assistant));
            c.out
        })
        .collect();
    let height = columns.iter().map(Vec::len).max().unwrap_or(0);
    for row in 0..height {
        let mut spans = Vec::new();
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                spans.push(Span::styled(" │ ", t.fg(t.border)));
            }
            let line = c.get(row).cloned().unwrap_or_default();
            let pad = col.saturating_sub(line.width());
            spans.extend(line.spans);
            spans.push(Span::raw(" ".repeat(pad)));
        }
        l.push(spans);
    }
}

fn welcome(mode: Mode) -> &'static str {
    match mode {
        Mode::Chat => {
            "Ask anything. Before it writes, the model thinks: it fits a posterior over latent \
                       thought vectors to your words with a few gradient steps. More steps, more thinking \
                       (+ / − change the preset)."
        }
        Mode::FewShot => {
            "Worked examples on the left; type a question below. Each thought sample answers on \
                          its own; the majority and the ELBO-best answer are shown. /samples 4 for more samples."
        }
        Mode::Ladder => {
            "Type a question: it is answered at 0, 4, 16 and 64 thinking steps, side by side, so \
                         you can see what thinking buys."
        }
    }
}

fn draw_transcript(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let title = match app.session.mode {
        Mode::Chat => " conversation ".to_string(),
        Mode::FewShot => " answers ".to_string(),
        Mode::Ladder => format!(
            " thinking ladder · {} steps ",
            LADDER.map(|s| s.to_string()).join(" · ")
        ),
    };
    let mut block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(t.border(app.focus == Focus::Transcript))
        .title(Span::styled(title, t.fg(t.accent)));
    let inner = block.inner(area);
    let lines = transcript_lines(app, inner.width.saturating_sub(1) as usize);
    let visible = inner.height as usize;
    app.scroll.seen.set((lines.len(), visible));
    let max_top = lines.len().saturating_sub(visible);
    let top = app.scroll.top.unwrap_or(max_top).min(max_top);
    if top < max_top {
        block = block.title_bottom(
            Line::styled(
                format!(" ↓ {} more lines · End follows ", max_top - top),
                t.fg(t.warning),
            )
            .right_aligned(),
        );
    }
    frame.render_widget(block, area);
    if lines.is_empty() {
        let p = Paragraph::new(welcome(app.session.mode))
            .style(t.fg(t.muted))
            .wrap(Wrap { trim: true });
        frame.render_widget(p, inner.inner(ratatui::layout::Margin::new(2, 1)));
        return;
    }
    let shown: Vec<Line> = lines.into_iter().skip(top).take(visible).collect();
    frame.render_widget(Paragraph::new(shown), inner);
}

fn draw_examples(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let focused = app.focus == Focus::Examples;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(t.border(focused))
        .title(Span::styled(
            format!(" worked examples ({}) ", app.session.examples.len()),
            t.fg(t.accent),
        ))
        .title_bottom(Line::styled(
            " a add · e edit · d del · l load · g draw ",
            t.fg(t.muted),
        ));
    let width = block.inner(area).width.saturating_sub(4) as usize;
    let items: Vec<ListItem> = app
        .session
        .examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut lines = vec![Line::from(vec![
                Span::styled(format!("{:>2} ", i + 1), t.fg(t.muted)),
                Span::styled(
                    e.question.clone(),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
            ])];
            for a in wrap(&e.answer, width) {
                lines.push(Line::styled(format!("   {a}"), t.fg(t.muted)));
            }
            ListItem::new(lines)
        })
        .collect();
    let empty = items.is_empty();
    let list = List::new(items).block(block).highlight_style(if focused {
        t.selected()
    } else {
        Style::default()
    });
    let mut state = ListState::default().with_selected((!empty).then_some(app.example));
    frame.render_stateful_widget(list, area, &mut state);
}

// ---------------------------------------------------------------- thinking

fn draw_think_summary(frame: &mut Frame, area: Rect, app: &App, run: Option<&Run>) {
    let t = &app.theme;
    let text = match run {
        None => format!(
            " ◌ no thoughts yet · next request thinks for {}",
            preset_label(app.settings.steps(app.defaults()))
        ),
        Some(run) if run.request.think.steps == 0 => {
            " ▸ no thinking: the thought was drawn from the prior".into()
        }
        Some(run) => {
            let last = run.think.iter().map(|s| s.step + 1).max().unwrap_or(0);
            let steps = run.request.think.steps;
            let done = if last < steps {
                format!("{last}/{steps} steps")
            } else {
                steps_label(steps)
            };
            let fig = best_step(run)
                .map(|s| format!(" · −ELBO {} · ppl ≤ {}", num(s.nelbo), num(s.ppl_bound)))
                .unwrap_or_default();
            format!(" ▸ thought {done}{fig} · {}", ms(run.think_ms()))
        }
    };
    let style = if app.focus == Focus::Thinking {
        t.selected()
    } else {
        t.fg(t.thinking)
    };
    let hint = if run.is_some() {
        "  Ctrl+T expand "
    } else {
        ""
    };
    draw_left_right(
        frame,
        area,
        Line::styled(text, style),
        Line::styled(hint, t.fg(t.muted)),
    );
}

fn draw_thinking(frame: &mut Frame, area: Rect, app: &App, run: &Run) {
    let t = &app.theme;
    let k = run.request.think.samples;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(t.border(app.focus == Focus::Thinking))
        .title(Span::styled(
            format!(
                " thinking · request {} · {k} sample{} ",
                run.id(),
                if k == 1 { "" } else { "s" }
            ),
            t.fg(t.thinking).add_modifier(Modifier::BOLD),
        ))
        .title(Line::styled(" Ctrl+T collapse ", t.fg(t.muted)).right_aligned());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [gauge, stats, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(inner);

    let steps = run.request.think.steps;
    let step = run.think.last().map_or(0, |s| s.step + 1);
    let ratio = if steps == 0 {
        1.0
    } else {
        (step as f64 / steps as f64).clamp(0.0, 1.0)
    };
    let spin = if run.status == Status::Thinking {
        spinner(app)
    } else {
        "✓"
    };
    frame.render_widget(
        LineGauge::default()
            .ratio(ratio)
            .label(Span::styled(
                format!("{spin} step {step}/{steps} "),
                t.fg(t.thinking).add_modifier(Modifier::BOLD),
            ))
            .filled_style(t.fg(t.thinking))
            .unfilled_style(t.fg(t.border))
            .filled_symbol("━")
            .unfilled_symbol("─"),
        gauge,
    );

    let Some(best) = best_step(run) else {
        let wait = if steps == 0 {
            "no thinking: the thought is drawn from the prior"
        } else {
            "waiting for the first step…"
        };
        frame.render_widget(Paragraph::new(Span::styled(wait, t.fg(t.muted))), stats);
        return;
    };
    let fig = |label: &str, value: String| {
        [
            Span::styled(format!("{label} "), t.fg(t.muted)),
            Span::styled(
                format!("{value}   "),
                Style::default().add_modifier(Modifier::BOLD),
            ),
        ]
    };
    let mut spans: Vec<Span> = [
        fig("−ELBO", num(best.nelbo)),
        fig("NLL/tok", num(best.nll_per_token)),
        fig("KL", num(best.kl)),
        fig("ppl ≤", num(best.ppl_bound)),
        fig("lr", format!("{:.4}", best.lr)),
        fig("step", ms(best.ms)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if k > 1 {
        spans.push(Span::styled(format!("(best of {k})"), t.fg(t.muted)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), stats);
    if body.height < 3 {
        return;
    }

    let wide = body.width >= 100;
    let constraints: &[Constraint] = if wide {
        &[
            Constraint::Percentage(28),
            Constraint::Percentage(24),
            Constraint::Percentage(24),
            Constraint::Min(10),
        ]
    } else {
        &[Constraint::Percentage(55), Constraint::Min(10)]
    };
    let cols = Layout::horizontal(constraints).split(body);
    let metrics: &[(&str, Metric)] = if wide {
        &[
            ("−ELBO", |s| s.nelbo),
            ("NLL/tok", |s| s.nll_per_token),
            ("KL", |s| s.kl),
        ]
    } else {
        &[("−ELBO", |s| s.nelbo)]
    };
    for (rect, (title, f)) in cols.iter().zip(metrics) {
        draw_series(frame, *rect, app, run, title, *f);
    }
    draw_layer_kl(frame, cols[cols.len() - 1], app, best);
}

/// One figure of a thinking step, charted against the step.
type Metric = fn(&ThinkStep) -> f64;

/// One line chart: `metric` against step, one series per thought sample.
fn draw_series(frame: &mut Frame, area: Rect, app: &App, run: &Run, title: &str, metric: Metric) {
    let t = &app.theme;
    let samples = run
        .think
        .iter()
        .map(|s| s.sample)
        .max()
        .map_or(0, |m| m + 1);
    let data: Vec<Vec<(f64, f64)>> = (0..samples)
        .map(|i| {
            run.think
                .iter()
                .filter(|s| s.sample == i)
                .map(|s| (s.step as f64, metric(s)))
                .collect()
        })
        .collect();
    let ys = data.iter().flatten().map(|p| p.1);
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    // Pad the axis, not past zero for figures that cannot go below it; label the data's range.
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 1e-3).max(1e-6);
    let floor = if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY };
    let bounds = [(lo - pad).max(floor), hi + pad];
    let x_max = (run.request.think.steps.max(2) - 1) as f64;
    let markers = [Marker::Braille, Marker::Dot, Marker::Block, Marker::Bar];
    let datasets = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let marker = if t.no_color {
                markers[i % markers.len()]
            } else {
                Marker::Braille
            };
            Dataset::default()
                .data(d)
                .marker(marker)
                .graph_type(GraphType::Line)
                .style(t.fg(t.series(i)))
        })
        .collect();
    let chart = Chart::new(datasets)
        .block(
            Block::default()
                .borders(Borders::TOP)
                .border_style(t.fg(t.border))
                .title(Span::styled(
                    format!(" {title} "),
                    t.fg(t.foreground).add_modifier(Modifier::BOLD),
                )),
        )
        .x_axis(Axis::default().bounds([0.0, x_max]).style(t.fg(t.muted)))
        .y_axis(
            Axis::default()
                .bounds(bounds)
                .labels([Span::raw(num(lo)), Span::raw(num(hi))])
                .style(t.fg(t.muted)),
        );
    frame.render_widget(chart, area);
}

fn draw_layer_kl(frame: &mut Frame, area: Rect, app: &App, step: &ThinkStep) {
    let t = &app.theme;
    let n = step.layer_kl.len().max(1) as u16;
    let width = area.width.saturating_sub(1);
    let bar_width = (width.saturating_sub(n - 1) / n).clamp(1, 6);
    let max = step.layer_kl.iter().cloned().fold(0.0, f64::max).max(1e-9);
    let bars: Vec<Bar> = step
        .layer_kl
        .iter()
        .enumerate()
        .map(|(i, kl)| {
            let label = if bar_width >= 2 {
                format!("L{}", i + 1)
            } else {
                format!("{}", (i + 1) % 10)
            };
            Bar::default()
                .value((kl / max * 1000.0).round() as u64)
                .text_value(num(*kl))
                .label(Line::from(label))
                .style(t.fg(t.thinking))
                .value_style(t.selected())
        })
        .collect();
    let chart = BarChart::default()
        .block(
            Block::default()
                .borders(Borders::TOP)
                .border_style(t.fg(t.border))
                .title(Span::styled(
                    " KL per layer ",
                    t.fg(t.foreground).add_modifier(Modifier::BOLD),
                )),
        )
        .data(BarGroup::default().bars(&bars))
        .bar_width(bar_width)
        .bar_gap(1)
        .max(1000)
        .label_style(t.fg(t.muted));
    frame.render_widget(chart, area);
}

// ---------------------------------------------------------------- input

fn draw_input(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let focused = app.focus == Focus::Input && app.overlay.is_none();
    let title = match (app.target, app.session.mode) {
        (Target::EditExample(i), _) => format!(
            " example {} · first line the question, then the answer · Esc drops ",
            i + 1
        ),
        (Target::Send, Mode::Chat) => " message ".into(),
        (Target::Send, Mode::FewShot) => {
            format!(" question · {} examples ", app.session.examples.len())
        }
        (Target::Send, Mode::Ladder) => " question for the ladder ".into(),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(t.border(focused))
        .title(Span::styled(title, t.fg(t.accent)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (rows, (cx, cy)) = app.input.layout(inner.width.saturating_sub(1) as usize);
    if app.input.is_empty() {
        let hint = "type, /help for commands, ? for keys";
        frame.render_widget(Paragraph::new(Span::styled(hint, t.fg(t.muted))), inner);
    } else {
        let skip = (cy + 1).saturating_sub(inner.height as usize);
        let lines: Vec<Line> = rows
            .into_iter()
            .skip(skip)
            .take(inner.height as usize)
            .map(Line::raw)
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }
    if focused {
        let skip = (cy + 1).saturating_sub(inner.height as usize);
        frame.set_cursor_position((inner.x + cx as u16, inner.y + (cy - skip) as u16));
    }
}

// ---------------------------------------------------------------- overlays

fn popup(frame: &mut Frame, area: Rect, t: &Theme, title: &str, width: u16, height: u16) -> Rect {
    let w = width.min(area.width.saturating_sub(4));
    let h = height.min(area.height.saturating_sub(2));
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(t.border(true))
        .style(t.base())
        .title(Span::styled(
            format!(" {title} "),
            t.fg(t.accent).add_modifier(Modifier::BOLD),
        ));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    inner
}

/// Every key binding, for the help overlay.
pub const KEYS: [(&str, &str); 20] = [
    ("Enter", "send the message / question"),
    ("Alt+Enter, Shift+Enter", "new line in the input"),
    ("Esc", "stop thinking or writing at once"),
    ("Ctrl+C", "quit (also mid-thought)"),
    ("F1 F2 F3, Ctrl+N", "chat · few-shot · ladder mode"),
    ("+ / −  (input empty)", "thinking preset up / down"),
    ("F4, Ctrl+O", "settings panel"),
    ("Ctrl+T", "expand / collapse the thinking panel"),
    ("Tab, Shift+Tab", "move focus between panes"),
    ("PgUp PgDn, wheel", "scroll the conversation"),
    (
        "↑ ↓ (transcript)",
        "scroll a line; Home / End: top / follow",
    ),
    ("↑ ↓ (input)", "history, on the first / last line"),
    ("? (input empty), F12", "this help"),
    ("examples: ↑ ↓", "select a worked example"),
    ("examples: a / e / d", "add / edit / delete"),
    ("examples: l / g", "load JSONL / draw from the generator"),
    ("settings: ↑ ↓ ← →", "select / change"),
    ("/theme NAME", "dark, light, high-contrast, or yours"),
    ("/draw N [SEED], /load PATH", "worked examples"),
    (
        "/clear, /mode M, /help",
        "clear · chat|fewshot|ladder · help",
    ),
];

fn draw_help(frame: &mut Frame, area: Rect, t: &Theme) {
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:>28}  "),
                    t.fg(t.accent).add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::default());
    let settings: Vec<String> = Field::ALL
        .iter()
        .map(|f| format!("/{} {}", f.command(), f.usage()))
        .collect();
    lines.push(Line::styled(
        format!("  settings: {}", settings.join(" · ")),
        t.fg(t.muted),
    ));
    let height = lines.len() as u16 + 4;
    let inner = popup(frame, area, t, "keys · any key closes", 90, height);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

fn draw_settings(frame: &mut Frame, area: Rect, app: &App, selected: usize) {
    let t = &app.theme;
    let inner = popup(
        frame,
        area,
        t,
        "settings · ↑↓ select · ←→ change · Esc close",
        60,
        Field::ALL.len() as u16 + 2,
    );
    let d = app.defaults();
    let lines: Vec<Line> = Field::ALL
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let line = Line::from(vec![
                Span::raw(format!(" {:<20}", f.label())),
                Span::styled(
                    format!("{:<14}", f.value(&app.settings, d)),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::styled(format!("/{}", f.command()), t.fg(t.muted)),
            ]);
            if i == selected {
                line.style(t.selected())
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// "1 step", "16 steps".
fn steps_label(n: usize) -> String {
    if n == 1 {
        "1 step".to_string()
    } else {
        format!("{n} steps")
    }
}
