//! The Latent Thought Model decoder: pre-norm blocks of windowed causal
//! self-attention, cross-attention to the layer's thought vectors, and SwiGLU; tied output.

use candle_core::{D, DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::cache::{Cache, Kv, WindowKv};
use super::config::Config;
use super::ops;

/// Which kernels a forward pass may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Fused kernels, no backward: generation and scoring.
    Infer,
    /// Differentiable in the thought only, weights constant: thinking.
    Think,
    /// Differentiable in everything: training the decoder.
    Train,
}

/// The kernel choice, made here once per op: writing takes candle's own (no backward, and for a
/// handful of rows the streaming product); thinking and training take ours, whose backward
/// passes compute only what each needs. The SwiGLU is ours for every pass: one pass over the
/// joined [gate | up] where candle's would take three.
impl Pass {
    /// x · wᵀ over the last dimension of x.
    fn linear(self, x: &Tensor, w: &Weight) -> Result<Tensor> {
        let full = &w.full;
        if w.bf16_products && self != Pass::Infer {
            return ops::bf16_linear(x, full, self == Pass::Train);
        }
        if self == Pass::Think {
            return ops::linear_input_grad(x, full);
        }
        let (k, n) = (x.dim(D::Minus1)?, full.dim(0)?);
        let mut shape = x.dims().to_vec();
        *shape.last_mut().expect("x has a last dimension") = n;
        let x = x.reshape(((), k))?;
        let few_rows = self == Pass::Infer && x.dim(0)? <= ops::FEW_ROWS && ops::fused(&x);
        let y = if few_rows {
            ops::few_rows_linear(&x, w.decode.as_ref().unwrap_or(full))?
        } else {
            x.matmul(&full.t()?)?
        };
        y.reshape(shape)
    }

    fn rms_norm(self, x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
        match self {
            Pass::Infer => candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps),
            Pass::Think | Pass::Train => ops::rms_norm(x, weight, eps, self == Pass::Train),
        }
    }

    /// x: [B, heads, T, head_dim].
    fn rope(self, x: &Tensor, (cos, sin): &(Tensor, Tensor)) -> Result<Tensor> {
        match self {
            Pass::Infer => candle_nn::rotary_emb::rope_i(&x.contiguous()?, cos, sin),
            Pass::Think | Pass::Train => ops::rope_interleaved(x, cos, sin),
        }
    }

    fn attention(self, qkv: ops::Qkv, mask: Option<&Tensor>, scale: f64) -> Result<Tensor> {
        match self {
            // Writing needs no gradient: an accelerator's own fused softmax.
            Pass::Infer if !ops::fused(qkv.0) => {
                ops::composite::attention(qkv, mask, scale, candle_nn::ops::softmax_last_dim)
            }
            _ => ops::attention(qkv, mask, scale),
        }
    }
}

/// A weight matrix [out, in], where decoding reads a narrower copy, that copy, and whether
/// thinking and training multiply by it in bf16 ([`Ltm::set_bf16_products`]).
struct Weight {
    full: Tensor,
    decode: Option<Tensor>,
    bf16_products: bool,
}

impl Weight {
    fn new(full: Tensor) -> Self {
        Self {
            full,
            decode: None,
            bf16_products: false,
        }
    }

    /// The bytes one decoding step reads of this weight.
    fn decode_bytes(&self) -> usize {
        let w = self.decode.as_ref().unwrap_or(&self.full);
        w.elem_count() * w.dtype().size_in_bytes()
    }
}

struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn load(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        pass.rms_norm(x, &self.weight, self.eps)
    }
}

/// Interleaved rotary embeddings (pairs 2k, 2k+1 rotate together), θ = 10000.
struct Rope {
    inv_freq: Vec<f32>,
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(cfg: &Config, dtype: DType, device: &Device) -> Result<Self> {
        let hd = cfg.head_dim();
        // As the reference computes it, in f32.
        let inv_freq: Vec<f32> = (0..hd / 2)
            .map(|k| 1.0 / 10000f32.powf((2 * k) as f32 / hd as f32))
            .collect();
        let (cos, sin) = Self::table(&inv_freq, 0, cfg.max_seq_len, dtype, device)?;
        Ok(Self { inv_freq, cos, sin })
    }

