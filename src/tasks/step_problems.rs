//! The short problems inside a long one: each calculation of a GSM8K problem's worked answer,
//! asked on its own. "Natalia sold clips to 48 of her friends in April, and then she sold half
//! as many clips in May. How many …?", worked as "Natalia sold 48/2 = <<48/2=24>>24 clips in
//! May.", then "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.", gives
//! "… Natalia sold how many clips in May?" with the first line as its answer, and "… Natalia
//! sold 24 clips in May. Natalia sold how many clips altogether in April and May?" with the
//! second: people's sentences over one-step structures, where their problem takes several.

use super::renumber::{numbers, steps};
use crate::generate::calculator::{self, Ratio};
use crate::generate::numbers::worded;

/// A line of a worked answer with one calculation that reads as a statement: "Natalia sold",
/// "48/2 =", 24, "clips in May".
struct Statement<'a> {
    line: &'a str,
    lead: &'a str,
    /// The result as the line writes it, with its `$` if the calculation has one.
    result: String,
    tail: &'a str,
    expr: String,
    value: Ratio,
    money: bool,
}

impl<'a> Statement<'a> {
    /// `line` as a statement, or `None` when its words around the calculation do not make one
    /// (a colon, a "because", a number of their own, fewer than two words before it).
    fn parse(line: &'a str) -> Option<Self> {
        let line = line.trim();
        let [step] = steps(line)?.try_into().ok()?;
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
        let dollar = written.trim_end().ends_with('$');
        Some(Self {
            line,
            lead,
            result: format!("{}{}", if dollar { "$" } else { "" }, &after[..result.end]),
            tail,
            expr: step.expr,
            value: step.result,
            money: written.contains('$') || after.starts_with('$'),
        })
    }

    /// The line with its result given: "Natalia sold 24 clips in May."
    fn given(&self) -> String {
        match self.tail {
            "" => format!("{} {}.", self.lead, self.result),
            tail => format!("{} {} {tail}.", self.lead, self.result),
        }
    }

    /// The line asked: "Natalia sold how many clips in May?", or `None` when nothing after
    /// the result says what is counted.
    fn asked(&self) -> Option<String> {
        let unit_follows = self
            .tail
            .split_whitespace()
            .next()
            .is_some_and(|w| matches!(w, "dollars" | "cents"));
        let how = match (self.money && !unit_follows, self.tail.is_empty()) {
            (true, _) => "how much money",
            (false, false) => "how many",
            (false, true) => return None,
        };
        Some(match self.tail {
            "" => format!("{} {how}?", self.lead),
            tail => format!("{} {how} {tail}?", self.lead),
        })
    }
}

/// The calculations of `answer` that can be asked plainly, each as a problem of its own:
/// (which calculation, counted from 0; question; worked answer). A calculation is asked when
/// it has two numbers, each the result of an earlier line that reads as a statement or else
/// one the question's setup gives (in digits or in words, each writing used once), and its
/// own line reads as one. The question is the setup's sentences up to the last one it needs
/// (the first at least), then the earlier lines it needs with their results given, then the
/// line asked.
pub fn step_problems(question: &str, answer: &str) -> Vec<(usize, String, String)> {
    let lines: Vec<Option<Statement>> = answer
        .lines()
        .filter(|l| l.contains("<<"))
        .map(Statement::parse)
        .collect();
    let sentences = sentences(question);
    let setup = sentences.iter().take_while(|s| !s.contains('?')).count();
    let setup_numbers: Vec<(usize, Ratio)> = sentences[..setup]
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            let written = numbers(s).into_iter().map(|w| w.value);
            written.chain(worded(s)).map(move |v| (i, v))
        })
        .collect();
    let mut out = Vec::new();
    for (k, line) in lines.iter().enumerate() {
        let Some(line) = line else { continue };
        let operands = numbers(&line.expr);
        let Some(ask) = line.asked().filter(|_| operands.len() == 2) else {
            continue;
        };
        let (mut given, mut results) = (setup_numbers.clone(), Vec::new());
        let mut needed = 0;
        // An earlier result first: a setup number of the same value is most often a
        // coincidence ("75 %" beside a result of 75 dollars).
        let found = operands.iter().all(|n| {
            let earlier = (0..k).find(|&j| {
                !results.contains(&j) && lines[j].as_ref().is_some_and(|l| l.value == n.value)
            });
            if let Some(j) = earlier {
                results.push(j);
                return true;
            }
            match given.iter().position(|(_, v)| *v == n.value) {
                Some(at) => {
                    needed = needed.max(given.remove(at).0);
                    true
                }
                None => false,
            }
        });
        let Some(final_answer) = calculator::format(line.value).filter(|_| found) else {
            continue;
        };
        results.sort_unstable();
        let context = match setup {
            0 => String::new(),
            _ => sentences[..=needed].join(" "),
        };
        let stated: Vec<String> = results
            .iter()
            .filter_map(|&j| lines[j].as_ref().map(Statement::given))
            .collect();
        let question = [context, stated.join(" "), ask]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        out.push((k, question, format!("{}\n#### {final_answer}", line.line)));
    }
    out
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

    /// The problem of the first calculation, if it can be asked.
    fn first_step(question: &str, answer: &str) -> Option<(String, String)> {
        step_problems(question, answer)
            .into_iter()
            .find(|(k, ..)| *k == 0)
            .map(|(_, q, a)| (q, a))
    }

    #[test]
    fn a_later_calculation_is_asked_with_the_results_it_needs_given() {
        let problems = step_problems(
            "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
            "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
        );
        assert_eq!(problems.len(), 2);
        let (k, q, a) = &problems[1];
        assert_eq!(*k, 1);
        assert_eq!(
            q,
            "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. Natalia sold 24 clips in May. Natalia sold how many clips altogether in April and May?"
        );
        assert_eq!(
            a,
            "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
        );
        // Money keeps its sign when given; a result that no statement gives cannot be used.
        let problems = step_problems(
            "A pen costs $3.50 and a book $12. Tom pays with $20. How much change does he get?",
            "The pen and the book cost 3.50 + 12 = $<<3.50+12=15.5>>15.50 together.\nTom gets 20 - 15.50 = $<<20-15.50=4.5>>4.50 in change.\n#### 4.5",
        );
        let (_, q, a) = problems
            .iter()
            .find(|(k, ..)| *k == 1)
            .expect("a second step");
        assert_eq!(
            q,
            "A pen costs $3.50 and a book $12. Tom pays with $20. The pen and the book cost $15.50 together. Tom gets how much money in change?"
        );
        assert!(a.ends_with("\n#### 4.5"), "{a}");
        let none = step_problems(
            "Tom has 5 apples and 3 pears. How many fruits does he have twice over?",
            "First: 5 + 3 = <<5+3=8>>8 fruits.\nHe has 8 * 2 = <<8*2=16>>16 fruits twice over.\n#### 16",
        );
        assert!(none.iter().all(|(k, ..)| *k != 1), "{none:?}");
    }

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
        let found: Vec<(usize, String, String)> = records
            .iter()
            .take(1000)
            .flat_map(|r| step_problems(&r.question, r.answer.as_deref().unwrap_or_default()))
            .collect();
        let firsts = found.iter().filter(|(k, ..)| *k == 0).count();
        eprintln!(
            "GSM8K: the first 1000 problems give {firsts} first steps and {} later ones",
            found.len() - firsts
        );
        assert!(firsts > 200, "{firsts}");
        assert!(found.len() - firsts > 200, "{}", found.len() - firsts);
        for (_, q, a) in &found {
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
