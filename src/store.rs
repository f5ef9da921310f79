//! The artifact store: files and directories kept by content in gzl's data directory, so
//! identical files are stored once across runs and repositories.
//!
//! Layout under `objects/`:
//! - `blobs/XX/REST`: a file's bytes, read-only, named by their BLAKE3 digest (hex);
//! - `trees/XX/REST`: a tree, the JSON manifest of one stored path (each entry's path below
//!   it, kind, mode, blob digest or link target), named by the digest of its bytes. A tree's
//!   digest names the whole stored path;
//! - `tmp/`: objects being written.
//!
//! Nothing is visible under its digest before its bytes are durable: objects are written to
//! `tmp/`, one `syncfs` flushes them all (cheaper than an fsync per file for many small
//! files), then blobs are renamed into place; a second `syncfs` makes those renames durable
//! before the trees that name them are renamed in turn. A crash leaves at worst files in
//! `tmp/`, which `gzl gc` removes.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use std::os::fd::{AsFd as _, BorrowedFd};

use nix::fcntl::OFlag;
use nix::unistd::{UnlinkatFlags, unlinkat};
use serde::{Deserialize, Serialize};

use crate::home::Home;

mod beneath;
mod relocate;

use relocate::Origin;

/// The version of the tree manifest format.
const TREE_VERSION: u32 = 1;

/// The trees this process read last, by path, newest last (see `Store::read_tree`).
static RECENT_TREES: Mutex<Vec<(PathBuf, std::sync::Arc<Tree>)>> = Mutex::new(Vec::new());

/// How many parsed trees [`RECENT_TREES`] keeps.
const RECENT_TREES_KEPT: usize = 4;

/// Read and write buffer of each worker.
const BUFFER: usize = 1 << 20;

/// A failure of the artifact store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has a name that is not UTF-8; gzl stores only UTF-8 paths", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{} is neither a file, a directory nor a symbolic link", path.display())]
    Special { path: PathBuf },
    #[error("object {digest} is missing from the store {}", store.display())]
    Missing { digest: String, store: PathBuf },
    #[error("object {} is damaged: {reason}", object.display())]
    Damaged { object: PathBuf, reason: String },
    #[error(
        "{} does not hold the bytes stored for {} (changed or cut short since it was stored); gzl removed it from the store, so the stage that stored it runs again in the next run",
        object.display(), file.display()
    )]
    Tampered { object: PathBuf, file: PathBuf },
    #[error("cannot restore {}: a directory is in the way", path.display())]
    InTheWay { path: PathBuf },
    #[error(
        "cannot restore through {}: it is a symbolic link, and gzl does not write through links (remove it, or restore elsewhere)",
        path.display()
    )]
    Link { path: PathBuf },
    #[error("cannot restore below {}: it is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("the stored directory holds no `{within}`")]
    NotInTree { digest: String, within: String },
    #[error(
        "`{file}` is a binary file that embeds {}, the workspace it was stored from; gzl cannot rewrite it for another workspace",
        origin.display()
    )]
    NotRelocatable { file: String, origin: PathBuf },
}

impl StoreError {
    /// Whether what is in the way of a restore is the user's to move (a link, a file or a
    /// directory where the artifact goes), as opposed to the store or the disk failing.
    pub fn is_in_the_way(&self) -> bool {
        matches!(
            self,
            StoreError::InTheWay { .. }
                | StoreError::Link { .. }
                | StoreError::NotADirectory { .. }
        )
    }
}

/// The content-addressed store at `objects/` under gzl's data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A stored path: the digest of its tree, its bytes and its files (symbolic links count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub digest: String,
    pub size: u64,
    pub files: u64,
}

/// The manifest of a stored path.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tree {
    v: u32,
    /// The workspace the files were stored from, when some of them name it (`refers`);
    /// absent otherwise (such a tree restores anywhere as it is), and in trees stored before
    /// gzl looked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<OriginPath>,
    /// Sorted by path; the first entry, path `""`, is the stored path itself.
    entries: Vec<Entry>,
}

/// The absolute path of a workspace, and its canonical form when that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OriginPath {
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    canonical: Option<String>,
}

impl OriginPath {
    fn forms(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_str()).chain(self.canonical.as_deref())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    path: String,
    #[serde(flatten)]
    kind: Kind,
    /// How the entry names the tree's origin, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refers: Option<Refers>,
}

/// How a stored entry names the workspace it was stored from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Refers {
    /// A text file holding the path: rewritten when restored elsewhere.
    Text,
    /// A symbolic link to a path in the workspace: re-pointed.
    Link,
    /// A binary file embedding the path (a NUL in its first 8000 bytes): it cannot be
    /// rewritten, save CPython byte code beside its source, which is left out.
    Binary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Kind {
    File {
        mode: u32,
        size: u64,
        digest: String,
    },
    Dir {
        mode: u32,
    },
    Symlink {
        target: String,
    },
}

/// The permission bits a restore sets: never setuid, setgid or sticky, whatever a tree says.
const PERMISSIONS: u32 = 0o777;

/// Files restored in a row from one directory by one thread: at most this many, and more
/// only while they hold fewer than `BATCH_BYTES`.
const BATCH: usize = 64;
const BATCH_BYTES: u64 = 4 << 20;

impl Tree {
    /// Refuses a tree `put` could not have written: one whose restore could leave its
    /// place. The first entry is the stored path itself (`""`); every other names a path below
    /// it made of plain names (no `..`, `.`, empty names or leading `/`), once, below a
    /// directory listed before it (so never below a link or a file); blobs are named by
    /// digests.
    fn check(&self) -> Result<(), String> {
        if self.v != TREE_VERSION {
            return Err(format!("tree version {} is not {TREE_VERSION}", self.v));
        }
        let Some((first, rest)) = self.entries.split_first() else {
            return Err("it lists nothing".into());
        };
        if !first.path.is_empty() {
            return Err(format!(
                "it starts with `{}`, not the stored path",
                first.path
            ));
        }
        let mut dirs: HashSet<&str> = HashSet::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for entry in &self.entries {
            let path = entry.path.as_str();
            if !path.is_empty() {
                if !plain(path) {
                    return Err(format!(
                        "entry `{path}` is not a plain relative path (`..`, `.`, an empty name or a leading `/`)"
                    ));
                }
                if !seen.insert(path) {
                    return Err(format!("entry `{path}` is listed twice"));
                }
                let parent = parent_of(path);
                if !dirs.contains(parent) {
                    return Err(format!(
                        "entry `{path}` is not below a directory listed before it (a link or a file cannot hold entries)"
                    ));
                }
            } else if !std::ptr::eq(entry, first) {
                return Err("the stored path is listed twice".into());
            }
            match &entry.kind {
                Kind::Dir { .. } => {
                    dirs.insert(path);
                }
                Kind::File { digest, .. } if !is_digest(digest) => {
                    return Err(format!("entry `{path}` names no blob digest"));
                }
                Kind::File { .. } | Kind::Symlink { .. } => {}
            }
        }
        if !matches!(first.kind, Kind::Dir { .. }) && !rest.is_empty() {
            return Err("a stored file or link holds entries".into());
        }
        if let Some(origin) = &self.origin
            && origin
                .forms()
                .any(|form| relocate::workspace_path(Path::new(form)) != Some(form))
        {
            return Err(format!(
                "its origin `{}` is not an absolute path",
                origin.path
            ));
        }
        for entry in &self.entries {
            let fits = match (entry.refers, &entry.kind) {
                (None, _) => true,
                (Some(_), _) if self.origin.is_none() => false,
                (Some(Refers::Link), Kind::Symlink { .. }) => true,
                (Some(Refers::Text | Refers::Binary), Kind::File { .. }) => true,
                (Some(_), _) => false,
            };
            if !fits {
                return Err(format!(
                    "entry `{}` names an origin the tree does not record, or is not the kind that can",
                    entry.path
                ));
            }
        }
        Ok(())
    }
}

/// How a restore moves a tree to another workspace: the workspace it names, where to, and
/// which byte code files it leaves out.
struct Relocation {
    origin: Origin,
    root: String,
    dropped: HashSet<String>,
}

