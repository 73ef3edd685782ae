//! Small filesystem helpers: bounded reads of regular files, and atomic writes that replace only
//! regular files and clean up after a crash.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The most a configuration, a model card, settings, a theme or a training config may hold.
pub const SMALL_FILE: u64 = 8 << 20;
/// The most a tokenizer or a saved session may hold.
pub const MEDIUM_FILE: u64 = 256 << 20;
/// The most a data set of problems or text may hold.
pub const DATA_FILE: u64 = 4 << 30;

/// Reads the whole of `path`, which must be a regular file (or a link to one) of at most `limit`
/// bytes. Anything else is refused before it is read: a FIFO would block forever, `/dev/zero`
/// never ends, and a file far larger than its kind ever is would only exhaust the memory.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let shown = path.display();
    let len = regular_file_len(path)?;
    if len > limit {
        bail!(
            "{shown}: {} is more than this file may hold ({})",
            human_bytes(len),
            human_bytes(limit)
        );
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {shown}"))?;
    // It may have grown since it was measured.
    if bytes.len() as u64 > limit {
        bail!(
            "{shown}: grew beyond {} while it was read",
            human_bytes(limit)
        );
    }
    Ok(bytes)
}

/// [`read_limited`] for UTF-8 text.
pub fn read_text_limited(path: &Path, limit: u64) -> Result<String> {
    String::from_utf8(read_limited(path, limit)?)
        .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))
}

/// The size of `path` if it is a regular file, following links; an error naming what it is
/// otherwise.
pub fn regular_file_len(path: &Path) -> Result<u64> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        bail!("{}: a directory, not a file", path.display());
    }
    if !meta.is_file() {
        bail!(
            "{}: not a regular file (a FIFO, a device or a socket)",
            path.display()
        );
    }
    Ok(meta.len())
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{n} bytes"),
    }
}

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

/// Writes several files as one: every one is written and synced beside its destination, then a
/// journal naming them is put in place before any is renamed, and removed after. A failure
/// while writing leaves all of the old files; a kill during the renames leaves the journal, and
/// the next reader or writer of the directory ([`finish_interrupted_writes`]) finishes them, so
/// no one sees old and new files mixed.
pub fn write_atomic_all(files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    let Some((first, _)) = files.first() else {
        return Ok(());
    };
    let dir = parent_dir(first).to_path_buf();
    let staged = files
        .iter()
        .map(|(path, bytes)| Staged::write(path, |f| f.write_all(bytes)))
        .collect::<Result<Vec<_>>>()?;
    let renames: Vec<_> = staged
        .iter()
        .map(|f| (f.tmp.as_path(), f.path.as_path()))
        .collect();
    let journal = Journal::write(&dir, std::process::id(), &renames)?;
    commit(staged)?;
    std::fs::remove_file(&journal).with_context(|| format!("cannot remove {}", journal.display()))
}

/// Renames the staged files into place in order, then makes the renames durable: the
/// directories are synced after all the renames, which keeps those back to back.
fn commit(mut staged: Vec<Staged>) -> Result<()> {
    for file in &mut staged {
        std::fs::rename(&file.tmp, &file.path)
            .with_context(|| format!("cannot write {}", file.path.display()))?;
        file.committed = true;
    }
    sync_dirs(staged.iter().map(|f| parent_dir(&f.path)))
}

/// Makes the entries renamed into `dirs` durable, each directory once: a rename is on disk only
/// once its directory is too (POSIX), or a power cut loses it. Windows has no directory handle
/// to sync.
fn sync_dirs<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    let mut dirs: Vec<&Path> = dirs.into_iter().collect();
    dirs.sort();
    dirs.dedup();
    #[cfg(unix)]
    for dir in dirs {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    #[cfg(not(unix))]
    let _ = dirs;
    Ok(())
}

/// The renames that make a set of staged files current, written down before the first: its
/// presence says that every staged file is whole, and which of them still await their rename.
/// A file in the journal's directory is named by its bare name (the directory may move), any
/// other by its absolute path.
struct Journal;

impl Journal {
    const SUFFIX: &str = ".journal";

