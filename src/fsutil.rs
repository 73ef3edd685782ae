//! Small filesystem helpers: atomic writes that replace only regular files and clean up after a
//! crash.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Writes `bytes` to `path` atomically and durably: a temporary file in the same directory,
/// synced, renamed over `path`, then the directory synced.
///
/// A symbolic link is followed on purpose (a settings file kept elsewhere stays a link, and its
/// target is replaced); anything else that is not a regular file (a directory, a FIFO, a device,
/// a socket, a link to nothing) is refused and left as it is. Temporary files that a killed
/// writer left beside `path` are removed first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// [`write_atomic`], with the contents written by `write` as they are made (bounded memory).
pub fn write_atomic_with(
    path: &Path,
    write_contents: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    commit(vec![Staged::write(path, write_contents)?])
}

/// Writes several files as one: every one is written and synced beside its destination before
/// any is renamed into place, so a failure or a kill while writing leaves all of the old ones.
/// (Only a kill in the microseconds of the renames, done in the order given, mixes old and new.)
pub fn write_atomic_all(files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    let staged = files
        .iter()
        .map(|(path, bytes)| Staged::write(path, |f| f.write_all(bytes)))
        .collect::<Result<Vec<_>>>()?;
    commit(staged)
}

/// Renames the staged files into place in order, then makes the renames durable: the
/// directories are synced after all the renames, which keeps those back to back.
fn commit(mut staged: Vec<Staged>) -> Result<()> {
    for file in &mut staged {
        std::fs::rename(&file.tmp, &file.path)
            .with_context(|| format!("cannot write {}", file.path.display()))?;
        file.committed = true;
    }
    // A rename is durable only once the directory's entry is on disk too (POSIX); a power cut
    // would otherwise lose the new file. Windows has no directory handle to sync.
    #[cfg(unix)]
    {
        let mut dirs: Vec<&Path> = staged.iter().map(|f| parent_dir(&f.path)).collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("cannot sync {}", dir.display()))?;
        }
    }
    Ok(())
}

/// A file written and synced under a temporary name beside its destination, not yet in place;
/// dropped uncommitted, it is removed.
struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl Staged {
    fn write(
        path: &Path,
        write_contents: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<Self> {
        let path = writable_target(path)?;
        let staged = Self {
            tmp: temporary_beside(&path)?,
            path,
            committed: false,
        };
        let write = || -> std::io::Result<()> {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&staged.tmp)?);
            write_contents(&mut f)?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()
        };
        write().with_context(|| format!("cannot write {}", staged.path.display()))?;
        Ok(staged)
    }
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The regular file that writing to `path` replaces: `path`, or the file a link at `path` leads
/// to. Errors name what is there instead.
fn writable_target(path: &Path) -> Result<PathBuf> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
    };
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(path.to_path_buf());
    }
    if kind.is_symlink() {
        let target = std::fs::read_link(path).unwrap_or_default();
        return match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => Ok(std::fs::canonicalize(path)?),
            Ok(meta) => bail!(
                "{} links to {}, which is {}; not replaced",
                path.display(),
                target.display(),
                describe(&meta.file_type())
            ),
            // A link to a file that does not exist yet: write the file where the link points.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                writable_target(&parent_dir(path).join(&target))
            }
            Err(_) => bail!(
                "{} is a symbolic link to {}, which cannot be reached; not replaced",
                path.display(),
                target.display()
            ),
        };
    }
    bail!(
        "{} is {}, not a regular file; ltm writes only regular files and left it as it is",
        path.display(),
        describe(&kind)
    )
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

fn temporary_name(name: &OsStr, pid: u32) -> String {
    format!(".{}.{pid}.tmp", name.to_string_lossy())
}

/// This process's temporary name for a file or directory that will be renamed to `path`, in the
/// same directory; what killed writers left under such names for `path` is removed first.
pub fn temporary_beside(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let dir = parent_dir(path);
    remove_stale_temporaries(dir, Some(name));
    Ok(dir.join(temporary_name(name, std::process::id())))
}

/// The writer's process id in a temporary file's name, when it is one of ours.
fn temporary_owner(file: &str) -> Option<u32> {
    let stem = file.strip_prefix('.')?.strip_suffix(".tmp")?;
    stem.rsplit_once('.')?.1.parse().ok()
}

/// Removes from `dir` the temporary files (for the file `name`, or for any file) of writers that
/// are no longer running: what a kill during a write leaves behind. Returns how many it removed.
pub fn remove_stale_temporaries(dir: &Path, name: Option<&OsStr>) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let prefix = name.map(|n| format!(".{}.", n.to_string_lossy()));
    entries
        .flatten()
        .filter(|entry| {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            prefix.as_ref().is_none_or(|p| file.starts_with(p.as_str()))
                && temporary_owner(&file).is_some_and(|pid| !process_is_running(pid))
        })
        .filter(|entry| match entry.file_type() {
            // A directory filled before its rename into place (`ltm convert`'s).
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(entry.path()).is_ok(),
            Ok(t) if t.is_file() => std::fs::remove_file(entry.path()).is_ok(),
            _ => false,
        })
        .count()
}

fn process_is_running(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        alive || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        true // No cheap check: keep the file.
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::fs;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_link_is_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (real, link) = (dir.path().join("real.toml"), dir.path().join("link.toml"));
        fs::write(&real, "old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
        // A link to a file not made yet makes it.
        let (later, link2) = (dir.path().join("later.toml"), dir.path().join("link2.toml"));
        std::os::unix::fs::symlink(&later, &link2).unwrap();
        write_atomic(&link2, b"made").unwrap();
        assert_eq!(fs::read_to_string(&later).unwrap(), "made");
        assert_eq!(
            names(dir.path()),
            ["later.toml", "link.toml", "link2.toml", "real.toml"]
        );
    }

    #[test]
    fn special_files_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = write_atomic(&fifo, b"x").unwrap_err().to_string();
        assert!(err.contains("a FIFO") && err.contains("pipe"), "{err}");
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

        let err = write_atomic(Path::new("/dev/full"), b"x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a device"), "{err}");
        assert!(
            fs::symlink_metadata("/dev/full")
                .unwrap()
                .file_type()
                .is_char_device()
        );

        let err = write_atomic(dir.path(), b"x").unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");

        let link = dir.path().join("to-pipe");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        let err = write_atomic(&link, b"x").unwrap_err().to_string();
        assert!(err.contains("links to") && err.contains("a FIFO"), "{err}");
        assert_eq!(names(dir.path()), ["pipe", "to-pipe"]);
    }

    #[test]
    fn a_dead_writers_temporary_is_removed_a_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        // A child that has exited: its process id is free (until reused).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(temporary_name(OsStr::new("s.json"), dead));
        let live = dir.path().join(temporary_name(OsStr::new("s.json"), 1));
        let other = dir.path().join(temporary_name(OsStr::new("t.json"), dead));
        for f in [&stale, &live, &other] {
            fs::write(f, "partial").unwrap();
        }
        write_atomic(&path, b"whole").unwrap();
        assert!(!stale.exists(), "the dead writer's file is removed");
        assert!(live.exists() && other.exists());
        assert_eq!(remove_stale_temporaries(dir.path(), None), 1);
        assert!(!other.exists() && live.exists());
        assert_eq!(temporary_owner(".a.b.json.123.tmp"), Some(123));
        assert_eq!(temporary_owner("a.json"), None);
    }
}
