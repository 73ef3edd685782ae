//! The state machine and the renderer, driven the way the event loop drives them.
//!
//! (Over 800 lines: one test per behaviour of the app, each short, on one shared harness.)

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use super::app::{Action, App, Focus};
use super::commands;
use super::keymap::BINDINGS;
use super::session::draw_examples;
use super::session::{Entry, Mode, Session, Status, Verdict};
use super::settings::{Field, Settings};
use super::theme::Themes;
use super::ui;
use crate::device::DeviceChoice;
use crate::engine::protocol::{Check, Done, Draft, Event, Fit, ModelInfo, Request, ThinkStep};
use crate::model::config::LevelSteps;
use crate::runtime::ModelSource;
use crate::tasks::prompt::{ANSWER_PREFIX, BOS, answer_prompt, answer_stops, few_shot_prompt};

fn info(prompt_format: Option<&str>) -> ModelInfo {
    ModelInfo {
        name: "ltm-tiny".into(),
        device: "cpu".into(),
        parameters: 12_300_000,
        n_layers: 4,
        z_per_layer: 8,
        dim: 256,
        max_seq_len: 512,
        default_steps: 16,
        default_lr: 0.3,
        levels: LevelSteps {
            low: 4,
            medium: 16,
            high: 32,
            max: 64,
        },
        prompt_format: prompt_format.map(str::to_string),
        calculator: true,
        copy_numbers: false,
        check: false,
        default_temperature: None,
        default_shots: None,
        scope: None,
        intro: Default::default(),
        bytes_per_token: None,
    }
}

fn app_with(no_color: bool) -> App {
    let (themes, _) = Themes::load(None, no_color);
    App::new(Session::new(), Settings::default(), themes)
}

fn ready() -> App {
    let mut app = app_with(false);
    assert_eq!(
        app.on_event(Event::Ready(info(Some("Q: {question}\nA:")))),
        vec![]
    );
    app
}

fn press(app: &mut App, code: KeyCode) -> Vec<Action> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn press_with(app: &mut App, code: KeyCode, m: KeyModifiers) -> Vec<Action> {
    app.on_key(KeyEvent::new(code, m))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        assert_eq!(press(app, KeyCode::Char(c)), vec![]);
    }
}

/// Type `text`, press Enter, and return the one request submitted.
fn send(app: &mut App, text: &str) -> Request {
    type_text(app, text);
    match press(app, KeyCode::Enter).as_slice() {
        [Action::Submit(r)] => (**r).clone(),
        other => panic!("expected one Submit, got {other:?}"),
    }
}

/// Step `step` of `steps` of sample `sample`'s thinking, as the engine reports it.
fn think(request: u64, sample: usize, step: usize, steps: usize, nelbo: f64) -> Event {
    let step = ThinkStep {
        sample,
        step,
        steps,
        lr: 0.3,
        nelbo,
        nll_per_token: nelbo / 20.0,
        kl: 1.5 + step as f64,
        ppl_bound: (nelbo / 20.0).exp(),
        layer_kl: vec![0.5, 1.0, 1.5, 2.0],
        ms: 12.0,
    };
    Event::Think { request, step }
}

/// Text of sample 0 as the engine streams it.
fn token(request: u64, text: &str) -> Event {
    Event::Token {
        request,
        sample: 0,
        id: 1,
        text: text.into(),
        calc: false,
    }
}

fn done(request: u64, sample: usize, text: &str, nelbo: f64) -> Event {
    Event::Done {
        request,
        done: Done {
            sample,
            text: text.into(),
            answer: None,
            tokens: 5,
            nelbo,
            fit: Some(Fit {
                nll_per_token: 1.5,
                kl: 14.0,
                start_nll_per_token: 2.0,
                start_kl: 2.0,
            }),
            prompt_tokens: 20,
            think_steps: 16,
            level: None,
            think_ms: 190.0,
            gen_ms: 50.0,
            tok_s: 100.0,
            check: None,
        },
    }
}

fn render(app: &App, width: u16, height: u16) -> (String, ratatui::buffer::Buffer) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| ui::draw(f, app)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    let text = buffer
        .content()
        .chunks(width as usize)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n");
    (text, buffer)
}

fn screen(app: &App) -> String {
    render(app, 120, 40).0
}

fn assert_shows(screen: &str, wants: &[&str]) {
    for want in wants {
        assert!(screen.contains(want), "missing {want:?} in\n{screen}");
    }
}

// ---------------------------------------------------------------- key state machine

#[test]
fn chat_enter_submits_the_wrapped_turn_with_current_settings() {
    let mut app = ready();
    app.command("temp 0");
    app.command("warm on");
    let r = send(&mut app, "why is the sky blue?");
    assert_eq!(r.prompt, "Q: why is the sky blue?\nA:");
    assert_eq!(r.answer_prefix, "");
    assert_eq!(
        (
            r.think.steps,
            r.think.lr,
            r.think.samples,
            r.think.warm_start
        ),
        (16, 0.3, 1, true)
    );
    assert_eq!(
        (r.sample.temperature, r.sample.max_tokens),
        (0.0, crate::engine::protocol::DEFAULT_MAX_TOKENS)
    );
    assert_eq!(r.sample.stop, vec![BOS.to_string()]);
    assert!(app.input.is_empty());
    assert!(
        matches!(&app.session.entries[..], [Entry::User(q), Entry::Reply(_)] if q == "why is the sky blue?")
    );

    let mut raw = app_with(false);
    raw.on_event(Event::Ready(info(None)));
    assert_eq!(send(&mut raw, "plain").prompt, "plain");
}

