//! Text ↔ token ids: a Hugging Face `tokenizer.json`, and an incremental decoder that turns
//! a stream of generated ids into text without ever splitting a UTF-8 character.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use crate::model::checkpoint::TOKENIZER_FILE;

/// GPT-2's tokenizer plus `<|beginoftext|>` (models/gpt2), the one the authors' checkpoints use.
/// Embedded so that a `.pt` checkpoint works from anywhere.
pub const GPT2_TOKENIZER_JSON: &[u8] = include_bytes!("../models/gpt2/tokenizer.json");

/// `text` safe to print to a terminal: control characters other than newline and tab (an
/// escape sequence in a file name or a checkpoint's tensor name) are written out as escapes
/// (`\u{1b}`), so that they show instead of driving the terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Where it came from, for messages.
    source: String,
    /// The most characters one token stands for: a text of n bytes has at least n / longest
    /// tokens, so a text far beyond a context can be cut before it is tokenised.
    longest: usize,
}

/// Long texts are tokenised in pieces of about this many bytes: the tokenizer's working memory
/// is some hundred times its input's size.
const PIECE_BYTES: usize = 1 << 18;

/// How many times longer the normalizer may make a text: a `Replace` of "a" by a thousand "a"s,
/// four times over, would make every prompt take terabytes.
const MAX_NORMALIZER_GROWTH: f64 = 8.0;

/// The most a tokenizer.json's normalizer can multiply a text's length by: each `Replace`
/// (a regex pattern counted as matching one character) by its content's length over its
/// pattern's, a `Sequence` by the product of its parts'.
fn normalizer_growth(n: &serde_json::Value) -> f64 {
    match n["type"].as_str() {
        Some("Sequence") => n["normalizers"]
            .as_array()
            .map_or(1.0, |parts| parts.iter().map(normalizer_growth).product()),
        Some("Replace") => {
            let pattern = n["pattern"]["String"]
                .as_str()
                .map_or(1, |p| p.chars().count().max(1));
            let content = n["content"].as_str().map_or(0, |c| c.chars().count());
            (content as f64 / pattern as f64).max(1.0)
        }
        _ => 1.0,
    }
}

impl Tokenizer {
    pub fn from_bytes(json: &[u8], source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        let inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| anyhow!("{source}: not a valid tokenizer.json: {e}"))?;
        // Checked before anything is encoded, on the normalizer alone (not the whole file again).
        let normalizer = serde_json::to_value(inner.get_normalizer()).unwrap_or_default();
        let growth = normalizer_growth(&normalizer);
        if growth > MAX_NORMALIZER_GROWTH {
            bail!(
                "{source}: its normalizer makes a text up to {growth:.0} times longer (at most {MAX_NORMALIZER_GROWTH} is accepted): every prompt would take that much memory"
            );
        }
        let longest = inner
            .get_vocab(true)
            .keys()
            .map(|k| k.chars().count())
            .max()
            .unwrap_or(1)
            .max(1);
        Ok(Self {
            inner,
            source,
            longest,
        })
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let json = crate::fsutil::read_limited(path, crate::fsutil::MEDIUM_FILE)
            .context("cannot read the tokenizer")?;
        Self::from_bytes(&json, path.display().to_string())
    }

    pub fn gpt2() -> Self {
        Self::from_bytes(GPT2_TOKENIZER_JSON, "GPT-2 tokenizer (built in)")
            .expect("the embedded GPT-2 tokenizer parses")
    }

    /// The tokenizer of the model at `model`: `explicit` if given, else the `tokenizer.json`
    /// beside the weights, else (the authors' `.pt` checkpoints come without one) GPT-2's.
    pub fn for_model(model: &Path, explicit: Option<&Path>) -> Result<Self> {
        if let Some(path) = explicit {
            return Self::from_file(path);
        }
        let dir = if model.is_dir() {
            model
        } else {
            model.parent().unwrap_or(Path::new("."))
        };
        let beside = dir.join(TOKENIZER_FILE);
        if beside.exists() {
            Self::from_file(&beside)
        } else if model.extension().is_some_and(|e| e == "pt" || e == "pth") {
            Ok(Self::gpt2())
        } else {
            bail!(
                "{}: no {TOKENIZER_FILE} beside the model; pass one with --tokenizer",
                dir.display()
            )
        }
    }

    /// A tokenizer may know fewer tokens than the model's embedding has rows, never more.
    pub fn check_fits(&self, vocab_size: usize, model: &Path) -> Result<()> {
        let n = self.vocab_size();
        if n > vocab_size {
            bail!(
                "{}: the tokenizer has {n} tokens but the model {} has only vocab_size = {vocab_size}",
                self.source,
                model.display()
            );
        }
        // Vocabularies are padded to a round size (nanoGPT's 50,304 for GPT-2's 50,257), never
        // by more than this: a much smaller tokenizer is another model's, and the ids it cannot
        // decode would be written as nothing.
        let padding = (vocab_size / 64).max(128);
        if vocab_size - n > padding {
            bail!(
                "{}: the tokenizer has {n} tokens but the model {} has vocab_size = {vocab_size}: it is another model's tokenizer",
                self.source,
                model.display()
            );
        }
        Ok(())
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// One more than the largest id, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&id| id as usize + 1)
    }

    /// The special tokens, by id.
    pub fn specials(&self) -> Vec<(u32, String)> {
        let mut specials: Vec<_> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| (id, t.content))
            .collect();
        specials.sort();
        specials
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Ids of `text`, special tokens such as `<|beginoftext|>` recognised; nothing is added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("{}: cannot encode: {e}", self.source))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The ids of a text's end, enough of it for its last `keep` tokens, without tokenising
    /// all of a text of any length, and whether the text was cut first. (The tokens of the word
    /// where the cut falls may differ from the whole text's; there are at least `keep + 1`
    /// tokens after it.)
    pub fn encode_tail(&self, text: &str, keep: usize) -> Result<(Vec<u32>, bool)> {
        let bytes = keep.saturating_add(2).saturating_mul(self.longest);
        if text.len() <= bytes {
            return Ok((self.encode(text)?, false));
        }
        let mut start = text.len() - bytes;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        Ok((self.encode(&text[start..])?, true))
    }

    /// The ids of a text of any length, tokenised in pieces cut at line starts, up to `limit`
    /// tokens (all when `None`). Memory stays that of the ids and one piece.
    pub fn encode_long(&self, text: &str, limit: Option<usize>) -> Result<Vec<u32>> {
        let limit = limit.unwrap_or(usize::MAX);
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() && ids.len() < limit {
            let piece = &rest[..piece_end(rest, PIECE_BYTES)];
            ids.extend(self.encode(piece)?);
            rest = &rest[piece.len()..];
        }
        ids.truncate(limit);
        Ok(ids)
    }

    /// Text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| anyhow!("{}: cannot decode: {e}", self.source))
    }

    pub fn stream(&self) -> Stream<'_> {
        Stream {
            tokenizer: self,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }
}

