//! The transcript: the conversation so far, each entry laid out by its kind (a chat reply, a
//! few-shot answer with its samples and verdict, a ladder of runs side by side), and scrolled.

use ratatui::Frame;
use ratatui::layout::{Margin, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Wrap};
use unicode_width::UnicodeWidthStr;

use super::format::{live_label, ms, num, run_meta, steps_label, wrap, wrap_ranges};
use crate::engine::ladder;
use crate::tasks::prompt::answer_of;
use crate::tasks::vote::shown;
use crate::tui::app::{App, Focus};
use crate::tui::session::{Entry, Level, Mode, Run, SampleText, Status};
use crate::tui::theme::Theme;

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

    /// A question's first line: `label` in the user's colour, the question in bold.
    fn question(&mut self, label: &'static str, question: &str) {
        let bold = Style::default().add_modifier(Modifier::BOLD);
        self.push(vec![
            Span::styled(label, self.t.fg(self.t.user).patch(bold)),
            Span::styled(question.to_string(), bold),
        ]);
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
                l.question("▍Q  ", question);
                l.text(3, &run_meta(run), t.fg(t.muted));
                few_shot_body(&mut l, app, run);
            }
            Entry::Ladder { question, runs } => {
                l.question("▍ladder  ", question);
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
                .as_ref()
                .map(|d| format!(" · −ELBO {}", num(d.nelbo)))
                .unwrap_or_default();
            l.push(vec![Span::styled(
                format!("  sample {}{nelbo}", i + 1),
                t.fg(t.series(i)),
            )]);
        }
        if let Some(a) = worked_answer(s) {
            l.push(vec![
                Span::styled("  Answer: ", t.fg(t.muted)),
                Span::styled(a.to_string(), t.fg(t.accent).add_modifier(Modifier::BOLD)),
            ]);
        }
        if let Some(check) = s.done.as_ref().and_then(|d| d.check.as_ref()) {
            l.text(2, &format!("checked: {}", check.line()), t.fg(t.muted));
        }
        if folded(app, s) {
            continue;
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

/// The answer a finished sample's worked solution ends with (the engine's `done.answer`).
fn worked_answer(s: &SampleText) -> Option<&str> {
    s.done.as_ref()?.answer.as_deref()
}

/// A sample's answer: once finished, the engine's reading
/// ([`crate::engine::Done::answer_in`]); while it writes, the last number so far.
fn sample_answer(s: &SampleText) -> Option<String> {
    match &s.done {
        Some(d) => d.answer_in(&s.text),
        None => answer_of(&s.text),
    }
}

/// Whether a finished sample has working to fold: an answer, and more text than the answer.
fn has_working(s: &SampleText) -> bool {
    worked_answer(s).is_some_and(|a| s.text.trim() != a)
}

/// Whether a sample shows its answer alone, the working folded under it (Ctrl+W shows it).
fn folded(app: &App, s: &SampleText) -> bool {
    !app.show_working && has_working(s)
}

fn few_shot_body(l: &mut Lines, app: &App, run: &Run) {
    let t = l.t;
    if let Some((label, style)) = live_label(app, run) {
        l.text(3, &label, style);
    }
    for (i, s) in run.samples.iter().enumerate() {
        if s.text.is_empty() && s.done.is_none() {
            continue;
        }
        let answer = match sample_answer(s) {
            Some(a) => Span::styled(
                format!("→ {a}"),
                t.fg(t.accent).add_modifier(Modifier::BOLD),
            ),
            None => Span::styled("→ ?", t.fg(t.muted)),
        };
        let nelbo = s
            .done
            .as_ref()
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
        if !folded(app, s) {
            l.sample(6, s, true, "", t.fg(t.assistant));
        }
    }
    // The verdict is settled when the run is done; until then there is none to show.
    let Some(verdict) = &run.verdict else {
        return;
    };
    l.push(vec![
        Span::styled(
            format!("   agreement {}/{}", verdict.agreement, run.samples.len()),
            t.fg(t.muted),
        ),
        Span::styled("  ·  majority ", t.fg(t.muted)),
        Span::styled(
            shown(&verdict.majority),
            t.fg(t.success).add_modifier(Modifier::BOLD),
        ),
        Span::styled("  ·  ELBO-best ", t.fg(t.muted)),
        Span::styled(
            shown(&verdict.elbo_best),
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
            let fig = match (run.fit(), steps) {
                (_, 0) => "prior thought".to_string(),
                (Some(f), _) => format!("{} · {}", f.brief(), ms(run.think_ms())),
                (None, _) => "—".to_string(),
            };
            c.text(0, &fig, t.fg(t.muted));
            if let Some((label, style)) = live_label(app, run) {
                c.text(0, &label, style);
            }
            let sample = &run.samples[0];
            if !run.request.answer_prefix.is_empty() && run.status == Status::Done {
                let a = sample_answer(sample).unwrap_or_else(|| "?".into());
                c.push(vec![Span::styled(
                    format!("→ {a}"),
                    t.fg(t.accent).add_modifier(Modifier::BOLD),
                )]);
            }
            if !folded(app, sample) {
                c.sample(0, sample, true, "", t.fg(t.assistant));
            }
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

/// The empty transcript: what the mode does; in chat, also what the model is for and prompts
/// to try, from its directory (first contact).
fn welcome(app: &App) -> String {
    let mut text = mode_help(app.session.mode).to_string();
    let Some(model) = app.model.as_ref() else {
        return text;
    };
    if app.session.mode != Mode::Chat {
        return text;
    }
    // A model with a scope says what it is for in a line; else its card's first paragraph, and
    // that anything may be asked.
    match (&model.scope, &model.intro.about) {
        (Some(scope), _) => text = format!("{} is {scope}.\n\n{text}", model.name),
        (None, Some(about)) => text = format!("{}: {about}\n\nAsk anything. {text}", model.name),
        (None, None) => text = format!("Ask anything. {text}"),
    }
    if !model.intro.prompts.is_empty() {
        text.push_str("\n\nTry:");
        for p in &model.intro.prompts {
            text.push_str(&format!("\n  {}", p.prompt));
        }
    }
    text
}

fn mode_help(mode: Mode) -> &'static str {
    match mode {
        Mode::Chat => {
            "Before it writes, the model thinks: it fits a posterior over latent \
                       thought vectors to your words with a few gradient steps. More steps, more thinking \
                       (+ / − or /think off|low|medium|high|max). Each message is answered on its own: \
                       the model does not see the earlier turns."
        }
        Mode::FewShot => {
            "Worked examples on the left; type a question below. Each thought sample answers on \
                          its own; the majority and the ELBO-best answer are shown. /samples 4 for more samples."
        }
        Mode::Ladder => {
            "Type a question: it is answered at every thinking level, off to max, side by side, so \
                         you can see what thinking buys."
        }
    }
}

pub(super) fn draw_transcript(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let title = match app.session.mode {
        Mode::Chat => " conversation ".to_string(),
        Mode::FewShot => " answers ".to_string(),
        Mode::Ladder => format!(
            " thinking ladder · {} steps · {} ",
            ladder(&app.defaults())
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" · "),
            match app.session.examples.len() {
                0 => "the chat prompt".to_string(),
                1 => "few-shot prompt, 1 worked example".to_string(),
                n => format!("few-shot prompt, {n} worked examples"),
            }
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
    let mut samples = app
        .session
        .entries
        .iter()
        .flat_map(Entry::runs)
        .flat_map(|r| &r.samples);
    if samples.any(has_working) {
        let hint = if app.show_working {
            " Ctrl+W folds the working "
        } else {
            " Ctrl+W shows the working "
        };
        block = block.title_bottom(Line::styled(hint, t.fg(t.muted)).left_aligned());
    }
    frame.render_widget(block, area);
    if lines.is_empty() {
        let p = Paragraph::new(welcome(app))
            .style(t.fg(t.muted))
            .wrap(Wrap { trim: true });
        frame.render_widget(p, inner.inner(Margin::new(2, 1)));
        return;
    }
    let shown: Vec<Line> = lines.into_iter().skip(top).take(visible).collect();
    frame.render_widget(Paragraph::new(shown), inner);
}