#[test]
fn few_shot_enter_builds_the_few_shot_prompt_with_k_samples() {
    let mut app = ready();
    press(&mut app, KeyCode::F(2));
    assert_eq!(app.session.mode, Mode::FewShot);
    type_text(&mut app, "/samples 4");
    assert_eq!(press(&mut app, KeyCode::Enter), vec![Action::SaveSettings]);
    let r = send(&mut app, "What is 2 + 3?");
    assert_eq!(
        r.prompt,
        few_shot_prompt(&app.session.examples, "What is 2 + 3?")
    );
    assert_eq!(r.answer_prefix, ANSWER_PREFIX);
    assert_eq!(r.sample.stop, answer_stops());
    assert_eq!(r.think.samples, 4);
    assert!(!r.think.warm_start);
}

#[test]
fn ladder_submits_a_request_per_thinking_level_one_after_another() {
    let mut app = ready();
    // Whatever the level set, each rung runs its budget whole, with one thought.
    app.command("think max");
    app.command("samples 3");
    assert_eq!(
        (
            app.settings.choices.tolerance(&app.defaults()).is_some(),
            app.settings.choices.samples
        ),
        (true, 3)
    );
    press(&mut app, KeyCode::F(3));
    let first = send(&mut app, "What is 7 + 8?");
    let mut steps = vec![first.think.steps];
    let mut id = first.id;
    for _ in 0..4 {
        let actions = app.on_event(Event::Finished { request: id });
        let Some(Action::Submit(next)) = actions.first() else {
            panic!("{actions:?}")
        };
        assert_eq!(next.prompt, first.prompt);
        assert_eq!((next.think.tolerance, next.think.samples), (None, 1));
        steps.push(next.think.steps);
        id = next.id;
    }
    assert_eq!(steps, [0, 4, 16, 32, 64]);
    assert_eq!(
        app.on_event(Event::Finished { request: id }),
        vec![Action::SaveSession]
    );
    assert!(!app.busy());
}

#[test]
fn requests_wait_for_ready_and_for_each_other() {
    let mut app = app_with(false);
    type_text(&mut app, "hello");
    assert_eq!(press(&mut app, KeyCode::Enter), vec![]);
    assert_eq!(
        app.input.text(),
        "hello",
        "the message is kept while loading"
    );
    assert!(app.flash.is_some());
    app.on_event(Event::Ready(info(None)));
    let a = send(&mut app, "");
    type_text(&mut app, "second");
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        vec![],
        "queued behind the first"
    );
    let actions = app.on_event(Event::Finished { request: a.id });
    assert!(
        matches!(&actions[..], [Action::Submit(b), Action::SaveSession] if b.prompt == "second")
    );
}

#[test]
fn esc_cancels_at_once_and_later_output_is_ignored() {
    let mut app = ready();
    assert_eq!(press(&mut app, KeyCode::Esc), vec![], "nothing to cancel");
    let r = send(&mut app, "think hard");
    app.on_event(think(r.id, 0, 0, 16, 90.0));
    assert_eq!(
        press(&mut app, KeyCode::Esc),
        vec![Action::Cancel, Action::SaveSession]
    );
    assert!(!app.busy());
    app.on_event(token(r.id, "late"));
    assert_eq!(app.on_event(Event::Cancelled { request: r.id }), vec![]);
    let run = &app.session.entries[1].runs()[0];
    assert_eq!(run.status, Status::Cancelled);
    assert_eq!(run.samples[0].text, "");
}

#[test]
fn ctrl_c_quits_even_mid_thought() {
    let mut app = ready();
    let r = send(&mut app, "x");
    app.on_event(think(r.id, 0, 0, 16, 90.0));
    assert_eq!(
        press_with(&mut app, KeyCode::Char('c'), KeyModifiers::CONTROL),
        vec![Action::Quit]
    );
}

#[test]
fn alt_and_shift_enter_insert_newlines() {
    let mut app = ready();
    type_text(&mut app, "a");
    assert_eq!(
        press_with(&mut app, KeyCode::Enter, KeyModifiers::ALT),
        vec![]
    );
    type_text(&mut app, "b");
    assert_eq!(
        press_with(&mut app, KeyCode::Enter, KeyModifiers::SHIFT),
        vec![]
    );
    type_text(&mut app, "c");
    assert_eq!(app.input.text(), "a\nb\nc");
    assert_eq!(send(&mut app, "").prompt, "Q: a\nb\nc\nA:");
}

