//! The user's knobs: thinking and sampling settings, thinking levels, `/commands` and persistence.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dirs::save;
use crate::engine::{Choices, Defaults};
use crate::limits::{LR, MAX_TOKENS, SAMPLES, STEPS, TEMPERATURE, TOLERANCE, TOP_K, TOP_P};

const ADAPTIVE: [Option<f64>; 6] = [
    None,
    Some(0.001),
    Some(0.003),
    Some(0.01),
    Some(0.03),
    Some(0.1),
];

/// Everything the user can tune: the request [`Choices`] and the look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    // Flattened: `settings.toml` keeps one table of settings.
    #[serde(flatten)]
    pub choices: Choices,
    pub theme: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            choices: Choices::default(),
            theme: "dark".into(),
        }
    }
}

impl Settings {
    /// The settings in `path`, and a warning when it has errors: a missing file gives the
    /// defaults; a file with errors (one that does not parse, a value out of its bounds, bytes
    /// that are not UTF-8) keeps its readable settings and is copied to `settings.toml.bak`
    /// before anything overwrites it.
    pub fn load(path: &Path) -> (Self, Option<String>) {
        if !path.exists() {
            return (Self::default(), None);
        }
        let bytes = match crate::fsutil::read_limited(path, crate::fsutil::SMALL_FILE) {
            Ok(bytes) => bytes,
            Err(e) => {
                let warning = format!("{e:#}; using the defaults");
                return (Self::default(), Some(warning));
            }
        };
        let (settings, kept, problem) = match std::str::from_utf8(&bytes) {
            Err(e) => (Self::default(), 0, format!("not UTF-8 text ({e})")),
            Ok(text) => {
                let (problem, parser_at) = match toml::from_str::<Self>(text) {
                    Ok(settings) => match settings.check() {
                        Ok(()) => return (settings, None),
                        Err(out_of_bounds) => (out_of_bounds, None),
                    },
                    Err(e) => (e.message().trim_end().to_string(), e.span()),
                };
                let (settings, kept, unread) = Self::salvage(text);
                // The problem is at the first setting that does not read alone, else (a syntax
                // error) where the parser stopped.
                let at = unread
                    .or(parser_at.map(|span| span.start))
                    .map_or(String::new(), |at| {
                        format!("line {}: ", text[..at].matches('\n').count() + 1)
                    });
                (settings, kept, format!("{at}{problem}"))
            }
        };
        let mut backup = path.as_os_str().to_owned();
        backup.push(".bak");
        let backup = std::path::PathBuf::from(backup);
        let backed_up = match save(&backup, &bytes) {
            Ok(()) => format!("your file is kept as {}", backup.display()),
            Err(e) => format!("and it could not be backed up: {e:#}"),
        };
        let what = if kept == 0 {
            "using the defaults".to_string()
        } else {
            format!("kept its {kept} readable setting(s)")
        };
        let warning = format!("{}: {problem}; {what}, {backed_up}", path.display());
        (settings, Some(warning))
    }

    /// The first setting out of its bounds ([`crate::limits`]), named: such a value would make
    /// every request fail.
    pub fn check(&self) -> Result<(), String> {
        let prompt = crate::tasks::Prompt::raw(String::new());
        self.choices
            .request(0, prompt, &Defaults::default())
            .validate()
    }

    /// The settings of a file that does not parse whole or holds values out of bounds: each one
    /// that parses alone and is within bounds, how many, and where the first one that does not
    /// is (a byte offset).
    fn salvage(text: &str) -> (Self, usize, Option<usize>) {
        type Keyed = std::collections::BTreeMap<toml::Spanned<String>, toml::Value>;
        let Ok(table) = toml::from_str::<Keyed>(text) else {
            return (Self::default(), 0, None);
        };
        let mut entries: Vec<_> = table.into_iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        let mut first_unread = None;
        let readable: toml::Table = entries
            .into_iter()
            .filter_map(|(key, value)| {
                let one = toml::Table::from_iter([(key.get_ref().clone(), value.clone())]);
                let reads = toml::Value::Table(one)
                    .try_into::<Self>()
                    .is_ok_and(|s| s.check().is_ok());
                if !reads {
                    first_unread.get_or_insert(key.span().start);
                }
                reads.then(|| (key.into_inner(), value))
            })
            .collect();
        let kept = readable.len();
        let settings = toml::Value::Table(readable).try_into().unwrap_or_default();
        (settings, kept, first_unread)
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        save(path, toml::to_string(self)?.as_bytes())?;
        Ok(())
    }
}

/// One tunable setting: shared by the settings panel and the `/commands`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Steps,
    Lr,
    Samples,
    Temperature,
    TopK,
    TopP,
    MaxTokens,
    Seed,
    Adaptive,
    Warm,
    Calculator,
    CopyNumbers,
    Check,
}

