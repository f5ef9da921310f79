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
    stage: String,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// The server's answer to `hello`.
    hello: Response,
}

impl Client {
    /// Connects to the job API at `address` and says hello as `stage` with `token`.
    pub fn connect(address: &str, token: String, stage: String) -> Result<Self, ApiError> {
        let writer = UnixStream::connect(address).map_err(|source| ApiError::Connect {
            address: address.to_string(),
            source,
        })?;
        let reader = writer.try_clone().map_err(|source| ApiError::Connect {
            address: address.to_string(),
            source,
        })?;
        let mut client = Client {
            address: address.to_string(),
            token,
            stage,
            reader: BufReader::new(reader),
            writer,
            hello: Response::default(),
        };
        client.hello = client.call(Request {
            op: "hello".into(),
            client: Some(env!("CARGO_PKG_VERSION").into()),
            ..Request::default()
        })?;
        Ok(client)
    }

    /// The store to write objects into, when the runner lets this process write them itself.
    pub fn local_store(&self) -> Option<PathBuf> {
        self.capabilities()
            .iter()
            .any(|c| c == LOCAL_STORE)
            .then(|| self.hello.store.clone().map(PathBuf::from))
            .flatten()
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

    fn call(&mut self, mut request: Request) -> Result<Response, ApiError> {
        request.v = VERSION;
        request.token.clone_from(&self.token);
        request.stage.clone_from(&self.stage);
        let io = |source| ApiError::Io {
            address: self.address.clone(),
            source,
        };
        let mut line = serde_json::to_string(&request).unwrap_or_default();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).map_err(io)?;
        let mut answer = String::new();
        let io = |source| ApiError::Io {
            address: self.address.clone(),
            source,
        };
        self.reader.read_line(&mut answer).map_err(io)?;
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

/// An answer to `lookup`.
#[derive(Debug, Clone)]
pub struct Found {
    pub digest: String,
    pub stored_by: String,
    /// The asked path within the stored tree, when it is inside a stored directory.
    pub within: Option<String>,
}
