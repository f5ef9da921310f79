//! Runs the built `gzl` in a hermetic temp directory: its own git repository, its own
//! `GZL_HOME`, and a fixed environment.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub struct Test {
    /// Holds the repository (`repo/`) and gzl's home (`home/`).
    temp: tempfile::TempDir,
}

impl Test {
    /// A fresh git repository with no commits.
    pub fn new() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(temp.path().join("repo")).expect("repo dir");
        let test = Test { temp };
        test.git(&["init", "-q", "-b", "main"]);
        test
    }

    /// A fresh repository holding `gzlfile` as its Gzlfile.
    pub fn with_gzlfile(gzlfile: &str) -> Self {
        let test = Test::new();
        test.write("Gzlfile", gzlfile);
        test
    }

    pub fn repo(&self) -> PathBuf {
        self.temp.path().join("repo")
    }

    pub fn home(&self) -> PathBuf {
        self.temp.path().join("home")
    }

    /// A path outside the repository (and so outside every workspace), for stages to leave
    /// traces the test can read.
    pub fn outside(&self, name: &str) -> PathBuf {
        let dir = self.temp.path().join("outside");
        std::fs::create_dir_all(&dir).expect("outside dir");
        dir.join(name)
    }

    /// The lines of an `outside` file; none when it does not exist.
    pub fn outside_lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.outside(name))
            .map(|text| text.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Waits until the `outside` file `name` exists, up to 20 s.
    pub fn wait_for_outside(&self, name: &str) {
        wait_for(&self.outside(name));
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.repo().join(relative)
    }

    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent dir");
        }
        std::fs::write(path, contents).expect("write file");
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative))
            .unwrap_or_else(|e| panic!("read {relative}: {e}"))
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.repo(), args)
    }

    /// `git ARGS` in `dir` (a linked worktree, say), which must succeed; its stdout.
    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "gzl test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "gzl test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            // Hooks gzl installs run gzl: it must use this test's home.
            .env("GZL_HOME", self.home())
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// `git ARGS` as the user would type it, hooks and all, without requiring success.
    pub fn git_run(&self, args: &[&str]) -> Run {
        Run::from(
            Command::new("git")
                .args(args)
                .current_dir(self.repo())
                .env("GIT_AUTHOR_NAME", "gzl test")
                .env("GIT_AUTHOR_EMAIL", "test@example.com")
                .env("GIT_COMMITTER_NAME", "gzl test")
                .env("GIT_COMMITTER_EMAIL", "test@example.com")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GZL_HOME", self.home())
                .output()
                .expect("git runs"),
        )
    }

    /// `gzl ARGS` in an 80x24 pseudo-terminal (util-linux `script`), typing each of `keys`
    /// after waiting its milliseconds. Returns whether it succeeded, and what it drew.
    pub fn in_terminal(&self, args: &str, keys: &[(&str, u64)]) -> (bool, String) {
        use std::io::Write as _;
        let gzl = env!("CARGO_BIN_EXE_gzl");
        let mut child = Command::new("script")
            .args([
                "-qec",
                &format!("stty rows 24 cols 80; {gzl} {args}"),
                "/dev/null",
            ])
            .current_dir(self.repo())
            .env("GZL_HOME", self.home())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("SHELL", "/bin/sh")
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script (util-linux) runs gzl in a pseudo-terminal");
        let mut input = child.stdin.take().expect("stdin");
        for (key, wait) in keys {
            std::thread::sleep(std::time::Duration::from_millis(*wait));
            input.write_all(key.as_bytes()).expect("typed");
            input.flush().expect("sent");
        }
        let output = child.wait_with_output().expect("gzl ends");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).replace('\r', ""),
        )
    }

    /// Commits everything in the repository; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// `gzl ARGS` in the repository, with a hermetic environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gzl"));
        command
            .args(args)
            .current_dir(self.repo())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.temp.path())
            .env("GZL_HOME", self.home())
            // Nothing listens on the discard port: a test never fetches from the network.
            .env("GZL_RELEASE_URL", "http://127.0.0.1:9")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        command
    }

    pub fn gzl(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("gzl runs");
        Run::from(output)
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gzl starts")
    }

    /// Waits until `relative` exists (a stage wrote it), up to 20 s.
    pub fn wait_for_file(&self, relative: &str) {
        wait_for(&self.path(relative));
    }

    /// `gzl ls --json`'s runs.
    pub fn runs(&self) -> Vec<serde_json::Value> {
        let run = self.gzl(&["ls", "--json", "--limit", "100"]).status(0);
        let value: serde_json::Value =
            serde_json::from_str(&run.stdout).expect("ls --json is JSON");
        value["runs"].as_array().cloned().unwrap_or_default()
    }
}

/// What a finished gzl printed and how it exited.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            raw_stdout: output.stdout,
        }
    }
}

impl Run {
    pub fn status(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn stdout_has(self, text: &str) -> Self {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}:\n{}",
            self.stdout
        );
        self
    }

    pub fn stderr_has(self, text: &str) -> Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        self
    }

    /// The summary line of `stage` (`  failed    test  …`) in stderr.
    /// Asserts that the summary line of `stage` holds `text`.
    pub fn summary_has(&self, stage: &str, text: &str) -> &Self {
        let line = self.summary_of(stage);
        assert!(
            line.contains(text),
            "summary of {stage} lacks {text:?}:\n{}",
            self.stderr
        );
        self
    }

    pub fn summary_of(&self, stage: &str) -> String {
        self.stderr
            .lines()
            .find(|line| {
                line.split_whitespace().nth(1) == Some(stage)
                    || line.split_whitespace().nth(2) == Some(stage)
            })
            .unwrap_or_else(|| panic!("no summary line for {stage}:\n{}", self.stderr))
            .to_string()
    }
}

/// Waits until `path` exists (a stage wrote it), up to 20 s.
fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Give the writer a moment to finish the line.
    std::thread::sleep(std::time::Duration::from_millis(20));
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

pub fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid")
}
