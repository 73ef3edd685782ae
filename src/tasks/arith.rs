//! Synthetic GSM8K-style grade-school word problems: the mix they are drawn from.
//!
//! Families written as data in `families/*.toml` (one equation structure each, see
//! [`super::families`]; those marked `test` make the held-out split) and, for training, problems
//! composed from parts ([`super::compose`]). Every calculation is written with GSM8K's calculator
//! annotation (`48/2 = <<48/2=24>>24`), one step per line, and the solution ends with `#### N`.
//!
//! Invariants checked in the tests: every result is a positive integer (at most 100,000),
//! divisions are exact, the number of annotations (`steps`) is between 1 and 4, and no held-out
//! structure occurs in training.

use rand::SeedableRng;
use rand::distr::{Distribution, weighted::WeightedIndex};
use rand::rngs::StdRng;

use super::compose;
use super::families::{Family, families};
use super::problem::{Problem, Split};

/// Names of the families of a split: those written as data, then (for training) the composer's.
pub fn template_names(split: Split) -> Vec<&'static str> {
    families(split)
        .map(|f| f.name.as_str())
        .chain((split == Split::Train).then_some(compose::TEMPLATE))
        .collect()
}

/// Generate `n` problems, deterministically from `(n, seed, split)`. Every family is drawn in
/// proportion to its weight; training also draws composed problems ([`compose`]) at the
/// composer's weight.
pub fn problems(n: usize, seed: u64, split: Split) -> Vec<Problem> {
    problem_stream(seed, split).take(n).collect()
}

