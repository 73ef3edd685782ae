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

/// The weights that writing (one token per step) reads on the CPU (`--decode-weights`,
/// `LTM_DECODE_WEIGHTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DecodeWeights {
    /// The model's own: f32 on the CPU, the tokens the reference writes.
    #[default]
    Full,
    /// A bf16 copy: half the bytes per token, about twice as fast; a near tie between two
    /// tokens can go the other way. Thinking and prompts keep the full weights.
    Bf16,
}

impl DecodeWeights {
    pub fn dtype(self) -> Option<DType> {
        match self {
            Self::Full => None,
            Self::Bf16 => Some(DType::BF16),
        }
    }
}

pub fn select(choice: DeviceChoice) -> Result<Device> {
    if choice == DeviceChoice::Cpu {
        // Asks no driver: a GPU build runs on the CPU where the GPU's driver is broken.
        return Ok(Device::Cpu);
    }
    let available = (
        candle_core::utils::cuda_is_available(),
        candle_core::utils::metal_is_available(),
    );
    Ok(match resolve(choice, available)? {
        DeviceChoice::Cuda => Device::new_cuda(0)?,
        DeviceChoice::Metal => Device::new_metal(0)?,
        _ => Device::Cpu,
    })
}

/// The backend `choice` gets, given whether CUDA and Metal are available: never `Auto`.
fn resolve(choice: DeviceChoice, (cuda, metal): (bool, bool)) -> Result<DeviceChoice> {
    match choice {
        DeviceChoice::Cpu => Ok(DeviceChoice::Cpu),
        DeviceChoice::Cuda if cuda => Ok(DeviceChoice::Cuda),
        DeviceChoice::Metal if metal => Ok(DeviceChoice::Metal),
        DeviceChoice::Cuda | DeviceChoice::Metal => {
            let name = format!("{choice:?}").to_lowercase();
            bail!(
                "device `{name}` is not available in this build (rebuild with `--features {name}`) or on this machine"
            )
        }
        DeviceChoice::Auto if cuda => Ok(DeviceChoice::Cuda),
        DeviceChoice::Auto if metal => Ok(DeviceChoice::Metal),
        DeviceChoice::Auto => Ok(DeviceChoice::Cpu),
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

/// Process-wide settings for computing on the CPU; `main` calls this before any thread starts.
pub fn tune_process() {
    let default = |name: &str, value: &str| {
        if std::env::var_os(name).is_none() {
            // SAFETY: no other thread exists yet to read the environment concurrently.
            unsafe { std::env::set_var(name, value) };
        }
    };
    // candle runs elementwise ops on a pool of its own whose workers spin between ops, taking
    // the core from the compute threads (`threads`): with another program busy on one of two
    // cores, a thinking step took 1.3× as long. Those ops are a few percent of a step and run
    // as fast on the calling thread alone.
    default("CANDLE_NUM_THREADS", "1");
    // candle asks for the core count at every matmul and, unless RAYON_NUM_THREADS is set,
    // counts them by having the kernel format /proc/cpuinfo and parsing it: writing with the
    // large shape was 18 % faster once they were counted once.
    default(
        "RAYON_NUM_THREADS",
        &candle_core::utils::get_num_threads().to_string(),
    );
    // Keep freed memory for reuse instead of returning it to the kernel: thinking allocates and
    // frees tens of megabytes per step, and glibc's default (mmap and munmap for every large
    // block) turned a third of a step into page faults.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; it is called before any threads start.
    unsafe {
        // No mmap for large blocks (the logits alone are 51 MB, above glibc's largest mmap
        // threshold), and no trimming: the heap keeps what a step freed for the next step.
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        // One arena for every thread: the heaps of the other threads' arenas are given back
        // when they empty, whatever the trim threshold, and training's worker threads then
        // faulted in 15,000 fresh pages a second (a handful with one arena). Its blocks are
        // large and few, so one lock costs nothing measurable.
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    crate::threads::watch();
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceChoice::*;

    #[test]
    fn auto_prefers_cuda_then_metal_then_the_cpu() {
        let cases = [
            ((true, true), Cuda),
            ((true, false), Cuda),
            ((false, true), Metal),
            ((false, false), Cpu),
        ];
        for (available, want) in cases {
            assert_eq!(resolve(Auto, available).unwrap(), want, "{available:?}");
        }
    }

    #[test]
    fn an_explicit_choice_is_kept_or_refused_with_the_feature_to_build() {
        assert_eq!(resolve(Cpu, (true, true)).unwrap(), Cpu);
        assert_eq!(resolve(Cuda, (true, false)).unwrap(), Cuda);
        assert_eq!(resolve(Metal, (false, true)).unwrap(), Metal);
        let err = resolve(Cuda, (false, true)).unwrap_err().to_string();
        assert!(
            err.contains("`cuda`") && err.contains("--features cuda"),
            "{err}"
        );
        let err = resolve(Metal, (true, false)).unwrap_err().to_string();
        assert!(err.contains("--features metal"), "{err}");
    }

    #[test]
    fn the_cpu_keeps_f32_weights() -> Result<()> {
        let device = select(Cpu)?;
        assert!(device.is_cpu());
        assert_eq!(weight_dtype(&device), DType::F32);
        assert_eq!(describe(&device), "cpu");
        // This build and machine have no GPU: auto falls back to the CPU, an explicit GPU is refused.
        #[cfg(not(any(feature = "cuda", feature = "metal")))]
        {
            assert!(select(Auto)?.is_cpu());
            assert!(select(Cuda).is_err());
        }
        Ok(())
    }
}
