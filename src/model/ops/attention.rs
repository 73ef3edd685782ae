//! Scaled dot-product attention in one op, with its backward: softmax(q kᵀ · scale + mask) v.
//!
//! The composite (candle's matmul, an additive mask, softmax, matmul; the key/value heads
//! repeated for grouped-query attention) stores the scores and probabilities of every head,
//! [B, H, T, S] each, and its backward makes several more such tensors and a copy of the
//! repeated keys and values. Here each (sequence, head) is one task, reading each key/value
//! head once for its group of queries. Its probabilities are kept for the backward pass, where
//! one may follow, when the whole op's fit in 64 MB (a training batch's do: recomputing them was a tenth of an
//! iteration); larger ones live in a buffer of T × S that stays in cache, and the backward
//! recomputes them (as flash attention does).
//! Blocks of query rows compute only the keys they see: under a causal mask, about half.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use std::ops::Range;
use std::sync::Mutex;

use super::gemm::{View, product};
use super::pointwise::{exp_in_place, row_max};
use super::{KEPT, Kept, Qkv, composite, contiguous_f32, fused, with_values};

/// The shapes of one attention: q [B, H, T, D], k and v [B, G, S, D] with H a multiple of G.
#[derive(Clone, Copy)]
struct Dims {
    heads: usize,
    groups: usize,
    t: usize,
    s: usize,
    d: usize,
}

impl Dims {
    fn of(q: &Layout, k: &Layout, v: &Layout) -> Result<Self> {
        let (b, heads, t, d) = q.shape().dims4()?;
        let (bk, groups, s, dk) = k.shape().dims4()?;
        if (bk, dk) != (b, d) || k.shape() != v.shape() || groups == 0 || heads % groups != 0 {
            candle_core::bail!(
                "attention: queries {:?} do not fit keys {:?} and values {:?}",
                q.shape(),
                k.shape(),
                v.shape()
            );
        }
        Ok(Self {
            heads,
            groups,
            t,
            s,
            d,
        })
    }

    /// Query heads per key/value head.
    fn rep(&self) -> usize {
        self.heads / self.groups
    }
}

struct Attention {
    scale: f32,
    /// The keys each query row sees (a mask of 0 there and −∞ elsewhere), or all of them.
    visible: Option<Vec<Range<usize>>>,
    /// Whether a backward pass may follow (an input tracks gradients): writing's passes keep
    /// nothing.
    keep: bool,
    /// The forward pass's probabilities [B·H, T, S], kept for the backward pass when they fit
    /// in [`KEPT`] values (a training batch's do); otherwise the backward recomputes them.
    kept: Kept,
}

/// Query rows per block: a block's scores are computed only over the keys its rows see, so
/// a causal mask costs about half the full products.
const ROWS: usize = 64;

/// A block of query rows and the keys any of them sees.
struct Block {
    rows: Range<usize>,
    keys: Range<usize>,
}

impl Block {
    /// Where the block's operands lie in one head's slices, as (offset, view): its [rows, keys]
    /// of P and dP, its rows of Q, O and dO, its keys' rows of K and V.
    fn tile(&self, Dims { s, d, .. }: Dims) -> [(usize, View); 3] {
        let (rows, keys) = (self.rows.len(), self.keys.len());
        [
            (
                self.rows.start * s + self.keys.start,
                View::strided(rows, keys, s),
            ),
            (self.rows.start * d, View::row_major(rows, d)),
            (self.keys.start * d, View::row_major(keys, d)),
        ]
    }
}

