//! Matrix products in bf16 with f32 accumulation on Intel's AMX tiles (Sapphire Rapids and
//! later): several times the f32 rate of the same core, for training where the CPU has them.
//!
//! A tile is 16 rows of 64 bytes; `tdpbf16ps` adds a [16, 32] bf16 tile times a [32, 16] one
//! (stored as 16 rows of 16 bf16 pairs, "VNNI" order) into a [16, 16] f32 tile. Each task packs
//! nothing of its own: both operands are rounded to bf16 and packed once per product, then
//! every 32 × 32 block of the result is computed in four accumulator tiles. Intel's manual
//! (Intel 64 and IA-32 Architectures Optimization Reference Manual, chapter "Intel AMX") has
//! the instructions; Linux asks a process to request the tile state first
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, Documentation/arch/x86/xstate.rst).

use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

use super::gemm::View;
use super::{unwritten, written};

/// Whether this CPU and OS run AMX bf16 products (asked once per process).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(imp::enable)
}

/// f32 → bf16, rounded to nearest even (NaN stays NaN); branch-free, so that loops of it
/// vectorise.
#[inline(always)]
fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    if b & 0x7fff_ffff > 0x7f80_0000 {
        0x7fc0
    } else {
        rounded
    }
}

// AMX's CPUs all have AVX-512: sixteen values a vector where the compiler's default is four.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma"))]
fn round_into(dst: &mut [MaybeUninit<u16>], src: &[f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(bf16_bits(s));
    }
}

/// Rows and columns are padded to whole blocks of this many; the reduction to pairs of tiles.
const BLOCK: usize = 32;

fn padded(n: usize) -> usize {
    n.div_ceil(BLOCK) * BLOCK
}

/// a (View `av` over `a`) as bf16 rows of `kp` values, zero-padded to `mp` rows.
fn pack_rows(a: &[f32], av: View, mp: usize, kp: usize) -> Vec<u16> {
    let mut packed = unwritten(mp * kp);
    let (rows, cols) = (av.rows, av.cols);
    let zero = MaybeUninit::new(0u16);
    if av.cs == 1 {
        packed
            .par_chunks_mut(kp)
            .enumerate()
            .for_each(|(i, row)| match i < rows {
                true => {
                    round_into(&mut row[..cols], &a[i * av.rs..][..cols]);
                    row[cols..].fill(zero);
                }
                false => row.fill(zero),
            });
    } else {
        // A transpose: each task takes 16 rows, which are 16 neighbouring values of each of
        // a's stored rows, and moves them 16 × 16 at a time through a block that stays in
        // registers or L1.
        packed
            .par_chunks_mut(16 * kp)
            .enumerate()
            .for_each(|(block, out)| {
                let first = block * 16;
                let n = 16.min(rows.saturating_sub(first));
                if n == 0 {
                    out.fill(zero);
                    return;
                }
                let mut tile = [[zero; 16]; 16];
                for k0 in (0..cols).step_by(16) {
                    let width = 16.min(cols - k0);
                    for (dk, column) in tile.iter_mut().enumerate().take(width) {
                        let at = first * av.rs + (k0 + dk) * av.cs;
                        match av.rs {
                            1 => round_into(&mut column[..n], &a[at..][..n]),
                            _ => (0..n).for_each(|r| {
                                column[r].write(bf16_bits(a[at + r * av.rs]));
                            }),
                        }
                    }
                    for r in 0..n {
                        let row = &mut out[r * kp + k0..][..width];
                        for (dk, v) in row.iter_mut().enumerate() {
                            *v = tile[dk][r];
                        }
                    }
                }
                for (r, row) in out.chunks_exact_mut(kp).enumerate() {
                    match r < n {
                        true => row[cols..].fill(zero),
                        false => row.fill(zero),
                    }
                }
            });
    }
    // SAFETY: every row was written: a's values, then zeros to `kp`; the rows past a's, zeros.
    unsafe { written(packed) }
}

