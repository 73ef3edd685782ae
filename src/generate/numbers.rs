//! The numbers a word problem gives, and a guard that keeps a sample's numbers to them.
//!
//! A calculation in a worked answer uses the question's numbers (written, or said in words),
//! earlier results, and a few numbers a problem leaves unsaid (12 in a dozen, 60 minutes,
//! 100 %). A small model miscopies long numbers ("3946" written back as "3496"); with the
//! guard on, a sample may only write numbers of those kinds, and among them it chooses by its
//! own probabilities. The calculator's forced results count as written.
//!
//! The same reading judges a finished answer for the check (`engine::check`): [`flaw`] says
//! why its calculations cannot be right (a number used more often than given, one from
//! nowhere or of another kind than asked, a result below zero), and [`unused`] how many of
//! the question's numbers they leave out.

use anyhow::Result;
use candle_core::Tensor;

use super::calculator::{self, Codec, Ratio};

/// Numbers that keep their meaning whatever the problem says (7 days, 12 in a dozen, 60
/// minutes, 100 %): a calculation may use them without the question giving them.
const CONSTANTS: &[i128] = &[1, 2, 7, 12, 24, 30, 52, 60, 100, 365, 1000];
/// Fractions a calculation may use as constants (a half, a quarter, a percent, a nickel), in
/// hundredths.
const FRACTIONS: &[i128] = &[1, 5, 10, 25, 50, 75];

/// Numbers a question may give in words; a calculation may use them as it uses constants.
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
];

/// The values the question's words give (see [`NUMBER_WORDS`]).
pub fn worded(question: &str) -> Vec<Ratio> {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphabetic()).collect();
    NUMBER_WORDS
        .iter()
        .filter(|(w, _)| words.iter().any(|x| x.strip_suffix('s').unwrap_or(x) == *w))
        .filter_map(|&(_, v)| Ratio::new(v, 1))
        .collect()
}

/// One of [`CONSTANTS`] or the constant [`FRACTIONS`].
pub fn is_constant(v: Ratio) -> bool {
    let hundredths = (100 % v.denom() == 0).then(|| v.numer() * (100 / v.denom()));
    v.denom() == 1 && CONSTANTS.contains(&v.numer())
        || v.denom() > 1 && hundredths.is_some_and(|h| FRACTIONS.contains(&h))
}

/// Whole numbers too small to miscopy, which a problem may leave to common knowledge (a
/// spider's legs, a car's wheels): the guard lets them be written freely.
const SMALL: i128 = 12;

/// Where a number found in a text ends: closed by what follows it, or open at the text's end
/// and perhaps to be continued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
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
fn scan(text: &str) -> Vec<(String, End)> {
    scan_at(text)
        .into_iter()
        .map(|(digits, end, _)| (digits, end))
        .collect()
}

/// [`scan`], with where in `text` each number ends.
fn scan_at(text: &str) -> Vec<(String, End, usize)> {
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
fn trimmed(digits: &str) -> &str {
    if digits.contains('.') {
        digits.trim_end_matches('0').trim_end_matches('.')
    } else {
        digits
    }
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
        // A percent is also written as a fraction (20 % as 0.2).
        let hundredth = calculator::evaluate(&format!("{digits}/100"));
        given.extend(hundredth.and_then(calculator::format));
        given.push(trimmed(&digits).to_string());
    }
    given.sort();
    given.dedup();
    given
}

