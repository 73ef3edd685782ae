//! The short problem inside a long one: a GSM8K problem's first calculation, asked on its own.
//! "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in
//! May. How many …?", worked first as "Natalia sold 48/2 = <<48/2=24>>24 clips in May.", gives
//! "Natalia sold clips to 48 … in May. Natalia sold how many clips in May?" with that line as
//! its answer: people's sentences over a one-step structure, where their problem takes four.

use super::renumber::{numbers, steps};
use crate::generate::calculator::{self, Ratio};
use crate::generate::numbers::worded;

/// The first calculation of `answer` as a problem of its own: (question, worked answer), or
/// `None` when it cannot be asked plainly — a calculation of other than two numbers, a number
/// the question's setup does not give, a line whose words around the calculation do not make
/// a question (a colon, a "because", a number of their own).
pub fn first_step(question: &str, answer: &str) -> Option<(String, String)> {
    let line = answer.lines().find(|l| l.contains("<<"))?.trim();
    let [step] = steps(line)?.try_into().ok()?;
    let operands = numbers(&step.expr);
    if operands.len() != 2 {
        return None;
    }
    // The setup: the question's sentences before the one that asks.
    let sentences = sentences(question);
    let setup = sentences.iter().take_while(|s| !s.contains('?')).count();
    // Each operand is a number the setup writes, or says in words ("half"), each writing used
    // once: the sentences up to the last such one are the new problem's.
    let mut given: Vec<(usize, Ratio)> = sentences[..setup]
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            let written = numbers(s).into_iter().map(|w| w.value);
            written.chain(worded(s)).map(move |v| (i, v))
        })
        .collect();
    let mut needed = 0;
    for n in &operands {
        let at = given.iter().position(|(_, v)| *v == n.value)?;
        needed = needed.max(given.remove(at).0);
    }
    let context = sentences[..=needed].join(" ");

    // The line is: words, the calculation as written ("48/2 = $"), <<…>>, its result, words.
    let (lead, written) = split_calculation(&line[..step.open])?;
    let after = &line[step.after..];
    let result = numbers(after).into_iter().next().filter(|n| n.start == 0)?;
    let tail = after[result.end..].trim().trim_end_matches('.').trim();
    let clean = |s: &str| {
        !s.chars().any(|c| c.is_ascii_digit() || ":=<>;".contains(c))
            && !s
                .split_whitespace()
                .any(|w| w.eq_ignore_ascii_case("because"))
    };
    if lead.split_whitespace().count() < 2
        || !lead.starts_with(|c: char| c.is_ascii_uppercase())
        || !clean(lead)
        || !clean(tail)
    {
        return None;
    }
    let money = written.contains('$') || after.starts_with('$');
    let unit_follows = tail
        .split_whitespace()
        .next()
        .is_some_and(|w| matches!(w, "dollars" | "cents"));
    let how = match (money && !unit_follows, tail.is_empty()) {
        (true, _) => "how much money",
        (false, false) => "how many",
        (false, true) => return None,
    };
    let ask = match tail {
        "" => format!("{lead} {how}"),
        _ => format!("{lead} {how} {tail}"),
    };
    let final_answer = calculator::format(step.result)?;
    Some((
        format!("{context} {ask}?"),
        format!("{line}\n#### {final_answer}"),
    ))
}

/// `text` cut into sentences after `.`, `!` or `?` followed by a space (so "0.75" stays whole).
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = text.as_bytes();
    for i in 0..b.len() {
        let ends = matches!(b[i], b'.' | b'!' | b'?') && (i + 1 == b.len() || b[i + 1] == b' ');
        if ends {
            out.push(text[start..=i].trim());
            start = i + 1;
        }
    }
    if !text[start..].trim().is_empty() {
        out.push(text[start..].trim());
    }
    out
}

