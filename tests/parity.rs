//! Parity with the authors' PyTorch implementation, over every fixture folder in
//! `tests/fixtures/reference/` (a folder dropped in there is checked with no code change).
//! Tolerances are the fixture README's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use ltm::generate::{Flow, Sampling, generate};
use ltm::model::{Checkpoint, Config, Ltm, Pass};
use ltm::think::{FastLearning, Posterior, Sequences, elbo, fast_learning};
use serde_json::Value;

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/fixtures/reference exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.json").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixture folders in {}", root.display());
    dirs
}

struct Fixture {
    dir: PathBuf,
    json: Value,
    tensors: HashMap<String, Tensor>,
}

impl Fixture {
    fn load(dir: &Path) -> Self {
        let json =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let tensors =
            candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
        Self {
            dir: dir.to_path_buf(),
            json,
            tensors,
        }
    }

    fn t(&self, name: &str) -> &Tensor {
        &self.tensors[name]
    }

    fn ids(&self, name: &str) -> Vec<Vec<u32>> {
        let t = self
            .t(name)
            .to_dtype(DType::I64)
            .unwrap()
            .to_vec2::<i64>()
            .unwrap();
        t.into_iter()
            .map(|row| row.into_iter().map(|x| x as u32).collect())
            .collect()
    }

