//! The TUI's state, and how engine events and sending move it: the reducer of engine events,
//! the queue of runs waiting for the engine, and turning the input into requests.
//! Keys are handled in `keymap`, `/commands` in `commands`. Nothing here draws or does I/O:
//! `ui` renders an `&App`, `mod.rs` carries out the [`Action`]s.

use std::cell::Cell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::input::Input;
use super::session::{Entry, Level, Mode, Run, STOCK_EXAMPLES, SampleText, Session, Status};
use super::settings::Settings;
use super::theme::{Theme, Themes};
use crate::engine::protocol::{Event, ModelInfo, Request, ThinkLevel};
use crate::engine::{Choices, Defaults, ladder};
use crate::tasks::prompt::{self, Example, Prompt, default_examples, load_jsonl};

/// What the state machine asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Submit(Box<Request>),
    Cancel,
    Quit,
    SaveSettings,
    SaveSession,
    /// Read this JSONL file and hand its text to [`App::examples_loaded`].
    LoadExamples(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Input,
    Transcript,
    Thinking,
    Examples,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    Help,
    Settings { selected: usize },
}

/// What Enter in the input does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Send,
    /// Save the input as worked example `i` (a new one when `i` is past the end).
    EditExample(usize),
}

/// The transcript's scroll position: `top` is the first line shown, `None` follows the end.
/// `seen` is (total lines, visible lines) as last drawn, so keys can page by what is on screen.
#[derive(Debug, Default)]
pub struct Scroll {
    pub top: Option<usize>,
    pub seen: Cell<(usize, usize)>,
}

/// Tokens kept free for the question when worked examples are drawn: a long word problem's.
const QUESTION_ROOM: usize = 64;

/// A transient message in the status line.
#[derive(Debug, Clone, PartialEq)]
pub struct Flash {
    pub level: Level,
    pub text: String,
    pub until: Instant,
}

pub struct App {
    pub session: Session,
    pub settings: Settings,
    pub model: Option<ModelInfo>,
    /// Why the engine stopped, when it could not load the model.
    pub engine_stopped: Option<String>,
    pub themes: Themes,
    pub theme: Theme,
    pub input: Input,
    pub target: Target,
    pub focus: Focus,
    pub overlay: Option<Overlay>,
    pub scroll: Scroll,
    /// Keep the thinking panel open after thinking ends.
    pub think_expanded: bool,
    /// Show each answer's working under it rather than folded away.
    pub show_working: bool,
    /// The selected worked example.
    pub example: usize,
    pub flash: Option<Flash>,
    /// Animation frame counter and the clock, advanced by [`App::on_tick`].
    pub tick: u64,
    pub now: Instant,
    /// When the request in flight began writing (for live tokens/s).
    pub writing_since: Option<Instant>,
    queue: VecDeque<u64>,
    in_flight: Option<u64>,
    next_id: u64,
}

impl App {
    pub fn new(session: Session, settings: Settings, themes: Themes) -> Self {
        let theme = themes.get_or_default(&settings.theme);
        let next_id = session.max_request_id() + 1;
        Self {
            session,
            settings,
            model: None,
            engine_stopped: None,
            themes,
            theme,
            input: Input::default(),
            target: Target::Send,
            focus: Focus::Input,
            overlay: None,
            scroll: Scroll::default(),
            think_expanded: false,
            show_working: false,
            example: 0,
            flash: None,
            tick: 0,
            now: Instant::now(),
            writing_since: None,
            queue: VecDeque::new(),
            in_flight: None,
            next_id,
        }
    }

    pub fn busy(&self) -> bool {
        self.in_flight.is_some() || !self.queue.is_empty()
    }

    pub fn defaults(&self) -> Defaults {
        self.model
            .as_ref()
            .map_or_else(Defaults::default, ModelInfo::defaults)
    }

    pub fn in_flight(&self) -> Option<&Run> {
        self.in_flight
            .and_then(|id| self.runs().find(|r| r.id() == id))
    }

    /// The run the thinking panel shows: the one in flight, else the latest one sent.
    pub fn think_run(&self) -> Option<&Run> {
        self.in_flight()
            .or_else(|| self.runs().filter(|r| r.status != Status::Queued).last())
    }