/// Incremental decoding. A token may end inside a multi-byte character (byte-level BPE splits
/// emoji over several tokens), and decoders may depend on neighbours (leading-space rules), so
/// the text of a new token is the difference between decoding a short window of ids with and
/// without it; it is released only once it no longer ends in an incomplete character.
pub struct Stream<'t> {
    tokenizer: &'t Tokenizer,
    ids: Vec<u32>,
    /// The window starts at `prefix`; ids before `read` have been released as text.
    prefix: usize,
    read: usize,
}

impl Stream<'_> {
    /// Adds a token; returns the text it completes (empty while a character is unfinished).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let (done, all) = self.window()?;
        match all.strip_prefix(done.as_str()) {
            Some(new) if !new.is_empty() && !new.ends_with(char::REPLACEMENT_CHARACTER) => {
                let new = new.to_string();
                (self.prefix, self.read) = (self.read, self.ids.len());
                Ok(new)
            }
            _ => Ok(String::new()),
        }
    }

    /// Whatever is still held back (an unfinished character when writing stops), as is.
    pub fn finish(&mut self) -> Result<String> {
        let (done, all) = self.window()?;
        (self.prefix, self.read) = (self.ids.len(), self.ids.len());
        Ok(all
            .strip_prefix(done.as_str())
            .unwrap_or_default()
            .to_string())
    }

    fn window(&self) -> Result<(String, String)> {
        let done = self.tokenizer.decode(&self.ids[self.prefix..self.read])?;
        let all = self.tokenizer.decode(&self.ids[self.prefix..])?;
        Ok((done, all))
    }
}

