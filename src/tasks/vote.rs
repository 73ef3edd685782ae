//! Combining several sampled answers into one.

use serde::{Deserialize, Serialize};

/// The samples' answers taken together: the majority vote and the ELBO-best answer, as the
/// app shows them and `ltm generate --samples N` prints them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The answer most samples gave (`None` when none gave one), and how many gave it.
    pub majority: Option<String>,
    pub agreement: usize,
    /// The answer of the sample with the lowest −ELBO.
    pub elbo_best: Option<String>,
}

impl Verdict {
    /// The verdict on the samples' extracted answers and their final −ELBO.
    pub fn of(answers: &[Option<String>], nelbo: &[f64]) -> Self {
        let majority = majority(answers);
        Self {
            agreement: majority.as_ref().map_or(0, |(_, n)| *n),
            majority: majority.map(|(answer, _)| answer),
            elbo_best: elbo_best(answers, nelbo),
        }
    }

    /// "agreement 2/3 · majority 42 · ELBO-best 41" for `samples` samples.
    pub fn line(&self, samples: usize) -> String {
        format!(
            "agreement {}/{samples}  ·  majority {}  ·  ELBO-best {}",
            self.agreement,
            shown(&self.majority),
            shown(&self.elbo_best)
        )
    }
}

/// An answer as front ends show it: "—" for none.
pub fn shown(answer: &Option<String>) -> String {
    answer.clone().unwrap_or_else(|| "—".into())
}

/// Each answer once with how many times it was given, in order of first occurrence.
pub fn tally<'a>(answers: impl IntoIterator<Item = &'a str>) -> Vec<(&'a str, usize)> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for a in answers {
        match counts.iter_mut().find(|(s, _)| *s == a) {
            Some(c) => c.1 += 1,
            None => counts.push((a, 1)),
        }
    }
    counts
}

/// Majority over the samples' extracted answers (`None` = no answer, never
/// wins); ties broken by first occurrence. Returns the answer and its count.
pub fn majority(answers: &[Option<String>]) -> Option<(String, usize)> {
    let mut best: Option<(&str, usize)> = None;
    for (s, c) in tally(answers.iter().flatten().map(String::as_str)) {
        if best.is_none_or(|(_, b)| c > b) {
            best = Some((s, c));
        }
    }
    best.map(|(s, c)| (s.to_string(), c))
}

/// The answer of the sample with the lowest −ELBO (`nelbo`); skips `None`
/// answers and NaN values. Ties go to the earlier sample. Pairs answers and
/// values by position; extra entries in the longer slice are ignored.
pub fn elbo_best(answers: &[Option<String>], nelbo: &[f64]) -> Option<String> {
    let mut best: Option<(&str, f64)> = None;
    for (a, &v) in answers.iter().zip(nelbo) {
        let Some(a) = a else { continue };
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v < b) {
            best = Some((a.as_str(), v));
        }
    }
    best.map(|(s, _)| s.to_string())
}

/// Vote where each sample weighs `exp(-(nelbo - min nelbo))`, i.e. its
/// posterior-like likelihood relative to the best sample. `None` answers and
/// NaN values are skipped; ties go to the first occurrence. Returns the
/// answer and its total weight.
pub fn elbo_weighted(answers: &[Option<String>], nelbo: &[f64]) -> Option<(String, f64)> {
    let pairs: Vec<(&str, f64)> = answers
        .iter()
        .zip(nelbo)
        .filter_map(|(a, &v)| a.as_deref().filter(|_| !v.is_nan()).map(|a| (a, v)))
        .collect();
    let min = pairs.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let mut weights: Vec<(&str, f64)> = Vec::new();
    for &(a, v) in &pairs {
        let w = (min - v).exp();
        match weights.iter_mut().find(|(s, _)| *s == a) {
            Some(e) => e.1 += w,
            None => weights.push((a, w)),
        }
    }
    let mut best: Option<(&str, f64)> = None;
    for &(s, w) in &weights {
        if best.is_none_or(|(_, b)| w > b) {
            best = Some((s, w));
        }
    }
    best.map(|(s, w)| (s.to_string(), w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(xs: &[Option<&str>]) -> Vec<Option<String>> {
        xs.iter().map(|x| x.map(String::from)).collect()
    }

    #[test]
    fn majority_basic_and_ties() {
        assert_eq!(
            majority(&v(&[Some("3"), Some("5"), Some("3")])),
            Some(("3".into(), 2))
        );
        // Tie: the answer seen first wins.
        assert_eq!(
            majority(&v(&[Some("5"), Some("3"), Some("3"), Some("5")])),
            Some(("5".into(), 2))
        );
        assert_eq!(majority(&v(&[Some("7"), Some("8")])), Some(("7".into(), 1)));
    }

    #[test]
    fn majority_nones_never_win() {
        assert_eq!(
            majority(&v(&[None, None, None, Some("4")])),
            Some(("4".into(), 1))
        );
        assert_eq!(
            majority(&v(&[None, Some("1"), None, Some("2"), Some("2")])),
            Some(("2".into(), 2))
        );
        assert_eq!(majority(&v(&[None, None])), None);
        assert_eq!(majority(&[]), None);
    }

    #[test]
    fn elbo_best_picks_lowest_and_skips_none() {
        let a = v(&[Some("1"), None, Some("2"), Some("3")]);
        assert_eq!(elbo_best(&a, &[5.0, 0.1, 2.0, 3.0]), Some("2".into()));
        assert_eq!(elbo_best(&a, &[5.0, 0.1, 2.0, f64::NAN]), Some("2".into()));
        // Tie goes to the earlier sample.
        assert_eq!(elbo_best(&a, &[2.0, 0.0, 2.0, 9.0]), Some("1".into()));
        assert_eq!(elbo_best(&v(&[None, None]), &[1.0, 2.0]), None);
        assert_eq!(elbo_best(&[], &[]), None);
    }

    #[test]
    fn elbo_weighted_sums_weights() {
        // Two moderately good "7"s beat one slightly better "9".
        let a = v(&[Some("9"), Some("7"), Some("7"), None]);
        let (ans, w) = elbo_weighted(&a, &[1.0, 1.2, 1.3, 0.0]).unwrap();
        assert_eq!(ans, "7");
        assert!(w > 1.0 && w < 2.0, "{w}");
        // A much better single sample wins.
        let (ans, _) = elbo_weighted(&a, &[1.0, 9.0, 9.0, 0.0]).unwrap();
        assert_eq!(ans, "9");
        assert_eq!(elbo_weighted(&v(&[None]), &[1.0]), None);
    }
}