/// Where a problem comes from: a data family or the composer.
#[derive(Clone, Copy)]
enum Source {
    Family(&'static Family),
    Composed,
}

/// The endless sequence that `problems` takes its first `n` from, made one at a time.
pub fn problem_stream(seed: u64, split: Split) -> impl Iterator<Item = Problem> {
    let salt = match split {
        Split::Train => 0,
        Split::Test => 0x9E37_79B9_7F4A_7C15,
    };
    let mut rng = StdRng::seed_from_u64(seed ^ salt);
    let mut sources: Vec<(Source, f64)> = families(split)
        .map(|f| (Source::Family(f), f.weight))
        .collect();
    if split == Split::Train {
        sources.push((Source::Composed, f64::from(compose::weight())));
    }
    let draw =
        WeightedIndex::new(sources.iter().map(|(_, w)| *w)).expect("every split has families");
    std::iter::repeat_with(move || {
        loop {
            let problem = match sources[draw.sample(&mut rng)].0 {
                Source::Family(family) => family.sample(&mut rng),
                Source::Composed => Some(compose::sample(&mut rng)),
            };
            if let Some(p) = problem {
                break p;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::calculator::compute;
    use std::collections::HashSet;

    /// A frame of the composer once multiplied a count of dozens by a number the question never
    /// gave; the app's number guard would not let a model write such an answer.
    #[test]
    fn every_calculation_uses_numbers_the_question_gives_earlier_results_or_constants() {
        for p in problems(20_000, 5, Split::Train) {
            let given = crate::generate::numbers::given(&p.question);
            let mut results = Vec::new();
            for (expr, value) in annotations(&p.answer) {
                for operand in expr.split(['+', '-', '*', '/', '(', ')']) {
                    let known = operand.is_empty()
                        || given.iter().any(|g| g == operand)
                        || results.iter().any(|r| r == operand);
                    assert!(known, "{operand} in {expr}: {}\n{}", p.question, p.answer);
                }
                results.push(value);
            }
        }
    }

    /// All `<<expr=value>>` annotations of an answer, as (expression, value).
    fn annotations(answer: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = answer;
        while let Some(start) = rest.find("<<") {
            let end = rest[start..].find(">>").expect("unclosed annotation") + start;
            let inner = &rest[start + 2..end];
            let (expr, val) = inner.split_once('=').expect("annotation without =");
            // The visible text must repeat the expression and the value.
            assert!(
                rest[..start].ends_with(&format!("{expr} = ")),
                "annotation not preceded by its expression: {answer}"
            );
            assert!(
                rest[end + 2..].starts_with(val),
                "value not repeated: {answer}"
            );
            out.push((expr.to_string(), val.to_string()));
            rest = &rest[end + 2..];
        }
        out
    }

    fn check(p: &Problem) {
        let anns = annotations(&p.answer);
        assert_eq!(anns.len(), p.steps, "steps mismatch: {p:?}");
        assert!((1..=4).contains(&p.steps), "steps out of range: {p:?}");
        for (expr, c) in &anns {
            // The annotation holds what the calculator would write.
            assert_eq!(
                compute(expr),
                Some(c.to_string()),
                "bad annotation in {p:?}"
            );
            let c: i64 = c.parse().expect("an integer");
            assert!((1..=100_000).contains(&c), "range: {p:?}");
        }
        let last = p.answer.lines().last().unwrap();
        assert_eq!(last, format!("#### {}", p.r#final), "{p:?}");
        assert_eq!(p.answer.matches("####").count(), 1);
        let fin: i64 = p.r#final.parse().expect("final is an integer");
        assert!((1..=100_000).contains(&fin));
        // The final answer is one of the computed quantities.
        assert!(
            anns.iter().any(|x| x.1 == p.r#final),
            "final not computed: {p:?}"
        );
        assert!(!p.question.contains('\n'));
        assert!(p.question.ends_with('?'), "question: {}", p.question);
        assert!(
            !p.question.contains("{"),
            "unfilled placeholder: {}",
            p.question
        );
        assert!(
            !p.answer.contains("{"),
            "unfilled placeholder: {}",
            p.answer
        );
        assert!(!p.question.contains(".."), "double period: {}", p.question);
        // Each step is its own line; the `####` line follows them.
        assert_eq!(p.answer.lines().count(), p.steps + 1, "{p:?}");
    }

    #[test]
    fn all_invariants_hold_for_both_splits() {
        // Composed problems have decimals and invariants of their own (`compose`'s tests).
        for split in [Split::Train, Split::Test] {
            for p in problems(3000, 7, split)
                .into_iter()
                .filter(|p| p.template != compose::TEMPLATE)
            {
                check(&p);
            }
        }
    }

    #[test]
    fn every_step_count_appears() {
        let ps: Vec<Problem> = problem_stream(1, Split::Train)
            .filter(|p| p.template != compose::TEMPLATE)
            .take(2000)
            .collect();
        let counts: HashSet<usize> = ps.iter().map(|p| p.steps).collect();
        assert_eq!(counts, HashSet::from([1, 2, 3, 4]));
        // ...and none is rare.
        for k in 1..=4 {
            let c = ps.iter().filter(|p| p.steps == k).count();
            assert!(c >= 200, "only {c} problems with {k} steps");
        }
        let test: HashSet<usize> = problems(2000, 1, Split::Test)
            .iter()
            .map(|p| p.steps)
            .collect();
        assert!(test.len() >= 3, "{test:?}");
    }

    /// The equation structure of a worked answer, read from its annotations: a number that an
    /// earlier step computed is `r<i>`, one the question gives is `v<j>` (in order of first use),
    /// any other (the 2 of "twice") is `k`.
    fn structure(p: &Problem) -> String {
        let given_in_question: HashSet<&str> = p
            .question
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .collect();
        let (mut given, mut results, mut steps) = (Vec::new(), Vec::new(), Vec::new());
        for (expr, value) in annotations(&p.answer) {
            let mut s = String::new();
            for piece in expr.split_inclusive(['+', '-', '*', '/', '(', ')']) {
                let (number, op) =
                    piece.split_at(piece.trim_end_matches(['+', '-', '*', '/', '(', ')']).len());
                if !number.is_empty() {
                    if let Some(i) = results.iter().rposition(|r: &String| r == number) {
                        s.push_str(&format!("r{i}"));
                    } else if given_in_question.contains(number) {
                        let i = given.iter().position(|g| g == number).unwrap_or_else(|| {
                            given.push(number.to_string());
                            given.len() - 1
                        });
                        s.push_str(&format!("v{i}"));
                    } else {
                        s.push('k');
                    }
                }
                s.push_str(op);
            }
            results.push(value.to_string());
            steps.push(s);
        }
        steps.join(" ; ")
    }

    #[test]
    fn held_out_structures_never_occur_in_training() {
        let mut train: HashSet<String> = problems(30_000, 3, Split::Train)
            .iter()
            .map(structure)
            .collect();
        train.extend(families(Split::Train).map(Family::signature));
        let seen: Vec<String> = families(Split::Test)
            .filter(|f| train.contains(&f.signature()))
            .map(|f| format!("{}: {}", f.name, f.signature()))
            .collect();
        assert!(
            seen.is_empty(),
            "held-out structures seen in training: {seen:#?}"
        );
        assert!(families(Split::Test).count() >= 15);
    }

    #[test]
    fn deterministic_by_seed() {
        assert_eq!(problems(50, 3, Split::Train), problems(50, 3, Split::Train));
        assert_eq!(problems(50, 3, Split::Test), problems(50, 3, Split::Test));
        assert_ne!(problems(50, 3, Split::Train), problems(50, 4, Split::Train));
        assert_ne!(problems(50, 3, Split::Test), problems(50, 4, Split::Test));
        // A prefix of a longer run is the shorter run.
        assert_eq!(
            problems(80, 9, Split::Train)[..20],
            problems(20, 9, Split::Train)[..]
        );
    }

    #[test]
    fn splits_are_disjoint_and_all_templates_used() {
        let train: HashSet<&str> = template_names(Split::Train).into_iter().collect();
        let test: HashSet<&str> = template_names(Split::Test).into_iter().collect();
        assert!(train.len() >= 24, "{}", train.len());
        assert!(test.len() >= 6, "{}", test.len());
        assert!(train.is_disjoint(&test));
        // Enough problems that a family of weight 1/8 is drawn with near certainty.
        for (split, names) in [(Split::Train, &train), (Split::Test, &test)] {
            let used: HashSet<String> = problems(100_000, 11, split)
                .into_iter()
                .map(|p| p.template)
                .collect();
            for t in &used {
                assert!(names.contains(t.as_str()), "{t} produced for {split:?}");
            }
            assert_eq!(
                used.len(),
                names.len(),
                "not every template used for {split:?}"
            );
        }
    }

    /// Every family, however seldom the mix draws it, succeeds at every try, meets the
    /// invariants and asks many different questions (the composer is varied by its own tests).
    #[test]
    fn every_family_succeeds_meets_the_invariants_and_varies() {
        let mut rng = StdRng::seed_from_u64(42);
        for split in [Split::Train, Split::Test] {
            for f in families(split) {
                let mut questions = HashSet::new();
                for _ in 0..200 {
                    let p = f.sample(&mut rng).unwrap_or_else(|| panic!("{}", f.name));
                    check(&p);
                    questions.insert(p.question);
                }
                assert!(
                    questions.len() >= 50,
                    "family {} has only {} distinct questions",
                    f.name,
                    questions.len()
                );
            }
        }
    }

    #[test]
    fn serializes_final_field() {
        let p = &problems(1, 0, Split::Train)[0];
        let v: serde_json::Value = serde_json::to_value(p).unwrap();
        assert_eq!(v["final"], serde_json::Value::String(p.r#final.clone()));
        let back: Problem = serde_json::from_value(v).unwrap();
        assert_eq!(&back, p);
    }

    #[test]
    fn gsm8k_example_format_parses() {
        let ans = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72";
        assert_eq!(
            annotations(ans),
            vec![("48/2".into(), "24".into()), ("48+24".into(), "72".into())]
        );
    }
}
