//! End to end: the real binary in tmux, on a real model. Types a question, waits for the
//! answer, checks the thinking panel's figures on screen, quits with Ctrl+C and checks the
//! terminal came back; and kills it mid-thought, to find the question saved. Skipped (passing)
//! only where tmux is not installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ltm::tasks::BOS;

/// A tmux session that is killed when the test ends, however it ends.
struct Tmux(String);

impl Tmux {
    fn start(command: &str) -> Self {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("ltm-e2e-{}-{n}", std::process::id());
        let start = || {
            tmux(&[
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "120",
                "-y",
                "40",
                command,
            ])
        };
        // Tests started at once race to start the tmux server; the loser tries again.
        let mut out = start();
        for _ in 0..5 {
            if out.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            out = start();
        }
        assert!(out.status.success(), "tmux new-session: {out:?}");
        Tmux(name)
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.0];
        args.extend(keys);
        assert!(tmux(&args).status.success());
    }

    /// Types `text` and presses Enter.
    fn ask(&self, text: &str) {
        self.send(&["-l", text]);
        self.send(&["Enter"]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &self.0]).stdout).into_owned()
    }

    fn alternate_screen(&self) -> bool {
        let out = tmux(&["display-message", "-p", "-t", &self.0, "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Poll the screen until `done` holds; the screen as last seen either way.
    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = tmux(&["kill-session", "-t", &self.0]);
    }
}

/// What a tmux command printed, trimmed.
fn tmux_output(args: &[&str]) -> String {
    String::from_utf8_lossy(&tmux(args).stdout)
        .trim()
        .to_string()
}

fn tmux(args: &[&str]) -> Output {
    Command::new("tmux").args(args).output().expect("run tmux")
}

/// The bundled model when it exists, else the tiny reference fixture in our directory format
/// with a word-level tokenizer that fits its 101-token vocabulary.
fn model_dir(scratch: &Path) -> PathBuf {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ltm-arith-tiny");
    if bundled.is_dir() {
        return bundled;
    }
    let dir = scratch.join("model");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/tiny-gqa/ckpt.pt");
    ltm::model::Checkpoint::load(&fixture)
        .unwrap()
        .save_dir(&dir)
        .unwrap();
    write_word_tokenizer(&dir.join("tokenizer.json"));
    dir
}

fn write_word_tokenizer(path: &Path) {
    let words = "Question Answer What is the of a and to in how many much total each has have had \
                 gives buys sells more less than left after apples books cars pens cats dogs eggs \
                 coins boxes days weeks hours Tom Ann Sam Mia he she they it was were are";
    let mut vocab: Vec<String> = [BOS, "[UNK]"].map(String::from).to_vec();
    vocab.extend((0..10).map(|d| d.to_string()));
    vocab.extend(
        [
            ":", "?", ".", ",", "+", "-", "*", "/", "=", "<<", ">>", "####", "$",
        ]
        .map(String::from),
    );
    vocab.extend(words.split_whitespace().map(String::from));
    assert!(vocab.len() <= 101, "{} tokens", vocab.len());
    let ids: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), i.into()))
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{
            "id": 0, "content": BOS, "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true
        }],
        "normalizer": null,
        "pre_tokenizer": { "type": "Whitespace" },
        "post_processor": null,
        "decoder": null,
        "model": { "type": "WordLevel", "vocab": ids, "unk_token": "[UNK]" }
    });
    std::fs::write(path, serde_json::to_string(&json).unwrap()).unwrap();
    let tokenizer = tokenizers::Tokenizer::from_file(path).unwrap();
    let encoded = tokenizer
        .encode(format!("{BOS}Question: What is 2 + 3?\n"), false)
        .unwrap();
    let tokens = encoded.get_tokens();
    assert!(
        tokens.starts_with(&[BOS.into(), "Question".into()]) && !tokens.contains(&"[UNK]".into()),
        "{tokens:?}"
    );
}