    fn table(
        inv_freq: &[f32],
        start: usize,
        len: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let angles: Vec<f32> = (start..start + len)
            .flat_map(|t| inv_freq.iter().map(move |f| t as f32 * f))
            .collect();
        let angles = Tensor::from_vec(angles, (len, inv_freq.len()), device)?;
        Ok((
            angles.cos()?.to_dtype(dtype)?,
            angles.sin()?.to_dtype(dtype)?,
        ))
    }

    /// cos, sin for positions start..start+len (beyond the table: computed on the spot).
    fn range(&self, start: usize, len: usize) -> Result<(Tensor, Tensor)> {
        if start + len <= self.cos.dim(0)? {
            Ok((
                self.cos.narrow(0, start, len)?,
                self.sin.narrow(0, start, len)?,
            ))
        } else {
            Self::table(
                &self.inv_freq,
                start,
                len,
                self.cos.dtype(),
                self.cos.device(),
            )
        }
    }

    fn at(&self, positions: &[usize]) -> Result<(Tensor, Tensor)> {
        let ids: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
        let ids = Tensor::new(ids, self.cos.device())?;
        Ok((
            self.cos.index_select(&ids, 0)?,
            self.sin.index_select(&ids, 0)?,
        ))
    }
}

/// Bias-free multi-head attention with grouped key/value heads.
struct Attention {
    wq: Weight,
    wk: Weight,
    wv: Weight,
    wo: Weight,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let (dim, hd) = (cfg.dim, cfg.head_dim());
        Ok(Self {
            wq: Weight::new(vb.get((cfg.n_heads * hd, dim), "wq.weight")?),
            wk: Weight::new(vb.get((cfg.n_kv_heads() * hd, dim), "wk.weight")?),
            wv: Weight::new(vb.get((cfg.n_kv_heads() * hd, dim), "wv.weight")?),
            wo: Weight::new(vb.get((dim, cfg.n_heads * hd), "wo.weight")?),
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads(),
            head_dim: hd,
        })
    }

    /// x [B, T, dim] → [B, heads, T, head_dim].
    fn heads(&self, x: &Tensor, w: &Weight, heads: usize, pass: Pass) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        pass.linear(x, w)?
            .reshape((b, t, heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn queries(&self, x: &Tensor, rope: &(Tensor, Tensor), pass: Pass) -> Result<Tensor> {
        pass.rope(&self.heads(x, &self.wq, self.n_heads, pass)?, rope)
    }

    /// Rotated keys and plain values of `x`, in kv heads.
    fn keys_values(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        pass: Pass,
    ) -> Result<(Tensor, Tensor)> {
        let k = pass.rope(&self.heads(x, &self.wk, self.n_kv_heads, pass)?, rope)?;
        Ok((k, self.heads(x, &self.wv, self.n_kv_heads, pass)?))
    }

    /// softmax(q kᵀ/√d + mask) v, then the output projection: [B, T, dim].
    fn attend(&self, qkv: ops::Qkv, mask: Option<&Tensor>, pass: Pass) -> Result<Tensor> {
        let (b, _, t, _) = qkv.0.dims4()?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let out = pass
            .attention(qkv, mask, scale)?
            .transpose(1, 2)?
            .reshape((b, t, self.n_heads * self.head_dim))?;
        pass.linear(&out, &self.wo)
    }
}

struct FeedForward {
    /// w1's rows (the gate) above w3's: one product makes both halves of the SwiGLU.
    w13: Weight,
    w2: Weight,
}

impl FeedForward {
    fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        pass.linear(&ops::swiglu(&pass.linear(x, &self.w13)?)?, &self.w2)
    }
}

struct Block {
    attention_norm: RmsNorm,
    attention: Attention,
    cross_attention_norm: RmsNorm,
    cross_attention: Attention,
    ffn_norm: RmsNorm,
    feed_forward: FeedForward,
}

