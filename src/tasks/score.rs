//! Scoring few-shot answers: pass@k, majority vote and the ELBO-best sample, tallied by
//! thinking budget and by the problem's number of reasoning steps; and the ELBO bound of the
//! prompts by thinking budget.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::ser::SerializeStruct;

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

/// The ELBO bound at one thinking budget: −ELBO of the thought fitted to each problem's prompt
/// (the mean over its thought samples), summed over problems, and the tokens it scored.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ElboTally {
    pub problems: usize,
    pub tokens: usize,
    /// Σ −ELBO in nats.
    pub nelbo: f64,
    /// Problems left out: a sample's −ELBO was not finite, or no token was scored.
    pub skipped: usize,
}

impl ElboTally {
    /// −ELBO per token over all problems' tokens (token-weighted, as `ltm ppl` counts).
    pub fn nelbo_per_token(&self) -> Option<f64> {
        (self.tokens > 0).then(|| self.nelbo / self.tokens as f64)
    }

    /// exp(−ELBO per token): an upper bound on the prompts' perplexity.
    pub fn ppl_bound(&self) -> Option<f64> {
        self.nelbo_per_token().map(f64::exp)
    }
}

impl Serialize for ElboTally {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("ElboTally", 6)?;
        m.serialize_field("problems", &self.problems)?;
        m.serialize_field("tokens", &self.tokens)?;
        m.serialize_field("nelbo", &self.nelbo)?;
        m.serialize_field("skipped", &self.skipped)?;
        m.serialize_field("nelbo_per_token", &self.nelbo_per_token())?;
        m.serialize_field("ppl_bound", &self.ppl_bound())?;
        m.end()
    }
}

/// Tallies keyed by thinking steps, then by reasoning steps (0 = all problems); the ELBO bound
/// keyed by thinking steps.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub tallies: BTreeMap<usize, BTreeMap<usize, Tally>>,
    pub elbo: BTreeMap<usize, ElboTally>,
}

impl Report {
    pub fn add(&mut self, thinking_steps: usize, reasoning_steps: usize, scored: Scored) {
        let row = self.tallies.entry(thinking_steps).or_default();
        row.entry(0).or_default().add(scored);
        if reasoning_steps > 0 {
            row.entry(reasoning_steps).or_default().add(scored);
        }
    }

    /// Records the final −ELBO (nats) of each thought sample for one problem whose prompt scored
    /// `tokens` tokens; the problem counts with the mean over its samples.
    pub fn add_elbo(&mut self, thinking_steps: usize, nelbo: &[f64], tokens: usize) {
        let t = self.elbo.entry(thinking_steps).or_default();
        if nelbo.is_empty() || tokens == 0 || nelbo.iter().any(|e| !e.is_finite()) {
            t.skipped += 1;
            return;
        }
        t.problems += 1;
        t.tokens += tokens;
        t.nelbo += nelbo.iter().sum::<f64>() / nelbo.len() as f64;
    }

    /// Accuracy (%) of one rule over all problems, by thinking steps.
    pub fn accuracy(&self, rule: impl Fn(&Tally) -> usize) -> Vec<(usize, f64)> {
        self.tallies
            .iter()
            .filter_map(|(&steps, row)| row.get(&0).map(|t| (steps, t.percent(rule(t)))))
            .collect()
    }

    /// A plain-text table: one row per thinking budget and group of problems; the "all" rows
    /// also carry the ELBO bound (−ELBO per token and the perplexity bound).
    pub fn table(&self, samples: usize) -> String {
        let mut out = format!(
            "{:>8}  {:>9}  {:>8}  {:>7}  {:>8}  {:>9}  {:>9}  {:>9}\n",
            "thinking",
            "problems",
            "solution",
            format!("pass@{samples}"),
            "majority",
            "ELBO-best",
            "−ELBO/tok",
            "ppl bound"
        );
        for (thinking, row) in &self.tallies {
            for (reasoning, t) in row {
                let group = if *reasoning == 0 {
                    "all".to_string()
                } else {
                    reasoning.to_string()
                };
                let elbo = self.elbo.get(thinking).filter(|_| *reasoning == 0);
                let figure = |f: Option<f64>, digits: usize| match f {
                    None => String::new(),
                    Some(f) if f.abs() >= 1e5 => format!("{f:.3e}"),
                    Some(f) => format!("{f:.digits$}"),
                };
                let line = format!(
                    "{thinking:>8}  {:>9}  {group:>8}  {:>6.1}%  {:>7.1}%  {:>8.1}%  {:>9}  {:>9}",
                    t.problems,
                    t.percent(t.pass_at_k),
                    t.percent(t.majority),
                    t.percent(t.elbo_best),
                    figure(elbo.and_then(ElboTally::nelbo_per_token), 4),
                    figure(elbo.and_then(ElboTally::ppl_bound), 3),
                );
                out.push_str(line.trim_end());
                out.push('\n');
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
        assert_eq!(r.accuracy(|t| t.pass_at_k), vec![(0, 50.0), (16, 100.0)]);
    }

    #[test]
    fn the_elbo_bound_is_token_weighted_over_problems_and_averaged_over_samples() {
        let mut r = Report::default();
        r.add(0, 1, Scored::default());
        // Two samples of 10 tokens (mean 20 nats), one of 30 tokens: 50 nats over 40 tokens.
        r.add_elbo(0, &[10.0, 30.0], 10);
        r.add_elbo(0, &[30.0], 30);
        r.add_elbo(0, &[f64::INFINITY, 1.0], 10);
        r.add_elbo(0, &[f64::NAN], 10);
        r.add_elbo(0, &[1.0], 0);
        let e = r.elbo[&0];
        assert_eq!((e.problems, e.tokens, e.skipped), (2, 40, 3));
        assert!((e.nelbo_per_token().unwrap() - 1.25).abs() < 1e-12);
        assert!((e.ppl_bound().unwrap() - 1.25f64.exp()).abs() < 1e-12);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["elbo"]["0"]["tokens"], 40);
        assert_eq!(v["elbo"]["0"]["nelbo_per_token"], 1.25);
        assert_eq!(v["tallies"]["0"]["0"]["problems"], 1);
        let table = r.table(1);
        assert!(
            table.contains("−ELBO/tok") && table.contains("1.2500"),
            "{table}"
        );
        assert!(table.contains(&format!("{:.3}", 1.25f64.exp())), "{table}");
        // Huge figures keep the table's columns: 1e6 nats over 10 tokens.
        r.add(8, 1, Scored::default());
        r.add_elbo(8, &[1e6], 10);
        assert!(r.table(1).contains("1.000e5"), "{}", r.table(1));
        // Nothing scored: no figure, no panic.
        r.add_elbo(4, &[f64::INFINITY], 10);
        assert_eq!(r.elbo[&4].ppl_bound(), None);
        assert_eq!(
            serde_json::to_value(r.elbo[&4]).unwrap()["ppl_bound"],
            serde_json::Value::Null
        );
    }
}
