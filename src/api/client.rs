//! The job API's client, used by `gzl` commands inside a stage.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use super::{ApiError, LOCAL_STORE, Request, Response, VERSION};
use crate::store::Stored;

/// A connection to the runner of the stage this process is part of.
pub struct Client {
    address: String,
    token: String,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// The server's answer to `hello`.
    hello: Response,
}

impl Client {
    /// Connects to the job API at `address` and says hello with the stage's credential
    /// `token`.
    pub fn connect(address: &str, token: String) -> Result<Self, ApiError> {
        let (reader, writer) = open(address)?;
        let mut client = Client {
            address: address.to_string(),
            token,
            reader,
            writer,
            hello: Response::default(),
        };
        client.hello = client.say_hello()?;
        Ok(client)
    }

    fn say_hello(&mut self) -> Result<Response, ApiError> {
        self.exchange(&Request {
            op: "hello".into(),
            client: Some(env!("CARGO_PKG_VERSION").into()),
            ..Request::default()
        })
    }

    /// The store to write objects into, when the runner lets this process write them itself.
    pub fn local_store(&self) -> Option<PathBuf> {
        self.capabilities()
            .iter()
            .any(|c| c == LOCAL_STORE)
            .then(|| self.hello.store.clone().map(PathBuf::from))
            .flatten()
    }

    /// The root of the checkout the run works in: from the runner, or, from an older runner
    /// that does not say, the stage's `GZL_REPO_ROOT`.
    pub fn root(&self) -> Option<PathBuf> {
        self.hello
            .root
            .clone()
            .or_else(|| std::env::var("GZL_REPO_ROOT").ok())
            .filter(|root| !root.is_empty())
            .map(PathBuf::from)
    }

    pub fn capabilities(&self) -> &[String] {
        &self.hello.capabilities
    }

    /// Registers `path` as stored by this stage.
    pub fn stored(&mut self, path: &str, stored: &Stored) -> Result<(), ApiError> {
        self.call(Request {
            op: "stored".into(),
            path: Some(path.into()),
            digest: Some(stored.digest.clone()),
            size: Some(stored.size),
            files: Some(stored.files),
            ..Request::default()
        })
        .map(drop)
    }

    /// Where `path` is as a stage upstream stored it: the digest of the stored tree, the
    /// stage's name, and, for a path inside a stored directory, where in the tree.
    pub fn lookup(&mut self, path: &str) -> Result<Found, ApiError> {
        let response = self.call(Request {
            op: "lookup".into(),
            path: Some(path.into()),
            inside: true,
            ..Request::default()
        })?;
        match response.digest {
            Some(digest) => Ok(Found {
                digest,
                stored_by: response.stored_by.unwrap_or_default(),
                within: response.within,
            }),
            None => Err(ApiError::Garbled {
                answer: "a lookup answered without a digest".into(),
            }),
        }
    }

    /// Asks `request`. A connection the server closed meanwhile (it closes idle ones, and
    /// storing a large directory between `hello` and `stored` can take a while) is opened
    /// again once: every request is safe to repeat.
    fn call(&mut self, request: Request) -> Result<Response, ApiError> {
        match self.exchange(&request) {
            Err(ApiError::Closed { .. }) => {
                (self.reader, self.writer) = open(&self.address)?;
                self.say_hello()?;
                self.exchange(&request)
            }
            answer => answer,
        }
    }

    fn exchange(&mut self, request: &Request) -> Result<Response, ApiError> {
        let mut request = request.clone();
        request.v = VERSION;
        request.token.clone_from(&self.token);
        let closed = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                ApiError::Closed {
                    address: self.address.clone(),
                }
            }
            _ => ApiError::Io {
                address: self.address.clone(),
                source,
            },
        };
        let mut line = serde_json::to_string(&request).unwrap_or_default();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).map_err(closed)?;
        let mut answer = String::new();
        if self.reader.read_line(&mut answer).map_err(closed)? == 0 {
            return Err(ApiError::Closed {
                address: self.address.clone(),
            });
        }
        let response: Response = serde_json::from_str(&answer).map_err(|_| ApiError::Garbled {
            answer: answer.trim_end().to_string(),
        })?;
        if response.ok {
            Ok(response)
        } else {
            Err(ApiError::Refused {
                message: response
                    .error
                    .unwrap_or_else(|| "no reason given".to_string()),
            })
        }
    }
}

/// A connection to `address`: its reading and writing halves.
fn open(address: &str) -> Result<(BufReader<UnixStream>, UnixStream), ApiError> {
    let error = |source| ApiError::Connect {
        address: address.to_string(),
        source,
    };
    let writer = UnixStream::connect(address).map_err(error)?;
    let reader = writer.try_clone().map_err(error)?;
    Ok((BufReader::new(reader), writer))
}

/// An answer to `lookup`.
#[derive(Debug, Clone)]
pub struct Found {
    pub digest: String,
    pub stored_by: String,
    /// The asked path within the stored tree, when it is inside a stored directory.
    pub within: Option<String>,
}