    fn name(pid: u32) -> String {
        format!(".commit.{pid}{}", Self::SUFFIX)
    }

    /// The process id of the writer whose journal `file` is, when it is one.
    fn owner(file: &str) -> Option<u32> {
        file.strip_prefix(".commit.")?
            .strip_suffix(Self::SUFFIX)?
            .parse()
            .ok()
    }

    /// How the journal in `dir` names `path`.
    fn entry(dir: &Path, path: &Path) -> Result<PathBuf> {
        Ok(if parent_dir(path) == dir {
            PathBuf::from(path.file_name().context("not a file path")?)
        } else {
            std::path::absolute(path)?
        })
    }

    /// Puts the journal of writer `pid`'s `renames` (temporary, destination) into `dir`,
    /// durably: before any of the renames it lists.
    fn write(dir: &Path, pid: u32, renames: &[(&Path, &Path)]) -> Result<PathBuf> {
        let entries = renames
            .iter()
            .map(|(tmp, dest)| Ok((Self::entry(dir, tmp)?, Self::entry(dir, dest)?)))
            .collect::<Result<Vec<_>>>()?;
        let path = dir.join(Self::name(pid));
        let bytes = serde_json::to_vec(&entries)?;
        commit(vec![Staged::write(&path, |f| f.write_all(&bytes))?])?;
        Ok(path)
    }

    /// Does the renames left in the journal at `path`, then removes it.
    fn finish(path: &Path) -> Result<()> {
        let dir = parent_dir(path);
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let renames: Vec<(PathBuf, PathBuf)> = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a journal of renames", path.display()))?;
        let mut renamed = Vec::new();
        for (tmp, dest) in renames {
            let (tmp, dest) = (dir.join(tmp), dir.join(dest));
            // A staged file no longer there was renamed before the interruption.
            if tmp.exists() {
                std::fs::rename(&tmp, &dest)
                    .with_context(|| format!("cannot write {}", dest.display()))?;
                renamed.push(dest);
            }
        }
        sync_dirs(renamed.iter().map(|d| parent_dir(d)))?;
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))
    }
}