/// The entries of `tree` at `within` (all without it), named relative to it as if it had
/// been stored on its own, and the tree's origin.
fn part(
    tree: Tree,
    digest: &str,
    within: Option<&str>,
) -> Result<(Vec<Entry>, Option<OriginPath>), StoreError> {
    let Tree {
        origin,
        mut entries,
        ..
    } = tree;
    if let Some(within) = within {
        entries.retain_mut(|entry| {
            if entry.path == within {
                entry.path.clear();
                true
            } else if let Some(below) = entry
                .path
                .strip_prefix(within)
                .and_then(|rest| rest.strip_prefix('/'))
            {
                entry.path = below.to_string();
                true
            } else {
                false
            }
        });
        if entries.is_empty() {
            return Err(StoreError::NotInTree {
                digest: digest.to_string(),
                within: within.to_string(),
            });
        }
    }
    Ok((entries, origin))
}

/// How `entries` (a part of a tree stored from `origin`, at `within`) restore into the
/// workspace at `root`: `None` when as stored (no root given, no origin recorded, the same
/// workspace, or nothing in the part names it); [`StoreError::NotRelocatable`] for the first
/// binary file embedding the origin that is not byte code beside its source.
fn relocation_of(
    origin: Option<&OriginPath>,
    entries: &[Entry],
    within: Option<&str>,
    root: Option<&Path>,
) -> Result<Option<Relocation>, StoreError> {
    let (Some(origin), Some(root)) = (origin, root) else {
        return Ok(None);
    };
    if !entries.iter().any(|e| e.refers.is_some()) {
        return Ok(None);
    }
    let root = std::path::absolute(root).map_err(read_error(root))?;
    let Some(text) = root.to_str() else {
        return Err(StoreError::NotUtf8 { path: root });
    };
    let text = text.trim_end_matches('/');
    let same = |path: &str| origin.forms().any(|form| form == path);
    if same(text)
        || std::fs::canonicalize(&root)
            .ok()
            .is_some_and(|c| c.to_str().is_some_and(same))
    {
        return Ok(None);
    }
    let mut files: Option<HashSet<&str>> = None;
    let mut dropped = HashSet::new();
    for entry in entries {
        if entry.refers != Some(Refers::Binary) {
            continue;
        }
        let files = files.get_or_insert_with(|| {
            entries
                .iter()
                .filter(|e| matches!(e.kind, Kind::File { .. }))
                .map(|e| e.path.as_str())
                .collect()
        });
        if relocate::bytecode_with_source(&entry.path, |source| files.contains(source)) {
            dropped.insert(entry.path.clone());
        } else {
            let file = match within {
                Some(within) if entry.path.is_empty() => within.to_string(),
                Some(within) => format!("{within}/{}", entry.path),
                None => entry.path.clone(),
            };
            return Err(StoreError::NotRelocatable {
                file,
                origin: PathBuf::from(&origin.path),
            });
        }
    }
    Ok(Some(Relocation {
        origin: Origin::new(origin.forms()),
        root: text.to_string(),
        dropped,
    }))
}

/// A file of a restore: where it goes in its directory, and which blob.
struct Restore {
    /// Its bytes name another workspace, rewritten as it is restored.
    relocate: bool,
    name: String,
    /// Its name beside `name` while it is copied.
    temporary: String,
    /// Written at `name` at once: its directory is one this restore made, so no reader can
    /// be looking there for a whole file (a concurrent restore of the same path into it
    /// renames its own copies over these).
    direct: bool,
    /// Where it goes, for people.
    shown: PathBuf,
    digest: String,
    size: u64,
    mode: u32,
}

/// A file's bytes as [`Store::put`] read them.
struct Blob {
    digest: String,
    /// What was read, which is what the blob holds even when the file changed meanwhile.
    size: u64,
    /// The new blob, written aside; `None` when the store held it already.
    temporary: Option<PathBuf>,
    /// What a scan for the workspace found: binary bytes, and the workspace's path.
    binary: bool,
    names: bool,
}

/// What `gzl gc` removed from the store.
#[derive(Debug, Default, Clone, Copy)]
pub struct Swept {
    pub objects: usize,
    pub bytes: u64,
}

impl Store {
    /// The store in gzl's data directory.
    pub fn of(home: &Home) -> Self {
        Store::at(home.root().join("objects"))
    }