#[test]
fn slash_commands_change_settings() {
    let mut app = ready();
    for (cmd, _) in [
        ("/steps 32", ()),
        ("/lr 0.5", ()),
        ("/topk 40", ()),
        ("/topp 0.9", ()),
        ("/max 50", ()),
        ("/seed 7", ()),
        ("/adaptive 0.01", ()),
    ] {
        type_text(&mut app, cmd);
        assert_eq!(
            press(&mut app, KeyCode::Enter),
            vec![Action::SaveSettings],
            "{cmd}"
        );
    }
    let r = send(&mut app, "q");
    assert_eq!(
        (r.think.steps, r.think.lr, r.think.tolerance),
        (32, 0.5, Some(0.01))
    );
    assert_eq!(
        (
            r.sample.top_k,
            r.sample.top_p,
            r.sample.max_tokens,
            r.sample.seed
        ),
        (Some(40), Some(0.9), 50, 7)
    );

    assert_eq!(app.command("adaptive off"), vec![Action::SaveSettings]);
    assert_eq!(app.settings.choices.tolerance, None);
    assert_eq!(app.command("theme light"), vec![Action::SaveSettings]);
    assert_eq!(
        (app.theme.name.as_str(), app.settings.theme.as_str()),
        ("light", "light")
    );
    assert_eq!(app.command("steps lots"), vec![]);
    assert!(
        app.flash
            .as_ref()
            .unwrap()
            .text
            .contains("/steps: thinking steps must be a number from 0 to 10000")
    );
    assert_eq!(app.command("temp -1"), vec![]);
    assert!(
        app.flash
            .as_ref()
            .unwrap()
            .text
            .contains("from 0 to 10, not -1")
    );
    assert_eq!(app.command("think high"), vec![Action::SaveSettings]);
    assert_eq!(app.settings.choices.steps(&app.defaults()), 32);
    for quit in ["quit", "exit", "bye"] {
        assert_eq!(app.command(quit), vec![Action::Quit], "/{quit}");
    }
    assert_eq!(app.command("bogus"), vec![]);
    assert!(app.flash.as_ref().unwrap().text.contains("unknown command"));
    app.command("help");
    assert!(screen(&app).contains("Alt+Enter, Shift+Enter"));
}

/// The settings panel opened and moved down to `field`'s row; the screen.
fn settings_at(app: &mut App, field: Field) -> String {
    app.command("settings");
    let row = Field::ALL.iter().position(|f| *f == field).unwrap();
    for _ in 0..row {
        press(app, KeyCode::Down);
    }
    screen(app)
}

#[test]
fn the_calculator_follows_the_model_until_set() {
    let mut app = ready();
    let r = send(&mut app, "q");
    assert!(r.sample.calculator, "the model's default");
    app.on_event(Event::Cancelled { request: r.id });
    assert_eq!(app.command("calc off"), vec![Action::SaveSettings]);
    assert_eq!(app.settings.choices.calculator, Some(false));
    assert!(
        app.flash
            .as_ref()
            .unwrap()
            .text
            .contains("calculator = off")
    );
    assert_eq!(app.command("calc"), vec![Action::SaveSettings], "toggles");
    assert_eq!(app.settings.choices.calculator, Some(true));
    assert_eq!(app.command("calc auto"), vec![Action::SaveSettings]);
    assert_eq!(app.settings.choices.calculator, None);
    assert_eq!(app.command("calc maybe"), vec![]);
    assert!(app.flash.as_ref().unwrap().text.contains("/calc expects"));
    // In the settings panel, ←/→ toggles.
    let s = settings_at(&mut app, Field::Calculator);
    assert!(s.contains("calculator") && s.contains("auto (on)"), "{s}");
    press(&mut app, KeyCode::Right);
    assert_eq!(app.settings.choices.calculator, Some(false));
    press(&mut app, KeyCode::Esc);
    assert!(!send(&mut app, "q").sample.calculator);
}

#[test]
fn copying_numbers_follows_the_model_until_set() {
    let mut app = ready();
    let r = send(&mut app, "q");
    assert!(!r.sample.copy_numbers, "the model's default");
    app.on_event(Event::Cancelled { request: r.id });
    assert_eq!(app.command("copy on"), vec![Action::SaveSettings]);
    assert_eq!(app.settings.choices.copy_numbers, Some(true));
    let s = settings_at(&mut app, Field::CopyNumbers);
    assert!(s.contains("copy numbers") && s.contains("on"), "{s}");
    press(&mut app, KeyCode::Left);
    assert_eq!(app.settings.choices.copy_numbers, Some(false));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.command("copy auto"), vec![Action::SaveSettings]);
    let r = send(&mut app, "q");
    assert!(!r.sample.copy_numbers);
    app.on_event(Event::Cancelled { request: r.id });
    assert_eq!(app.command("copy"), vec![]);
    assert!(app.flash.as_ref().unwrap().text.contains("/copy expects"));
}

#[test]
fn computed_text_is_drawn_in_its_own_colour() {
    let mut app = ready();
    let r = send(&mut app, "six?");
    for (text, calc) in [
        (" It is <<2*3=", false),
        ("6", true),
        (">>", true),
        ("6 ok", false),
    ] {
        app.on_event(Event::Token {
            request: r.id,
            sample: 0,
            id: 1,
            text: text.into(),
            calc,
        });
    }
    let sample = &app.session.entries[1].runs()[0].samples[0];
    assert_eq!(sample.computed, [(13, 16)]);
    app.on_event(done(r.id, 0, " It is <<2*3=6>>6 ok", 80.0));
    let (text, buffer) = render(&app, 120, 40);
    let row = text
        .lines()
        .position(|l| l.contains("It is <<2*3=6>>6 ok"))
        .unwrap();
    let line = text.lines().nth(row).unwrap();
    let col = line[..line.find("<<").unwrap()].chars().count();
    let fg = |c: usize| buffer.content()[row * 120 + c].fg;
    let t = &app.theme;
    assert_eq!(fg(col), t.assistant, "what the model wrote");
    for c in col + 6..col + 9 {
        assert_eq!(Some(fg(c)), t.computed().fg, "6>> was computed");
    }
    assert_eq!(fg(col + 9), t.assistant);
    assert_ne!(t.computed().fg, Some(t.assistant));
}

