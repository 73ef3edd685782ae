//! Colour themes: the built-in `themes/*.toml`, the user's own, and `NO_COLOR`.

use std::ffi::OsStr;
use std::path::Path;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

const BUILT_IN: [&str; 3] = [
    include_str!("../../themes/dark.toml"),
    include_str!("../../themes/light.toml"),
    include_str!("../../themes/high-contrast.toml"),
];

/// A theme, as its file spells it (`themes/*.toml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Theme {
    pub name: String,
    pub background: Color,
    pub foreground: Color,
    pub muted: Color,
    pub accent: Color,
    pub border: Color,
    pub border_focus: Color,
    pub user: Color,
    pub assistant: Color,
    pub thinking: Color,
    pub success: Color,
    pub warning: Color,
    pub error: Color,
    pub selection: Color,
    /// Text written by the calculator; absent (older theme files): `accent`, see
    /// [`Theme::computed`].
    #[serde(default)]
    pub computed: Option<Color>,
    pub series: Vec<Color>,
    /// `NO_COLOR`: every style is colourless; emphasis comes from bold / reversed only.
    #[serde(skip)]
    pub no_color: bool,
}

impl Theme {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Text in colour `c` (no colour at all under `NO_COLOR`).
    pub fn fg(&self, c: Color) -> Style {
        if self.no_color {
            Style::default()
        } else {
            Style::default().fg(c)
        }
    }

    /// The canvas: foreground on background.
    pub fn base(&self) -> Style {
        if self.no_color {
            Style::default()
        } else {
            Style::default().fg(self.foreground).bg(self.background)
        }
    }

    /// Text the calculator wrote (underlined under `NO_COLOR`, so that it still stands out).
    pub fn computed(&self) -> Style {
        if self.no_color {
            Style::default().add_modifier(Modifier::UNDERLINED)
        } else {
            Style::default().fg(self.computed.unwrap_or(self.accent))
        }
    }

    /// A selected row or active tab.
    pub fn selected(&self) -> Style {
        if self.no_color {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default()
                .bg(self.selection)
                .add_modifier(Modifier::BOLD)
        }
    }

    pub fn border(&self, focused: bool) -> Style {
        match (focused, self.no_color) {
            (true, true) => Style::default().add_modifier(Modifier::BOLD),
            (true, false) => self.fg(self.border_focus),
            (false, _) => self.fg(self.border),
        }
    }

    /// The colour of thought sample `i`'s series.
    pub fn series(&self, i: usize) -> Color {
        match self.series.len() {
            0 => self.accent,
            n => self.series[i % n],
        }
    }
}

/// `NO_COLOR` (<https://no-color.org>): set and not empty.
pub fn no_color(var: Option<&OsStr>) -> bool {
    var.is_some_and(|v| !v.is_empty())
}

/// All themes known: the built-in ones, then `*.toml` from the user's directory (same name wins).
#[derive(Debug, Clone)]
pub struct Themes {
    list: Vec<Theme>,
}

impl Themes {
    /// Returns the catalogue and complaints about user files that did not parse.
    pub fn load(user_dir: Option<&Path>, no_color: bool) -> (Self, Vec<String>) {
        let mut list: Vec<Theme> = BUILT_IN
            .iter()
            .map(|t| Theme::parse(t).expect("built-in theme"))
            .collect();
        let mut warnings = Vec::new();
        let mut files: Vec<_> = user_dir
            .and_then(|d| std::fs::read_dir(d).ok())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension() == Some(OsStr::new("toml")))
            .collect();
        files.sort();
        for path in files {
            match crate::fsutil::read_text_limited(&path, crate::fsutil::SMALL_FILE)
                .map_err(|e| format!("{e:#}"))
                .and_then(|t| Theme::parse(&t))
            {
                Ok(theme) => {
                    list.retain(|t| t.name != theme.name);
                    list.push(theme);
                }
                Err(e) => warnings.push(format!("theme {}: {e}", path.display())),
            }
        }
        for t in &mut list {
            t.no_color = no_color;
        }
        (Self { list }, warnings)
    }

    pub fn get(&self, name: &str) -> Option<&Theme> {
        self.list.iter().find(|t| t.name == name)
    }

    /// The named theme, else the first built-in (dark).
    pub fn get_or_default(&self, name: &str) -> Theme {
        self.get(name).unwrap_or(&self.list[0]).clone()
    }

    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|t| t.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_parse_and_user_themes_override() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::write(
            dir.join("mine.toml"),
            BUILT_IN[0].replace("\"dark\"", "\"mine\""),
        )
        .unwrap();
        std::fs::write(dir.join("broken.toml"), "name = 3").unwrap();
        let bad_colour = BUILT_IN[0].replace("\"dark\"", "\"odd\"");
        let bad_colour = bad_colour.replacen("accent = \"", "accent = \"#zz", 1);
        std::fs::write(dir.join("odd.toml"), bad_colour).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a theme").unwrap();
        let (themes, warnings) = Themes::load(Some(dir), false);
        assert_eq!(themes.names(), ["dark", "light", "high-contrast", "mine"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        // A bad colour is named with its line.
        let odd = &warnings[1];
        assert!(
            odd.contains("odd.toml") && odd.contains("accent = \"#zz"),
            "{odd}"
        );
        assert_eq!(
            themes.get("light").unwrap().accent,
            Color::Rgb(0x09, 0x69, 0xda)
        );
        assert_eq!(themes.get_or_default("nope").name, "dark");
        assert_eq!(
            themes.get("dark").unwrap().computed,
            Some(Color::Rgb(0x73, 0xda, 0xca))
        );
    }

    #[test]
    fn a_theme_without_a_computed_colour_uses_its_accent() {
        let old: String = BUILT_IN[0]
            .lines()
            .filter(|l| !l.starts_with("computed"))
            .collect::<Vec<_>>()
            .join("\n");
        let t = Theme::parse(&old).unwrap();
        assert_eq!(t.computed, None);
        assert_eq!(t.computed(), Style::default().fg(t.accent));
    }

    #[test]
    fn no_color_strips_every_colour() {
        assert!(no_color(Some(OsStr::new("1"))));
        assert!(!no_color(Some(OsStr::new(""))));
        assert!(!no_color(None));
        let (themes, _) = Themes::load(None, true);
        let t = themes.get_or_default("dark");
        assert_eq!(t.fg(t.accent), Style::default());
        assert_eq!(t.base(), Style::default());
        assert_eq!(t.selected().fg, None);
    }
}