impl Attention {
    fn blocks(&self, t: usize, s: usize) -> impl Iterator<Item = Block> + '_ {
        (0..t).step_by(ROWS).map(move |r0| {
            let rows = r0..(r0 + ROWS).min(t);
            let keys = match &self.visible {
                Some(v) => {
                    let seen = &v[rows.clone()];
                    let lo = seen.iter().map(|r| r.start).min().unwrap_or(0);
                    let hi = seen.iter().map(|r| r.end).max().unwrap_or(0);
                    lo..hi.max(lo)
                }
                None => 0..s,
            };
            Block { rows, keys }
        })
    }

    /// The probabilities of one block of one head: softmax(q kᵀ · scale + mask) into `p`
    /// [T, S] at the block's rows and keys (0 at keys a row does not see).
    fn probabilities(&self, p: &mut [f32], q: &[f32], k: &[f32], b: &Block, dims: Dims) {
        let s = dims.s;
        let [(pb, pv), (qr, qv), (kr, kv)] = b.tile(dims);
        product(&mut p[pb..], pv, false, &q[qr..], qv, &k[kr..], kv.t());
        for i in b.rows.clone() {
            let row = &mut p[i * s..(i + 1) * s];
            let seen = match &self.visible {
                Some(v) => v[i].clone(),
                None => 0..s,
            };
            row[b.keys.start..seen.start].fill(0.0);
            row[seen.end..b.keys.end].fill(0.0);
            let row = &mut row[seen];
            row.iter_mut().for_each(|x| *x *= self.scale);
            let max = row_max(row, f32::NEG_INFINITY);
            let inv = 1.0 / exp_in_place(row, max);
            row.iter_mut().for_each(|x| *x *= inv);
        }
    }

    /// One head's output [T, D] (its rows of `out`) from its queries and its group's keys and
    /// values; `p` is scratch of [T, S].
    fn head(&self, out: &mut [f32], p: &mut [f32], q: &[f32], k: &[f32], v: &[f32], dims: Dims) {
        let Dims { t, s, .. } = dims;
        for b in self.blocks(t, s) {
            self.probabilities(p, q, k, &b, dims);
            let [(pb, pv), (qr, qv), (kr, kv)] = b.tile(dims);
            product(&mut out[qr..], qv, false, &p[pb..], pv, &v[kr..], kv);
        }
    }

    /// One head's share of the gradients. With P the probabilities and dO the output's
    /// gradient: dV += Pᵀ dO; dP = dO Vᵀ; dS = P ⊙ (dP − rowsum(dO ⊙ O)) · scale; dQ = dS K;
    /// dK += dSᵀ Q. `kept`: the head's probabilities from the forward pass, if it kept them;
    /// `scratch` and `dp` are scratch of [T, S].
    #[allow(clippy::too_many_arguments)]
    fn head_gradients(
        &self,
        (gq, gk, gv): (&mut [f32], &mut [f32], &mut [f32]),
        (kept, scratch, dp): (Option<&[f32]>, &mut [f32], &mut [f32]),
        (q, k, v): (&[f32], &[f32], &[f32]),
        (o, g): (&[f32], &[f32]),
        dims: Dims,
    ) {
        let Dims { t, s, d, .. } = dims;
        for b in self.blocks(t, s) {
            let p: &[f32] = match kept {
                Some(p) => p,
                None => {
                    self.probabilities(scratch, q, k, &b, dims);
                    scratch
                }
            };
            let [(pb, pv), (qr, qv), (kr, kv)] = b.tile(dims);
            // dV += Pᵀ dO; dP = dO Vᵀ
            product(&mut gv[kr..], kv, true, &p[pb..], pv.t(), &g[qr..], qv);
            product(&mut dp[pb..], pv, false, &g[qr..], qv, &v[kr..], kv.t());
            for i in b.rows.clone() {
                let delta: f32 = g[i * d..(i + 1) * d]
                    .iter()
                    .zip(&o[i * d..(i + 1) * d])
                    .map(|(a, b)| a * b)
                    .sum();
                let keys = i * s + b.keys.start..i * s + b.keys.end;
                dp[keys.clone()]
                    .iter_mut()
                    .zip(&p[keys])
                    .for_each(|(x, p)| *x = p * (*x - delta) * self.scale);
            }
            // dQ = dS K; dK += dSᵀ Q
            product(&mut gq[qr..], qv, false, &dp[pb..], pv, &k[kr..], kv);
            product(&mut gk[kr..], kv, true, &dp[pb..], pv.t(), &q[qr..], qv);
        }
    }
}

/// Keys or values [B, G, S, D] whose [S, D] blocks are each contiguous, though the blocks may
/// lie apart: a window of writing's cache, read where it is instead of copied every token.
fn blocks_contiguous(l: &Layout) -> bool {
    let (stride, dims) = (l.stride(), l.dims());
    dims.len() == 4 && stride[3] == 1 && (dims[2] < 2 || stride[2] == dims[3])
}

