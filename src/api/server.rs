//! The job API's server: one per run, on the runner's runtime, for as long as the run.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};
use tokio::sync::{Semaphore, watch};

use super::{ApiError, LOCAL_STORE, Request, Response, VERSION, VERSIONS};
use crate::artifacts::{ReusedRuns, RunArtifacts};
use crate::exec::Event;
use crate::history::{ArtifactRecord, History};
use crate::store::Store;

/// The longest socket path bound where asked; `sun_path` holds 108 bytes on Linux.
const LONGEST_SOCKET_PATH: usize = 100;

/// How long a request from a stage waits for the runner to see that stage start: its
/// process may talk before the event saying it started has been through the runner.
const START_WAIT: Duration = Duration::from_secs(30);

/// What one run's API lets its stages hold, so that no stage (or a process it left) can
/// starve the others or the runner.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// The longest request line; a longer one is refused and its connection closed.
    line: usize,
    /// Connections served at once; one more is refused and closed.
    connections: usize,
    /// How long a connection may wait before its next request line, or take to read an
    /// answer, before it is closed. Clients open a new one when they need it.
    idle: Duration,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        line: 1 << 20,
        connections: 64,
        idle: Duration::from_secs(60),
    };
}

/// The job API of one run: a bound socket, removed when the server is dropped.
pub struct Server {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
    /// A private directory made for the socket when the run's was too deep for one.
    private_dir: Option<PathBuf>,
    shared: Arc<Shared>,
}

/// Where each stage of the run stands, as the runner's events say; see [`Server::stages`].
#[derive(Clone)]
pub struct Stages(Arc<Shared>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Finished,
}

struct Shared {
    /// The key stage credentials are made with: random per run, in this process only (not
    /// derived from `GZL_TOKEN`, which every stage holds).
    key: [u8; 32],
    limits: Limits,
    store: Store,
    /// The root of the checkout the run works in.
    root: PathBuf,
    states: watch::Sender<Vec<State>>,
    registry: Mutex<Registry>,
}

struct Registry {
    artifacts: RunArtifacts,
    history: History,
    /// Each stage's credential, to the stage.
    credentials: HashMap<String, usize>,
}

impl Registry {
    fn learn_credentials(&mut self, key: &[u8; 32]) {
        self.credentials = (0..self.artifacts.stage_count())
            .map(|stage| (stage_token(key, self.artifacts.name(stage)), stage))
            .collect();
    }
}

/// What a job needs to reach the job API as its stage: the socket and the stage's credential.
#[derive(Clone)]
pub struct Credentials {
    address: PathBuf,
    key: [u8; 32],
}

impl Credentials {
    /// The socket's path: the stages' `GZL_API`.
    pub fn address(&self) -> &Path {
        &self.address
    }

    /// The credential of stage `stage`: its `GZL_STAGE_TOKEN`.
    pub fn stage_token(&self, stage: &str) -> String {
        stage_token(&self.key, stage)
    }
}

/// A stage's credential: a keyed BLAKE3 of its name (names are unique in a run).
fn stage_token(key: &[u8; 32], stage: &str) -> String {
    blake3::keyed_hash(key, stage.as_bytes())
        .to_hex()
        .to_string()
}

