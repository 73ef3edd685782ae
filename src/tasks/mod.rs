//! Pure-Rust task utilities: synthetic GSM8K-style problems, few-shot
//! prompts, answer extraction and voting. No ML code lives here.

pub mod arith;
pub mod compose;
pub mod extract;
pub mod families;
pub mod problem;
pub mod prompt;
pub mod renumber;
pub mod score;
pub mod step_problems;
pub mod verdict;
pub mod vote;

pub use arith::{problem_stream, problems, template_names};
pub use extract::{final_number, mentions_number};
pub use problem::{Problem, Split};
pub use prompt::{
    ANSWER_PREFIX, BOS, EOS, Example, Prompt, Record, answer_of, answer_prompt, answer_stops, chat,
    default_examples, few_shot, few_shot_prompt, last_text, load_jsonl,
};
pub use vote::{Verdict, elbo_best, majority};
