//! People's problems with new numbers: a GSM8K problem whose every calculation uses numbers of
//! its question, earlier results or a few fixed constants (7 days, 12 in a dozen, 60 minutes,
//! 100 %) becomes a template. Each number of the question gets a new value of the same kind and
//! size, every calculation is recomputed exactly, and the worked solution's sentences are
//! rewritten with the new numbers; a draw is refused when a result changes kind (a whole
//! number becomes a fraction, a count goes negative), so the sentences stay true.

use std::collections::HashMap;

use rand::Rng;
use rand::rngs::StdRng;

use super::problem::with_thousands;
use crate::generate::calculator::{self, Ratio};
use crate::generate::numbers::{is_constant, worded};

/// Draws tried before a problem's numbers are given up on.
const TRIES: usize = 40;

/// A number as written in a text: where, its value, and how it was written.
#[derive(Debug, Clone)]
pub(super) struct Written {
    pub start: usize,
    pub end: usize,
    pub value: Ratio,
    decimals: usize,
    commas: bool,
    /// Followed by `%`.
    percent: bool,
}

/// The numbers of `text`: digits with optional thousands commas and decimals, not part of a
/// word (`x2`, `3rd` are left alone).
pub(super) fn numbers(text: &str) -> Vec<Written> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // ".5" is a number; "v2" and "1.2.3"'s second part are not.
        let leading_point = b[i] == b'.'
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        let starts_number = leading_point
            || b[i].is_ascii_digit()
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.'));
        if !starts_number {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = String::new();
        let mut commas = false;
        while i < b.len() {
            if b[i].is_ascii_digit() {
                digits.push(b[i] as char);
                i += 1;
            } else if b[i] == b','
                && b.get(i + 1..i + 4)
                    .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
                && !b.get(i + 4).is_some_and(u8::is_ascii_digit)
            {
                commas = true;
                i += 1;
            } else {
                break;
            }
        }
        let mut decimals = 0;
        if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            if digits.is_empty() {
                digits.push('0');
            }
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                digits.push(b[i] as char);
                decimals += 1;
                i += 1;
            }
        }
        if i < b.len() && b[i].is_ascii_alphabetic() {
            continue; // 3rd, 4th, 2x
        }
        let Ok(n) = digits.parse::<i128>() else {
            continue;
        };
        let Some(value) = Ratio::new(n, 10i128.pow(decimals as u32)) else {
            continue;
        };
        out.push(Written {
            start,
            end: i,
            value,
            decimals,
            commas,
            percent: b.get(i) == Some(&b'%'),
        });
    }
    out
}

/// One `<<expr=result>>` of a worked answer, with where it is.
pub(super) struct Step {
    /// Where `<<` is, and where the text after `>>` begins.
    pub open: usize,
    pub after: usize,
    pub expr: String,
    pub result: Ratio,
}

pub(super) fn steps(answer: &str) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(open) = answer[at..].find("<<") {
        let expr_start = at + open + 2;
        let close = expr_start + answer[expr_start..].find(">>")?;
        let (expr, result) = answer[expr_start..close].split_once('=')?;
        out.push(Step {
            open: at + open,
            after: close + 2,
            expr: expr.to_string(),
            result: calculator::evaluate(result.trim())?,
        });
        at = close + 2;
    }
    (!out.is_empty()).then_some(out)
}

/// Where a problem's numbers come from, found once; [`Template::draw`] gives it new numbers.
pub struct Template {
    question: String,
    answer: String,
    /// The question's numbers that are redrawn.
    variables: Vec<Ratio>,
}

impl Template {
    /// The problem as a template, or `None` when a calculation uses a number that is neither
    /// the question's, an earlier result nor a constant, or when one value has two roles (a
    /// result equal to a number of the question), which would make the rewriting ambiguous.
    pub fn new(question: &str, answer: &str) -> Option<Template> {
        let given: Vec<Ratio> = numbers(question).iter().map(|n| n.value).collect();
        let words = worded(question);
        let (mut results, mut constants) = (Vec::new(), Vec::new());
        for step in steps(answer)? {
            for n in numbers(&step.expr) {
                if given.contains(&n.value) || results.contains(&n.value) {
                    continue;
                }
                if !is_constant(n.value) && !words.contains(&n.value) {
                    return None;
                }
                constants.push(n.value);
            }
            results.push(step.result);
        }
        // Each value one role: a result equal to a given number or a constant the
        // calculations use (or to another result) could not be told apart in the sentences.
        let mut roles: Vec<Ratio> = given
            .iter()
            .filter(|v| !is_constant(**v))
            .copied()
            .collect();
        roles.dedup_by_key(|v| *v);
        for r in &results {
            if roles.contains(r) || constants.contains(r) || given.contains(r) {
                return None;
            }
            roles.push(*r);
        }
        let mut variables: Vec<Ratio> = given.into_iter().filter(|v| !is_constant(*v)).collect();
        variables.sort_by_key(|v| (v.numer(), v.denom()));
        variables.dedup();
        (!variables.is_empty()).then(|| Template {
            question: question.to_string(),
            answer: answer.to_string(),
            variables,
        })
    }

