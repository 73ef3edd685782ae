//! The check of an answer: drafts written under thoughts of several depths, and of those with
//! different answers the one the model finds likeliest, each judged by thinking on question and
//! draft together. On people's word problems it kept right answers that the request's own
//! thought missed (model card, "The check").

use anyhow::Result;

use super::protocol::{Check, Draft};

/// Thinking steps of the drafts for a thought of `steps` steps: its own, a quarter of them
/// (rounded up) and none, each once; no drafts for a thought of no steps, which has nothing
/// to be compared with.
pub fn draft_depths(steps: usize) -> Vec<usize> {
    if steps == 0 {
        return Vec::new();
    }
    let mut depths = vec![steps, steps.div_ceil(4), 0];
    depths.dedup();
    depths
}

/// Chooses among drafts written at `steps` with `answers`: a draft without an answer is kept
/// only when none has one; drafts that agree need no check; otherwise the first draft of each
/// answer is judged by `nelbo` (−ELBO of question and draft) and the lowest kept, the earlier
/// on a tie.
pub fn choose(
    steps: &[usize],
    answers: &[Option<String>],
    mut nelbo: impl FnMut(usize) -> Result<f64>,
) -> Result<Check> {
    let mut drafts: Vec<Draft> = steps
        .iter()
        .zip(answers)
        .map(|(&steps, answer)| Draft {
            steps,
            answer: answer.clone(),
            nelbo: None,
        })
        .collect();
    // The first draft of each answer, in order.
    let mut firsts: Vec<usize> = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        if a.is_some() && !firsts.iter().any(|&j| answers[j] == *a) {
            firsts.push(i);
        }
    }
    let kept = match firsts.as_slice() {
        [] => 0,
        [only] => *only,
        _ => {
            let judged = firsts
                .iter()
                .map(|&i| Ok((i, nelbo(i)?)))
                .collect::<Result<Vec<_>>>()?;
            for &(i, v) in &judged {
                drafts[i].nelbo = Some(v);
            }
            // The first of equal minima.
            judged
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(0, |&(i, _)| i)
        }
    };
    Ok(Check { drafts, kept })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers written as "5 7 —", "—" for a draft without one.
    fn answers(written: &str) -> Vec<Option<String>> {
        let answer = |a: &str| (a != "—").then(|| a.to_string());
        written.split(' ').map(answer).collect()
    }

    #[test]
    fn drafts_are_the_thought_a_quarter_of_it_and_none() {
        assert_eq!(draft_depths(8), [8, 2, 0]);
        assert_eq!(draft_depths(4), [4, 1, 0]);
        assert_eq!(draft_depths(2), [2, 1, 0]);
        assert_eq!(draft_depths(1), [1, 0]);
        assert!(draft_depths(0).is_empty());
    }

    /// The check of drafts at 8, 2 and 0 steps judged 30, 20 and 10, and the drafts it judged.
    fn judged(written: &str) -> (Check, Vec<usize>) {
        let scores = [30.0, 20.0, 10.0];
        let mut asked = Vec::new();
        let check = choose(&[8, 2, 0], &answers(written), |i| {
            asked.push(i);
            Ok(scores[i])
        })
        .unwrap();
        (check, asked)
    }

    #[test]
    fn the_likeliest_answer_is_kept_and_agreeing_drafts_are_not_checked() {
        // Two answers: the first draft of each is judged, the likelier kept.
        let (c, asked) = judged("5 7 7");
        assert_eq!((c.kept, asked), (1, vec![0, 1]));
        assert_eq!(c.drafts[1].nelbo, Some(20.0));
        assert_eq!(c.drafts[2].nelbo, None, "an answer already judged");
        assert_eq!(c.line(), "drafts 5 · 7 · 7 (8, 2, 0 steps): kept 7");
        // One answer among them: nothing to judge, and a draft without an answer is not kept.
        let (c, asked) = judged("— 4 4");
        assert_eq!((c.kept, asked.len()), (1, 0));
        let (c, asked) = judged("— — —");
        assert_eq!((c.kept, asked.len()), (0, 0));
        // A tie keeps the earlier draft.
        let c = choose(&[1, 0], &answers("1 2"), |_| Ok(3.0)).unwrap();
        assert_eq!(c.kept, 0);
    }
}
