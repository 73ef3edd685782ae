//! The real binary on small models written by the tests.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{
    FIXTURE, char_tokenizer, error_says, json_out, ltm, one_line_error, refused, set_config,
    stderr, stderr_has, stdout, succeeded, tiny_model,
};
use ltm::engine::AGREEMENT;
use ltm::think::Posterior;
use serde_json::Value;

/// `ltm generate` of `prompt` on `model`, with `options` as a command line would have them.
fn generate<'a>(
    model: &'a std::path::Path,
    prompt: &'a str,
    options: impl IntoIterator<Item = &'a str>,
) -> std::process::Output {
    let model = model.to_str().unwrap();
    ltm(["generate", "--model", model, "--prompt", prompt]
        .into_iter()
        .chain(options))
}

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    succeeded(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn of_kind<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

#[test]
fn generate_json_has_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let options = "--steps 3 --samples 2 --max-tokens 5 --temperature 1 --json";
    let out = generate(&model, "2+3=", options.split_whitespace());
    let lines = json_lines(&out);

    let ready = of_kind(&lines, "ready");
    assert_eq!(ready.len(), 1);
    let per_token = ready[0]["bytes_per_token"].as_f64().unwrap();
    assert!((1.0..10.0).contains(&per_token), "{}", ready[0]);

    let think = of_kind(&lines, "think");
    assert_eq!(think.len(), 3 * 2);
    for t in &think {
        for field in [
            "sample",
            "step",
            "steps",
            "lr",
            "nelbo",
            "nll_per_token",
            "kl",
            "ppl_bound",
            "ms",
        ] {
            assert!(t[field].is_number(), "think.{field} in {t}");
        }
        assert_eq!(
            t["layer_kl"].as_array().unwrap().len(),
            2,
            "a KL per layer: {t}"
        );
        let (nelbo, kl, nll) = (
            t["nelbo"].as_f64().unwrap(),
            t["kl"].as_f64().unwrap(),
            t["nll_per_token"].as_f64().unwrap(),
        );
        assert!(
            (nelbo - kl - nll * 3.0).abs() < 1e-6 * nelbo,
            "−ELBO = NLL + KL over 3 scored tokens: {t}"
        );
    }
    assert_eq!(
        think
            .iter()
            .map(|t| t["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 0, 1, 1, 2, 2]
    );

    let done = of_kind(&lines, "done");
    assert_eq!(done.len(), 2);
    for d in &done {
        for field in ["tokens", "think_ms", "gen_ms", "tok_s", "nelbo"] {
            assert!(d[field].is_number(), "done.{field} in {d}");
        }
        let sample = d["sample"].as_u64().unwrap();
        // The readable fit: the final thought's figures against the first step's, which were
        // measured at the starting thought.
        let (fit, first) = (&d["fit"], &think[sample as usize]);
        assert_eq!(fit["start_nll_per_token"], first["nll_per_token"], "{d}");
        assert_eq!(fit["start_kl"], first["kl"], "{d}");
        let (nll, kl) = (
            fit["nll_per_token"].as_f64().unwrap(),
            fit["kl"].as_f64().unwrap(),
        );
        assert!(
            (d["nelbo"].as_f64().unwrap() - kl - nll * 3.0).abs() < 1e-6 * kl,
            "the fit is the final −ELBO's: {d}"
        );
        let tokens: Vec<_> = of_kind(&lines, "token")
            .into_iter()
            .filter(|t| t["sample"] == sample)
            .collect();
        assert_eq!(tokens.len(), 5);
        assert!(tokens.iter().all(|t| t["id"].is_u64()));
        let streamed: String = tokens.iter().map(|t| t["text"].as_str().unwrap()).collect();
        assert_eq!(
            streamed,
            d["text"].as_str().unwrap(),
            "the streamed text is the final text"
        );
    }
}

#[test]
fn the_seed_makes_output_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let run = |seed: &str| {
        let options = "--steps 2 --max-tokens 12 --temperature 1.0 --seed".split_whitespace();
        let out = generate(&model, "Once upon a time", options.chain([seed]));
        succeeded(&out);
        stdout(&out)
    };
    assert_eq!(run("3"), run("3"));
    assert_ne!(run("3"), run("4"));
}

#[test]
fn a_saved_thought_reproduces_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(&dir.path().join("model"));
    let thought = dir.path().join("thought.safetensors");
    let run = |thought_flags: &[&str]| {
        let options = "--max-tokens 12 --temperature 1 --seed 11 --json".split_whitespace();
        let thought = thought_flags
            .iter()
            .copied()
            .chain([thought.to_str().unwrap()]);
        let out = generate(&model, "Think about it", options.chain(thought));
        json_lines(&out)
            .into_iter()
            .filter(|l| l["event"] == "done")
            .map(|l| l["text"].clone())
            .collect::<Vec<_>>()
    };
    let first = run(&["--steps", "4", "--save-thought"]);
    let saved = candle_core::safetensors::load(&thought, &Device::Cpu).unwrap();
    assert_eq!(saved["mu"].dims(), [1, 8, 32]);
    assert_eq!(saved["log_var"].dims(), [1, 8, 32]);
    // --thought alone means no more thinking: the same posterior, the same noise, the same answer.
    assert_eq!(run(&["--thought"]), first);
}