    /// The store at `root`, as the job API names it to a stage.
    pub fn at(root: PathBuf) -> Self {
        Store { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob(&self, digest: &str) -> PathBuf {
        fan_out(&self.root.join("blobs"), digest)
    }

    fn tree(&self, digest: &str) -> PathBuf {
        fan_out(&self.root.join("trees"), digest)
    }

    /// Stores each of `paths` (files, directories or symbolic links, which are stored as
    /// links, not followed) and returns their trees, in order.
    ///
    /// With `origin`, the absolute root of the workspace the paths come from, each file is
    /// also scanned as it is read (the same pass) for that path, and each link's target
    /// checked: a tree whose entries name the workspace records it, and how each names it
    /// (text, link or binary), so that [`Store::get`] can restore it into another workspace
    /// (docs/design/relocation.md). A tree that names no workspace records none.
    pub fn put(&self, paths: &[PathBuf], origin: Option<&Path>) -> Result<Vec<Stored>, StoreError> {
        let origin = origin.map(origin_path).transpose()?.flatten();
        let finder = origin.as_ref().map(|o| Origin::new(o.forms()));
        let mut trees: Vec<Vec<Entry>> = Vec::with_capacity(paths.len());
        // Regular files of every path: (source, tree, entry).
        let mut files: Vec<(PathBuf, usize, usize)> = Vec::new();
        for (index, path) in paths.iter().enumerate() {
            let mut entries = Vec::new();
            walk(path, String::new(), &mut entries, &mut |source, entry| {
                files.push((source, index, entry));
            })?;
            trees.push(entries);
        }
        let tmp = self.root.join("tmp");
        create_dir(&tmp)?;
        let written = Mutex::new(Vec::new());
        let blobs = parallel(&files, |(source, _, _)| {
            let blob = self.write_blob(source, &tmp, finder.as_ref())?;
            if let Some(temporary) = &blob.temporary {
                lock(&written).push((temporary.clone(), blob.digest.clone()));
            }
            Ok(blob)
        })?;
        for ((_, tree, entry), blob) in files.iter().zip(blobs) {
            let entry = &mut trees[*tree][*entry];
            if blob.names {
                entry.refers = Some(if blob.binary {
                    Refers::Binary
                } else {
                    Refers::Text
                });
            }
            if let Kind::File { digest, size, .. } = &mut entry.kind {
                *digest = blob.digest;
                *size = blob.size;
            }
        }
        if let Some(finder) = &finder {
            for entry in trees.iter_mut().flatten() {
                if let Kind::Symlink { target } = &entry.kind
                    && finder.holds_target(target)
                {
                    entry.refers = Some(Refers::Link);
                }
            }
        }
        let written = written.into_inner().unwrap_or_default();
        if !written.is_empty() {
            self.sync()?;
            for (temporary, digest) in &written {
                place(temporary, &self.blob(digest))?;
            }
        }
        let mut stored = Vec::with_capacity(trees.len());
        let mut new_trees = Vec::new();
        for entries in trees {
            let (size, count) = entries
                .iter()
                .fold((0, 0), |(size, count), e| match &e.kind {
                    Kind::File { size: s, .. } => (size + s, count + 1),
                    Kind::Symlink { .. } => (size, count + 1),
                    Kind::Dir { .. } => (size, count),
                });
            // Only a tree that names its workspace depends on it; any other is the same
            // tree whichever workspace stored it.
            let origin = origin
                .as_ref()
                .filter(|_| entries.iter().any(|e| e.refers.is_some()))
                .cloned();
            let bytes = serde_json::to_vec(&Tree {
                v: TREE_VERSION,
                origin,
                entries,
            })
            .unwrap_or_default();
            let digest = blake3::hash(&bytes).to_hex().to_string();
            let path = self.tree(&digest);
            if !touch(&path) {
                let temporary = temporary_name(&tmp, &digest);
                let mut file = create_object(&temporary)?;
                file.write_all(&bytes).map_err(write_error(&temporary))?;
                new_trees.push((temporary, path));
            }
            stored.push(Stored {
                digest,
                size,
                files: count,
            });
        }
        if !new_trees.is_empty() {
            // Blobs renamed above must be durable before a tree names them.
            self.sync()?;
            for (temporary, path) in &new_trees {
                place(temporary, path)?;
            }
        }
        Ok(stored)
    }

    /// Stores the bytes of `source` as a blob written into `tmp`, unless the store holds
    /// them already; with `origin`, scans them for it in the same pass.
    ///
    /// A file that fits the buffer is read once. A larger one is hashed first and, only when
    /// the store lacks it, read again, hashing what is written: storing an unchanged file
    /// again writes nothing, and the digest always names the bytes written, even when the
    /// file changes meanwhile (the scan, too, is of the bytes written).
    fn write_blob(
        &self,
        source: &Path,
        tmp: &Path,
        origin: Option<&Origin>,
    ) -> Result<Blob, StoreError> {
        let mut input = File::open(source).map_err(read_error(source))?;
        let mut buffer = vec![0u8; BUFFER];
        let mut scan = origin.map(relocate::Scan::new);
        let filled = fill(&mut input, &mut buffer).map_err(read_error(source))?;
        if filled < buffer.len() {
            if let Some(scan) = &mut scan {
                scan.feed(&buffer[..filled], true);
            }
            let (binary, names) = scanned(scan.as_ref());
            let digest = blake3::hash(&buffer[..filled]).to_hex().to_string();
            let size = filled as u64;
            if self.touch_blob(&digest, size) {
                return Ok(Blob {
                    digest,
                    size,
                    temporary: None,
                    binary,
                    names,
                });
            }
            let temporary = temporary_name(tmp, &unique());
            let written = create_object(&temporary).and_then(|mut output| {
                output
                    .write_all(&buffer[..filled])
                    .map_err(write_error(&temporary))
            });
            if let Err(error) = written {
                let _ = std::fs::remove_file(&temporary);
                return Err(error);
            }
            return Ok(Blob {
                digest,
                size,
                temporary: Some(temporary),
                binary,
                names,
            });
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&buffer);
        if let Some(scan) = &mut scan {
            scan.feed(&buffer, false);
        }
        let mut size = filled as u64;
        loop {
            let n = fill(&mut input, &mut buffer).map_err(read_error(source))?;
            hasher.update(&buffer[..n]);
            if let Some(scan) = &mut scan {
                scan.feed(&buffer[..n], n < buffer.len());
            }
            size += n as u64;
            if n < buffer.len() {
                break;
            }
        }
        let digest = hasher.finalize().to_hex().to_string();
        if self.touch_blob(&digest, size) {
            let (binary, names) = scanned(scan.as_ref());
            return Ok(Blob {
                digest,
                size,
                temporary: None,
                binary,
                names,
            });
        }
        input
            .seek(std::io::SeekFrom::Start(0))
            .map_err(read_error(source))?;
        let temporary = temporary_name(tmp, &unique());
        let mut output = create_object(&temporary)?;
        let mut hasher = blake3::Hasher::new();
        let mut scan = origin.map(relocate::Scan::new);
        let mut size = 0;
        let copied = (|| {
            loop {
                let n = fill(&mut input, &mut buffer).map_err(read_error(source))?;
                hasher.update(&buffer[..n]);
                if let Some(scan) = &mut scan {
                    scan.feed(&buffer[..n], n < buffer.len());
                }
                size += n as u64;
                output
                    .write_all(&buffer[..n])
                    .map_err(write_error(&temporary))?;
                if n < buffer.len() {
                    return Ok(());
                }
            }
        })();
        drop(output);
        if let Err(error) = copied {
            let _ = std::fs::remove_file(&temporary);
            return Err(error);
        }
        let (binary, names) = scanned(scan.as_ref());
        Ok(Blob {
            digest: hasher.finalize().to_hex().to_string(),
            size,
            temporary: Some(temporary),
            binary,
            names,
        })
    }

    /// Whether the store holds blob `digest` at `size` bytes, marked as just stored (see
    /// [`touch`]). One of another size (cut short) is written anew over it.
    fn touch_blob(&self, digest: &str, size: u64) -> bool {
        File::open(self.blob(digest)).is_ok_and(|file| {
            let whole = file
                .metadata()
                .is_ok_and(|metadata| metadata.is_file() && metadata.len() == size);
            if whole {
                let _ = file.set_modified(SystemTime::now());
            }
            whole
        })
    }

    fn sync(&self) -> Result<(), StoreError> {
        let dir = File::open(&self.root).map_err(read_error(&self.root))?;
        nix::unistd::syncfs(&dir).map_err(|errno| StoreError::Write {
            path: self.root.clone(),
            source: errno.into(),
        })
    }

    /// Restores the stored path `digest` (only what is at `within` in it, when given) at
    /// `path` below `base`, with its modes (never setuid, setgid or sticky) and symbolic
    /// links. Nothing is written outside `base`: no link below it is followed (see
    /// [`beneath`]). Every file's bytes are hashed as they are copied; a blob that does not
    /// match its digest is an error and leaves the store. Returns the size and file count.
    ///
    /// With `root`, the workspace restored into: when the tree was stored from another
    /// workspace and names it, the text files naming it are restored with that path
    /// rewritten to `root`, links into it re-pointed, and CPython byte code that embeds it
    /// left out (and removed where it goes) so the interpreter compiles it from the restored
    /// source; a binary file embedding it makes the restore fail before anything is written
    /// ([`StoreError::NotRelocatable`]). Otherwise the stored bytes, as they are.
    pub fn get(
        &self,
        digest: &str,
        within: Option<&str>,
        base: &Path,
        path: &str,
        root: Option<&Path>,
    ) -> Result<Stored, StoreError> {
        let tree = self.read_tree(digest)?;
        let (entries, origin) = part(tree, digest, within)?;
        let relocation = relocation_of(origin.as_ref(), &entries, within, root)?;
        if !plain(path) {
            return Err(StoreError::Damaged {
                object: self.tree(digest),
                reason: format!("`{path}` is not a plain relative path to restore it at"),
            });
        }
        let root = beneath::open_base(base)?;
        let mut dirs = beneath::Dirs::new(root.as_fd(), base);
        dirs.open(parent_of(path), true)?;
        // Files, by directory: restored on a few threads once directories and links are.
        let mut files: Vec<(String, Vec<Restore>)> = Vec::new();
        let mut modes = Vec::new();
        // Directories this restore made: nothing of theirs is in the way of what goes there.
        let mut made: HashSet<String> = HashSet::new();
        let (mut size, mut count) = (0, 0);
        for entry in &entries {
            let relative = if entry.path.is_empty() {
                path.to_string()
            } else {
                format!("{path}/{}", entry.path)
            };
            let (parent, name) = (parent_of(&relative), name_of(&relative));
            let shown = dirs.shown(&relative);
            let dir = dirs.open(parent, false)?;
            match &entry.kind {
                Kind::Dir { mode } => {
                    if beneath::make_dir(dir, name, &shown)? {
                        made.insert(relative.clone());
                    }
                    modes.push((relative.clone(), *mode & PERMISSIONS));
                }
                Kind::Symlink { target } => {
                    let direct = made.contains(parent);
                    if !direct {
                        beneath::make_room(dir, name, &shown)?;
                    }
                    let temporary = beside(name, count);
                    let target = match &relocation {
                        Some(relocation) if entry.refers == Some(Refers::Link) => relocation
                            .origin
                            .relink(target, &relocation.root)
                            .unwrap_or_else(|| target.clone()),
                        _ => target.clone(),
                    };
                    let linked = direct
                        && match nix::unistd::symlinkat(target.as_str(), dir, name) {
                            Ok(()) => true,
                            Err(nix::errno::Errno::EEXIST) => false,
                            Err(errno) => return Err(beneath::write_error(&shown, errno)),
                        };
                    if !linked {
                        nix::unistd::symlinkat(target.as_str(), dir, temporary.as_str())
                            .map_err(|errno| beneath::write_error(&shown, errno))?;
                        nix::fcntl::renameat(dir, temporary.as_str(), dir, name).map_err(
                            |errno| {
                                let _ =
                                    unlinkat(dir, temporary.as_str(), UnlinkatFlags::NoRemoveDir);
                                beneath::write_error(&shown, errno)
                            },
                        )?;
                    }
                    count += 1;
                }
                Kind::File { .. }
                    if relocation
                        .as_ref()
                        .is_some_and(|r| r.dropped.contains(&entry.path)) =>
                {
                    // Byte code of another workspace's path: none rather than stale.
                    beneath::make_room(dir, name, &shown)?;
                    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
                        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                        Err(errno) => return Err(beneath::write_error(&shown, errno)),
                    }
                }
                Kind::File {
                    mode,
                    size: bytes,
                    digest,
                } => {
                    let direct = made.contains(parent);
                    if !direct {
                        beneath::make_room(dir, name, &shown)?;
                    }
                    let restore = Restore {
                        relocate: relocation.is_some() && entry.refers == Some(Refers::Text),
                        name: name.to_string(),
                        temporary: beside(name, count),
                        direct,
                        shown,
                        digest: digest.clone(),
                        size: *bytes,
                        mode: *mode & PERMISSIONS,
                    };
                    // Large files each in a batch of their own, so they spread over the
                    // threads too.
                    match files.last_mut() {
                        Some((dir, batch))
                            if dir == parent
                                && batch.len() < BATCH
                                && batch.iter().map(|r| r.size).sum::<u64>() < BATCH_BYTES =>
                        {
                            batch.push(restore);
                        }
                        _ => files.push((parent.to_string(), vec![restore])),
                    }
                    size += bytes;
                    count += 1;
                }
            }
        }
        parallel(&files, |(parent, batch)| {
            let mut dirs = beneath::Dirs::new(root.as_fd(), base);
            let dir = dirs.open(parent, false)?;
            let mut buffer = vec![0u8; BUFFER];
            for restore in batch {
                self.restore_file(dir, restore, &mut buffer, relocation.as_ref())?;
            }
            Ok(())
        })?;
        // Deepest first, so a read-only directory is made so after what it holds.
        for (relative, mode) in modes.iter().rev() {
            let dir = dirs.open(relative, false)?;
            nix::sys::stat::fchmod(dir, nix::sys::stat::Mode::from_bits_truncate(*mode))
                .map_err(|errno| beneath::write_error(&base.join(relative), errno))?;
        }
        Ok(Stored {
            digest: digest.to_string(),
            size,
            files: count,
        })
    }

    /// Whether the part at `within` of the stored path `digest` can be restored into the
    /// workspace at `root`: what [`Store::get`] decides before writing anything, for callers
    /// that decide before running. `Ok` when it restores there (as stored, or rewritten);
    /// [`StoreError::NotRelocatable`] naming the first file that cannot be moved otherwise.
    pub fn relocation(
        &self,
        digest: &str,
        within: Option<&str>,
        root: &Path,
    ) -> Result<(), StoreError> {
        let tree = self.read_tree(digest)?;
        let (entries, origin) = part(tree, digest, within)?;
        relocation_of(origin.as_ref(), &entries, within, Some(root)).map(drop)
    }

    /// Copies a blob into `dir` beside where it goes, hashing what it copies, and renames it
    /// into place when it is the blob's bytes. Copied aside and renamed, so whoever reads the
    /// file meanwhile (a stage beside this one getting the same path) sees one whole file or
    /// the other. One pass: the bytes are read once, into `buffer`, hashed and written. A
    /// file to relocate is read whole and written with the workspace's path rewritten; the
    /// hash is of the stored bytes.
    fn restore_file(
        &self,
        dir: BorrowedFd<'_>,
        restore: &Restore,
        buffer: &mut [u8],
        relocation: Option<&Relocation>,
    ) -> Result<(), StoreError> {
        let object = self.blob(&restore.digest);
        let mut input = match File::open(&object) {
            Ok(input) => input,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    digest: restore.digest.clone(),
                    store: self.root.clone(),
                });
            }
            Err(source) => {
                return Err(StoreError::Read {
                    path: object,
                    source,
                });
            }
        };
        let create = |name: &str| {
            nix::fcntl::openat(
                dir,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
            )
        };
        // Straight at its name in a directory this restore made, unless another restore
        // got there first; aside and renamed otherwise.
        let (temporary, created) = match restore.direct.then(|| create(&restore.name)) {
            Some(Ok(created)) => (None, created),
            Some(Err(nix::errno::Errno::EEXIST)) | None => (
                Some(restore.temporary.as_str()),
                create(&restore.temporary)
                    .map_err(|errno| beneath::write_error(&restore.shown, errno))?,
            ),
            Some(Err(errno)) => return Err(beneath::write_error(&restore.shown, errno)),
        };
        let mut output = File::from(created);
        let mut hasher = blake3::Hasher::new();
        let mut copied = 0u64;
        let result = (|| {
            if let Some(relocation) = relocation.filter(|_| restore.relocate) {
                let mut bytes = Vec::new();
                (&mut input)
                    .take(restore.size + 1)
                    .read_to_end(&mut bytes)
                    .map_err(read_error(&object))?;
                copied = bytes.len() as u64;
                hasher.update(&bytes);
                return output
                    .write_all(&relocation.origin.rewrite(&bytes, &relocation.root))
                    .map_err(write_error(&restore.shown));
            }
            loop {
                let expected = restore.size.saturating_sub(copied);
                let n =
                    fill_expecting(&mut input, buffer, expected).map_err(read_error(&object))?;
                copied += n as u64;
                // More than the tree says: damaged, whatever follows.
                if copied > restore.size {
                    return Ok(());
                }
                hasher.update(&buffer[..n]);
                output
                    .write_all(&buffer[..n])
                    .map_err(write_error(&restore.shown))?;
                if n < buffer.len() {
                    return Ok(());
                }
            }
        })()
        .and_then(|()| {
            if copied != restore.size || hasher.finalize().to_hex().as_str() != restore.digest {
                // Out of the store: the stage that stored it runs again (see `has`).
                let _ = std::fs::remove_file(&object);
                return Err(StoreError::Tampered {
                    object: object.clone(),
                    file: restore.shown.clone(),
                });
            }
            nix::sys::stat::fchmod(
                output.as_fd(),
                nix::sys::stat::Mode::from_bits_truncate(restore.mode),
            )
            .map_err(|errno| beneath::write_error(&restore.shown, errno))
        });
        drop(output);
        let written = temporary.unwrap_or(restore.name.as_str());
        let placed = result.and_then(|()| match temporary {
            Some(temporary) => nix::fcntl::renameat(dir, temporary, dir, restore.name.as_str())
                .map_err(|errno| beneath::write_error(&restore.shown, errno)),
            None => Ok(()),
        });
        if placed.is_err() {
            // Never a partial or unverified file left where it goes.
            let _ = unlinkat(dir, written, UnlinkatFlags::NoRemoveDir);
        }
        placed
    }

    /// Whether the tree `digest` holds something at `within`.
    pub fn holds(&self, digest: &str, within: &str) -> bool {
        self.read_tree(digest).is_ok_and(|tree| {
            tree.entries.iter().any(|entry| {
                entry.path == within
                    || entry
                        .path
                        .strip_prefix(within)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        })
    }

    /// Whether the store holds the tree `digest` and every blob it names, at the size the
    /// tree says. Cheap enough to ask before reusing each cached result (one `stat` per
    /// blob): a blob cut short or lost is seen here, and the stage that stored it runs again;
    /// one changed in place at its size is seen when it is restored, hashed as it is copied
    /// ([`Store::get`]), which removes it, so the stage runs again in the next run.
    pub fn has(&self, digest: &str) -> bool {
        self.held(digest).is_ok()
    }

    /// What [`Store::has`] asks, with why not.
    pub fn held(&self, digest: &str) -> Result<(), StoreError> {
        let tree = self.read_tree(digest)?;
        for entry in &tree.entries {
            if let Kind::File { digest, size, .. } = &entry.kind {
                let object = self.blob(digest);
                match std::fs::symlink_metadata(&object) {
                    Ok(metadata) if metadata.is_file() && metadata.len() == *size => {}
                    Ok(_) => {
                        return Err(StoreError::Damaged {
                            object,
                            reason: format!("it does not hold the {size} bytes stored"),
                        });
                    }
                    Err(_) => {
                        return Err(StoreError::Missing {
                            digest: digest.clone(),
                            store: self.root.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The tree `digest`, checked: its bytes hash to its name, and it names only what `put`
    /// could have written (trees come from stages, which write the store themselves).
    fn read_tree(&self, digest: &str) -> Result<Tree, StoreError> {
        // Digests come from stages too: nothing but a digest may name a file.
        if !is_digest(digest) {
            return Err(StoreError::Missing {
                digest: digest.to_string(),
                store: self.root.clone(),
            });
        }
        let path = self.tree(digest);
        // A reuse asks whether the store holds a tree, then whether it can move, then
        // restores it: one read, check and parse (tens of milliseconds for a large tree)
        // serves all three. A tree is immutable, named by the hash of its bytes.
        if let Some(tree) = lock(&RECENT_TREES)
            .iter()
            .find(|(at, _)| *at == path)
            .map(|(_, tree)| tree.clone())
        {
            return Ok((*tree).clone());
        }
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    digest: digest.to_string(),
                    store: self.root.clone(),
                });
            }
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        let damaged = |reason: String| StoreError::Damaged {
            object: path.clone(),
            reason,
        };
        if blake3::hash(&bytes).to_hex().as_str() != digest {
            return Err(damaged(
                "its bytes do not match its digest (changed since it was stored)".into(),
            ));
        }
        let tree: Tree = serde_json::from_slice(&bytes)
            .map_err(|error| damaged(format!("not a tree gzl can read: {error}")))?;
        tree.check().map_err(damaged)?;
        let mut recent = lock(&RECENT_TREES);
        if recent.len() == RECENT_TREES_KEPT {
            recent.remove(0);
        }
        recent.push((path, std::sync::Arc::new(tree.clone())));
        Ok(tree)
    }

    /// Removes every object that `live` trees do not name, and abandoned temporary files,
    /// when older than `grace`: a stage may be storing objects it has not registered yet
    /// (the store touches an object each time it is stored again).
    pub fn sweep(&self, live: &HashSet<String>, grace: Duration) -> Result<Swept, StoreError> {
        let mut blobs = HashSet::new();
        for digest in live {
            if let Ok(tree) = self.read_tree(digest) {
                for entry in tree.entries {
                    if let Kind::File { digest, .. } = entry.kind {
                        blobs.insert(digest);
                    }
                }
            }
        }
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut swept = Swept::default();
        sweep_dir(&self.root.join("trees"), live, cutoff, &mut swept)?;
        sweep_dir(&self.root.join("blobs"), &blobs, cutoff, &mut swept)?;
        sweep_files(&self.root.join("tmp"), &HashSet::new(), cutoff, &mut swept)?;
        Ok(swept)
    }
}

/// Lists `path` and what it holds into `entries` as `name` (relative to the stored path),
/// calling `file` with each regular file's source and entry index.
fn walk(
    path: &Path,
    name: String,
    entries: &mut Vec<Entry>,
    file: &mut dyn FnMut(PathBuf, usize),
) -> Result<(), StoreError> {
    let metadata = std::fs::symlink_metadata(path).map_err(read_error(path))?;
    // Never setuid, setgid or sticky: a restore would not set them.
    let mode = metadata.permissions().mode() & PERMISSIONS;
    let kind = metadata.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(path).map_err(read_error(path))?;
        let target = target
            .into_os_string()
            .into_string()
            .map_err(|_| StoreError::NotUtf8 {
                path: path.to_path_buf(),
            })?;
        entries.push(Entry {
            path: name,
            kind: Kind::Symlink { target },
            refers: None,
        });
    } else if kind.is_file() {
        file(path.to_path_buf(), entries.len());
        entries.push(Entry {
            path: name,
            kind: Kind::File {
                mode,
                size: metadata.len(),
                digest: String::new(),
            },
            refers: None,
        });
    } else if kind.is_dir() {
        entries.push(Entry {
            path: name.clone(),
            kind: Kind::Dir { mode },
            refers: None,
        });
        let mut children: Vec<(String, PathBuf)> = Vec::new();
        for child in std::fs::read_dir(path).map_err(read_error(path))? {
            let child = child.map_err(read_error(path))?;
            let child_name = child
                .file_name()
                .into_string()
                .map_err(|_| StoreError::NotUtf8 { path: child.path() })?;
            children.push((child_name, child.path()));
        }
        children.sort();
        for (child_name, child) in children {
            let relative = if name.is_empty() {
                child_name
            } else {
                format!("{name}/{child_name}")
            };
            walk(&child, relative, entries, file)?;
        }
    } else {
        return Err(StoreError::Special {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Runs `work` on every item on a few threads (I/O overlaps even on few cores); returns the
/// results in order, or the first error.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> Result<R, StoreError> + Sync,
) -> Result<Vec<R>, StoreError> {
    let threads = std::thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .clamp(2, 8)
        .min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<R, StoreError>>>> =
        items.iter().map(|_| Mutex::new(None)).collect();
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= items.len() || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let result = work(&items[index]);
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    *lock(&results[index]) = Some(result);
                }
            });
        }
    });
    let mut out = Vec::with_capacity(items.len());
    for slot in results {
        match slot.into_inner().unwrap_or_default() {
            Some(Ok(value)) => out.push(value),
            Some(Err(error)) => return Err(error),
            // Left undone after another item failed; that error comes first or later.
            None => {}
        }
    }
    Ok(out)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `root/XX/REST` for a digest `XXREST`.
fn fan_out(root: &Path, digest: &str) -> PathBuf {
    let split = digest.len().min(2);
    root.join(&digest[..split]).join(&digest[split..])
}

/// Reads into `buffer` until it is full or the file ends; returns how much it read.
fn fill(input: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Like [`fill`], for a file expected to hold `expected` more bytes: once it has them, a
/// short read is the file's end, so a small blob costs one `read`, not a second one that
/// returns nothing. Bytes beyond `expected` still arrive, in the same read, when the file has
/// them.
fn fill_expecting(input: &mut File, buffer: &mut [u8], expected: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        let asked = buffer.len() - filled;
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if n < asked && filled as u64 >= expected {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// What a scan found, `(binary, names the workspace)`; nothing without a scan.
fn scanned(scan: Option<&relocate::Scan<'_>>) -> (bool, bool) {
    scan.map_or((false, false), |scan| (scan.binary, scan.names))
}

/// How a tree records the workspace at `path`: the path as given and its canonical form
/// when that differs. `None` for a path no workspace has (relative, or `/`).
fn origin_path(path: &Path) -> Result<Option<OriginPath>, StoreError> {
    if path.to_str().is_none() {
        return Err(StoreError::NotUtf8 {
            path: path.to_path_buf(),
        });
    }
    let Some(named) = relocate::workspace_path(path) else {
        return Ok(None);
    };
    let canonical = std::fs::canonicalize(path)
        .ok()
        .and_then(|c| {
            c.to_str()
                .and_then(|c| relocate::workspace_path(Path::new(c)).map(str::to_string))
        })
        .filter(|c| c != named);
    Ok(Some(OriginPath {
        path: named.to_string(),
        canonical,
    }))
}

/// A name for a new temporary object.
fn unique() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn temporary_name(tmp: &Path, name: &str) -> PathBuf {
    tmp.join(format!("{name}.{}", unique()))
}

/// A new read-only object file: the store's objects are never changed in place.
fn create_object(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
        .map_err(write_error(path))
}

/// Renames a durable temporary object to its place.
fn place(temporary: &Path, path: &Path) -> Result<(), StoreError> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    std::fs::rename(temporary, path).map_err(write_error(path))
}

/// Marks an existing object as just stored, so `gzl gc` spares it; false when it is absent.
fn touch(path: &Path) -> bool {
    File::open(path).is_ok_and(|file| {
        let _ = file.set_modified(SystemTime::now());
        true
    })
}

/// A name beside `name` for the `index`th entry of a restore by this process.
fn beside(name: &str, index: u64) -> String {
    // Asked once: every call of `std::process::id` is a system call.
    static PID: OnceLock<u32> = OnceLock::new();
    format!(
        ".{name}.gzl-get-{}-{index}",
        PID.get_or_init(std::process::id)
    )
}

/// Whether `path` is `/`-separated plain names: nothing empty, `.`, `..` or absolute.
fn plain(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|name| !name.is_empty() && name != "." && name != ".." && !name.contains('\0'))
}

/// The directory part of a relative path (`""` for a name on its own).
fn parent_of(path: &str) -> &str {
    path.rfind('/').map_or("", |slash| &path[..slash])
}

/// The last name of a relative path.
fn name_of(path: &str) -> &str {
    path.rfind('/').map_or(path, |slash| &path[slash + 1..])
}

/// Whether `text` is a BLAKE3 digest in hex, as objects are named.
fn is_digest(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn create_dir(path: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(path).map_err(write_error(path))
}

/// Removes files in the fan-out directories under `root` that `keep` does not name.
fn sweep_dir(
    root: &Path,
    keep: &HashSet<String>,
    cutoff: SystemTime,
    swept: &mut Swept,
) -> Result<(), StoreError> {
    let Ok(fans) = std::fs::read_dir(root) else {
        return Ok(());
    };
    for fan in fans.flatten() {
        let prefix = fan.file_name().to_string_lossy().into_owned();
        let keep: HashSet<String> = keep
            .iter()
            .filter_map(|digest| digest.strip_prefix(prefix.as_str()).map(str::to_string))
            .collect();
        sweep_files(&fan.path(), &keep, cutoff, swept)?;
    }
    Ok(())
}

fn sweep_files(
    dir: &Path,
    keep: &HashSet<String>,
    cutoff: SystemTime,
    swept: &mut Swept,
) -> Result<(), StoreError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if keep.contains(entry.file_name().to_string_lossy().as_ref()) {
            continue;
        }
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if metadata.modified().is_ok_and(|at| at >= cutoff) {
            continue;
        }
        let path = entry.path();
        std::fs::remove_file(&path).map_err(write_error(&path))?;
        swept.objects += 1;
        swept.bytes += metadata.len();
    }
    Ok(())
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    move |source| StoreError::Read { path, source }
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    move |source| StoreError::Write { path, source }
}

#[cfg(test)]
mod tests {
    use super::{Kind, Store};
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::Path;

    #[test]
    fn a_directory_round_trips_with_modes_and_links_and_dedupes() {
        let temp = tempfile::tempdir().unwrap();
        let source = temp.path().join("src");
        std::fs::create_dir_all(source.join("bin")).unwrap();
        std::fs::write(source.join("bin/tool"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(
            source.join("bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(source.join("a.txt"), "same").unwrap();
        std::fs::write(source.join("b.txt"), "same").unwrap();
        std::os::unix::fs::symlink("bin/tool", source.join("link")).unwrap();
        let store = Store::at(temp.path().join("objects"));
        let stored = store.put(std::slice::from_ref(&source), None).unwrap();
        assert_eq!(stored[0].files, 4);
        assert_eq!(stored[0].size, 18 + 4 + 4);
        let again = store.put(std::slice::from_ref(&source), None).unwrap();
        assert_eq!(again, stored);
        let blobs = walkdir_count(&temp.path().join("objects/blobs"));
        assert_eq!(blobs, 2, "identical files are one blob");

        let target = temp.path().join("out");
        store
            .get(&stored[0].digest, None, temp.path(), "out", None)
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(target.join("bin/tool")).unwrap(),
            "#!/bin/sh\necho hi\n"
        );
        let mode = std::fs::metadata(target.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read_link(target.join("link")).unwrap(),
            std::path::Path::new("bin/tool")
        );
        assert!(store.has(&stored[0].digest));
        // Restoring over an earlier restore replaces it.
        store
            .get(&stored[0].digest, None, temp.path(), "out", None)
            .unwrap();
    }

    #[test]
    fn files_larger_than_the_buffer_are_stored_once_and_restored_whole() {
        let temp = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..3 * super::BUFFER + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(temp.path().join("big"), &big).unwrap();
        std::fs::write(temp.path().join("exact"), &big[..super::BUFFER]).unwrap();
        let store = Store::at(temp.path().join("objects"));
        let sources = [temp.path().join("big"), temp.path().join("exact")];
        let stored = store.put(&sources, None).unwrap();
        assert_eq!(store.put(&sources, None).unwrap(), stored);
        assert_eq!(walkdir_count(&temp.path().join("objects/blobs")), 2);
        let left = std::fs::read_dir(temp.path().join("objects/tmp")).unwrap();
        assert_eq!(left.count(), 0, "no temporary file is left");
        store
            .get(&stored[0].digest, None, temp.path(), "out", None)
            .unwrap();
        assert_eq!(std::fs::read(temp.path().join("out")).unwrap(), big);
    }

    /// A store holding one blob (`bytes`) and a tree of `entries` (JSON, `%blob` standing for
    /// that blob's digest) written by hand, as a stage could; returns the tree's digest.
    fn plant(root: &Path, bytes: &[u8], entries: &str) -> (Store, String) {
        let store = Store::at(root.join("objects"));
        let source = root.join("blob-source");
        std::fs::write(&source, bytes).unwrap();
        let blob = store.put(std::slice::from_ref(&source), None).unwrap();
        let tree = store.read_tree(&blob[0].digest).unwrap();
        let Kind::File { digest, .. } = &tree.entries[0].kind else {
            panic!("a file");
        };
        let text = format!(
            r#"{{"v":1,"entries":{}}}"#,
            entries.replace("%blob", digest)
        );
        let digest = blake3::hash(text.as_bytes()).to_hex().to_string();
        let path = store.tree(&digest);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        (store, digest)
    }

    fn refused(store: &Store, digest: &str, base: &Path) -> String {
        match store.get(digest, None, base, "got", None) {
            Err(error) => error.to_string(),
            Ok(_) => panic!("restored"),
        }
    }

    // A stage writes its trees itself: one naming `link -> elsewhere` then `link/file`
    // would write through the link it just made.
    #[test]
    fn a_tree_entry_below_a_symlink_entry_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let elsewhere = temp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let (store, digest) = plant(
            temp.path(),
            b"escaped",
            &format!(
                r#"[{{"path":"","kind":"dir","mode":493}},
                    {{"path":"link","kind":"symlink","target":"{}"}},
                    {{"path":"link/file","kind":"file","mode":420,"size":7,"digest":"%blob"}}]"#,
                elsewhere.display()
            ),
        );
        let base = temp.path().join("work");
        let error = refused(&store, &digest, &base);
        assert!(
            error.contains("entry `link/file` is not below a directory listed before it"),
            "{error}"
        );
        assert!(!store.has(&digest));
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    // Each kind of path that could leave the restore's place, or restore one path twice.
    #[test]
    fn trees_with_parent_absolute_empty_or_duplicate_entries_are_refused() {
        let file = r#"{"path":"%p","kind":"file","mode":420,"size":1,"digest":"%blob"}"#;
        for (path, reason) in [
            ("..", "is not a plain relative path"),
            ("a/../../x", "is not a plain relative path"),
            ("/etc/x", "is not a plain relative path"),
            ("a//b", "is not a plain relative path"),
            ("./a", "is not a plain relative path"),
            ("a", "is listed twice"),
            ("f/below", "is not below a directory listed before it"),
        ] {
            let temp = tempfile::tempdir().unwrap();
            let entries = format!(
                r#"[{{"path":"","kind":"dir","mode":493}},{},{},{}]"#,
                file.replace("%p", "a"),
                file.replace("%p", "f"),
                file.replace("%p", path)
            );
            let (store, digest) = plant(temp.path(), b"x", &entries);
            let error = refused(&store, &digest, &temp.path().join("work"));
            assert!(error.contains(reason), "{path}: {error}");
            assert!(!temp.path().join("x").exists() && !Path::new("/etc/x").exists());
        }
    }

    // A tree may carry any mode; a restore must not hand out setuid or setgid programs.
    #[test]
    fn setuid_bits_are_not_restored() {
        let temp = tempfile::tempdir().unwrap();
        let (store, digest) = plant(
            temp.path(),
            b"#!/bin/sh\n",
            r#"[{"path":"","kind":"dir","mode":2045},
                {"path":"tool","kind":"file","mode":3565,"size":10,"digest":"%blob"}]"#,
        );
        let base = temp.path().join("work");
        store.get(&digest, None, &base, "got", None).unwrap();
        let mode = |p: &str| {
            std::fs::metadata(base.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("got/tool"), 0o755);
        assert_eq!(mode("got"), 0o775);
    }

    // A link planted where the restore goes must not carry its files elsewhere.
    #[test]
    fn a_restore_does_not_follow_a_planted_symlink_out_of_its_place() {
        let temp = tempfile::tempdir().unwrap();
        let source = temp.path().join("src");
        std::fs::create_dir_all(source.join("sub")).unwrap();
        std::fs::write(source.join("sub/file"), "bytes").unwrap();
        let store = Store::at(temp.path().join("objects"));
        let stored = store.put(std::slice::from_ref(&source), None).unwrap();
        let elsewhere = temp.path().join("elsewhere");
        let base = temp.path().join("work");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::create_dir_all(base.join("got")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, base.join("parent")).unwrap();
        let error = store
            .get(&stored[0].digest, None, &base, "parent/got", None)
            .unwrap_err();
        assert!(matches!(error, super::StoreError::Link { .. }), "{error}");
        // A link inside the restored directory is replaced by the directory, not entered.
        std::os::unix::fs::symlink(&elsewhere, base.join("got/sub")).unwrap();
        store
            .get(&stored[0].digest, None, &base, "got", None)
            .unwrap();
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert_eq!(std::fs::read(base.join("got/sub/file")).unwrap(), b"bytes");
    }

    // A blob changed in the store must not be restored as if it were what was stored.
    #[test]
    fn a_tampered_blob_is_an_error_naming_it_and_leaves_the_store() {
        let temp = tempfile::tempdir().unwrap();
        std::fs::write(temp.path().join("a"), "original").unwrap();
        let store = Store::at(temp.path().join("objects"));
        let stored = store.put(&[temp.path().join("a")], None).unwrap();
        let blob = store.blob(&blake3::hash(b"original").to_hex());
        std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&blob, "tampered").unwrap();
        assert!(
            store.has(&stored[0].digest),
            "the same size passes the quick check"
        );
        let error = store
            .get(&stored[0].digest, None, temp.path(), "b", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains(&blob.display().to_string()), "{error}");
        assert!(!temp.path().join("b").exists());
        assert!(!store.has(&stored[0].digest), "it left the store");
        let left: Vec<_> = std::fs::read_dir(temp.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 2, "no temporary file is left: {left:?}");
    }

    // Files in a directory the restore makes are written at their names, not aside: a
    // tampered one must still not be left there, nor any file beside it half written.
    #[test]
    fn a_tampered_blob_in_a_new_directory_leaves_no_file_at_its_name() {
        let temp = tempfile::tempdir().unwrap();
        let tree = temp.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/a"), "original").unwrap();
        std::fs::write(tree.join("sub/b"), "kept").unwrap();
        let store = Store::at(temp.path().join("objects"));
        let stored = store.put(std::slice::from_ref(&tree), None).unwrap();
        let out = temp.path().join("out");
        store.get(&stored[0].digest, None, &out, "t", None).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("t/sub/a")).unwrap(),
            "original"
        );
        let blob = store.blob(&blake3::hash(b"original").to_hex());
        std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&blob, "tampered").unwrap();
        let error = store
            .get(&stored[0].digest, None, &out, "fresh", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains(&blob.display().to_string()), "{error}");
        assert!(
            !out.join("fresh/sub/a").exists(),
            "the tampered file is gone"
        );
    }

    // A blob cut short is seen before a cached result is reused.
    #[test]
    fn a_truncated_blob_is_not_held() {
        let temp = tempfile::tempdir().unwrap();
        std::fs::write(temp.path().join("a"), "original").unwrap();
        let store = Store::at(temp.path().join("objects"));
        let stored = store.put(&[temp.path().join("a")], None).unwrap();
        let blob = store.blob(&blake3::hash(b"original").to_hex());
        std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&blob, "orig").unwrap();
        assert!(!store.has(&stored[0].digest));
    }

    /// A workspace at `ws` holding `.venv` as `python3 -m venv` and `pip install -e` leave
    /// it: a script with a shebang, `pyvenv.cfg`, an editable install's `.pth`, a link into
    /// the workspace and one to elsewhere, and a source beside its byte code.
    fn venv(ws: &Path) -> std::path::PathBuf {
        let ws_text = ws.display();
        let venv = ws.join(".venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::create_dir_all(venv.join("lib/pkg/__pycache__")).unwrap();
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::write(
            venv.join("bin/tool"),
            format!("#!{ws_text}/.venv/bin/python3\nimport pkg\n"),
        )
        .unwrap();
        std::fs::set_permissions(
            venv.join("bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(
            venv.join("pyvenv.cfg"),
            format!("home = /usr/bin\ncommand = /usr/bin/python3 -m venv {ws_text}/.venv\n"),
        )
        .unwrap();
        std::fs::write(venv.join("lib/editable.pth"), format!("{ws_text}/src\n")).unwrap();
        std::fs::write(venv.join("lib/other.pth"), format!("{ws_text}0/src\n")).unwrap();
        std::os::unix::fs::symlink(ws.join("src"), venv.join("src-link")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/python3", venv.join("bin/python3")).unwrap();
        std::fs::write(venv.join("lib/pkg/mod.py"), "X = 1\n").unwrap();
        std::fs::write(
            venv.join("lib/pkg/__pycache__/mod.cpython-311.pyc"),
            format!("\x0d\x0d\0\0{ws_text}/.venv/lib/pkg/mod.py\0"),
        )
        .unwrap();
        venv
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    // The venv of issue 24: stored in one workspace, restored in another of another length,
    // its scripts and editable install must name the new one.
    #[test]
    fn text_references_are_rewritten_to_a_shorter_and_a_longer_root() {
        let temp = tempfile::tempdir().unwrap();
        let ws1 = temp.path().join("workspaces/repo/1");
        let venv = venv(&ws1);
        let store = Store::at(temp.path().join("objects"));
        let stored = store.put(std::slice::from_ref(&venv), Some(&ws1)).unwrap();
        for root in [
            temp.path().join("w"),
            temp.path()
                .join("workspaces/a-much-longer-name/of-a-workspace/10"),
        ] {
            store.relocation(&stored[0].digest, None, &root).unwrap();
            store
                .get(&stored[0].digest, None, &root, ".venv", Some(&root))
                .unwrap();
            let r = root.display();
            let got = root.join(".venv");
            assert_eq!(
                read(&got.join("bin/tool")),
                format!("#!{r}/.venv/bin/python3\nimport pkg\n")
            );
            let mode = std::fs::metadata(got.join("bin/tool"))
                .unwrap()
                .permissions();
            assert_eq!(mode.mode() & 0o777, 0o755);
            assert!(read(&got.join("pyvenv.cfg")).ends_with(&format!("venv {r}/.venv\n")));
            assert_eq!(read(&got.join("lib/editable.pth")), format!("{r}/src\n"));
            // `/…/1` inside `/…/10` is another workspace's path: kept.
            assert_eq!(
                read(&got.join("lib/other.pth")),
                format!("{}0/src\n", ws1.display())
            );
            assert_eq!(
                std::fs::read_link(got.join("src-link")).unwrap(),
                root.join("src")
            );
            assert_eq!(
                std::fs::read_link(got.join("bin/python3")).unwrap(),
                Path::new("/usr/bin/python3")
            );
        }
        // In the workspace it came from: the stored bytes.
        let back = temp.path().join("back");
        store
            .get(&stored[0].digest, None, &back, ".venv", Some(&ws1))
            .unwrap();
        assert_eq!(
            read(&back.join(".venv/lib/editable.pth")),
            format!("{}/src\n", ws1.display())
        );
        assert!(
            back.join(".venv/lib/pkg/__pycache__/mod.cpython-311.pyc")
                .exists()
        );
    }

    // Byte code embeds the venv's path; left in another workspace it would name the first.
    #[test]
    fn byte_code_beside_its_source_is_left_out_and_a_stale_copy_removed() {
        let temp = tempfile::tempdir().unwrap();
        let ws1 = temp.path().join("ws/1");
        let venv = venv(&ws1);
        let store = Store::at(temp.path().join("objects"));
        let stored = store.put(std::slice::from_ref(&venv), Some(&ws1)).unwrap();
        let ws2 = temp.path().join("ws/2");
        let pyc = ws2.join(".venv/lib/pkg/__pycache__/mod.cpython-311.pyc");
        std::fs::create_dir_all(pyc.parent().unwrap()).unwrap();
        std::fs::write(&pyc, "stale").unwrap();
        store
            .get(&stored[0].digest, None, &ws2, ".venv", Some(&ws2))
            .unwrap();
        assert!(!pyc.exists(), "byte code naming ws/1 is not restored");
        assert_eq!(read(&ws2.join(".venv/lib/pkg/mod.py")), "X = 1\n");
        // Without its source in what is restored, the byte code is a binary like any other.
        let error = store
            .relocation(&stored[0].digest, Some("lib/pkg/__pycache__"), &ws2)
            .unwrap_err();
        assert!(
            matches!(&error, super::StoreError::NotRelocatable { file, .. } if file == "lib/pkg/__pycache__/mod.cpython-311.pyc"),
            "{error}"
        );
    }

    // A binary that embeds the path cannot be rewritten; a half-restored tree would run
    // the first workspace's code, so nothing may be written.
    #[test]
    fn a_binary_embedding_the_workspace_refuses_before_writing_anything() {
        let temp = tempfile::tempdir().unwrap();
        let ws1 = temp.path().join("ws/1");
        let out = ws1.join("out");
        std::fs::create_dir_all(out.join("lib")).unwrap();
        std::fs::write(out.join("a.txt"), format!("{}\n", ws1.display())).unwrap();
        std::fs::write(
            out.join("lib/native.so"),
            format!("\x7fELF\0\0\0rpath={}/lib\0", ws1.display()),
        )
        .unwrap();
        let store = Store::at(temp.path().join("objects"));
        let stored = store.put(std::slice::from_ref(&out), Some(&ws1)).unwrap();
        let ws2 = temp.path().join("ws/2");
        for error in [
            store.relocation(&stored[0].digest, None, &ws2).unwrap_err(),
            store
                .get(&stored[0].digest, None, &ws2, "out", Some(&ws2))
                .unwrap_err(),
        ] {
            let super::StoreError::NotRelocatable { file, origin } = &error else {
                panic!("{error}");
            };
            assert_eq!(file, "lib/native.so");
            assert_eq!(origin, &ws1);
            assert!(
                error
                    .to_string()
                    .contains("`lib/native.so` is a binary file"),
                "{error}"
            );
        }
        assert!(!ws2.exists(), "nothing is written");
        // The same workspace, or no root: the stored bytes.
        store.relocation(&stored[0].digest, None, &ws1).unwrap();
        let copy = temp.path().join("copy");
        store
            .get(&stored[0].digest, None, &copy, "out", None)
            .unwrap();
        assert_eq!(
            std::fs::read(copy.join("out/lib/native.so")).unwrap(),
            std::fs::read(out.join("lib/native.so")).unwrap()
        );
    }

    // Trees stored before gzl looked (no origin), and trees that name no workspace, restore
    // anywhere as they are; the latter are the same tree whichever workspace stored them.
    #[test]
    fn trees_without_origin_restore_as_stored() {
        let temp = tempfile::tempdir().unwrap();
        let (store, digest) = plant(
            temp.path(),
            b"#!/ws/1/bin/python\n",
            r#"[{"path":"","kind":"dir","mode":493},
                {"path":"tool","kind":"file","mode":493,"size":19,"digest":"%blob"}]"#,
        );
        let ws2 = temp.path().join("ws/2");
        store.relocation(&digest, None, &ws2).unwrap();
        store.get(&digest, None, &ws2, "got", Some(&ws2)).unwrap();
        assert_eq!(read(&ws2.join("got/tool")), "#!/ws/1/bin/python\n");

        let plain = temp.path().join("ws/1/plain");
        std::fs::create_dir_all(&plain).unwrap();
        std::fs::write(plain.join("f"), "no path here").unwrap();
        let with = store
            .put(
                std::slice::from_ref(&plain),
                Some(&temp.path().join("ws/1")),
            )
            .unwrap();
        let without = store.put(std::slice::from_ref(&plain), None).unwrap();
        assert_eq!(with, without);
    }

    // Files over the read buffer are scanned in chunks: a path across two must be found.
    #[test]
    fn a_path_across_read_chunks_is_found_and_rewritten() {
        let temp = tempfile::tempdir().unwrap();
        let ws1 = temp.path().join("ws/1");
        std::fs::create_dir_all(&ws1).unwrap();
        let name = format!("{}/data", ws1.display());
        let mut text = vec![b'x'; super::BUFFER - name.len() / 2];
        text.push(b' ');
        text.extend_from_slice(name.as_bytes());
        text.extend_from_slice(b" tail\n");
        std::fs::write(ws1.join("big.txt"), &text).unwrap();
        let store = Store::at(temp.path().join("objects"));
        let stored = store.put(&[ws1.join("big.txt")], Some(&ws1)).unwrap();
        let tree = store.read_tree(&stored[0].digest).unwrap();
        assert_eq!(tree.entries[0].refers, Some(super::Refers::Text));
        let ws2 = temp.path().join("w2");
        store
            .get(&stored[0].digest, None, &ws2, "big.txt", Some(&ws2))
            .unwrap();
        let got = std::fs::read(ws2.join("big.txt")).unwrap();
        assert!(got.ends_with(format!(" {}/data tail\n", ws2.display()).as_bytes()));
    }

    // The workspace through a symbolic link (a /tmp that is one): files name either form.
    #[test]
    fn the_canonical_form_of_the_workspace_is_recorded_and_rewritten() {
        let temp = tempfile::tempdir().unwrap();
        let real = temp.path().join("real/1");
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(temp.path().join("real"), temp.path().join("link")).unwrap();
        let ws1 = temp.path().join("link/1");
        let canonical = std::fs::canonicalize(&ws1).unwrap();
        std::fs::write(real.join("cfg"), format!("a={}\n", canonical.display())).unwrap();
        let store = Store::at(temp.path().join("objects"));
        let stored = store.put(&[ws1.join("cfg")], Some(&ws1)).unwrap();
        let tree = store.read_tree(&stored[0].digest).unwrap();
        let origin = tree.origin.unwrap();
        assert_eq!(origin.path, ws1.to_str().unwrap());
        assert_eq!(origin.canonical.as_deref(), canonical.to_str());
        let ws2 = temp.path().join("w2");
        store
            .get(&stored[0].digest, None, &ws2, "cfg", Some(&ws2))
            .unwrap();
        assert_eq!(read(&ws2.join("cfg")), format!("a={}\n", ws2.display()));
    }

    // A rewritten file is still checked against the stored bytes.
    #[test]
    fn a_tampered_blob_is_caught_when_rewritten_too() {
        let temp = tempfile::tempdir().unwrap();
        let ws1 = temp.path().join("ws/1");
        std::fs::create_dir_all(&ws1).unwrap();
        let text = format!("{}\n", ws1.display());
        std::fs::write(ws1.join("cfg"), &text).unwrap();
        let store = Store::at(temp.path().join("objects"));
        let stored = store.put(&[ws1.join("cfg")], Some(&ws1)).unwrap();
        let blob = store.blob(&blake3::hash(text.as_bytes()).to_hex());
        std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&blob, text.replace('1', "9")).unwrap();
        let ws2 = temp.path().join("ws/2");
        let error = store
            .get(&stored[0].digest, None, &ws2, "cfg", Some(&ws2))
            .unwrap_err();
        assert!(
            matches!(error, super::StoreError::Tampered { .. }),
            "{error}"
        );
        assert!(!ws2.join("cfg").exists());
    }

    fn walkdir_count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|fan| std::fs::read_dir(fan.path()).unwrap().count())
            .sum()
    }
}