/// `text` (a line up to `<<`) as (the words before the calculation, the calculation as written:
/// numbers, operators, `$`, ending in `=`), or `None` when it does not end in one.
fn split_calculation(text: &str) -> Option<(&str, &str)> {
    let is_math = |w: &str| {
        w == "x"
            || w.chars()
                .all(|c| c.is_ascii_digit() || "$.,+-*/()=%×".contains(c))
    };
    let text = text.trim_end();
    let mut start = text.len();
    loop {
        let head = text[..start].trim_end();
        let word = head.rfind(' ').map_or(0, |i| i + 1);
        if head.is_empty() || !is_math(&head[word..]) {
            break;
        }
        start = word;
    }
    let written = &text[start..];
    written
        .trim_end_matches('$')
        .trim_end()
        .ends_with('=')
        .then(|| (text[..start].trim(), written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_calculation_becomes_a_question_of_its_own() {
        let (q, a) = first_step(
            "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
            "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
        )
        .expect("a first step");
        assert_eq!(
            q,
            "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. Natalia sold how many clips in May?"
        );
        assert_eq!(
            a,
            "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 24"
        );
        // A number said in words is given by its sentence, which the problem keeps.
        let (q, _) = first_step(
            "Ann has 30 cards. Then she lost half of them. Bo has 3. How many do they have now?",
            "Ann has 30/2 = <<30/2=15>>15 cards left.\n#### 18",
        )
        .expect("a first step");
        assert_eq!(
            q,
            "Ann has 30 cards. Then she lost half of them. Ann has how many cards left?"
        );
        // Sentences after the last one the calculation needs are left out; money is "how much".
        let (q, a) = first_step(
            "A pen costs $3.50. A book costs $12. Tom has 2 cats. How much do both cost with tax?",
            "The pen and the book cost 3.50 + 12 = $<<3.50+12=15.5>>15.50 together.\nWith tax …\n#### 17",
        )
        .expect("a first step");
        assert_eq!(
            q,
            "A pen costs $3.50. A book costs $12. The pen and the book cost how much money together?"
        );
        assert!(a.ends_with("together.\n#### 15.5"), "{a}");
    }

    #[test]
    fn steps_that_do_not_make_a_plain_question_are_refused() {
        let refused = |q: &str, a: &str| assert_eq!(first_step(q, a), None, "{a}");
        let q = "Tom has 5 apples and 3 pears. How many fruits does he have?";
        // A number the setup does not give.
        refused(q, "He has 5 + 4 = <<5+4=9>>9 fruits.\n#### 9");
        // Three numbers.
        refused(q, "He has 5 + 3 + 5 = <<5+3+5=13>>13 fruits.\n#### 13");
        // A colon or a "because" in the words; no words before the calculation.
        refused(
            q,
            "First find the fruits: 5 + 3 = <<5+3=8>>8 fruits.\n#### 8",
        );
        refused(q, "He has 8 fruits because 5 + 3 = <<5+3=8>>8\n#### 8");
        refused(q, "5 + 3 = <<5+3=8>>8 fruits\n#### 8");
        // No calculation at all.
        refused(q, "#### 8");
        // A number given only by the asking sentence, or given once and used twice.
        refused(
            "Tom has 5 apples. If he buys 3 more, how many does he have?",
            "Tom has 5 + 3 = <<5+3=8>>8 apples.\n#### 8",
        );
        refused(q, "He has 5 * 5 = <<5*5=25>>25 fruits.\n#### 25");
    }

    #[test]
    fn many_gsm8k_problems_give_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/gsm8k/train.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("{} is not here: first steps not checked", path.display());
            return;
        };
        let records = crate::tasks::load_jsonl(&text).unwrap();
        let found: Vec<(String, String)> = records
            .iter()
            .take(1000)
            .filter_map(|r| first_step(&r.question, r.answer.as_deref()?))
            .collect();
        eprintln!(
            "GSM8K: {} of the first 1000 problems give a first step",
            found.len()
        );
        assert!(found.len() > 200, "{}", found.len());
        for (q, a) in &found {
            assert!(q.ends_with('?') && !q[..q.len() - 1].contains('?'), "{q}");
            let fin = crate::tasks::final_number(a).expect("a final answer");
            let step = &steps(a).unwrap()[0];
            assert_eq!(
                calculator::evaluate(&step.expr).and_then(calculator::format),
                Some(fin),
                "{a}"
            );
        }
    }
}
