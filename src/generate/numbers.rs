//! The numbers a word problem gives, and a guard that keeps a sample's numbers to them.
//!
//! A calculation in a worked answer uses the question's numbers (written, or said in words),
//! earlier results, and a few numbers a problem leaves unsaid (12 in a dozen, 60 minutes,
//! 100 %). A small model miscopies long numbers ("3946" written back as "3496"); with the
//! guard on, a sample may only write numbers of those kinds, and among them it chooses by its
//! own probabilities. The calculator's forced results count as written.
//!
//! The same reading judges a finished answer for the check ([`super::flaws`]).

use anyhow::Result;
use candle_core::Tensor;

use super::calculator::{self, Codec, Ratio};

/// Numbers that keep their meaning whatever the problem says (7 days, 12 in a dozen, 60
/// minutes, 100 %): a calculation may use them without the question giving them.
const CONSTANTS: &[i128] = &[1, 2, 7, 12, 24, 30, 52, 60, 100, 365, 1000];
/// Fractions a calculation may use as constants (a half, a quarter, a percent, a nickel), in
/// hundredths.
const FRACTIONS: &[i128] = &[1, 5, 10, 25, 50, 75];

/// Numbers a question may give in words, or that its words bring with them; a calculation
/// may use them as it uses constants.
const NUMBER_WORDS: &[(&str, i128)] = &[
    ("half", 2),
    ("twice", 2),
    ("double", 2),
    ("two", 2),
    ("three", 3),
    ("triple", 3),
    ("thrice", 3),
    ("four", 4),
    ("quarter", 4),
    ("quarter", 25),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("dozen", 12),
    ("fifteen", 15),
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
    ("hundred", 100),
    ("third", 3),
    ("fourth", 4),
    ("fifth", 5),
    ("week", 7),
    ("hour", 60),
    ("minute", 60),
    ("year", 12),
    ("day", 24),
    // What everyone knows of a few things (a dog's legs, a bicycle's wheels, a dime).
    ("leg", 2),
    ("leg", 4),
    ("leg", 6),
    ("leg", 8),
    ("wheel", 2),
    ("wheel", 3),
    ("wheel", 4),
    ("bicycle", 2),
    ("bike", 2),
    ("tricycle", 3),
    ("pair", 2),
    ("nickel", 5),
    ("dime", 10),
    ("decade", 10),
];

/// The values the question's words give (see `NUMBER_WORDS`).
pub fn worded(question: &str) -> Vec<Ratio> {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphabetic()).collect();
    NUMBER_WORDS
        .iter()
        .filter(|(w, _)| words.iter().any(|x| x.strip_suffix('s').unwrap_or(x) == *w))
        .filter_map(|&(_, v)| Ratio::new(v, 1))
        .collect()
}

/// One of `CONSTANTS` or the constant `FRACTIONS`.
pub fn is_constant(v: Ratio) -> bool {
    let hundredths = (100 % v.denom() == 0).then(|| v.numer() * (100 / v.denom()));
    v.denom() == 1 && CONSTANTS.contains(&v.numer())
        || v.denom() > 1 && hundredths.is_some_and(|h| FRACTIONS.contains(&h))
}

/// Whole numbers too small to miscopy, which a problem may leave to common knowledge (a
/// spider's legs, a car's wheels): the guard lets them be written freely.
pub(super) const SMALL: i128 = 12;

/// Where a number found in a text ends: closed by what follows it, or open at the text's end
/// and perhaps to be continued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Closed,
    /// The last character is a digit.
    Digit,
    /// A `.` follows: a decimal point or the end of a sentence.
    Point,
    /// A `,` follows: a thousands separator or punctuation.
    Comma,
}

/// The numbers of `text` (digits with thousands commas and a decimal point; a leading `.5`
/// read as `0.5`; `3rd`, `2x` and `x2` are not numbers), each as its digits without commas.
pub(super) fn scan(text: &str) -> Vec<(String, End)> {
    scan_at(text)
        .into_iter()
        .map(|(digits, end, _)| (digits, end))
        .collect()
}

/// [`scan`], with where in `text` each number ends.
pub(super) fn scan_at(text: &str) -> Vec<(String, End, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let alnum_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.');
        let leading_point = b[i] == b'.'
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
            && !(i > 0 && b[i - 1].is_ascii_alphanumeric());
        if !(b[i].is_ascii_digit() && !alnum_before || leading_point) {
            i += 1;
            continue;
        }
        let mut digits = String::from(if leading_point { "0" } else { "" });
        let mut end = End::Closed;
        while i < b.len() {
            let next_digit = b.get(i + 1).is_some_and(u8::is_ascii_digit);
            match b[i] {
                c if c.is_ascii_digit() => digits.push(c as char),
                b',' if next_digit && !digits.contains('.') => {}
                b'.' if next_digit && !digits.contains('.') => digits.push('.'),
                b',' if i + 1 == b.len() && !digits.contains('.') => end = End::Comma,
                b'.' if i + 1 == b.len() && !digits.contains('.') => end = End::Point,
                _ => break,
            }
            i += 1;
        }
        if i == b.len() && end == End::Closed {
            end = End::Digit;
        }
        if b.get(i).is_some_and(u8::is_ascii_alphabetic) {
            continue; // 3rd, 2x
        }
        out.push((digits, end, i));
    }
    out
}