#[test]
fn a_converted_reference_checkpoint_writes_the_reference_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (model, tokenizer) = (dir.path().join("model"), dir.path().join("char.json"));
    std::fs::write(&tokenizer, char_tokenizer()).unwrap();
    let ckpt = format!("{FIXTURE}/ckpt.pt");
    let out = ltm([
        "convert",
        &ckpt,
        "--out",
        model.to_str().unwrap(),
        "--tokenizer",
        tokenizer.to_str().unwrap(),
    ]);
    succeeded(&out);
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(model.join(file).is_file(), "{file} written");
    }

    // The fixture writes from a given thought z: a posterior with mean z and vanishing variance.
    let expected =
        candle_core::safetensors::load(format!("{FIXTURE}/expected.safetensors"), &Device::Cpu)
            .unwrap();
    let z = expected["gen_z"].to_dtype(DType::F32).unwrap();
    let thought = Posterior {
        log_var: Tensor::full(-100f32, z.dims(), &Device::Cpu).unwrap(),
        mu: z,
    };
    let thought_file = dir.path().join("gen_z.safetensors");
    thought.save(&thought_file).unwrap();
    let ids = |name: &str| -> Vec<u32> {
        expected[name]
            .flatten_all()
            .unwrap()
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|x| x as u32)
            .collect()
    };
    let (prompt, want) = (ids("gen_prompt"), ids("gen_tokens"));
    let prompt_arg = prompt
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");

    let out = ltm([
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt-ids",
        &prompt_arg,
        "--thought",
    ]
    .into_iter()
    .chain([
        thought_file.to_str().unwrap(),
        "--max-tokens",
        "40",
        "--json",
    ]));
    let got: Vec<u32> = of_kind(&json_lines(&out), "token")
        .iter()
        .map(|t| t["id"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(got, want[prompt.len()..]);
}

#[test]
fn a_long_prompt_is_cut_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let long = "a".repeat(100);
    let out = generate(&model, &long, ["--steps", "1", "--max-tokens", "2"]);
    succeeded(&out);
    stderr_has(&out, "warning: the prompt has 100 tokens");
    // An answer prefix that leaves no room to write is refused before anything runs.
    let out = ltm([
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--answer-prefix",
        &"a".repeat(10_000),
        "abc",
    ]);
    let err = one_line_error(&out);
    assert!(
        err.contains("the answer prefix has 10000 tokens; the model's context of 64 leaves room for 16 at most"),
        "{err}"
    );
}