/// Where a pass's tokens are: their rotary table, and the window mask of their queries over the
/// keys they see (`None` for a single query, which sees its whole window).
struct Positions {
    rope: (Tensor, Tensor),
    mask: Option<Tensor>,
}

/// A pass's work before the thought enters (see [`Ltm::prefix`]).
pub struct Prefix {
    /// The first layer's output after its self-attention.
    x: Tensor,
    /// The first layer's cross-attention queries.
    queries: Tensor,
    at: Positions,
}

impl Block {
    /// The paper's block: x + self-attention, x + cross-attention to the layer's thought
    /// vectors (their keys and values, `thought`), x + feed-forward, each on the normed x.
    fn forward(
        &self,
        x: &Tensor,
        at: &Positions,
        window: Option<&mut WindowKv>,
        thought: &Kv,
        pass: Pass,
    ) -> Result<Tensor> {
        let x = self.self_attend(x, at, window, pass)?;
        let queries = self.cross_queries(&x, &at.rope, pass)?;
        self.cross_attend_and_feed(&x, &queries, thought, pass)
    }

    /// x + self-attention(x); while writing, `window` keeps the keys and values of the window.
    fn self_attend(
        &self,
        x: &Tensor,
        at: &Positions,
        window: Option<&mut WindowKv>,
        pass: Pass,
    ) -> Result<Tensor> {
        let attn = &self.attention;
        let h = self.attention_norm.forward(x, pass)?;
        let q = attn.queries(&h, &at.rope, pass)?;
        let (mut k, mut v) = attn.keys_values(&h, &at.rope, pass)?;
        if let Some(kept) = window {
            (k, v) = kept.push(&k, &v)?;
        }
        x + attn.attend((&q, &k, &v), at.mask.as_ref(), pass)?
    }

    /// The cross-attention's queries of x.
    fn cross_queries(&self, x: &Tensor, rope: &(Tensor, Tensor), pass: Pass) -> Result<Tensor> {
        let h = self.cross_attention_norm.forward(x, pass)?;
        self.cross_attention.queries(&h, rope, pass)
    }

    /// x + cross-attention(queries; the thought's keys and values), then + feed-forward.
    fn cross_attend_and_feed(
        &self,
        x: &Tensor,
        queries: &Tensor,
        (zk, zv): &Kv,
        pass: Pass,
    ) -> Result<Tensor> {
        let x = (x + self.cross_attention.attend((queries, zk, zv), None, pass)?)?;
        let h = self.ffn_norm.forward(&x, pass)?;
        &x + self.feed_forward.forward(&h, pass)?
    }

    fn weights(&self) -> [&Weight; 10] {
        let (a, c, f) = (&self.attention, &self.cross_attention, &self.feed_forward);
        [
            &a.wq, &a.wk, &a.wv, &a.wo, &c.wq, &c.wk, &c.wv, &c.wo, &f.w13, &f.w2,
        ]
    }

    fn weights_mut(&mut self) -> [&mut Weight; 10] {
        let (a, c, f) = (
            &mut self.attention,
            &mut self.cross_attention,
            &mut self.feed_forward,
        );
        [
            &mut a.wq, &mut a.wk, &mut a.wv, &mut a.wo, &mut c.wq, &mut c.wk, &mut c.wv, &mut c.wo,
            &mut f.w13, &mut f.w2,
        ]
    }
}

/// The decoder with its weights.
pub struct Ltm {
    config: Config,
    /// Token embeddings, and the tied output layer.
    tok_embeddings: Weight,
    layers: Vec<Block>,
    norm: RmsNorm,
    rope: Rope,
    z_rope_positions: Vec<usize>,
}

