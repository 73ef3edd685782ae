//! A conversation as data: what was asked, how each request thought and what it wrote;
//! saved as JSON under the data directory and resumable.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::dirs::save;
use crate::engine::protocol::{Done, Fit, Request, ThinkStep};
use crate::tasks::prompt::Example;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    Chat,
    FewShot,
    Ladder,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Chat, Mode::FewShot, Mode::Ladder];

    pub fn title(self) -> &'static str {
        match self {
            Mode::Chat => "Chat",
            Mode::FewShot => "Few-shot",
            Mode::Ladder => "Ladder",
        }
    }

    /// The mode after this one, round to the first.
    pub fn next(self) -> Mode {
        let i = Mode::ALL.iter().position(|m| *m == self).unwrap_or(0);
        Mode::ALL[(i + 1) % Mode::ALL.len()]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Waiting for its turn (the ladder submits one request at a time).
    Queued,
    /// Submitted; no event yet.
    Sent,
    Thinking,
    Writing,
    Done,
    Cancelled,
    Failed,
}

impl Status {
    pub fn is_live(self) -> bool {
        matches!(self, Status::Sent | Status::Thinking | Status::Writing)
    }
}

/// What one thought sample wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleText {
    pub text: String,
    pub tokens: usize,
    pub done: Option<Done>,
    /// Byte ranges of `text` written by the calculator, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub computed: Vec<(usize, usize)>,
}

impl SampleText {
    /// Marks `text[start..end]` as computed (joined to the previous range when they touch).
    pub fn mark_computed(&mut self, start: usize, end: usize) {
        if start >= end {
            return;
        }
        match self.computed.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => self.computed.push((start, end)),
        }
    }
}

/// One request and everything the engine said about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub request: Request,
    pub status: Status,
    pub think: Vec<ThinkStep>,
    pub samples: Vec<SampleText>,
    /// What a done few-shot run's samples agree on (sessions saved before it was kept lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

impl Run {
    pub fn new(request: Request, status: Status) -> Self {
        let samples = vec![SampleText::default(); request.think.samples.max(1)];
        Self {
            request,
            status,
            think: Vec::new(),
            samples,
            verdict: None,
        }
    }

    pub fn id(&self) -> u64 {
        self.request.id
    }

    /// The last step seen of each sample, in sample order.
    pub fn last_steps(&self) -> Vec<&ThinkStep> {
        let mut last: Vec<&ThinkStep> = Vec::new();
        for s in &self.think {
            match last.iter_mut().find(|l| l.sample == s.sample) {
                Some(l) => *l = s,
                None => last.push(s),
            }
        }
        last.sort_by_key(|s| s.sample);
        last
    }

    /// The winning figures of the latest step: the sample with the lowest −ELBO.
    pub fn best_step(&self) -> Option<&ThinkStep> {
        self.last_steps()
            .into_iter()
            .min_by(|a, b| a.nelbo.total_cmp(&b.nelbo))
    }

    /// The best sample's fit: the engine's final figures once a sample is done, else the latest
    /// step's against the same sample's first.
    pub fn fit(&self) -> Option<Fit> {
        let done = self
            .samples
            .iter()
            .filter_map(|s| s.done.as_ref())
            .filter(|d| d.fit.is_some())
            .min_by(|a, b| a.nelbo.total_cmp(&b.nelbo));
        if let Some(d) = done {
            return d.fit;
        }
        let best = self.best_step()?;
        let first = self.think.iter().find(|s| s.sample == best.sample)?;
        Some(best.fit_since(first))
    }

    /// Thinking wall time: the engine's figure once a sample is done, else the steps' sum.
    pub fn think_ms(&self) -> f64 {
        self.samples
            .iter()
            .find_map(|s| s.done.as_ref().map(|d| d.think_ms))
            .unwrap_or_else(|| {
                self.think
                    .iter()
                    .filter(|s| s.sample == 0)
                    .map(|s| s.ms)
                    .sum()
            })
    }

    pub fn tokens(&self) -> usize {
        self.samples.iter().map(|s| s.tokens).sum()
    }
}

pub use crate::tasks::vote::Verdict;

/// The verdict on `run`'s samples, once every one of them is done.
pub fn verdict(run: &Run) -> Option<Verdict> {
    let nelbo: Vec<f64> = run
        .samples
        .iter()
        .map(|s| s.done.as_ref().map(|d| d.nelbo))
        .collect::<Option<_>>()?;
    let answers: Vec<Option<String>> = (run.samples.iter())
        .map(|s| s.done.as_ref().and_then(|d| d.answer_in(&s.text)))
        .collect();
    Some(Verdict::of(&answers, &nelbo))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// One item of the transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Entry {
    User(String),
    Reply(Run),
    FewShot { question: String, run: Run },
    Ladder { question: String, runs: Vec<Run> },
    Notice { level: Level, text: String },
}

