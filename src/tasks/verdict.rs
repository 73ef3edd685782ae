//! Verdicts on proposed answers: a question with a worked answer proposed under it, and whether
//! that answer is right. A model trained on them can judge its own drafts (`engine::check`) by
//! how likely it finds "yes" after one. The wrong answers are the misreadings people's problems
//! draw from the model: the last calculation with its operation turned (added where it should
//! subtract), its numbers reversed, a number of the question more or one fewer.

use rand::Rng;
use rand::rngs::StdRng;

use super::prompt::Example;
use super::renumber::{numbers, steps};
use crate::generate::calculator;

/// The verdicts, as the model writes them after `Answer:`.
pub const RIGHT: &str = "yes";
pub const WRONG: &str = "no";

/// The line that asks for a verdict, ending its question.
pub const VERDICT_ASKED: &str = "\nIs the proposed answer right?";

/// The question a verdict answers: `question`, then the proposed worked answer on one line.
pub fn verdict_question(question: &str, draft: &str) -> String {
    let draft = draft.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{question}\nProposed answer: {draft}{VERDICT_ASKED}")
}

/// The text a judge reads for `draft`, written after a prompt `prompt` (a question in the few-shot
/// format, without its answer prefix `prefix`): the verdict question, as training writes it,
/// then the prefix.
pub fn verdict_prompt(prompt: &str, prefix: &str, draft: &str) -> String {
    format!("{}\n{prefix}", verdict_question(prompt.trim_end(), draft))
}

/// A verdict example on `e` (a worked problem), right or (`wrong`) with a misreading of it;
/// `None` when `e` has no calculation to misread.
pub fn verdict_example(e: &Example, wrong: bool, rng: &mut StdRng) -> Option<Example> {
    let draft = match wrong {
        false => e.answer.clone(),
        true => misread(&e.question, &e.answer, rng)?,
    };
    Some(Example {
        question: verdict_question(&e.question, &draft),
        answer: (if wrong { WRONG } else { RIGHT }).to_string(),
    })
}

/// Tries before a misreading of an answer is given up on.
const TRIES: usize = 12;

/// `answer` with its last calculation misread and the text after it (the result as written,
/// the `####` line) following the new result; `None` when it has no calculation or every try
/// gives a result that is the same, negative or not a terminating decimal.
pub fn misread(question: &str, answer: &str, rng: &mut StdRng) -> Option<String> {
    let last = steps(answer)?.pop()?;
    let (operands, operators) = split_expression(&last.expr)?;
    let given: Vec<String> = numbers(question)
        .iter()
        .map(|n| question[n.start..n.end].replace(',', ""))
        .filter(|n| !operands.contains(n))
        .collect();
    for _ in 0..TRIES {
        let (mut operands, mut operators) = (operands.clone(), operators.clone());
        match rng.random_range(0..4) {
            // The operation turned: + for −, × for ÷.
            0 => {
                let k = rng.random_range(0..operators.len());
                operators[k] = match operators[k] {
                    '+' => '-',
                    '-' => '+',
                    '*' => '/',
                    _ => '*',
                };
            }
            // The numbers reversed.
            1 => operands.reverse(),
            // One number of the question more, or instead of one.
            2 if !given.is_empty() => {
                let n = given[rng.random_range(0..given.len())].clone();
                if rng.random_bool(0.5) {
                    operators.push(['+', '-', '*'][rng.random_range(0..3)]);
                    operands.push(n);
                } else {
                    let k = rng.random_range(0..operands.len());
                    operands[k] = n;
                }
            }
            // One number fewer.
            _ if operands.len() > 2 => {
                operands.pop();
                operators.pop();
            }
            _ => continue,
        }
        let mut expr = operands[0].clone();
        for (op, n) in operators.iter().zip(&operands[1..]) {
            expr.push(*op);
            expr.push_str(n);
        }
        let Some(value) = calculator::evaluate(&expr) else {
            continue;
        };
        let Some(result) = calculator::format(value) else {
            continue;
        };
        if value == last.result || value.numer() < 0 {
            continue;
        }
        // The expression as the line writes it before `<<`, the annotation, then every later
        // mention of the old result.
        let before = &answer[..last.open];
        let before = match before.rfind(&last.expr) {
            Some(at) => format!("{}{expr}{}", &before[..at], &before[at + last.expr.len()..]),
            None => before.to_string(),
        };
        let mut after = String::new();
        let rest = &answer[last.after..];
        let mut at = 0;
        for n in numbers(rest).into_iter().filter(|n| n.value == last.result) {
            after.push_str(&rest[at..n.start]);
            after.push_str(&result);
            at = n.end;
        }
        after.push_str(&rest[at..]);
        return Some(format!("{before}<<{expr}={result}>>{after}"));
    }
    None
}