/// `3.50` → `3.5`, `4.0` → `4`: a number as it compares with the allowed ones.
pub(super) fn trimmed(digits: &str) -> &str {
    if digits.contains('.') {
        digits.trim_end_matches('0').trim_end_matches('.')
    } else {
        digits
    }
}

/// A number the question gives, read as a percent: a calculation may write 20 % as 0.2.
pub(super) fn as_fraction(digits: &str) -> Option<Ratio> {
    calculator::evaluate(&format!("{digits}/100"))
}

/// The numbers a sample may write beside its own earlier ones: those `prompt` gives (in digits
/// or words), small ones and constants, as the calculator formats them, sorted.
pub fn given(prompt: &str) -> Vec<String> {
    let mut values: Vec<Ratio> = worded(prompt);
    values.extend((0..=SMALL).filter_map(|n| Ratio::new(n, 1)));
    values.extend(CONSTANTS.iter().filter_map(|&n| Ratio::new(n, 1)));
    values.extend(FRACTIONS.iter().filter_map(|&h| Ratio::new(h, 100)));
    let mut given: Vec<String> = values.into_iter().filter_map(calculator::format).collect();
    for (digits, _) in scan(prompt) {
        given.extend(as_fraction(&digits).and_then(calculator::format));
        given.push(trimmed(&digits).to_string());
    }
    given.sort();
    given.dedup();
    given
}

/// Keeps a sample's numbers to those the prompt gives, the sample's earlier numbers (the
/// calculator's results among them) and constants (see the module docs).
pub struct NumberGuard {
    /// Each token's text.
    texts: Vec<String>,
    /// The numbers the prompt gives and the constants, as [`trimmed`] digits.
    given: Vec<String>,
}

impl NumberGuard {
    /// The guard for a prompt, over a vocabulary of `vocab` tokens.
    pub fn new(codec: &dyn Codec, vocab: usize, prompt: &str) -> Self {
        // An id the tokenizer cannot decode (a model's vocabulary may be padded past it) has no
        // text: like the end of text, it ends a number.
        let texts = (0..vocab as u32)
            .map(|id| codec.decode(&[id]).unwrap_or_default())
            .collect();
        Self {
            texts,
            given: given(prompt),
        }
    }

    /// `logits` with every token that would write a number outside the allowed ones after
    /// `written` (the sample's text so far) set to −∞; unchanged when nothing would be left.
    pub fn filter(&self, logits: &Tensor, written: &str) -> Result<Tensor> {
        let mut allowed: Vec<&str> = self.given.iter().map(String::as_str).collect();
        let earlier = scan(written);
        allowed.extend(
            earlier
                .iter()
                .filter(|(_, end)| *end == End::Closed)
                .map(|(d, _)| trimmed(d)),
        );
        // Only the run of number characters at the end can be continued.
        let tail_start = written
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == ','))
            .map_or(0, |(i, _)| i);
        let tail = &written[tail_start..];
        let open = scan(tail)
            .last()
            .is_some_and(|(_, end)| *end != End::Closed);
        let mut values = logits.to_vec1::<f32>()?;
        let mut blocked = 0;
        for (id, text) in self.texts.iter().enumerate() {
            let touches = open || text.bytes().any(|c| c.is_ascii_digit() || c == b'.');
            if touches && !writes_allowed(tail, text, &allowed) {
                values[id] = f32::NEG_INFINITY;
                blocked += 1;
            }
        }
        if blocked == 0 || blocked == values.len() {
            return Ok(logits.clone());
        }
        Ok(Tensor::from_vec(values, logits.shape(), logits.device())?)
    }
}