    /// The problem with new numbers: (question, worked answer, final answer).
    pub fn draw(&self, rng: &mut StdRng) -> Option<(String, String, String)> {
        let written = numbers(&self.question);
        (0..TRIES).find_map(|_| {
            let mut map: HashMap<Ratio, Ratio> = HashMap::new();
            for v in &self.variables {
                let how = written
                    .iter()
                    .find(|w| w.value == *v)
                    .expect("a question number");
                let new = redraw(how, rng)?;
                if map.values().any(|x| *x == new) || is_constant(new) {
                    return None;
                }
                map.insert(*v, new);
            }
            self.rewrite(&map)
        })
    }

    /// The texts with every mapped number replaced, or `None` when a result changes kind.
    fn rewrite(&self, map: &HashMap<Ratio, Ratio>) -> Option<(String, String, String)> {
        let mut map = map.clone();
        let mut results = Vec::new();
        for step in steps(&self.answer)? {
            let expr = replace(&step.expr, &map, |_, new| calculator::format(new));
            let result = calculator::evaluate(&expr)?;
            let (old, new) = (step.result, result);
            let same_kind = (old.denom() == 1) == (new.denom() == 1)
                && old.numer().signum() == new.numer().signum()
                && calculator::format(new).is_some_and(|t| t.len() <= 12)
                && terminating(new);
            if !same_kind || map.values().any(|x| *x == new) {
                return None;
            }
            map.insert(old, new);
            results.push((step, expr, calculator::format(new)?));
        }
        let rewrite = |text: &str| replace(text, &map, |w, new| Some(written_like(w, new)));
        // The answer: each annotation recomputed as the calculator writes it, every other
        // number (the sentences, `#### N`) through the map.
        let mut answer = String::new();
        let mut at = 0;
        for (step, expr, result) in &results {
            answer.push_str(&rewrite(&self.answer[at..step.open]));
            answer.push_str(&format!("<<{expr}={result}>>"));
            at = step.after;
        }
        answer.push_str(&rewrite(&self.answer[at..]));
        let question = rewrite(&self.question);
        let final_answer = crate::tasks::final_number(&answer)?;
        Some((question, answer, final_answer))
    }
}

/// Whether `r` has a finite decimal expansion.
fn terminating(r: Ratio) -> bool {
    let mut d = r.denom();
    for p in [2, 5] {
        while d % p == 0 {
            d /= p;
        }
    }
    d == 1
}

/// `text` with every number whose value `map` has written anew by `write`.
fn replace(
    text: &str,
    map: &HashMap<Ratio, Ratio>,
    write: impl Fn(&Written, Ratio) -> Option<String>,
) -> String {
    let mut out = String::new();
    let mut at = 0;
    for w in numbers(text) {
        if let Some(new) = map.get(&w.value).and_then(|&new| write(&w, new)) {
            out.push_str(&text[at..w.start]);
            out.push_str(&new);
            at = w.end;
        }
    }
    out.push_str(&text[at..]);
    out
}

/// `new` written as `w` was: its decimals, thousands commas.
fn written_like(w: &Written, new: Ratio) -> String {
    let Some(plain) = calculator::format(new) else {
        return String::new();
    };
    let (whole, frac) = plain.split_once('.').unwrap_or((&plain, ""));
    let grouped = if w.commas && whole.len() > 3 {
        with_thousands(whole)
    } else {
        whole.to_string()
    };
    match (w.decimals, frac.len()) {
        (0, 0) => grouped,
        (d, f) if d >= f => format!("{grouped}.{frac:0<d$}"),
        _ => format!("{grouped}.{frac}"),
    }
}