#[test]
fn info_describes_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = ltm(["info", "--model", model.to_str().unwrap(), "--json"]);
    let info = json_out(&out);
    assert_eq!(info["config"]["n_layers"], 2);
    assert_eq!(info["z_per_layer"], 4);
    assert_eq!(info["tokenizer"]["vocab_size"], 97);
    assert!(info["parameters"].as_u64().unwrap() > 0);
    assert_eq!(info["files"].as_array().unwrap().len(), 3);
    // The tiny model thinks 16 steps by default: levels around them.
    assert_eq!(
        info["levels"],
        serde_json::json!({"low": 4, "medium": 16, "high": 32, "max": 64})
    );
    let human = ltm(["info", "--model", model.to_str().unwrap()]);
    assert!(
        stdout(&human).contains("thought       2 layers × 4 vectors × 32"),
        "{}",
        stdout(&human)
    );
    assert!(
        !stdout(&human).contains("copy numbers"),
        "off unless the config says"
    );
    // The bundled model copies numbers by default.
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ltm-arith-tiny");
    let out = ltm(["info", "--model", bundled.to_str().unwrap()]);
    assert!(
        stdout(&out).contains("copy numbers  on"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn bad_flags_exit_2_with_the_reason_first() {
    for args in [
        &["generate", "--steps", "many"][..],
        &["generate", "--no-such-flag"],
        &["bench", "--shape", "huge"],
        &["generate", "--device", "tpu"],
        &["generate", "--copy-numbers", "maybe"],
        &["eval", "arith", "--copy-numbers", "yes"],
    ] {
        let out = ltm(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
}

#[test]
fn bad_files_exit_1_with_one_line_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(&dir.path().join("model"));
    let m = model.to_str().unwrap();

    let err = one_line_error(&generate("/no/such/model".as_ref(), "hi", []));
    assert!(err.contains("/no/such/model"), "{err}");

    let missing = dir.path().join("nope.safetensors");
    let thought = ["--thought", missing.to_str().unwrap()];
    let err = one_line_error(&generate(&model, "hi", thought));
    assert!(err.contains("nope.safetensors"), "{err}");

    let err = one_line_error(&ltm(["generate", "--model", m, "--prompt-ids", "1,2,999"]));
    assert!(err.contains("999"), "{err}");

    for (name, text) in [("empty.jsonl", ""), ("blank.txt", "\n \n")] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        let err = one_line_error(&ltm(["ppl", "--model", m, "--data", p]));
        assert!(
            err.contains(name) && err.contains("nothing to score"),
            "{err}"
        );
    }

    let err = one_line_error(&ltm([
        "convert",
        &format!("{FIXTURE}/ckpt.pt"),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]));
    assert!(
        err.contains("GPT-2") && err.contains("ckpt.pt") && err.contains("101"),
        "{err}"
    );
    assert!(!dir.path().join("out").exists(), "nothing is left behind");

    let tokenizer = model.join("tokenizer.json");
    let err = one_line_error(&ltm([
        "convert",
        &format!("{FIXTURE}/ckpt.pt"),
        "--out",
        m,
        "--tokenizer",
        tokenizer.to_str().unwrap(),
    ]));
    assert!(err.contains("not an empty directory"), "{err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ltm"))
        .args(["info"])
        .env("LTM_MODEL", dir.path().join("absent"))
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("absent") && err.contains("--model"), "{err}");
    // `ltm models` lists the models that are there and warns of the wrong one.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ltm"))
        .args(["models"])
        .env("LTM_DATA_DIR", dir.path().join("data"))
        .env("LTM_MODEL", dir.path().join("absent"))
        .output()
        .unwrap();
    succeeded(&out);
    assert!(stdout(&out).contains("bundled"));
    assert!(stderr(&out).contains("warning: $LTM_MODEL") && stderr(&out).contains("absent"));
    // Names with escape sequences are shown, not run: a model directory's and an unreadable
    // one's.
    let models = dir.path().join("data").join("models");
    tiny_model(&models.join("evil\x1b]0;TITLE\x07\x1b[2J"));
    let broken = models.join("broken\x1b[2J");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("config.json"), "{").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ltm"))
        .args(["models"])
        .env("LTM_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    succeeded(&out);
    let (listed, warned) = (stdout(&out), stderr(&out));
    assert!(
        listed.contains("evil\\u{1b}]0;TITLE\\u{7}\\u{1b}[2J"),
        "{listed}"
    );
    assert!(warned.contains("broken\\u{1b}[2J"), "{warned}");
    assert!(!listed.contains('\x1b') && !warned.contains('\x1b'));
}