impl Entry {
    pub fn runs_mut(&mut self) -> &mut [Run] {
        match self {
            Entry::Reply(run) | Entry::FewShot { run, .. } => std::slice::from_mut(run),
            Entry::Ladder { runs, .. } => runs,
            Entry::User(_) | Entry::Notice { .. } => &mut [],
        }
    }

    pub fn runs(&self) -> &[Run] {
        match self {
            Entry::Reply(run) | Entry::FewShot { run, .. } => std::slice::from_ref(run),
            Entry::Ladder { runs, .. } => runs,
            Entry::User(_) | Entry::Notice { .. } => &[],
        }
    }

    /// Give a done few-shot run its [`Verdict`]; other entries have none.
    pub fn settle_verdict(&mut self) {
        if let Entry::FewShot { run, .. } = self
            && run.status == Status::Done
        {
            run.verdict = verdict(run);
        }
    }
}

/// The session file format this version writes. Format 1 (files without `format`) stored a
/// sample's figures without its token counts; it still loads.
pub const SESSION_FORMAT: u64 = 2;

fn format_1() -> u64 {
    1
}

/// Everything that is saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    #[serde(default = "format_1")]
    pub format: u64,
    pub id: String,
    pub mode: Mode,
    pub entries: Vec<Entry>,
    pub examples: Vec<Example>,
    pub history: Vec<String>,
}

impl Session {
    /// A fresh session named after the clock, with a few worked arithmetic examples to start from.
    pub fn new() -> Self {
        Self {
            format: SESSION_FORMAT,
            id: fresh_id(),
            mode: Mode::Chat,
            entries: Vec::new(),
            examples: crate::tasks::default_examples(STOCK_EXAMPLES),
            history: Vec::new(),
        }
    }

    pub fn path(&self, sessions_dir: &Path) -> PathBuf {
        sessions_dir.join(format!("{}.json", self.id))
    }

    pub fn save(&self, sessions_dir: &Path) -> anyhow::Result<PathBuf> {
        let path = self.path(sessions_dir);
        save(&path, serde_json::to_string_pretty(self)?.as_bytes())?;
        Ok(path)
    }

    /// Load a session; requests that were under way when it was saved are marked cancelled.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = crate::fsutil::read_text_limited(path, crate::fsutil::MEDIUM_FILE)
            .map_err(|e| anyhow::anyhow!("cannot read the session: {e:#}"))?;
        let not_a_session =
            |e: serde_json::Error| anyhow::anyhow!("{} is not an ltm session: {e}", path.display());
        let value: serde_json::Value = serde_json::from_str(&text).map_err(not_a_session)?;
        let format = value.get("format").and_then(|f| f.as_u64()).unwrap_or(1);
        if format > SESSION_FORMAT {
            anyhow::bail!(
                "{} was saved by a newer ltm (session format {format}; this one reads up to {SESSION_FORMAT})",
                path.display()
            );
        }
        let mut s: Session = serde_json::from_value(value).map_err(not_a_session)?;
        s.format = SESSION_FORMAT;
        // The id names the file the session is saved to: one from a hostile file could name a
        // path outside the sessions directory.
        if !is_valid_id(&s.id) {
            s.id = fresh_id();
        }
        for run in s.entries.iter_mut().flat_map(Entry::runs_mut) {
            if run.status.is_live() || run.status == Status::Queued {
                run.status = Status::Cancelled;
            }
        }
        // Sessions saved before verdicts were kept get theirs now.
        for entry in &mut s.entries {
            entry.settle_verdict();
        }
        Ok(s)
    }

    /// The session `what` names: a file path, a session id in `sessions_dir`, or `last`: the
    /// most recently saved one that can be read, with a line for each newer one it skipped.
    pub fn resume(sessions_dir: &Path, what: &str) -> anyhow::Result<(Self, Vec<String>)> {
        if what != "last" || Path::new(what).is_file() {
            return Ok((Self::load(&Self::find(sessions_dir, what)?)?, Vec::new()));
        }
        let mut files: Vec<_> = std::fs::read_dir(sessions_dir)
            .map_err(|e| anyhow::anyhow!("no saved sessions in {}: {e}", sessions_dir.display()))?
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .map(|e| (e.metadata().and_then(|m| m.modified()).ok(), e.path()))
            .collect();
        files.sort_by(|a, b| b.cmp(a));
        let mut skipped = Vec::new();
        for (_, path) in files {
            match Self::load(&path) {
                Ok(session) => return Ok((session, skipped)),
                Err(e) => skipped.push(format!("skipped a newer session: {e:#}")),
            }
        }
        let why = if skipped.is_empty() {
            String::new()
        } else {
            format!(" ({})", skipped.join("; "))
        };
        anyhow::bail!(
            "no readable saved session in {}{why}",
            sessions_dir.display()
        )
    }

    /// `what` is a file path or a session id in `sessions_dir`.
    fn find(sessions_dir: &Path, what: &str) -> anyhow::Result<PathBuf> {
        let direct = PathBuf::from(what);
        if direct.is_file() {
            return Ok(direct);
        }
        let by_id = sessions_dir.join(format!("{what}.json"));
        anyhow::ensure!(
            by_id.is_file(),
            "no session {what:?} in {}",
            sessions_dir.display()
        );
        Ok(by_id)
    }

    /// The highest request id used so far.
    pub fn max_request_id(&self) -> u64 {
        self.entries
            .iter()
            .flat_map(Entry::runs)
            .map(Run::id)
            .max()
            .unwrap_or(0)
    }
}

