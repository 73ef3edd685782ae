//! The one place that says how questions become prompts: the chat and few-shot formats, where
//! an answer stops, how loaded examples are rendered and how the answer is read back. Eval, the
//! TUI, `ltm generate` and training all use these.

use serde::{Deserialize, Serialize};

use super::extract::final_number;
use super::problem::Problem;

/// Beginning-of-text marker that starts every example and the question.
pub const BOS: &str = "<|beginoftext|>";

/// End-of-text marker: GPT-2's, and the second special token of the tokenizers `ltm train` makes.
pub const EOS: &str = "<|endoftext|>";

/// Appended after thinking, before generating. The examples read
/// `Answer: {a}`, so the text generated after this prefix should begin with a
/// space: with byte-pair tokenizers the space belongs to the next token
/// (`" 48"`), so the prefix must not end in a space.
pub const ANSWER_PREFIX: &str = "Answer:";

/// One solved few-shot example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub question: String,
    pub answer: String,
}

impl Example {
    /// A loaded record as a worked example; one without a worked answer shows only `#### N`,
    /// the line every worked answer ends with.
    pub fn from_record(r: &Record) -> Self {
        Example {
            question: r.question.clone(),
            answer: r
                .answer
                .clone()
                .unwrap_or_else(|| format!("#### {}", r.r#final)),
        }
    }
}

impl From<&Problem> for Example {
    fn from(p: &Problem) -> Self {
        Example {
            question: p.question.clone(),
            answer: p.answer.clone(),
        }
    }
}

/// One loaded evaluation record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub question: String,
    /// The worked solution, when the file has one.
    pub answer: Option<String>,
    /// The final number, normalised as by [`final_number`].
    #[serde(rename = "final")]
    pub r#final: String,
}

impl From<&Problem> for Record {
    fn from(p: &Problem) -> Self {
        Record {
            question: p.question.clone(),
            answer: Some(p.answer.clone()),
            r#final: p.r#final.clone(),
        }
    }
}

/// What the engine is asked: the text the thought is fitted to, the prefix written after
/// thinking, and the strings that end the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub text: String,
    pub prefix: String,
    pub stop: Vec<String>,
}

impl Prompt {
    /// `text` as it is: no prefix after thinking, no stop strings.
    pub fn raw(text: impl Into<String>) -> Self {
        Prompt {
            text: text.into(),
            prefix: String::new(),
            stop: Vec::new(),
        }
    }
}

/// An answer ends where a new text or a new question would begin.
pub fn answer_stops() -> Vec<String> {
    vec![BOS.to_string(), "\nQuestion:".to_string()]
}

/// A few-shot prompt: the worked `examples`, then the question; the answer follows [`ANSWER_PREFIX`].
pub fn few_shot(examples: &[Example], question: &str) -> Prompt {
    Prompt {
        text: few_shot_prompt(examples, question),
        prefix: ANSWER_PREFIX.to_string(),
        stop: answer_stops(),
    }
}

/// A chat turn: the question in the model's `prompt_format` (`{question}` is the hole), or as it
/// is. A format that is the few-shot format without examples gives exactly [`few_shot`] with no
/// examples, so that a question is answered alike in chat and in few-shot mode.
pub fn chat(format: Option<&str>, question: &str) -> Prompt {
    let Some(format) = format else {
        return Prompt {
            text: question.to_string(),
            prefix: String::new(),
            stop: vec![BOS.to_string()],
        };
    };
    let filled = format.replace("{question}", question);
    if filled == answer_prompt(&[], question) {
        return few_shot(&[], question);
    }
    Prompt {
        text: filled,
        prefix: String::new(),
        stop: vec![BOS.to_string()],
    }
}

/// The last text of a prompt, after its last [`BOS`]: the question asked, without the worked
/// examples before it (a prompt without a `BOS` is one text).
pub fn last_text(prompt: &str) -> &str {
    prompt.rsplit(BOS).next().unwrap_or(prompt)
}

