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
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::home::Home;

/// The version of the tree manifest format.
const TREE_VERSION: u32 = 1;

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
    #[error("object {digest} in {} is damaged", store.display())]
    Damaged { digest: String, store: PathBuf },
    #[error("cannot restore {}: a directory is in the way", path.display())]
    InTheWay { path: PathBuf },
    #[error("the stored directory holds no `{within}`")]
    NotInTree { digest: String, within: String },
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
#[derive(Debug, Serialize, Deserialize)]
struct Tree {
    v: u32,
    /// Sorted by path; the first entry, path `""`, is the stored path itself.
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    path: String,
    #[serde(flatten)]
    kind: Kind,
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

/// A file's bytes as [`Store::put`] read them.
struct Blob {
    digest: String,
    /// What was read, which is what the blob holds even when the file changed meanwhile.
    size: u64,
    /// The new blob, written aside; `None` when the store held it already.
    temporary: Option<PathBuf>,
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
    pub fn put(&self, paths: &[PathBuf]) -> Result<Vec<Stored>, StoreError> {
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
            let blob = self.write_blob(source, &tmp)?;
            if let Some(temporary) = &blob.temporary {
                lock(&written).push((temporary.clone(), blob.digest.clone()));
            }
            Ok(blob)
        })?;
        for ((_, tree, entry), blob) in files.iter().zip(blobs) {
            if let Kind::File { digest, size, .. } = &mut trees[*tree][*entry].kind {
                *digest = blob.digest;
                *size = blob.size;
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
            let bytes = serde_json::to_vec(&Tree {
                v: TREE_VERSION,
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
    /// them already.
    ///
    /// A file that fits the buffer is read once. A larger one is hashed first and, only when
    /// the store lacks it, read again, hashing what is written: storing an unchanged file
    /// again writes nothing, and the digest always names the bytes written, even when the
    /// file changes meanwhile.
    fn write_blob(&self, source: &Path, tmp: &Path) -> Result<Blob, StoreError> {
        let mut input = File::open(source).map_err(read_error(source))?;
        let mut buffer = vec![0u8; BUFFER];
        let filled = fill(&mut input, &mut buffer).map_err(read_error(source))?;
        if filled < buffer.len() {
            let digest = blake3::hash(&buffer[..filled]).to_hex().to_string();
            let size = filled as u64;
            if touch(&self.blob(&digest)) {
                return Ok(Blob {
                    digest,
                    size,
                    temporary: None,
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
            });
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&buffer);
        let mut size = filled as u64;
        loop {
            let n = fill(&mut input, &mut buffer).map_err(read_error(source))?;
            hasher.update(&buffer[..n]);
            size += n as u64;
            if n < buffer.len() {
                break;
            }
        }
        let digest = hasher.finalize().to_hex().to_string();
        if touch(&self.blob(&digest)) {
            return Ok(Blob {
                digest,
                size,
                temporary: None,
            });
        }
        input
            .seek(std::io::SeekFrom::Start(0))
            .map_err(read_error(source))?;
        let temporary = temporary_name(tmp, &unique());
        let mut output = create_object(&temporary)?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0;
        let copied = (|| {
            loop {
                let n = fill(&mut input, &mut buffer).map_err(read_error(source))?;
                hasher.update(&buffer[..n]);
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
        Ok(Blob {
            digest: hasher.finalize().to_hex().to_string(),
            size,
            temporary: Some(temporary),
        })
    }

    fn sync(&self) -> Result<(), StoreError> {
        let dir = File::open(&self.root).map_err(read_error(&self.root))?;
        nix::unistd::syncfs(&dir).map_err(|errno| StoreError::Write {
            path: self.root.clone(),
            source: errno.into(),
        })
    }

    /// Restores the stored path `digest` at `target`, with its modes and symbolic links.
    /// Returns its size and file count.
    pub fn get(
        &self,
        digest: &str,
        within: Option<&str>,
        target: &Path,
    ) -> Result<Stored, StoreError> {
        let mut tree = self.read_tree(digest)?;
        if let Some(within) = within {
            // Only what is at `within`, as if it had been stored on its own.
            tree.entries.retain_mut(|entry| {
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
            if tree.entries.is_empty() {
                return Err(StoreError::NotInTree {
                    digest: digest.to_string(),
                    within: within.to_string(),
                });
            }
        }
        let mut files = Vec::new();
        let (mut size, mut count) = (0, 0);
        let mut dirs = Vec::new();
        for entry in &tree.entries {
            // A tree is written by `put`, which names entries below the stored path only.
            let below = Path::new(&entry.path)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !below {
                return Err(StoreError::Damaged {
                    digest: digest.to_string(),
                    store: self.root.clone(),
                });
            }
            let path = if entry.path.is_empty() {
                target.to_path_buf()
            } else {
                target.join(&entry.path)
            };
            match &entry.kind {
                Kind::Dir { mode } => {
                    if path.is_symlink() || path.is_file() {
                        std::fs::remove_file(&path).map_err(write_error(&path))?;
                    }
                    create_dir(&path)?;
                    dirs.push((path, *mode));
                }
                Kind::Symlink { target: link } => {
                    make_room(&path)?;
                    let temporary = beside(&path, count);
                    std::os::unix::fs::symlink(link, &temporary)
                        .map_err(write_error(&temporary))?;
                    replace(&temporary, &path)?;
                    count += 1;
                }
                Kind::File {
                    mode,
                    size: bytes,
                    digest,
                } => {
                    make_room(&path)?;
                    files.push((self.blob(digest), beside(&path, count), path, *mode));
                    size += bytes;
                    count += 1;
                }
            }
        }
        parallel(&files, |(blob, temporary, path, mode)| {
            if !blob.exists() {
                return Err(StoreError::Missing {
                    digest: digest.to_string(),
                    store: self.root.clone(),
                });
            }
            // copy_file_range: the kernel copies (or shares extents where the disk can).
            // Copied aside and renamed over the path, so whoever reads it meanwhile (a stage
            // beside this one getting the same path) sees one whole file or the other.
            let copied = std::fs::copy(blob, temporary)
                .map_err(write_error(temporary))
                .and_then(|_| set_mode(temporary, *mode));
            if let Err(error) = copied {
                let _ = std::fs::remove_file(temporary);
                return Err(error);
            }
            replace(temporary, path)
        })?;
        // Deepest first, so a read-only directory is made so after what it holds.
        for (path, mode) in dirs.iter().rev() {
            set_mode(path, *mode)?;
        }
        Ok(Stored {
            digest: digest.to_string(),
            size,
            files: count,
        })
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

    /// Whether the store holds the tree `digest` and every blob it names.
    pub fn has(&self, digest: &str) -> bool {
        self.read_tree(digest).is_ok_and(|tree| {
            tree.entries.iter().all(|entry| match &entry.kind {
                Kind::File { digest, .. } => self.blob(digest).exists(),
                _ => true,
            })
        })
    }

    fn read_tree(&self, digest: &str) -> Result<Tree, StoreError> {
        // Digests come from stages too: nothing but a digest may name a file.
        let is_digest = digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_digest {
            return Err(StoreError::Missing {
                digest: digest.to_string(),
                store: self.root.clone(),
            });
        }
        let path = self.tree(digest);
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
        serde_json::from_slice(&bytes).map_err(|_| StoreError::Damaged {
            digest: digest.to_string(),
            store: self.root.clone(),
        })
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
    let mode = metadata.permissions().mode() & 0o7777;
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
        });
    } else if kind.is_dir() {
        entries.push(Entry {
            path: name.clone(),
            kind: Kind::Dir { mode },
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

/// Makes sure a restored file or link can take the place of `path`: a directory there is in
/// the way; a missing parent is made. A file or link there is replaced by the rename.
fn make_room(path: &Path) -> Result<(), StoreError> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => Err(StoreError::InTheWay {
            path: path.to_path_buf(),
        }),
        Ok(_) => Ok(()),
        Err(_) => match path.parent() {
            Some(parent) => create_dir(parent),
            None => Ok(()),
        },
    }
}

/// A name beside `path` for the `index`th entry of a restore by this process.
fn beside(path: &Path, index: u64) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.gzl-get-{}-{index}", std::process::id()))
}

/// Renames a restored `temporary` over `path`; it does not stay behind when that fails.
fn replace(temporary: &Path, path: &Path) -> Result<(), StoreError> {
    std::fs::rename(temporary, path).map_err(|error| {
        let _ = std::fs::remove_file(temporary);
        write_error(path)(error)
    })
}

fn create_dir(path: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(path).map_err(write_error(path))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(write_error(path))
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
    use super::Store;
    use std::os::unix::fs::PermissionsExt as _;

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
        let stored = store.put(std::slice::from_ref(&source)).unwrap();
        assert_eq!(stored[0].files, 4);
        assert_eq!(stored[0].size, 18 + 4 + 4);
        let again = store.put(std::slice::from_ref(&source)).unwrap();
        assert_eq!(again, stored);
        let blobs = walkdir_count(&temp.path().join("objects/blobs"));
        assert_eq!(blobs, 2, "identical files are one blob");

        let target = temp.path().join("out");
        store.get(&stored[0].digest, None, &target).unwrap();
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
        store.get(&stored[0].digest, None, &target).unwrap();
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
        let stored = store.put(&sources).unwrap();
        assert_eq!(store.put(&sources).unwrap(), stored);
        assert_eq!(walkdir_count(&temp.path().join("objects/blobs")), 2);
        let left = std::fs::read_dir(temp.path().join("objects/tmp")).unwrap();
        assert_eq!(left.count(), 0, "no temporary file is left");
        store
            .get(&stored[0].digest, None, &temp.path().join("out"))
            .unwrap();
        assert_eq!(std::fs::read(temp.path().join("out")).unwrap(), big);
    }

    fn walkdir_count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|fan| std::fs::read_dir(fan.path()).unwrap().count())
            .sum()
    }
}