#[test]
fn plus_and_minus_step_through_thinking_levels_when_input_is_empty() {
    let mut app = ready();
    let mut seen = Vec::new();
    for _ in 0..3 {
        assert_eq!(
            press(&mut app, KeyCode::Char('+')),
            vec![Action::SaveSettings]
        );
        seen.push(app.settings.choices.steps(&app.defaults()));
    }
    press(&mut app, KeyCode::Char('-'));
    seen.push(app.settings.choices.steps(&app.defaults()));
    assert_eq!(seen, [32, 64, 64, 32]);
    assert!(screen(&app).contains("high · 32 steps"));
    press(&mut app, KeyCode::Char('+'));
    assert!(
        app.settings.choices.tolerance(&app.defaults()).is_some(),
        "max thinks adaptively"
    );
    assert!(screen(&app).contains("max · up to 64 steps"));
    assert!(
        screen(&app).contains("thinking: max (up to 64 steps)"),
        "the status line says what changed"
    );
    type_text(&mut app, "1");
    press(&mut app, KeyCode::Char('+'));
    assert_eq!(
        app.input.text(),
        "1+",
        "typed, not a level change, once there is text"
    );
}

#[test]
fn at_80_columns_the_header_keeps_the_thinking_level_in_view() {
    let app = ready();
    let header = |width| {
        let (s, _) = render(&app, width, 24);
        s.lines().next().unwrap().to_string()
    };
    let wide = header(160);
    assert!(
        wide.contains("12.3M params") && wide.contains("F2 Few-shot"),
        "{wide}"
    );
    for width in [80, 60] {
        let h = header(width);
        assert!(h.contains("medium · 16 steps"), "{width}: {h}");
        assert!(
            h.contains("ltm-tiny") && h.contains("F1 Chat"),
            "{width}: {h}"
        );
        assert!(!h.contains("params"), "details go first: {h}");
    }
    assert!(header(80).contains("thinking medium"));
    assert!(
        !header(60).contains("Few-shot"),
        "then the other tabs' titles"
    );
}

#[test]
fn control_characters_never_reach_the_terminal() {
    let mut app = ready();
    app.flash(
        crate::tui::Level::Error,
        "cannot load evil\x1b]0;TITLE\x07\x1b[2J.jsonl",
    );
    let (s, _) = render(&app, 100, 24);
    // ratatui leaves them out of its cells.
    assert!(!s.chars().any(|c| c.is_control() && c != '\n'), "{s:?}");
    assert!(s.contains("evil]0;TITLE[2J.jsonl"), "{s}");
}

#[test]
fn history_recall_with_up_and_down() {
    let mut app = ready();
    let a = send(&mut app, "one");
    app.on_event(Event::Finished { request: a.id });
    type_text(&mut app, "/seed 3");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input.text(), "/seed 3");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input.text(), "one");
    press(&mut app, KeyCode::Down);
    assert_eq!(app.input.text(), "/seed 3");
    press(&mut app, KeyCode::Down);
    assert_eq!(app.input.text(), "");
}

#[test]
fn worked_examples_are_edited_added_deleted_and_loaded() {
    let mut app = ready();
    press(&mut app, KeyCode::F(2));
    let n = app.session.examples.len();
    while app.focus != Focus::Examples {
        press(&mut app, KeyCode::Tab);
    }
    press(&mut app, KeyCode::Char('a'));
    assert_eq!(app.focus, Focus::Input);
    type_text(&mut app, "What is 1 + 1?");
    press_with(&mut app, KeyCode::Enter, KeyModifiers::ALT);
    type_text(&mut app, "1 + 1 = 2.");
    assert_eq!(press(&mut app, KeyCode::Enter), vec![Action::SaveSession]);
    assert_eq!(app.session.examples.len(), n + 1);
    assert_eq!(app.session.examples[n].answer, "1 + 1 = 2.");
    assert_eq!((app.focus, app.example), (Focus::Examples, n));
    assert_eq!(
        press(&mut app, KeyCode::Char('d')),
        vec![Action::SaveSession]
    );
    assert_eq!(app.session.examples.len(), n);

    press(&mut app, KeyCode::Char('l'));
    type_text(&mut app, "ex.jsonl");
    let path = std::path::PathBuf::from("ex.jsonl");
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        vec![Action::LoadExamples(path.clone())]
    );
    let jsonl = "{\"question\":\"a?\",\"answer\":\"b\",\"final\":\"1\"}\n{\"question\":\"c?\",\"final\":\"2\"}\n";
    assert_eq!(
        app.examples_loaded(&path, Ok(jsonl.into())),
        vec![Action::SaveSession]
    );
    assert_eq!(
        app.session
            .examples
            .iter()
            .map(|e| e.answer.as_str())
            .collect::<Vec<_>>(),
        ["b", "#### 2"]
    );
    assert_eq!(app.examples_loaded(&path, Err("gone".into())), vec![]);
    assert_eq!(app.command("draw 3 9"), vec![Action::SaveSession]);
    assert_eq!(app.session.examples.len(), 3);
}