/// Why a worked answer to `prompt` cannot be right whatever its question means, if it cannot:
/// - a calculation uses a number of the question more often than the question writes it
///   ("145.16+5.84+5.84" where 5.84 is given once), or, where the question compares nothing,
///   a sum counts it again through an earlier result ("5120-1480", then "5120+3640");
/// - a sum or difference uses a number that neither the question (in digits or words), an
///   earlier result, a whole, a hundred nor a fraction such as a coin's gives ("1346+6444+6",
///   "72-2"), or, beside a number of what the question asks about, one that counts another
///   kind of thing ("18 red marbles" added to blue ones where it asks about blue ones:
///   [`other_kind`]) where the question compares nothing ([`COMPARING`]);
/// - a result is below zero (no count, price or measure is).
///
/// Small whole numbers, constants and earlier results may recur. The check prefers drafts
/// without a flaw (`engine::check`).
pub fn flaw(prompt: &str, answer: &str) -> Option<String> {
    let given = numbers(prompt);
    let words = worded(prompt);
    let (counted, asked) = (counts(prompt), asked(prompt));
    let compares = prompt
        .split(|c: char| !c.is_ascii_alphabetic())
        .any(|w| COMPARING.contains(&w.to_lowercase().as_str()));
    let kinds = |n: &str| -> Vec<&Vec<String>> {
        counted
            .iter()
            .filter(|(d, _)| d == n)
            .map(|(_, kind)| kind)
            .collect()
    };
    let other = |n: &str| {
        let k = kinds(n);
        !k.is_empty() && k.iter().all(|k| other_kind(k, &counted, &asked))
    };
    let asked_for = |n: &str| kinds(n).iter().any(|k| !k.is_empty()) && !other(n);
    // Each earlier result, and the question's numbers it sums with their signs.
    let mut results: Vec<(&str, Vec<(String, i32)>)> = Vec::new();
    for (expr, result) in calculator::calculations(answer) {
        if calculator::evaluate(expr).is_some_and(|v| v.numer() < 0) {
            return Some(format!("{expr} is below zero"));
        }
        let used = numbers(expr);
        let additive = !expr.contains(['*', '/']);
        let earlier = |n: &str| results.iter().any(|(r, _)| *r == n);
        let gives = |n: &str| given.iter().filter(|g| *g == n).count();
        let recurs = |n: &str| {
            let value = calculator::evaluate(n);
            earlier(n)
                || value.is_some_and(|v| {
                    words.contains(&v) || is_constant(v) || v.denom() == 1 && v.numer() <= SMALL
                })
        };
        for n in &used {
            let value = calculator::evaluate(n);
            let worded = value.is_some_and(|v| words.contains(&v));
            // In a sum a whole constant stands only where the question's words give it (60
            // beside "an hour"), or as a whole (1) or a hundred percent: "72-2" is a miscopy.
            let summable = worded
                || value.is_some_and(|v| {
                    v.denom() > 1 && is_constant(v)
                        || v.denom() == 1 && [1, 100].contains(&v.numer())
                });
            let times = used.iter().filter(|u| *u == n).count();
            if !recurs(n) && gives(n) > 0 && times > gives(n) {
                return Some(format!(
                    "{expr} uses {n} {times} times; the question gives it {}",
                    gives(n)
                ));
            }
            if additive && !(earlier(n) || summable) && gives(n) == 0 {
                return Some(format!("{expr} uses {n}, which the question does not give"));
            }
            // Two kinds joined where the question compares nothing: "12+25" for green and
            // yellow pears where it asks about the green ones.
            let joined = used.iter().any(|m| m != n && !earlier(m) && asked_for(m));
            if additive && !compares && !earlier(n) && other(n) && joined {
                return Some(format!(
                    "{expr} counts {n} {}, not what the question asks about",
                    kinds(n)[0].join(" ")
                ));
            }
        }
        let mut summed: Vec<(String, i32)> = Vec::new();
        for (sign, n) in terms(expr).unwrap_or_default() {
            let through = results.iter().rev().find(|(r, _)| *r == n && gives(r) == 0);
            let parts = match through {
                Some((_, parts)) => parts.clone(),
                None if gives(&n) > 0 && !recurs(&n) => vec![(n, 1)],
                None => Vec::new(),
            };
            for (m, c) in parts {
                match summed.iter_mut().find(|(s, _)| *s == m) {
                    Some((_, total)) => *total += sign * c,
                    None => summed.push((m, sign * c)),
                }
            }
        }
        if let Some((n, c)) = summed
            .iter()
            .find(|(n, c)| !compares && c.unsigned_abs() as usize > gives(n))
        {
            return Some(format!(
                "{expr} counts {n} {} times through earlier results; the question gives it {}",
                c.abs(),
                gives(n)
            ));
        }
        results.push((trimmed(result.trim()), summed));
    }
    None
}

