//! What writing keeps between tokens: each layer's window of self-attention keys and values,
//! and the thought's cross-attention keys and values, computed once per thought.

use candle_core::{DType, Device, Result, Tensor};

/// Keys and values, [B, kv_heads, T, head_dim] each.
pub(super) type Kv = (Tensor, Tensor);

/// One layer's self-attention keys and values while writing: the last `window`, in buffers
/// with room to append, so that a token copies only its own keys and values (the buffers are
/// compacted once every `window` tokens).
pub(super) struct WindowKv {
    /// [B, kv_heads, capacity, head_dim]; the kept entries are `start..start + len`.
    k: Tensor,
    v: Tensor,
    start: usize,
    pub(super) len: usize,
    window: usize,
}

impl WindowKv {
    /// Empty buffers for `batch` sequences of `heads` key/value heads of `head_dim`.
    pub(super) fn new(
        (batch, heads, head_dim): (usize, usize, usize),
        window: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let empty = Tensor::zeros((batch, heads, 0, head_dim), dtype, device)?;
        Self {
            k: empty.clone(),
            v: empty,
            start: 0,
            len: 0,
            window,
        }
        .with_room(0)
    }

    /// The kept entries moved to the front of buffers with room for `n` more and a window.
    fn with_room(&self, n: usize) -> Result<Self> {
        let (b, heads, _, hd) = self.k.dims4()?;
        let capacity = self.len + n + self.window;
        let moved = |buf: &Tensor| -> Result<Tensor> {
            let fresh = Tensor::zeros((b, heads, capacity, hd), buf.dtype(), buf.device())?;
            if self.len > 0 {
                fresh.slice_set(&buf.narrow(2, self.start, self.len)?.contiguous()?, 2, 0)?;
            }
            Ok(fresh)
        };
        Ok(Self {
            k: moved(&self.k)?,
            v: moved(&self.v)?,
            start: 0,
            len: self.len,
            window: self.window,
        })
    }

    /// Appends the keys and values [B, kv_heads, n, head_dim] of n new positions. Returns those
    /// the new queries attend to: the kept and the new ones (the mask keeps each query to its
    /// window) or, for a single query, its window. Afterwards the last `window` are kept.
    pub(super) fn push(&mut self, k: &Tensor, v: &Tensor) -> Result<Kv> {
        let n = k.dim(2)?;
        if self.start + self.len + n > self.k.dim(2)? {
            *self = self.with_room(n)?;
        }
        let end = self.start + self.len;
        // Only positions past the kept ones are written: views handed out earlier never change.
        self.k.slice_set(&k.contiguous()?, 2, end)?;
        self.v.slice_set(&v.contiguous()?, 2, end)?;
        self.len += n;
        let attended = if n == 1 {
            self.len.min(self.window)
        } else {
            self.len
        };
        let from = self.start + self.len - attended;
        let kv = (
            self.k.narrow(2, from, attended)?,
            self.v.narrow(2, from, attended)?,
        );
        if self.len > self.window {
            self.start += self.len - self.window;
            self.len = self.window;
        }
        Ok(kv)
    }
}

/// What generation keeps between steps: the thought's cross-attention K/V (computed once)
/// and the last `window_size` self-attention K/V of each layer.
pub struct Cache {
    pub(super) cross: Vec<Kv>,
    pub(super) window: Vec<WindowKv>,
    /// Position of the next token.
    pub position: usize,
}
