//! Every key binding, in one table ([`BINDINGS`]): the app looks a key up in it to know what to
//! do, and the help overlay lists it, so the help cannot drift from the keys. Also how the app
//! carries each binding out, and the terminal's other input: the mouse wheel and pasted text.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};

use super::app::{Action, App, Focus, Overlay, Target};
use super::session::Mode;
use super::settings::Field;

/// Where a binding applies. A key is looked up in the contexts active now, in the order
/// [`contexts`] gives them; within a context, the first binding that matches wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Everywhere, over the overlays too.
    Always,
    /// While no overlay is open, whatever has the focus.
    Panes,
    /// In the input while it is empty, before the input's own keys.
    EmptyInput,
    Input,
    Transcript,
    Thinking,
    /// In the transcript or the thinking pane, after their own keys.
    Reading,
    Examples,
    /// The settings overlay.
    Settings,
    /// The help overlay.
    Help,
}

impl Context {
    /// How the help names the context, before its keys.
    fn prefix(self) -> &'static str {
        match self {
            Context::Always | Context::Panes => "",
            Context::EmptyInput => "empty input: ",
            Context::Input => "input: ",
            Context::Transcript => "transcript: ",
            Context::Thinking => "thinking: ",
            Context::Reading => "transcript, thinking: ",
            Context::Examples => "examples: ",
            Context::Settings => "settings: ",
            Context::Help => "help: ",
        }
    }
}

/// A key as the table names it. [`Key::Code`] matches whatever modifiers are held, so that
/// Shift+F4 opens the settings as F4 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Code(KeyCode),
    Ctrl(char),
    Alt(KeyCode),
    Shift(KeyCode),
    /// Any character typed as itself.
    Typed,
    Any,
}

impl Key {
    fn matches(self, key: KeyEvent) -> bool {
        let held = key.modifiers;
        match self {
            Key::Code(code) => key.code == code,
            Key::Ctrl(c) => key.code == KeyCode::Char(c) && held.contains(KeyModifiers::CONTROL),
            Key::Alt(code) => key.code == code && held.contains(KeyModifiers::ALT),
            Key::Shift(code) => key.code == code && held.contains(KeyModifiers::SHIFT),
            // Not a Ctrl or Alt chord; AltGr arrives as Ctrl+Alt on some systems, and types.
            Key::Typed => {
                matches!(key.code, KeyCode::Char(_))
                    && held.contains(KeyModifiers::CONTROL) == held.contains(KeyModifiers::ALT)
            }
            Key::Any => true,
        }
    }

    /// How the help writes the key.
    fn name(self) -> String {
        match self {
            Key::Code(code) => code_name(code),
            Key::Ctrl(c) => format!("Ctrl+{}", c.to_ascii_uppercase()),
            Key::Alt(code) => format!("Alt+{}", code_name(code)),
            Key::Shift(code) => format!("Shift+{}", code_name(code)),
            Key::Typed => "typing".into(),
            Key::Any => "any key".into(),
        }
    }
}

