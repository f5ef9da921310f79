//! Writing below a directory without following a symbolic link out of it.
//!
//! A restore opens its target directory once, then every directory below it one name at a
//! time, relative to its parent, with `O_NOFOLLOW | O_DIRECTORY`; files and links are made,
//! renamed and removed relative to an open directory, by one name. So a symbolic link in the
//! way (planted in the workspace before, restored earlier from the same artifact, or swapped
//! in by a process racing the restore) is never followed. Plain POSIX `*at` calls rather than
//! Linux's `openat2(RESOLVE_BENEATH)`: the same on every Unix, and a restore opens each
//! directory once anyway (see [`Dirs`]).

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::StoreError;

const DIRECTORY: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// What is at a name in a directory, not following a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    Nothing,
    Directory,
    Link,
    Other,
}

/// The directory `base`, which the caller chose (following links in it is theirs to allow);
/// made when missing.
pub(super) fn open_base(base: &Path) -> Result<OwnedFd, StoreError> {
    std::fs::create_dir_all(base).map_err(|source| StoreError::Write {
        path: base.to_path_buf(),
        source,
    })?;
    nix::fcntl::open(base, DIRECTORY.difference(OFlag::O_NOFOLLOW), Mode::empty()).map_err(
        |errno| StoreError::Write {
            path: base.to_path_buf(),
            source: errno.into(),
        },
    )
}

/// Directories below a root, kept open along the path last asked for: a restore goes through
/// a tree in order, so it opens each directory once, and holds at most one descriptor per
/// level.
pub(super) struct Dirs<'a> {
    root: BorrowedFd<'a>,
    base: &'a Path,
    /// `(relative path, descriptor)`, each a child of the one before, the first of the root.
    open: Vec<(String, OwnedFd)>,
}

impl<'a> Dirs<'a> {
    pub(super) fn new(root: BorrowedFd<'a>, base: &'a Path) -> Self {
        Dirs {
            root,
            base,
            open: Vec::new(),
        }
    }

    /// The directory at `relative` (`/`-separated plain names, `""` for the root), made when
    /// missing if `create`. A link or a file in the way is an error.
    pub(super) fn open(
        &mut self,
        relative: &str,
        create: bool,
    ) -> Result<BorrowedFd<'_>, StoreError> {
        while let Some((path, _)) = self.open.last() {
            if within(relative, path) {
                break;
            }
            self.open.pop();
        }
        let done = self.open.last().map_or(0, |(path, _)| path.len());
        for name in relative[done..].split('/').filter(|n| !n.is_empty()) {
            let (parent, path) = match self.open.last() {
                Some((path, fd)) => (fd.as_fd(), format!("{path}/{name}")),
                None => (self.root, name.to_string()),
            };
            let fd = open_dir(parent, name, create, &self.base.join(&path))?;
            self.open.push((path, fd));
        }
        Ok(self.open.last().map_or(self.root, |(_, fd)| fd.as_fd()))
    }

    /// `relative` as people see it.
    pub(super) fn shown(&self, relative: &str) -> PathBuf {
        self.base.join(relative)
    }
}

/// Whether `path` is `dir` or below it.
fn within(path: &str, dir: &str) -> bool {
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// Opens the directory `name` in `parent` without following a link; with `create`, makes it
/// when it is missing.
fn open_dir(
    parent: BorrowedFd<'_>,
    name: &str,
    create: bool,
    shown: &Path,
) -> Result<OwnedFd, StoreError> {
    match openat(parent, name, DIRECTORY, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) if create => {
            match mkdirat(parent, name, Mode::from_bits_truncate(0o777)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(write_error(shown, errno)),
            }
            openat(parent, name, DIRECTORY, Mode::empty())
                .map_err(|errno| refused(parent, name, shown, errno))
        }
        Err(errno) => Err(refused(parent, name, shown, errno)),
    }
}

/// Why `name` in `parent` could not be opened as a directory, in words.
fn refused(parent: BorrowedFd<'_>, name: &str, shown: &Path, errno: Errno) -> StoreError {
    match what_is(parent, name) {
        Ok(Found::Link) => StoreError::Link {
            path: shown.to_path_buf(),
        },
        Ok(Found::Other) => StoreError::NotADirectory {
            path: shown.to_path_buf(),
        },
        _ => write_error(shown, errno),
    }
}

/// What is at `name` in `parent`.
pub(super) fn what_is(parent: BorrowedFd<'_>, name: &str) -> Result<Found, Errno> {
    match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => {
            let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
            Ok(if kind == SFlag::S_IFDIR {
                Found::Directory
            } else if kind == SFlag::S_IFLNK {
                Found::Link
            } else {
                Found::Other
            })
        }
        Err(Errno::ENOENT) => Ok(Found::Nothing),
        Err(errno) => Err(errno),
    }
}

/// Makes sure a restored file or link can take the place of `name` in `parent`: a directory
/// there is in the way; a file or link there is replaced by the rename.
pub(super) fn make_room(
    parent: BorrowedFd<'_>,
    name: &str,
    shown: &Path,
) -> Result<(), StoreError> {
    match what_is(parent, name) {
        Ok(Found::Directory) => Err(StoreError::InTheWay {
            path: shown.to_path_buf(),
        }),
        Ok(_) => Ok(()),
        Err(errno) => Err(write_error(shown, errno)),
    }
}

/// Makes `name` in `parent` a directory: one there is kept, a file or link there (never
/// followed) is replaced. Returns whether the directory is new (made by this call).
pub(super) fn make_dir(
    parent: BorrowedFd<'_>,
    name: &str,
    shown: &Path,
) -> Result<bool, StoreError> {
    match what_is(parent, name).map_err(|errno| write_error(shown, errno))? {
        Found::Directory => return Ok(false),
        Found::Nothing => {}
        Found::Link | Found::Other => unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
            .map_err(|errno| write_error(shown, errno))?,
    }
    match mkdirat(parent, name, Mode::from_bits_truncate(0o777)) {
        Ok(()) => Ok(true),
        // Made meanwhile by another restore of the same path: not this one's.
        Err(Errno::EEXIST) if what_is(parent, name) == Ok(Found::Directory) => Ok(false),
        Err(errno) => Err(write_error(shown, errno)),
    }
}

pub(super) fn write_error(path: &Path, errno: Errno) -> StoreError {
    StoreError::Write {
        path: path.to_path_buf(),
        source: errno.into(),
    }
}
