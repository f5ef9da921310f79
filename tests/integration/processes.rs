//! Nothing a stage started outlives the stage, however it ends and wherever the process went:
//! another process group (`set -m`, GNU `timeout`), another session (`setsid`, a daemon that
//! forks twice), a cleared environment (`env -i`).

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Run, Test, process_alive, read_pid};

/// A process that leaves its stage's process group or session; each writes its pid to
/// `DIR/NAME.pid` and sleeps 1000 s.
#[derive(Clone, Copy)]
enum Escape {
    /// A new session, still holding the stage's output pipe.
    Setsid,
    /// A background job of a shell with job control: its own process group.
    OwnGroup,
    /// GNU `timeout`, which puts itself and its command in a process group of their own.
    Timeout,
    /// Forks twice and starts a new session, its output closed: a daemon.
    Daemon,
    /// An empty environment, so no marker: found as gzl's descendant.
    ClearedEnv,
    /// An empty environment and a new session: nothing says whose it is.
    ClearedEnvSetsid,
}

const ALL: [Escape; 6] = [
    Escape::Setsid,
    Escape::OwnGroup,
    Escape::Timeout,
    Escape::Daemon,
    Escape::ClearedEnv,
    Escape::ClearedEnvSetsid,
];

impl Escape {
    fn name(self) -> &'static str {
        match self {
            Escape::Setsid => "setsid",
            Escape::OwnGroup => "own-group",
            Escape::Timeout => "timeout",
            Escape::Daemon => "daemon",
            Escape::ClearedEnv => "cleared-env",
            Escape::ClearedEnvSetsid => "cleared-env-setsid",
        }
    }

    /// The Gzlfile lines (indented) that start it, with its pid file in `dir`.
    fn lines(self, dir: &Path) -> String {
        let pid = dir.join(format!("{}.pid", self.name()));
        let pid = pid.display();
        let body = format!("echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; exec sleep 1000");
        match self {
            Escape::Setsid => format!("  setsid sh -c '{body}' &\n"),
            Escape::OwnGroup => format!("  (set -m; sh -c '{body}' &)\n"),
            Escape::Timeout => format!("  timeout 1000 sh -c '{body}' &\n"),
            Escape::Daemon => format!(
                "  sh -c 'setsid sh -c \"{}\" </dev/null >/dev/null 2>&1 &'\n",
                body.replace('$', "\\$")
            ),
            Escape::ClearedEnv => format!("  env -i sh -c '{body}' &\n"),
            Escape::ClearedEnvSetsid => {
                format!("  env -i setsid sh -c '{body}' </dev/null >/dev/null 2>&1 &\n")
            }
        }
    }
}

/// Kills, when dropped, every process a test's stages may have left (and the gzl it started),
/// so that a failing test leaves nothing behind either.
struct Leftovers {
    files: Vec<PathBuf>,
    gzl: Option<u32>,
    /// `GZL_HOME=…` of the test, which every stage process that kept its environment carries.
    home: Vec<u8>,
}

impl Leftovers {
    fn new(test: &Test, dir: &Path, escapes: &[Escape]) -> Self {
        Leftovers {
            files: escapes
                .iter()
                .map(|e| dir.join(format!("{}.pid", e.name())))
                .collect(),
            gzl: None,
            home: format!("GZL_HOME={}", test.home().display()).into_bytes(),
        }
    }

    /// Waits until every escape has written its pid.
    fn wait_started(&self) {
        for file in &self.files {
            wait_for(file);
        }
    }