/// The final number of a generated answer ([`cut_answer`], then [`final_number`]).
pub fn answer_of(generated: &str) -> Option<String> {
    final_number(cut_answer(generated))
}

/// The worked examples every front end starts from: short, solved problems of the training
/// families, the same every time.
pub fn default_examples(n: usize) -> Vec<Example> {
    super::arith::problems(20 * n.max(1), 4242, super::problem::Split::Train)
        .iter()
        .filter(|p| p.steps <= 2 && p.question.len() <= 160)
        .take(n)
        .map(Example::from)
        .collect()
}

/// The text the thought is fitted to: examples as
/// `{BOS}Question: {q}\nAnswer: {a}\n` concatenated, then
/// `{BOS}Question: {question}\n`.
pub fn few_shot_prompt(examples: &[Example], question: &str) -> String {
    let mut s = String::new();
    for e in examples {
        s.push_str(&format!(
            "{BOS}Question: {}\nAnswer: {}\n",
            e.question, e.answer
        ));
    }
    s.push_str(&format!("{BOS}Question: {question}\n"));
    s
}

/// The text generation continues from: [`few_shot_prompt`] then [`ANSWER_PREFIX`].
pub fn answer_prompt(examples: &[Example], question: &str) -> String {
    let mut s = few_shot_prompt(examples, question);
    s.push_str(ANSWER_PREFIX);
    s
}

/// The chat format (`prompt_format`) of a model trained on worked problems: the few-shot
/// format with no examples, so that chat and few-shot mode ask alike.
pub fn worked_problem_format() -> String {
    answer_prompt(&[], "{question}")
}

/// The part of a generated continuation that answers the question: it stops
/// at the next [`BOS`], at a new `Question:` line, or at the end of the first
/// `####` line, whichever comes first. Leading and trailing whitespace is trimmed.
pub fn cut_answer(generated: &str) -> &str {
    let mut end = generated.len();
    for stop in [BOS, "\nQuestion:"] {
        if let Some(i) = generated.find(stop) {
            end = end.min(i);
        }
    }
    if let Some(i) = generated[..end].find("####") {
        let line_end = generated[i..end].find('\n').map_or(end, |j| i + j);
        end = line_end;
    }
    generated[..end].trim()
}

/// Reads JSONL records that have `question` and either `final` or an `answer`
/// ending in `#### N` (GSM8K's own files work). Blank lines are skipped. A bad
/// line gives an error naming its (1-based) line number.
pub fn load_jsonl(text: &str) -> Result<Vec<Record>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let rec = parse_record(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        out.push(rec);
    }
    Ok(out)
}

