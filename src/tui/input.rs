//! The multi-line input: a small text editor with history recall.

use unicode_width::UnicodeWidthChar;

#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    lines: Vec<String>,
    /// Cursor: line, and char (not byte) offset in it.
    row: usize,
    col: usize,
    /// While browsing history: the entry shown, and the draft to come back to.
    recall: Option<(usize, String)>,
}

impl Default for Input {
    fn default() -> Self {
        Self {
            lines: vec![String::new()],
            row: 0,
            col: 0,
            recall: None,
        }
    }
}

impl Input {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    pub fn is_empty(&self) -> bool {
        self.lines.len() == 1 && self.lines[0].is_empty()
    }

    pub fn on_first_line(&self) -> bool {
        self.row == 0
    }

    pub fn on_last_line(&self) -> bool {
        self.row + 1 == self.lines.len()
    }

    /// Replace the text; the cursor goes to its end.
    pub fn set_text(&mut self, text: &str) {
        self.lines = text.split('\n').map(str::to_string).collect();
        self.row = self.lines.len() - 1;
        self.col = self.lines[self.row].chars().count();
        self.recall = None;
    }

    pub fn take(&mut self) -> String {
        let text = self.text();
        *self = Self::default();
        text
    }

    fn byte(&self) -> usize {
        let line = &self.lines[self.row];
        line.char_indices()
            .nth(self.col)
            .map_or(line.len(), |(i, _)| i)
    }

    fn line_len(&self) -> usize {
        self.lines[self.row].chars().count()
    }

    /// Insert text at the cursor (newlines split lines; `\r` is dropped).
    pub fn insert_str(&mut self, text: &str) {
        for c in text.chars().filter(|c| *c != '\r') {
            if c == '\n' {
                self.newline();
            } else {
                let at = self.byte();
                self.lines[self.row].insert(at, c);
                self.col += 1;
            }
        }
    }

    pub fn insert(&mut self, c: char) {
        self.insert_str(c.encode_utf8(&mut [0; 4]));
    }

    pub fn newline(&mut self) {
        let at = self.byte();
        let rest = self.lines[self.row].split_off(at);
        self.lines.insert(self.row + 1, rest);
        self.row += 1;
        self.col = 0;
    }

    pub fn backspace(&mut self) {
        if self.col > 0 {
            self.col -= 1;
            let at = self.byte();
            self.lines[self.row].remove(at);
        } else if self.row > 0 {
            let line = self.lines.remove(self.row);
            self.row -= 1;
            self.col = self.line_len();
            self.lines[self.row].push_str(&line);
        }
    }

    pub fn delete(&mut self) {
        if self.col < self.line_len() {
            let at = self.byte();
            self.lines[self.row].remove(at);
        } else if self.row + 1 < self.lines.len() {
            let next = self.lines.remove(self.row + 1);
            self.lines[self.row].push_str(&next);
        }
    }

    pub fn left(&mut self) {
        if self.col > 0 {
            self.col -= 1;
        } else if self.row > 0 {
            self.row -= 1;
            self.col = self.line_len();
        }
    }

    pub fn right(&mut self) {
        if self.col < self.line_len() {
            self.col += 1;
        } else if self.row + 1 < self.lines.len() {
            self.row += 1;
            self.col = 0;
        }
    }

    pub fn home(&mut self) {
        self.col = 0;
    }

    pub fn end(&mut self) {
        self.col = self.line_len();
    }

    pub fn up(&mut self) {
        self.row = self.row.saturating_sub(1);
        self.col = self.col.min(self.line_len());
    }

    pub fn down(&mut self) {
        self.row = (self.row + 1).min(self.lines.len() - 1);
        self.col = self.col.min(self.line_len());
    }

    /// Show the previous (older) history entry, keeping the draft.
    pub fn history_prev(&mut self, history: &[String]) {
        let (index, draft) = match self.recall.take() {
            Some((0, draft)) => (0, draft),
            Some((i, draft)) => (i - 1, draft),
            None if history.is_empty() => return,
            None => (history.len() - 1, self.text()),
        };
        self.set_text(&history[index.min(history.len() - 1)]);
        self.recall = Some((index, draft));
    }

    /// Show the next (newer) history entry, or the draft after the newest.
    pub fn history_next(&mut self, history: &[String]) {
        match self.recall.take() {
            Some((i, draft)) if i + 1 < history.len() => {
                self.set_text(&history[i + 1]);
                self.recall = Some((i + 1, draft));
            }
            Some((_, draft)) => self.set_text(&draft),
            None => {}
        }
    }

    /// Rows as shown in `width` columns (lines hard-wrapped by display width) and the cursor's
    /// (x, y) among them.
    pub fn layout(&self, width: usize) -> (Vec<String>, (usize, usize)) {
        let width = width.max(1);
        let mut rows = Vec::new();
        let mut cursor = (0, 0);
        for (r, line) in self.lines.iter().enumerate() {
            let mut row = String::new();
            let mut w = 0;
            for (c, ch) in line.chars().enumerate() {
                let cw = ch.width().unwrap_or(0);
                if w + cw > width {
                    rows.push(std::mem::take(&mut row));
                    w = 0;
                }
                if (r, c) == (self.row, self.col) {
                    cursor = (w, rows.len());
                }
                row.push(ch);
                w += cw;
            }
            if r == self.row && self.col >= line.chars().count() {
                cursor = if w >= width {
                    (0, rows.len() + 1)
                } else {
                    (w, rows.len())
                };
                if w >= width {
                    rows.push(std::mem::take(&mut row));
                }
            }
            rows.push(row);
        }
        (rows, cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editing_across_lines() {
        let mut i = Input::default();
        i.insert_str("héllo\r\nwörld");
        assert_eq!(i.text(), "héllo\nwörld");
        i.home();
        i.backspace();
        assert_eq!(i.text(), "héllowörld");
        i.newline();
        i.left();
        i.left();
        i.delete();
        assert_eq!(i.text(), "héll\nwörld");
        i.up();
        i.end();
        i.insert('!');
        assert_eq!(i.take(), "héll!\nwörld");
        assert!(i.is_empty());
    }

    #[test]
    fn history_browses_and_restores_the_draft() {
        let history = vec!["one".to_string(), "two".to_string()];
        let mut i = Input::default();
        i.insert_str("draft");
        i.history_prev(&history);
        assert_eq!(i.text(), "two");
        i.history_prev(&history);
        i.history_prev(&history);
        assert_eq!(i.text(), "one");
        i.history_next(&history);
        assert_eq!(i.text(), "two");
        i.history_next(&history);
        assert_eq!(i.text(), "draft");
    }

    #[test]
    fn layout_wraps_and_places_the_cursor() {
        let mut i = Input::default();
        i.insert_str("abcdef\nxy");
        let (rows, cursor) = i.layout(4);
        assert_eq!(rows, ["abcd", "ef", "xy"]);
        assert_eq!(cursor, (2, 2));
        i.set_text("abcd");
        assert_eq!(
            i.layout(4),
            (vec!["abcd".to_string(), String::new()], (0, 1))
        );
    }
}
