//! JSONL problems (`ltm eval`, `ltm ppl`, `/load`), turned into worked examples and a prompt.
#![no_main]

use ltm::tasks::prompt::{Example, few_shot_prompt, load_jsonl};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(records) = load_jsonl(text) {
        let examples: Vec<Example> = records.iter().map(Example::from_record).collect();
        let _ = few_shot_prompt(&examples, "question");
    }
});
