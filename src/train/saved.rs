//! A run's output directory: what a save holds (weights, optimizer moments, state), written as
//! one, and read back for `--resume` only when its files are of one iteration.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};

use super::TrainState;
use crate::fsutil::{finish_interrupted_writes, write_atomic_all};
use crate::model::Checkpoint;
use crate::model::checkpoint::WEIGHTS_FILE;

const STATE_FILE: &str = "train_state.json";
const OPTIM_FILE: &str = "optimizer.safetensors";
/// The iteration a checkpoint's weights and moments are from, in their safetensors metadata.
const ITER_KEY: &str = "iter";

/// The iteration stamped in a checkpoint file, if it has one (checkpoints before the stamp do not).
fn stamped_iter(file: &Path) -> Result<Option<usize>> {
    let bytes = crate::fsutil::read_limited(file, crate::fsutil::DATA_FILE)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{}: not a safetensors file", file.display()))?;
    Ok(header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(ITER_KEY))
        .and_then(|v| v.parse().ok()))
}

/// Whether `dir` holds a training run (its state file).
pub fn holds_run(dir: &Path) -> bool {
    dir.join(STATE_FILE).exists()
}

/// Makes `dir` hold no run to resume (its state file removed), for a new run in its place.
pub fn forget_run(dir: &Path) -> Result<()> {
    match std::fs::remove_file(dir.join(STATE_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot replace the run in {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Refuses a checkpoint whose files are from different iterations (a save cut short).
fn check_consistent(out: &Path, state: &TrainState) -> Result<()> {
    for file in [out.join(WEIGHTS_FILE), out.join(OPTIM_FILE)] {
        if let Some(iter) = stamped_iter(&file)?.filter(|&i| i != state.iter) {
            bail!(
                "{}: the checkpoint's files are from different iterations ({} is from {iter}, {STATE_FILE} from {}): its last save was cut short; train from an earlier copy or start again",
                out.display(),
                file.display(),
                state.iter
            );
        }
    }
    Ok(())
}

/// The training state saved in a run's output directory.
pub fn read_state(out: &Path) -> Result<TrainState> {
    finish_interrupted_writes(out)?;
    let path = out.join(STATE_FILE);
    let text =
        crate::fsutil::read_text_limited(&path, crate::fsutil::SMALL_FILE).with_context(|| {
            format!(
                "{}: no training state (not an `ltm train` output directory?)",
                out.display()
            )
        })?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a training state", path.display()))
}

/// The run saved in `out`: weights, state and optimizer moments, refused when its files are
/// not of one iteration.
pub(super) fn read(
    out: &Path,
    device: &Device,
) -> Result<(Checkpoint, TrainState, HashMap<String, Tensor>)> {
    let ckpt =
        Checkpoint::load(out).with_context(|| format!("cannot resume from {}", out.display()))?;
    let state = read_state(out)?;
    check_consistent(out, &state)?;
    let optim = out.join(OPTIM_FILE);
    crate::fsutil::regular_file_len(&optim)?;
    let moments = candle_core::safetensors::load(&optim, device)
        .with_context(|| format!("{}: cannot read the optimizer state", optim.display()))?;
    Ok((ckpt, state, moments))
}

/// Saves weights, optimizer moments and state into `out`, as one (`write_atomic_all`): a kill
/// while saving leaves the previous checkpoint whole, or the new one once the next reader has
/// finished the save. The weights and moments carry their iteration, which a resume checks
/// against the state's. With `keep`, the weights are also kept as `model-iterN.safetensors`,
/// which later saves leave in place.
pub(super) fn write(
    out: &Path,
    weights: &Checkpoint,
    moments: &HashMap<String, Tensor>,
    state: &TrainState,
    keep: bool,
) -> Result<()> {
    let stamp = || {
        Some(HashMap::from([(
            ITER_KEY.to_string(),
            state.iter.to_string(),
        )]))
    };
    let mut files = weights.files(out, stamp())?;
    if keep {
        let kept = files.iter().find(|(path, _)| path.ends_with(WEIGHTS_FILE));
        let bytes = kept.map(|(_, b)| b.clone()).context("no weights to keep")?;
        files.push((
            out.join(format!("model-iter{}.safetensors", state.iter)),
            bytes,
        ));
    }
    files.push((
        out.join(OPTIM_FILE),
        safetensors::serialize(moments.iter().map(|(k, v)| (k.as_str(), v)), stamp())?,
    ));
    files.push((
        out.join(STATE_FILE),
        serde_json::to_string_pretty(state)?.into_bytes(),
    ));
    write_atomic_all(&files)
}