/// Two values rounded to bf16 as the words of a pair: `lo` first in memory.
#[inline(always)]
fn bf16_pair(lo: f32, hi: f32) -> u32 {
    u32::from(bf16_bits(lo)) | u32::from(bf16_bits(hi)) << 16
}

/// Pairs of two rows' values, side by side.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma"))]
fn pair_rows(out: &mut [u32], lo: &[f32], hi: &[f32]) {
    for ((o, &l), &h) in out.iter_mut().zip(lo).zip(hi) {
        *o = bf16_pair(l, h);
    }
}

/// Pairs of a run of values: (run[0], run[1]), (run[2], run[3]) …; an odd last value is
/// paired with zero.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma"))]
fn pair_run(out: &mut [u32], run: &[f32]) {
    for (o, p) in out.iter_mut().zip(run.chunks_exact(2)) {
        *o = bf16_pair(p[0], p[1]);
    }
    if run.len() % 2 == 1 {
        out[run.len() / 2] = bf16_pair(run[run.len() - 1], 0.0);
    }
}

/// b (View `bv`, [k, n]) as panels of 16 columns, each `kp / 2` rows of 16 bf16 pairs
/// (b[2r, c], b[2r + 1, c]), zero-padded to `np` columns; as words, one a pair.
fn pack_pairs(b: &[f32], bv: View, kp: usize, np: usize) -> Vec<u32> {
    let panel = kp / 2 * 16;
    let mut packed = vec![0u32; np * kp / 2];
    let zeros = [0f32; 16];
    packed
        .par_chunks_mut(panel)
        .enumerate()
        .for_each(|(p, panel)| {
            let (first, n) = (p * 16, 16.min(bv.cols.saturating_sub(p * 16)));
            if n == 0 {
                // Padding: zeros.
            } else if bv.cs == 1 {
                // Row-major b: two rows at a time, side by side.
                for (r, out) in panel.chunks_exact_mut(16).enumerate() {
                    let row = |k: usize| match k < bv.rows {
                        true => &b[k * bv.rs + first..][..n],
                        false => &zeros[..n],
                    };
                    pair_rows(out, row(2 * r), row(2 * r + 1));
                }
            } else if bv.rs == 1 {
                // Columns stored contiguously (b is a transpose): 16 pair rows of each column
                // at a time into a block that stays in L1, then written out row by row.
                let mut tile = [[0u32; 16]; 16];
                for r0 in (0..kp / 2).step_by(16) {
                    let ks = (2 * r0).min(bv.rows)..(2 * r0 + 32).min(bv.rows);
                    for (c, column) in tile.iter_mut().enumerate() {
                        column.fill(0);
                        if c < n {
                            pair_run(column, &b[(first + c) * bv.cs..][ks.clone()]);
                        }
                    }
                    for (r, out) in panel[r0 * 16..].chunks_exact_mut(16).take(16).enumerate() {
                        for (c, o) in out.iter_mut().enumerate() {
                            *o = tile[c][r];
                        }
                    }
                }
            } else {
                for c in 0..n {
                    for k in 0..bv.rows {
                        let shift = 16 * (k % 2);
                        let bits = u32::from(bf16_bits(b[k * bv.rs + (first + c) * bv.cs]));
                        panel[k / 2 * 16 + c] |= bits << shift;
                    }
                }
            }
        });
    packed
}