/// `expr`'s numbers and the operators between them, for a chain without brackets ("70-27",
/// "3*4+2"); `None` for anything else.
fn split_expression(expr: &str) -> Option<(Vec<String>, Vec<char>)> {
    let (mut operands, mut operators) = (vec![String::new()], Vec::new());
    for c in expr.chars().filter(|c| !c.is_whitespace()) {
        match c {
            '+' | '-' | '*' | '/' if !operands.last()?.is_empty() => {
                operators.push(c);
                operands.push(String::new());
            }
            '0'..='9' | '.' => operands.last_mut()?.push(c),
            _ => return None,
        }
    }
    let whole = operands.iter().all(|n| !n.is_empty()) && !operators.is_empty();
    whole.then_some((operands, operators))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{ANSWER_PREFIX, few_shot_prompt};

    const QUESTION: &str = "Mia had 70 shells. She gave away 27 of them and found 5. How many shells did she give away?";
    const ANSWER: &str = "She gave away 70-27 = <<70-27=43>>43 shells.\n#### 43";

    #[test]
    fn a_misreading_changes_the_last_calculation_and_every_mention_of_its_result() {
        let mut rng = crate::noise::rng(3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let wrong = misread(QUESTION, ANSWER, &mut rng).unwrap();
            let last = steps(&wrong).unwrap().pop().unwrap();
            let result = calculator::format(last.result).unwrap();
            assert_ne!(result, "43", "{wrong}");
            assert!(last.result.numer() >= 0, "{wrong}");
            let written = format!(
                "She gave away {} = <<{}={result}>>{result} shells.\n#### {result}",
                last.expr, last.expr
            );
            assert_eq!(wrong, written);
            seen.insert(last.expr);
        }
        // Turned, with the question's 5 more or instead of one; never reversed into a negative.
        assert!(seen.contains("70+27"), "{seen:?}");
        assert!(
            seen.iter()
                .any(|e| e.ends_with("-27+5") || e.ends_with("-27-5")),
            "{seen:?}"
        );
        assert!(seen.contains("5-27") || seen.contains("70-5"), "{seen:?}");
        assert!(!seen.contains("27-70"), "{seen:?}");
    }

    #[test]
    fn an_answer_without_a_calculation_has_no_misreading() {
        let mut rng = crate::noise::rng(1);
        assert_eq!(misread(QUESTION, "#### 43", &mut rng), None);
        assert_eq!(
            misread(QUESTION, "It is <<(2+3)*4=20>>20.\n#### 20", &mut rng),
            None
        );
    }

    #[test]
    fn a_verdict_reads_as_a_question_with_its_draft_on_one_line() {
        let mut rng = crate::noise::rng(2);
        let e = Example {
            question: QUESTION.into(),
            answer: ANSWER.into(),
        };
        let right = verdict_example(&e, false, &mut rng).unwrap();
        assert_eq!(right.answer, RIGHT);
        assert!(right.question.ends_with("Proposed answer: She gave away 70-27 = <<70-27=43>>43 shells. #### 43\nIs the proposed answer right?"));
        let wrong = verdict_example(&e, true, &mut rng).unwrap();
        assert_eq!(wrong.answer, WRONG);
        assert!(!wrong.question.contains("#### 43\n"), "{}", wrong.question);
        // The text the judge reads is the training text's, up to the verdict.
        let trained = few_shot_prompt(&[], &verdict_question(QUESTION, ANSWER)) + ANSWER_PREFIX;
        let asked = few_shot_prompt(&[], QUESTION);
        assert_eq!(verdict_prompt(&asked, ANSWER_PREFIX, ANSWER), trained);
    }
}
