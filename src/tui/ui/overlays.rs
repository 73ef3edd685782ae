//! The popups over the screen: the help (keys from the keymap, commands from `commands`, the
//! settings' commands from `Field`) and the settings panel.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Wrap};
use unicode_width::UnicodeWidthStr;

use crate::tui::app::App;
use crate::tui::commands;
use crate::tui::keymap::BINDINGS;
use crate::tui::settings::Field;
use crate::tui::theme::Theme;

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

pub(super) fn draw_help(frame: &mut Frame, area: Rect, t: &Theme) {
    let keys = BINDINGS.iter().map(|b| (b.label(), b.help));
    let commands = commands::HELP
        .iter()
        .map(|&(c, what)| (c.to_string(), what));
    let rows: Vec<(String, &str)> = keys.chain(commands).collect();
    let width = rows.iter().map(|(k, _)| k.width()).max().unwrap_or(0);
    let mut lines: Vec<Line> = rows
        .into_iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:>width$}  "),
                    t.fg(t.accent).add_modifier(Modifier::BOLD),
                ),
                Span::raw(what),
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

pub(super) fn draw_settings(frame: &mut Frame, area: Rect, app: &App, selected: usize) {
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
                    format!("{:<14}", f.value(&app.settings.choices, &d)),
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