#[test]
fn page_keys_pause_and_resume_auto_follow() {
    let mut app = ready();
    for i in 0..40 {
        app.notice(super::session::Level::Info, format!("line {i}"));
    }
    screen(&app);
    press(&mut app, KeyCode::PageUp);
    let top = app.scroll.top.expect("scrolled up");
    assert!(screen(&app).contains("more lines"));
    app.notice(super::session::Level::Info, "new");
    screen(&app);
    assert_eq!(
        app.scroll.top,
        Some(top),
        "the view stays put while output arrives"
    );
    press(&mut app, KeyCode::PageDown);
    press(&mut app, KeyCode::PageDown);
    assert_eq!(app.scroll.top, None, "back at the bottom: following again");
}

// ---------------------------------------------------------------- rendering

#[test]
fn chat_screen_streams_the_reply() {
    let mut app = ready();
    let r = send(&mut app, "hello model");
    app.on_event(token(r.id, " Hello"));
    app.on_event(token(r.id, " there"));
    let s = screen(&app);
    assert_shows(
        &s,
        &[
            "ltm-tiny",
            "cpu",
            "12.3M params",
            "F1 Chat",
            "you",
            "hello model",
            "Hello there▍",
            "Esc stop",
        ],
    );
}

#[test]
fn thinking_panel_mid_thought_shows_progress_curves_and_layers() {
    let mut app = ready();
    let r = send(&mut app, "think");
    for (i, nelbo) in [120.0, 101.5, 87.25].into_iter().enumerate() {
        app.on_event(think(r.id, 0, i, 16, nelbo));
    }
    let s = screen(&app);
    assert_shows(
        &s,
        &[
            "step 3/16",
            "−ELBO 87.25",
            "NLL/tok",
            "ppl ≤",
            "lr 0.3000",
            "KL per layer",
            "L1",
            "L4",
            "thinking · step 3/16 · NLL 4.36/token, −27 %",
        ],
    );
}

#[test]
fn thinking_panel_collapses_to_a_summary_after_the_answer() {
    let mut app = ready();
    let r = send(&mut app, "think");
    for i in 0..16 {
        app.on_event(think(r.id, 0, i, 16, 100.0 - i as f64));
    }
    app.on_event(token(r.id, "42"));
    app.on_event(done(r.id, 0, "The answer is 42.", 85.0));
    app.on_event(Event::Finished { request: r.id });
    let s = screen(&app);
    assert_shows(
        &s,
        &[
            "▸ thought 16 steps · NLL 1.50 nats/token (ppl 4.5), −25 % by thinking, KL +12 nats",
            "190 ms",
            "Ctrl+T expand",
            "The answer is 42.",
            "100.0 tok/s",
        ],
    );
    assert!(!s.contains("KL per layer"));
    press_with(&mut app, KeyCode::Char('t'), KeyModifiers::CONTROL);
    assert!(screen(&app).contains("KL per layer"));
}

#[test]
fn a_checked_answer_shows_the_draft_kept_and_the_drafts_answers() {
    let mut app = ready();
    let r = send(&mut app, "Sam has 14 apples and buys 9 more. How many now?");
    app.on_event(token(r.id, " He has 14+9 = 24 apples.\n#### 24"));
    let Event::Done {
        request,
        done: mut d,
    } = done(r.id, 0, " He has 14+9 = 23 apples.\n#### 23", 85.0)
    else {
        unreachable!()
    };
    let draft = |steps, answer: &str, nelbo| Draft {
        steps,
        drawn: false,
        held: false,
        answer: Some(answer.into()),
        nelbo,
        flaw: None,
        unused: 0,
        text: String::new(),
    };
    let drawn = |answer: &str| Draft {
        drawn: true,
        ..draft(0, answer, None)
    };
    d.answer = Some("23".into());
    d.check = Some(Check {
        drafts: vec![
            draft(8, "24", Some(30.0)),
            draft(2, "23", Some(20.0)),
            draft(0, "23", None),
            drawn("23"),
            Draft {
                flaw: Some("14+14 uses 14 2 times; the question gives it 1".into()),
                ..drawn("28")
            },
            drawn("23"),
        ],
        kept: 1,
    });
    app.on_event(Event::Done { request, done: d });
    app.on_event(Event::Finished { request: r.id });
    let check = "checked: drafts 24 · 23 · 23 (8, 2, 0 steps) · 23 ×2 · 28 (3 drawn) · 1 with a flaw: kept 23";
    assert_shows(&screen(&app), &["Answer: 23", check]);
    press_with(&mut app, KeyCode::Char('w'), KeyModifiers::CONTROL);
    let working = screen(&app);
    assert!(
        working.contains("14+9 = 23") && !working.contains("= 24"),
        "the streamed draft gives way to the one kept:\n{working}"
    );
}