impl Ltm {
    /// Builds the decoder from `vb` (plain parameter names, see `checkpoint::parameter_shapes`).
    pub fn new(config: &Config, vb: VarBuilder) -> Result<Self> {
        let (dim, eps) = (config.dim, config.norm_eps);
        let layers = (0..config.n_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                let ff = vb.pp("feed_forward");
                let hidden = config.ffn_dim();
                Ok(Block {
                    attention_norm: RmsNorm::load(vb.pp("attention_norm"), dim, eps)?,
                    attention: Attention::load(vb.pp("attention"), config)?,
                    cross_attention_norm: RmsNorm::load(vb.pp("cross_attention_norm"), dim, eps)?,
                    cross_attention: Attention::load(vb.pp("cross_attention"), config)?,
                    ffn_norm: RmsNorm::load(vb.pp("ffn_norm"), dim, eps)?,
                    feed_forward: FeedForward {
                        w13: Weight::new(Tensor::cat(
                            &[
                                ff.get((hidden, dim), "w1.weight")?,
                                ff.get((hidden, dim), "w3.weight")?,
                            ],
                            0,
                        )?),
                        w2: Weight::new(ff.get((dim, hidden), "w2.weight")?),
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            tok_embeddings: Weight::new(vb.get((config.vocab_size, dim), "tok_embeddings.weight")?),
            norm: RmsNorm::load(vb.pp("norm"), dim, eps)?,
            rope: Rope::new(config, vb.dtype(), vb.device())?,
            z_rope_positions: config.z_positions(),
            layers,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.tok_embeddings.full.device()
    }

    pub fn dtype(&self) -> DType {
        self.tok_embeddings.full.dtype()
    }

    /// Decoding reads its weights in `dtype` (`None`: as the model keeps them). Writing one
    /// token at a time is bound by the bytes it reads, so bf16 is about twice as fast on the
    /// CPU; thinking and prompts keep the full weights. Only the CPU's f32 models take a copy
    /// (an accelerator's weights are bf16 already).
    pub fn set_decode_dtype(&mut self, dtype: Option<DType>) -> Result<()> {
        let copy = dtype.filter(|&d| self.device().is_cpu() && d != self.dtype());
        let blocks = self.layers.iter_mut().flat_map(Block::weights_mut);
        for w in blocks.chain([&mut self.tok_embeddings]) {
            w.decode = copy.map(|d| w.full.to_dtype(d)).transpose()?;
        }
        Ok(())
    }

    /// Thinking and training multiply by the weight matrices in bf16 with f32 accumulation
    /// (`ops::amx`: several times the f32 rate on CPUs with AMX), or in f32 as stored. The
    /// weights, activations and every other op stay f32; writing is unaffected.
    pub fn set_bf16_products(&mut self, on: bool) -> Result<()> {
        if on && !(ops::fused(&self.tok_embeddings.full) && ops::amx::available()) {
            candle_core::bail!(
                "bf16 products need f32 weights on a CPU with AMX-BF16 (Intel Xeon 4th generation or later)"
            );
        }
        let blocks = self.layers.iter_mut().flat_map(Block::weights_mut);
        for w in blocks.chain([&mut self.tok_embeddings]) {
            w.bf16_products = on;
        }
        Ok(())
    }

    /// Number of parameters (the tied output layer counted once).
    pub fn parameter_count(&self) -> usize {
        let blocks = self.layers.iter().flat_map(Block::weights);
        let matrices: usize = blocks
            .chain([&self.tok_embeddings])
            .map(|w| w.full.elem_count())
            .sum();
        matrices + self.norm_parameters()
    }

    /// The RMS norms' weights: three per layer and the final one.
    fn norm_parameters(&self) -> usize {
        (3 * self.layers.len() + 1) * self.config.dim
    }

    /// Bytes of weights one decoding step reads: every layer's projections and norms, and the
    /// whole tied output layer. The cross-attention's keys and values are not read: they are
    /// made once per thought, into the cache.
    pub fn decode_weight_bytes(&self) -> usize {
        let per_layer = |l: &Block| -> usize {
            let all: usize = l.weights().into_iter().map(Weight::decode_bytes).sum();
            let thought_kv = [&l.cross_attention.wk, &l.cross_attention.wv];
            all - thought_kv
                .into_iter()
                .map(Weight::decode_bytes)
                .sum::<usize>()
        };
        let norm_bytes = self.norm.weight.dtype().size_in_bytes();
        self.layers.iter().map(per_layer).sum::<usize>()
            + self.tok_embeddings.decode_bytes()
            + self.norm_parameters() * norm_bytes
    }

    /// Shape of the thought tensor z for a batch: [B, max_z_len, dim].
    pub fn thought_shape(&self, batch: usize) -> (usize, usize, usize) {
        (batch, self.config.max_z_len, self.config.dim)
    }

    /// Cross-attention K/V of each layer's thought vectors. z: [B, max_z_len, dim], layer-major.
    fn thought_kv(&self, z: &Tensor, pass: Pass) -> Result<Vec<Kv>> {
        let per_layer = self.config.z_per_layer();
        let z = z.to_dtype(self.dtype())?;
        let rope = self.rope.at(&self.z_rope_positions)?;
        self.layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                layer.cross_attention.keys_values(
                    &z.narrow(1, i * per_layer, per_layer)?,
                    &rope,
                    pass,
                )
            })
            .collect()
    }

    /// Additive mask for queries at `q_start..q_start+n` over keys at `k_start..q_start+n`:
    /// query i sees key j when i − window < j ≤ i. A single query sees its whole (trimmed) window.
    fn window_mask(&self, q_start: usize, n: usize, k_start: usize) -> Result<Option<Tensor>> {
        if n == 1 {
            return Ok(None);
        }
        let w = self.config.window_size;
        let k_end = q_start + n;
        let mask: Vec<f32> = (q_start..k_end)
            .flat_map(|i| {
                (k_start..k_end).map(move |j| {
                    if j <= i && j + w > i {
                        0.
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (n, k_end - k_start), self.device())?;
        Ok(Some(mask.to_dtype(self.dtype())?))
    }

    /// Runs blocks `from..` over x at positions `at`, then the final norm; while writing, each
    /// block keeps its keys and values in its `window`. Thinking, writing and training all
    /// walk through the layers here.
    fn walk(
        &self,
        mut x: Tensor,
        from: usize,
        at: &Positions,
        thought: &[Kv],
        mut window: Option<&mut [WindowKv]>,
        pass: Pass,
    ) -> Result<Tensor> {
        for (i, layer) in self.layers.iter().enumerate().skip(from) {
            let kept = window.as_deref_mut().map(|w| &mut w[i]);
            x = layer.forward(&x, at, kept, &thought[i], pass)?;
        }
        self.norm.forward(&x, pass)
    }

    /// Token embeddings [B, n, dim] at positions `start..start+n`, whose queries also see the
    /// `cached` keys before them.
    fn embed(&self, tokens: &Tensor, start: usize, cached: usize) -> Result<(Tensor, Positions)> {
        let (b, n) = tokens.dims2()?;
        let x = self
            .tok_embeddings
            .full
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, n, self.config.dim))?;
        let at = Positions {
            rope: self.rope.range(start, n)?,
            mask: self.window_mask(start, n, start - cached)?,
        };
        Ok((x, at))
    }

    /// What a pass over `tokens` [B, N] computes before the thought enters: the first layer's
    /// self-attention and its cross-attention queries. Thinking makes many passes over the same
    /// tokens with different thoughts, and computes this once.
    pub fn prefix(&self, tokens: &Tensor, pass: Pass) -> Result<Prefix> {
        let (x, at) = self.embed(tokens, 0, 0)?;
        let first = &self.layers[0];
        let x = first.self_attend(&x, &at, None, pass)?;
        let queries = first.cross_queries(&x, &at.rope, pass)?;
        Ok(Prefix { x, queries, at })
    }

    /// The walk from a prefix on: the rest of the first block, then the others.
    fn walk_after(&self, prefix: &Prefix, thought: &[Kv], pass: Pass) -> Result<Tensor> {
        let first = &self.layers[0];
        let x = first.cross_attend_and_feed(&prefix.x, &prefix.queries, &thought[0], pass)?;
        self.walk(x, 1, &prefix.at, thought, None, pass)
    }

    /// Tied output layer: hidden [.., dim] → logits [.., vocab] in f32.
    fn logits(&self, hidden: &Tensor, pass: Pass) -> Result<Tensor> {
        pass.linear(hidden, &self.tok_embeddings)?
            .to_dtype(DType::F32)
    }

    /// Logits at every position of `tokens` [B, N] given the thought z [B, max_z_len, dim].
    pub fn forward(&self, tokens: &Tensor, z: &Tensor, pass: Pass) -> Result<Tensor> {
        let (x, at) = self.embed(tokens, 0, 0)?;
        let hidden = self.walk(x, 0, &at, &self.thought_kv(z, pass)?, None, pass)?;
        self.logits(&hidden, pass)
    }

    /// Cross-entropy of each target given the tokens' [`Prefix`]: [B, N] targets → [B, N].
    pub fn token_nll(
        &self,
        prefix: &Prefix,
        targets: &Tensor,
        z: &Tensor,
        pass: Pass,
    ) -> Result<Tensor> {
        let hidden = self.walk_after(prefix, &self.thought_kv(z, pass)?, pass)?;
        // Training needs the logits' weight gradient; with bf16 products thinking also takes
        // the stored logits, whose product runs on AMX tiles. Otherwise they are never stored.
        if pass == Pass::Train || self.tok_embeddings.bf16_products && pass == Pass::Think {
            return ops::token_nll(&self.logits(&hidden, pass)?, targets);
        }
        ops::output_nll(
            &hidden,
            &self.tok_embeddings.full,
            targets,
            pass == Pass::Think,
        )
    }

    /// A generation cache for thought z (its cross-attention K/V are computed here, once).
    pub fn cache(&self, z: &Tensor) -> Result<Cache> {
        let c = &self.config;
        let shape = (z.dim(0)?, c.n_kv_heads(), c.head_dim());
        let window = (0..c.n_layers)
            .map(|_| WindowKv::new(shape, c.window_size, self.dtype(), self.device()))
            .collect::<Result<_>>()?;
        Ok(Cache {
            cross: self.thought_kv(z, Pass::Infer)?,
            window,
            position: 0,
        })
    }

    /// Feeds `tokens` [B, n] after what the cache holds; logits of the last position [B, vocab].
    pub fn step(&self, tokens: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let n = tokens.dim(1)?;
        let (x, at) = self.embed(tokens, cache.position, cache.window[0].len)?;
        let window = Some(cache.window.as_mut_slice());
        let hidden = self.walk(x, 0, &at, &cache.cross, window, Pass::Infer)?;
        cache.position += n;
        self.logits(&hidden.narrow(1, n - 1, 1)?.squeeze(1)?, Pass::Infer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Checkpoint;

    /// Feeding a sequence through the cache, one token at a time and in pieces, gives the logits
    /// of the whole sequence at once, well past the window (the buffers fill, compact and slide).
    #[test]
    fn the_cache_reproduces_the_whole_sequence_past_the_window() -> Result<()> {
        let mut c = Config::paper_shape(2);
        (c.dim, c.n_heads, c.vocab_size, c.max_seq_len, c.window_size) = (32, 2, 50, 64, 8);
        let model = Checkpoint::random(c, 5)
            .map_err(candle_core::Error::wrap)?
            .model(DType::F32, &Device::Cpu)
            .map_err(candle_core::Error::wrap)?;
        let ids: Vec<u32> = (0..45u32).map(|i| (i * 17 + 3) % 50).collect();
        let z = Tensor::randn(0f32, 1., model.thought_shape(1), &Device::Cpu)?;
        let tokens = Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let whole = model.forward(&tokens, &z, Pass::Infer)?;
        let mut cache = model.cache(&z)?;
        let pieces = [5, 1, 1, 7, 1, 1, 1, 1, 9, 1, 3, 1, 1, 12];
        assert_eq!(pieces.iter().sum::<usize>(), ids.len());
        for n in pieces {
            let start = cache.position;
            let last = model.step(&tokens.narrow(1, start, n)?, &mut cache)?;
            let want = whole.narrow(1, start + n - 1, 1)?.squeeze(1)?;
            let diff = (last - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(
                diff < 1e-4,
                "tokens {start}..{}: differ by {diff}",
                start + n
            );
        }
        Ok(())
    }
}