/// Each (sequence, key/value head) block of `x` [B, G, S, D] (see [`blocks_contiguous`]).
fn kv_blocks<'a>(x: &'a CpuStorage, l: &Layout, what: &str) -> Result<Vec<&'a [f32]>> {
    if !blocks_contiguous(l) {
        candle_core::bail!("{what}: each [S, D] block must be contiguous f32");
    }
    let (values, stride) = (x.as_slice::<f32>()?, l.stride());
    let (b, g, s, d) = l.shape().dims4()?;
    let at = |i: usize| l.start_offset() + (i / g) * stride[0] + (i % g) * stride[1];
    Ok((0..b * g).map(|i| &values[at(i)..at(i) + s * d]).collect())
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        lq: &Layout,
        k: &CpuStorage,
        lk: &Layout,
        v: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = Dims::of(lq, lk, lv)?;
        let q = contiguous_f32(q, lq, "attention queries")?;
        let k = kv_blocks(k, lk, "attention keys")?;
        let v = kv_blocks(v, lv, "attention values")?;
        let Dims { t, s, d, .. } = dims;
        let mut out = vec![0f32; q.len()];
        // Query head `head` (of all sequences) reads key/value head `head / rep`.
        let head = |head: usize, out: &mut [f32], p: &mut [f32], q: &[f32]| {
            let group = head / dims.rep();
            self.head(out, p, q, k[group], v[group], dims);
        };
        let tasks = out
            .par_chunks_mut(t * d)
            .zip(q.par_chunks(t * d))
            .enumerate();
        let probabilities = q.len() / d * s;
        if self.keep && probabilities <= KEPT {
            let mut kept = spare_buffer(probabilities);
            tasks
                .zip(kept.par_chunks_mut(t * s))
                .for_each(|((h, (out, q)), p)| head(h, out, p, q));
            self.kept.put(kept);
        } else {
            tasks.for_each_init(|| vec![0f32; t * s], |p, (h, (out, q))| head(h, out, p, q));
        }
        Ok((CpuStorage::F32(out), lq.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        d_out: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let inputs = [
            (q, "attention queries"),
            (k, "attention keys"),
            (v, "attention values"),
            (out, "attention output"),
            (d_out, "attention output gradient"),
        ];
        let dims = Dims::of(q.layout(), k.layout(), v.layout())?;
        let (gq, gk, gv) = with_values(inputs, |[q, k, v, o, g]| {
            Ok(self.gradients(q, k, v, o, g, dims))
        })?;
        let device = q.device();
        Ok((
            Some(Tensor::from_vec(gq, q.shape(), device)?),
            Some(Tensor::from_vec(gk, k.shape(), device)?),
            Some(Tensor::from_vec(gv, v.shape(), device)?),
        ))
    }
}

impl Attention {
    /// dq, dk, dv: one task per key/value head, which adds up the dK and dV of its query heads.
    fn gradients(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        o: &[f32],
        g: &[f32],
        dims: Dims,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let Dims { t, s, d, .. } = dims;
        let rep = dims.rep();
        let kept = self.kept.take();
        let mut gq = vec![0f32; q.len()];
        let (mut gk, mut gv) = (vec![0f32; k.len()], vec![0f32; v.len()]);
        gq.par_chunks_mut(rep * t * d)
            .zip(gk.par_chunks_mut(s * d))
            .zip(gv.par_chunks_mut(s * d))
            .enumerate()
            .for_each_init(
                // Scratch for the probabilities only when they were not kept.
                || {
                    (
                        vec![0f32; if kept.is_some() { 0 } else { t * s }],
                        vec![0f32; t * s],
                    )
                },
                |(p, dp), (group, ((gq, gk), gv))| {
                    let kv = group * s * d..(group + 1) * s * d;
                    let (k, v) = (&k[kv.clone()], &v[kv]);
                    for (r, gq) in gq.chunks_exact_mut(t * d).enumerate() {
                        let head = group * rep + r;
                        let rows = head * t * d..(head + 1) * t * d;
                        let kept = kept.as_ref().map(|p| &p[head * t * s..][..t * s]);
                        self.head_gradients(
                            (gq, &mut *gk, &mut *gv),
                            (kept, &mut *p, &mut *dp),
                            (&q[rows.clone()], k, v),
                            (&o[rows.clone()], &g[rows]),
                            dims,
                        );
                    }
                },
            );
        if let Some(kept) = kept {
            return_buffer(kept);
        }
        (gq, gk, gv)
    }
}

/// Probabilities whose backward pass has run, for the next forward pass to write over: a new
/// buffer would be zeroed first, a whole pass over tens of megabytes for nothing. At most
/// [`SPARE_VALUES`] wait here.
static SPARE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// 256 MB: a mini-shape training step's buffers (about 200 MB) fit; what a long prompt of a
/// large model kept is mostly let go, not held while the app waits for the next question.
const SPARE_VALUES: usize = 64 << 20;