/// A new session's id: the clock and the process, which is unique on one machine.
fn fresh_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs}-{}", std::process::id())
}

/// Whether `id` can name a file in the sessions directory: 1–64 ASCII letters, digits, `-` and
/// `_`, so never a path.
fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

/// How many worked examples a new session starts with (unless the model says otherwise).
pub const STOCK_EXAMPLES: usize = 4;

/// `n` worked examples from the arithmetic generator.
pub fn draw_examples(n: usize, seed: u64) -> Vec<Example> {
    crate::tasks::arith::problems(n, seed, crate::tasks::Split::Train)
        .iter()
        .map(Example::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Prompt;

    fn run(id: u64, status: Status) -> Run {
        let mut request = Request::new(id, Prompt::raw("p"));
        (request.think.steps, request.think.lr, request.think.samples) = (4, 0.1, 2);
        (request.sample.max_tokens, request.sample.seed) = (9, 1);
        request.sample.calculator = true;
        Run::new(request, status)
    }

    #[test]
    fn old_sessions_load_and_newer_or_foreign_files_say_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Session::new();
        let mut done = run(1, Status::Done);
        done.samples[0].text = "41".into();
        s.entries.push(Entry::Reply(done));
        let mut json: serde_json::Value = serde_json::to_value(&s).unwrap();
        // Format 1: no `format`, and a sample's `done` held only its figures.
        json.as_object_mut().unwrap().remove("format");
        json["entries"][0]["Reply"]["samples"][0]["done"] =
            serde_json::json!({"nelbo": 7.5, "think_ms": 1.0, "gen_ms": 2.0, "tok_s": 3.0});
        let old = dir.path().join("old.json");
        std::fs::write(&old, json.to_string()).unwrap();
        let loaded = Session::load(&old).unwrap();
        assert_eq!(loaded.format, SESSION_FORMAT);
        let Entry::Reply(run) = &loaded.entries[0] else {
            panic!("{:?}", loaded.entries[0]);
        };
        assert_eq!(run.samples[0].done.as_ref().unwrap().nelbo, 7.5);
        assert_eq!(run.samples[0].text, "41");

        json["format"] = serde_json::json!(SESSION_FORMAT + 1);
        let newer = dir.path().join("newer.json");
        std::fs::write(&newer, json.to_string()).unwrap();
        let err = Session::load(&newer).unwrap_err().to_string();
        assert!(err.contains("newer ltm"), "{err}");

        for (name, text) in [
            ("settings.json", r#"{"theme": "dark"}"#),
            ("x.json", "\u{0}junk"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let err = Session::load(&path).unwrap_err().to_string();
            assert!(err.contains("is not an ltm session"), "{err}");
        }
    }

    #[test]
    fn a_session_whose_id_is_a_path_is_saved_in_the_sessions_directory() {
        let outside = tempfile::tempdir().unwrap();
        let sessions = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        for hostile in [
            victim.to_str().unwrap(),
            "../../../../x",
            "",
            "a/b",
            "..",
            "é",
        ] {
            let mut s = Session::new();
            s.id = hostile.into();
            let file = outside.path().join("hostile.json");
            std::fs::write(&file, serde_json::to_string(&s).unwrap()).unwrap();
            let loaded = Session::load(&file).unwrap();
            assert!(is_valid_id(&loaded.id), "{:?}", loaded.id);
            let saved = loaded.save(sessions.path()).unwrap();
            assert_eq!(saved.parent(), Some(sessions.path()), "{hostile:?}");
        }
        assert!(!victim.with_extension("json").exists());
        let mut names: Vec<_> = std::fs::read_dir(outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["hostile.json"]);
    }

    /// Fuzzing the id: 500 random strings of path characters, dots, separators, control and
    /// non-ASCII characters; every one is saved inside the sessions directory, as a valid id.
    #[test]
    fn any_id_in_a_file_is_saved_inside_the_sessions_directory() {
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let (outside, sessions) = (dir.path().join("outside"), dir.path().join("sessions"));
        std::fs::create_dir_all(&outside).unwrap();
        let alphabet: Vec<char> = "ab09-_./\\:~ \0\n\x1bé€ 😀%*?"
            .chars()
            .chain(['/', '.', '.'])
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(24);
        for _ in 0..500 {
            let len = rng.random_range(0..80);
            let id: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let mut s = Session::new();
            s.id = id.clone();
            let file = outside.join("fuzz.json");
            std::fs::write(&file, serde_json::to_string(&s).unwrap()).unwrap();
            let loaded = Session::load(&file).unwrap();
            assert!(is_valid_id(&loaded.id), "{id:?} loaded as {:?}", loaded.id);
            let saved = loaded.save(&sessions).unwrap();
            assert_eq!(saved.parent(), Some(sessions.as_path()), "{id:?}");
        }
        let left: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
        assert_eq!(left.len(), 1, "only the fuzzed file itself");
    }

    #[test]
    fn save_load_round_trip_and_resume_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let mut s = Session::new();
        s.mode = Mode::Ladder;
        s.history.push("hello".into());
        s.entries.push(Entry::User("hi".into()));
        let mut done = run(1, Status::Done);
        done.samples[0].text = "a <<2*3=6>>6".into();
        done.samples[0].mark_computed(9, 10);
        done.samples[0].mark_computed(10, 12);
        s.entries.push(Entry::Reply(done));
        s.entries.push(Entry::Ladder {
            question: "q".into(),
            runs: vec![run(2, Status::Done), run(3, Status::Thinking)],
        });
        s.entries.push(Entry::Notice {
            level: Level::Error,
            text: "boom".into(),
        });
        let path = s.save(dir).unwrap();
        assert_eq!(path, dir.join(format!("{}.json", s.id)));

        let (loaded, skipped) = Session::resume(dir, &s.id).unwrap();
        assert!(skipped.is_empty());
        assert_eq!(Session::resume(dir, "last").unwrap().0, loaded);
        assert_eq!(
            Session::resume(dir, path.to_str().unwrap()).unwrap().0,
            loaded
        );
        assert!(Session::resume(dir, "nope").is_err());
        assert_eq!(loaded.max_request_id(), 3);
        // The interrupted run comes back cancelled; everything else as saved.
        let mut expected = s.clone();
        expected.entries[2].runs_mut()[1].status = Status::Cancelled;
        assert_eq!(loaded, expected);
    }

    #[test]
    fn resume_last_falls_back_to_the_newest_readable_session() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        assert!(Session::resume(dir, "last").is_err());
        let mut good = Session::new();
        good.history.push("kept".into());
        let good_path = good.save(dir).unwrap();
        let broken = dir.join("broken.json");
        std::fs::write(&broken, "{\"format\": 2, \"entr").unwrap();
        // The broken file is the newer one.
        let older = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&good_path)
            .unwrap()
            .set_modified(older)
            .unwrap();
        let (loaded, skipped) = Session::resume(dir, "last").unwrap();
        assert_eq!(loaded.history, ["kept"]);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].contains("broken.json"), "{skipped:?}");
        std::fs::remove_file(&good_path).unwrap();
        let err = Session::resume(dir, "last").unwrap_err().to_string();
        assert!(
            err.contains("no readable") && err.contains("broken.json"),
            "{err}"
        );
    }

    #[test]
    fn a_done_few_shot_run_gets_its_verdict_and_old_sessions_theirs_on_load() {
        let mut few_shot = run(1, Status::Done);
        for (s, (text, nelbo)) in few_shot
            .samples
            .iter_mut()
            .zip([(" The answer is 41.", 80.0), (" 41", 70.0)])
        {
            s.text = text.into();
            s.done = Some(Done {
                nelbo,
                fit: None,
                think_ms: 1.0,
                gen_ms: 1.0,
                tok_s: 1.0,
                check: None,
                sample: 0,
                text: String::new(),
                answer: None,
                tokens: 1,
                prompt_tokens: 9,
                think_steps: 4,
                level: None,
            });
        }
        let want = Verdict {
            majority: Some("41".into()),
            agreement: 2,
            elbo_best: Some("41".into()),
        };
        assert_eq!(verdict(&few_shot), Some(want.clone()));
        let mut unfinished = few_shot.clone();
        unfinished.samples[1].done = None;
        assert_eq!(verdict(&unfinished), None, "not every sample is done");

        // A session saved before verdicts were kept has no such field.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Session::new();
        s.entries.push(Entry::FewShot {
            question: "q".into(),
            run: few_shot,
        });
        let path = s.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("verdict"), "{text}");
        let loaded = Session::load(&path).unwrap();
        assert_eq!(loaded.entries[0].runs()[0].verdict, Some(want));
    }
}