#[test]
fn the_answer_comes_first_and_ctrl_w_unfolds_its_working() {
    let mut app = ready();
    let r = send(&mut app, "Sam has 14 apples and buys 9 more. How many now?");
    let working = " He has 14+9 = 23 apples.\n#### 23";
    app.on_event(token(r.id, working));
    assert!(screen(&app).contains("He has 14+9 = 23 apples."), "streams");
    let Event::Done {
        request,
        done: mut d,
    } = done(r.id, 0, working, 85.0)
    else {
        unreachable!()
    };
    d.answer = Some("23".into());
    app.on_event(Event::Done { request, done: d });
    app.on_event(Event::Finished { request: r.id });
    let s = screen(&app);
    assert!(s.contains("Answer: 23"), "{s}");
    assert!(s.contains("Ctrl+W shows the working"), "{s}");
    assert!(!s.contains("14+9"), "the working is folded:\n{s}");
    press_with(&mut app, KeyCode::Char('w'), KeyModifiers::CONTROL);
    let s = screen(&app);
    assert_shows(
        &s,
        &[
            "Answer: 23",
            "He has 14+9 = 23 apples.",
            "Ctrl+W folds the working",
        ],
    );
    // A model without an answer format (a text model) shows its text as it is.
    let mut app = app_with(false);
    app.on_event(Event::Ready(info(None)));
    let r = send(&mut app, "Once upon a time");
    app.on_event(done(r.id, 0, " there were 3 bears.", 85.0));
    app.on_event(Event::Finished { request: r.id });
    let s = screen(&app);
    assert!(
        s.contains("there were 3 bears.") && !s.contains("Answer:"),
        "{s}"
    );
    assert!(!s.contains("Ctrl+W"), "{s}");
}

#[test]
fn few_shot_screen_shows_samples_answers_and_votes() {
    let mut app = ready();
    press(&mut app, KeyCode::F(2));
    app.command("samples 3");
    let r = send(&mut app, "What is 40 + 2?");
    for (i, text, nelbo) in [
        (0, " 40 + 2 = 42. The answer is 42.", 80.0),
        (1, " The answer is 41.", 70.0),
        (2, " 42", 90.0),
    ] {
        app.on_event(think(r.id, i, 0, 16, nelbo));
        app.on_event(done(r.id, i, text, nelbo));
    }
    app.on_event(Event::Finished { request: r.id });
    let s = screen(&app);
    assert_shows(
        &s,
        &[
            "F2 Few-shot",
            "worked examples (4)",
            "What is 40 + 2?",
            "#1 → 42",
            "#2 → 41",
            "agreement 2/3",
            "majority 42",
            "ELBO-best 41",
        ],
    );
}

#[test]
fn a_few_shot_verdict_is_settled_when_the_run_is_done() {
    let mut app = ready();
    press(&mut app, KeyCode::F(2));
    app.command("samples 2");
    let r = send(&mut app, "What is 40 + 2?");
    app.on_event(done(r.id, 0, " The answer is 42.", 80.0));
    app.on_event(done(r.id, 1, " 41", 70.0));
    let verdict = |app: &App| app.session.entries[0].runs()[0].verdict.clone();
    assert_eq!(verdict(&app), None, "every sample is done, the run is not");
    assert!(!screen(&app).contains("agreement"));
    app.on_event(Event::Finished { request: r.id });
    assert_eq!(
        verdict(&app),
        Some(Verdict {
            majority: Some("42".into()),
            agreement: 1,
            elbo_best: Some("41".into()),
        })
    );
    assert!(screen(&app).contains("agreement 1/2  ·  majority 42  ·  ELBO-best 41"));
}

#[test]
fn ladder_screen_shows_four_columns() {
    let mut app = ready();
    press(&mut app, KeyCode::F(3));
    let mut r = send(&mut app, "What is 9 + 9?");
    for (k, answer) in ["17", "18", "18", "18"].iter().enumerate() {
        if r.think.steps > 0 {
            app.on_event(think(r.id, 0, 0, r.think.steps, 60.0 - k as f64));
        }
        app.on_event(done(r.id, 0, &format!(" 9 + 9 = {answer}."), 50.0));
        match app.on_event(Event::Finished { request: r.id }).first() {
            Some(Action::Submit(next)) => r = (**next).clone(),
            _ => assert_eq!(k, 3),
        }
    }
    let s = screen(&app);
    assert_shows(
        &s,
        &[
            "F3 Ladder",
            "0 steps",
            "4 steps",
            "16 steps",
            "64 steps",
            "prior thought",
            "→ 17",
            "→ 18",
        ],
    );
    let header = s.lines().find(|l| l.contains("0 steps")).unwrap();
    assert!(
        header.find("4 steps") < header.find("64 steps"),
        "side by side: {header}"
    );
    // The title says which prompt the ladder asks with.
    let n = app.session.examples.len();
    assert!(
        n > 1 && s.contains(&format!("few-shot prompt, {n} worked examples")),
        "{s}"
    );
    app.session.examples.clear();
    assert!(screen(&app).contains("the chat prompt"));
}

