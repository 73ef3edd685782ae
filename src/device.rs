//! Choosing where the model runs.

use anyhow::{Result, bail};
use candle_core::{DType, Device};

/// Where to run, as asked on the command line (`--device`, `LTM_DEVICE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceChoice {
    /// CUDA, then Metal, then the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
    Metal,
}

pub fn select(choice: DeviceChoice) -> Result<Device> {
    let cuda = candle_core::utils::cuda_is_available();
    let metal = candle_core::utils::metal_is_available();
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda if cuda => Ok(Device::new_cuda(0)?),
        DeviceChoice::Metal if metal => Ok(Device::new_metal(0)?),
        DeviceChoice::Cuda | DeviceChoice::Metal => {
            let name = format!("{choice:?}").to_lowercase();
            bail!(
                "device `{name}` is not available in this build (rebuild with `--features {name}`) or on this machine"
            )
        }
        DeviceChoice::Auto if cuda => Ok(Device::new_cuda(0)?),
        DeviceChoice::Auto if metal => Ok(Device::new_metal(0)?),
        DeviceChoice::Auto => Ok(Device::Cpu),
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
