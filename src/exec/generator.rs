//! What a `@generates` stage prints on stdout: Gzlfile text. It enters gzl here, through a
//! pipe, and is masked like the stage's other output before it is written to its file, so the
//! file, the stages parsed from it, diagnostics quoting it, their stored scripts, logs and
//! history only ever see masked text.

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Masker;

/// Copies a generator's stdout, masked, into its file.
pub(super) struct Generated {
    pipe: pipe::Receiver,
    file: std::fs::File,
    path: PathBuf,
    masker: Masker,
}

impl Generated {
    /// A pipe for the stage's stdout (the end to give it), and the copy into `path` of what
    /// comes through, with `secrets` (name and value) masked.
    pub fn open(path: &Path, secrets: &[(String, String)]) -> std::io::Result<(OwnedFd, Self)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::File::create(path)?;
        let (reader, writer) = std::io::pipe()?;
        let values: Vec<String> = secrets.iter().map(|(_, value)| value.clone()).collect();
        let generated = Generated {
            pipe: pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?,
            file,
            path: path.to_path_buf(),
            masker: Masker::new(&values),
        };
        Ok((OwnedFd::from(writer), generated))
    }

    /// Copies until the stage's stdout ends; once `stage_done` fires, for at most `drain`
    /// more (a process that left the stage's group may hold the pipe open forever).
    pub async fn copy(
        mut self,
        mut stage_done: oneshot::Receiver<()>,
        drain: Duration,
    ) -> Result<(), String> {
        let mut buffer = vec![0u8; super::supervisor::CHUNK];
        let mut give_up_at: Option<Instant> = None;
        loop {
            tokio::select! {
                read = self.pipe.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let shown = self.masker.push(&buffer[..n]);
                        self.write(&shown)?;
                    }
                },
                _ = &mut stage_done, if give_up_at.is_none() => {
                    give_up_at = Some(Instant::now() + drain);
                },
                () = sleep_until_or_never(give_up_at), if give_up_at.is_some() => break,
            }
        }
        let rest = self.masker.finish();
        self.write(&rest)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.file.write_all(bytes).map_err(|error| {
            format!(
                "cannot write what the stage generated to {}: {error}",
                self.path.display()
            )
        })
    }
}

async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
