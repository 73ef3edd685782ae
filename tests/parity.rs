//! Parity with the authors' PyTorch implementation, over every fixture folder in
//! `tests/fixtures/reference/` (a folder dropped in there is checked with no code change).
//!
//! They run on the CPU in f32 unless `LTM_TEST_DEVICE` (cpu, cuda, metal) and `LTM_TEST_DTYPE`
//! (f32, bf16, f16) say otherwise, for example on a GPU:
//! `LTM_TEST_DEVICE=cuda LTM_TEST_DTYPE=bf16 cargo test --release --features cuda --test parity`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use candle_core::{DType, Device, Tensor};
use ltm::device::{DeviceChoice, describe, select};
use ltm::generate::{Flow, Sampling, generate};
use ltm::model::{Checkpoint, Config, Ltm, Pass};
use ltm::think::{FastLearning, Posterior, Sequences, elbo, fast_learning};
use serde_json::Value;

/// How close each kind of figure must come, for weights in one dtype.
struct Tolerances {
    /// Logits, absolute.
    logits: f32,
    /// Scalars (NLL, the ELBO and its parts), relative.
    scalars: f64,
    /// Every value of the thinking trace, relative.
    trace: f64,
    /// The final μ, logσ² and z, absolute.
    posterior: f32,
    /// Generated tokens that must equal the reference's, from the first (greedy, 40 in all).
    generated: usize,
}

impl Tolerances {
    fn of(dtype: DType) -> Self {
        match dtype {
            // The fixture README's: what a float32 implementation meets.
            DType::F32 => Self {
                logits: 1e-4,
                scalars: 1e-4,
                trace: 1e-3,
                posterior: 1e-3,
                generated: usize::MAX,
            },
            // Half-precision weights; thoughts, losses and gradients stay f32. About twice the
            // largest errors measured on the CPU (bf16: logits 0.23, scalars 7.2e-3, trace 2.9e-2,
            // posterior 0.86, 40 of 40 tokens; f16: 3.1e-2, 4.0e-4, 8.7e-4, 9.2e-3, 40 of 40). Sixteen
            // steps at lr 0.34 amplify bf16's error in the final μ; the smallest top-2 logit gap in
            // generation is 0.074, which bf16's logit error can cross on another device.
            DType::BF16 => Self {
                logits: 0.5,
                scalars: 2e-2,
                trace: 6e-2,
                posterior: 2.0,
                generated: 8,
            },
            DType::F16 => Self {
                logits: 6e-2,
                scalars: 1e-3,
                trace: 2e-3,
                posterior: 2e-2,
                generated: usize::MAX,
            },
            other => panic!("no tolerances for {other:?} weights"),
        }
    }
}

/// A device and weight dtype under test.
struct Target {
    device: Device,
    dtype: DType,
    tol: Tolerances,
}

/// `LTM_TEST_DEVICE` and `LTM_TEST_DTYPE` when set; by default the CPU in f32 and in bf16, the
/// accelerators' weight dtype, which also runs their composite kernels (`ops::composite`).
static TARGETS: LazyLock<Vec<Target>> = LazyLock::new(|| {
    let var = |name: &str| std::env::var(name).ok();
    let (device, dtype) = (var("LTM_TEST_DEVICE"), var("LTM_TEST_DTYPE"));
    if device.is_none() && dtype.is_none() {
        return vec![
            Target::new(Device::Cpu, DType::F32),
            Target::new(Device::Cpu, DType::BF16),
        ];
    }
    let choice = match device.as_deref().unwrap_or("cpu") {
        "cpu" => DeviceChoice::Cpu,
        "cuda" => DeviceChoice::Cuda,
        "metal" => DeviceChoice::Metal,
        other => panic!("LTM_TEST_DEVICE={other}: expected cpu, cuda or metal"),
    };
    let dtype = match dtype.as_deref().unwrap_or("f32") {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        other => panic!("LTM_TEST_DTYPE={other}: expected f32, bf16 or f16"),
    };
    let device = select(choice).unwrap_or_else(|e| panic!("LTM_TEST_DEVICE: {e:#}"));
    vec![Target::new(device, dtype)]
});

impl Target {
    fn new(device: Device, dtype: DType) -> Self {
        Self {
            device,
            dtype,
            tol: Tolerances::of(dtype),
        }
    }
}

/// Every fixture on every target.
fn cases() -> impl Iterator<Item = Fixture> {
    fixture_dirs().into_iter().flat_map(|dir| {
        TARGETS
            .iter()
            .map(move |target| Fixture::load(&dir, target))
    })
}

fn fixture_dirs() -> Vec<PathBuf> {
    // `LTM_FIXTURES` points a test binary that runs away from the sources at its copy.
    let root = std::env::var_os("LTM_FIXTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference"),
        PathBuf::from,
    );
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
    target: &'static Target,
    json: Value,
    tensors: HashMap<String, Tensor>,
}

impl Fixture {
    fn load(dir: &Path, target: &'static Target) -> Self {
        let json =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let tensors =
            candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
        Self {
            dir: dir.to_path_buf(),
            target,
            json,
            tensors,
        }
    }

    /// A reference tensor, on the device under test.
    fn t(&self, name: &str) -> Tensor {
        self.tensors[name].to_device(&self.target.device).unwrap()
    }

