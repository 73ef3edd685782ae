//! The `/commands` typed in the input: [`parse`] reads a line into a [`Command`], or says what
//! is wrong with it, and [`App::command`] carries it out.

use std::fmt;
use std::path::PathBuf;

use super::app::{Action, App, Overlay};
use super::session::{Level, Mode, draw_examples};
use super::settings::Field;
use crate::engine::ThinkLevel;
use crate::engine::{Choices, Defaults};

/// The commands as the help overlay lists them; the settings' own are listed from [`Field`].
pub const HELP: [(&str, &str); 5] = [
    ("/think LEVEL", "off · low · medium · high · max (adaptive)"),
    ("/theme NAME", "dark, light, high-contrast, or yours"),
    ("/draw N [SEED], /load PATH", "worked examples"),
    (
        "/clear, /mode M, /help",
        "clear · chat|fewshot|ladder · help",
    ),
    ("/quit, /exit, /bye", "quit, saving the session (as Ctrl+C)"),
];

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Quit,
    Settings,
    /// Empty the transcript, stopping whatever runs.
    Clear,
    Theme(String),
    Mode(Mode),
    /// Replace the worked examples with `n` from the generator; no seed means the settings' one.
    Draw {
        n: usize,
        seed: Option<u64>,
    },
    /// Think at a level: its steps (and adaptive stop, for max).
    Think(ThinkLevel),
    /// `/calc` without an argument flips the calculator.
    ToggleCalculator,
    /// Read worked examples from a JSONL file.
    Load(PathBuf),
    /// Set a setting; [`Field::set`] reads (and checks) the argument.
    Set(Field, String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    Unknown(String),
    /// A missing or malformed argument: the command's usage.
    Usage(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ParseError::Unknown(name) => write!(f, "unknown command /{name}; /help lists them"),
            ParseError::Usage(usage) => f.write_str(usage),
        }
    }
}

/// Read a command line, given without its slash.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let (name, arg) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let arg = arg.trim();
    Ok(match name {
        "help" | "?" => Command::Help,
        "quit" | "exit" | "bye" | "q" => Command::Quit,
        "settings" => Command::Settings,
        "clear" => Command::Clear,
        "theme" => Command::Theme(arg.to_string()),
        "mode" => Command::Mode(match arg {
            "chat" => Mode::Chat,
            "fewshot" | "few-shot" => Mode::FewShot,
            "ladder" => Mode::Ladder,
            _ => return Err(ParseError::Usage("/mode chat | fewshot | ladder")),
        }),
        "think" => Command::Think(
            ThinkLevel::parse(arg)
                .ok_or(ParseError::Usage("/think off | low | medium | high | max"))?,
        ),
        "draw" => parse_draw(arg).ok_or(ParseError::Usage("/draw N [SEED], N from 1 to 64"))?,
        "calc" if arg.is_empty() => Command::ToggleCalculator,
        "load" if arg.is_empty() => return Err(ParseError::Usage("/load PATH.jsonl")),
        "load" => Command::Load(PathBuf::from(arg)),
        _ => match Field::from_command(name) {
            Some(field) => Command::Set(field, arg.to_string()),
            None => return Err(ParseError::Unknown(name.to_string())),
        },
    })
}

/// Whether a settings command (as `ltm chat`'s option `name` gives it) would be taken, without
/// an app: the same parsing and limits, so that a bad option is refused, by its name, before the
/// app starts.
pub fn check(line: &str, name: &str) -> Result<(), String> {
    match parse(line).map_err(|e| format!("{name}: {e}"))? {
        Command::Set(field, arg) => {
            field.set_as(&mut Choices::default(), &Defaults::default(), &arg, name)
        }
        _ => Ok(()),
    }
}

/// `/draw [N [SEED]]`, N from 1 to 64 (4 when left out); words after the seed are ignored.
fn parse_draw(arg: &str) -> Option<Command> {
    let mut words = arg.split_whitespace();
    let n = words.next().map_or(Some(4), |w| w.parse().ok())?;
    let seed = match words.next() {
        Some(w) => Some(w.parse().ok()?),
        None => None,
    };
    (1..=64).contains(&n).then_some(Command::Draw { n, seed })
}

impl App {
    /// Run a `/command` (given without the slash); what is wrong with a bad one is flashed.
    pub fn command(&mut self, line: &str) -> Vec<Action> {
        match parse(line) {
            Ok(command) => self.run_command(command),
            Err(e) => {
                self.flash(Level::Error, e.to_string());
                Vec::new()
            }
        }
    }

