//! The terminal UI: a tokio loop that feeds engine events and terminal input to [`app::App`],
//! draws it with [`ui::draw`], and carries out the actions it returns. It knows the engine only
//! through [`EngineClient`] and the typed protocol.

pub mod app;
pub mod commands;
pub mod input;
pub mod keymap;
pub mod session;
pub mod settings;
pub mod theme;
pub mod ui;

pub use self::commands::check as check_command;
use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event as TermEvent, EventStream, KeyboardEnhancementFlags, PopKeyboardEnhancementFlags,
    PushKeyboardEnhancementFlags,
};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc::UnboundedReceiver;

use self::app::{Action, App};
use self::session::{Level, Session};
use self::settings::Settings;
use self::theme::Themes;
use crate::dirs::Dirs;
use crate::engine::EngineHandle;
use crate::engine::protocol::{Event, Request};

/// The TUI's handle on the engine. Calls must return at once (queue the work elsewhere).
pub trait EngineClient {
    /// Queue a request; the engine answers through the event channel.
    fn submit(&self, request: Request);
    /// Stop the request being worked on now, as soon as possible.
    fn cancel(&self);
}

impl EngineClient for EngineHandle {
    fn submit(&self, request: Request) {
        EngineHandle::submit(self, request);
    }

    fn cancel(&self) {
        EngineHandle::cancel(self);
    }
}

/// Whether the app draws in colour (`--color`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// Colour unless `NO_COLOR` is set (<https://no-color.org>).
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Default)]
pub struct TuiOptions {
    /// Resume a saved session: a file path, a session id, or `last`.
    pub resume: Option<String>,
    /// Theme for this run (`dark`, `light`, `high-contrast` or a user theme), over the saved one.
    pub theme: Option<String>,
    /// Settings commands applied at start, as typed in the input without the slash
    /// (e.g. `["steps 32", "temp 0"]`). Like the theme above, they reach settings.toml only
    /// if the user changes a setting during the run.
    pub settings_override: Vec<String>,
    /// Colour: `auto` follows `NO_COLOR`.
    pub color: Color,
    /// Where settings and sessions live; `None` resolves `LTM_CONFIG_DIR` / `LTM_DATA_DIR`,
    /// else the platform's directories for `ltm`.
    pub dirs: Option<Dirs>,
}

/// Run the TUI until the user quits. Needs a tokio runtime and an interactive terminal.
pub async fn run(
    client: &dyn EngineClient,
    events: UnboundedReceiver<Event>,
    options: TuiOptions,
) -> anyhow::Result<()> {
    let dirs = match options.dirs.clone() {
        Some(d) => d,
        None => Dirs::resolve()?,
    };
    dirs.remove_stale_temporaries();
    let mut app = build_app(&dirs, &options)?;
    let mut terminal = enter_terminal().inspect_err(|_| restore_terminal())?;
    let result = event_loop(&mut terminal, &mut app, client, events, &dirs).await;
    restore_terminal();
    let saved = app.session.save(&dirs.sessions_dir());
    result?;
    let path = saved?;
    eprintln!(
        "session saved: {} (resume with {})",
        path.display(),
        app.session.id
    );
    Ok(())
}

/// Few-shot examples fill a prompt of a few hundred tokens: a file beyond this is not a set of
/// examples (and `/dev/zero` would never end).
const MAX_EXAMPLES_BYTES: u64 = 4 << 20;

fn read_examples(path: &std::path::Path) -> Result<String, String> {
    crate::fsutil::read_text_limited(path, MAX_EXAMPLES_BYTES).map_err(|e| format!("{e:#}"))
}

fn build_app(dirs: &Dirs, options: &TuiOptions) -> anyhow::Result<App> {
    let (mut settings, settings_warning) = Settings::load(&dirs.settings_file());
    if let Some(theme) = &options.theme {
        settings.theme = theme.clone();
    }
    let no_color = match options.color {
        Color::Always => false,
        Color::Never => true,
        Color::Auto => theme::no_color(std::env::var_os("NO_COLOR").as_deref()),
    };
    let (themes, theme_warnings) = Themes::load(Some(&dirs.themes_dir()), no_color);
    let (session, skipped) = match &options.resume {
        Some(what) => Session::resume(&dirs.sessions_dir(), what)?,
        None => (Session::new(), Vec::new()),
    };
    let mut app = App::new(session, settings, themes);
    for warning in settings_warning
        .into_iter()
        .chain(theme_warnings)
        .chain(skipped)
    {
        app.notice(Level::Warning, warning);
    }
    if app.themes.get(&app.settings.theme).is_none() {
        let names = app.themes.names().join(", ");
        app.notice(
            Level::Warning,
            format!("no theme {:?}; available: {names}", app.settings.theme),
        );
    }
    for command in &options.settings_override {
        app.command(command.trim_start_matches('/'));
        // A bad value stays in the transcript; the confirmations are noise at start.
        if let Some(flash) = app.flash.take().filter(|f| f.level != Level::Info) {
            app.notice(flash.level, flash.text);
        }
    }
    Ok(app)
}

/// What woke the event loop.
#[allow(clippy::large_enum_variant)] // one at a time, on the stack
enum Woke {
    Engine(Option<Event>),
    Terminal(Option<std::io::Result<TermEvent>>),
    Tick,
    /// A signal that ends a terminal program.
    Ending,
}

