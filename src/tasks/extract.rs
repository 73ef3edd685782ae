//! Extracting the final number from a model's (or a reference) answer.

/// The counts small enough to be written as words ("seven"), by value.
pub const COUNT_WORDS: [&str; 13] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve",
];

/// Whether `text` gives a number at all: digits, a count in words, or a word that stands for
/// one ("dozen", "twice", "half", "hundred").
pub fn mentions_number(text: &str) -> bool {
    const MORE: [&str; 12] = [
        "thirteen", "fifteen", "twenty", "thirty", "forty", "fifty", "hundred", "thousand",
        "dozen", "twice", "half", "double",
    ];
    let lower = text.to_lowercase();
    text.bytes().any(|b| b.is_ascii_digit())
        || lower
            .split(|c: char| !c.is_alphabetic())
            .any(|w| COUNT_WORDS.contains(&w) || MORE.contains(&w.strip_suffix('s').unwrap_or(w)))
}

/// A number found in text: its byte span and normalised value.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    start: usize,
    value: String,
}

/// All numbers in `text`, in order, normalised.
///
/// A number is digits with optional thousands groups (`1,234`: a comma only
/// counts when exactly three digits follow) and an optional decimal part
/// (`2.5`; a `.` only counts when a digit follows, so a sentence's full stop is
/// not taken). A `-` or `+` sign directly before the digits (or before a `$`)
/// counts when it does not follow a letter, digit or `)`, so `5-3` is `5` and
/// `3` while `-3` and `$-3` and `-$3` are negative.
fn numbers(text: &str) -> Vec<Found> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut s = String::new();
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_digit() {
                s.push(c as char);
                i += 1;
            } else if c == b','
                && !s.contains('.')
                && b.len() >= i + 4
                && b[i + 1..i + 4].iter().all(u8::is_ascii_digit)
                && b.get(i + 4).is_none_or(|d| !d.is_ascii_digit())
            {
                i += 1; // thousands separator: drop it
            } else if c == b'.' && !s.contains('.') && b.get(i + 1).is_some_and(u8::is_ascii_digit)
            {
                s.push('.');
                i += 1;
            } else {
                break;
            }
        }
        let negative = sign_before(b, start) == Some(b'-');
        out.push(Found {
            start,
            value: normalise(&s, negative),
        });
    }
    out
}

/// The sign character directly before the number at `start`, if it is a sign.
fn sign_before(b: &[u8], start: usize) -> Option<u8> {
    let mut j = start;
    // "-$5": the sign sits before the dollar sign.
    if j > 0 && b[j - 1] == b'$' {
        j -= 1;
    }
    if j == 0 {
        return None;
    }
    let s = b[j - 1];
    if s != b'-' && s != b'+' {
        return None;
    }
    match j.checked_sub(2).map(|k| b[k]) {
        Some(c) if c.is_ascii_alphanumeric() || c == b')' || c == b'_' => None,
        _ => Some(s),
    }
}

fn normalise(digits: &str, negative: bool) -> String {
    let mut s = digits.to_string();
    if let Some(dot) = s.find('.') {
        let trimmed = s[dot + 1..].trim_end_matches('0').len();
        s.truncate(dot + 1 + trimmed);
        if s.ends_with('.') {
            s.pop();
        }
    }
    // Drop leading zeros of the integer part ("007" -> "7", "0.5" stays).
    let int_len = s.find('.').unwrap_or(s.len());
    let zeros = s[..int_len].len() - s[..int_len].trim_start_matches('0').len();
    let zeros = zeros.min(int_len - 1);
    s.drain(..zeros);
    if negative && s != "0" {
        s.insert(0, '-');
    }
    s
}

/// The final number of a model's answer: the number after the first `####` if
/// present, else the last number in the text. Normalised: commas removed
/// (`"1,000"` -> `"1000"`), leading `+` removed, trailing `.0`/`.00` removed,
/// `$` and `%` stripped, negative numbers kept (`"-3"`), decimals kept
/// (`"2.5"`). `None` if no number.
///
/// When a `####` is followed by no number, the last number before it is used.
pub fn final_number(text: &str) -> Option<String> {
    if let Some(pos) = text.find("####") {
        let after = &text[pos + 4..];
        if let Some(f) = numbers(after).into_iter().next() {
            // Only a number on the `####` line counts.
            if !after[..f.start].contains('\n') {
                return Some(f.value);
            }
        }
        return numbers(&text[..pos]).pop().map(|f| f.value);
    }
    numbers(text).pop().map(|f| f.value)
}

