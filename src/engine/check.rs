//! The check of an answer: drafts written under several thoughts, and of those with different
//! answers the one the model finds likeliest, each judged by thinking on question and draft
//! together. On people's word problems it kept right answers that the request's own thought
//! missed (model card, "The check").

use anyhow::Result;

use super::protocol::{Check, Draft};
use candle_core::{D, DType, Tensor};

use crate::model::{Ltm, Pass};
use crate::noise::rng;
use crate::tasks::verdict::{RIGHT, WRONG};
use crate::text::Tokenizer;
use crate::think::{Sequences, think_alike};

/// Thoughts drawn from the prior N(0, I) for a check's further drafts: [`DRAWN_PER_STEP`] a
/// thinking step, within [`DRAWN_LEAST`] and [`DRAWN_MOST`]. The thoughts fitted to a question
/// differ little, and so do their drafts; the decoder writes under a drawn thought what it
/// reads there, and across 16 of them a right answer turns up far more often (model card,
/// "The check explores"). More thinking explores more: 16 at `low` and `medium`, 32 at `high`,
/// 64 at `max`, each set the one before and more (drawn in order from one seed), and the more
/// drafts vote, the surer the vote (model card, "More thinking explores more").
fn drawn(steps: usize) -> usize {
    (DRAWN_PER_STEP * steps).clamp(DRAWN_LEAST, DRAWN_MOST)
}

/// Drafts written under further drawn thoughts with their answers held back until they use
/// every number the question gives (`generate::AnswerHold`): half as many as [`drawn`] where
/// it draws the fewest (`low`, `medium`), none where it draws more. A small model often
/// answers after the first step of two and leaves a number unread; held, it goes on to use
/// it. At `high` and `max` the 32 and 64 drawn drafts find such answers themselves, and two
/// agreeing among 16 or 32 held drafts let a number given only to mislead win too often
/// (model card, "Drafts that use every number").
fn held(steps: usize) -> usize {
    match drawn(steps) {
        DRAWN_LEAST => DRAWN_LEAST / 2,
        _ => 0,
    }
}

const DRAWN_PER_STEP: usize = 8;
const DRAWN_LEAST: usize = 16;
/// As many as `max` draws: a budget of thousands of steps should not write thousands of drafts.
const DRAWN_MOST: usize = 64;

/// The drafts a check writes for a thought of `steps` steps, their answers not yet known:
/// under the thought itself, under the same start fitted for a quarter of the steps (rounded
/// up) and for none, each depth once, then under [`drawn`] thoughts drawn from the prior, then
/// [`held`] more with their answers held back. None for a thought of no steps: the check is
/// thinking, and that has none.
pub fn drafts(steps: usize) -> Vec<Draft> {
    if steps == 0 {
        return Vec::new();
    }
    let mut depths = vec![steps, steps.div_ceil(4), 0];
    depths.dedup();
    let draft = |steps, drawn, held| Draft {
        steps,
        drawn,
        held,
        answer: None,
        nelbo: None,
        flaw: None,
        unused: 0,
        text: String::new(),
    };
    let fitted = depths.into_iter().map(|steps| draft(steps, false, false));
    fitted
        .chain((0..drawn(steps)).map(|_| draft(0, true, false)))
        .chain((0..held(steps)).map(|_| draft(0, true, true)))
        .collect()
}

/// How much an answer's agreement weighs against its judged draft: kept is the answer whose
/// −ELBO less this many times the log of how many drafts reach it is lowest. At 1 a draft's
/// likelihood and its answer's count weigh alike; but a draft's −ELBO moves by nats with its
/// wording, and drafts that agree on an answer in other words are the better evidence. On the
/// development set 3 kept as many right answers as 1 or more at each level (5 more at `max`);
/// more than 3 changed little (model card, "More thinking explores more").
pub const AGREEMENT: f64 = 3.0;

/// How many held drafts must reach an answer before it counts. A held draft uses every number
/// the question gives, so it passes over the drafts that leave one out; but people's problems
/// give numbers only to mislead, and one held draft that uses such a number would win alone.
/// Held drafts that agree are the evidence (on the development set at `medium`: 2 kept the
/// right answer of 2 more problems than no held drafts, 1 of 9 fewer; model card, "Drafts
/// that use every number").
const HELD_AGREEING: usize = 2;

/// Tokens a draft may write beyond twice the first finished draft's.
const RAMBLE_SLACK: usize = 16;
/// Tokens more a draft may write to end its answer's line: a long number takes many, and an
/// answer cut off is none.
const ANSWER_ROOM: usize = 32;

