//! Model configuration, with the reference trainer's key names so that its `model_args` map 1:1.

use serde::{Deserialize, Serialize};

fn default_multiple_of() -> usize {
    256
}
fn default_norm_eps() -> f64 {
    1e-5
}
fn default_window() -> usize {
    256
}
/// The fast learning rate of a config that does not set one.
pub const DEFAULT_FAST_LR: f64 = 0.34;

fn default_fast_lr() -> f64 {
    DEFAULT_FAST_LR
}
/// The thinking steps of a config that does not set them.
pub const DEFAULT_NUM_STEPS: usize = 16;

fn default_num_steps() -> usize {
    DEFAULT_NUM_STEPS
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_kv_heads: Option<usize>,
    pub vocab_size: usize,
    #[serde(default = "default_multiple_of")]
    pub multiple_of: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_dim: Option<usize>,
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    pub max_seq_len: usize,
    #[serde(default = "default_window")]
    pub window_size: usize,
    /// Total number of thought vectors over all layers.
    pub max_z_len: usize,
    /// Reference switch for rotating the thought keys; only `true` is implemented.
    #[serde(default = "default_true")]
    pub use_z_pos_emb: bool,
    /// Reference features we do not implement; must be 0.
    #[serde(default, skip_serializing)]
    pub n_prior_layers: usize,
    #[serde(default, skip_serializing)]
    pub n_cls_tokens: usize,

    /// Thinking defaults: peak fast learning rate and number of steps.
    #[serde(default = "default_fast_lr")]
    pub fast_lr: f64,
    #[serde(default = "default_num_steps")]
    pub num_steps: usize,
    /// How fast learning moves the posterior each step; absent: AdamW, as the authors fit it.
    #[serde(default, skip_serializing_if = "FastOptimizer::is_adam")]
    pub fast_optimizer: FastOptimizer,
    /// Special tokens (ids in the tokenizer), when the model has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<u32>,
    /// How a plain question is wrapped for this model, with `{question}` as the hole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_format: Option<String>,
    /// Whether writing uses GSM8K's calculator by default (`<<EXPR=` gets its computed result).
    /// Absent: off, so the authors' checkpoints keep plain sampling.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub calculator: bool,
    /// Whether writing keeps numbers to those the prompt gives, earlier results and constants
    /// by default (`generate::numbers`). Absent: off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copy_numbers: bool,
    /// Whether answers are checked by default: drafts written under thoughts of several depths,
    /// the likeliest kept (`engine::Check`). Absent: off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
    /// Whether the check judges drafts by the model's verdict on each ("yes" after a draft
    /// proposed under the question; trained with `data.verdicts`) instead of by −ELBO. Absent:
    /// by −ELBO.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verdicts: bool,
    /// The sampling temperature front ends use by default (0: greedy, as for arithmetic models);
    /// absent: each front end's own default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// How many worked examples the default few-shot prompt has (eval, the TUI's few-shot mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shots: Option<usize>,
    /// What the model is for, in a line ("a 2 M parameter model for one- to four-step
    /// arithmetic word problems"): front ends show it on first contact, and say so when a
    /// prompt gives no number. Absent: a general model, and neither is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Thinking steps of the named levels (`--think`, `/think`); absent: derived from
    /// `num_steps` (see [`Config::level_steps`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think_levels: Option<LevelSteps>,
}

/// How fast learning moves μ and logσ² each step, at the step's learning rate `lr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FastOptimizer {
    /// AdamW (the authors'): its first step moves every coordinate by ±lr, however small its
    /// gradient, so a one-step thought is the sign pattern of the question's gradient.
    #[default]
    Adam,
    /// Plain gradient steps scaled to a root mean square of lr over each sequence's thought:
    /// coordinates keep their gradient's proportions, so those the prompt says little about stay
    /// near the prior (on the bundled model no better than Adam: see its model card).
    Normalized,
}

impl FastOptimizer {
    fn is_adam(&self) -> bool {
        *self == FastOptimizer::Adam
    }
}

/// Thinking steps of the levels low, medium, high and max (max thinks adaptively, up to its
/// steps); off is always 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelSteps {
    pub low: usize,
    pub medium: usize,
    pub high: usize,
    pub max: usize,
}

impl LevelSteps {
    /// Medium at `steps` (at least 1), low a quarter of them, high twice and max four times as
    /// many: 4 / 16 / 32 / 64 for the authors' 16.
    pub fn around(steps: usize) -> Self {
        let d = steps.max(1);
        LevelSteps {
            low: (d / 4).max(1),
            medium: d,
            high: 2 * d,
            max: 4 * d,
        }
    }
}

impl Config {
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads.unwrap_or(self.n_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.dim / self.n_heads
    }

    /// Thought vectors read by each layer.
    pub fn z_per_layer(&self) -> usize {
        self.max_z_len / self.n_layers
    }

    /// SwiGLU width: 4·dim, then two thirds, rounded up to `multiple_of` (unless given).
    pub fn ffn_dim(&self) -> usize {
        self.hidden_dim.unwrap_or_else(|| {
            let h = 2 * (4 * self.dim) / 3;
            h.div_ceil(self.multiple_of) * self.multiple_of
        })
    }