#[test]
fn engine_errors_become_messages() {
    let mut app = ready();
    let r = send(&mut app, "x");
    let actions = app.on_event(Event::Error {
        request: Some(r.id),
        message: "out of memory".into(),
    });
    assert_eq!(actions, vec![Action::SaveSession]);
    app.on_event(Event::Error {
        request: None,
        message: "device lost".into(),
    });
    for _ in 0..2 {
        app.on_event(Event::Warning {
            request: r.id,
            message: "prompt cut".into(),
        });
    }
    let s = screen(&app);
    assert_eq!(s.matches("prompt cut").count(), 1, "{s}");
    assert_shows(
        &s,
        &[
            "request 1 failed: out of memory",
            "engine error: device lost",
            "prompt cut",
            "failed",
        ],
    );
}

#[test]
fn too_small_terminal_gets_a_message() {
    let app = ready();
    let s = render(&app, 50, 12).0;
    assert!(s.contains("terminal too small"), "{s}");
    assert!(s.contains("50×12"));
    assert!(render(&app, 60, 16).0.contains("F1 Chat"));
}

#[test]
fn a_model_that_cannot_be_loaded_is_said_in_the_header_and_on_enter() {
    let mut app = app_with(false);
    app.on_event(Event::Error {
        request: None,
        message: "m/config.json: `dim` must be positive".into(),
    });
    let s = screen(&app);
    assert!(s.contains("no model (it could not be loaded)"), "{s}");
    assert!(!s.contains("loading model"), "{s}");
    assert!(s.contains("`dim` must be positive"), "{s}");
    type_text(&mut app, "hello");
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    let flash = app.flash.as_ref().unwrap();
    assert_eq!(flash.level, super::session::Level::Error);
    assert!(flash.text.contains("another --model"), "{}", flash.text);
}

#[test]
fn overlays_and_loading_screen_render() {
    let mut app = app_with(false);
    assert!(screen(&app).contains("loading model"));
    app.on_event(Event::Ready(info(None)));
    press(&mut app, KeyCode::F(4));
    let s = screen(&app);
    assert!(
        s.contains("thinking steps") && s.contains("medium (16)"),
        "{s}"
    );
    press(&mut app, KeyCode::Right);
    assert_eq!(app.settings.choices.steps(&app.defaults()), 32);
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('?'));
    assert!(screen(&app).contains("keys · any key closes"));
}

#[test]
fn the_help_lists_every_key_binding_and_command() {
    let mut app = ready();
    press(&mut app, KeyCode::F(12));
    let s = screen(&app);
    for binding in BINDINGS {
        let line = format!("{}  {}", binding.label(), binding.help);
        assert!(s.contains(&line), "missing {line:?} in\n{s}");
    }
    for (command, what) in commands::HELP {
        assert!(s.contains(&format!("{command}  {what}")), "{s}");
    }
}

#[test]
fn no_color_renders_without_colours() {
    let mut app = app_with(true);
    app.on_event(Event::Ready(info(None)));
    let r = send(&mut app, "x");
    app.on_event(think(r.id, 0, 0, 16, 90.0));
    let (_, buffer) = render(&app, 120, 40);
    assert!(
        buffer
            .content()
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
    );
    let (_, coloured) = render(&ready(), 120, 40);
    assert!(coloured.content().iter().any(|c| c.fg != Color::Reset));
}

#[test]
fn the_model_sets_how_many_worked_examples_a_new_session_has() {
    let mut app = app_with(false);
    app.on_event(Event::Ready(ModelInfo {
        default_shots: Some(1),
        ..info(None)
    }));
    assert_eq!(app.session.examples, crate::tasks::default_examples(1));
    // Examples the user chose are left alone.
    let mut app = app_with(false);
    app.session.examples.truncate(2);
    app.on_event(Event::Ready(ModelInfo {
        default_shots: Some(0),
        ..info(None)
    }));
    assert_eq!(app.session.examples.len(), 2);
}

#[test]
fn first_contact_says_what_the_model_is_for_and_offers_its_prompts() {
    let mut app = app_with(false);
    let mut model = info(None);
    model.intro = crate::runtime::Intro {
        about: Some("A tiny model for sums.".into()),
        prompts: vec![crate::runtime::TryPrompt {
            prompt: "What is 2 plus 3?".into(),
            answer: Some("5".into()),
        }],
    };
    app.on_event(Event::Ready(model));
    let s = screen(&app);
    assert!(s.contains("ltm-tiny: A tiny model for sums."), "{s}");
    assert!(s.contains("Try:") && s.contains("What is 2 plus 3?"), "{s}");
    // Without an intro, only the mode's help.
    let s = screen(&ready());
    assert!(!s.contains("Try:") && s.contains("Ask anything"), "{s}");
}

#[test]
fn a_model_with_a_scope_says_what_it_is_for_and_notes_a_prompt_without_numbers() {
    let mut app = app_with(false);
    app.on_event(Event::Ready(ModelInfo {
        scope: Some("a model for arithmetic word problems".into()),
        ..info(None)
    }));
    let s = screen(&app);
    assert!(
        s.contains("ltm-tiny is a model for arithmetic word problems.")
            && !s.contains("Ask anything"),
        "{s}"
    );
    send(&mut app, "Sam has 3 apples and buys 4 more. How many now?");
    assert!(app.flash.is_none(), "a word problem needs no notice");
    type_text(&mut app, "hello");
    press(&mut app, KeyCode::Enter);
    let notice = &app.flash.as_ref().expect("a notice").text;
    assert!(notice.contains("no number given"), "{notice}");
    assert!(
        matches!(app.session.entries.last(), Some(Entry::Reply(_))),
        "and it is still answered"
    );
    // A general model (no scope) never notes it.
    let mut app = ready();
    send(&mut app, "hello");
    assert!(app.flash.is_none());
}