/// Whether a draft of `tokens` tokens, `text` so far and still writing, rambles: it has gone on
/// to twice the length of the first draft to finish (`first_finished` tokens), and a little
/// more, and would keep the whole batch writing; one that has begun its `####` line may go on
/// for [`ANSWER_ROOM`] more to end it. The request's own draft is never cut.
pub fn rambles(text: &str, tokens: usize, first_finished: Option<usize>) -> bool {
    // The text is read only past the first limit: this runs for every draft at every token.
    let answering = || {
        text.find("####")
            .is_some_and(|at| !text[at..].contains('\n'))
    };
    first_finished.is_some_and(|n| {
        let limit = 2 * n + RAMBLE_SLACK;
        tokens >= limit && (tokens >= limit + ANSWER_ROOM || !answering())
    })
}

/// −ELBO of the prompt `ids` followed by each of `drafts`, each with a thought fitted to both
/// for `steps` steps at `lr`, all from `seed`'s one start and noise (as one batch): how likely
/// the model finds each draft as an answer.
pub fn judge(
    model: &Ltm,
    tokenizer: &Tokenizer,
    ids: &[u32],
    drafts: &[&str],
    steps: usize,
    lr: f64,
    seed: u64,
) -> Result<Vec<f64>> {
    let texts = drafts
        .iter()
        .map(|draft| {
            let mut text = ids.to_vec();
            text.extend(tokenizer.encode(draft)?);
            text.drain(..text.len().saturating_sub(model.config().max_seq_len));
            Ok(text)
        })
        .collect::<Result<Vec<_>>>()?;
    let sequences = Sequences::padded(&texts, model.device())?;
    let fitted = think_alike(model, &sequences, steps, lr, &mut rng(seed))?;
    Ok((0..drafts.len()).map(|i| fitted.elbo.nelbo(i)).collect())
}

/// −log P(right) of each draft, for a model trained on verdicts (`tasks::verdict`): `prompts`
/// are the verdict questions on the drafts, each ending in the answer prefix, and a draft is as
/// likely right as the model finds " yes" against " no" after it, with a thought fitted for
/// `steps` steps at `lr` to question and draft (not to the verdict), from `seed`'s one start
/// and noise.
pub fn verdicts(
    model: &Ltm,
    tokenizer: &Tokenizer,
    prompts: &[String],
    steps: usize,
    lr: f64,
    seed: u64,
) -> Result<Vec<f64>> {
    let [yes, no] = [RIGHT, WRONG].map(|v| tokenizer.encode(&format!(" {v}")));
    let (yes, no) = (yes?, no?);
    let room = model
        .config()
        .max_seq_len
        .saturating_sub(yes.len().max(no.len()));
    let asked = prompts
        .iter()
        .map(|prompt| Ok(tokenizer.encode_tail(prompt, room)?.0))
        .collect::<Result<Vec<_>>>()?;
    // One thought per draft, fitted to question and draft; then each reply scored under it.
    let thought = think_alike(
        model,
        &Sequences::padded(&asked, model.device())?,
        steps,
        lr,
        &mut rng(seed),
    )?;
    let z = thought
        .z()?
        .unsqueeze(1)?
        .repeat((1, 2, 1, 1))?
        .flatten_to(1)?;
    let (mut texts, mut reply) = (Vec::new(), Vec::new());
    for ids in &asked {
        for r in [&yes, &no] {
            texts.push([ids.as_slice(), r].concat());
            reply.push(ids.len() - 1..ids.len() - 1 + r.len());
        }
    }
    let text = Sequences::padded(&texts, model.device())?;
    let n = text.inputs.dim(1)?;
    // Target i is token i + 1: a reply's targets start at the prompt's last token.
    let scored: Vec<f32> = reply
        .iter()
        .flat_map(|r| (0..n).map(|i| if r.contains(&i) { 1f32 } else { 0.0 }))
        .collect();
    let scored = Tensor::from_vec(scored, (texts.len(), n), model.device())?;
    let prefix = model.prefix(&text.inputs, Pass::Infer)?;
    let nll = model.token_nll(&prefix, &text.targets, &z, Pass::Infer)?;
    let nll: Vec<f32> = (nll.to_dtype(DType::F32)? * scored)?
        .sum(D::Minus1)?
        .to_vec1()?;
    // −log of yes's share: softplus(nll(yes) − nll(no)).
    Ok(nll
        .chunks(2)
        .map(|p| {
            let d = (p[0] - p[1]) as f64;
            d.max(0.0) + (-d.abs()).exp().ln_1p()
        })
        .collect())
}

