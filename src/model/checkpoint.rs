//! Reading and writing checkpoints: our directory format (`config.json`, `model.safetensors`,
//! `tokenizer.json`) and the authors' PyTorch `ckpt.pt`, read without executing any pickle code.
//! Every problem is reported with the file and the tensor or key it concerns.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::pickle::{Object, PthTensors, Stack};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::config::Config;
use super::decoder::Ltm;
use crate::fsutil::{finish_interrupted_writes, write_atomic_all};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// A checkpoint in memory: configuration and weights under their plain names.
#[derive(Clone)]
pub struct Checkpoint {
    pub config: Config,
    pub tensors: HashMap<String, Tensor>,
    /// Where the weights came from, for messages.
    pub source: PathBuf,
}

/// Every parameter of the decoder with its shape, under the plain (reference, unfused) names.
/// The output layer is tied to `tok_embeddings.weight` and not listed.
pub fn parameter_shapes(c: &Config) -> Vec<(String, Vec<usize>)> {
    let (dim, hd, hidden) = (c.dim, c.head_dim(), c.ffn_dim());
    let mut shapes = vec![
        ("tok_embeddings.weight".to_string(), vec![c.vocab_size, dim]),
        ("norm.weight".into(), vec![dim]),
    ];
    for i in 0..c.n_layers {
        let l = format!("layers.{i}");
        for attn in ["attention", "cross_attention"] {
            shapes.push((format!("{l}.{attn}.wq.weight"), vec![c.n_heads * hd, dim]));
            shapes.push((
                format!("{l}.{attn}.wk.weight"),
                vec![c.n_kv_heads() * hd, dim],
            ));
            shapes.push((
                format!("{l}.{attn}.wv.weight"),
                vec![c.n_kv_heads() * hd, dim],
            ));
            shapes.push((format!("{l}.{attn}.wo.weight"), vec![dim, c.n_heads * hd]));
        }
        shapes.push((format!("{l}.feed_forward.w1.weight"), vec![hidden, dim]));
        shapes.push((format!("{l}.feed_forward.w2.weight"), vec![dim, hidden]));
        shapes.push((format!("{l}.feed_forward.w3.weight"), vec![hidden, dim]));
        for norm in ["attention_norm", "cross_attention_norm", "ffn_norm"] {
            shapes.push((format!("{l}.{norm}.weight"), vec![dim]));
        }
    }
    shapes
}

/// The plain name of a parameter saved by any variant of the reference trainer:
/// compiled (`_orig_mod.`), DDP (`module.`), and fused SwiGLU names.
pub fn plain_name(name: &str) -> String {
    let mut n = name;
    while let Some(rest) = n
        .strip_prefix("_orig_mod.")
        .or_else(|| n.strip_prefix("module."))
    {
        n = rest;
    }
    n.replace("._orig_mod.", ".")
        .replace("feed_forward.gate_proj.", "feed_forward.w1.")
        .replace("feed_forward.up_proj.", "feed_forward.w3.")
        .replace("feed_forward.down_proj.", "feed_forward.w2.")
}

impl Checkpoint {
    /// Loads a model directory, a `model.safetensors` beside a `config.json`, or a reference `.pt`.
    pub fn load(path: &Path) -> Result<Self> {
        if path.is_dir() {
            Self::load_dir(path)
        } else if path.extension().is_some_and(|e| e == "pt" || e == "pth") {
            Self::load_pth(path)
        } else if path.extension().is_some_and(|e| e == "safetensors") {
            let dir = path.parent().unwrap_or(Path::new("."));
            finish_interrupted_writes(dir)?;
            Self::from_safetensors(read_config(&dir.join(CONFIG_FILE))?, path)
        } else if !path.exists() {
            bail!("{}: no such file or directory", path.display())
        } else {
            bail!(
                "{}: not a model directory, .safetensors or .pt checkpoint",
                path.display()
            )
        }
    }