impl Field {
    pub const ALL: [Field; 13] = [
        Field::Steps,
        Field::Lr,
        Field::Samples,
        Field::Temperature,
        Field::TopK,
        Field::TopP,
        Field::MaxTokens,
        Field::Seed,
        Field::Adaptive,
        Field::Warm,
        Field::Calculator,
        Field::CopyNumbers,
        Field::Check,
    ];

    /// The `/command` that sets this field.
    pub fn command(self) -> &'static str {
        match self {
            Field::Steps => "steps",
            Field::Lr => "lr",
            Field::Samples => "samples",
            Field::Temperature => "temp",
            Field::TopK => "topk",
            Field::TopP => "topp",
            Field::MaxTokens => "max",
            Field::Seed => "seed",
            Field::Adaptive => "adaptive",
            Field::Warm => "warm",
            Field::Calculator => "calc",
            Field::CopyNumbers => "copy",
            Field::Check => "check",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Field::Steps => "thinking steps",
            Field::Lr => "fast learning rate",
            Field::Samples => "thought samples",
            Field::Temperature => "temperature",
            Field::TopK => "top-k",
            Field::TopP => "top-p",
            Field::MaxTokens => "max tokens",
            Field::Seed => "seed",
            Field::Adaptive => "adaptive tolerance",
            Field::Warm => "warm start",
            Field::Calculator => "calculator",
            Field::CopyNumbers => "copy numbers",
            Field::Check => "check answers",
        }
    }

    /// The argument syntax shown in `/help`.
    pub fn usage(self) -> &'static str {
        match self {
            Field::Steps => "N | auto",
            Field::Lr => "X | auto",
            Field::Samples | Field::MaxTokens | Field::Seed => "N",
            Field::Temperature => "X (0 = greedy) | auto",
            Field::TopK => "N | off",
            Field::TopP => "X | off",
            Field::Adaptive => "X | off",
            Field::Warm => "on | off",
            Field::Calculator | Field::CopyNumbers | Field::Check => "on | off | auto",
        }
    }

    pub fn from_command(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.command() == name)
    }

    pub fn value(self, s: &Choices, d: &Defaults) -> String {
        let off = |v: Option<String>| v.unwrap_or_else(|| "off".into());
        match self {
            Field::Steps => match (s.level(d), s.steps) {
                (Some(level), _) => format!("{level} ({})", s.steps(d)),
                (None, Some(n)) => n.to_string(),
                (None, None) => format!("auto ({})", d.steps),
            },
            Field::Lr => match s.lr {
                Some(x) => format!("{x}"),
                None => format!("auto ({})", d.lr),
            },
            Field::Samples => s.samples.to_string(),
            Field::Temperature => match s.temperature {
                Some(t) => format!("{t}"),
                None => format!("auto ({})", d.temperature),
            },
            Field::TopK => off(s.top_k.map(|k| k.to_string())),
            Field::TopP => off(s.top_p.map(|p| format!("{p}"))),
            Field::MaxTokens => s.max_tokens.to_string(),
            Field::Seed => s.seed.to_string(),
            Field::Adaptive => off(s.tolerance(d).map(|t| format!("{t}"))),
            Field::Warm => on_off(s.warm_start).into(),
            Field::Calculator => match s.calculator {
                Some(on) => on_off(on).into(),
                None => format!("auto ({})", on_off(d.calculator)),
            },
            Field::CopyNumbers => match s.copy_numbers {
                Some(on) => on_off(on).into(),
                None => format!("auto ({})", on_off(d.copy_numbers)),
            },
            Field::Check => match s.check {
                Some(on) => on_off(on).into(),
                None => format!("auto ({})", on_off(d.check)),
            },
        }
    }

    /// Set from a `/command` argument; a complaint names the `/command`.
    pub fn set(self, s: &mut Choices, d: &Defaults, arg: &str) -> Result<(), String> {
        self.set_as(s, d, arg, &format!("/{}", self.command()))
    }

    /// Set from an argument given as `name` (a `/command`, or `ltm chat`'s option), which a
    /// complaint names.
    pub fn set_as(
        self,
        s: &mut Choices,
        d: &Defaults,
        arg: &str,
        name: &str,
    ) -> Result<(), String> {
        let arg = arg.trim();
        if matches!(self, Field::Steps | Field::Adaptive) {
            s.without_level(d);
        }
        let bad = || format!("{name} expects {}, not {arg:?}", self.usage());
        let within = |e: String| format!("{name}: {e}");
        let off = matches!(arg, "off" | "none" | "auto" | "default");
        match self {
            Field::Steps if off => s.steps = None,
            Field::Steps => s.steps = Some(STEPS.parse(arg).map_err(within)?),
            Field::Lr if off => s.lr = None,
            Field::Lr => s.lr = Some(LR.parse(arg).map_err(within)?),
            Field::Samples => s.samples = SAMPLES.parse(arg).map_err(within)?,
            Field::Temperature if matches!(arg, "auto" | "default") => s.temperature = None,
            Field::Temperature => s.temperature = Some(TEMPERATURE.parse(arg).map_err(within)?),
            Field::TopK if off || arg == "0" => s.top_k = None,
            Field::TopK => s.top_k = Some(TOP_K.parse(arg).map_err(within)?),
            Field::TopP if off => s.top_p = None,
            Field::TopP => s.top_p = Some(TOP_P.parse(arg).map_err(within)?),
            Field::MaxTokens => s.max_tokens = MAX_TOKENS.parse(arg).map_err(within)?,
            Field::Seed => s.seed = arg.parse().map_err(|_| bad())?,
            Field::Adaptive if off => s.tolerance = None,
            Field::Adaptive => s.tolerance = Some(TOLERANCE.parse(arg).map_err(within)?),
            Field::Warm => s.warm_start = switch(arg).ok_or_else(bad)?,
            Field::Calculator if matches!(arg, "auto" | "default") => s.calculator = None,
            Field::Calculator => s.calculator = Some(switch(arg).ok_or_else(bad)?),
            Field::CopyNumbers if matches!(arg, "auto" | "default") => s.copy_numbers = None,
            Field::CopyNumbers => s.copy_numbers = Some(switch(arg).ok_or_else(bad)?),
            Field::Check if matches!(arg, "auto" | "default") => s.check = None,
            Field::Check => s.check = Some(switch(arg).ok_or_else(bad)?),
        }
        Ok(())
    }

    /// Nudge up (`up`) or down, as the settings panel's ←/→ do.
    pub fn adjust(self, s: &mut Choices, d: &Defaults, up: bool) {
        let sign = if up { 1.0 } else { -1.0 };
        let round = |x: f64, q: f64| (x / q).round() * q;
        match self {
            Field::Steps => s.step_level(up, d),
            Field::Adaptive => {
                s.without_level(d);
                let i = ADAPTIVE
                    .iter()
                    .position(|t| *t == s.tolerance)
                    .unwrap_or(if up { 0 } else { ADAPTIVE.len() - 1 });
                let j = if up {
                    (i + 1).min(ADAPTIVE.len() - 1)
                } else {
                    i.saturating_sub(1)
                };
                s.tolerance = ADAPTIVE[j];
            }
            Field::Lr => {
                let lr = s.lr(d) * if up { 1.25 } else { 0.8 };
                s.lr = Some(round(lr, 1e-4).max(1e-4));
            }
            Field::Samples => s.samples = step_int(s.samples, up, 1, 1, 64),
            Field::Temperature => {
                s.temperature = Some(round(s.temperature(d) + 0.1 * sign, 0.1).clamp(0.0, 2.0))
            }
            Field::TopK => {
                s.top_k = Some(step_int(s.top_k.unwrap_or(0), up, 10, 0, 1000)).filter(|k| *k > 0)
            }
            Field::TopP => {
                let p = round(s.top_p.unwrap_or(1.0) + 0.05 * sign, 0.05).clamp(0.05, 1.0);
                s.top_p = Some(p).filter(|p| *p < 1.0);
            }
            Field::MaxTokens => s.max_tokens = step_int(s.max_tokens, up, 50, 50, 4000),
            Field::Seed => {
                s.seed = if up {
                    s.seed.saturating_add(1)
                } else {
                    s.seed.saturating_sub(1)
                }
            }
            Field::Warm => s.warm_start = !s.warm_start,
            Field::Calculator => s.calculator = Some(!s.calculator(d)),
            Field::CopyNumbers => s.copy_numbers = Some(!s.copy_numbers(d)),
            Field::Check => s.check = Some(!s.check(d)),
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn switch(arg: &str) -> Option<bool> {
    match arg {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn step_int(v: usize, up: bool, by: usize, min: usize, max: usize) -> usize {
    if up {
        v.saturating_add(by)
    } else {
        v.saturating_sub(by)
    }
    .clamp(min, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ThinkLevel;
    use crate::model::config::LevelSteps;

    #[test]
    fn a_level_is_the_loaded_models_and_a_number_set_by_hand_leaves_it() {
        let small = Defaults::default();
        let bundled = Defaults {
            levels: LevelSteps::around(2),
            steps: 2,
            ..Defaults::default()
        };
        let mut s = Choices::default();
        // Set before the model is known (`ltm chat --think high`): high of the model loaded.
        s.set_level(ThinkLevel::High);
        assert_eq!(s.steps(&bundled), 4);
        assert_eq!(s.steps(&small), LevelSteps::around(small.steps).high);
        assert_eq!(Field::Steps.value(&s, &bundled), "high (4)");
        assert_eq!(s.level(&bundled), Some(ThinkLevel::High));
        // Max thinks adaptively up to the model's cap.
        s.set_level(ThinkLevel::Max);
        assert_eq!(
            (s.steps(&bundled), s.tolerance(&bundled).is_some()),
            (8, true)
        );
        // An adaptive stop set by hand keeps the steps the level had.
        Field::Adaptive.set(&mut s, &bundled, "0.05").unwrap();
        assert_eq!((s.level, s.steps, s.tolerance), (None, Some(8), Some(0.05)));
        s.set_level(ThinkLevel::Low);
        Field::Steps.set(&mut s, &bundled, "3").unwrap();
        assert_eq!((s.level(&bundled), s.steps(&bundled)), (None, 3));
    }

    #[test]
    fn commands_parse_and_reject() {
        let mut s = Choices::default();
        Field::from_command("topk")
            .unwrap()
            .set(&mut s, &Defaults::default(), "40")
            .unwrap();
        Field::Adaptive
            .set(&mut s, &Defaults::default(), "0.01")
            .unwrap();
        Field::Warm.set(&mut s, &Defaults::default(), "on").unwrap();
        assert_eq!(
            (s.top_k, s.tolerance, s.warm_start),
            (Some(40), Some(0.01), true)
        );
        Field::Adaptive
            .set(&mut s, &Defaults::default(), "off")
            .unwrap();
        assert_eq!(s.tolerance, None);
        assert!(
            Field::TopP
                .set(&mut s, &Defaults::default(), "1.5")
                .is_err()
        );
        assert!(
            Field::Samples
                .set(&mut s, &Defaults::default(), "many")
                .is_err()
        );
    }

    #[test]
    fn settings_round_trip_through_toml_file() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let path = dir.join("settings.toml");
        let s = Settings {
            choices: Choices {
                steps: Some(32),
                top_p: Some(0.9),
                ..Choices::default()
            },
            theme: "light".into(),
        };
        s.save(&path).unwrap();
        assert_eq!(Settings::load(&path), (s, None));
    }

    #[test]
    fn a_file_with_errors_keeps_what_it_can_and_is_backed_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.toml");
        let text = "theme = \"light\"\nsamples = 4\nsteps = \"many\"\n";
        std::fs::write(&path, text).unwrap();
        let (loaded, warning) = Settings::load(&path);
        let warning = warning.unwrap();
        assert_eq!(
            (loaded.theme.as_str(), loaded.choices.samples),
            ("light", 4)
        );
        assert_eq!(loaded.choices.steps, None);
        assert!(warning.contains("line 3"), "{warning}");
        assert!(
            warning.contains("kept its 2 readable setting(s)"),
            "{warning}"
        );
        let backup = dir.path().join("settings.toml.bak");
        assert!(warning.contains(&backup.display().to_string()), "{warning}");
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), text);

        std::fs::write(&path, "theme = [unclosed").unwrap();
        let (loaded, warning) = Settings::load(&path);
        assert_eq!(loaded, Settings::default());
        assert!(warning.unwrap().contains("using the defaults"));
        assert_eq!(
            std::fs::read_to_string(&backup).unwrap(),
            "theme = [unclosed"
        );

        // Values out of their bounds would fail every question: they are dropped, named.
        let text = "theme = \"light\"\nsteps = 999999999\nlr = inf\ntemperature = nan\n";
        std::fs::write(&path, text).unwrap();
        let (loaded, warning) = Settings::load(&path);
        let warning = warning.unwrap();
        assert!(
            warning.contains("line 2: thinking steps must be"),
            "{warning}"
        );
        assert!(
            warning.contains("kept its 1 readable setting(s)"),
            "{warning}"
        );
        assert_eq!(
            (
                loaded.theme.as_str(),
                loaded.choices.steps,
                loaded.choices.lr,
                loaded.choices.temperature
            ),
            ("light", None, None, None)
        );
        assert!(loaded.check().is_ok());
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), text);

        // Bytes that are not UTF-8 are kept too, before the defaults are saved over them.
        let bytes = b"theme = \"\xff\xfe\"\n";
        std::fs::write(&path, bytes).unwrap();
        let (loaded, warning) = Settings::load(&path);
        assert_eq!(loaded, Settings::default());
        assert!(warning.unwrap().contains("not UTF-8"));
        assert_eq!(std::fs::read(&backup).unwrap(), bytes);
    }
}