/// Chooses among `drafts`, their answers, flaws and unused numbers written: a draft without an
/// answer is kept only when none has one, one with a flaw only when every draft with an answer
/// has one, a held one only when [`HELD_AGREEING`] held ones reach its answer, and of the rest
/// only those that leave fewest of the question's numbers unused;
/// among these, drafts that agree need no check; otherwise the first draft of each answer is
/// judged by `nelbo` (−ELBO of question and draft, for all judged drafts at once) and kept is
/// the one whose −ELBO less [`AGREEMENT`] times the log of how many drafts gave its answer is
/// lowest, the earlier on a tie.
pub fn choose(
    mut drafts: Vec<Draft>,
    nelbo: impl FnOnce(&[usize]) -> Result<Vec<f64>>,
) -> Result<Check> {
    // A held draft counts when enough held drafts, alike in having a flaw or none, agree.
    let counts = |d: &Draft| {
        let alike =
            |h: &&Draft| h.held && h.answer == d.answer && h.flaw.is_none() == d.flaw.is_none();
        d.answer.is_some() && (!d.held || drafts.iter().filter(alike).count() >= HELD_AGREEING)
    };
    let sound = drafts.iter().any(|d| counts(d) && d.flaw.is_none());
    let admissible = |d: &Draft| counts(d) && (d.flaw.is_none() || !sound);
    let fewest = drafts
        .iter()
        .filter(|d| admissible(d))
        .map(|d| d.unused)
        .min();
    let eligible: Vec<bool> = (drafts.iter())
        .map(|d| admissible(d) && Some(d.unused) == fewest)
        .collect();
    let reaching = |answer: &Option<String>| {
        (drafts.iter().zip(&eligible))
            .filter(|(d, e)| **e && d.answer == *answer)
            .count()
    };
    // The first eligible draft of each answer, in order, and how many eligible drafts reach it.
    let mut firsts: Vec<(usize, usize)> = Vec::new();
    for (i, d) in drafts.iter().enumerate() {
        if eligible[i] && !firsts.iter().any(|&(j, _)| drafts[j].answer == d.answer) {
            firsts.push((i, reaching(&d.answer)));
        }
    }
    let kept = match firsts.as_slice() {
        [] => 0,
        [(only, _)] => *only,
        _ => {
            let judged = nelbo(&firsts.iter().map(|&(i, _)| i).collect::<Vec<_>>())?;
            let mut best: Option<(usize, f64)> = None;
            for (&(i, reached), &v) in firsts.iter().zip(&judged) {
                drafts[i].nelbo = Some(v);
                let score = v - AGREEMENT * (reached as f64).ln();
                // The first of equal minima.
                if best.is_none_or(|(_, b)| score < b) {
                    best = Some((i, score));
                }
            }
            best.map_or(0, |(i, _)| i)
        }
    };
    Ok(Check { drafts, kept })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_gets_the_same_verdict_judged_alone_or_beside_a_longer_one() {
        let config = serde_json::from_str(
            r#"{"dim":16,"n_layers":2,"n_heads":2,"vocab_size":50258,"multiple_of":16,"max_seq_len":64,"max_z_len":4}"#,
        )
        .unwrap();
        let model = crate::model::Checkpoint::random(config, 7)
            .unwrap()
            .model(candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap();
        let tokenizer = Tokenizer::gpt2();
        let short = "Question: 2 and 3?\nProposed answer: 5\nIs it right?\nAnswer:".to_string();
        let long = "Question: Ann has 2 apples and gets 3 more. How many now?\nProposed answer: 2+3 = 5\nIs it right?\nAnswer:".to_string();
        let judge = |prompts: &[String]| verdicts(&model, &tokenizer, prompts, 2, 0.3, 1).unwrap();
        let alone = judge(std::slice::from_ref(&short));
        let beside = judge(&[short.clone(), long.clone()]);
        assert_eq!(beside.len(), 2);
        // −log of a probability, and the padding of the shorter rows neither scored nor fitted to.
        assert!(
            beside.iter().all(|v| v.is_finite() && *v > 0.0),
            "{beside:?}"
        );
        assert!((alone[0] - beside[0]).abs() < 1e-4, "{alone:?} {beside:?}");
        assert!(
            (beside[0] - beside[1]).abs() > 1e-6,
            "different drafts, different verdicts"
        );
    }

    /// Drafts at `steps` (a "d" after a step count: drawn; "h": drawn and held) with answers
    /// written as "5 7 —", "—" for a draft without one.
    fn written(steps: &str, answers: &str) -> Vec<Draft> {
        let answer = |a: &str| (a != "—").then(|| a.to_string());
        steps
            .split(' ')
            .zip(answers.split(' '))
            .map(|(s, a)| Draft {
                steps: s.trim_end_matches(['d', 'h']).parse().unwrap(),
                drawn: s.ends_with(['d', 'h']),
                held: s.ends_with('h'),
                answer: answer(a),
                nelbo: None,
                flaw: None,
                unused: 0,
                text: String::new(),
            })
            .collect()
    }

    #[test]
    fn drafts_are_the_thought_a_quarter_of_it_none_the_drawn_and_the_held() {
        let fitted = |steps| -> Vec<usize> {
            let d = drafts(steps);
            let count = |held| d.iter().filter(|d| d.drawn && d.held == held).count();
            assert_eq!(count(false), super::drawn(steps));
            assert_eq!(count(true), held(steps));
            assert!(d.iter().all(|d| !d.held || d.drawn && d.steps == 0));
            let first_held = d.iter().position(|d| d.held).unwrap_or(d.len());
            assert!(
                d[first_held..].iter().all(|d| d.held),
                "the held drafts last"
            );
            d.iter().filter(|d| !d.drawn).map(|d| d.steps).collect()
        };
        let levels = [1, 2, 4, 8, 10_000].map(drawn);
        assert_eq!(
            levels,
            [16, 16, 32, 64, 64],
            "more thinking draws more, within bounds"
        );
        assert_eq!([1, 2, 4, 8].map(held), [8, 8, 0, 0]);
        assert_eq!(fitted(8), [8, 2, 0]);
        assert_eq!(fitted(4), [4, 1, 0]);
        assert_eq!(fitted(2), [2, 1, 0]);
        assert_eq!(fitted(1), [1, 0]);
        assert!(drafts(0).is_empty());
        assert!(!drafts(2)[0].drawn, "the request's own thought first");
    }

    /// The check of drafts at 8, 2 and 0 steps and one drawn, judged 30, 20, 10 and 40, and
    /// the drafts it judged.
    fn judged(answers: &str) -> (Check, Vec<usize>) {
        let scores = [30.0, 20.0, 10.0, 40.0];
        let mut asked = Vec::new();
        let check = choose(written("8 2 0 0d", answers), |judged| {
            asked.extend_from_slice(judged);
            Ok(judged.iter().map(|&i| scores[i]).collect())
        })
        .unwrap();
        (check, asked)
    }

    #[test]
    fn the_likeliest_answer_is_kept_and_agreeing_drafts_are_not_checked() {
        // Two answers: the first draft of each is judged, the likelier kept.
        let (c, asked) = judged("5 7 7 5");
        assert_eq!((c.kept, asked), (1, vec![0, 1]));
        assert_eq!(c.drafts[1].nelbo, Some(20.0));
        assert_eq!(c.drafts[2].nelbo, None, "an answer already judged");
        assert_eq!(
            c.line(),
            "drafts 5 · 7 · 7 (8, 2, 0 steps) · 5 (1 drawn): kept 7"
        );
        // A drawn draft's answer of its own is judged like any.
        let (c, asked) = judged("5 5 5 6");
        assert_eq!((c.kept, asked), (0, vec![0, 3]));
        // One answer among them: nothing to judge, and a draft without an answer is not kept.
        let (c, asked) = judged("— 4 4 4");
        assert_eq!((c.kept, asked.len()), (1, 0));
        let (c, asked) = judged("— — — —");
        assert_eq!((c.kept, asked.len()), (0, 0));
        // A tie keeps the earlier draft.
        let c = choose(written("1 0", "1 2"), |_| Ok(vec![3.0, 3.0])).unwrap();
        assert_eq!(c.kept, 0);
        // An answer that more drafts reach may be kept though its draft is less likely: three
        // drafts against one weigh AGREEMENT × ln 3 ≈ 3.3 nats.
        let c = choose(written("1 0 0d 0d", "1 2 2 2"), |_| Ok(vec![10.0, 13.2])).unwrap();
        assert_eq!(c.kept, 1);
        let c = choose(written("1 0 0d 0d", "1 2 2 2"), |_| Ok(vec![10.0, 13.4])).unwrap();
        assert_eq!(c.kept, 0);
    }

    #[test]
    fn a_draft_with_a_flaw_is_kept_only_when_every_draft_has_one() {
        let flawed = |answers: &str, flaws: &[usize]| {
            let mut d = written("2 1 0 0d", answers);
            for &i in flaws {
                d[i].flaw = Some("uses 5 twice".into());
            }
            d
        };
        // The likeliest draft (10) and its answer's count are passed over for the sound ones.
        let c = choose(flawed("5 7 7 9", &[0, 1]), |judged| {
            assert_eq!(judged, [2, 3]);
            Ok(vec![30.0, 20.0])
        })
        .unwrap();
        assert_eq!(c.kept, 3);
        assert!(
            c.line().ends_with("· 2 with a flaw: kept 9"),
            "{}",
            c.line()
        );
        // One sound answer needs no judging; a flaw everywhere judges them all.
        let c = choose(flawed("5 5 7 —", &[0, 1]), |_| panic!("judged")).unwrap();
        assert_eq!(c.kept, 2);
        let c = choose(flawed("5 6 7 —", &[0, 1, 2]), |j| {
            Ok(vec![3.0, 1.0, 2.0][..j.len()].to_vec())
        })
        .unwrap();
        assert_eq!(c.kept, 1);
    }

    #[test]
    fn of_sound_drafts_those_that_leave_fewest_numbers_unused_are_judged() {
        let leaving = |answers: &str, unused: &[usize]| {
            let mut d = written("2 1 0 0d", answers);
            for (d, &n) in d.iter_mut().zip(unused) {
                d.unused = n;
            }
            d
        };
        // The likelier 59 leaves a number out; 67 and 40 use them all.
        let c = choose(leaving("59 67 40 59", &[1, 0, 0, 1]), |judged| {
            assert_eq!(judged, [1, 2]);
            Ok(vec![21.0, 20.0])
        })
        .unwrap();
        assert_eq!(c.kept, 2);
        // A flaw weighs before numbers left out.
        let mut d = leaving("59 67 67 —", &[1, 0, 0, 0]);
        d[1].flaw = Some("67-99 is below zero".into());
        d[2].flaw = d[1].flaw.clone();
        assert_eq!(choose(d, |_| panic!("judged")).unwrap().kept, 0);
    }

    #[test]
    fn a_held_answer_counts_when_held_drafts_agree_on_it() {
        // The free drafts leave a number out (59); the held ones use every number.
        let held = |answers: &str| {
            let mut d = written("2 1 0d 0h 0h 0h", answers);
            for d in &mut d[..3] {
                d.unused = 1;
            }
            d
        };
        // One held draft alone: the free drafts' answer, nothing to judge.
        let c = choose(held("59 59 59 67 40 —"), |_| panic!("judged")).unwrap();
        assert_eq!(c.kept, 0);
        // Two agreeing: they use more of the question, and pass over the free drafts.
        let c = choose(held("59 59 59 67 67 —"), |_| panic!("judged")).unwrap();
        assert_eq!(c.kept, 3);
        // Alike in their flaws: a flawed pair does not count beside sound drafts.
        let mut d = held("59 59 59 67 67 —");
        d[3].flaw = Some("67-99 is below zero".into());
        assert_eq!(choose(d, |_| panic!("judged")).unwrap().kept, 0);
    }

    #[test]
    fn a_draft_rambles_past_twice_the_first_finished_unless_it_is_ending_its_answer() {
        let working = " 3+4 = <<3+4=7>>7 more";
        assert!(!rambles(working, 100, None), "nothing finished yet");
        assert!(!rambles(working, 35, Some(10)));
        assert!(rambles(working, 36, Some(10)));
        let answering = " 3-1.1666 = <<3-1.1666=1.8334>>1.8334.\n#### 1.83";
        assert!(!rambles(answering, 36, Some(10)));
        assert!(rambles(answering, 36 + ANSWER_ROOM, Some(10)));
        assert!(rambles(&format!("{answering}34\n and on"), 36, Some(10)));
    }

    #[test]
    fn the_line_counts_the_drawn_and_the_held_drafts_answers() {
        let c = Check {
            drafts: written("2 1 0 0d 0d 0d 0d", "15 15 9 15 — 15 12"),
            kept: 0,
        };
        assert_eq!(
            c.line(),
            "drafts 15 · 15 · 9 (2, 1, 0 steps) · 15 ×2 · — · 12 (4 drawn): kept 15"
        );
        let c = Check {
            drafts: written("2 1 0 0d 0d 0h 0h 0h", "15 15 9 15 12 21 21 —"),
            kept: 5,
        };
        assert_eq!(
            c.line(),
            "drafts 15 · 15 · 9 (2, 1, 0 steps) · 15 · 12 (2 drawn) · 21 ×2 · — (3 held): kept 21"
        );
    }
}