/// A model whose tokenizer makes almost every token an expression for the calculator: the
/// digits, `.`, `-` and `>`, then 88 tokens `<<A*B=` (A 1–11, B 1–8); random weights.
fn calculator_model(dir: &std::path::Path, calculator: bool) -> std::path::PathBuf {
    let mut vocab: Vec<String> = ('0'..='9').map(String::from).collect();
    vocab.extend([".", "-", ">"].map(String::from));
    for a in 1..=11 {
        for b in 1..=8 {
            vocab.push(format!("<<{a}*{b}="));
        }
    }
    assert_eq!(vocab.len(), 101);
    let vocab: serde_json::Map<String, Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), serde_json::json!(i)))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": {"type": "Fuse"},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": []}
    });
    let mut config = common::tiny_config(101);
    config.calculator = calculator;
    ltm::model::Checkpoint::random(config, 11)
        .unwrap()
        .save_dir(dir)
        .unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    dir.to_path_buf()
}

/// The token events of `generate --json` on `model` with `extra` flags, per sample.
fn calc_tokens(model: &std::path::Path, extra: &[&str]) -> Vec<Vec<Value>> {
    let options = "--steps 0 --max-tokens 24 --samples 2 --temperature 1 --json";
    let options = options.split_whitespace().chain(extra.iter().copied());
    let lines = json_lines(&generate(model, "123", options));
    (0..2)
        .map(|s| {
            of_kind(&lines, "token")
                .into_iter()
                .filter(|t| t["sample"] == s)
                .cloned()
                .collect()
        })
        .collect()
}

/// Checks that each `<<A*B=` is followed by `A·B>>` flagged `"calc": true` and that nothing else
/// is flagged; returns the number of computed tokens.
fn check_computed(tokens: &[Value]) -> usize {
    let mut expect = String::new();
    let mut computed = 0;
    for t in tokens {
        let text = t["text"].as_str().unwrap();
        if expect.is_empty() {
            assert!(
                t.get("calc").is_none(),
                "a sampled token has no calc field: {t}"
            );
            if let Some((a, b)) = text
                .strip_prefix("<<")
                .and_then(|e| e.strip_suffix('='))
                .and_then(|e| e.split_once('*'))
            {
                let (a, b): (u32, u32) = (a.parse().unwrap(), b.parse().unwrap());
                expect = format!("{}>>", a * b);
            }
        } else {
            assert_eq!(t["calc"], true, "{t}");
            expect = expect
                .strip_prefix(text)
                .unwrap_or_else(|| panic!("{text:?} is not the start of {expect:?}"))
                .to_string();
            computed += 1;
        }
    }
    computed
}

