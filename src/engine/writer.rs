//! A sample's text as it is written, released as far as no stop string could still begin in it,
//! and the answer it ends with.

use anyhow::Result;

use crate::generate::calculator::calculations;
use crate::tasks::answer_of;
use crate::text::Stream;

/// One sample's text as it is written. A stop string is cut off with what follows it, and the
/// end of the text that could be the start of a stop string is held back until it is clear.
pub(super) struct Writer<'a> {
    stream: Stream<'a>,
    stop: &'a [String],
    pub(super) text: String,
    /// Bytes of `text` already handed out.
    sent: usize,
    pub(super) tokens: usize,
    /// When the sample finished, from the start of writing.
    pub(super) ms: Option<f64>,
    /// Whether the sample ended on its own (a stop string or an end token), not cut short.
    pub(super) finished: bool,
}

impl<'a> Writer<'a> {
    pub(super) fn new(stream: Stream<'a>, stop: &'a [String]) -> Self {
        Self {
            stream,
            stop,
            text: String::new(),
            sent: 0,
            tokens: 0,
            ms: None,
            finished: false,
        }
    }

    /// Adds a token (`last`: no more will come); returns the text to show now and whether a stop string ended the sample.
    pub(super) fn push(&mut self, id: u32, last: bool) -> Result<(String, bool)> {
        self.tokens += 1;
        self.text += &self.stream.push(id)?;
        if last {
            self.text += &self.stream.finish()?;
        }
        let stop_at = self
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text.find(s.as_str()))
            .min();
        let end = match stop_at {
            Some(at) => {
                self.text.truncate(at);
                at
            }
            None if last => self.text.len(),
            None => self.text.len() - self.pending_stop(),
        };
        let new = self
            .text
            .get(self.sent..end)
            .unwrap_or_default()
            .to_string();
        self.sent = end;
        Ok((new, stop_at.is_some()))
    }

    /// The answer the text ends with (`#### N`), when it has one. A sample cut short (a rambling
    /// draft, the token limit) before its `####` line ended was copying a number: read as the
    /// last calculation's result that begins with what it wrote ("1.83" of "1.8333"), and as
    /// none where no result does.
    pub(super) fn answer(&self) -> Option<String> {
        let at = self.text.find("####")?;
        let written = answer_of(&self.text)?;
        if self.finished || self.text[at..].contains('\n') {
            return Some(written);
        }
        calculations(&self.text[..at])
            .iter()
            .rev()
            .map(|(_, result)| result.trim())
            .find(|result| result.starts_with(&written))
            .map(str::to_string)
    }

    /// Length of the longest end of the text that begins some stop string.
    fn pending_stop(&self) -> usize {
        self.stop
            .iter()
            .flat_map(|s| {
                (1..s.len()).filter(|&k| s.is_char_boundary(k) && self.text.ends_with(&s[..k]))
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Tokenizer;

    fn written(pieces: &[&str], stop: &[&str]) -> (Vec<String>, String, bool) {
        let tok = Tokenizer::gpt2();
        let stop: Vec<String> = stop.iter().map(|s| s.to_string()).collect();
        let mut w = Writer::new(tok.stream(), &stop);
        let ids: Vec<u32> = pieces.iter().flat_map(|p| tok.encode(p).unwrap()).collect();
        let mut shown = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let (text, stopped) = w.push(id, i + 1 == ids.len()).unwrap();
            shown.push(text);
            if stopped {
                return (shown, w.text, true);
            }
        }
        (shown, w.text, false)
    }

    #[test]
    fn a_sample_cut_in_its_answer_line_was_copying_a_result() {
        let tok = Tokenizer::gpt2();
        let answer = |text: &str, finished: bool| {
            let mut w = Writer::new(tok.stream(), &[]);
            (w.text, w.finished) = (text.into(), finished);
            w.answer()
        };
        let cut = " 7-1.1666 = <<7-1.1666=5.8334>>5.8334, <<3-1.1666=1.8334>>1.8334.\n#### 1.83";
        assert_eq!(answer(cut, false).as_deref(), Some("1.8334"));
        assert_eq!(
            answer(cut, true).as_deref(),
            Some("1.83"),
            "finished as written"
        );
        assert_eq!(answer(&format!("{cut}\n"), false).as_deref(), Some("1.83"));
        assert_eq!(
            answer(" <<3+4=7>>7\n#### 2", false),
            None,
            "no result begins so"
        );
        assert_eq!(answer("#### 4\n#### 5", false).as_deref(), Some("4"));
        assert_eq!(answer(" 2+2 = <<2+2=4>>4", true), None);
    }

    #[test]
    fn a_stop_string_is_cut_and_never_shown() {
        let (shown, text, stopped) = written(
            &["42", "\n", "\n", "Question", ":", " more"],
            &["\n\nQuestion:"],
        );
        assert!(stopped);
        assert_eq!(text, "42");
        assert_eq!(shown.concat(), "42");
    }

    #[test]
    fn held_back_text_is_released_when_it_is_not_a_stop() {
        let (shown, text, stopped) = written(&["42", "\n", "\n", "Answer"], &["\n\nQuestion:"]);
        assert!(!stopped);
        assert_eq!(text, "42\n\nAnswer");
        assert_eq!(shown.concat(), text);
    }
}
