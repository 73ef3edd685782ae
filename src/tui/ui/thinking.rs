//! The thinking panel: a one-line summary, or, while thinking (or asked with Ctrl+T), the
//! progress gauge, the best sample's figures, their curves against the step, and KL per layer.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Bar, BarChart, BarGroup, Block, BorderType, Borders, Chart, Dataset, GraphType,
    LineGauge, Paragraph,
};

use super::draw_left_right;
use super::format::{ms, next_thinking, num, spinner, steps_label};
use crate::engine::protocol::ThinkStep;
use crate::tui::app::{App, Focus};
use crate::tui::session::{Run, Status};

pub(super) fn draw_think_summary(frame: &mut Frame, area: Rect, app: &App, run: Option<&Run>) {
    let t = &app.theme;
    let text = match run {
        None => format!(
            " ◌ no thoughts yet · next request thinks for {}",
            next_thinking(app)
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
            let fig = run
                .fit()
                .map(|f| format!(" · {}", f.summary()))
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

pub(super) fn draw_thinking(frame: &mut Frame, area: Rect, app: &App, run: &Run) {
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

    let Some(best) = run.best_step() else {
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