/// The terms of a sum or difference with their signs ("5120-1480": 5120 and −1480), none for
/// an expression with products, quotients or brackets.
fn terms(expr: &str) -> Option<Vec<(i32, String)>> {
    if expr.contains(['*', '/', '(', ')']) {
        return None;
    }
    expr.replace('-', "+-")
        .split('+')
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            let sign = if t.trim_start().starts_with('-') {
                -1
            } else {
                1
            };
            match numbers(t).as_slice() {
                [n] => Some((sign, n.clone())),
                _ => None,
            }
        })
        .collect()
}

/// The numbers of `text`, each as it compares (`trimmed`).
fn numbers(text: &str) -> Vec<String> {
    scan(text)
        .iter()
        .map(|(d, _)| trimmed(d).to_string())
        .collect()
}

/// Words between a number and what it counts ("7 more nickels", "3 of his dimes").
const BEFORE_KIND: &[&str] = &[
    "more",
    "fewer",
    "less",
    "new",
    "other",
    "additional",
    "extra",
    "of",
    "the",
    "a",
    "an",
    "his",
    "her",
    "their",
    "its",
    "old",
    "whole",
];
/// Words that compare one quantity with another ("3 more than", "11 years younger"): where a
/// question compares, a number may count in two quantities and a sum may join two kinds. "How
/// much more" alone asks for a difference and compares nothing it names.
const COMPARING: &[&str] = &["than", "younger", "older"];
/// Words that end what a number counts ("9 pizzas during lunch", "4 were broken").
const AFTER_KIND: &[&str] = &[
    "during", "were", "was", "are", "is", "be", "been", "of", "them", "it", "in", "on", "at", "to",
    "for", "from", "with", "by", "and", "but", "or", "than", "then", "so", "if", "that", "this",
    "these", "those", "he", "she", "they", "we", "i", "you", "his", "her", "their", "its", "him",
    "there", "here", "what", "which", "who", "how", "many", "much", "each", "every", "per", "some",
    "all", "any", "one",
];

/// A word as it compares: lower case, a plural's `s` dropped ("marbles" and "marble").
fn singular(word: &str) -> String {
    let w = word.to_lowercase();
    match w.strip_suffix('s') {
        Some(stem) if stem.len() >= 3 => stem.to_string(),
        _ => w,
    }
}

/// What each number of `text` counts, in up to three words after it ("25 blue marbles": blue,
/// marble), past words that come between ([`BEFORE_KIND`]) and up to one that ends it
/// ([`AFTER_KIND`]) or a mark; none where such a word or a mark follows at once.
fn counts(text: &str) -> Vec<(String, Vec<String>)> {
    scan_at(text)
        .into_iter()
        .map(|(digits, _, end)| {
            let mut kind: Vec<String> = Vec::new();
            for piece in text[end..].split_whitespace().take(4) {
                // "marbles." is a word and a mark; the mark ends the kind after the word.
                let word = piece.trim_end_matches(|c: char| !c.is_ascii_alphabetic());
                if word.is_empty() || !word.chars().all(|c| c.is_ascii_alphabetic()) {
                    break;
                }
                let lower = word.to_lowercase();
                if kind.is_empty() && BEFORE_KIND.contains(&lower.as_str()) {
                    continue;
                }
                if AFTER_KIND.contains(&lower.as_str()) {
                    break;
                }
                kind.push(singular(word));
                if kind.len() == 3 || word.len() < piece.len() {
                    break;
                }
            }
            (trimmed(&digits).to_string(), kind)
        })
        .collect()
}

/// The words of the last sentence of `text` that asks (it ends in `?` or says "how many" or
/// "how much"), from "how many" or "how much" on where it says so ("if she makes 22 bags, how
/// many items" asks about items), singular.
fn asked(text: &str) -> Vec<String> {
    let how = |s: &str| {
        let lower = s.to_lowercase();
        ["how many", "how much"]
            .iter()
            .filter_map(|h| lower.find(h))
            .min()
    };
    let asks = |s: &&str| s.trim_end().ends_with('?') || how(s).is_some();
    let sentence = text
        .split_inclusive(['.', '?', '!', '\n'])
        .rfind(asks)
        .unwrap_or("");
    sentence[how(sentence).unwrap_or(0)..]
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .map(singular)
        .collect()
}

