//! The worked examples pane, left of the transcript in few-shot mode.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, List, ListItem, ListState};

use super::format::{ellipsized, wrap};
use crate::tui::app::{App, Focus};

pub(super) fn draw_examples(frame: &mut Frame, area: Rect, app: &App) {
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
                    ellipsized(&e.question, width),
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
