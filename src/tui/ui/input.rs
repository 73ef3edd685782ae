//! The input box: its title says what Enter will do; the text scrolls to keep the cursor shown.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};

use crate::tui::app::{App, Focus, Target};
use crate::tui::session::Mode;

pub(super) fn draw_input(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let focused = app.focus == Focus::Input && app.overlay.is_none();
    let title = match (app.target, app.session.mode) {
        (Target::EditExample(i), _) => format!(
            " example {} · first line the question, then the answer · Esc drops ",
            i + 1
        ),
        (Target::Send, Mode::Chat) => " message ".into(),
        (Target::Send, Mode::FewShot) => match app.session.examples.len() {
            1 => " question · 1 example ".into(),
            n => format!(" question · {n} examples "),
        },
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