impl Server {
    /// Binds the API of a run in `dir` (its directory), or in a private temporary directory
    /// when that path is too long for a socket. `root` is the checkout the run works in;
    /// `artifacts` holds what cached stages provide.
    pub fn bind(
        dir: &Path,
        root: &Path,
        store: Store,
        artifacts: RunArtifacts,
        history: History,
    ) -> Result<Self, ApiError> {
        let mut path = dir.join("api.sock");
        let mut private_dir = None;
        if path.as_os_str().len() > LONGEST_SOCKET_PATH {
            let private = private_directory()?;
            path = private.join("api.sock");
            private_dir = Some(private);
        }
        let bind_error = |source| ApiError::Bind {
            path: path.clone(),
            source,
        };
        // A socket left by a gzl that died with this run's id cannot be in use.
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).map_err(bind_error)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| bind_error(std::io::Error::other(e)))?;
        let stages = vec![State::Pending; artifacts.stage_count()];
        let mut registry = Registry {
            artifacts,
            history,
            credentials: HashMap::new(),
        };
        registry.learn_credentials(&key);
        Ok(Server {
            listener,
            path,
            private_dir,
            shared: Arc::new(Shared {
                key,
                limits: Limits::DEFAULT,
                store,
                root: root.to_path_buf(),
                states: watch::channel(stages).0,
                registry: Mutex::new(registry),
            }),
        })
    }

    /// The socket's path and the stages' credentials, for their environments.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            address: self.path.clone(),
            key: self.shared.key,
        }
    }

    /// The handle that tells the server which stages run.
    pub fn stages(&self) -> Stages {
        Stages(Arc::clone(&self.shared))
    }

    /// Answers connections until dropped; each connection is served by a task of its own on
    /// the current runtime.
    pub async fn serve(&self) -> std::convert::Infallible {
        let listener = match self
            .listener
            .try_clone()
            .and_then(tokio::net::UnixListener::from_std)
        {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "the job API cannot listen");
                return std::future::pending::<std::convert::Infallible>().await;
            }
        };
        let slots = Arc::new(Semaphore::new(self.shared.limits.connections));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&self.shared);
                    match Arc::clone(&slots).try_acquire_owned() {
                        Ok(slot) => {
                            tokio::spawn(async move {
                                connection(stream, &shared).await;
                                drop(slot);
                            });
                        }
                        Err(_) => {
                            tokio::spawn(refuse(stream, shared.limits));
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "job API accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = &self.private_dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Stages {
    /// Follows `plan` after stages joined it at indices from `first` on (`reused`: the
    /// results each stage of the plan reuses), before any of them starts.
    pub fn join(
        &self,
        plan: &crate::plan::Plan,
        first: usize,
        reused: &[Option<i64>],
        reused_runs: &ReusedRuns,
    ) -> Result<(), crate::history::HistoryError> {
        {
            let mut registry = lock(&self.0.registry);
            let Registry {
                artifacts, history, ..
            } = &mut *registry;
            artifacts.join(plan, first, reused, reused_runs, history)?;
            registry.learn_credentials(&self.0.key);
        }
        self.0
            .states
            .send_modify(|states| states.resize(plan.len(), State::Pending));
        Ok(())
    }

    /// Records that stage `stage` stored `path` (its `@outputs`, which gzl stored itself),
    /// as `gzl obj-store` would: in the run and in history. Refused as `obj-store` is.
    pub fn register(
        &self,
        stage: usize,
        path: &str,
        stored: &crate::store::Stored,
    ) -> Result<(), String> {
        register(
            &self.0,
            stage,
            path,
            &stored.digest,
            stored.size,
            stored.files,
        )
    }

    /// The store artifacts go to.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// Follows a run event: stages start and finish.
    pub fn observe(&self, event: &Event) {
        let (stage, state) = match event {
            Event::StageStarted { stage, .. } => (*stage, State::Running),
            Event::StageFinished { stage, .. } => (*stage, State::Finished),
            _ => return,
        };
        self.0.states.send_modify(|states| {
            if let Some(slot) = states.get_mut(stage) {
                *slot = state;
            }
        });
    }
}

/// A new directory only this user can enter, for the socket.
fn private_directory() -> Result<PathBuf, ApiError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let mut bytes = [0u8; 8];
    let base = std::env::temp_dir();
    let error = |source| ApiError::Bind {
        path: base.clone(),
        source,
    };
    getrandom::fill(&mut bytes).map_err(|e| error(std::io::Error::other(e)))?;
    let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let dir = base.join(format!("gzl-api-{name}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(error)?;
    Ok(dir)
}

/// Tells a connection beyond the limit why it is closed.
async fn refuse(mut stream: tokio::net::UnixStream, limits: Limits) {
    let response = Response::refused(format!(
        "the job API of this run serves {} connections at once and all are taken; close one (a process a stage left may hold them)",
        limits.connections
    ));
    let _ = tokio::time::timeout(limits.idle, send(&mut stream, &response)).await;
}

async fn connection(stream: tokio::net::UnixStream, shared: &Shared) {
    let (read, mut write) = stream.into_split();
    serve_lines(read, &mut write, shared.limits, |line| answer(shared, line)).await;
}

/// Answers each request line of a connection with `answer`, in order, until the client
/// closes it, idles longer than `limits.idle` (waiting for a request or reading an answer),
/// or sends a line longer than `limits.line` (refused, then closed: what follows cannot be
/// read as requests).
async fn serve_lines<F: Future<Output = Response>>(
    read: impl AsyncRead + Unpin,
    write: &mut (impl AsyncWrite + Unpin),
    limits: Limits,
    answer: impl Fn(String) -> F,
) {
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = u64::try_from(limits.line)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let mut limited = (&mut reader).take(limit);
        match tokio::time::timeout(limits.idle, limited.read_until(b'\n', &mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > limits.line {
            let response = Response::refused(format!(
                "a request line is longer than {} bytes; the connection is closed",
                limits.line
            ));
            let _ = tokio::time::timeout(limits.idle, send(write, &response)).await;
            return;
        }
        let response = match String::from_utf8(std::mem::take(&mut line)) {
            Ok(text) => answer(text).await,
            Err(_) => Response::refused("not a job API request: a request line is not UTF-8"),
        };
        match tokio::time::timeout(limits.idle, send(write, &response)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

async fn send(write: &mut (impl AsyncWrite + Unpin), response: &Response) -> std::io::Result<()> {
    let mut text = serde_json::to_string(response).unwrap_or_default();
    text.push('\n');
    write.write_all(text.as_bytes()).await
}

async fn answer(shared: &Shared, line: String) -> Response {
    let request: Request = match serde_json::from_str(&line) {
        Ok(request) => request,
        Err(error) => return Response::refused(format!("not a job API request: {error}")),
    };
    if !VERSIONS.contains(&request.v) {
        return Response {
            versions: VERSIONS.to_vec(),
            ..Response::refused(format!(
                "job API version {} is not spoken here (this gzl {} speaks {VERSIONS:?}){}",
                request.v,
                env!("CARGO_PKG_VERSION"),
                if request.v < VERSION {
                    format!(
                        "; the gzl in this stage is older than the one running it: use gzl {} or newer in stages (version 1 let a stage speak for another)",
                        env!("CARGO_PKG_VERSION")
                    )
                } else {
                    String::new()
                }
            ))
        };
    }
    let (stage, run) = {
        let registry = lock(&shared.registry);
        (
            registry.credentials.get(&request.token).copied(),
            registry.artifacts.run(),
        )
    };
    let Some(stage) = stage else {
        return Response::refused(format!(
            "wrong GZL_STAGE_TOKEN: run {run} takes requests only from its own stages, each with its own credential"
        ));
    };
    let name = lock(&shared.registry).artifacts.name(stage).to_string();
    let mut states = shared.states.subscribe();
    let started = tokio::time::timeout(
        START_WAIT,
        states.wait_for(|states| states[stage] != State::Pending),
    )
    .await;
    let state = started
        .ok()
        .and_then(Result::ok)
        .map_or(State::Pending, |states| states[stage]);
    if state != State::Running {
        return Response::refused(format!("stage `{name}` of run {run} is not running"));
    }
    match request.op.as_str() {
        "hello" => Response {
            server: Some(env!("CARGO_PKG_VERSION").into()),
            versions: VERSIONS.to_vec(),
            capabilities: vec![LOCAL_STORE.into()],
            store: Some(shared.store.root().display().to_string()),
            root: Some(shared.root.display().to_string()),
            ..Response::ok()
        },
        "stored" => stored(shared, stage, &request),
        "lookup" => {
            let registry = lock(&shared.registry);
            let path = request.path.as_deref().unwrap_or_default();
            match registry.artifacts.lookup(stage, path, request.inside) {
                Ok((digest, by, within)) => Response {
                    digest: Some(digest.to_string()),
                    stored_by: Some(by.to_string()),
                    within,
                    ..Response::ok()
                },
                Err(error) => Response::refused(error.to_string()),
            }
        }
        op => Response::refused(format!(
            "unknown request `{op}` (this gzl {} speaks version {VERSION}: hello, stored, lookup)",
            env!("CARGO_PKG_VERSION")
        )),
    }
}

/// Registers a path a stage stored, in the run and in history.
fn stored(shared: &Shared, stage: usize, request: &Request) -> Response {
    let (Some(path), Some(digest), Some(size), Some(files)) = (
        request.path.as_deref(),
        request.digest.as_deref(),
        request.size,
        request.files,
    ) else {
        return Response::refused("`stored` needs path, digest, size and files");
    };
    if let Err(error) = shared.store.held(digest) {
        return Response::refused(format!(
            "`{path}`: {error}; store it with gzl obj-store before registering it"
        ));
    }
    match register(shared, stage, path, digest, size, files) {
        Ok(()) => Response::ok(),
        Err(message) => Response::refused(message),
    }
}

/// Records that `stage` stored `path` as `digest`, in the run and in history; or why not.
fn register(
    shared: &Shared,
    stage: usize,
    path: &str,
    digest: &str,
    size: u64,
    files: u64,
) -> Result<(), String> {
    let mut registry = lock(&shared.registry);
    let Registry {
        artifacts, history, ..
    } = &mut *registry;
    artifacts
        .register(stage, path, digest)
        .map_err(|error| error.to_string())?;
    let record = ArtifactRecord {
        run: artifacts.run(),
        stage: artifacts.name(stage).to_string(),
        path: crate::artifacts::normalize(path).unwrap_or_else(|_| path.to_string()),
        digest: digest.to_string(),
        size,
        files,
        stored_in: artifacts.run(),
        removed: false,
    };
    history
        .record_artifacts(std::slice::from_ref(&record))
        .map_err(|error| format!("cannot record `{path}` in history: {error}"))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::{Limits, Response, serve_lines};
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

    const LIMITS: Limits = Limits {
        line: 16,
        connections: 1,
        idle: Duration::from_millis(100),
    };

    // A process that connects and says nothing must not hold a connection of the run for ever.
    #[tokio::test]
    async fn an_idle_connection_is_closed() {
        let (_client, server) = tokio::io::duplex(1024);
        let (read, mut write) = tokio::io::split(server);
        let served = serve_lines(read, &mut write, LIMITS, |_| async { Response::ok() });
        tokio::time::timeout(Duration::from_secs(30), served)
            .await
            .expect("the server closes an idle connection");
    }

    // Without a bound, one endless line would grow the runner's memory without end.
    #[tokio::test]
    async fn an_oversized_request_line_is_refused_and_closes_the_connection() {
        let (client, server) = tokio::io::duplex(4096);
        let (read, mut write) = tokio::io::split(server);
        let (client_read, mut client_write) = tokio::io::split(client);
        client_write
            .write_all(b"0123456789abcdef\n0123456789abcdefX\n{}\n")
            .await
            .unwrap();
        serve_lines(read, &mut write, LIMITS, |line| async move {
            Response {
                error: Some(line),
                ..Response::ok()
            }
        })
        .await;
        drop(write);
        let mut lines = tokio::io::BufReader::new(client_read).lines();
        let first: Response =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert!(first.ok && first.error.as_deref() == Some("0123456789abcdef"));
        let second: Response =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert!(!second.ok);
        assert!(second.error.unwrap().contains("longer than 16 bytes"));
        assert!(
            lines.next_line().await.unwrap().is_none(),
            "closed after it"
        );
    }
}