/// `ltm chat ARGS` in tmux, in the shell command `wrap` makes of it, with config and data
/// directories of its own in the returned scratch directory; once the model is loaded. `None`
/// where tmux is not installed.
fn chat_in_tmux(
    args: &str,
    wrap: impl FnOnce(&str) -> String,
) -> Option<(tempfile::TempDir, Tmux)> {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed");
        return None;
    }
    let scratch = tempfile::tempdir().unwrap();
    let model = model_dir(scratch.path());
    let ltm = format!(
        "env LTM_CONFIG_DIR='{}' LTM_DATA_DIR='{}' '{}' chat --model '{}' {args}",
        scratch.path().join("config").display(),
        scratch.path().join("data").display(),
        env!("CARGO_BIN_EXE_ltm"),
        model.display()
    );
    let tmux = Tmux::start(&wrap(&ltm));
    tmux.wait_for("the model to load", Duration::from_secs(60), |s| {
        s.contains("Chat") && !s.contains("loading model")
    });
    Some((scratch, tmux))
}

/// The one session saved in `scratch`'s data directory, as text; `screen` for the message.
fn the_saved_session(scratch: &tempfile::TempDir, screen: &str) -> String {
    let sessions: Vec<_> = std::fs::read_dir(scratch.path().join("data/sessions"))
        .unwrap_or_else(|e| panic!("{e}: no sessions after\n{screen}"))
        .collect();
    assert_eq!(sessions.len(), 1, "not one saved session after\n{screen}");
    std::fs::read_to_string(sessions[0].as_ref().unwrap().path()).unwrap()
}

#[test]
fn chat_in_tmux_thinks_answers_and_restores_the_terminal() {
    let args = "--steps 8 --max-tokens 24 --temperature 0";
    let Some((scratch, tmux)) = chat_in_tmux(args, |ltm| {
        format!("{ltm}; echo \"ltm exited $?\"; sleep 60")
    }) else {
        return;
    };
    let minute = Duration::from_secs(60);
    tmux.ask("What is 2 + 3?");
    let screen = tmux.wait_for("the answer", minute, |s| s.contains("Answer: "));
    println!("{screen}");
    for shown in [
        "What is 2 + 3?",
        "thought 8 steps",
        "nats/token (ppl ",
        "% by thinking",
        "tok/s",
        "Answer: 5",
        "Ctrl+W shows the working",
    ] {
        assert!(screen.contains(shown), "no {shown:?} on screen:\n{screen}");
    }
    // The working, unfolded under the answer.
    tmux.send(&["C-w"]);
    tmux.wait_for("the working", minute, |s| s.contains("#### 5"));
    // The thinking panel, expanded: the curves' figures and KL per layer.
    tmux.send(&["C-t"]);
    let screen = tmux.wait_for("the thinking panel", minute, |s| s.contains("KL per layer"));
    println!("{screen}");
    for figure in ["step 8/8", "−ELBO", "NLL", "KL", "lr"] {
        assert!(
            screen.contains(figure),
            "no {figure:?} on screen:\n{screen}"
        );
    }

    tmux.send(&["C-c"]);
    let screen = tmux.wait_for("ltm to exit", minute, |s| s.contains("ltm exited"));
    assert!(screen.contains("ltm exited 0"), "{screen}");
    assert!(screen.contains("session saved:"), "{screen}");
    assert!(!tmux.alternate_screen(), "still on the alternate screen");
    assert!(!screen.contains('│'), "the TUI is still drawn:\n{screen}");

    // The saved session holds the question and a non-empty answer.
    let session = the_saved_session(&scratch, &screen);
    let session: serde_json::Value = serde_json::from_str(&session).unwrap();
    let text = session.to_string();
    assert!(text.contains("What is 2 + 3?"), "{text}");
    let mut replies = session["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.get("Reply"));
    let answer = replies.next_back().expect("a reply")["samples"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!answer.trim().is_empty(), "empty answer: {text}");
}

#[test]
fn a_question_killed_mid_thought_is_in_the_saved_session() {
    let pid_dir = tempfile::tempdir().unwrap();
    let pid_file = pid_dir.path().join("pid");
    // `exec` keeps the shell's process id for ltm, so that the test can kill it.
    let Some((scratch, tmux)) = chat_in_tmux("--steps 1000", |ltm| {
        format!("echo $$ > '{}'; exec {ltm}", pid_file.display())
    }) else {
        return;
    };
    tmux.ask("What is 2 + 3?");
    // Thinking's progress, "step N/1000": the model's scope on screen says "four-step", so "step "
    // alone can be seen before the question is even sent.
    let minute = Duration::from_secs(60);
    let screen = tmux.wait_for("thinking", minute, |s| s.contains("/1000"));
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let killed = Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());

    // Saved when the question was asked.
    let session = the_saved_session(&scratch, &screen);
    assert!(session.contains("What is 2 + 3?"), "{session}");
}