/// A buffer of `n` values: the smallest spare one that holds them, its values stale (the
/// forward pass writes every one it keeps and the backward pass reads), else a new one.
fn spare_buffer(n: usize) -> Vec<f32> {
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    let fits = (0..spare.len())
        .filter(|&i| spare[i].capacity() >= n)
        .min_by_key(|&i| spare[i].capacity());
    match fits {
        Some(i) => {
            let mut buffer = spare.swap_remove(i);
            drop(spare);
            buffer.resize(n, 0.0);
            buffer
        }
        None => vec![0.0; n],
    }
}

fn return_buffer(buffer: Vec<f32>) {
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    let held: usize = spare.iter().map(Vec::capacity).sum();
    if held + buffer.capacity() <= SPARE_VALUES {
        spare.push(buffer);
    }
}

/// The keys each query row sees under an additive `mask` [T, S] that is 0 on one run of keys
/// per row and −∞ elsewhere (a causal or windowed mask); None for any other mask.
fn visible_ranges(mask: &[f32], s: usize) -> Option<Vec<Range<usize>>> {
    mask.chunks_exact(s)
        .map(|row| {
            let lo = row.iter().position(|&m| m == 0.0)?;
            let hi = lo + row[lo..].iter().take_while(|&&m| m == 0.0).count();
            let rest_masked = row[..lo]
                .iter()
                .chain(&row[hi..])
                .all(|&m| m == f32::NEG_INFINITY);
            rest_masked.then_some(lo..hi)
        })
        .collect()
}