/// A new value for a number of the question: the same kind (whole, or with its decimals), about
/// the same size (half to twice), as round as it was (a multiple of 5, 10, 100 stays one), a
/// percentage at most 100.
fn redraw(w: &Written, rng: &mut StdRng) -> Option<Ratio> {
    let scale = 10i128.pow(w.decimals as u32);
    let units = w.value.numer() * (scale / w.value.denom());
    let step = [1000, 100, 10, 5]
        .into_iter()
        .find(|s| units % s == 0 && units / s >= 2)
        .unwrap_or(1);
    let (lo, hi) = if units <= 10 {
        (3, 12)
    } else {
        (units / 2, units * 2)
    };
    let hi = if w.percent { hi.min(100 * scale) } else { hi };
    let (lo, hi) = ((lo + step - 1) / step, hi / step);
    if lo > hi {
        return None;
    }
    let drawn = rng.random_range(lo..=hi) * step;
    Ratio::new(drawn, scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const NATALIA: (&str, &str) = (
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
    );

    #[test]
    fn a_problem_gets_new_numbers_and_every_result_is_recomputed() {
        let t = Template::new(NATALIA.0, NATALIA.1).expect("a template");
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let (q, a, fin) = t.draw(&mut rng).expect("a draw");
            let n: i128 = q
                .split_whitespace()
                .find_map(|w| w.parse().ok())
                .expect("a number");
            assert!(n % 2 == 0, "half of an odd number is not whole: {q}");
            let half = n / 2;
            assert_eq!(
                a,
                format!(
                    "Natalia sold {n}/2 = <<{n}/2={half}>>{half} clips in May.\nNatalia sold {n}+{half} = <<{n}+{half}={}>>{} clips altogether in April and May.\n#### {}",
                    n + half,
                    n + half,
                    n + half
                )
            );
            assert_eq!(fin, (n + half).to_string());
            seen.insert(n);
        }
        assert!(seen.len() > 10, "{seen:?}");
    }

    #[test]
    fn numbers_keep_their_form_and_constants_stay() {
        // A count never goes negative.
        let t = Template::new(
            "Tom had 40 apples and ate 25.",
            "40-25 = <<40-25=15>>15\n#### 15",
        )
        .unwrap();
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..50 {
            let (_, _, fin) = t.draw(&mut rng).expect("a draw");
            assert!(fin.parse::<i64>().unwrap() > 0, "{fin}");
        }
        let q = "A shirt costs $1,250 and a hat $32.50. Dan buys both. How much does he pay?";
        let a = "1250+32.50 = <<1250+32.50=1282.5>>1282.50\n#### 1282.5";
        let t = Template::new(q, a).expect("a template");
        let (q2, a2, fin) = t.draw(&mut StdRng::seed_from_u64(3)).expect("a draw");
        let ns = numbers(&q2);
        assert!(ns[0].commas && ns[1].decimals == 2, "{q2}");
        let sum = calculator::format(
            calculator::evaluate(&format!(
                "{}+{}",
                q2[ns[0].start..ns[0].end].replace(',', ""),
                &q2[ns[1].start..ns[1].end]
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(fin, sum, "{a2}");
    }

    #[test]
    fn unknown_or_ambiguous_numbers_are_refused() {
        // 3 is neither given nor a constant.
        assert!(Template::new("Tom has 5 apples.", "5*3 = <<5*3=15>>15\n#### 15").is_none());
        // The result 5 is also a number of the question.
        assert!(
            Template::new(
                "Tom has 10 apples and 5 pears.",
                "10/2 = <<10/2=5>>5\n#### 5"
            )
            .is_none()
        );
        assert!(Template::new("No numbers here.", "#### 4").is_none());
    }

    #[test]
    fn most_of_gsm8k_becomes_templates_and_every_draw_recomputes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/gsm8k/train.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!(
                "{} is not here: GSM8K's templates not checked",
                path.display()
            );
            return;
        };
        let records = crate::tasks::load_jsonl(&text).unwrap();
        let mut rng = StdRng::seed_from_u64(4);
        let (mut templates, mut drawn) = (0, 0);
        for r in records.iter().take(1000) {
            let Some(t) = Template::new(&r.question, r.answer.as_deref().unwrap()) else {
                continue;
            };
            templates += 1;
            if let Some((_, a, fin)) = t.draw(&mut rng) {
                drawn += 1;
                for step in steps(&a).unwrap() {
                    let written = a[step.open + 2..step.after - 2].split_once('=').unwrap().1;
                    assert_eq!(
                        calculator::compute(&step.expr).as_deref(),
                        Some(written),
                        "{a}"
                    );
                }
                assert_eq!(crate::tasks::final_number(&a), Some(fin), "{a}");
            }
        }
        eprintln!(
            "GSM8K: {templates} of the first 1000 problems are templates, {drawn} drawn anew"
        );
        assert!(templates > 550, "{templates} of 1000");
        assert!(drawn > 500, "{drawn} of {templates}");
    }
}