#[test]
fn an_ending_signal_restores_the_terminal_and_saves_the_session() {
    let minute = Duration::from_secs(60);
    for signal in ["TERM", "INT", "HUP", "QUIT"] {
        let Some((scratch, tmux)) = chat_in_tmux("", |ltm| {
            format!("{ltm}; echo \"ltm exited $?\"; stty -a; echo modes shown; sleep 60")
        }) else {
            return;
        };
        let shell = tmux_output(&["display-message", "-p", "-t", &tmux.0, "#{pane_pid}"]);
        let ltm = String::from_utf8(
            Command::new("pgrep")
                .args(["-P", &shell])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), ltm.trim()])
            .status()
            .unwrap();
        assert!(killed.success(), "kill -{signal} {ltm}");
        let screen = tmux.wait_for("ltm to exit", minute, |s| s.contains("modes shown"));
        assert!(screen.contains("ltm exited 0"), "SIG{signal}:\n{screen}");
        assert!(screen.contains("session saved:"), "SIG{signal}:\n{screen}");
        let modes: Vec<&str> = screen.split_whitespace().collect();
        for mode in ["icanon", "echo"] {
            assert!(modes.contains(&mode), "SIG{signal}: no {mode}:\n{screen}");
        }
        assert!(
            !tmux.alternate_screen(),
            "SIG{signal}: still on the alternate screen"
        );
        the_saved_session(&scratch, &format!("SIG{signal}:\n{screen}"));
    }
}

#[test]
fn chat_think_levels_are_the_loaded_models() {
    // The bundled model's levels: its 2 default steps make high 4 and max up to 8 (the
    // fixture's 16 make them 32 and 64); the level was given before the model was loaded.
    let config: serde_json::Value = {
        let scratch = tempfile::tempdir().unwrap();
        let dir = model_dir(scratch.path());
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
    };
    let levels =
        ltm::model::config::LevelSteps::around(config["num_steps"].as_u64().unwrap() as usize);
    for (level, shown) in [
        ("high", format!("high · {} steps", levels.high)),
        ("max", format!("max · up to {} steps", levels.max)),
    ] {
        let Some((_scratch, tmux)) =
            chat_in_tmux(&format!("--think {level}"), |ltm| ltm.to_string())
        else {
            return;
        };
        let screen = tmux.wait_for("the header", Duration::from_secs(30), |s| {
            s.contains(&shown)
        });
        assert!(screen.contains(&shown), "{screen}");
    }
}

/// A long paste in a terminal without bracketed paste comes as thousands of keys: every one is
/// taken at once, not a chunk per later key press, and a Ctrl+C after it quits.
#[test]
fn a_long_paste_without_bracketed_paste_arrives_whole() {
    let Some((_scratch, tmux)) =
        chat_in_tmux("", |ltm| format!("{ltm}; echo \"ltm exited $?\"; sleep 60"))
    else {
        return;
    };
    let text: String = (0..2999)
        .map(|i| ['a', 'b', 'c', ' '][i % 4])
        .collect::<String>()
        + "Z";
    tmux.send(&["-l", &text]);
    let minute = Duration::from_secs(60);
    tmux.wait_for("the paste's last character", minute, |s| s.contains("abcZ"));
    tmux.send(&["C-c"]);
    tmux.wait_for("ltm to exit", minute, |s| s.contains("ltm exited 0"));
}