/// Where a piece of about `target` bytes of `text` ends: after a newline that a non-space
/// follows (no token spans that), else anywhere on a character boundary, else the end.
fn piece_end(text: &str, target: usize) -> usize {
    if text.len() <= target {
        return text.len();
    }
    let bytes = text.as_bytes();
    let search_end = bytes.len().saturating_sub(1).min(target.saturating_mul(2));
    let line_start =
        (target..search_end).find(|&i| bytes[i] == b'\n' && !bytes[i + 1].is_ascii_whitespace());
    match line_start {
        Some(i) => i + 1,
        None => (target..=text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
        let mut stream = tok.stream();
        ids.iter().map(|&id| stream.push(id).unwrap()).collect()
    }

    #[test]
    fn gpt2_encodes_as_gpt2() {
        let tok = Tokenizer::gpt2();
        assert_eq!(tok.encode("Hello world").unwrap(), [15496, 995]);
        assert_eq!(tok.encode("<|beginoftext|>Hi").unwrap(), [50257, 17250]);
        assert_eq!(tok.vocab_size(), 50258);
        assert_eq!(
            tok.specials(),
            [
                (50256, "<|endoftext|>".to_string()),
                (50257, "<|beginoftext|>".to_string())
            ]
        );
    }

    #[test]
    fn printable_text_shows_escape_sequences_instead_of_running_them() {
        assert_eq!(
            printable("a\x1b]0;TITLE\x07\x1b[2J b\n\tc"),
            "a\\u{1b}]0;TITLE\\u{7}\\u{1b}[2J b\n\tc"
        );
        assert!(matches!(
            printable("plain"),
            std::borrow::Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn a_normalizer_that_multiplies_text_is_refused_and_a_usual_one_kept() {
        let with = |normalizer: serde_json::Value| {
            let mut spec: serde_json::Value = serde_json::from_slice(GPT2_TOKENIZER_JSON).unwrap();
            spec["normalizer"] = normalizer;
            Tokenizer::from_bytes(spec.to_string().as_bytes(), "t.json")
        };
        let thousand = "a".repeat(1000);
        let replace =
            serde_json::json!({"type": "Replace", "pattern": {"String": "a"}, "content": thousand});
        let bomb = serde_json::json!({"type": "Sequence", "normalizers": [replace, replace, replace, replace]});
        let err = with(bomb).err().expect("refused").to_string();
        assert!(
            err.contains("t.json: its normalizer makes a text up to 1000000000000 times longer"),
            "{err}"
        );
        // Llama's: a space marker prepended, spaces replaced by it.
        let llama = serde_json::json!({"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
        ]});
        assert!(with(llama).is_ok());
    }

    #[test]
    fn emoji_split_over_tokens_comes_out_whole() {
        let tok = Tokenizer::gpt2();
        let text = "ok 😀👍🏽 done";
        let ids = tok.encode(text).unwrap();
        assert!(
            ids.len() > 6,
            "the emoji take several byte tokens each: {ids:?}"
        );
        let pieces = streamed(&tok, &ids);
        assert!(
            pieces.iter().any(String::is_empty),
            "some tokens end inside a character"
        );
        assert!(
            pieces
                .iter()
                .all(|p| !p.contains(char::REPLACEMENT_CHARACTER))
        );
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn accented_and_cjk_text_round_trips() {
        let tok = Tokenizer::gpt2();
        let text = " café naïve — Ærøskøbing 東京\n\tend";
        let ids = tok.encode(text).unwrap();
        assert_eq!(streamed(&tok, &ids).concat(), text);
    }

    #[test]
    fn an_unfinished_character_is_released_by_finish() {
        let tok = Tokenizer::gpt2();
        let ids = tok.encode("😀").unwrap();
        let mut stream = tok.stream();
        assert_eq!(stream.push(ids[0]).unwrap(), "");
        assert_eq!(
            stream.finish().unwrap(),
            char::REPLACEMENT_CHARACTER.to_string()
        );
    }

    #[test]
    fn special_tokens_are_not_written() {
        let tok = Tokenizer::gpt2();
        let ids = tok.encode("a<|endoftext|>b").unwrap();
        assert_eq!(streamed(&tok, &ids).concat(), "ab");
    }

    #[test]
    fn a_tokenizer_larger_than_the_model_names_both() {
        let err = Tokenizer::gpt2()
            .check_fits(1000, Path::new("m/model.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("GPT-2") && err.contains("m/model.safetensors") && err.contains("50258"),
            "{err}"
        );
    }

    #[test]
    fn long_texts_are_tokenised_in_pieces_and_cut_before_tokenising() {
        let tok = Tokenizer::gpt2();
        let line = "Sam has 14 apples and buys 9 more. How many apples does Sam have now?\n";
        let text = line.repeat(10_000); // 700 kB: three pieces
        let whole = tok.encode(&text).unwrap();
        assert_eq!(tok.encode_long(&text, None).unwrap(), whole);
        assert_eq!(tok.encode_long(&text, Some(100)).unwrap(), whole[..100]);
        let (tail, cut) = tok.encode_tail(&text, 50).unwrap();
        assert!(cut);
        assert!(tail.len() > 50 && tail.len() < 2_000, "{}", tail.len());
        assert_eq!(tail[tail.len() - 50..], whole[whole.len() - 50..]);
        // A short text is tokenised whole.
        assert_eq!(
            tok.encode_tail(line, 50).unwrap().0,
            tok.encode(line).unwrap()
        );
        assert_eq!(piece_end("ab\ncd", 2), 3);
        assert_eq!(piece_end("aé", 2), 3);
    }

    #[test]
    fn a_much_smaller_tokenizer_is_refused_a_padded_model_accepted() {
        let model = Path::new("m/model.safetensors");
        assert!(Tokenizer::gpt2().check_fits(50_304, model).is_ok());
        let err = Tokenizer::gpt2()
            .check_fits(60_000, model)
            .unwrap_err()
            .to_string();
        assert!(err.contains("another model's tokenizer"), "{err}");
    }
}