#[test]
fn drawn_examples_are_as_many_as_fit_the_context_with_a_question() {
    let mut app = app_with(false);
    let short = ModelInfo {
        max_seq_len: 256,
        bytes_per_token: Some(3.0),
        ..info(Some("Q: {question}\nA:"))
    };
    app.on_event(Event::Ready(short.clone()));
    app.command("draw 8 3");
    let kept = app.session.examples.clone();
    assert!(kept.len() < 8, "{}", kept.len());
    let flash = app.flash.clone().unwrap().text;
    assert!(
        flash.contains(&format!("drew {} of 8", kept.len())) && flash.contains("256 tokens"),
        "{flash}"
    );
    // What was kept fits beside a question by the model's measure; one more would not.
    let tokens = |n: usize| {
        let drawn = draw_examples(8, 3);
        short
            .estimated_tokens(&answer_prompt(&drawn[..n], ""))
            .unwrap()
    };
    let budget = short.prompt_budget(app.settings.choices.max_tokens, 0) - 64;
    assert!(tokens(kept.len()) <= budget && tokens(kept.len() + 1) > budget);
    // A model that does not say how long its tokens are keeps what was drawn.
    app.on_event(Event::Ready(info(None)));
    app.command("draw 8 3");
    assert_eq!(app.session.examples.len(), 8);
    // A long context takes them all.
    let mut app = app_with(false);
    app.on_event(Event::Ready(ModelInfo {
        max_seq_len: 100_000,
        ..short
    }));
    app.command("draw 8 3");
    assert_eq!(app.session.examples.len(), 8);
    assert!(
        app.flash
            .unwrap()
            .text
            .contains("drew 8 arithmetic examples")
    );
}

/// The app's estimate against the engine's tokenizer: examples drawn for the bundled model,
/// asked with a long question, are never dropped to fit its context.
#[test]
fn drawn_examples_fit_the_bundled_models_context() {
    let source = ModelSource {
        path: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ltm-arith-tiny"),
        tokenizer: None,
        device: DeviceChoice::Cpu,
        decode_weights: Default::default(),
    };
    let (engine, events, model) = crate::engine::start(source).unwrap();
    let mut app = app_with(false);
    app.on_event(Event::Ready(model));
    press(&mut app, KeyCode::F(2));
    app.command("think off");
    let question = "A baker made 48 muffins in the morning and 35 in the afternoon. She sold 56 \
                    of them and gave 9 to her neighbours. How many muffins does she have left now?";
    let mut kept = Vec::new();
    for seed in 1..=6 {
        app.command(&format!("draw 8 {seed}"));
        kept.push(app.session.examples.len());
        let r = send(&mut app, question);
        engine.submit(r.clone());
        loop {
            let event = events
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap();
            if let Event::Warning { message, .. } = &event {
                panic!("seed {seed}: {message}");
            }
            let finished = matches!(event, Event::Finished { request } if request == r.id);
            app.on_event(event);
            if finished {
                break;
            }
        }
    }
    engine.shutdown();
    assert!(
        kept.iter().all(|&k| k < 8) && kept.iter().any(|&k| k > 0),
        "{kept:?}"
    );
}

#[test]
fn loading_examples_refuses_a_file_too_large_for_a_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.jsonl");
    let line = "{\"question\": \"q\", \"answer\": \"#### 1\"}\n";
    std::fs::write(&path, line.repeat((5 << 20) / line.len())).unwrap();
    let err = super::read_examples(&path).unwrap_err();
    assert!(err.contains("4.0 MiB"), "{err}");
    std::fs::write(&path, line).unwrap();
    assert_eq!(super::read_examples(&path).unwrap(), line);
    // A device that never ends is refused before it is read.
    let err = super::read_examples(std::path::Path::new("/dev/zero")).unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn the_clock_runs_only_while_something_moves() {
    let mut app = app_with(false);
    assert!(app.animating(), "the loading spinner");
    app.on_event(Event::Ready(info(None)));
    assert!(!app.animating(), "idle: no redraws on a clock");
    let r = send(&mut app, "hello");
    assert!(app.animating(), "a request in flight");
    app.on_event(Event::Finished { request: r.id });
    app.flash = None;
    assert!(!app.animating());
    app.flash(super::session::Level::Info, "saved");
    assert!(app.animating(), "a message that expires");
}

#[test]
fn a_worked_example_too_wide_for_its_pane_ends_in_an_ellipsis() {
    let mut app = ready();
    press(&mut app, KeyCode::F(2));
    let (s, _) = render(&app, 100, 30);
    let long = app
        .session
        .examples
        .iter()
        .find(|e| e.question.len() > 40)
        .expect("a long example question");
    let shown: String = long.question.chars().take(12).collect();
    let line = s
        .lines()
        .find(|l| l.contains(&shown))
        .expect("the example shown");
    assert!(line.contains('…'), "{line}");
}