    /// The posterior the reference started thinking from.
    fn initial_posterior(&self) -> Posterior {
        Posterior {
            mu: self.t("mu0"),
            log_var: self.t("log_var0"),
        }
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
            let (device, dtype) = (&self.target.device, self.target.dtype);
            out.push((
                format!(
                    "{}/{file} ({} {dtype:?})",
                    self.dir.display(),
                    describe(device)
                ),
                ckpt.model(dtype, device).unwrap(),
            ));
        }
        out
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let f32_cpu = |t: &Tensor| {
        t.to_dtype(DType::F32)
            .unwrap()
            .to_device(&Device::Cpu)
            .unwrap()
    };
    f32_cpu(a)
        .sub(&f32_cpu(b))
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
        scored: None,
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn logits_with_a_given_thought_match() {
    for fx in cases() {
        let text = text(&fx);
        for (name, model) in fx.models() {
            for kernels in [Pass::Infer, Pass::Think] {
                let logits = model.forward(&text.inputs, &fx.t("z"), kernels).unwrap();
                let diff = max_abs_diff(&logits, &fx.t("logits"));
                let tol = fx.target.tol.logits;
                assert!(
                    diff <= tol,
                    "{name} ({kernels:?}): logits differ by {diff:.2e} > {tol:.0e}"
                );
                let prefix = model.prefix(&text.inputs, kernels).unwrap();
                let nll = model
                    .token_nll(&prefix, &text.targets, &fx.t("z"), kernels)
                    .and_then(|nll| nll.sum(1))
                    .unwrap();
                for (i, got) in nll.to_vec1::<f32>().unwrap().into_iter().enumerate() {
                    assert_rel(
                        &format!("{name}: nll of sequence {i}"),
                        got as f64,
                        fx.f(&format!("/nll_per_seq_with_z/{i}")),
                        fx.target.tol.scalars,
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
    for fx in cases() {
        let q = fx.initial_posterior();
        for (name, model) in fx.models() {
            let (loss, figures) = elbo(&model, &text(&fx), &q, &fx.t("eps"), Pass::Think).unwrap();
            assert_rel(
                &format!("{name}: loss"),
                loss.to_scalar::<f32>().unwrap() as f64,
                fx.f("/elbo_at_init/nelbo_sum"),
                fx.target.tol.scalars,
            );
            assert_elbo_figures(&name, &fx, &figures, "/elbo_at_init", fx.target.tol.scalars);
        }
    }
}

#[test]
fn fast_learning_trace_and_final_posterior_match() {
    for fx in cases() {
        let init = fx.initial_posterior();
        let settings = FastLearning {
            steps: fx.f("/posterior/steps") as usize,
            lr: fx.f("/posterior/lr"),
            tolerance: None,
            measure_final: true,
        };
        for (name, model) in fx.models() {
            let mut trace = Vec::new();
            let thought = fast_learning(&model, &text(&fx), &init, &fx.t("eps"), &settings, |s| {
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
                    fx.target.tol.trace,
                );
                assert_rel(
                    &format!("{name}: KL at step {}", s.step),
                    mean(&s.elbo.kl),
                    fx.f(&format!("{p}/kl_mean")),
                    fx.target.tol.trace,
                );
                assert_rel(
                    &format!("{name}: NLL at step {}", s.step),
                    mean(&s.elbo.nll),
                    fx.f(&format!("{p}/nll_mean")),
                    fx.target.tol.trace,
                );
            }
            let mu = max_abs_diff(&thought.posterior.mu, &fx.t("mu_final"));
            let lv = max_abs_diff(&thought.posterior.log_var, &fx.t("log_var_final"));
            let z = max_abs_diff(&thought.z().unwrap(), &fx.t("z_final"));
            let tol = fx.target.tol.posterior;
            assert!(
                mu <= tol && lv <= tol && z <= tol,
                "{name}: final μ differs by {mu:.2e}, logσ² by {lv:.2e}, z by {z:.2e} (> {tol:.0e})"
            );
            assert_elbo_figures(
                &name,
                &fx,
                &thought.elbo,
                "/posterior/final",
                fx.target.tol.trace,
            );
        }
    }
}

/// On the CPU in f32, also with bf16 decoding weights (`--decode-weights bf16`): the prompt is
/// read with the full weights, each new token with the bf16 copy, and still every token is the
/// reference's.
#[test]
fn greedy_generation_through_the_cache_matches_token_for_token() {
    for fx in cases() {
        let prompt = &fx.ids("gen_prompt")[0];
        let want = &fx.ids("gen_tokens")[0];
        let full_cpu = fx.target.dtype == DType::F32 && fx.target.device.is_cpu();
        let decoding: &[Option<DType>] = if full_cpu {
            &[None, Some(DType::BF16)]
        } else {
            &[None]
        };
        for (name, mut model) in fx.models() {
            for &decode in decoding {
                model.set_decode_dtype(decode).unwrap();
                let name = format!("{name}, decoding weights {decode:?}");
                let mut streamed = Vec::new();
                let (written, _) = generate(
                    &model,
                    prompt,
                    &fx.t("gen_z"),
                    &Sampling::greedy(want.len() - prompt.len()),
                    None,
                    |t| {
                        streamed.push(t.id);
                        Flow::Continue
                    },
                )
                .unwrap();
                let got: Vec<u32> = prompt.iter().chain(&written[0]).copied().collect();
                let n = want
                    .len()
                    .min(prompt.len().saturating_add(fx.target.tol.generated));
                assert_eq!(&got[..n], &want[..n], "{name}: greedy tokens");
                assert_eq!(
                    streamed, written[0],
                    "{name}: tokens are reported as they are written"
                );
            }
        }
    }
}