    fn f(&self, pointer: &str) -> f64 {
        self.json
            .pointer(pointer)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("{pointer} in expected.json"))
    }

    /// The three ways the same weights are stored.
    fn models(&self) -> Vec<(String, Ltm)> {
        let config: Config = serde_json::from_value(self.json["model_args"].clone()).unwrap();
        let mut out = Vec::new();
        for file in ["ckpt.pt", "ckpt_plain.pt", "reference_weights.safetensors"] {
            let path = self.dir.join(file);
            let ckpt = if file.ends_with(".pt") {
                Checkpoint::load(&path)
            } else {
                Checkpoint::from_safetensors(config.clone(), &path)
            }
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            assert_eq!(ckpt.config.ffn_dim() as f64, self.f("/hidden_dim"));
            assert_eq!(ckpt.config.z_per_layer() as f64, self.f("/z_per_layer"));
            let positions: Vec<usize> = self.json["z_positions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(ckpt.config.z_positions(), positions);
            out.push((
                format!("{}/{file}", self.dir.display()),
                ckpt.model(DType::F32, &Device::Cpu).unwrap(),
            ));
        }
        out
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    a.sub(b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn assert_rel(what: &str, got: f64, want: f64, tol: f64) {
    let rel = (got - want).abs() / want.abs().max(1e-12);
    assert!(
        rel <= tol,
        "{what}: got {got}, want {want} (relative error {rel:.2e} > {tol:.0e})"
    );
}

fn text(fx: &Fixture) -> Sequences {
    let tokens = fx.t("tokens").to_dtype(DType::U32).unwrap();
    let n = tokens.dim(1).unwrap() - 1;
    Sequences {
        inputs: tokens.narrow(1, 0, n).unwrap(),
        targets: tokens.narrow(1, 1, n).unwrap(),
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn logits_with_a_given_thought_match() {
    for dir in fixture_dirs() {
        let fx = Fixture::load(&dir);
        let text = text(&fx);
        for (name, model) in fx.models() {
            for kernels in [Pass::Infer, Pass::Think] {
                let logits = model.forward(&text.inputs, fx.t("z"), kernels).unwrap();
                let diff = max_abs_diff(&logits, fx.t("logits"));
                assert!(
                    diff <= 1e-4,
                    "{name} ({kernels:?}): logits differ by {diff:.2e} > 1e-4"
                );
                let nll = model
                    .sequence_nll(&text.inputs, &text.targets, fx.t("z"), kernels)
                    .unwrap();
                for (i, got) in nll.to_vec1::<f32>().unwrap().into_iter().enumerate() {
                    assert_rel(
                        &format!("{name}: nll of sequence {i}"),
                        got as f64,
                        fx.f(&format!("/nll_per_seq_with_z/{i}")),
                        1e-4,
                    );
                }
            }
        }
    }
}

fn assert_elbo_figures(name: &str, fx: &Fixture, got: &ltm::think::Elbo, pointer: &str, tol: f64) {
    let b = got.nll.len();
    let ppl_mean = mean(&(0..b).map(|i| got.ppl_bound(i)).collect::<Vec<_>>());
    assert_rel(
        &format!("{name}: {pointer} nelbo_sum"),
        got.nelbo_sum(),
        fx.f(&format!("{pointer}/nelbo_sum")),
        tol,
    );
    assert_rel(
        &format!("{name}: {pointer} kl_mean"),
        mean(&got.kl),
        fx.f(&format!("{pointer}/kl_mean")),
        tol,
    );
    assert_rel(
        &format!("{name}: {pointer} nll_mean"),
        mean(&got.nll),
        fx.f(&format!("{pointer}/nll_mean")),
        tol,
    );
    // exp(−ELBO/N) amplifies the ELBO's relative error by a factor −ELBO/N.
    let nelbo_per_token = got.nelbo_sum() / (b * got.tokens) as f64;
    assert_rel(
        &format!("{name}: {pointer} ppl_mean"),
        ppl_mean,
        fx.f(&format!("{pointer}/ppl_mean")),
        tol * nelbo_per_token.max(1.0),
    );
}

#[test]
fn elbo_at_the_initial_posterior_matches() {
    for dir in fixture_dirs() {
        let fx = Fixture::load(&dir);
        let q = Posterior {
            mu: fx.t("mu0").clone(),
            log_var: fx.t("log_var0").clone(),
        };
        for (name, model) in fx.models() {
            let (loss, figures) = elbo(&model, &text(&fx), &q, fx.t("eps"), Pass::Think).unwrap();
            assert_rel(
                &format!("{name}: loss"),
                loss.to_scalar::<f32>().unwrap() as f64,
                fx.f("/elbo_at_init/nelbo_sum"),
                1e-4,
            );
            assert_elbo_figures(&name, &fx, &figures, "/elbo_at_init", 1e-4);
        }
    }
}

#[test]
fn fast_learning_trace_and_final_posterior_match() {
    for dir in fixture_dirs() {
        let fx = Fixture::load(&dir);
        let init = Posterior {
            mu: fx.t("mu0").clone(),
            log_var: fx.t("log_var0").clone(),
        };
        let settings = FastLearning {
            steps: fx.f("/posterior/steps") as usize,
            lr: fx.f("/posterior/lr"),
            tolerance: None,
        };
        for (name, model) in fx.models() {
            let mut trace = Vec::new();
            let thought = fast_learning(&model, &text(&fx), &init, fx.t("eps"), &settings, |s| {
                trace.push(s.clone());
                true
            })
            .unwrap();
            assert_eq!(trace.len(), settings.steps, "{name}: steps reported");
            for s in &trace {
                let p = format!("/posterior/trace/{}", s.step);
                assert_rel(
                    &format!("{name}: lr of step {}", s.step),
                    s.lr,
                    fx.f(&format!("{p}/lr")),
                    1e-9,
                );
                assert_rel(
                    &format!("{name}: −ELBO at step {}", s.step),
                    s.elbo.nelbo_sum(),
                    fx.f(&format!("{p}/nelbo")),
                    1e-3,
                );
                assert_rel(
                    &format!("{name}: KL at step {}", s.step),
                    mean(&s.elbo.kl),
                    fx.f(&format!("{p}/kl_mean")),
                    1e-3,
                );
                assert_rel(
                    &format!("{name}: NLL at step {}", s.step),
                    mean(&s.elbo.nll),
                    fx.f(&format!("{p}/nll_mean")),
                    1e-3,
                );
            }
            let mu = max_abs_diff(&thought.posterior.mu, fx.t("mu_final"));
            let lv = max_abs_diff(&thought.posterior.log_var, fx.t("log_var_final"));
            assert!(
                mu <= 1e-3 && lv <= 1e-3,
                "{name}: final μ differs by {mu:.2e}, logσ² by {lv:.2e} (> 1e-3)"
            );
            let z = max_abs_diff(&thought.z().unwrap(), fx.t("z_final"));
            assert!(z <= 1e-3, "{name}: final z differs by {z:.2e}");
            assert_elbo_figures(&name, &fx, &thought.elbo, "/posterior/final", 1e-3);
        }
    }
}

#[test]
fn greedy_generation_through_the_cache_matches_token_for_token() {
    for dir in fixture_dirs() {
        let fx = Fixture::load(&dir);
        let prompt = &fx.ids("gen_prompt")[0];
        let want = &fx.ids("gen_tokens")[0];
        for (name, model) in fx.models() {
            let mut streamed = Vec::new();
            let (written, _) = generate(
                &model,
                prompt,
                fx.t("gen_z"),
                &Sampling::greedy(want.len() - prompt.len()),
                None,
                |t| {
                    streamed.push(t.id);
                    Flow::Continue
                },
            )
            .unwrap();
            let got: Vec<u32> = prompt.iter().chain(&written[0]).copied().collect();
            assert_eq!(&got, want, "{name}: greedy tokens");
            assert_eq!(
                streamed, written[0],
                "{name}: tokens are reported as they are written"
            );
        }
    }
}
