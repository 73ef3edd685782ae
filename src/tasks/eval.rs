//! Scoring few-shot answers: pass@k, majority vote and the ELBO-best sample, tallied by
//! thinking budget and by the problem's number of reasoning steps.

use std::collections::BTreeMap;

use serde::Serialize;

use super::extract::same_number;
use super::vote::{elbo_best, majority};

/// How one problem fared with one thinking budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scored {
    /// Some sample got it right.
    pub pass_at_k: bool,
    pub majority: bool,
    pub elbo_best: bool,
}

/// Scores the extracted answers of K samples (with their final −ELBO) against `gold`.
pub fn score(gold: &str, answers: &[Option<String>], nelbo: &[f64]) -> Scored {
    let right = |a: Option<&str>| a.is_some_and(|a| same_number(a, gold));
    Scored {
        pass_at_k: answers.iter().any(|a| right(a.as_deref())),
        majority: right(majority(answers).as_ref().map(|(a, _)| a.as_str())),
        elbo_best: right(elbo_best(answers, nelbo).as_deref()),
    }
}

/// Counts of problems and of correct answers under each rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Tally {
    pub problems: usize,
    pub pass_at_k: usize,
    pub majority: usize,
    pub elbo_best: usize,
}

impl Tally {
    fn add(&mut self, s: Scored) {
        self.problems += 1;
        self.pass_at_k += s.pass_at_k as usize;
        self.majority += s.majority as usize;
        self.elbo_best += s.elbo_best as usize;
    }

    pub fn percent(&self, count: usize) -> f64 {
        100.0 * count as f64 / self.problems.max(1) as f64
    }
}

/// Tallies keyed by thinking steps, then by reasoning steps (0 = all problems).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub tallies: BTreeMap<usize, BTreeMap<usize, Tally>>,
}

impl Report {
    pub fn add(&mut self, thinking_steps: usize, reasoning_steps: usize, scored: Scored) {
        let row = self.tallies.entry(thinking_steps).or_default();
        row.entry(0).or_default().add(scored);
        if reasoning_steps > 0 {
            row.entry(reasoning_steps).or_default().add(scored);
        }
    }

    /// A plain-text table: one row per thinking budget and group of problems.
    pub fn table(&self, samples: usize) -> String {
        let mut out = format!(
            "{:>8}  {:>9}  {:>8}  {:>7}  {:>8}  {:>9}\n",
            "thinking",
            "problems",
            "steps",
            format!("pass@{samples}"),
            "majority",
            "ELBO-best"
        );
        for (thinking, row) in &self.tallies {
            for (reasoning, t) in row {
                let group = if *reasoning == 0 {
                    "all".to_string()
                } else {
                    reasoning.to_string()
                };
                out.push_str(&format!(
                    "{thinking:>8}  {:>9}  {group:>8}  {:>6.1}%  {:>7.1}%  {:>8.1}%\n",
                    t.problems,
                    t.percent(t.pass_at_k),
                    t.percent(t.majority),
                    t.percent(t.elbo_best)
                ));
            }
        }
        out
    }
}

/// Reasoning steps of a GSM8K-style solution: its calculator annotations.
pub fn reasoning_steps(answer: Option<&str>) -> usize {
    answer.map_or(0, |a| a.matches("<<").count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(xs: &[&str]) -> Vec<Option<String>> {
        xs.iter().map(|x| Some(x.to_string())).collect()
    }

    #[test]
    fn the_three_rules_can_disagree() {
        let s = score("12", &some(&["12", "13", "13"]), &[5.0, 1.0, 2.0]);
        assert_eq!(
            s,
            Scored {
                pass_at_k: true,
                majority: false,
                elbo_best: false
            }
        );
        let s = score("12", &some(&["12", "13", "12"]), &[0.5, 1.0, 2.0]);
        assert_eq!(
            s,
            Scored {
                pass_at_k: true,
                majority: true,
                elbo_best: true
            }
        );
        let s = score("1000", &[None, Some("1,000".into())], &[0.0, 1.0]);
        assert!(s.pass_at_k && s.majority && s.elbo_best);
        assert_eq!(score("7", &[None], &[0.0]), Scored::default());
    }

    #[test]
    fn report_tallies_by_budget_and_steps() {
        let mut r = Report::default();
        r.add(
            0,
            1,
            Scored {
                pass_at_k: true,
                majority: true,
                elbo_best: false,
            },
        );
        r.add(0, 2, Scored::default());
        r.add(
            16,
            2,
            Scored {
                pass_at_k: true,
                majority: true,
                elbo_best: true,
            },
        );
        assert_eq!(
            r.tallies[&0][&0],
            Tally {
                problems: 2,
                pass_at_k: 1,
                majority: 1,
                elbo_best: 0
            }
        );
        assert_eq!(r.tallies[&0][&2].problems, 1);
        assert_eq!(r.tallies[&16][&0].elbo_best, 1);
        let table = r.table(4);
        assert!(
            table.contains("pass@4") && table.contains(" 50.0%"),
            "{table}"
        );
        assert_eq!(
            reasoning_steps(Some("a <<1+2=3>>3\nb <<3*2=6>>6\n#### 6")),
            2
        );
    }
}
