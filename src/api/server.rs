//! The job API's server: one per run, on the runner's runtime, for as long as the run.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::watch;

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
    token: String,
    store: Store,
    states: watch::Sender<Vec<State>>,
    registry: Mutex<Registry>,
}

struct Registry {
    artifacts: RunArtifacts,
    history: History,
}

impl Server {
    /// Binds the API of a run in `dir` (its directory), or in a private temporary directory
    /// when that path is too long for a socket. `artifacts` holds what cached stages provide.
    pub fn bind(
        dir: &Path,
        token: &str,
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
        let stages = vec![State::Pending; artifacts.stage_count()];
        Ok(Server {
            listener,
            path,
            private_dir,
            shared: Arc::new(Shared {
                token: token.to_string(),
                store,
                states: watch::channel(stages).0,
                registry: Mutex::new(Registry { artifacts, history }),
            }),
        })
    }

    /// The socket's path: the stages' `GZL_API`.
    pub fn address(&self) -> &Path {
        &self.path
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
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, Arc::clone(&self.shared)));
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
            let Registry { artifacts, history } = &mut *registry;
            artifacts.join(plan, first, reused, reused_runs, history)?;
        }
        self.0
            .states
            .send_modify(|states| states.resize(plan.len(), State::Pending));
        Ok(())
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

async fn connection(stream: tokio::net::UnixStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let response = answer(&shared, &line).await;
        let mut text = serde_json::to_string(&response).unwrap_or_default();
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            break;
        }
    }
}

async fn answer(shared: &Shared, line: &str) -> Response {
    let request: Request = match serde_json::from_str(line) {
        Ok(request) => request,
        Err(error) => return Response::refused(format!("not a job API request: {error}")),
    };
    if !VERSIONS.contains(&request.v) {
        return Response {
            versions: VERSIONS.to_vec(),
            ..Response::refused(format!(
                "job API version {} is not spoken here (this gzl {} speaks {VERSIONS:?})",
                request.v,
                env!("CARGO_PKG_VERSION"),
            ))
        };
    }
    if !same_secret(&request.token, &shared.token) {
        return Response::refused(
            "wrong GZL_TOKEN: requests are taken only from the stages of the run that serves this API",
        );
    }
    let (stage, run) = {
        let registry = lock(&shared.registry);
        (
            registry.artifacts.stage(&request.stage),
            registry.artifacts.run(),
        )
    };
    let Some(stage) = stage else {
        return Response::refused(format!(
            "run {run} has no stage `{}` (GZL_STAGE)",
            request.stage
        ));
    };
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
        return Response::refused(format!(
            "stage `{}` of run {run} is not running",
            request.stage
        ));
    }
    match request.op.as_str() {
        "hello" => Response {
            server: Some(env!("CARGO_PKG_VERSION").into()),
            versions: VERSIONS.to_vec(),
            capabilities: vec![LOCAL_STORE.into()],
            store: Some(shared.store.root().display().to_string()),
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
    if !shared.store.has(digest) {
        return Response::refused(format!(
            "`{path}`: the store holds no object {digest}; store it before registering it"
        ));
    }
    let mut registry = lock(&shared.registry);
    let Registry { artifacts, history } = &mut *registry;
    if let Err(error) = artifacts.register(stage, path, digest) {
        return Response::refused(error.to_string());
    }
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
    match history.record_artifacts(std::slice::from_ref(&record)) {
        Ok(()) => Response::ok(),
        Err(error) => Response::refused(format!("cannot record `{path}` in history: {error}")),
    }
}

/// Compares secrets in time independent of where they differ.
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