    fn load_dir(dir: &Path) -> Result<Self> {
        finish_interrupted_writes(dir)?;
        Self::from_safetensors(
            read_config(&dir.join(CONFIG_FILE))?,
            &dir.join(WEIGHTS_FILE),
        )
    }

    pub fn from_safetensors(config: Config, file: &Path) -> Result<Self> {
        // candle reads the whole file: it has to be one, and so of a size it has.
        crate::fsutil::regular_file_len(file)?;
        let tensors = candle_core::safetensors::load(file, &Device::Cpu).with_context(|| {
            format!(
                "{}: cannot read safetensors weights (missing, truncated or corrupt)",
                file.display()
            )
        })?;
        Self::checked(config, tensors, file)
    }

    /// The authors' `ckpt.pt`: state dict under `model`, sizes under `model_args`, thinking
    /// defaults under `config`; optimizer and RNG state are ignored.
    pub fn load_pth(file: &Path) -> Result<Self> {
        let (model_args, train_config) = read_pth_dicts(file)?;
        let mut args = model_args;
        for key in ["fast_lr", "num_steps"] {
            if let Some(v) = train_config.get(key) {
                args.insert(key.to_string(), v.clone());
            }
        }
        let config: Config =
            serde_json::from_value(serde_json::Value::Object(args)).with_context(|| {
                format!(
                    "{}: `model_args` is not a valid LTM configuration",
                    file.display()
                )
            })?;
        let pth = PthTensors::new(file, Some("model"))
            .with_context(|| format!("{}: cannot read the `model` state dict", file.display()))?;
        let mut tensors = HashMap::new();
        for name in pth.tensor_infos().keys() {
            let tensor = pth
                .get(name)
                .with_context(|| {
                    format!(
                        "{}: cannot read tensor `{name}` (truncated file?)",
                        file.display()
                    )
                })?
                .with_context(|| format!("{}: tensor `{name}` vanished", file.display()))?;
            tensors.insert(plain_name(name), tensor);
        }
        Self::checked(config, tensors, file)
    }

    /// Validates configuration and weights: every tensor present, of the right shape, finite.
    fn checked(config: Config, mut tensors: HashMap<String, Tensor>, file: &Path) -> Result<Self> {
        let f = file.display();
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{f}: bad configuration: {e}"))?;
        if let Some(out) = tensors.remove("output.weight") {
            let emb = tensors.get("tok_embeddings.weight");
            let tied = match emb {
                Some(emb) if emb.dims() == out.dims() => {
                    out.to_dtype(DType::F32)?
                        .sub(&emb.to_dtype(DType::F32)?)?
                        .abs()?
                        .max_all()?
                        .to_scalar::<f32>()?
                        == 0.
                }
                _ => false,
            };
            if !tied {
                bail!(
                    "{f}: tensor `output.weight` is not tied to `tok_embeddings.weight` (untied output layers are not supported)"
                );
            }
        }
        let expected = parameter_shapes(&config);
        for (name, shape) in &expected {
            let Some(t) = tensors.get(name) else {
                bail!("{f}: tensor `{name}` is missing");
            };
            if t.dims() != shape.as_slice() {
                bail!(
                    "{f}: tensor `{name}` has shape {:?}, the configuration needs {shape:?}",
                    t.dims()
                );
            }
            if !t.dtype().is_float() {
                bail!(
                    "{f}: tensor `{name}` has dtype {:?}, expected floating point",
                    t.dtype()
                );
            }
            let finite = t
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .all(|x| x.is_finite());
            if !finite {
                bail!("{f}: tensor `{name}` contains NaN or infinite values");
            }
        }
        if tensors.len() > expected.len() {
            let mut extra: Vec<_> = tensors
                .keys()
                .filter(|k| !expected.iter().any(|(n, _)| n == *k))
                .cloned()
                .collect();
            extra.sort();
            bail!(
                "{f}: unexpected tensor `{}`{}",
                extra[0],
                if extra.len() > 1 {
                    format!(" (and {} more)", extra.len() - 1)
                } else {
                    String::new()
                }
            );
        }
        Ok(Self {
            config,
            tensors,
            source: file.to_path_buf(),
        })
    }

