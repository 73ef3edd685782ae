//! Matrix products on slices through gemm, for the fused kernels that run many small products
//! inside their own parallel tasks.

/// A row-major view of `rows × cols` values of a slice with strides `(rs, cs)`.
#[derive(Clone, Copy)]
pub struct View {
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl View {
    pub fn row_major(rows: usize, cols: usize) -> Self {
        Self::strided(rows, cols, cols)
    }

    /// Row-major rows `rs` apart: a block of a wider matrix.
    pub fn strided(rows: usize, cols: usize, rs: usize) -> Self {
        Self {
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    /// The transpose, without moving a value.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// One past the largest index the view reads.
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// dst = a · b, or dst += a · b with `accumulate`; single-threaded (the caller's tasks are the
/// parallelism).
pub fn product(
    dst: &mut [f32],
    dv: View,
    accumulate: bool,
    a: &[f32],
    av: View,
    b: &[f32],
    bv: View,
) {
    assert!(av.cols == bv.rows && dv.rows == av.rows && dv.cols == bv.cols);
    assert!(dv.extent() <= dst.len() && av.extent() <= a.len() && bv.extent() <= b.len());
    // SAFETY: the asserts above keep every index the views describe inside the slices; dst is
    // borrowed mutably, so it overlaps neither a nor b.
    unsafe {
        gemm::gemm(
            dv.rows,
            dv.cols,
            av.cols,
            dst.as_mut_ptr(),
            dv.cs as isize,
            dv.rs as isize,
            accumulate,
            a.as_ptr(),
            av.cs as isize,
            av.rs as isize,
            b.as_ptr(),
            bv.cs as isize,
            bv.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