#[test]
fn the_calculator_writes_results_and_json_flags_them() {
    let dir = tempfile::tempdir().unwrap();
    let model = calculator_model(dir.path(), false);
    // The model's config leaves it off: nothing is computed.
    let off = calc_tokens(&model, &[]);
    for tokens in &off {
        assert!(tokens.iter().all(|t| t.get("calc").is_none()));
    }
    // On: each sample gets its own results, as one batch.
    let on = calc_tokens(&model, &["--calculator", "on"]);
    for tokens in &on {
        assert!(check_computed(tokens) > 0, "{tokens:?}");
    }
    assert_ne!(on[0], on[1]);
    assert_ne!(on, off);

    let dir = tempfile::tempdir().unwrap();
    let model = calculator_model(dir.path(), true);
    assert_eq!(calc_tokens(&model, &[]), on, "on by the model's config");
    assert_eq!(calc_tokens(&model, &["--calculator", "off"]), off);
    let out = ltm(["generate", "--calculator", "maybe", "--prompt", "1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn eval_reports_with_and_without_the_calculator() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let args = [
        "eval",
        "arith",
        "--model",
        model.to_str().unwrap(),
        "--limit",
        "2",
        "--shots",
        "1",
        "--steps",
        "0",
        "--samples",
        "1",
        "--max-tokens",
        "3",
        "--calculator",
        "both",
    ];
    let lines = json_lines(&ltm(args.iter().chain(&["--json"])));
    let problems = of_kind(&lines, "problem");
    assert_eq!(problems.len(), 4, "2 problems × calculator on and off");
    for on in [true, false] {
        assert_eq!(problems.iter().filter(|p| p["calculator"] == on).count(), 2);
    }
    let reports = of_kind(&lines, "report");
    assert_eq!(reports.len(), 2);
    assert_eq!(
        (&reports[0]["calculator"], &reports[1]["calculator"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert_eq!(reports[1]["tallies"]["0"]["0"]["problems"], 2);
    let out = ltm(args);
    succeeded(&out);
    let table = stdout(&out);
    let (on, off) = (
        table.find("calculator on:").unwrap(),
        table.find("calculator off:").unwrap(),
    );
    assert!(on < off, "{table}");
}

#[test]
fn curves_draw_several_runs_and_refuse_a_directory_without_one() {
    use ltm::train::{HistoryPoint, TrainState};
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for (name, loss) in [("first", 3.0), ("second", 2.0)] {
        let run = dir.path().join(name);
        std::fs::create_dir(&run).unwrap();
        let history = (1..=3)
            .map(|i| HistoryPoint {
                iter: i * 10,
                tokens_seen: i * 1000,
                train_loss: loss / i as f64,
                val_ppl_bound: 100.0 / i as f64,
                elapsed_s: i as f64,
            })
            .collect();
        let state = TrainState {
            iter: 30,
            tokens_seen: 3000,
            elapsed_s: 3.0,
            history,
        };
        std::fs::write(
            run.join("train_state.json"),
            serde_json::to_string(&state).unwrap(),
        )
        .unwrap();
        runs.push(run);
    }
    let svg = dir.path().join("runs.svg");
    let named = format!("recipe A={}", runs[0].display());
    let out = ltm([
        "curves",
        named.as_str(),
        runs[1].to_str().unwrap(),
        "--out",
        svg.to_str().unwrap(),
    ]);
    succeeded(&out);
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    for label in ["recipe A", "second", "Training loss", "tokens seen"] {
        assert!(svg_text.contains(label), "{label} missing");
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = ltm([
        "curves",
        empty.to_str().unwrap(),
        "--out",
        svg.to_str().unwrap(),
    ]);
    error_says(&out, "no training state");
    assert_eq!(
        std::fs::read_to_string(&svg).unwrap(),
        svg_text,
        "the old chart is kept"
    );
}

#[test]
fn a_copy_of_the_binary_finds_its_model_with_an_empty_home() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("ltm");
    std::fs::copy(env!("CARGO_BIN_EXE_ltm"), &bin).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let run = |args: &[&str]| {
        // A child that another test thread forks while the copy is being written holds the
        // copy open for writing until it execs, and the kernel refuses to run a file open for
        // writing ("text file busy"): wait for that moment to pass.
        for _ in 0..100 {
            match std::process::Command::new(&bin)
                .current_dir(dir.path())
                .env_clear()
                .env("HOME", &home)
                .env("LTM_DEVICE", "cpu")
                .args(args)
                .output()
            {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                output => return output.unwrap(),
            }
        }
        panic!("{} stayed busy", bin.display())
    };
    let help = run(&["--help"]);
    assert!(help.status.success());
    assert!(
        !stdout(&help).contains(env!("CARGO_MANIFEST_DIR")),
        "the help names the build directory"
    );
    // The bundled model's first prompt to try, answered by the installed copy.
    let prompts: Vec<Value> =
        serde_json::from_str(include_str!("../models/ltm-arith-tiny/prompts.json")).unwrap();
    let question = prompts[0]["prompt"].as_str().unwrap();
    let out = run(&["generate", "--prompt", question, "--max-tokens", "40"]);
    succeeded(&out);
    let want = format!("#### {}", prompts[0]["answer"].as_str().unwrap());
    assert!(stdout(&out).contains(&want), "{}", stdout(&out));

    // `ltm models` names where the bundled model was installed; a model put beside it is
    // found by its name.
    let listed = run(&["models", "--json"]);
    let models: Vec<Value> = json_lines(&listed);
    assert_eq!(models[0]["name"], "ltm-arith-tiny");
    assert_eq!(models[0]["origin"], "bundled");
    let installed = std::path::PathBuf::from(models[0]["path"].as_str().unwrap());
    assert!(installed.starts_with(&home), "{}", installed.display());
    tiny_model(&installed.parent().unwrap().join("tiny"));
    let info = run(&["info", "-m", "tiny", "--json"]);
    succeeded(&info);
    let listed = json_lines(&run(&["models", "--json"]));
    assert!(
        listed
            .iter()
            .any(|m| m["name"] == "tiny" && m["origin"] == "installed")
    );
}

#[test]
fn think_levels_set_the_budget_and_bad_values_are_refused_before_thinking() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    set_config(
        &model,
        "think_levels",
        serde_json::json!({"low": 1, "medium": 2, "high": 3, "max": 5}),
    );
    let m = model.to_str().unwrap();
    for (level, steps) in [
        ("off", 0),
        ("low", 1),
        ("medium", 2),
        ("high", 3),
        ("max", 5),
    ] {
        let lines = json_lines(&ltm([
            "generate", "-m", m, "--think", level, "-n", "2", "--json", "ab",
        ]));
        let thought = of_kind(&lines, "think").len();
        let done = of_kind(&lines, "done")[0];
        assert_eq!(done["level"], level);
        assert_eq!(done["think_steps"], thought as u64);
        if level == "max" {
            // Adaptive: up to the cap, stopping once −ELBO stops improving.
            assert!((1..=steps).contains(&thought), "{thought}");
        } else {
            assert_eq!(thought, steps, "{level}");
        }
    }
    // Adaptive thinking stops once −ELBO per token improves by less than the tolerance: with a
    // huge one, after the second step.
    let lines = json_lines(&ltm([
        "generate",
        "-m",
        m,
        "--steps",
        "200",
        "--tolerance",
        "1000",
        "-n",
        "1",
        "--json",
        "ab",
    ]));
    assert_eq!(of_kind(&lines, "think").len(), 2);
    assert_eq!(of_kind(&lines, "done")[0]["think_steps"], 2);
    // Exact steps are no level.
    let lines = json_lines(&ltm([
        "generate", "-m", m, "--steps", "4", "-n", "1", "--json", "ab",
    ]));
    assert!(of_kind(&lines, "done")[0].get("level").is_none());

    for (flag, value) in [
        ("--temperature", "-1"),
        ("--temperature", "NaN"),
        ("--top-p", "2"),
        ("--top-k", "0"),
        ("--lr", "-1"),
        ("--tolerance", "-1"),
        ("--samples", "0"),
        ("--think", "deep"),
    ] {
        let out = ltm(["generate", "-m", m, "ab", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = stderr(&out);
        assert!(err.starts_with("error:") && err.contains(flag), "{err}");
        assert!(stdout(&out).is_empty(), "nothing was written");
    }
}

#[test]
fn the_prompt_comes_as_an_argument_or_on_stdin_and_quiet_prints_only_the_answer() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let m = model.to_str().unwrap();
    let positional = ltm(["generate", "-m", m, "-n", "5", "-s", "3", "-q", "abc"]);
    succeeded(&positional);
    assert!(
        stderr(&positional).is_empty(),
        "quiet: {}",
        stderr(&positional)
    );
    let option = ltm(["generate", "-m", m, "-n", "5", "-s", "3", "-q", "-p", "abc"]);
    assert_eq!(stdout(&positional), stdout(&option));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ltm"))
        .env("LTM_DEVICE", "cpu")
        .args(["generate", "-m", m, "-n", "5", "-s", "3", "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"abc\n").unwrap();
    let piped = child.wait_with_output().unwrap();
    assert_eq!(stdout(&piped), stdout(&positional));
    // Not quiet: the thinking steps and the statistics line name the budget.
    let verbose = ltm(["generate", "-m", m, "-n", "2", "--steps", "2", "-v", "abc"]);
    let err = stderr(&verbose);
    assert_eq!(err.matches("think ").count(), 2, "{err}");
    assert!(
        err.contains("by layer") && err.contains("thought 2 steps"),
        "{err}"
    );
}

#[test]
fn every_command_bounds_its_thinking_steps() {
    let huge = "18446744073709551615";
    for args in [
        vec!["ppl", "--data", "README.md", "--steps", huge],
        vec!["eval", "arith", "--steps", &format!("2,{huge}")],
        vec!["generate", "--steps", huge, "abc"],
    ] {
        refused(&ltm(&args), 2, "thinking steps must be from 0 to");
    }
}

#[test]
fn an_empty_or_endless_prompt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let m = model.to_str().unwrap();
    // An empty argument, and nothing on stdin (`output` gives the child a closed stdin).
    for args in [vec!["generate", "-m", m, " "], vec!["generate", "-m", m]] {
        let out = ltm(&args);
        error_says(&out, "the prompt is empty");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ltm"))
        .env("LTM_DEVICE", "cpu")
        .args(["generate", "-m", m])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    error_says(&out, "over 16 MiB");
}

#[test]
fn completions_cover_the_commands_and_options() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = ltm(["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in ["generate", "models", "think", "temperature"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
    }
    assert_eq!(ltm(["completions", "tcsh"]).status.code(), Some(2));
}

/// The prompts the bundled model offers on first contact get the answers its directory says.
#[test]
fn the_bundled_models_prompts_to_try_are_answered_right() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ltm-arith-tiny");
    let prompts: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("prompts.json")).unwrap()).unwrap();
    assert!((2..=3).contains(&prompts.len()));
    let m = dir.to_str().unwrap();
    for p in &prompts {
        let (prompt, answer) = (p["prompt"].as_str().unwrap(), p["answer"].as_str().unwrap());
        // Quiet: the answer alone.
        let out = ltm(["generate", "-m", m, "-q", prompt]);
        assert_eq!(stdout(&out).trim(), answer, "{prompt}");
    }
    // Several samples end with their verdict, as the app shows it; JSON carries each answer.
    let (prompt, answer) = (
        prompts[0]["prompt"].as_str().unwrap(),
        prompts[0]["answer"].as_str().unwrap(),
    );
    let out = ltm(["generate", "-m", m, "--samples", "3", prompt]);
    let text = stdout(&out);
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("── agreement ") && last.contains(&format!("majority {answer}")),
        "{text}"
    );
    let quiet = ltm(["generate", "-m", m, "--samples", "3", "-q", prompt]);
    assert_eq!(stdout(&quiet).trim(), answer);
    let lines = json_lines(&ltm(["generate", "-m", m, "--json", prompt]));
    assert_eq!(of_kind(&lines, "done")[0]["answer"], answer);
}

/// The bundled model checks its answers: of drafts that disagree, the one kept has the lowest
/// −ELBO less the log of its answer's drafts among those checked, and only the request's own
/// draft streams.
#[test]
fn a_checked_answer_is_the_likeliest_of_its_drafts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ltm-arith-tiny");
    let m = dir.to_str().unwrap();
    // An everyday question whose drafts disagree (the one without thinking divides by 7).
    let prompt = "Five friends split a bill of 75 dollars evenly. How much does each friend pay?";
    let lines = json_lines(&ltm(["generate", "-m", m, "--json", prompt]));
    assert!(of_kind(&lines, "token").iter().all(|t| t["sample"] == 0));
    let done = of_kind(&lines, "done");
    assert_eq!(done.len(), 1);
    let check = &done[0]["check"];
    let drafts = check["drafts"].as_array().unwrap();
    let (drawn, fitted): (Vec<&Value>, Vec<&Value>) =
        drafts.iter().partition(|d| d["drawn"] == true);
    let steps: Vec<u64> = fitted
        .iter()
        .map(|d| d["steps"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [2, 1, 0], "the default level's fitted drafts");
    assert!(!drawn.is_empty() && drawn.iter().all(|d| d["steps"] == 0));
    let held = drawn.iter().filter(|d| d["held"] == true).count();
    assert_eq!(
        held * 3,
        drawn.len(),
        "a third of the drawn drafts are held"
    );
    let kept = &drafts[check["kept"].as_u64().unwrap() as usize];
    assert_eq!(done[0]["answer"], kept["answer"]);
    // Each judged draft's −ELBO less AGREEMENT times the log of how many drafts gave its answer:
    // the kept's is lowest.
    let score = |d: &Value| {
        let reached = drafts.iter().filter(|e| e["answer"] == d["answer"]).count();
        d["nelbo"]
            .as_f64()
            .map(|v| v - AGREEMENT * (reached as f64).ln())
    };
    let scores: Vec<f64> = drafts.iter().filter_map(score).collect();
    assert!(scores.len() >= 2, "the drafts disagree: {check}");
    let lowest = scores.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(score(kept), Some(lowest), "{check}");
    // Unchecked, the done event says nothing of drafts.
    let lines = json_lines(&ltm([
        "generate", "-m", m, "--check", "off", "--json", prompt,
    ]));
    assert!(of_kind(&lines, "done")[0].get("check").is_none());
}

#[test]
fn convert_keeps_a_model_directorys_own_tokenizer_and_says_when_gpt2_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tiny")).unwrap();
    let model = tiny_model(&dir.path().join("tiny"));
    let out = dir.path().join("converted");
    let done = ltm([
        "convert",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    succeeded(&done);
    assert_eq!(
        std::fs::read(out.join("tokenizer.json")).unwrap(),
        std::fs::read(model.join("tokenizer.json")).unwrap()
    );
    // A model made for text gets text to continue as its prompts to try.
    let prompts: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("prompts.json")).unwrap()).unwrap();
    assert!(prompts.len() >= 2 && prompts[0]["answer"].is_null());
    let err = one_line_error(&ltm([
        "convert",
        &format!("{FIXTURE}/ckpt.pt"),
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]));
    assert!(err.contains("pass --tokenizer FILE"), "{err}");
}

#[test]
fn bench_reports_decoding_and_the_bytes_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let report = |weights: &str| -> Value {
        let out = ltm([
            "bench",
            "--model",
            model.to_str().unwrap(),
            "--prompt-len",
            "12",
            "--steps",
            "2",
            "--new-tokens",
            "4",
            "--decode-weights",
            weights,
            "--json",
        ]);
        json_lines(&out).remove(0)
    };
    let (full, half) = (report("full"), report("bf16"));
    for r in [&full, &half] {
        assert!(r["threads"].as_u64().unwrap() >= 1);
        for field in ["posterior_step_ms", "gen_tok_s", "decode_tok_s", "gflops"] {
            let x = r[field].as_f64().unwrap();
            assert!(x.is_finite() && x > 0.0, "{field}: {x}");
        }
    }
    // f32: every weight a decoding step reads but the thought's keys and values (made once).
    let c = common::tiny_config(101);
    let (d, l, f) = (c.dim, c.n_layers, c.ffn_dim());
    let kv = c.n_kv_heads() * c.head_dim();
    let per_layer = 2 * d * d + 2 * d * kv + 2 * d * d + 3 * d * f + 3 * d;
    let want = 4 * (l * per_layer + c.vocab_size * d + d);
    assert_eq!(full["decode_weight_bytes"].as_u64().unwrap() as usize, want);
    // bf16: the matrices at half the bytes; the norms stay f32.
    let norms = 4 * (3 * l + 1) * d;
    assert_eq!(
        half["decode_weight_bytes"].as_u64().unwrap() as usize,
        (want - norms) / 2 + norms
    );
}

#[test]
fn a_model_with_a_scope_notes_a_prompt_that_gives_no_number() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let m = model.to_str().unwrap();
    let note = |prompt: &str| {
        let out = ltm(["generate", "-m", m, "--steps", "0", "-n", "2", prompt]);
        succeeded(&out);
        stderr(&out).contains("note: no number given: ")
    };
    assert!(!note("ab"), "a model without a scope never notes it");
    set_config(&model, "scope", "a model for sums".into());
    assert!(note("ab"));
    assert!(!note("a 2 b"), "a prompt with a number is in scope");
}

#[test]
fn the_main_commands_help_ends_with_examples() {
    for command in ["chat", "generate", "eval"] {
        let out = ltm([command, "--help"]);
        assert!(out.status.success());
        let help = stdout(&out);
        let examples = help.split("Examples:\n").nth(1).unwrap_or_default();
        let lines: Vec<&str> = examples.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 3, "{command}:\n{help}");
        assert!(
            lines
                .iter()
                .all(|l| l.trim_start().starts_with("ltm ") || l.contains("| ltm "))
        );
    }
}