fn parse_record(line: &str) -> Result<Record, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object().ok_or("expected a JSON object")?;
    let question = obj
        .get("question")
        .and_then(|q| q.as_str())
        .ok_or("missing string field `question`")?
        .to_string();
    let answer = match obj.get("answer") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("field `answer` must be a string".into()),
    };
    let fin = match obj.get("final") {
        Some(serde_json::Value::String(s)) => {
            final_number(s).ok_or_else(|| format!("field `final` has no number: {s:?}"))?
        }
        Some(serde_json::Value::Number(n)) => final_number(&n.to_string())
            .ok_or_else(|| format!("field `final` has no number: {n}"))?,
        Some(serde_json::Value::Null) | None => {
            let a = answer
                .as_deref()
                .ok_or("needs `final` or an `answer` ending in `#### N`")?;
            let pos = a
                .find("####")
                .ok_or("`answer` has no `#### N` and there is no `final`")?;
            final_number(&a[pos..]).ok_or("no number after `####` in `answer`")?
        }
        Some(_) => return Err("field `final` must be a string or a number".into()),
    };
    Ok(Record {
        question,
        answer,
        r#final: fin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(q: &str, a: &str) -> Example {
        Example {
            question: q.into(),
            answer: a.into(),
        }
    }

    #[test]
    fn few_shot_format_exact() {
        let es = [ex("1+1?", "1+1 = <<1+1=2>>2\n#### 2"), ex("Q2?", "A2")];
        assert_eq!(
            few_shot_prompt(&es, "What is 3?"),
            "<|beginoftext|>Question: 1+1?\nAnswer: 1+1 = <<1+1=2>>2\n#### 2\n\
             <|beginoftext|>Question: Q2?\nAnswer: A2\n\
             <|beginoftext|>Question: What is 3?\n"
        );
        assert_eq!(few_shot_prompt(&[], "Q"), "<|beginoftext|>Question: Q\n");
        let asked = "Question: What is 3?\n";
        assert_eq!(last_text(&few_shot_prompt(&es, "What is 3?")), asked);
        assert_eq!(last_text("What is 3?"), "What is 3?");
    }

    #[test]
    fn answer_prefix_matches_examples() {
        let es = [ex("Q1?", "A1")];
        let p = answer_prompt(&es, "Q2?");
        assert!(p.ends_with("<|beginoftext|>Question: Q2?\nAnswer:"));
        // Generating " A2\n" after the prefix reproduces the example layout.
        let completed = format!("{p} A2\n");
        assert_eq!(
            completed,
            few_shot_prompt(&[ex("Q1?", "A1"), ex("Q2?", "A2")], "X")
                .strip_suffix(&format!("{BOS}Question: X\n"))
                .unwrap()
        );
        assert!(!ANSWER_PREFIX.ends_with(' '));
    }

    #[test]
    fn cut_answer_stops_at_boundaries() {
        assert_eq!(
            cut_answer(" 2+2 = 4\n#### 4\nQuestion: next"),
            "2+2 = 4\n#### 4"
        );
        assert_eq!(cut_answer(" 4\n<|beginoftext|>Question: x"), "4");
        assert_eq!(
            cut_answer(" #### 9 more text\nnext line"),
            "#### 9 more text"
        );
        assert_eq!(cut_answer(" no end"), "no end");
    }

    #[test]
    fn load_gsm8k_and_final_records() {
        let text = r#"{"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?", "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"}

{"question": "Big?", "answer": "Lots.\n#### 1,000"}
{"question": "Q?", "final": "5"}
{"question": "Q2?", "final": 12}
{"question": "Q3?", "final": "$2.50", "answer": null}
"#;
        let rs = load_jsonl(text).unwrap();
        assert_eq!(rs.len(), 5);
        assert_eq!(rs[0].r#final, "72");
        assert!(rs[0].answer.as_ref().unwrap().ends_with("#### 72"));
        assert_eq!(rs[1].r#final, "1000");
        assert_eq!(
            rs[2],
            Record {
                question: "Q?".into(),
                answer: None,
                r#final: "5".into()
            }
        );
        assert_eq!(rs[3].r#final, "12");
        assert_eq!(rs[4].r#final, "2.5");
    }

    #[test]
    fn load_reports_bad_line_number() {
        let text = "{\"question\": \"a\", \"final\": \"1\"}\n\n{not json}\n";
        let e = load_jsonl(text).unwrap_err();
        assert!(e.starts_with("line 3:"), "{e}");
        let e = load_jsonl("{\"question\": \"a\", \"answer\": \"no marker\"}").unwrap_err();
        assert!(e.starts_with("line 1:") && e.contains("####"), "{e}");
        let e = load_jsonl("{\"final\": \"1\"}").unwrap_err();
        assert!(e.contains("question"), "{e}");
        let e = load_jsonl("[1, 2]").unwrap_err();
        assert!(e.contains("object"), "{e}");
    }

    #[test]
    fn generated_problems_round_trip_through_jsonl() {
        let ps = crate::tasks::arith::problems(20, 3, crate::tasks::Split::Train);
        let text: String = ps
            .iter()
            .map(|p| serde_json::to_string(p).unwrap() + "\n")
            .collect();
        let rs = load_jsonl(&text).unwrap();
        let expect: Vec<Record> = ps.iter().map(Record::from).collect();
        assert_eq!(rs, expect);
        // Extraction from the reference answer agrees with `final`.
        for p in &ps {
            assert_eq!(final_number(&p.answer).as_deref(), Some(p.r#final.as_str()));
        }
    }
}