    /// A freshly initialised checkpoint: N(0, 0.02²) matrices and embeddings, unit norm weights
    /// (the reference's initialisation, without its depth-scaled output projections).
    pub fn random(config: Config, seed: u64) -> Result<Self> {
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("bad configuration: {e}"))?;
        let mut rng = crate::noise::rng(seed);
        let tensors = parameter_shapes(&config)
            .into_iter()
            .map(|(name, shape)| {
                let t = if shape.len() == 1 {
                    Tensor::ones(shape, DType::F32, &Device::Cpu)?
                } else {
                    let n: usize = shape.iter().product();
                    Tensor::from_vec(initial(n, &mut rng), shape, &Device::Cpu)?
                };
                Ok((name, t))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            config,
            tensors,
            source: PathBuf::from("(random initialisation)"),
        })
    }

    /// The same decoder `factor` times as deep: each layer is followed by `factor − 1` copies of
    /// itself whose output projections (self- and cross-attention `wo`, feed-forward `w2`) are
    /// zero, so that they add nothing until training moves them; each layer keeps its number of
    /// thought vectors. It computes what this one computes but for one thing: the thought keys'
    /// rotary positions are spaced `max_seq_len / max_z_len` apart (the reference's rule), so
    /// with `factor` times the thoughts they come `factor` times closer, unless `max_seq_len`
    /// grows as well. A way to grow a trained model rather than start a bigger one from nothing.
    pub fn deepened(&self, factor: usize) -> Result<Self> {
        if factor == 0 {
            bail!("a model cannot be made 0 times as deep");
        }
        let mut config = self.config.clone();
        config.n_layers *= factor;
        config.max_z_len *= factor;
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("the deepened model: {e}"))?;
        let mut tensors = HashMap::new();
        for (name, t) in &self.tensors {
            let Some((layer, rest)) = name
                .strip_prefix("layers.")
                .and_then(|r| r.split_once('.'))
                .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
            else {
                tensors.insert(name.clone(), t.clone());
                continue;
            };
            let output = writes_residual(rest);
            for copy in 0..factor {
                let t = if copy > 0 && output {
                    t.zeros_like()?
                } else {
                    t.clone()
                };
                tensors.insert(format!("layers.{}.{rest}", layer * factor + copy), t);
            }
        }
        Ok(Self {
            config,
            tensors,
            source: self.source.clone(),
        })
    }

    /// The same decoder `factor` times as wide: `factor` times the width, the heads and the
    /// key/value heads (the head size kept, so a new query head reads a new key/value head), and
    /// the feed-forward width of the wider shape. Old weights keep their places. Rows of new
    /// heads and hidden units start random (N(0, 0.02²), from `seed`) so that gradients reach
    /// them; everything that would carry them into the old computation starts at zero (old rows'
    /// new inputs, and every output into a new dimension of the residual stream or out of a new
    /// head or hidden unit). The norms' weights shrink by √factor, as their root mean square now
    /// runs over `factor` times the dimensions, the new ones zero. So it computes what this one
    /// computes, whatever the thought's new dimensions hold, up to the norms' ε (negligible where
    /// activations are far above it, as in a trained model).
    pub fn widened(&self, factor: usize, seed: u64) -> Result<Self> {
        if factor == 0 {
            bail!("a model cannot be made 0 times as wide");
        }
        let mut config = self.config.clone();
        config.dim *= factor;
        config.n_heads *= factor;
        config.n_kv_heads = self.config.n_kv_heads.map(|n| n * factor);
        config.hidden_dim = self.config.hidden_dim.map(|h| h * factor);
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("the widened model: {e}"))?;
        let mut rng = crate::noise::rng(seed);
        let shrink = (1.0 / factor as f64).sqrt();
        let mut tensors = HashMap::new();
        for (name, shape) in parameter_shapes(&config) {
            let old = self
                .tensors
                .get(&name)
                .with_context(|| format!("{}: no tensor {name}", self.source.display()))?
                .to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?;
            let t = if shape.len() == 1 {
                let old = (old * shrink)?;
                let mean = old.mean_all()?.to_scalar::<f32>()?;
                let grown = shape[0] - old.dim(0)?;
                Tensor::cat(&[old, Tensor::full(mean, grown, &Device::Cpu)?], 0)?
            } else {
                let (rows, cols) = old.dims2()?;
                let writes = writes_residual(&name);
                // Old rows read nothing from new inputs; new rows (new heads, hidden units) read
                // everything, unless they write the residual stream's new dimensions.
                let old_rows = old.pad_with_zeros(1, 0, shape[1] - cols)?;
                let new_rows = shape[0]
                    .checked_sub(rows)
                    .with_context(|| format!("the widened model's {name} has fewer rows"))?;
                let new = if writes || new_rows == 0 {
                    Tensor::zeros((new_rows, shape[1]), DType::F32, &Device::Cpu)?
                } else {
                    let n = new_rows * shape[1];
                    Tensor::from_vec(initial(n, &mut rng), (new_rows, shape[1]), &Device::Cpu)?
                };
                Tensor::cat(&[old_rows, new], 0)?
            };
            tensors.insert(name, t);
        }
        Ok(Self {
            config,
            tensors,
            source: self.source.clone(),
        })
    }

    /// The decoder on `device` in `dtype`.
    pub fn model(&self, dtype: DType, device: &Device) -> Result<Ltm> {
        let vb = VarBuilder::from_tensors(self.tensors.clone(), dtype, device);
        Ltm::new(&self.config, vb)
            .with_context(|| format!("{}: cannot build the model", self.source.display()))
    }

    /// The mean of checkpoints of one shape (a run's kept saves, or runs from one start):
    /// weights averaged in f32, under the first one's configuration.
    pub fn mean(checkpoints: &[Checkpoint]) -> Result<Checkpoint> {
        let (first, rest) = checkpoints
            .split_first()
            .context("no checkpoint to average")?;
        let shapes = parameter_shapes(&first.config);
        let mut sum = HashMap::new();
        for (name, _) in &shapes {
            sum.insert(name.clone(), first.tensors[name].to_dtype(DType::F32)?);
        }
        for c in rest {
            if parameter_shapes(&c.config) != shapes {
                bail!(
                    "{} and {}: models of different shapes cannot be averaged",
                    first.source.display(),
                    c.source.display()
                );
            }
            for (name, total) in sum.iter_mut() {
                *total = (&*total + c.tensors[name].to_dtype(DType::F32)?)?;
            }
        }
        let n = checkpoints.len() as f64;
        Ok(Checkpoint {
            config: first.config.clone(),
            tensors: sum
                .into_iter()
                .map(|(k, v)| Ok((k, (v / n)?)))
                .collect::<Result<_>>()?,
            source: first.source.clone(),
        })
    }

    /// The weights rounded to bf16 (to nearest, ties to even), which [`Checkpoint::files`] then
    /// writes as bf16: half the bytes, as the bundled model ships.
    pub fn rounded_to_bf16(&self) -> Result<Checkpoint> {
        Ok(Checkpoint {
            tensors: self
                .tensors
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.to_dtype(DType::BF16)?)))
                .collect::<Result<_>>()?,
            ..self.clone()
        })
    }

    /// Writes our directory format (config and weights; the tokenizer is the caller's), both
    /// files at once (`write_atomic_all`).
    pub fn save_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write_atomic_all(&self.files(dir, None)?)
    }

    /// The files of our directory format in `dir`, with their contents; `metadata` goes into the
    /// weights file's header. Weights are written in f32, or in bf16 where they are bf16.
    pub fn files(
        &self,
        dir: &Path,
        metadata: Option<HashMap<String, String>>,
    ) -> Result<Vec<(PathBuf, Vec<u8>)>> {
        let config = serde_json::to_string_pretty(&self.config)?.into_bytes();
        let tensors: HashMap<String, Tensor> = self
            .tensors
            .iter()
            .map(|(k, v)| {
                let dtype = if v.dtype() == DType::BF16 {
                    DType::BF16
                } else {
                    DType::F32
                };
                Ok((k.clone(), v.to_dtype(dtype)?.to_device(&Device::Cpu)?))
            })
            .collect::<Result<_>>()?;
        let weights =
            safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), metadata)?;
        Ok(vec![
            (dir.join(CONFIG_FILE), config),
            (dir.join(WEIGHTS_FILE), weights),
        ])
    }
}

