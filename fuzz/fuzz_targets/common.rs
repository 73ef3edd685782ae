//! The loaders read files: each input is written to a scratch directory of this process's own.

#![allow(dead_code)] // each target uses its part

use std::path::PathBuf;

pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ltm-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `bytes` as the file `name` in the scratch directory.
pub fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Splits off a part whose length (little-endian u16) leads `data`.
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return (data, &[]);
    };
    rest.split_at(usize::from(u16::from_le_bytes(*len)).min(rest.len()))
}
