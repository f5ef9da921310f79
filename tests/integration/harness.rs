//! Runs the built `gzl` in a hermetic temp directory: its own git repository, its own
//! `GZL_HOME`, and a fixed environment.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something before it fails. Generous: on a loaded machine a
/// process can take seconds to start; the wait ends as soon as the condition holds.
pub const DEADLINE: Duration = Duration::from_secs(60);

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

    /// Waits until the `outside` file `name` exists.
    pub fn wait_for_outside(&self, name: &str) {
        wait_for_path(&self.outside(name));
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

    /// `gzl ARGS` in an 80x24 pseudo-terminal (util-linux `script`): for each step, waits until
    /// the screen shows its text (since the previous key; "" waits for nothing), then types its
    /// keys. Returns whether gzl succeeded, and what it drew.
    pub fn in_terminal(&self, args: &str, steps: &[(&str, &str)]) -> (bool, String) {
        let mut terminal = self.terminal(args);
        for (text, keys) in steps {
            terminal.wait_for(text);
            terminal.type_keys(keys);
        }
        terminal.finish()
    }

    /// `gzl ARGS` started in an 80x24 pseudo-terminal (util-linux `script`), to be driven.
    pub fn terminal(&self, args: &str) -> Terminal {
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
            .stderr(Stdio::null())
            .spawn()
            .expect("script (util-linux) runs gzl in a pseudo-terminal");
        let input = child.stdin.take();
        let shown = Collector::start(child.stdout.take().expect("stdout"));
        Terminal {
            child: Some(child),
            input,
            shown,
            since: 0,
        }
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

    /// `gzl ARGS` started with its output read as it comes, so the test can wait for a line.
    pub fn spawn_live(&self, args: &[&str]) -> Live {
        let mut child = self.spawn(args);
        let stdout = Collector::start(child.stdout.take().expect("stdout"));
        let stderr = Collector::start(child.stderr.take().expect("stderr"));
        Live {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Waits until `relative` exists (a stage wrote it).
    pub fn wait_for_file(&self, relative: &str) {
        wait_for_path(&self.path(relative));
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

/// Polls `check` until it gives a value and returns it; fails the test after `DEADLINE`,
/// naming `what` and the last state `check` described. Polls often at first, then less, so a
/// quick condition is seen at once and a slow one costs little.
pub fn wait_until<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + DEADLINE;
    let mut pause = Duration::from_millis(5);
    loop {
        match check() {
            Ok(value) => return value,
            Err(state) => assert!(
                Instant::now() < deadline,
                "waited {DEADLINE:?} for {what}, in vain: {state}"
            ),
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Waits until `holds` is true; fails the test after `DEADLINE`, naming `what`.
pub fn wait_for(what: &str, mut holds: impl FnMut() -> bool) {
    wait_until(what, || if holds() { Ok(()) } else { Err(String::new()) });
}

/// Waits until `path` exists (a stage created it).
fn wait_for_path(path: &Path) {
    wait_for(&format!("{} to appear", path.display()), || path.exists());
}

/// Waits until the pid file `path` holds a whole line (`echo $$ > FILE` creates the file
/// before it writes the line) and returns the pid.
pub fn wait_for_pid(path: &Path) -> i32 {
    wait_until(&format!("a pid in {}", path.display()), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.strip_suffix('\n')
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| format!("{text:?}"))
    })
}

/// Waits until process `pid` has ended: a signal is delivered, and a process dies, a moment
/// after it is sent. Fails the test if it is still alive after `DEADLINE`.
pub fn wait_for_death(pid: i32, what: &str) {
    wait_for(&format!("{what} (pid {pid}) to end"), || {
        !process_alive(pid)
    });
}

/// Writes an executable file through a child process (`cat`), never through a descriptor of
/// this test process: a process another test forks meanwhile would inherit that descriptor
/// until it execs, and running a file open for writing fails with "Text file busy".
pub fn write_executable(path: &Path, contents: impl AsRef<[u8]>) {
    use std::io::Write as _;
    let mut writer = Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh runs");
    writer
        .stdin
        .take()
        .expect("stdin")
        .write_all(contents.as_ref())
        .expect("written");
    assert!(
        writer.wait().expect("sh ends").success(),
        "{}",
        path.display()
    );
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

/// What a child process prints, read by a thread as it comes.
struct Collector {
    read: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(mut pipe: impl std::io::Read + Send + 'static) -> Self {
        let read = Arc::<Mutex<Vec<u8>>>::default();
        let sink = Arc::clone(&read);
        let reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut buffer) {
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend_from_slice(&buffer[..n]);
            }
        });
        Collector {
            read,
            reader: Some(reader),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits until what was read after byte `from` holds `text`.
    fn wait_for(&self, text: &str, from: usize, what: &str) {
        wait_until(&format!("{text:?} in {what}"), || {
            let bytes = self.bytes();
            let shown = String::from_utf8_lossy(bytes.get(from..).unwrap_or_default());
            if shown.contains(text) {
                Ok(())
            } else {
                Err(format!("\n{}", String::from_utf8_lossy(&bytes)))
            }
        });
    }

    /// Everything, once the pipe has closed (the process and what inherited it are gone).
    fn finish(&mut self) -> Vec<u8> {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the reader ends");
        }
        self.bytes()
    }
}

/// A gzl started by `Test::spawn_live`. Killed if the test ends without `finish`.
pub struct Live {
    child: Option<Child>,
    stdout: Collector,
    stderr: Collector,
}

impl Live {
    /// Waits until gzl has printed `text` on stdout.
    pub fn wait_for_stdout(&self, text: &str) {
        self.stdout.wait_for(text, 0, "gzl's stdout");
    }

    /// Waits until gzl has printed `text` on stderr.
    pub fn wait_for_stderr(&self, text: &str) {
        self.stderr.wait_for(text, 0, "gzl's stderr");
    }

    /// Waits for gzl to end; what it printed and how it exited.
    pub fn finish(mut self) -> Run {
        let status = self
            .child
            .take()
            .expect("not finished")
            .wait()
            .expect("gzl ends");
        let stdout = self.stdout.finish();
        let stderr = self.stderr.finish();
        Run {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            raw_stdout: stdout,
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// gzl in a pseudo-terminal, started by `Test::terminal`. Killed if the test ends without
/// `finish`.
pub struct Terminal {
    child: Option<Child>,
    input: Option<ChildStdin>,
    shown: Collector,
    /// How much had been drawn when the last keys were typed.
    since: usize,
}

impl Terminal {
    /// Waits until the screen shows `text` after the last keys typed ("" waits for nothing).
    pub fn wait_for(&self, text: &str) {
        self.shown.wait_for(text, self.since, "the terminal");
    }

    pub fn type_keys(&mut self, keys: &str) {
        use std::io::Write as _;
        self.since = self.shown.bytes().len();
        let input = self.input.as_mut().expect("the terminal's input");
        input.write_all(keys.as_bytes()).expect("typed");
        input.flush().expect("sent");
    }

    /// Waits for gzl to end; whether it succeeded, and what it drew.
    pub fn finish(mut self) -> (bool, String) {
        drop(self.input.take());
        let status = self
            .child
            .take()
            .expect("not finished")
            .wait()
            .expect("gzl ends");
        let shown = self.shown.finish();
        (
            status.success(),
            String::from_utf8_lossy(&shown).replace('\r', ""),
        )
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
