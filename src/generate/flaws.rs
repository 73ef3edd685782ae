//! Why a worked answer cannot be right, read from its calculations and the question's words
//! alone, for the check (`engine::check`): [`flaw`] says why its calculations cannot be right
//! (a number used more often than given, one from nowhere or of another kind than asked, a
//! result below zero), and [`unused`] how many of the question's numbers they leave out;
//! [`AnswerHold`] keeps a draft from answering while it leaves one out.

use anyhow::Result;
use candle_core::Tensor;

use super::calculator::{self, Codec, Ratio};
use super::numbers::{SMALL, as_fraction, is_constant, scan, scan_at, trimmed, worded};

/// Why a worked answer to `prompt` cannot be right whatever its question means, if it cannot:
/// - a calculation uses a number of the question more often than the question writes it
///   ("145.16+5.84+5.84" where 5.84 is given once), or, where the question compares nothing,
///   a sum counts it again through an earlier result ("5120-1480", then "5120+3640");
/// - a calculation uses a number that neither the question (in digits or words), an earlier
///   result, a whole, a hundred nor a fraction such as a coin's gives ("1346+6444+6", "72-2",
///   "10*24"; a product may also use a constant such as 12 or 60), or, in a sum beside a
///   number of what the question asks about, one that counts another kind of thing ("18 red
///   marbles" added to blue ones where it asks about blue ones: `other_kind`) where the
///   question compares nothing (`COMPARING`);
/// - a result is below zero (no count, price or measure is).
///
/// Small whole numbers, constants and earlier results may recur. The check prefers drafts
/// without a flaw (`engine::check`).
pub fn flaw(prompt: &str, answer: &str) -> Option<String> {
    let given = numbers(prompt);
    let words = worded(prompt);
    let percents: Vec<Ratio> = given.iter().filter_map(|g| as_fraction(g)).collect();
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
            let times = used.iter().filter(|u| *u == n).count();
            if !recurs(n) && gives(n) > 0 && times > gives(n) {
                return Some(format!(
                    "{expr} uses {n} {times} times; the question gives it {}",
                    gives(n)
                ));
            }
            // A number from nowhere is a miscopy or a guess ("72-2", "10*24"). The words may
            // give one (60 beside "an hour"), and a percent stands as a fraction ("20 %" as
            // 0.2); in a sum a constant only as a whole (1), a hundred percent or a fraction
            // such as a coin's, in a product any (12 in a dozen).
            let known = earlier(n)
                || value.is_some_and(|v| {
                    words.contains(&v)
                        || percents.contains(&v)
                        || is_constant(v)
                            && (!additive || v.denom() > 1 || [1, 100].contains(&v.numer()))
                });
            if !known && gives(n) == 0 {
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

/// Holds a sample's answer back while its calculations leave a number of the question unused
/// ([`unused`]): the tokens that would begin its answer line (GSM8K's `####`) are blocked, so
/// it goes on to another calculation. Most problems use every number they give, and a small
/// model often answers after the first step of two; a draft written under the hold reads the
/// whole question (`engine::check`).
pub struct AnswerHold {
    prompt: String,
    /// The tokens with a `#` in their text.
    marks: Vec<u32>,
}

impl AnswerHold {
    /// The hold for a prompt, over a vocabulary of `vocab` tokens.
    pub fn new(codec: &dyn Codec, vocab: usize, prompt: &str) -> Self {
        let marks = (0..vocab as u32)
            .filter(|&id| codec.decode(&[id]).is_ok_and(|t| t.contains('#')))
            .collect();
        Self {
            prompt: prompt.to_string(),
            marks,
        }
    }

    /// `logits` with the answer line's tokens set to −∞ while `written` (the sample's text so
    /// far) leaves a number of the prompt unused; unchanged once it uses them all.
    pub fn filter(&self, logits: &Tensor, written: &str) -> Result<Tensor> {
        if self.marks.is_empty() || unused(&self.prompt, written) == 0 {
            return Ok(logits.clone());
        }
        let mut values = logits.to_vec1::<f32>()?;
        for &id in &self.marks {
            if let Some(v) = values.get_mut(id as usize) {
                *v = f32::NEG_INFINITY;
            }
        }
        Ok(Tensor::from_vec(values, logits.shape(), logits.device())?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Table, tiny};
    use super::super::{Flow, Hold, Sampling, generate};
    use super::*;
    use candle_core::Device;

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
        // A number from nowhere, in a sum or a product; a product may use a constant, a given
        // percent as a fraction, or a number the words bring (a spider's legs).
        assert!(flaw(twice, "<<15+6=21>>21").is_some());
        assert_eq!(
            flaw(twice, "<<15*6=90>>90").as_deref(),
            Some("15*6 uses 6, which the question does not give")
        );
        assert_eq!(flaw(twice, "<<15*12=180>>180, <<180/60=3>>3"), None);
        assert_eq!(flaw("A spider has legs; 15 plums", "<<15*8=120>>120"), None);
        assert_eq!(flaw("15 plums, 20 % of them red", "<<15*0.2=3>>3"), None);
        assert!(flaw("15 plums, 20 % of them red", "<<15*0.3=4.5>>4.5").is_some());
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
    fn a_held_sample_does_not_begin_its_answer_while_a_number_is_unused() {
        let mut texts: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        texts.extend(["#", "##", "####", " #", "<<", ">>", "+", "=", " "].map(String::from));
        texts.extend((0..31).map(|i| format!(" {}", char::from(b'a' + (i % 26) as u8))));
        let table = Table(texts);
        let model = tiny();
        let hold = AnswerHold::new(&table, 50, "Sam has 3 pens and 4 more.");
        let logits = Tensor::zeros(50, candle_core::DType::F32, &Device::Cpu).unwrap();
        let blocked = |written: &str| -> Vec<usize> {
            let row: Vec<f32> = hold.filter(&logits, written).unwrap().to_vec1().unwrap();
            (0..50).filter(|&i| row[i].is_infinite()).collect()
        };
        assert_eq!(
            blocked("He has <<3+1=4>>4."),
            [10, 11, 12, 13],
            "4 is a result"
        );
        assert!(blocked("<<3+4=7>>7 pens.").is_empty(), "both used");

        // Written freely, samples begin answer lines; held, none does.
        let z = Tensor::randn(0f32, 1., model.thought_shape(4), &Device::Cpu).unwrap();
        let mut sampling = Sampling::greedy(48);
        (sampling.settings.temperature, sampling.settings.seed) = (1.0, 5);
        sampling.hold = Hold {
            question: "Sam has 3 pens and 4 more.".into(),
            samples: vec![false, false, true, true],
        };
        let prompt = table.encode("3 4").unwrap();
        let (written, _) = generate(&model, &prompt, &z, &sampling, Some(&table), |_| {
            Flow::Continue
        })
        .unwrap();
        let marked: Vec<bool> = written
            .iter()
            .map(|w| table.decode(w).unwrap().contains('#'))
            .collect();
        assert!(marked[0] || marked[1], "{marked:?}");
        assert_eq!(marked[2..], [false, false]);
    }
}