pub fn read_config(file: &Path) -> Result<Config> {
    let text = crate::fsutil::read_text_limited(file, crate::fsutil::SMALL_FILE)
        .context("cannot read the model configuration")?;
    let config: Config = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a valid LTM configuration", file.display()))?;
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: bad configuration: {e}", file.display()))?;
    Ok(config)
}

/// `model_args` and `config` of a reference checkpoint, as JSON objects.
fn read_pth_dicts(
    file: &Path,
) -> Result<(
    serde_json::Map<String, serde_json::Value>,
    serde_json::Map<String, serde_json::Value>,
)> {
    let f = file.display();
    crate::fsutil::regular_file_len(file)?;
    let reader =
        BufReader::new(std::fs::File::open(file).with_context(|| format!("{f}: cannot open"))?);
    let mut zip = zip::ZipArchive::new(reader).with_context(|| {
        format!("{f}: not a PyTorch checkpoint (not a zip archive, or truncated)")
    })?;
    let pkl = (0..zip.len())
        .filter_map(|i| {
            zip.name_for_index(i)
                .and_then(|n| n.ok())
                .map(|n| n.to_string())
        })
        .find(|n| n.ends_with("data.pkl"))
        .with_context(|| format!("{f}: no data.pkl inside: not a PyTorch checkpoint"))?;
    let mut bytes = Vec::new();
    zip.by_name(&pkl)?
        .read_to_end(&mut bytes)
        .with_context(|| format!("{f}: cannot read {pkl}"))?;
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut bytes.as_slice())
        .with_context(|| format!("{f}: cannot parse {pkl}"))?;
    let Object::Dict(mut entries) = stack
        .finalize()
        .with_context(|| format!("{f}: cannot parse {pkl}"))?
    else {
        bail!("{f}: the checkpoint is not a dict");
    };
    let mut section = |key: &str| -> Result<serde_json::Map<String, serde_json::Value>> {
        let idx = entries
            .iter()
            .position(|(k, _)| matches!(k, Object::Unicode(s) if s == key));
        let Some(Object::Dict(items)) = idx.map(|i| entries.swap_remove(i).1) else {
            bail!("{f}: the checkpoint has no `{key}` dict");
        };
        Ok(items
            .into_iter()
            .filter_map(|(k, v)| match (k, plain_value(v)) {
                (Object::Unicode(k), Some(v)) => Some((k, v)),
                _ => None,
            })
            .collect())
    };
    Ok((section("model_args")?, section("config")?))
}