    fn runs(&self) -> impl Iterator<Item = &Run> {
        self.session.entries.iter().flat_map(Entry::runs)
    }

    fn run_mut(&mut self, id: u64) -> Option<&mut Run> {
        self.session
            .entries
            .iter_mut()
            .rev()
            .flat_map(Entry::runs_mut)
            .find(|r| r.id() == id)
    }

    /// A run still listening to the engine (not cancelled, failed or done).
    fn live_run(&mut self, id: u64) -> Option<&mut Run> {
        self.run_mut(id).filter(|r| r.status.is_live())
    }

    pub fn notice(&mut self, level: Level, text: impl Into<String>) {
        self.session.entries.push(Entry::Notice {
            level,
            text: text.into(),
        });
    }

    /// Flashes how the next request will think ("thinking: high (4 steps)").
    pub fn flash_thinking(&mut self) {
        let d = self.defaults();
        let steps = self.settings.choices.steps(&d);
        let text = match self.settings.choices.level(&d) {
            Some(ThinkLevel::Max) => format!("thinking: max (up to {steps} steps)"),
            Some(level) => format!("thinking: {level} ({steps} steps)"),
            None => format!("thinking: {steps} steps"),
        };
        self.flash(Level::Info, text);
    }

    pub fn flash(&mut self, level: Level, text: impl Into<String>) {
        self.flash = Some(Flash {
            level,
            text: text.into(),
            until: self.now + Duration::from_secs(4),
        });
    }

    /// Whether the screen changes by itself (a spinner, live figures, a message that expires):
    /// only then does the app redraw on a clock, so that it costs nothing while idle.
    pub fn animating(&self) -> bool {
        (self.model.is_none() && self.engine_stopped.is_none())
            || self.in_flight.is_some()
            || self.flash.is_some()
    }

    pub fn on_tick(&mut self, now: Instant) {
        self.tick = self.tick.wrapping_add(1);
        self.now = now;
        if self.flash.as_ref().is_some_and(|f| f.until <= now) {
            self.flash = None;
        }
    }

    // ---------------------------------------------------------------- engine events