/// Whether a number that counts `kind` counts something other than what the question asks
/// about: the question asks about neither its first word nor, of another number's kind, a
/// first word it lacks ("18 red marbles" where 25 are blue and it asks about blue ones; not
/// "12 soccer games" where it asks about games).
fn other_kind(kind: &[String], counted: &[(String, Vec<String>)], asked: &[String]) -> bool {
    kind.first().is_some_and(|first| {
        !asked.contains(first)
            && counted.iter().any(|(_, other)| {
                other
                    .first()
                    .is_some_and(|f| asked.contains(f) && !kind.contains(f))
            })
    })
}

/// How many of the numbers `prompt` writes in digits (each value once) no calculation of
/// `answer` uses; a number equal to an earlier result is read as that result. Most problems
/// use every number they give, so of two drafts that are both sound the one that leaves fewer
/// out has read more of the question (`engine::check`).
pub fn unused(prompt: &str, answer: &str) -> usize {
    let mut used: Vec<String> = Vec::new();
    let mut results: Vec<&str> = Vec::new();
    for (expr, result) in calculator::calculations(answer) {
        used.extend(
            numbers(expr)
                .into_iter()
                .filter(|n| !results.contains(&n.as_str())),
        );
        results.push(trimmed(result.trim()));
    }
    let mut given = numbers(prompt);
    given.sort();
    given.dedup();
    given.iter().filter(|g| !used.contains(g)).count()
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
    fn a_number_used_more_often_than_given_or_a_result_below_zero_is_a_flaw() {
        let q = "Mike bought a trumpet for $ 145.16, and a song book which was $ 5.84.";
        assert_eq!(
            flaw(q, "He spent 145.16+5.84 = <<145.16+5.84=151>>151 dollars."),
            None
        );
        assert_eq!(
            flaw(q, "He spent <<145.16+5.84+5.84=156.84>>156.84.").as_deref(),
            Some("145.16+5.84+5.84 uses 5.84 2 times; the question gives it 1")
        );
        assert!(flaw(q, "<<5.84-145.16=-139.32>>-139.32").is_some());
        assert!(flaw(q, "<<5.84-5.84=0>>0").is_some());
        // Given twice, it may be used twice; small numbers, constants and results recur freely.
        let twice = "Ann had 2.5 cups of oats and 2.5 cups of nuts, 3 pears and 15 plums.";
        assert_eq!(flaw(twice, "<<2.5+2.5=5>>5"), None);
        assert!(flaw(twice, "<<2.5+2.5+2.5=7.5>>7.5").is_some());
        assert_eq!(flaw(twice, "<<3+3+3=9>>9 and <<2*60+3*60=300>>300"), None);
        assert_eq!(flaw(twice, "<<15*2=30>>30, <<30+30=60>>60"), None);
        assert!(flaw(twice, "<<15+15=30>>30").is_some());
        // A sum or difference with a number from nowhere; a product may use one (a spider's legs).
        assert!(flaw(twice, "<<15+6=21>>21").is_some());
        assert_eq!(flaw(twice, "<<15*6=90>>90"), None);
        assert_eq!(
            flaw(
                "Two dozen eggs and 15 more",
                "<<12+15=27>>27, <<27-2=25>>25"
            ),
            None
        );
        // A constant in a sum only where the words give it; a whole, a percent, a coin always.
        assert!(flaw(twice, "<<15-2=13>>13").is_some());
        assert!(flaw(twice, "<<15+7=22>>22").is_some());
        assert_eq!(flaw("15 plums a week", "<<15+7=22>>22"), None);
        assert_eq!(
            flaw(
                twice,
                "<<1-0.25=0.75>>0.75, <<100-15=85>>85, <<15+0.1=15.1>>15.1"
            ),
            None
        );
    }

    #[test]
    fn a_sum_with_a_number_of_another_kind_than_asked_is_a_flaw() {
        let green = "Ann has 12 green and 25 yellow pears. Ben has 30 green pears. How many \
                     green pears do they have?";
        assert!(flaw(green, "<<12+25=37>>37 #### 37").is_some_and(|f| f.contains("25 yellow")));
        assert_eq!(flaw(green, "<<12+30=42>>42 #### 42"), None);
        let pens = "There are 14 pens and 40 pencils in the box. Lee put 16 pens in the box. \
                    How many pens are in the box now?";
        assert!(flaw(pens, "<<14+40=54>>54").is_some());
        assert_eq!(flaw(pens, "<<14+16=30>>30"), None);
        // A kind the question asks about in other words, or no kind at all, is no flaw.
        let matches = "Kim saw 13 soccer matches this year and 15 matches last year. How many \
                       matches did she see?";
        assert_eq!(flaw(matches, "<<13+15=28>>28"), None);
        let pies = "A bakery sold 8 pies at noon and 5 during the evening. How many pies?";
        assert_eq!(flaw(pies, "<<8+5=13>>13"), None);
        // Nor is a step that counts something else on the way, or a question that compares.
        let week = "Lena rests 2 days every week and swims 3 laps on the other days. How many \
                    laps does she swim in a week?";
        assert_eq!(flaw(week, "<<7-2=5>>5 days, <<5*3=15>>15 #### 15"), None);
        let bags =
            "Each bag holds 4 pens and 7 clips. If Jo fills 9 bags, how many things are there?";
        assert_eq!(flaw(bags, "<<4+7=11>>11, <<11*9=99>>99"), None);
        let fewer = "A crate has 30 limes. It has 12 fewer figs than limes. How many figs?";
        assert_eq!(flaw(fewer, "<<30-12=18>>18"), None);
        // Products are not sums of things.
        assert_eq!(flaw(pens, "<<14*40=560>>560"), None);
    }

    #[test]
    fn a_number_counted_again_through_a_result_is_a_flaw_unless_the_question_compares() {
        let tank = "A tank lost 1480 liters at first; 5120 liters were lost in all. How many \
                    liters were lost after that?";
        let again = "<<5120-1480=3640>>3640, then <<5120+3640=8760>>8760 #### 8760";
        assert!(flaw(tank, again).is_some_and(|f| f.contains("counts 5120 2 times")));
        assert_eq!(flaw(tank, "<<5120-1480=3640>>3640 #### 3640"), None);
        // Taken away and given back, a number counts no more than once.
        let back = "Ann had 50 cards and gave 20 away; then she got them back. How many has she?";
        assert_eq!(flaw(back, "<<50-20=30>>30, <<30+20=50>>50"), None);
        let than = "Ann has 45 cards. Bo has 17 more cards than Ann. How many do they have?";
        let both = "<<45+17=62>>62, <<45+62=107>>107 #### 107";
        assert_eq!(flaw(than, both), None);
        let younger = "Ann is 45 and her aunt is 17 years younger. What is the sum of their ages?";
        assert_eq!(flaw(younger, "<<45-17=28>>28, <<28+45=73>>73"), None);
    }

    #[test]
    fn numbers_no_calculation_uses_are_counted_once_each() {
        let q = "Sally had 27 cards. Dan gave her 41 cards. She bought 20 cards, then 20 more.";
        assert_eq!(unused(q, "<<27+41+20+20=108>>108 #### 108"), 0);
        assert_eq!(unused(q, "Sally has <<27+41=68>>68 cards. #### 68"), 1);
        assert_eq!(unused(q, "<<27+41=68>>68, <<68+20=88>>88"), 0);
        // Numbers outside calculations do not count as used, nor does a result that equals one.
        assert_eq!(unused(q, "27 and 41 make 68. #### 68"), 3);
        assert_eq!(unused("6,048 lambs, 193 white", "<<6048-193=5855>>5855"), 0);
        let pears = "Kim picked 30 pears and Jo 20 pears. Al picked 50 plums. How many pears?";
        assert_eq!(unused(pears, "<<30+20=50>>50, <<30+50=80>>80"), 1);
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