/// Whether two extracted answers denote the same number (`"2.50"` vs `"2.5"`,
/// `"1,000"` vs `"1000"`), to six decimals: a repeating decimal is given rounded there (the
/// calculator's precision, and people's data sets'), so `"0.3333333333333333"` is `"0.333333"`.
pub fn same_number(a: &str, b: &str) -> bool {
    let (Some(x), Some(y)) = (final_number(a), final_number(b)) else {
        return false;
    };
    x == y
        || matches!((x.parse::<f64>(), y.parse::<f64>()),
            (Ok(x), Ok(y)) if (x - y).abs() <= SIX_DECIMALS)
}

/// Half a unit of the sixth decimal, and a little for the doubles' rounding.
const SIX_DECIMALS: f64 = 5e-7 + 1e-12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_digits_a_count_in_words_or_a_word_for_one() {
        for yes in [
            "I have 3 cats",
            "seven apples",
            "Twelve eggs",
            "two dozen",
            "twice as many",
            "half of it",
        ] {
            assert!(mentions_number(yes), "{yes}");
        }
        for no in [
            "hello",
            "What is the capital of France?",
            "someone",
            "often",
            "tonight",
        ] {
            assert!(!mentions_number(no), "{no}");
        }
    }

    /// Each text beside the number `final_number` should read from it.
    fn reads(cases: &[(&str, Option<&str>)]) {
        for &(text, want) in cases {
            assert_eq!(final_number(text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn gsm8k_marker() {
        reads(&[
            ("#### 1,234", Some("1234")),
            ("She has 5 left.\n#### 72", Some("72")),
            ("#### 12\n#### 13", Some("12")),
            ("####72", Some("72")),
            ("#### -3", Some("-3")),
            ("#### $40.", Some("40")),
            ("So 3 + 4 = 7\n#### 7\nQuestion: 99 apples", Some("7")),
            // Marker without a number on its line: fall back to the last number before it.
            ("The total is 18.\n####\nQuestion: 5", Some("18")),
        ]);
    }

    #[test]
    fn without_marker_last_number() {
        reads(&[
            ("The answer is $5.00.", Some("5")),
            ("-3", Some("-3")),
            ("2.5 apples", Some("2.5")),
            ("no number", None),
            ("", None),
            ("3 + 4 = 7", Some("7")),
            ("She had 12 apples and ate 4, so 8 remain.", Some("8")),
            ("It costs 1,000 dollars", Some("1000")),
            ("Profit is 25%.", Some("25")),
            ("+7", Some("7")),
            ("It went up by 3.0", Some("3")),
            ("about 2.50 miles", Some("2.5")),
            ("12,345,678 stars", Some("12345678")),
        ]);
    }

    #[test]
    fn signs_and_separators() {
        reads(&[
            // A hyphen between numbers is not a sign.
            ("5-3", Some("3")),
            ("5 -3", Some("-3")),
            ("a loss of -$4", Some("-4")),
            ("a balance of $-4", Some("-4")),
            ("item-3", Some("3")),
            // A comma in a list is not a thousands separator.
            ("1,2,3", Some("3")),
            ("apples, 4, pears", Some("4")),
            ("1,23", Some("23")),
            // Leading zeros.
            ("007", Some("7")),
            ("0.5", Some("0.5")),
            ("-0", Some("0")),
        ]);
    }

    #[test]
    fn same_number_compares_normalised() {
        assert!(same_number("1,000", "1000"));
        assert!(same_number("$2.50", "2.5"));
        assert!(!same_number("2", "3"));
        assert!(!same_number("x", "x"));
        assert!(same_number("0.3333333333333333", "0.333333"));
        assert!(same_number("0.83333333333333326", "0.833333"));
        assert!(!same_number("0.333333", "0.333334"));
        assert!(!same_number("2450365", "2450366"));
    }
}