fn plain_value(o: Object) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match o {
        Object::Int(i) => Value::from(i),
        Object::Long(i) => Value::from(i),
        Object::Float(x) => Value::from(x),
        Object::Bool(b) => Value::from(b),
        Object::Unicode(s) => Value::from(s),
        Object::None => Value::Null,
        _ => return None,
    })
}

/// Whether the weight `name` writes into the residual stream (attention's and cross-attention's
/// `wo`, the feed-forward's `w2`): what a grown model's new parts must start at zero in.
fn writes_residual(name: &str) -> bool {
    name.ends_with("wo.weight") || name.ends_with("feed_forward.w2.weight")
}

/// `n` initial weights, N(0, 0.02²) (the reference's initialisation).
fn initial(n: usize, rng: &mut rand::rngs::StdRng) -> Vec<f32> {
    use rand_distr::Distribution;
    (0..n)
        .map(|_| 0.02 * Distribution::<f32>::sample(&rand_distr::StandardNormal, rng))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::decoder::Pass;
    use crate::model::ops::largest_difference;

    /// Two layers of width `dim`, 4 heads with 2 key/value heads.
    fn two_layers(dim: usize) -> Config {
        serde_json::from_value(serde_json::json!({"dim": dim, "n_layers": 2, "n_heads": 4,
            "n_kv_heads": 2, "vocab_size": 101, "multiple_of": 16, "max_seq_len": 64,
            "window_size": 16, "max_z_len": 8}))
        .unwrap()
    }

    #[test]
    fn only_checkpoints_of_one_shape_are_averaged() {
        let [a, b] = [1, 2].map(|seed| Checkpoint::random(two_layers(32), seed).unwrap());
        let mean = Checkpoint::mean(&[a.clone(), b.clone()]).unwrap();
        let name = "layers.1.feed_forward.w2.weight";
        let half_sum = ((&a.tensors[name] + &b.tensors[name]).unwrap() / 2.0).unwrap();
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let gap = largest_difference(&values(&mean.tensors[name]), &values(&half_sum));
        assert!(gap < 1e-7, "{gap}");
        let wide = Checkpoint::random(two_layers(64), 1).unwrap();
        let err = Checkpoint::mean(&[a, wide])
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("different shapes"), "{err}");
    }

    /// The logits of a fixed six-token text given the thought `z`, flattened.
    fn logits(ckpt: &Checkpoint, z: &Tensor) -> Vec<f32> {
        let dev = Device::Cpu;
        let tokens = Tensor::new(&[[1u32, 5, 9, 2, 7, 3]], &dev).unwrap();
        let model = ckpt.model(DType::F32, &dev).unwrap();
        let logits = model.forward(&tokens, z, Pass::Infer).unwrap();
        logits.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    #[test]
    fn a_deepened_model_computes_what_it_was_grown_from() {
        let c = two_layers(64);
        let small = Checkpoint::random(c.clone(), 3).unwrap();
        let deep = small.deepened(2).unwrap();
        assert_eq!(deep.config.n_layers, 2 * c.n_layers);
        assert_eq!(deep.config.z_per_layer(), c.z_per_layer());
        let mut names: Vec<_> = deep.tensors.keys().cloned().collect();
        let mut want: Vec<_> = parameter_shapes(&deep.config)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        want.sort();
        assert_eq!(names, want);

        let dev = Device::Cpu;
        let (b, n, d) = small.model(DType::F32, &dev).unwrap().thought_shape(1);
        let z = Tensor::randn(0f32, 1.0, (b, n, d), &dev).unwrap();
        // Each layer's thought vectors go to it and to its copies (which do not read them).
        let per = c.z_per_layer();
        let deep_z = Tensor::cat(
            &(0..c.n_layers)
                .flat_map(|l| {
                    let own = z.narrow(1, l * per, per).unwrap();
                    [own.clone(), own]
                })
                .collect::<Vec<_>>(),
            1,
        )
        .unwrap();
        let (a, b) = (logits(&small, &z), logits(&deep, &deep_z));
        let moved_thoughts = a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-4);
        assert!(moved_thoughts, "the thought keys' positions came closer");
        // With the thoughts' positions kept, it computes exactly what it was grown from.
        let mut deep = deep;
        deep.config.max_seq_len *= 2;
        let b = logits(&deep, &deep_z);
        let worst = largest_difference(&a, &b);
        assert!(worst < 1e-5, "largest difference {worst}");
        // The copies really are there: moving one's output changes the result.
        let mut moved = small.deepened(2).unwrap();
        moved.config.max_seq_len *= 2;
        let name = "layers.1.feed_forward.w2.weight";
        let w2 = small.tensors["layers.0.feed_forward.w2.weight"].clone();
        moved.tensors.insert(name.into(), w2);
        let c2 = logits(&moved, &deep_z);
        assert!(a.iter().zip(&c2).any(|(x, y)| (x - y).abs() > 1e-4));
    }

    #[test]
    fn a_widened_model_computes_what_it_was_grown_from_and_its_new_parts_learn() {
        let c = two_layers(32);
        let mut small = Checkpoint::random(c.clone(), 3).unwrap();
        // Activations of a trained model's size, far above the norms' ε.
        let emb = "tok_embeddings.weight";
        small
            .tensors
            .insert(emb.into(), (&small.tensors[emb] * 50.0).unwrap());
        let wide = small.widened(2, 7).unwrap();
        assert_eq!(
            (
                wide.config.dim,
                wide.config.n_heads,
                wide.config.n_kv_heads()
            ),
            (64, 8, 4)
        );
        assert_eq!(wide.config.head_dim(), c.head_dim());
        for (name, shape) in parameter_shapes(&wide.config) {
            assert_eq!(wide.tensors[&name].dims(), &shape[..], "{name}");
        }

        let dev = Device::Cpu;
        let tokens = Tensor::new(&[[1u32, 5, 9, 2, 7, 3]], &dev).unwrap();
        let (b, n, d) = small.model(DType::F32, &dev).unwrap().thought_shape(1);
        let z = Tensor::randn(0f32, 1.0, (b, n, d), &dev).unwrap();
        // Whatever the thought's new dimensions hold.
        let wide_z = Tensor::cat(
            &[&z, &Tensor::randn(0f32, 1.0, (b, n, d), &dev).unwrap()],
            2,
        )
        .unwrap();
        let (a, w) = (logits(&small, &z), logits(&wide, &wide_z));
        let worst = largest_difference(&a, &w);
        let largest = a.iter().map(|x| x.abs()).fold(0f32, f32::max);
        assert!(
            worst < 1e-5 * largest,
            "largest difference {worst} of {largest}"
        );

        // The new parts learn: a gradient reaches the weights that carry a new head's output
        // into the old dimensions (zero now), so the next step connects the new heads.
        let mut trained = wide.clone();
        let wo = "layers.0.attention.wo.weight";
        let var = candle_core::Var::from_tensor(&wide.tensors[wo]).unwrap();
        trained.tensors.insert(wo.into(), var.as_tensor().clone());
        let model = trained.model(DType::F32, &dev).unwrap();
        let loss = model.forward(&tokens, &wide_z, Pass::Train).unwrap();
        let grads = loss.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let new_heads_out = grads.get(var.as_tensor()).unwrap().narrow(0, 0, d).unwrap();
        let new_heads_out = new_heads_out.narrow(1, d, d).unwrap();
        let largest = new_heads_out.abs().unwrap().max_all().unwrap();
        assert!(largest.to_scalar::<f32>().unwrap() > 0.0);
    }

    #[test]
    fn reference_name_variants_map_to_plain_names() {
        assert_eq!(
            plain_name("layers.0.attention._orig_mod.wq.weight"),
            "layers.0.attention.wq.weight"
        );
        assert_eq!(
            plain_name("_orig_mod.layers.1.feed_forward.gate_proj.weight"),
            "layers.1.feed_forward.w1.weight"
        );
        assert_eq!(
            plain_name("module.layers.1.feed_forward.up_proj.weight"),
            "layers.1.feed_forward.w3.weight"
        );
        assert_eq!(
            plain_name("layers.1.feed_forward.down_proj.weight"),
            "layers.1.feed_forward.w2.weight"
        );
        assert_eq!(plain_name("norm.weight"), "norm.weight");
    }
}
