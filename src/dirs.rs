//! Where ltm keeps its files (settings, themes, sessions, installed models), and how it writes
//! them (atomically).

use std::fs;
use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic;

/// The configuration (settings, user themes) and data (sessions, models) directories.
#[derive(Debug, Clone, PartialEq)]
pub struct Dirs {
    pub config: PathBuf,
    pub data: PathBuf,
}

impl Dirs {
    /// `LTM_CONFIG_DIR` / `LTM_DATA_DIR` when set (tests, portable installs), else the platform's
    /// directories for `ltm`.
    pub fn resolve() -> anyhow::Result<Self> {
        let project = directories::ProjectDirs::from("", "", "ltm");
        let pick = |var: &str, fallback: Option<&Path>| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .or_else(|| fallback.map(Path::to_path_buf))
                .ok_or_else(|| anyhow::anyhow!("no home directory; set {var}"))
        };
        Ok(Self {
            config: pick("LTM_CONFIG_DIR", project.as_ref().map(|p| p.config_dir()))?,
            data: pick("LTM_DATA_DIR", project.as_ref().map(|p| p.data_dir()))?,
        })
    }

    pub fn settings_file(&self) -> PathBuf {
        self.config.join("settings.toml")
    }

    pub fn themes_dir(&self) -> PathBuf {
        self.config.join("themes")
    }

    pub fn sessions_dir(&self) -> PathBuf {
        self.data.join("sessions")
    }

    /// Models by name: the bundled model is installed here, and `--model NAME` looks here.
    pub fn models_dir(&self) -> PathBuf {
        self.data.join("models")
    }

    /// Removes what writers killed mid-write left in these directories (they are removed at the
    /// next write of the same file too).
    pub fn remove_stale_temporaries(&self) {
        for dir in [
            &self.config,
            &self.themes_dir(),
            &self.data,
            &self.sessions_dir(),
        ] {
            // Best effort at startup: a directory it cannot tidy is named by the next write there.
            let _ = crate::fsutil::remove_stale_temporaries(dir, None);
        }
    }
}

/// Write `bytes` to `path` atomically (readers see the old file or the new one), creating its
/// directory first.
pub fn save(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    write_atomic(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_creates_the_directory_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.json");
        save(&path, b"one").unwrap();
        save(&path, b"two").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        let err = save(&file.join("sessions/x.json"), b"x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&file.join("sessions").display().to_string()),
            "{err}"
        );
    }
}