/// Finishes the writes of several files as one ([`write_atomic_all`]) that a killed writer left
/// half done in `dir`: afterwards each set of files is wholly new. Readers of a directory that
/// such writes fill call this first.
pub fn finish_interrupted_writes(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if Journal::owner(&name.to_string_lossy()).is_some_and(|pid| !process_is_running(pid)) {
            Journal::finish(&entry.path()).with_context(|| {
                format!(
                    "{}: a save into it was interrupted and cannot be finished",
                    dir.display()
                )
            })?;
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
    remove_stale_temporaries(dir, Some(name))?;
    Ok(dir.join(temporary_name(name, std::process::id())))
}

/// The writer's process id in a temporary file's name, when it is one of ours.
fn temporary_owner(file: &str) -> Option<u32> {
    let stem = file.strip_prefix('.')?.strip_suffix(".tmp")?;
    stem.rsplit_once('.')?.1.parse().ok()
}

/// Removes from `dir` the temporary files (for the file `name`, or for any file) of writers that
/// are no longer running: what a kill during a write leaves behind. Returns how many it removed.
/// Staged files that an interrupted journal still names are renamed into place first; when that
/// fails, all are kept and the error says why (a writer must not go on: finishing the journal
/// later would put its older files over the new one).
pub fn remove_stale_temporaries(dir: &Path, name: Option<&OsStr>) -> Result<usize> {
    finish_interrupted_writes(dir)?;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let prefix = name.map(|n| format!(".{}.", n.to_string_lossy()));
    Ok(entries
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
        .count())
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
    fn bounded_reads_refuse_fifos_devices_directories_and_oversized_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.json");
        fs::write(&file, "{}").unwrap();
        assert_eq!(read_text_limited(&file, 2).unwrap(), "{}");
        let big = read_limited(&file, 1).unwrap_err().to_string();
        assert!(big.contains("more than this file may hold"), "{big}");
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for (path, says) in [
            (Path::new("/dev/zero"), "not a regular file"),
            (link.as_path(), "not a regular file"),
            (fifo.as_path(), "not a regular file"),
            (dir.path(), "a directory"),
            (&dir.path().join("missing"), "cannot read"),
        ] {
            let err = read_limited(path, SMALL_FILE).unwrap_err().to_string();
            assert!(err.contains(says), "{}: {err}", path.display());
        }
        fs::write(&file, [0xff, 0xfe]).unwrap();
        let err = read_text_limited(&file, 9).unwrap_err().to_string();
        assert!(err.contains("not UTF-8"), "{err}");
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

    /// A writer of `a`, `b` and `c` as one, killed after renaming `a` into place: what it left in
    /// `dir` (the old `b` and `c`, and the new ones staged), under writer `pid`'s names.
    fn interrupted_in_renames(dir: &Path, pid: u32) {
        let staged: Vec<_> = ["a", "b", "c"]
            .map(|name| {
                (
                    dir.join(temporary_name(OsStr::new(name), pid)),
                    dir.join(name),
                )
            })
            .into();
        for (tmp, dest) in &staged {
            fs::write(dest, "old").unwrap();
            fs::write(tmp, "new").unwrap();
        }
        let renames: Vec<_> = staged
            .iter()
            .map(|(t, d)| (t.as_path(), d.as_path()))
            .collect();
        Journal::write(dir, pid, &renames).unwrap();
        fs::rename(&staged[0].0, &staged[0].1).unwrap();
    }

    fn contents(dir: &Path) -> Vec<String> {
        ["a", "b", "c"]
            .map(|n| fs::read_to_string(dir.join(n)).unwrap())
            .into()
    }

    #[test]
    fn writes_as_one_interrupted_in_their_renames_are_finished_by_the_next_reader() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dead_process_id();
        interrupted_in_renames(dir.path(), dead);
        assert_eq!(contents(dir.path()), ["new", "old", "old"]);
        finish_interrupted_writes(dir.path()).unwrap();
        assert_eq!(contents(dir.path()), ["new", "new", "new"]);
        assert_eq!(
            names(dir.path()),
            ["a", "b", "c"],
            "journal and temporaries gone"
        );

        // The next writer of any file there finishes them too, instead of removing the new files.
        let dir = tempfile::tempdir().unwrap();
        interrupted_in_renames(dir.path(), dead);
        write_atomic(&dir.path().join("d"), b"other").unwrap();
        assert_eq!(contents(dir.path()), ["new", "new", "new"]);
        assert_eq!(names(dir.path()), ["a", "b", "c", "d"]);

        // A live writer's renames are its own to finish.
        let dir = tempfile::tempdir().unwrap();
        interrupted_in_renames(dir.path(), 1);
        finish_interrupted_writes(dir.path()).unwrap();
        assert_eq!(contents(dir.path()), ["new", "old", "old"]);
    }

    #[test]
    fn writes_as_one_leave_only_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<_> = ["a", "b", "c"]
            .map(|n| (dir.path().join(n), b"new".to_vec()))
            .into();
        write_atomic_all(&files).unwrap();
        assert_eq!(contents(dir.path()), ["new", "new", "new"]);
        assert_eq!(names(dir.path()), ["a", "b", "c"]);
    }

    /// The id of a process that has exited (free until reused).
    fn dead_process_id() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        dead
    }

    #[test]
    fn a_dead_writers_temporary_is_removed_a_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let dead = dead_process_id();
        let stale = dir.path().join(temporary_name(OsStr::new("s.json"), dead));
        let live = dir.path().join(temporary_name(OsStr::new("s.json"), 1));
        let other = dir.path().join(temporary_name(OsStr::new("t.json"), dead));
        for f in [&stale, &live, &other] {
            fs::write(f, "partial").unwrap();
        }
        write_atomic(&path, b"whole").unwrap();
        assert!(!stale.exists(), "the dead writer's file is removed");
        assert!(live.exists() && other.exists());
        assert_eq!(remove_stale_temporaries(dir.path(), None).unwrap(), 1);
        assert!(!other.exists() && live.exists());
        assert_eq!(temporary_owner(".a.b.json.123.tmp"), Some(123));
        assert_eq!(temporary_owner("a.json"), None);
    }
}