/// Key names as keyboards print them (crossterm's own names vary by platform).
fn code_name(code: KeyCode) -> String {
    match code {
        KeyCode::Enter => "Enter".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::BackTab => "Shift+Tab".into(),
        KeyCode::Backspace => "Backspace".into(),
        KeyCode::Delete => "Del".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::Char(' ') => "Space".into(),
        KeyCode::Char('-') => "−".into(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::F(n) => format!("F{n}"),
        other => format!("{other:?}"),
    }
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    Quit,
    /// Stop what is running; with nothing running, drop the example being edited or go back
    /// to the input.
    Escape,
    SetMode(Mode),
    NextMode,
    OpenSettings,
    OpenHelp,
    CloseOverlay,
    ToggleThinking,
    /// Show or fold the working under each answer.
    ToggleWorking,
    FocusNext,
    FocusPrevious,
    ScrollPageUp,
    ScrollPageDown,
    ScrollLineUp,
    ScrollLineDown,
    ScrollTop,
    /// Scroll to the end and stay there as output arrives.
    Follow,
    Send,
    Newline,
    /// The next thinking level up.
    LevelUp,
    LevelDown,
    /// Type the key's character.
    Insert,
    DeleteBack,
    DeleteForward,
    CursorLeft,
    CursorRight,
    LineStart,
    LineEnd,
    /// Up a line; on the first line (or in an empty input), back through the history.
    UpOrHistory,
    /// Down a line; on the last line, forward through the history.
    DownOrHistory,
    /// Move the focus to the input and type the key there.
    TypeIntoInput,
    PreviousExample,
    NextExample,
    AddExample,
    EditExample,
    DeleteExample,
    /// Start a `/load` command in the input.
    PrefillLoad,
    /// Start a `/draw` command in the input.
    PrefillDraw,
    /// Select the setting above in the settings panel.
    PreviousField,
    NextField,
    /// Change the selected setting down (as its `/command` would, a step at a time).
    FieldDown,
    FieldUp,
}

/// One line of the help: keys, each with what it does, in one context.
pub struct Binding {
    context: Context,
    keys: &'static [(Key, KeyAction)],
    /// What the keys do, as the help says it.
    pub help: &'static str,
}

impl Binding {
    /// The keys as the help writes them: keys that do the same joined by ", ", different
    /// things by " / " (in the order the description names them).
    pub fn label(&self) -> String {
        let mut label = self.context.prefix().to_string();
        for (i, (key, action)) in self.keys.iter().enumerate() {
            if i > 0 {
                label += if self.keys[i - 1].1 == *action {
                    ", "
                } else {
                    " / "
                };
            }
            label += &key.name();
        }
        label
    }
}

const fn bind(context: Context, keys: &'static [(Key, KeyAction)], help: &'static str) -> Binding {
    Binding {
        context,
        keys,
        help,
    }
}

/// Every key binding, in the order the help lists them.
pub const BINDINGS: &[Binding] = {
    use Context::{
        Always, EmptyInput, Examples, Help, Input, Panes, Reading, Settings, Thinking, Transcript,
    };
    use Key::{Alt, Any, Code, Ctrl, Shift, Typed};
    use KeyAction as Do;
    use KeyCode::{
        BackTab, Backspace, Char, Delete, Down, End, Enter, Esc, F, Home, Left, PageDown, PageUp,
        Right, Tab, Up,
    };
    &[
        bind(Always, &[(Ctrl('c'), Do::Quit)], "quit (also mid-thought)"),
        bind(
            Panes,
            &[(Code(Esc), Do::Escape)],
            "stop thinking or writing; else back to the input",
        ),
        bind(
            Panes,
            &[
                (Code(F(1)), Do::SetMode(Mode::Chat)),
                (Code(F(2)), Do::SetMode(Mode::FewShot)),
                (Code(F(3)), Do::SetMode(Mode::Ladder)),
                (Ctrl('n'), Do::NextMode),
            ],
            "chat · few-shot · ladder · next mode",
        ),
        bind(
            Panes,
            &[
                (Code(F(4)), Do::OpenSettings),
                (Ctrl('o'), Do::OpenSettings),
            ],
            "settings panel",
        ),
        bind(Panes, &[(Code(F(12)), Do::OpenHelp)], "this help"),
        bind(
            Panes,
            &[(Ctrl('t'), Do::ToggleThinking)],
            "expand / collapse the thinking panel",
        ),
        bind(
            Panes,
            &[(Ctrl('w'), Do::ToggleWorking)],
            "show / fold the working under each answer",
        ),
        bind(
            Panes,
            &[
                (Code(Tab), Do::FocusNext),
                (Code(BackTab), Do::FocusPrevious),
            ],
            "move focus between panes",
        ),
        bind(
            Panes,
            &[
                (Code(PageUp), Do::ScrollPageUp),
                (Code(PageDown), Do::ScrollPageDown),
            ],
            "scroll the conversation (the mouse wheel too)",
        ),
        bind(EmptyInput, &[(Code(Char('?')), Do::OpenHelp)], "this help"),
        bind(
            EmptyInput,
            &[
                (Code(Char('+')), Do::LevelUp),
                (Code(Char('-')), Do::LevelDown),
            ],
            "thinking level up / down (off … max)",
        ),
        bind(
            Input,
            &[(Alt(Enter), Do::Newline), (Shift(Enter), Do::Newline)],
            "new line in the input",
        ),
        bind(
            Input,
            &[(Code(Enter), Do::Send)],
            "send the message / question",
        ),
        bind(
            Input,
            &[(Code(Up), Do::UpOrHistory), (Code(Down), Do::DownOrHistory)],
            "history, on the first / last line",
        ),
        bind(
            Input,
            &[
                (Code(Left), Do::CursorLeft),
                (Code(Right), Do::CursorRight),
                (Code(Home), Do::LineStart),
                (Code(End), Do::LineEnd),
            ],
            "move the cursor",
        ),
        bind(
            Input,
            &[
                (Typed, Do::Insert),
                (Code(Backspace), Do::DeleteBack),
                (Code(Delete), Do::DeleteForward),
            ],
            "edit the text",
        ),
        bind(
            Transcript,
            &[
                (Code(Up), Do::ScrollLineUp),
                (Code(Down), Do::ScrollLineDown),
                (Code(Home), Do::ScrollTop),
                (Code(End), Do::Follow),
            ],
            "scroll a line · top · follow the end",
        ),
        bind(
            Thinking,
            &[
                (Code(Enter), Do::ToggleThinking),
                (Code(Char(' ')), Do::ToggleThinking),
            ],
            "expand / collapse the panel",
        ),
        bind(
            Reading,
            &[(Typed, Do::TypeIntoInput)],
            "types into the input",
        ),
        bind(
            Examples,
            &[
                (Code(Up), Do::PreviousExample),
                (Code(Char('k')), Do::PreviousExample),
                (Code(Down), Do::NextExample),
                (Code(Char('j')), Do::NextExample),
            ],
            "select a worked example",
        ),
        bind(
            Examples,
            &[
                (Code(Char('a')), Do::AddExample),
                (Code(Char('e')), Do::EditExample),
                (Code(Enter), Do::EditExample),
                (Code(Char('d')), Do::DeleteExample),
                (Code(Delete), Do::DeleteExample),
            ],
            "add / edit / delete",
        ),
        bind(
            Examples,
            &[
                (Code(Char('l')), Do::PrefillLoad),
                (Code(Char('g')), Do::PrefillDraw),
            ],
            "load JSONL / draw from the generator",
        ),
        bind(
            Settings,
            &[
                (Code(Up), Do::PreviousField),
                (Code(Char('k')), Do::PreviousField),
                (Code(Down), Do::NextField),
                (Code(Char('j')), Do::NextField),
            ],
            "select a setting",
        ),
        bind(
            Settings,
            &[
                (Code(Left), Do::FieldDown),
                (Code(Char('-')), Do::FieldDown),
                (Code(Char('h')), Do::FieldDown),
            ],
            "change it down",
        ),
        bind(
            Settings,
            &[
                (Code(Right), Do::FieldUp),
                (Code(Enter), Do::FieldUp),
                (Code(Char('+')), Do::FieldUp),
                (Code(Char('=')), Do::FieldUp),
                (Code(Char('l')), Do::FieldUp),
                (Code(Char(' ')), Do::FieldUp),
            ],
            "change it up",
        ),
        bind(
            Settings,
            &[
                (Code(Esc), Do::CloseOverlay),
                (Code(F(4)), Do::CloseOverlay),
                (Code(Char('q')), Do::CloseOverlay),
                (Ctrl('o'), Do::CloseOverlay),
            ],
            "close",
        ),
        bind(Help, &[(Any, Do::CloseOverlay)], "close"),
    ]
};

/// The contexts active now, in the order their keys are tried.
pub fn contexts(overlay: Option<Overlay>, focus: Focus, input_empty: bool) -> Vec<Context> {
    let mut active = vec![Context::Always];
    match overlay {
        Some(Overlay::Help) => active.push(Context::Help),
        Some(Overlay::Settings { .. }) => active.push(Context::Settings),
        None => {
            active.push(Context::Panes);
            match focus {
                Focus::Input if input_empty => active.extend([Context::EmptyInput, Context::Input]),
                Focus::Input => active.push(Context::Input),
                Focus::Transcript => active.extend([Context::Transcript, Context::Reading]),
                Focus::Thinking => active.extend([Context::Thinking, Context::Reading]),
                Focus::Examples => active.push(Context::Examples),
            }
        }
    }
    active
}

/// What `key` does where `active` contexts apply, if anything.
pub fn lookup(key: KeyEvent, active: &[Context]) -> Option<KeyAction> {
    active.iter().find_map(|&context| {
        BINDINGS
            .iter()
            .filter(|b| b.context == context)
            .flat_map(|b| b.keys)
            .find(|(k, _)| k.matches(key))
            .map(|&(_, action)| action)
    })
}

impl App {
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let active = contexts(self.overlay, self.focus, self.input.is_empty());
        match lookup(key, &active) {
            Some(action) => self.do_key(action, key),
            None => Vec::new(),
        }
    }

    pub fn on_mouse(&mut self, mouse: MouseEvent) {
        match mouse.kind {
            MouseEventKind::ScrollUp => self.scroll_by(-3),
            MouseEventKind::ScrollDown => self.scroll_by(3),
            _ => {}
        }
    }

    pub fn on_paste(&mut self, text: &str) {
        if self.overlay.is_none() {
            self.focus = Focus::Input;
            self.input.insert_str(text);
        }
    }

    /// Carry out `action`, bound to `key`.
    fn do_key(&mut self, action: KeyAction, key: KeyEvent) -> Vec<Action> {
        let examples = self.session.examples.len();
        match action {
            KeyAction::Quit => return vec![Action::Quit],
            KeyAction::Escape => return self.escape(),
            KeyAction::SetMode(mode) => self.set_mode(mode),
            KeyAction::NextMode => self.set_mode(self.session.mode.next()),
            KeyAction::OpenSettings => self.overlay = Some(Overlay::Settings { selected: 0 }),
            KeyAction::OpenHelp => self.overlay = Some(Overlay::Help),
            KeyAction::CloseOverlay => self.overlay = None,
            KeyAction::ToggleThinking => self.think_expanded = !self.think_expanded,
            KeyAction::ToggleWorking => self.show_working = !self.show_working,
            KeyAction::FocusNext => self.cycle_focus(true),
            KeyAction::FocusPrevious => self.cycle_focus(false),
            KeyAction::ScrollPageUp => self.scroll_page(false),
            KeyAction::ScrollPageDown => self.scroll_page(true),
            KeyAction::ScrollLineUp => self.scroll_by(-1),
            KeyAction::ScrollLineDown => self.scroll_by(1),
            KeyAction::ScrollTop => self.scroll.top = Some(0),
            KeyAction::Follow => self.scroll.top = None,
            KeyAction::Send => return self.submit(),
            KeyAction::Newline => self.input.newline(),
            KeyAction::LevelUp | KeyAction::LevelDown => {
                let up = action == KeyAction::LevelUp;
                let defaults = self.defaults();
                self.settings.choices.step_level(up, &defaults);
                self.flash_thinking();
                return vec![Action::SaveSettings];
            }
            KeyAction::Insert => {
                if let KeyCode::Char(c) = key.code {
                    self.input.insert(c);
                }
            }
            KeyAction::DeleteBack => self.input.backspace(),
            KeyAction::DeleteForward => self.input.delete(),
            KeyAction::CursorLeft => self.input.left(),
            KeyAction::CursorRight => self.input.right(),
            KeyAction::LineStart => self.input.home(),
            KeyAction::LineEnd => self.input.end(),
            KeyAction::UpOrHistory if self.input.is_empty() || self.input.on_first_line() => {
                self.input.history_prev(&self.session.history)
            }
            KeyAction::UpOrHistory => self.input.up(),
            KeyAction::DownOrHistory if self.input.on_last_line() => {
                self.input.history_next(&self.session.history)
            }
            KeyAction::DownOrHistory => self.input.down(),
            KeyAction::TypeIntoInput => {
                // Look the key up again as the input's; it is none of the panes' keys, which were
                // tried first.
                self.focus = Focus::Input;
                return self.on_key(key);
            }
            KeyAction::PreviousExample => self.example = self.example.saturating_sub(1),
            KeyAction::NextExample => {
                self.example = (self.example + 1).min(examples.saturating_sub(1))
            }
            KeyAction::AddExample => self.edit_example(examples),
            KeyAction::EditExample if examples > 0 => self.edit_example(self.example),
            KeyAction::DeleteExample if examples > 0 => {
                self.session.examples.remove(self.example.min(examples - 1));
                self.example = self.example.min(examples.saturating_sub(2));
                return vec![Action::SaveSession];
            }
            KeyAction::EditExample | KeyAction::DeleteExample => {}
            KeyAction::PrefillLoad => self.prefill("/load "),
            KeyAction::PrefillDraw => {
                self.prefill(&format!("/draw 4 {}", self.settings.choices.seed))
            }
            KeyAction::PreviousField | KeyAction::NextField => {
                if let Some(Overlay::Settings { selected }) = &mut self.overlay {
                    let n = Field::ALL.len();
                    let by = if action == KeyAction::NextField {
                        1
                    } else {
                        n - 1
                    };
                    *selected = (*selected + by) % n;
                }
            }
            KeyAction::FieldDown | KeyAction::FieldUp => {
                if let Some(Overlay::Settings { selected }) = self.overlay {
                    let defaults = self.defaults();
                    let up = action == KeyAction::FieldUp;
                    Field::ALL[selected].adjust(&mut self.settings.choices, &defaults, up);
                    return vec![Action::SaveSettings];
                }
            }
        }
        Vec::new()
    }

    fn escape(&mut self) -> Vec<Action> {
        if self.busy() {
            return self.cancel();
        }
        if let Target::EditExample(_) = self.target {
            self.target = Target::Send;
            self.input.take();
            self.focus = Focus::Examples;
        } else {
            self.focus = Focus::Input;
        }
        Vec::new()
    }

    fn cycle_focus(&mut self, forward: bool) {
        let mut order = vec![Focus::Input, Focus::Transcript, Focus::Thinking];
        if self.session.mode == Mode::FewShot {
            order.push(Focus::Examples);
        }
        let i = order.iter().position(|f| *f == self.focus).unwrap_or(0);
        let n = order.len();
        self.focus = order[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }];
    }

    fn scroll_by(&mut self, delta: isize) {
        let (total, visible) = self.scroll.seen.get();
        let max_top = total.saturating_sub(visible);
        let top = (self.scroll.top.unwrap_or(max_top) as isize + delta).clamp(0, max_top as isize)
            as usize;
        self.scroll.top = (top < max_top).then_some(top);
    }

    fn scroll_page(&mut self, down: bool) {
        let page = self.scroll.seen.get().1.saturating_sub(2).max(1) as isize;
        self.scroll_by(if down { page } else { -page });
    }

    fn prefill(&mut self, text: &str) {
        self.input.set_text(text);
        self.focus = Focus::Input;
    }

    /// Put worked example `i` (a new one past the end) in the input to edit.
    fn edit_example(&mut self, i: usize) {
        let text = self
            .session
            .examples
            .get(i)
            .map_or_else(String::new, |e| format!("{}\n{}", e.question, e.answer));
        self.prefill(&text);
        self.target = Target::EditExample(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key event that `key` matches.
    fn event(key: Key) -> KeyEvent {
        let (code, held) = match key {
            Key::Code(code) => (code, KeyModifiers::NONE),
            Key::Ctrl(c) => (KeyCode::Char(c), KeyModifiers::CONTROL),
            Key::Alt(code) => (code, KeyModifiers::ALT),
            Key::Shift(code) => (code, KeyModifiers::SHIFT),
            Key::Typed | Key::Any => (KeyCode::Char('x'), KeyModifiers::NONE),
        };
        KeyEvent::new(code, held)
    }

    /// Every state the keys can meet, as its active contexts.
    fn every_state() -> Vec<Vec<Context>> {
        let focuses = [
            Focus::Input,
            Focus::Transcript,
            Focus::Thinking,
            Focus::Examples,
        ];
        let mut states = vec![
            contexts(Some(Overlay::Help), Focus::Input, true),
            contexts(Some(Overlay::Settings { selected: 0 }), Focus::Input, true),
        ];
        for focus in focuses {
            for empty in [true, false] {
                states.push(contexts(None, focus, empty));
            }
        }
        states
    }

    #[test]
    fn every_key_the_help_lists_does_what_it_says() {
        // In every state where its context applies, no other binding shadows it.
        for binding in BINDINGS {
            for &(key, action) in binding.keys {
                let states: Vec<_> = every_state()
                    .into_iter()
                    .filter(|s| s.contains(&binding.context))
                    .collect();
                assert!(!states.is_empty(), "{:?} never applies", binding.context);
                for active in states {
                    let event = event(key);
                    assert_eq!(
                        lookup(event, &active),
                        Some(action),
                        "{} in {active:?}",
                        binding.label()
                    );
                }
            }
        }
    }

    #[test]
    fn keys_match_with_the_modifiers_the_table_allows() {
        let input = contexts(None, Focus::Input, false);
        let key = |code, held| lookup(KeyEvent::new(code, held), &input);
        assert_eq!(
            key(KeyCode::F(4), KeyModifiers::SHIFT),
            Some(KeyAction::OpenSettings)
        );
        assert_eq!(
            key(KeyCode::Enter, KeyModifiers::CONTROL),
            Some(KeyAction::Send)
        );
        let alt_shift = KeyModifiers::ALT | KeyModifiers::SHIFT;
        assert_eq!(key(KeyCode::Enter, alt_shift), Some(KeyAction::Newline));
        // AltGr types; Alt or Ctrl alone does not.
        let alt_gr = KeyModifiers::CONTROL | KeyModifiers::ALT;
        assert_eq!(key(KeyCode::Char('@'), alt_gr), Some(KeyAction::Insert));
        assert_eq!(key(KeyCode::Char('x'), KeyModifiers::ALT), None);
        assert_eq!(key(KeyCode::Char('x'), KeyModifiers::CONTROL), None);
        // Keys not in the table do nothing.
        assert_eq!(key(KeyCode::F(5), KeyModifiers::NONE), None);
        let examples = contexts(None, Focus::Examples, true);
        assert_eq!(
            lookup(
                KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE),
                &examples
            ),
            None
        );
    }

    #[test]
    fn labels_name_the_keys_and_group_those_that_do_the_same() {
        let labels: Vec<String> = BINDINGS.iter().map(Binding::label).collect();
        for want in [
            "Ctrl+C",
            "F1 / F2 / F3 / Ctrl+N",
            "F4, Ctrl+O",
            "empty input: + / −",
            "input: Alt+Enter, Shift+Enter",
            "examples: a / e, Enter / d, Del",
            "help: any key",
        ] {
            assert!(
                labels.iter().any(|l| l == want),
                "no {want:?} in {labels:?}"
            );
        }
    }
}
