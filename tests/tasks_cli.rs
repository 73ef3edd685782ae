//! `ltm data`, `ltm eval` and `ltm ppl` through the real binary, on a small model written here.

mod common;

use common::{
    error_says, json_out, ltm, refused, stderr, stderr_has, stdout, succeeded, tiny_model,
};
use serde_json::Value;

/// `ltm ppl --json` of `data` with one more option: its result.
fn ppl_json(model: &str, data: &std::path::Path, [option, value]: [&str; 2]) -> Value {
    let data = data.to_str().unwrap();
    json_out(&ltm([
        "ppl", "--model", model, "--data", data, option, value, "--json",
    ]))
}

#[test]
fn data_arith_writes_valid_problems() {
    let out = ltm([
        "data", "arith", "--n", "5", "--seed", "9", "--split", "test",
    ]);
    succeeded(&out);
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for p in &lines {
        let fin = p["final"].as_str().unwrap();
        assert!(
            p["answer"]
                .as_str()
                .unwrap()
                .ends_with(&format!("#### {fin}")),
            "{p}"
        );
    }
    let again = ltm([
        "data", "arith", "--n", "5", "--seed", "9", "--split", "test",
    ]);
    assert_eq!(stdout(&out), stdout(&again), "deterministic by seed");
}

#[test]
fn eval_reports_every_budget_and_ppl_is_finite() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let model = model.to_str().unwrap();
    let chart = dir.path().join("thinking.svg");
    // `ltm eval arith --json` on the tiny model with `options`: its lines.
    let eval_json = |options: &[&str]| -> Vec<Value> {
        let fixed = ["eval", "arith", "--model", model, "--json"];
        let out = ltm(fixed.iter().chain(options));
        succeeded(&out);
        stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let lines = eval_json(&[
        "--limit",
        "2",
        "--shots",
        "1",
        "--steps",
        "0,2",
        "--samples",
        "2",
        "--max-tokens",
        "4",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert_eq!(
        lines.iter().filter(|l| l["event"] == "problem").count(),
        4,
        "2 problems × 2 budgets"
    );
    // Jobs side by side, each with a model of its own, give the same lines in the same order.
    let options = [
        "--limit",
        "3",
        "--shots",
        "1",
        "--steps",
        "0,2",
        "--max-tokens",
        "4",
    ];
    let alone = eval_json(&options);
    let beside = eval_json(&[&options[..], &["--jobs", "2"]].concat());
    assert_eq!(alone.len(), 7, "3 problems × 2 budgets and a report");
    assert_eq!(alone, beside);
    let report = lines.last().unwrap();
    assert_eq!(report["event"], "report");
    for budget in ["0", "2"] {
        assert_eq!(report["tallies"][budget]["0"]["problems"], 2, "{report}");
        let elbo = &report["elbo"][budget];
        assert_eq!(elbo["problems"], 2, "{report}");
        assert!(elbo["tokens"].as_u64().unwrap() > 2, "{report}");
        let ppl = elbo["ppl_bound"].as_f64().unwrap();
        let per_token = elbo["nelbo_per_token"].as_f64().unwrap();
        assert!(
            ppl > 1.0 && (per_token.exp() - ppl).abs() < 1e-6 * ppl,
            "{report}"
        );
    }
    for problem in lines.iter().filter(|l| l["event"] == "problem") {
        assert!(problem["prompt_tokens"].as_u64().unwrap() > 2, "{problem}");
        assert!(
            problem["nelbo_per_token"].as_f64().unwrap() > 0.0,
            "{problem}"
        );
        // What each thought sample wrote, beside the answer read from it.
        let texts = problem["texts"].as_array().unwrap();
        assert_eq!(texts.len(), 2, "{problem}");
        assert!(
            texts.iter().any(|t| !t.as_str().unwrap().is_empty()),
            "{problem}"
        );
    }
    let svg = std::fs::read_to_string(&chart).unwrap();
    for text in [
        "<svg",
        "Accuracy against thinking steps (2 problems)",
        "ELBO bound against thinking steps",
        "accuracy (%)",
        "−ELBO per token (nats)",
        "thinking steps",
        "calculator",
        "majority",
        "</svg>",
    ] {
        assert!(svg.contains(text), "{text} missing from the chart");
    }
    assert!(!svg.contains("left out"), "every figure is finite");

    let data = dir.path().join("text.txt");
    std::fs::write(&data, "abc abc abc abc 1+2=3 2+2=4").unwrap();
    let v = ppl_json(model, &data, ["--steps", "2"]);
    let ppl = v["ppl_bound"].as_f64().unwrap();
    assert!(ppl.is_finite() && ppl > 1.0, "{v}");
    // −ELBO is the text's NLL and the thoughts' KL, each reported per token.
    let [nelbo, nll, kl] = ["nelbo_per_token", "nll_per_token", "kl_per_token"]
        .map(|k| v[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {v}")));
    assert!(nll > 0.0 && kl > 0.0, "{v}");
    assert!((nll + kl - nelbo).abs() < 1e-9 * nelbo, "{v}");
    assert!((nelbo.exp() - ppl).abs() < 1e-9 * ppl, "{v}");

    // A missing or empty data file, a number of shots no prompt holds or a fast learning rate
    // out of bounds is an error, not a result.
    let eval = |option: &str, value: &str| ltm(["eval", "arith", "--model", model, option, value]);
    let out = eval("--data", "/nonexistent.jsonl");
    error_says(&out, "/nonexistent.jsonl");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    let out = eval("--data", empty.to_str().unwrap());
    error_says(&out, "no problems");
    refused(
        &eval("--shots", "18446744073709551615"),
        2,
        "worked examples",
    );
    refused(
        &eval("--lr", "inf"),
        2,
        "the fast learning rate must be above 0",
    );

    // Thinking at another fast learning rate fits another thought.
    let nelbo_at = |lr: &str| {
        let one = [
            "--limit",
            "1",
            "--steps",
            "2",
            "--samples",
            "1",
            "--max-tokens",
            "1",
        ];
        let lines = eval_json(&[&one[..], &["--lr", lr]].concat());
        lines.last().unwrap()["elbo"]["2"]["nelbo_per_token"]
            .as_f64()
            .unwrap()
    };
    assert_ne!(nelbo_at("0.001"), nelbo_at("0.3"));
}

/// An evaluation stopped midway goes on from its `--json` output: the runs the output holds
/// are taken from it, the rest asked, and the lines are the whole evaluation's.
#[test]
fn a_stopped_evaluation_resumes_from_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let model = model.to_str().unwrap();
    #[rustfmt::skip]
    let options = [
        "eval", "arith", "--model", model, "--json", "--limit", "3", "--shots", "1",
        "--steps", "0,2", "--samples", "1", "--max-tokens", "4", "--check", "on",
    ];
    let whole = succeeded(&ltm(options));
    let lines: Vec<&str> = whole.lines().collect();
    assert_eq!(lines.len(), 7, "3 problems × 2 budgets and a report");
    let drafts = serde_json::from_str::<Value>(lines[1]).unwrap()["check"]["drafts"].clone();
    assert!(drafts.as_array().unwrap().len() > 1, "{drafts}");
    // Stopped mid-write: two runs whole, the third cut off. The first run's text is marked, to
    // tell a run taken from the file from one asked again.
    let stopped = dir.path().join("stopped.jsonl");
    let taken = lines[0].replace(r#""texts":[""#, r#""texts":["(taken) "#);
    assert_ne!(taken, lines[0]);
    let cut = &lines[2][..lines[2].len() / 2];
    std::fs::write(&stopped, format!("{taken}\n{}\n{cut}", lines[1])).unwrap();
    let resume = |file: &std::path::Path, more: &[&str]| {
        let resume = ["--resume", file.to_str().unwrap()];
        ltm(options.iter().chain(&resume).chain(more))
    };
    let out = resume(&stopped, &[]);
    let resumed = succeeded(&out);
    assert_eq!(resumed.lines().next(), Some(taken.as_str()));
    assert!(
        resumed.lines().skip(1).eq(whole.lines().skip(1)),
        "the check's drafts read back as written, the rest asked as before"
    );
    stderr_has(&out, "line 3: cut off mid-write");
    stderr_has(&out, "2 of 6 runs taken");
    // A line written before lines had their seed is taken as it stands.
    let old = dir.path().join("old.jsonl");
    let unseeded = serde_json::from_str::<Value>(&taken).unwrap();
    let mut unseeded = unseeded.as_object().unwrap().clone();
    assert!(unseeded.remove("seed").is_some());
    std::fs::write(&old, format!("{}\n", Value::Object(unseeded))).unwrap();
    let resumed = succeeded(&resume(&old, &[]));
    assert_eq!(resumed.lines().next(), Some(taken.as_str()));
    // Answers asked with another seed, or of other problems, are another evaluation's.
    refused(&resume(&stopped, &["--seed", "5"]), 1, "with this --seed");
    let other = dir.path().join("other.jsonl");
    std::fs::write(
        &other,
        lines[0].replace(r#""answers":["#, r#""answers":[null,"#),
    )
    .unwrap();
    refused(&resume(&other, &[]), 1, "here --samples 1");
    std::fs::write(&other, lines[0].replace(r#""gold":""#, r#""gold":"9"#)).unwrap();
    refused(
        &resume(&other, &[]),
        1,
        "not an evaluation of these problems",
    );
    std::fs::write(&other, format!("{{\"event\":\"problem\"}}\n{}\n", lines[0])).unwrap();
    error_says(
        &resume(&other, &[]),
        "line 1: not a line of `ltm eval arith --json`",
    );
}

/// Inputs far beyond the context are cut before they are tokenised: each of these took
/// gigabytes, or minutes, when the whole input was tokenised first.
#[test]
fn huge_inputs_are_cut_before_tokenising() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let model = model.to_str().unwrap();
    // 8 MB on stdin: one character a token, so 8 M tokens if tokenised whole.
    let huge = "2+2=4 ".repeat(1_400_000);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ltm"))
        .env("LTM_DEVICE", "cpu")
        .env("LTM_DATA_DIR", common::data_dir())
        .args(["generate", "--model", model, "--steps", "1", "-n", "2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(huge.as_bytes()).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    succeeded(&out);
    assert!(
        // Its size, not a token count of the part that was tokenised.
        stderr(&out).contains(
            "the prompt (8204 KiB) is longer than the model's context of 64 tokens: keeping its last 64"
        ),
        "{}",
        stderr(&out)
    );

    // `ppl --limit` scores only the first N tokens of a long text.
    let text = dir.path().join("long.txt");
    std::fs::write(&text, "abc 1+2=3 ".repeat(200_000)).unwrap();
    let v = ppl_json(model, &text, ["--limit", "640"]);
    // Ten windows of 64 tokens, the first token of each is context only.
    assert_eq!(v["tokens"], 630, "{v}");
    let out = ltm(["ppl", "--model", model, "--data", "x", "--limit", "1"]);
    refused(&out, 2, "--limit");
}