    pub fn on_event(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Ready(info) => {
                // A session still on the stock examples gets as many as the model asks for, and
                // as fit its context.
                let stock = self.session.examples == default_examples(STOCK_EXAMPLES);
                let shots = info.default_shots.unwrap_or(STOCK_EXAMPLES);
                self.model = Some(info);
                if stock {
                    self.session.examples = self.fitting(default_examples(shots));
                }
                return self.pump();
            }
            Event::Warning { message, .. } => {
                // The ladder's requests share a prompt, and so its warnings: say it once.
                let said = matches!(self.session.entries.last(),
                    Some(Entry::Notice { text, .. }) if *text == message);
                if !said {
                    self.notice(Level::Warning, message);
                }
            }
            Event::Think { request, step } => {
                if let Some(run) = self.live_run(request) {
                    run.status = Status::Thinking;
                    run.think.push(step);
                }
            }
            Event::Token {
                request,
                sample,
                text,
                calc,
                ..
            } => {
                let now = self.now;
                if let Some(run) = self.live_run(request) {
                    run.status = Status::Writing;
                    let s = sample_mut(run, sample);
                    if calc {
                        s.mark_computed(s.text.len(), s.text.len() + text.len());
                    }
                    s.text.push_str(&text);
                    s.tokens += 1;
                    self.writing_since.get_or_insert(now);
                }
            }
            Event::Done { request, mut done } => {
                if let Some(run) = self.live_run(request) {
                    run.status = Status::Writing;
                    let s = sample_mut(run, done.sample);
                    // The sample keeps the text; the session stores it once.
                    s.text = std::mem::take(&mut done.text);
                    s.tokens = done.tokens;
                    s.done = Some(done);
                }
            }
            Event::Finished { request } => return self.end_run(request, Status::Done),
            Event::Cancelled { request } => return self.end_run(request, Status::Cancelled),
            Event::Error { request, message } => {
                let loading = request.is_none() && self.model.is_none();
                let text = match request {
                    Some(id) => format!("request {id} failed: {message}"),
                    None if loading => format!("the model could not be loaded: {message}"),
                    None => format!("engine error: {message}"),
                };
                self.notice(Level::Error, text);
                if let Some(id) = request {
                    return self.end_run(id, Status::Failed);
                }
                if loading {
                    self.engine_stopped = Some(message);
                }
            }
        }
        Vec::new()
    }

    fn end_run(&mut self, id: u64, status: Status) -> Vec<Action> {
        if let Some(run) = self.live_run(id) {
            run.status = status;
            if status == Status::Done {
                self.settle_verdict(id);
            }
        }
        if self.in_flight != Some(id) {
            return Vec::new();
        }
        self.in_flight = None;
        self.writing_since = None;
        let mut actions = self.pump();
        actions.push(Action::SaveSession);
        actions
    }

    /// Vote on a few-shot run's answers: once, as it ends, rather than on every frame drawn.
    fn settle_verdict(&mut self, id: u64) {
        let mut entries = self.session.entries.iter_mut().rev();
        if let Some(entry) = entries.find(|e| e.runs().iter().any(|r| r.id() == id)) {
            entry.settle_verdict();
        }
    }

    /// Submit the next queued request when the engine is ready and idle.
    fn pump(&mut self) -> Vec<Action> {
        if self.in_flight.is_some() || self.model.is_none() {
            return Vec::new();
        }
        while let Some(id) = self.queue.pop_front() {
            if let Some(run) = self.run_mut(id).filter(|r| r.status == Status::Queued) {
                run.status = Status::Sent;
                let request = run.request.clone();
                self.in_flight = Some(id);
                return vec![Action::Submit(Box::new(request))];
            }
        }
        Vec::new()
    }

    /// Stop the run in flight and drop the queue.
    pub(super) fn cancel(&mut self) -> Vec<Action> {
        let ids: Vec<u64> = self.queue.drain(..).chain(self.in_flight.take()).collect();
        for id in ids {
            if let Some(run) = self
                .run_mut(id)
                .filter(|r| r.status.is_live() || r.status == Status::Queued)
            {
                run.status = Status::Cancelled;
            }
        }
        self.writing_since = None;
        self.flash(Level::Info, "cancelled");
        vec![Action::Cancel, Action::SaveSession]
    }

    pub(super) fn set_mode(&mut self, mode: Mode) {
        self.session.mode = mode;
        if self.focus == Focus::Examples && mode != Mode::FewShot {
            self.focus = Focus::Input;
        }
    }

    // ---------------------------------------------------------------- sending

    /// Enter in the input: send the question, run the `/command`, or save the example edited.
    pub(super) fn submit(&mut self) -> Vec<Action> {
        let text = self.input.text();
        if text.trim().is_empty() {
            return Vec::new();
        }
        if let Target::EditExample(i) = self.target {
            return self.save_example(i, &text);
        }
        let command = text.trim_start().strip_prefix('/');
        if command.is_none() && self.model.is_none() {
            if self.engine_stopped.is_some() {
                self.flash(
                    Level::Error,
                    "no model to answer: it could not be loaded (see above); quit and start ltm with another --model",
                );
            } else {
                self.flash(
                    Level::Warning,
                    "the model is still loading; your message is kept",
                );
            }
            return Vec::new();
        }
        self.input.take();
        if self.session.history.last() != Some(&text) {
            self.session.history.push(text.clone());
        }
        self.scroll.top = None;
        if let Some(command) = command {
            return self.command(command.trim());
        }
        let question = text.trim().to_string();
        if let Some(notice) = self.model.as_ref().and_then(|m| m.scope_notice(&question)) {
            self.flash(Level::Info, notice);
        }
        match self.session.mode {
            Mode::Chat => {
                let run = self.new_run(self.chat_prompt(&question), self.settings.choices.clone());
                self.session.entries.push(Entry::User(question));
                self.enqueue(vec![run], |mut runs| Entry::Reply(runs.remove(0)))
            }
            Mode::FewShot => {
                // Each few-shot question starts its thought afresh.
                let choices = Choices {
                    warm_start: false,
                    ..self.settings.choices.clone()
                };
                let run = self.new_run(self.few_shot_prompt(&question), choices);
                self.enqueue(vec![run], |mut runs| Entry::FewShot {
                    question,
                    run: runs.remove(0),
                })
            }
            Mode::Ladder => {
                let runs = ladder(&self.defaults())
                    .iter()
                    .map(|steps| {
                        let prompt = if self.session.examples.is_empty() {
                            self.chat_prompt(&question)
                        } else {
                            self.few_shot_prompt(&question)
                        };
                        // One thought per budget, each exactly that many steps.
                        let choices = Choices {
                            level: None,
                            steps: Some(*steps),
                            tolerance: None,
                            samples: 1,
                            warm_start: false,
                            ..self.settings.choices.clone()
                        };
                        self.new_run(prompt, choices)
                    })
                    .collect();
                self.enqueue(runs, |runs| Entry::Ladder { question, runs })
            }
        }
    }

    fn chat_prompt(&self, question: &str) -> Prompt {
        let format = self.model.as_ref().and_then(|m| m.prompt_format.as_deref());
        prompt::chat(format, question)
    }

    /// The first of `examples` that fit the model's context in a few-shot prompt with room for a
    /// question and the answer (by the model's bytes per token; all of them before it has
    /// loaded, or when it does not say).
    pub(super) fn fitting(&self, mut examples: Vec<Example>) -> Vec<Example> {
        let Some(model) = &self.model else {
            return examples;
        };
        // The text measured ends with the answer prefix already.
        let budget = model
            .prompt_budget(self.settings.choices.max_tokens, 0)
            .saturating_sub(QUESTION_ROOM);
        let fits = |n: usize| {
            let text = prompt::answer_prompt(&examples[..n], "");
            model.estimated_tokens(&text).is_none_or(|t| t <= budget)
        };
        let kept = (1..=examples.len())
            .take_while(|&n| fits(n))
            .last()
            .unwrap_or(0);
        examples.truncate(kept);
        examples
    }

    fn few_shot_prompt(&self, question: &str) -> Prompt {
        prompt::few_shot(&self.session.examples, question)
    }

    /// A queued run for `prompt` with `choices`.
    fn new_run(&mut self, prompt: Prompt, choices: Choices) -> Run {
        let request = choices.request(self.next_id, prompt, &self.defaults());
        self.next_id += 1;
        Run::new(request, Status::Queued)
    }

    fn enqueue(&mut self, runs: Vec<Run>, entry: impl FnOnce(Vec<Run>) -> Entry) -> Vec<Action> {
        self.queue.extend(runs.iter().map(Run::id));
        self.session.entries.push(entry(runs));
        self.pump()
    }

    fn save_example(&mut self, i: usize, text: &str) -> Vec<Action> {
        let Some((question, answer)) = text.split_once('\n') else {
            self.flash(
                Level::Error,
                "write the question on the first line and the answer below it",
            );
            return Vec::new();
        };
        let example = Example {
            question: question.trim().into(),
            answer: answer.trim().into(),
        };
        match self.session.examples.get_mut(i) {
            Some(e) => *e = example,
            None => self.session.examples.push(example),
        }
        self.example = i.min(self.session.examples.len() - 1);
        self.input.take();
        self.target = Target::Send;
        self.focus = Focus::Examples;
        vec![Action::SaveSession]
    }

    /// The outcome of [`Action::LoadExamples`].
    pub fn examples_loaded(
        &mut self,
        path: &std::path::Path,
        text: Result<String, String>,
    ) -> Vec<Action> {
        let records = text.and_then(|t| load_jsonl(&t));
        match records {
            Ok(records) if !records.is_empty() => {
                self.session.examples = records
                    .into_iter()
                    .map(|r| Example::from_record(&r))
                    .collect();
                self.example = 0;
                let n = self.session.examples.len();
                self.flash(
                    Level::Info,
                    format!("loaded {n} examples from {}", path.display()),
                );
                vec![Action::SaveSession]
            }
            Ok(_) => {
                self.flash(Level::Error, format!("{}: no examples", path.display()));
                Vec::new()
            }
            Err(e) => {
                self.flash(Level::Error, format!("{}: {e}", path.display()));
                Vec::new()
            }
        }
    }
}

fn sample_mut(run: &mut Run, sample: usize) -> &mut SampleText {
    if run.samples.len() <= sample {
        run.samples.resize_with(sample + 1, SampleText::default);
    }
    &mut run.samples[sample]
}