/// a · b in f32 from bf16-rounded operands: a [m, k] and b [k, n] as views, the result
/// [m, n] row-major. Call only where [`available`].
pub fn product(a: &[f32], av: View, b: &[f32], bv: View) -> Vec<f32> {
    assert!(av.cols == bv.rows, "amx product: {} ≠ {}", av.cols, bv.rows);
    assert!(available(), "amx product without AMX");
    let (m, n) = (av.rows, bv.cols);
    let (mp, np, kp) = (padded(m), padded(n), padded(av.cols));
    let ap = pack_rows(a, av, mp, kp);
    let bp = pack_pairs(b, bv, kp, np);
    let bp: &[u16] = bytemuck::cast_slice(&bp);
    // Not zeroed: the tiles write every value.
    let mut cp = unwritten(mp * np);
    // Tasks of a few row blocks, so that both cores stay busy on short products.
    let rows = BLOCK
        * (mp / BLOCK)
            .div_ceil(4 * rayon::current_num_threads())
            .max(1);
    cp.par_chunks_mut(rows * np)
        .zip(ap.par_chunks(rows * kp))
        .for_each(|(c, a)| imp::blocks(a, bp, c, c.len() / np, np, kp));
    // SAFETY: every value was written by `blocks` (rows × np per task, the tasks covering cp).
    let mut cp = unsafe { written(cp) };
    if np == n {
        cp.truncate(m * n);
        return cp;
    }
    let mut out = Vec::with_capacity(m * n);
    for c in cp.chunks_exact(np).take(m) {
        out.extend_from_slice(&c[..n]);
    }
    out
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use std::arch::asm;
    use std::arch::x86_64::__cpuid_count;
    use std::mem::MaybeUninit;

    /// The tile configuration: palette 1, eight tiles of 16 rows × 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        bytes_per_row: [u16; 16],
        rows: [u8; 16],
    }

    static TILES: TileConfig = {
        let mut c = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            bytes_per_row: [0; 16],
            rows: [0; 16],
        };
        let mut t = 0;
        while t < 8 {
            c.bytes_per_row[t] = 64;
            c.rows[t] = 16;
            t += 1;
        }
        c
    };

    /// CPUID says AMX-TILE and AMX-BF16, and Linux grants the tile state.
    pub fn enable() -> bool {
        let leaf7 = __cpuid_count(7, 0);
        let (amx_bf16, amx_tile) = (leaf7.edx >> 22 & 1 == 1, leaf7.edx >> 24 & 1 == 1);
        if !(amx_bf16 && amx_tile) {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a request for a permission; the kernel answers 0 or an error.
        let granted = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            )
        };
        granted == 0
    }

    /// c [rows, np] = a [rows, kp] · b (packed by `pack_pairs`), rows, np and kp whole blocks;
    /// every value of c is written.
    pub fn blocks(
        a: &[u16],
        b: &[u16],
        c: &mut [MaybeUninit<f32>],
        rows: usize,
        np: usize,
        kp: usize,
    ) {
        assert!(a.len() >= rows * kp && b.len() >= np * kp && c.len() >= rows * np);
        assert!([rows, np, kp].iter().all(|d| d.is_multiple_of(32)));
        let (a_stride, c_stride, b_stride) = (kp * 2, np * 4, 64usize);
        let panel = kp * 16;
        // SAFETY: `available()` was checked by the caller (the tile state is granted); every
        // address below is inside a, b or c by the asserts: a tile row reads 64 bytes = 32
        // values of a row of a (kp a multiple of 32), 16 pairs of b's panel row, and writes 16
        // f32 of a row of c; 16 rows from a block's first.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) &TILES, options(nostack));
            for i in (0..rows).step_by(32) {
                for j in (0..np).step_by(32) {
                    asm!(
                        "tilezero tmm0",
                        "tilezero tmm1",
                        "tilezero tmm2",
                        "tilezero tmm3",
                        options(nostack, nomem)
                    );
                    let (b0, b1) = (
                        b.as_ptr().add(j / 16 * panel),
                        b.as_ptr().add((j / 16 + 1) * panel),
                    );
                    for k in (0..kp).step_by(32) {
                        asm!(
                            "tileloadd tmm4, [{a0} + {a_stride}]",
                            "tileloadd tmm5, [{a1} + {a_stride}]",
                            "tileloadd tmm6, [{b0} + {b_stride}]",
                            "tileloadd tmm7, [{b1} + {b_stride}]",
                            "tdpbf16ps tmm0, tmm4, tmm6",
                            "tdpbf16ps tmm1, tmm4, tmm7",
                            "tdpbf16ps tmm2, tmm5, tmm6",
                            "tdpbf16ps tmm3, tmm5, tmm7",
                            a0 = in(reg) a.as_ptr().add(i * kp + k),
                            a1 = in(reg) a.as_ptr().add((i + 16) * kp + k),
                            b0 = in(reg) b0.add(k * 16),
                            b1 = in(reg) b1.add(k * 16),
                            a_stride = in(reg) a_stride,
                            b_stride = in(reg) b_stride,
                            options(nostack, readonly)
                        );
                    }
                    let c0 = c.as_mut_ptr().cast::<f32>().add(i * np + j);
                    asm!(
                        "tilestored [{c00} + {c_stride}], tmm0",
                        "tilestored [{c01} + {c_stride}], tmm1",
                        "tilestored [{c10} + {c_stride}], tmm2",
                        "tilestored [{c11} + {c_stride}], tmm3",
                        c00 = in(reg) c0,
                        c01 = in(reg) c0.add(16),
                        c10 = in(reg) c0.add(16 * np),
                        c11 = in(reg) c0.add(16 * np + 16),
                        c_stride = in(reg) c_stride,
                        options(nostack)
                    );
                }
            }
            asm!("tilerelease", options(nostack, nomem));
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    pub fn enable() -> bool {
        false
    }

    pub fn blocks(
        _: &[u16],
        _: &[u16],
        _: &mut [std::mem::MaybeUninit<f32>],
        _: usize,
        _: usize,
        _: usize,
    ) {
        unreachable!("AMX products are only called where `available()`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::largest_difference;

    /// The product of the bf16-rounded operands in f64, for comparison.
    fn rounded_product(a: &[f32], av: View, b: &[f32], bv: View) -> Vec<f32> {
        let r = |x: f32| f64::from(f32::from_bits(u32::from(bf16_bits(x)) << 16));
        let mut out = vec![0f32; av.rows * bv.cols];
        for i in 0..av.rows {
            for j in 0..bv.cols {
                let s: f64 = (0..av.cols)
                    .map(|k| r(a[i * av.rs + k * av.cs]) * r(b[k * bv.rs + j * bv.cs]))
                    .sum();
                out[i * bv.cols + j] = s as f32;
            }
        }
        out
    }

    #[test]
    fn products_of_every_shape_and_layout_match_the_rounded_operands() {
        if !available() {
            eprintln!("skipped: this CPU or OS has no AMX bf16");
            return;
        }
        let mut seed = 7u64;
        let mut value = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        // Whole blocks, ragged edges, a single row, a reduction shorter than a tile.
        for (m, n, k) in [(64, 64, 64), (37, 50, 70), (1, 17, 5), (100, 33, 300)] {
            let a: Vec<f32> = (0..m * k).map(|_| value()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| value()).collect();
            // a as stored and as the transpose of a [k, m] matrix; b likewise.
            let at: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
            let bt: Vec<f32> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
            let (av, bv) = (View::row_major(m, k), View::row_major(k, n));
            let want = rounded_product(&a, av, &b, bv);
            for (a, av, b, bv) in [
                (&a, av, &b, bv),
                (
                    &at,
                    View::row_major(k, m).t(),
                    &bt,
                    View::row_major(n, k).t(),
                ),
            ] {
                let got = product(a, av, b, bv);
                let diff = largest_difference(&got, &want);
                assert!(diff < 1e-4, "{m}×{k}·{k}×{n}: differs by {diff}");
            }
        }
        // The rounding itself: to nearest, ties to even, NaN kept.
        assert_eq!(bf16_bits(1.0), 0x3f80);
        assert_eq!(bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert!(f32::from_bits(u32::from(bf16_bits(f32::NAN)) << 16).is_nan());
    }
}