/// Whether `text` written after `tail` keeps every number it touches allowed: a finished
/// number is one of `allowed`, an unfinished one begins one.
fn writes_allowed(tail: &str, text: &str, allowed: &[&str]) -> bool {
    // A token without text (end of text) finishes the number before it.
    let joined = format!("{tail}{}", if text.is_empty() { " " } else { text });
    let is = |d: &str| allowed.contains(&trimmed(d));
    let begins = |d: &str| allowed.iter().any(|a| a.starts_with(d)) || is(d);
    scan(&joined).iter().all(|(digits, end)| match end {
        End::Closed => is(digits),
        End::Digit | End::Comma => begins(digits),
        End::Point => begins(&format!("{digits}.")) || is(digits),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Table, tiny};
    use super::super::{Flow, Sampling, generate};
    use super::*;
    use candle_core::Device;

    #[test]
    fn numbers_are_read_with_commas_points_and_open_ends() {
        let found = scan("Sam had 6,522 liters, .5 of 3.25 and 3rd x2 then 14");
        let digits: Vec<(&str, End)> = found.iter().map(|(d, e)| (d.as_str(), *e)).collect();
        assert_eq!(
            digits,
            [
                ("6522", End::Closed),
                ("0.5", End::Closed),
                ("3.25", End::Closed),
                ("14", End::Digit)
            ]
        );
        assert_eq!(scan("it was 5.")[0], ("5".into(), End::Point));
        assert_eq!(scan("it was 5,")[0], ("5".into(), End::Comma));
        assert_eq!(scan("it was 5, then")[0], ("5".into(), End::Closed));
    }

    #[test]
    fn words_and_constants_give_numbers() {
        let v = worded("Two dozen eggs a week");
        for n in [2, 12, 7] {
            assert!(v.contains(&Ratio::new(n, 1).unwrap()), "{n}");
        }
        assert!(is_constant(Ratio::new(1, 4).unwrap()));
        assert!(!is_constant(Ratio::new(1, 3).unwrap()));
        assert!(!is_constant(Ratio::new(13, 1).unwrap()));
    }

    #[test]
    fn a_miscopied_digit_gives_way_to_the_prompts_number() {
        let mut texts: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        texts.extend([" ", ">>", "."].map(String::from));
        let table = Table(texts);
        let guard = NumberGuard::new(&table, 13, "Sam had 3946 and got 817.");
        let best = |logits: &[f32], written: &str| {
            let t = Tensor::new(logits, &Device::Cpu).unwrap();
            let filtered = guard.filter(&t, written).unwrap();
            let v = filtered.to_vec1::<f32>().unwrap();
            (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
        };
        let (space, point) = (10, 12);
        // The model prefers 5 after "39"; only 4 continues a number the prompt gives.
        let mut logits = [0.0; 13];
        (logits[5], logits[4]) = (9.0, 1.0);
        assert_eq!(best(&logits, "it is 39"), 4);
        // A space would end "39", which the prompt does not give; after "3946" it may.
        (logits[5], logits[space]) = (-1.0, 8.0);
        assert_eq!(best(&logits, "it is 39"), 4);
        assert_eq!(best(&logits, "it is 3946"), space);
        // "3946." may be the end of a sentence, "39." the start of 39.46 (the percent).
        logits[point] = 9.0;
        assert_eq!(best(&logits, "it is 3946"), point);
        assert_eq!(best(&logits, "it is 39"), point);
        // A result written earlier (the calculator's) may be copied.
        let mut logits = [0.0; 13];
        (logits[8], logits[7]) = (9.0, 2.0);
        assert_eq!(best(&logits, "<<3946+817=4763>>4763 so 4"), 7);
        assert_eq!(best(&logits, "<<3946+817=4763>>4763 so 47"), 6);
        // A small whole number is free.
        assert_eq!(best(&logits, "so "), 8);
    }

    #[test]
    fn copying_numbers_writes_only_the_prompts_numbers_results_and_constants() {
        let model = tiny();
        // Digits, a comma, a point, and words (a number touching a letter is no number).
        let mut texts: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        texts.extend([",", "."].map(String::from));
        texts.extend((12..50).map(|i| format!(" {} ", char::from(b'a' + (i % 26) as u8))));
        let table = Table(texts);
        let word = 12;
        let mut prompt = vec![word];
        for n in ["3946", "817", "2.5"] {
            prompt.extend(table.encode(n).unwrap());
            prompt.push(word);
        }
        let z = Tensor::randn(0f32, 1., model.thought_shape(4), &Device::Cpu).unwrap();
        let mut sampling = Sampling::greedy(48);
        (sampling.settings.temperature, sampling.settings.seed) = (1.0, 3);
        let mut allowed: Vec<String> = (0..=12).map(|n| n.to_string()).collect();
        allowed.extend(["3946", "817", "2.5", "39.46", "8.17", "0.025", "0.5"].map(String::from));
        allowed.extend(
            [
                "24", "30", "52", "60", "100", "365", "1000", "0.01", "0.1", "0.25", "0.75",
            ]
            .map(String::from),
        );
        let stray = |written: &[Vec<u32>]| -> Vec<String> {
            let text: Vec<String> = written.iter().map(|w| table.decode(w).unwrap()).collect();
            text.iter()
                .flat_map(|t| scan(t))
                .filter(|(n, end)| {
                    let n = trimmed(n);
                    if *end != End::Closed {
                        !allowed.iter().any(|a| a.starts_with(n))
                    } else {
                        !allowed.iter().any(|a| a == n)
                    }
                })
                .map(|(n, _)| n)
                .collect()
        };
        let (free, _) = generate(&model, &prompt, &z, &sampling, Some(&table), |_| {
            Flow::Continue
        })
        .unwrap();
        let shown: Vec<String> = free.iter().map(|w| table.decode(w).unwrap()).collect();
        assert!(
            !stray(&free).is_empty(),
            "unguarded, the model invents numbers: {shown:?}"
        );
        sampling.settings.copy_numbers = true;
        let (guarded, _) = generate(&model, &prompt, &z, &sampling, Some(&table), |_| {
            Flow::Continue
        })
        .unwrap();
        assert_eq!(stray(&guarded), Vec::<String>::new());
        let digits = guarded.iter().flatten().filter(|&&id| id < 10).count();
        assert!(digits > 0, "guarded, it still writes numbers: {guarded:?}");
    }
}
