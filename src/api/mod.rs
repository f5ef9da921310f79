//! The job API: what a run serves its own stages, so that `gzl` commands inside a stage
//! (`gzl obj-store`, `gzl obj-get`) can talk to the gzl that runs them.
//!
//! One Unix socket per run (`GZL_API`), line-delimited JSON, one response line per request
//! line. Every request carries the protocol version it speaks (`v`) and the credential of
//! the stage it comes from (`GZL_STAGE_TOKEN`), from which the server knows the stage: a
//! stage can speak only as itself. The server refuses an unknown credential and a stage of
//! the run that is not running, and bounds what a connection may hold: its line length, how
//! long it idles, how many connections a run serves at once. A client opens with `hello`, which names the
//! versions and capabilities the server has, so an older gzl in a stage keeps working with a
//! newer runner. docs/design/job-api.md is the reference.

mod client;
mod server;

pub use client::{Client, Found};
pub use server::{Credentials, Server, Stages};

use serde::{Deserialize, Serialize};

/// The protocol version this gzl speaks.
pub const VERSION: u32 = 2;

/// The protocol versions this gzl serves. Version 1 named the stage in each request beside
/// the run's token, so any stage could speak for another; it is refused, saying why.
pub const VERSIONS: &[u32] = &[2];

/// The capability of a runner whose store the stage may write straight into (a local run):
/// the client stores objects itself, then registers them.
pub const LOCAL_STORE: &str = "store.local";

/// The environment variables that make a process a stage, and what they hold.
pub const ADDRESS_VARIABLE: &str = "GZL_API";
/// The stage's own credential, which names it to the job API (and only it).
pub const STAGE_TOKEN_VARIABLE: &str = "GZL_STAGE_TOKEN";

/// A failure to talk to the job API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach gzl's job API at {address}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the job API at {address} failed mid-request")]
    Io {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the job API at {address} closed the connection without an answer")]
    Closed { address: String },
    #[error("the job API sent an answer this gzl cannot read: {answer}")]
    Garbled { answer: String },
    #[error("the runner refused: {message}")]
    Refused { message: String },
    #[error("cannot serve the job API at {}", path.display())]
    Bind {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A request line. Unknown fields are ignored, so newer clients may add some.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    /// `hello`, `stored` or `lookup`.
    pub op: String,
    /// The stage's credential, `GZL_STAGE_TOKEN`.
    pub token: String,
    /// This client's gzl version (`hello`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The artifact's path relative to the stage's directory (`stored`, `lookup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The digest of the artifact's tree (`stored`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// On `lookup`: the client can restore a path inside a stored directory, so the runner
    /// may answer with the directory and `within`. (Absent from older clients, which get
    /// exact paths only.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inside: bool,
}

/// A response line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    pub ok: bool,
    /// Why a request was refused, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The server's gzl version (`hello`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The protocol versions the server speaks (`hello`, and a refused version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<u32>,
    /// What the server offers (`hello`): [`LOCAL_STORE`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Where the store is, with [`LOCAL_STORE`] (`hello`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The root of the checkout the run works in (`hello`): the workspace `obj-store`
    /// records as where files come from, and `obj-get` moves them to. (Absent from older
    /// runners, whose stages have it as `GZL_REPO_ROOT`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// The artifact found (`lookup`): its tree's digest, and the stage that stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_by: Option<String>,
    /// On `lookup` with `inside`: where in the stored tree `digest` the asked path is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
}

impl Response {
    fn refused(message: impl Into<String>) -> Self {
        Response {
            v: VERSION,
            ok: false,
            error: Some(message.into()),
            ..Response::default()
        }
    }

    fn ok() -> Self {
        Response {
            v: VERSION,
            ok: true,
            ..Response::default()
        }
    }
}
