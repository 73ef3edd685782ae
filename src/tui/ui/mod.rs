//! Rendering: `draw(frame, &App)` lays the screen out and has each region drawn by its module.
//! Drawing changes nothing but the transcript's "lines seen" figure, which paging keys read.

mod bars;
mod examples;
mod format;
mod input;
mod overlays;
mod thinking;
mod transcript;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};

use super::app::{App, Overlay};
use super::session::{Mode, Status};

/// Below this the layout cannot work; a message says so instead.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

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

    bars::draw_header(frame, header, app);
    if app.session.mode == Mode::FewShot {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(36), Constraint::Min(20)]).areas(main);
        examples::draw_examples(frame, left, app);
        transcript::draw_transcript(frame, right, app);
    } else {
        transcript::draw_transcript(frame, main, app);
    }
    match run {
        Some(run) if full => thinking::draw_thinking(frame, think, app, run),
        _ => thinking::draw_think_summary(frame, think, app, run),
    }
    input::draw_input(frame, input, app);
    bars::draw_status(frame, status, app);
    match app.overlay {
        Some(Overlay::Help) => overlays::draw_help(frame, area, t),
        Some(Overlay::Settings { selected }) => overlays::draw_settings(frame, area, app, selected),
        None => {}
    }
}

/// One row: `right` flush right, `left` in what remains (cut, never drawn under `right`).
fn draw_left_right(frame: &mut Frame, area: Rect, left: Line, right: Line) {
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(right.width() as u16)])
            .areas(area);
    frame.render_widget(Paragraph::new(left), left_area);
    frame.render_widget(Paragraph::new(right), right_area);
}