    /// Asserts that no process in the pid files is alive, within a few seconds.
    fn assert_gone(&self, when: &str) {
        for file in &self.files {
            let pid = read_pid(file);
            let deadline = Instant::now() + Duration::from_secs(10);
            while process_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(
                !process_alive(pid),
                "{} (pid {pid}) outlived its stage {when}",
                file.display()
            );
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if let Some(gzl) = self.gzl {
            let _ = kill(Pid::from_raw(gzl as i32), Signal::SIGKILL);
        }
        for file in &self.files {
            let Some(pid) = std::fs::read_to_string(file)
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok())
            else {
                continue;
            };
            // Only what is still one of ours: the pid may have been reused since.
            let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.starts_with(b"sleep\x001000"));
            if ours {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        // The stages themselves, when gzl was killed above.
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            if environ.split(|&b| b == 0).any(|var| var == self.home) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A stage `leaves` that starts `escapes`, and a stage `after` needing it that fails if any
/// of them is still alive when it starts.
fn leaving_stage(dir: &Path, escapes: &[Escape], then: &str) -> String {
    let mut gzlfile = String::from("leaves:\n");
    for escape in escapes {
        gzlfile.push_str(&escape.lines(dir));
    }
    gzlfile.push_str(&format!(
        "  while [ $(ls {} | grep -c 'pid$') -lt {} ]; do sleep 0.01; done\n  {then}\n",
        dir.display(),
        escapes.len()
    ));
    gzlfile.push_str("after: leaves\n");
    gzlfile.push_str(&format!(
        "  for f in {}/*.pid; do s=$(cut -d' ' -f3 /proc/$(cat $f)/stat 2>/dev/null || true); if [ -n \"$s\" ] && [ \"$s\" != Z ]; then echo \"$f alive\"; exit 1; fi; done\n",
        dir.display()
    ));
    gzlfile
}

fn pid_dir(test: &Test) -> PathBuf {
    let dir = test.outside("pids");
    std::fs::create_dir_all(&dir).expect("pid dir");
    dir
}

/// Runs a stage that starts `escapes` then ends with `then`; returns the run and asserts
/// that its dependent saw them gone, and that they are gone now.
fn run_leaving(escapes: &[Escape], then: &str, args: &[&str]) -> Run {
    let test = Test::new();
    let dir = pid_dir(&test);
    let leftovers = Leftovers::new(&test, &dir, escapes);
    test.write("Gzlfile", leaving_stage(&dir, escapes, then));
    let mut all = vec!["run", "--in-place", "-j", "1"];
    all.extend_from_slice(args);
    let run = test.gzl(&all);
    leftovers.assert_gone("(after the run)");
    run
}

// Each way out of a process group used to survive a stage that passed, and a daemon holding
// the output pipe kept the stage waiting for the grace period first.
#[test]
fn a_setsid_daemon_does_not_outlive_its_stage() {
    let run = run_leaving(&[Escape::Setsid], "true", &[]).status(0);
    run.summary_has("after", "passed");
}

#[test]
fn a_child_in_its_own_process_group_does_not_outlive_its_stage() {
    let run = run_leaving(&[Escape::OwnGroup], "true", &[]).status(0);
    run.summary_has("after", "passed");
}

#[test]
fn a_child_of_gnu_timeout_does_not_outlive_a_failed_stage() {
    let run = run_leaving(&[Escape::Timeout], "exit 3", &[]).status(1);
    run.summary_has("leaves", "failed");
}

#[test]
fn a_double_forked_daemon_does_not_outlive_its_stage() {
    let run = run_leaving(&[Escape::Daemon], "true", &[]).status(0);
    run.summary_has("after", "passed");
}

// `env -i` removes the run's token, which was the only way gzl recognised a stage's process.
#[test]
fn a_child_with_a_cleared_environment_does_not_outlive_its_stage() {
    let run = run_leaving(&[Escape::ClearedEnv, Escape::ClearedEnvSetsid], "true", &[]).status(0);
    run.summary_has("after", "passed");
}

#[test]
fn a_child_in_its_own_process_group_is_killed_at_timeout() {
    let test = Test::new();
    let dir = pid_dir(&test);
    let leftovers = Leftovers::new(&test, &dir, &ALL);
    let mut gzlfile = String::from("slow:\n  @timeout 3s\n");
    for escape in ALL {
        gzlfile.push_str(&escape.lines(&dir));
    }
    gzlfile.push_str("  sleep 1000\n");
    test.write("Gzlfile", gzlfile);
    let run = test
        .gzl(&["run", "--in-place", "--grace", "500ms"])
        .status(1);
    run.summary_has("slow", "timed out");
    leftovers.assert_gone("at its @timeout");
}

#[test]
fn a_process_that_left_its_stage_is_killed_at_idle_timeout() {
    let test = Test::new();
    let dir = pid_dir(&test);
    let leftovers = Leftovers::new(&test, &dir, &ALL);
    let mut gzlfile = String::from("quiet:\n  @idle-timeout 1s\n");
    for escape in ALL {
        gzlfile.push_str(&escape.lines(&dir));
    }
    // Silent from here on, once every escape is under way.
    gzlfile.push_str(&format!(
        "  while [ $(ls {} | grep -c 'pid$') -lt {} ]; do sleep 0.01; done\n  echo ready\n  sleep 1000\n",
        dir.display(),
        ALL.len()
    ));
    test.write("Gzlfile", gzlfile);
    let run = test
        .gzl(&["run", "--in-place", "--grace", "500ms"])
        .status(1);
    run.summary_has("quiet", "timed out");
    leftovers.assert_gone("at its @idle-timeout");
}

// A child that ignores SIGTERM and closed its output let the stage end at once, still running.
#[test]
fn a_background_child_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let test = Test::new();
    let dir = pid_dir(&test);
    let leftovers = Leftovers::new(&test, &dir, &[Escape::Setsid]);
    let pid = dir.join("setsid.pid");
    test.write(
        "Gzlfile",
        format!(
            "stubborn:\n  (trap '' TERM; setsid sh -c 'echo $$ > {0}.tmp; mv {0}.tmp {0}; exec sleep 1000' >/dev/null 2>&1 &)\n  while [ ! -e {0} ]; do sleep 0.01; done\n",
            pid.display()
        ),
    );
    test.gzl(&["run", "--in-place", "--grace", "300ms"])
        .status(0);
    leftovers.assert_gone("after the grace period");
}

/// A run whose stages start every escape and then wait; `-j 3` so they run side by side.
fn running_escapes(test: &Test, dir: &Path) -> Child {
    let mut gzlfile = String::from("a:\n");
    for escape in &ALL[..3] {
        gzlfile.push_str(&escape.lines(dir));
    }
    gzlfile.push_str("  sleep 1000\nb:\n");
    for escape in &ALL[3..] {
        gzlfile.push_str(&escape.lines(dir));
    }
    gzlfile.push_str("  sleep 1000\nc:\n  sleep 1000\n");
    test.write("Gzlfile", gzlfile);
    test.spawn(&["run", "--in-place", "-j", "3", "--grace", "2s"])
}

fn signal_gzl_ends_everything(signal: Signal) {
    let test = Test::new();
    let dir = pid_dir(&test);
    let mut leftovers = Leftovers::new(&test, &dir, &ALL);
    let child = running_escapes(&test, &dir);
    leftovers.gzl = Some(child.id());
    leftovers.wait_started();
    kill(Pid::from_raw(child.id() as i32), signal).expect("signal gzl");
    let run = Run::from(child.wait_with_output().expect("gzl ends")).status(130);
    leftovers.assert_gone(&format!("after {signal} to gzl"));
    run.summary_has("a", "cancelled");
    assert_eq!(test.runs()[0]["status"], "cancelled");
}

#[test]
fn sigterm_to_gzl_ends_everything_its_stages_started() {
    signal_gzl_ends_everything(Signal::SIGTERM);
}

#[test]
fn ctrl_c_to_gzl_ends_everything_its_stages_started() {
    signal_gzl_ends_everything(Signal::SIGINT);
}

// A closed terminal sends SIGHUP, which used to kill gzl outright and leave every stage running.
#[test]
fn sighup_to_gzl_ends_everything_its_stages_started() {
    signal_gzl_ends_everything(Signal::SIGHUP);
}

#[test]
fn stopping_a_stage_ends_what_left_its_process_group() {
    let test = Test::new();
    let dir = pid_dir(&test);
    let mut leftovers = Leftovers::new(&test, &dir, &ALL);
    let child = running_escapes(&test, &dir);
    leftovers.gzl = Some(child.id());
    leftovers.wait_started();
    test.gzl(&["stop", "1", "a", "--grace", "1s"]).status(0);
    test.gzl(&["stop", "1", "b", "--grace", "1s"]).status(0);
    test.gzl(&["stop", "1", "c", "--grace", "1s"]).status(0);
    let run = Run::from(child.wait_with_output().expect("gzl ends"));
    leftovers.assert_gone("after gzl stop");
    run.summary_has("a", "stopped");
    run.summary_has("b", "stopped");
}

#[test]
fn stopping_a_run_ends_what_left_its_stages_process_groups() {
    let test = Test::new();
    let dir = pid_dir(&test);
    let mut leftovers = Leftovers::new(&test, &dir, &ALL);
    let child = running_escapes(&test, &dir);
    leftovers.gzl = Some(child.id());
    leftovers.wait_started();
    test.gzl(&["stop", "last", "--grace", "1s"]).status(0);
    let run = Run::from(child.wait_with_output().expect("gzl ends"));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    leftovers.assert_gone("after gzl stop");
    assert_eq!(test.runs()[0]["status"], "stopped");
}

// With another stage running beside it, nothing says whose an `env -i setsid` orphan is; it
// must still end, with the run at the latest.
#[test]
fn an_unclaimed_orphan_ends_with_the_run_when_stages_ran_side_by_side() {
    let test = Test::new();
    let dir = pid_dir(&test);
    let leftovers = Leftovers::new(&test, &dir, &[Escape::ClearedEnvSetsid]);
    let pid = dir.join(format!("{}.pid", Escape::ClearedEnvSetsid.name()));
    let mut gzlfile = String::from("a:\n");
    gzlfile.push_str(&Escape::ClearedEnvSetsid.lines(&dir));
    gzlfile.push_str(&format!(
        "  while [ ! -e {0} ]; do sleep 0.01; done\nb:\n  while [ ! -e {0} ]; do sleep 0.01; done\n",
        pid.display()
    ));
    test.write("Gzlfile", gzlfile);
    test.gzl(&["run", "--in-place", "-j", "2"]).status(0);
    leftovers.assert_gone("after the run");
}