    fn run_command(&mut self, command: Command) -> Vec<Action> {
        let defaults = self.defaults();
        match command {
            Command::Help => self.overlay = Some(Overlay::Help),
            Command::Quit => return vec![Action::Quit],
            Command::Settings => self.overlay = Some(Overlay::Settings { selected: 0 }),
            Command::Clear => {
                let mut actions = if self.busy() {
                    self.cancel()
                } else {
                    Vec::new()
                };
                self.session.entries.clear();
                self.scroll.top = None;
                actions.push(Action::SaveSession);
                return actions;
            }
            Command::Theme(name) => match self.themes.get(&name) {
                Some(theme) => {
                    self.theme = theme.clone();
                    self.settings.theme = name;
                    return vec![Action::SaveSettings];
                }
                None => {
                    let names = self.themes.names().join(", ");
                    self.flash(
                        Level::Error,
                        format!("no theme {name:?}; try one of: {names}"),
                    );
                }
            },
            Command::Mode(mode) => self.set_mode(mode),
            Command::Draw { n, seed } => {
                let seed = seed.unwrap_or(self.settings.choices.seed);
                let examples = self.fitting(draw_examples(n, seed));
                let (drawn, context) = (examples.len(), self.model.as_ref().map(|m| m.max_seq_len));
                self.session.examples = examples;
                self.example = 0;
                let text = match context {
                    Some(max) if drawn == 0 => format!(
                        "drew no examples (seed {seed}): not one would fit the model's context of {max} tokens beside a question"
                    ),
                    Some(max) if drawn < n => format!(
                        "drew {drawn} of {n} arithmetic examples (seed {seed}): more would not fit the model's context of {max} tokens beside a question"
                    ),
                    _ => format!("drew {n} arithmetic examples (seed {seed})"),
                };
                self.flash(Level::Info, text);
                return vec![Action::SaveSession];
            }
            Command::ToggleCalculator => {
                Field::Calculator.adjust(&mut self.settings.choices, &defaults, true);
                let value = Field::Calculator.value(&self.settings.choices, &defaults);
                self.flash(Level::Info, format!("calculator = {value}"));
                return vec![Action::SaveSettings];
            }
            Command::Think(level) => {
                self.settings.choices.set_level(level);
                self.flash_thinking();
                return vec![Action::SaveSettings];
            }
            Command::Load(path) => return vec![Action::LoadExamples(path)],
            Command::Set(field, arg) => {
                match field.set(&mut self.settings.choices, &defaults, &arg) {
                    Ok(()) => {
                        let value = field.value(&self.settings.choices, &self.defaults());
                        self.flash(Level::Info, format!("{} = {value}", field.label()));
                        return vec![Action::SaveSettings];
                    }
                    Err(e) => self.flash(Level::Error, e),
                }
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_into_commands() {
        assert_eq!(parse("?"), Ok(Command::Help));
        assert_eq!(parse("clear everything"), Ok(Command::Clear));
        assert_eq!(parse("mode few-shot"), Ok(Command::Mode(Mode::FewShot)));
        assert_eq!(parse("draw"), Ok(Command::Draw { n: 4, seed: None }));
        assert_eq!(
            parse("draw 3  9 more"),
            Ok(Command::Draw {
                n: 3,
                seed: Some(9)
            })
        );
        assert_eq!(parse("calc"), Ok(Command::ToggleCalculator));
        assert_eq!(parse("think high"), Ok(Command::Think(ThinkLevel::High)));
        for quit in ["quit", "exit", "bye"] {
            assert_eq!(parse(quit), Ok(Command::Quit));
        }
        assert!(matches!(parse("think deeper"), Err(ParseError::Usage(_))));
        assert_eq!(
            parse("calc  off "),
            Ok(Command::Set(Field::Calculator, "off".into()))
        );
        assert_eq!(
            parse("load a b.jsonl"),
            Ok(Command::Load("a b.jsonl".into()))
        );
        // Arguments are checked when set, where the setting knows its range.
        assert_eq!(
            parse("steps lots"),
            Ok(Command::Set(Field::Steps, "lots".into()))
        );
    }

    #[test]
    fn bad_lines_say_why() {
        let error = |line| parse(line).unwrap_err().to_string();
        assert_eq!(error("mode fast"), "/mode chat | fewshot | ladder");
        for line in ["draw 0", "draw 65", "draw x", "draw 3 y"] {
            assert_eq!(error(line), "/draw N [SEED], N from 1 to 64", "{line}");
        }
        assert_eq!(error("load"), "/load PATH.jsonl");
        assert_eq!(error("bogus 1"), "unknown command /bogus; /help lists them");
    }
}