    /// Rotary positions of a layer's thought keys: j · (max_seq_len / max_z_len).
    /// The divisor is the *total* number of thoughts, as in the reference.
    pub fn z_positions(&self) -> Vec<usize> {
        let stride = self.max_seq_len / self.max_z_len;
        (0..self.z_per_layer()).map(|j| j * stride).collect()
    }

    /// The model's thinking levels: its own, else those around its default steps.
    pub fn level_steps(&self) -> LevelSteps {
        self.think_levels
            .unwrap_or(LevelSteps::around(self.num_steps))
    }

    /// The sizes the model is built from, by key.
    pub fn sizes(&self) -> [(&'static str, usize); 9] {
        [
            ("dim", self.dim),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads()),
            ("vocab_size", self.vocab_size),
            ("multiple_of", self.multiple_of),
            ("max_seq_len", self.max_seq_len),
            ("window_size", self.window_size),
            ("max_z_len", self.max_z_len),
        ]
    }

    /// Checks that the sizes fit together; the message names the offending keys.
    pub fn validate(&self) -> Result<(), String> {
        if let Some((key, _)) = self.sizes().iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{key}` must be positive"));
        }
        // Sizes far beyond any model this app runs, so that a typo or a hostile file is refused
        // before it allocates (the rotary table alone is max_seq_len × head_dim floats).
        let limits = [
            ("dim", self.dim, 1 << 14),
            ("n_layers", self.n_layers, 1 << 9),
            ("n_heads", self.n_heads, 1 << 9),
            ("vocab_size", self.vocab_size, 1 << 21),
            ("max_seq_len", self.max_seq_len, 1 << 17),
            ("window_size", self.window_size, 1 << 17),
            ("max_z_len", self.max_z_len, 1 << 12),
            ("hidden_dim", self.hidden_dim.unwrap_or(0), 1 << 16),
            ("shots", self.shots.unwrap_or(0), crate::limits::SHOTS.max),
        ];
        if let Some((key, value, limit)) = limits.iter().find(|(_, v, limit)| v > limit) {
            return Err(format!("`{key}` ({value}) is above the limit of {limit}"));
        }
        let divides = [
            ("dim", self.dim, "n_heads", self.n_heads),
            ("n_heads", self.n_heads, "n_kv_heads", self.n_kv_heads()),
            ("max_z_len", self.max_z_len, "n_layers", self.n_layers),
        ];
        for (a, va, b, vb) in divides {
            if va % vb != 0 {
                return Err(format!("`{a}` ({va}) must be divisible by `{b}` ({vb})"));
            }
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "head_dim = dim / n_heads = {} must be even for rotary embeddings",
                self.head_dim()
            ));
        }
        // Weights take what their file holds, but the rotary table (cos and sin, max_seq_len ×
        // head_dim floats) is made from the sizes alone.
        let rotary_bytes = self.max_seq_len * self.head_dim() * 4;
        if rotary_bytes > 1 << 30 {
            return Err(format!(
                "the rotary table (max_seq_len × head_dim) would take {:.1} GB, above the limit of 1 GB",
                rotary_bytes as f64 / 1e9
            ));
        }
        if self.max_seq_len < self.max_z_len {
            return Err(format!(
                "`max_seq_len` ({}) must be at least `max_z_len` ({})",
                self.max_seq_len, self.max_z_len
            ));
        }
        if !self.use_z_pos_emb {
            return Err("`use_z_pos_emb = false` is not supported".into());
        }
        if self.n_prior_layers != 0 || self.n_cls_tokens != 0 {
            return Err("`n_prior_layers` and `n_cls_tokens` must be 0 (not supported)".into());
        }
        if !(self.norm_eps > 0.0 && self.norm_eps < 1.0) {
            return Err(format!(
                "`norm_eps` ({:e}) must be between 0 and 1",
                self.norm_eps
            ));
        }
        crate::limits::LR
            .check(self.fast_lr)
            .map_err(|e| format!("`fast_lr`: {e}"))?;
        if let Some(t) = self.temperature {
            crate::limits::TEMPERATURE
                .check(t)
                .map_err(|e| format!("`temperature`: {e}"))?;
        }
        crate::limits::STEPS
            .check(self.num_steps)
            .map_err(|e| format!("`num_steps`: {e}"))?;
        if let Some(l) = self.think_levels {
            if !(1 <= l.low && l.low <= l.medium && l.medium <= l.high && l.high <= l.max) {
                return Err(format!(
                    "`think_levels` must rise from low to max, each at least 1 (got {} / {} / {} / {})",
                    l.low, l.medium, l.high, l.max
                ));
            }
            crate::limits::STEPS
                .check(l.max)
                .map_err(|e| format!("`think_levels.max`: {e}"))?;
        }
        if let Some(format) = self
            .prompt_format
            .as_ref()
            .filter(|f| !f.contains("{question}"))
        {
            return Err(format!(
                "`prompt_format` ({format:?}) has no `{{question}}` for the question to go in"
            ));
        }
        for (key, id) in [
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
        ] {
            if let Some(id) = id.filter(|&id| id as usize >= self.vocab_size) {
                return Err(format!(
                    "`{key}` ({id}) is outside the vocabulary ({})",
                    self.vocab_size
                ));
            }
        }
        Ok(())
    }

    /// The paper's LTM shapes (GPT-2 vocabulary, 8 thoughts per layer), for benchmarks.
    pub fn paper_shape(n_layers: usize) -> Self {
        Config {
            dim: 512,
            n_layers,
            n_heads: 8,
            n_kv_heads: None,
            vocab_size: 50258,
            multiple_of: 32,
            hidden_dim: None,
            norm_eps: 1e-5,
            max_seq_len: 1024,
            window_size: 256,
            max_z_len: 8 * n_layers,
            use_z_pos_emb: true,
            n_prior_layers: 0,
            n_cls_tokens: 0,
            fast_lr: 0.34,
            num_steps: 16,
            fast_optimizer: FastOptimizer::Adam,
            bos_token_id: None,
            eos_token_id: None,
            prompt_format: None,
            calculator: false,
            copy_numbers: false,
            check: false,
            verdicts: false,
            temperature: None,
            shots: None,
            scope: None,
            think_levels: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Config {
        serde_json::from_str(
            r#"{"dim":64,"n_layers":2,"n_heads":4,"n_kv_heads":2,"vocab_size":101,"multiple_of":16,
                "max_seq_len":64,"window_size":16,"max_z_len":8,"dropout":0.0,"use_liger":false}"#,
        )
        .unwrap()
    }

    #[test]
    fn derived_sizes_match_the_reference() {
        let c = tiny();
        assert_eq!(c.ffn_dim(), 176);
        assert_eq!(c.z_per_layer(), 4);
        assert_eq!(c.z_positions(), vec![0, 8, 16, 24]);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn the_fast_optimizer_is_the_authors_unless_a_config_names_another() {
        let c = tiny();
        assert_eq!(c.fast_optimizer, FastOptimizer::Adam);
        let json = serde_json::to_value(&c).unwrap();
        assert!(json.get("fast_optimizer").is_none(), "{json}");
        let mut json = json;
        json["fast_optimizer"] = "normalized".into();
        let back: Config = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.fast_optimizer, FastOptimizer::Normalized);
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
        json["fast_optimizer"] = "sgd".into();
        let err = serde_json::from_value::<Config>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sgd") && err.contains("normalized"), "{err}");
    }

    #[test]
    fn validation_names_the_keys() {
        let mut c = tiny();
        c.max_z_len = 7;
        assert!(c.validate().unwrap_err().contains("max_z_len"));
        let mut c = tiny();
        c.n_kv_heads = Some(3);
        assert!(c.validate().unwrap_err().contains("n_kv_heads"));
        let mut c = tiny();
        c.dim = 66;
        assert!(c.validate().unwrap_err().contains("n_heads"));
        let mut c = tiny();
        c.bos_token_id = Some(500);
        assert!(c.validate().unwrap_err().contains("bos_token_id"));
    }

    #[test]
    fn sizes_and_settings_out_of_bounds_are_refused_with_the_value() {
        type Break = fn(&mut Config);
        let cases: [(&str, Break); 9] = [
            (
                "the rotary table (max_seq_len × head_dim) would take 8.6 GB",
                |c| (c.max_seq_len, c.dim, c.n_heads, c.n_kv_heads) = (1 << 17, 1 << 14, 1, None),
            ),
            (
                "max_seq_len` (1000000000) is above the limit of 131072",
                |c| c.max_seq_len = 1_000_000_000,
            ),
            ("num_steps`: thinking steps must be from 0 to 10000", |c| {
                c.num_steps = 1_000_000_000_000
            }),
            ("think_levels` must rise", |c| {
                c.think_levels = Some(LevelSteps {
                    low: 4,
                    medium: 2,
                    high: 8,
                    max: 16,
                })
            }),
            ("norm_eps` (1e300)", |c| c.norm_eps = 1e300),
            ("fast_lr`: the fast learning rate", |c| c.fast_lr = f64::NAN),
            (
                "fast_lr`: the fast learning rate must be above 0, at most 100",
                |c| c.fast_lr = 1e308,
            ),
            (
                "temperature`: the temperature must be from 0 to 10, not -1",
                |c| c.temperature = Some(-1.0),
            ),
            ("prompt_format` (\"Q: \")", |c| {
                c.prompt_format = Some("Q: ".into())
            }),
        ];
        for (want, break_it) in cases {
            let mut c = tiny();
            break_it(&mut c);
            let err = c.validate().unwrap_err();
            assert!(err.contains(want), "{err}");
        }
        let mut c = tiny();
        c.prompt_format = Some("Q: {question}\nA:".into());
        c.temperature = Some(0.0);
        assert!(c.validate().is_ok());
    }
}