/// softmax(q kᵀ · scale + mask) v, `mask` [T, S] additive. Differentiable in q, k and v; one
/// fused op on the CPU in f32, the composite elsewhere.
pub fn attention(qkv: Qkv, mask: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let (q, k, v) = qkv;
    if !fused(q) {
        return composite::attention(qkv, mask, scale, super::softmax_last_dim);
    }
    let (t, s) = (q.dim(2)?, k.dim(2)?);
    let visible = match mask {
        Some(m) if m.dims() != [t, s] => {
            candle_core::bail!("attention: the mask is {:?}, not [{t}, {s}]", m.dims())
        }
        Some(m) => {
            let values = m.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            match visible_ranges(&values, s) {
                Some(ranges) => Some(ranges),
                None => {
                    return composite::attention(qkv, Some(m), scale, super::softmax_last_dim);
                }
            }
        }
        None => None,
    };
    let blocks = |x: &Tensor| match blocks_contiguous(x.layout()) {
        true => Ok(x.clone()),
        false => x.contiguous(),
    };
    q.contiguous()?.apply_op3(
        &blocks(k)?,
        &blocks(v)?,
        Attention {
            scale: scale as f32,
            visible,
            keep: [q, k, v].iter().any(|x| x.track_op()),
            kept: Kept::default(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The fused op against the composite, value and every input's gradient: grouped heads,
    /// with a windowed causal mask (self-attention) and without (attention to the thought).
    #[test]
    fn matches_the_composite_and_its_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let window_mask = |t: usize, w: usize| -> Result<Tensor> {
            let m: Vec<f32> = (0..t)
                .flat_map(|i| {
                    (0..t).map(move |j| {
                        if j <= i && j + w > i {
                            0.
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                })
                .collect();
            Tensor::from_vec(m, (t, t), &dev)
        };
        // A window inside one block of rows, one over several blocks (T > ROWS), none.
        let cases = [
            (7, 7, Some(window_mask(7, 3)?)),
            (150, 150, Some(window_mask(150, 40)?)),
            (5, 3, None),
        ];
        for (t, s, mask) in cases {
            let q = Var::randn(0f32, 1., (2, 4, t, 8), &dev)?;
            let k = Var::randn(0f32, 1., (2, 2, s, 8), &dev)?;
            let v = Var::randn(0f32, 1., (2, 2, s, 8), &dev)?;
            let scale = 1.0 / 8f64.sqrt();
            let qkv = (q.as_tensor(), k.as_tensor(), v.as_tensor());
            let y = attention(qkv, mask.as_ref(), scale)?;
            let y_ref =
                composite::attention(qkv, mask.as_ref(), scale, composite::softmax_last_dim)?;
            let diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
                a.sub(b)?.abs()?.max_all()?.to_scalar::<f32>()
            };
            assert!(diff(&y, &y_ref)? < 1e-5, "values differ");
            let weights = Tensor::randn(0f32, 1., y.shape(), &dev)?;
            let g = (y * &weights)?.sum_all()?.backward()?;
            let g_ref = (y_ref * &weights)?.sum_all()?.backward()?;
            for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
                let d = diff(g.get(x).unwrap(), g_ref.get(x).unwrap())?;
                assert!(d < 1e-4, "d{name} differs by {d}");
            }
        }
        Ok(())
    }

    /// The backward pass reads the probabilities the forward pass kept, or recomputes them
    /// when it kept none (a batch too large to keep): the same gradients to the bit, the kept
    /// ones written over a spare buffer of NaNs (a value read but not written would show).
    #[test]
    fn kept_and_recomputed_probabilities_give_the_same_gradients() -> Result<()> {
        let (b, heads, groups, t, d) = (2, 4, 2, 150, 8);
        let mut seed = 11u64;
        let mut values = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect()
        };
        let (q, k, v) = (
            values(b * heads * t * d),
            values(b * groups * t * d),
            values(b * groups * t * d),
        );
        let g = values(q.len());
        let op = || Attention {
            scale: 0.35,
            visible: Some((0..t).map(|i| i.saturating_sub(40)..i + 1).collect()),
            keep: true,
            kept: Kept::default(),
        };
        let dims = Dims {
            heads,
            groups,
            t,
            s: t,
            d,
        };
        let layout = |h: usize| Layout::contiguous((b, h, t, d));
        let storage = |x: &[f32]| CpuStorage::F32(x.to_vec());
        return_buffer(vec![f32::NAN; b * heads * t * t]);
        let keeping = op();
        let (out, _) = keeping.cpu_fwd(
            &storage(&q),
            &layout(heads),
            &storage(&k),
            &layout(groups),
            &storage(&v),
            &layout(groups),
        )?;
        let o = out.as_slice::<f32>()?.to_vec();
        assert!(keeping.kept.holds(), "a small batch keeps them");
        let from_kept = keeping.gradients(&q, &k, &v, &o, &g, dims);
        assert!(!keeping.kept.holds(), "the backward takes them");
        let recomputed = op().gradients(&q, &k, &v, &o, &g, dims);
        assert!(from_kept == recomputed);
        Ok(())
    }

    /// Writing's keys and values are a window of a larger buffer: read where they are, they
    /// give what their contiguous copy gives.
    #[test]
    fn keys_and_values_are_read_in_place_from_a_window() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1., (3, 4, 1, 8), &dev)?;
        let buffer = |_| Tensor::randn(0f32, 1., (3, 2, 20, 8), &dev);
        let (k, v) = (buffer(0)?.narrow(2, 5, 9)?, buffer(1)?.narrow(2, 5, 9)?);
        assert!(!k.is_contiguous() && blocks_contiguous(k.layout()));
        let scale = 1.0 / 8f64.sqrt();
        let y = attention((&q, &k, &v), None, scale)?;
        let want = attention((&q, &k.contiguous()?, &v.contiguous()?), None, scale)?;
        assert_eq!(
            y.flatten_all()?.to_vec1::<f32>()?,
            want.flatten_all()?.to_vec1::<f32>()?
        );
        // Heads apart in memory (a transposed projection) are copied first.
        let k = Tensor::randn(0f32, 1., (3, 9, 2, 8), &dev)?.transpose(1, 2)?;
        assert!(!blocks_contiguous(k.layout()));
        let y = attention((&q, &k, &v), None, scale)?;
        let want = attention((&q, &k.contiguous()?, &v.contiguous()?), None, scale)?;
        assert_eq!(
            y.flatten_all()?.to_vec1::<f32>()?,
            want.flatten_all()?.to_vec1::<f32>()?
        );
        Ok(())
    }

    #[test]
    fn a_mask_is_read_as_runs_of_visible_keys_or_not_at_all() {
        let inf = f32::NEG_INFINITY;
        let runs = [0., 0., inf, inf, 0., 0.];
        assert_eq!(visible_ranges(&runs, 3), Some(vec![0..2, 1..3]));
        // A row with a hole is not a run: such masks take the composite.
        assert_eq!(visible_ranges(&[0., inf, 0.], 3), None);
        assert_eq!(visible_ranges(&[0., 0.5, 0.], 3), None);
    }
}