/// SIGTERM, SIGINT, SIGHUP and SIGQUIT: each ends the app as Ctrl+C does, so that the terminal
/// is restored and the session saved (by default they would end the process in raw mode, on
/// the alternate screen).
#[cfg(unix)]
struct EndingSignals(Vec<tokio::signal::unix::Signal>);

#[cfg(unix)]
impl EndingSignals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let kinds = [
            SignalKind::terminate(),
            SignalKind::interrupt(),
            SignalKind::hangup(),
            SignalKind::quit(),
        ];
        kinds
            .into_iter()
            .map(signal)
            .collect::<std::io::Result<_>>()
            .map(Self)
    }

    async fn recv(&mut self) {
        futures::future::select_all(self.0.iter_mut().map(|s| Box::pin(s.recv()))).await;
    }
}

/// Elsewhere, the console's Ctrl+C or Ctrl+Break.
#[cfg(not(unix))]
struct EndingSignals;

#[cfg(not(unix))]
impl EndingSignals {
    fn new() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn recv(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    app: &mut App,
    client: &dyn EngineClient,
    mut events: UnboundedReceiver<Event>,
    dirs: &Dirs,
) -> anyhow::Result<()> {
    let mut input = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_millis(80));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut engine_open = true;
    let mut signals = EndingSignals::new()?;
    loop {
        terminal.draw(|frame| ui::draw(frame, app))?;
        let woke = tokio::select! {
            _ = signals.recv() => Woke::Ending,
            event = events.recv(), if engine_open => Woke::Engine(event),
            event = input.next() => Woke::Terminal(event),
            _ = tick.tick(), if app.animating() => Woke::Tick,
        };
        // The clock runs only while the screen animates; whatever woke the app sets it.
        app.now = Instant::now();
        let actions = match woke {
            Woke::Engine(Some(event)) => {
                let mut actions = app.on_event(event);
                // Drain a burst of tokens before the next frame.
                while let Ok(event) = events.try_recv() {
                    actions.extend(app.on_event(event));
                }
                actions
            }
            Woke::Engine(None) => {
                engine_open = false;
                app.notice(
                    Level::Error,
                    "the engine stopped; requests can no longer be answered",
                );
                Vec::new()
            }
            Woke::Terminal(event) => match event {
                Some(Ok(TermEvent::Key(key))) => app.on_key(key),
                Some(Ok(TermEvent::Mouse(mouse))) => {
                    app.on_mouse(mouse);
                    Vec::new()
                }
                Some(Ok(TermEvent::Paste(text))) => {
                    app.on_paste(&text);
                    Vec::new()
                }
                Some(Ok(_)) => Vec::new(),
                Some(Err(e)) => return Err(e.into()),
                None => vec![Action::Quit],
            },
            Woke::Tick => {
                app.on_tick(app.now);
                Vec::new()
            }
            Woke::Ending => vec![Action::Quit],
        };
        let mut pending = actions;
        while !pending.is_empty() {
            let mut next = Vec::new();
            for action in pending {
                match action {
                    Action::Submit(request) => {
                        client.submit(*request);
                        // Saved as it starts: a kill mid-answer keeps the question (it comes
                        // back cancelled on --resume).
                        next.push(Action::SaveSession);
                    }
                    Action::Cancel => client.cancel(),
                    Action::Quit => {
                        client.cancel();
                        return Ok(());
                    }
                    Action::SaveSettings => {
                        if let Err(e) = app.settings.save(&dirs.settings_file()) {
                            app.flash(Level::Error, format!("settings not saved: {e}"));
                        }
                    }
                    Action::SaveSession => {
                        if let Err(e) = app.session.save(&dirs.sessions_dir()) {
                            app.flash(Level::Error, format!("session not saved: {e}"));
                        }
                    }
                    Action::LoadExamples(path) => {
                        let text = read_examples(&path);
                        next.extend(app.examples_loaded(&path, text));
                    }
                }
            }
            pending = next;
        }
    }
}

/// Whether the terminal is in TUI mode, and whether keyboard enhancement was pushed.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static ENHANCED: AtomicBool = AtomicBool::new(false);

fn enter_terminal() -> anyhow::Result<Terminal<CrosstermBackend<Stdout>>> {
    install_panic_hook();
    terminal::enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let mut out = io::stdout();
    execute!(
        out,
        EnterAlternateScreen,
        EnableMouseCapture,
        EnableBracketedPaste
    )?;
    // Shift+Enter is only distinguishable with the kitty keyboard protocol; Alt+Enter works anywhere.
    if terminal::supports_keyboard_enhancement().unwrap_or(false) {
        execute!(
            out,
            PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES)
        )?;
        ENHANCED.store(true, Ordering::SeqCst);
    }
    Ok(Terminal::new(CrosstermBackend::new(out))?)
}

/// Put the terminal back as it was; safe to call twice (the panic hook and the normal exit).
fn restore_terminal() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    if ENHANCED.swap(false, Ordering::SeqCst) {
        let _ = execute!(out, PopKeyboardEnhancementFlags);
    }
    let _ = execute!(
        out,
        DisableBracketedPaste,
        DisableMouseCapture,
        LeaveAlternateScreen,
        cursor::Show
    );
    let _ = terminal::disable_raw_mode();
}

fn install_panic_hook() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
}

#[cfg(test)]
mod tests;
