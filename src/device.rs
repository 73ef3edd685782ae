//! Choosing where the model runs.

use anyhow::{Result, bail};
use candle_core::{DType, Device};

/// `auto` picks CUDA, then Metal, then the CPU.
pub fn select(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" if candle_core::utils::cuda_is_available() => Ok(Device::new_cuda(0)?),
        "metal" if candle_core::utils::metal_is_available() => Ok(Device::new_metal(0)?),
        "cuda" | "metal" => bail!(
            "device `{name}` is not available in this build (rebuild with `--features {name}`) or on this machine"
        ),
        "auto" if candle_core::utils::cuda_is_available() => Ok(Device::new_cuda(0)?),
        "auto" if candle_core::utils::metal_is_available() => Ok(Device::new_metal(0)?),
        "auto" => Ok(Device::Cpu),
        other => bail!("unknown device `{other}` (expected auto, cpu, cuda or metal)"),
    }
}

/// Weights in f32 on the CPU, bf16 on accelerators (thoughts and losses stay f32).
pub fn weight_dtype(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::BF16
    }
}

pub fn describe(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}

/// Keeps freed memory for reuse instead of returning it to the kernel: thinking allocates and
/// frees tens of megabytes per step, and glibc's default (mmap and munmap for every large block)
/// turned a third of a step into page faults.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; it is called before any threads start.
    unsafe {
        // No mmap for large blocks (the logits alone are 51 MB, above glibc's largest mmap
        // threshold), and no trimming: the heap keeps what a step freed for the next step.
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
