//! History under faults: a full disk, a file size limit, a read-only home, names that could
//! collide with gzl's own files, and who may read gzl's home.

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Run, Test, wait_for};

/// `gzl ARGS` as `test.command` makes it, run by `sh` after `setup` (a `ulimit`, a `umask`).
fn gzl_after(test: &Test, setup: &str, args: &[&str]) -> Run {
    let inner = test.command(args);
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("{setup}; exec \"$0\" \"$@\""))
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(test.repo())
        .env_clear()
        .stdin(Stdio::null());
    for (key, value) in inner.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    Run::from(command.output().expect("sh runs gzl"))
}

/// Whether the tests run as root (who ignores file modes and may mount).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// A tmpfs of `size` mounted at a new directory, unmounted when dropped; `None` (with the
/// reason printed) where this process may not mount, as an unprivileged user or in a
/// container without CAP_SYS_ADMIN.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str, why: &str) -> Option<Tmpfs> {
        if !is_root() {
            eprintln!("skipped: {why} needs root to mount a tmpfs");
            return None;
        }
        let dir = tempfile::tempdir().expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        if !mounted.is_ok_and(|status| status.success()) {
            eprintln!("skipped: {why} needs a tmpfs, and mount failed here");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system: writes a file until no space is left.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        loop {
            if let Err(error) = file.write_all(&block) {
                assert_eq!(error.raw_os_error(), Some(nix::libc::ENOSPC), "{error}");
                break;
            }
        }
        // Smaller writes too, so not even a page is left.
        while file.write_all(&[0u8; 512]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: after a failed test, stages a killed gzl left may still work in it.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A stage line that waits for `path` to exist, for at most 60 s (the harness's deadline).
fn wait_line(path: &Path) -> String {
    format!(
        "i=0; while [ ! -e {} ] && [ $i -lt 6000 ]; do sleep 0.01; i=$((i+1)); done",
        path.display()
    )
}

// A log write that fails (EFBIG under `ulimit -f`) used to stop all recording silently, or
// kill gzl with SIGXFSZ: it must be told at once, and the other logs and rows kept.
#[test]
fn a_log_past_the_file_size_limit_is_reported_and_other_logs_are_kept() {
    let test = Test::with_gzlfile(
        "big:\n    head -c 2000000 /dev/zero | tr '\\0' x; echo; echo big done\n\n\
         small: big\n    echo hello from small\n",
    );
    test.commit("init");
    // History is made first: migrating a new database takes more than the limit.
    test.gzl(&["ls"]).status(0);
    // 512 KiB (`sh` counts 512-byte blocks; bash, KiB): more than history needs for this run,
    // less than the log of `big`.
    let run = gzl_after(&test, "ulimit -f 1024", &["run", "--progress", "none"]).status(3);
    let log = test.home().join("runs/1/big.log");
    assert!(
        run.stderr.contains(&format!(
            "gzl: warning: cannot write the log of `big` ({})",
            log.display()
        )) && run.stderr.contains("File too large"),
        "{}",
        run.stderr
    );
    // The stage's output still shows in full, and the run passed.
    assert!(run.stdout.contains("big done"), "{}", run.stdout);
    assert!(
        run.stderr.contains("run 1 passed: 2 passed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("the log of `big` misses output (it keeps what was written before)"),
        "{}",
        run.stderr
    );
    // The log keeps what fit; the healthy stage's log is whole; history says passed.
    let kept = std::fs::read(&log).expect("big.log");
    assert!(!kept.is_empty() && kept.len() < 2_000_000, "{}", kept.len());
    assert!(kept.iter().all(|&b| b == b'x'));
    test.gzl(&["logs", "last", "small"])
        .status(0)
        .stdout_has("hello from small");
    let runs = test.runs();
    assert_eq!(runs[0]["status"], "passed");
    // Programs reading `--json` learn it too.
    let run = gzl_after(&test, "ulimit -f 1024", &["run", "--json", "--force-all"]).status(3);
    let last = run.stdout.lines().last().expect("run_finished");
    let finished: serde_json::Value = serde_json::from_str(last).expect("JSON");
    assert_eq!(finished["status"], "passed");
    assert!(
        finished["unrecorded"]
            .as_str()
            .is_some_and(|text| text.contains("the log of `big` misses output")),
        "{last}"
    );
}

/// A gzl that is killed if the test fails before it ends, so the tmpfs can be unmounted.
struct Gzl(std::process::Child);

impl Drop for Gzl {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `gzl run` with its home on `home`, its stderr read line by line into a channel.
fn spawn_run(
    test: &Test,
    home: &Path,
) -> (
    Gzl,
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
) {
    let mut child = test
        .command(&["run", "-j", "1", "--progress", "none"])
        .env("GZL_HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gzl starts");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, received) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (Gzl(child), received, reader)
}

/// Waits for a stderr line holding all of `parts`; returns every line read meanwhile.
fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, parts: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = parts.iter().all(|part| line.contains(part));
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {parts:?} on stderr:\n{}", seen.join("\n")),
        }
    }
}

// A full disk used to stop recording silently: the run was later shown `interrupted` while
// its summary had said `passed`, and healthy stages' logs were lost. Now the failure is told
// while the run goes on, the summary says history did not record the end, and gzl exits 3.
#[test]
fn a_full_disk_is_reported_at_once_and_the_run_status_stays_true() {
    let Some(disk) = Tmpfs::mount("4m", "a full disk") else {
        return;
    };
    let test = Test::new();
    let go = test.outside("go");
    let end = test.outside("end");
    test.write(
        "Gzlfile",
        format!(
            "first:\n    echo before\n    {}\n    head -c 20000 /dev/zero\n    {}\n\n\
             second: first\n    echo second\n",
            wait_line(&go),
            wait_line(&end)
        ),
    );
    test.commit("init");
    let home = disk.path().join("home");
    let (mut child, lines, reader) = spawn_run(&test, &home);
    let log = home.join("runs/1/first.log");
    wait_for("first logs its first line", || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("before"))
    });
    let filler = disk.fill();
    std::fs::write(&go, "").expect("go");
    // Told while the stage still runs, not at the end.
    wait_for_line(
        &lines,
        &[
            "gzl: warning: cannot write the log of `first`",
            "No space left on device",
        ],
    );
    std::fs::write(&end, "").expect("end");
    let status = child.0.wait().expect("gzl ends");
    // The reader must have read to the end before the lines are taken.
    reader.join().expect("reader");
    let stderr: Vec<String> = lines.try_iter().collect();
    let stderr = stderr.join("\n");
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("gzl: warning: cannot write run 1 to history")
            && stderr.contains("database or disk is full"),
        "{stderr}"
    );
    // The stages passed, and the summary does not pretend history holds that.
    assert!(
        stderr.contains("run 1 passed, not recorded: 2 passed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("it shows it as running, and as interrupted once this gzl has exited"),
        "{stderr}"
    );
    // With room again, history says what the summary said it would, and the log keeps what
    // was written before the disk filled.
    std::fs::remove_file(filler).expect("free the disk");
    let ls = test
        .command(&["ls", "--json"])
        .env("GZL_HOME", &home)
        .output()
        .expect("gzl ls");
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).expect("ls --json");
    assert_eq!(ls["runs"][0]["status"], "interrupted");
    let logs = test
        .command(&["logs", "1", "first"])
        .env("GZL_HOME", &home)
        .output()
        .expect("gzl logs");
    // A tmpfs fills by pages: the log keeps its first page.
    assert!(logs.stdout.starts_with(b"before\n"));
    assert!(logs.stdout.len() <= 4096, "{}", logs.stdout.len());
}

// History that cannot be written for a while must catch up once it can: the rows it missed
// are written again with the next ones, and the run's end is recorded as it was.
#[test]
fn history_that_fails_for_a_while_records_the_true_status_when_it_can() {
    let Some(disk) = Tmpfs::mount("4m", "a disk that fills and frees") else {
        return;
    };
    let test = Test::new();
    let go = test.outside("go");
    let end = test.outside("end");
    test.write(
        "Gzlfile",
        format!(
            "first:\n    echo before\n    {}\n\nsecond: first\n    {}\n    echo second\n",
            wait_line(&go),
            wait_line(&end)
        ),
    );
    test.commit("init");
    let home = disk.path().join("home");
    let (mut child, lines, reader) = spawn_run(&test, &home);
    wait_for("first logs its first line", || {
        std::fs::read_to_string(home.join("runs/1/first.log"))
            .is_ok_and(|text| text.contains("before"))
    });
    let filler = disk.fill();
    std::fs::write(&go, "").expect("go");
    // `first` ends: its row cannot be written.
    wait_for_line(&lines, &["gzl: warning: cannot write run 1 to history"]);
    std::fs::remove_file(filler).expect("free the disk");
    std::fs::write(&end, "").expect("end");
    let status = child.0.wait().expect("gzl ends");
    // The reader must have read to the end before the lines are taken.
    reader.join().expect("reader");
    let stderr: Vec<String> = lines.try_iter().collect();
    let stderr = stderr.join("\n");
    assert!(stderr.contains("is written again"), "{stderr}");
    assert!(stderr.contains("run 1 passed: 2 passed"), "{stderr}");
    // History caught up and no log lost output: the record is whole, and the run passed.
    assert_eq!(status.code(), Some(0), "{stderr}");
    let ls = test
        .command(&["ls", "--json"])
        .env("GZL_HOME", &home)
        .output()
        .expect("gzl ls");
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).expect("ls --json");
    assert_eq!(ls["runs"][0]["status"], "passed");
    assert_eq!(ls["runs"][0]["stages"][1]["status"], "passed");
}

/// `gzl ls` and `gzl logs` against the home at `home`.
fn ls_and_logs(test: &Test, home: &Path) {
    let ls = test
        .command(&["ls"])
        .env("GZL_HOME", home)
        .output()
        .expect("gzl ls");
    assert_eq!(
        ls.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    assert!(String::from_utf8_lossy(&ls.stdout).contains("passed"));
    let logs = test
        .command(&["logs", "last", "test"])
        .env("GZL_HOME", home)
        .output()
        .expect("gzl logs");
    assert_eq!(
        logs.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "tested\n");
}

// Reading history used to need writing it (WAL's -shm file, settling runs): `gzl ls` and
// `gzl logs` failed on a home they could not write.
#[test]
fn ls_and_logs_work_on_a_read_only_history() {
    let test = Test::with_gzlfile("test:\n    echo tested\n");
    test.commit("init");
    test.gzl(&["run"]).status(0);
    if is_root() {
        // Root ignores file modes: a read-only bind mount is what stops it writing.
        let view = tempfile::tempdir().expect("mount point");
        let mounted = Command::new("mount")
            .args(["--bind", "-o", "ro"])
            .arg(test.home())
            .arg(view.path())
            .status();
        if !mounted.is_ok_and(|status| status.success()) {
            eprintln!("skipped: as root, a read-only home needs a bind mount, and mount failed");
            return;
        }
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = Command::new("umount").arg(self.0).status();
            }
        }
        let _unmount = Unmount(view.path());
        ls_and_logs(&test, view.path());
    } else {
        let set_mode = |mode: u32| {
            for entry in [
                test.home(),
                test.home().join("runs"),
                test.home().join("runs/1"),
            ] {
                std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode))
                    .expect("chmod");
            }
        };
        set_mode(0o500);
        ls_and_logs(&test, &test.home());
        set_mode(0o700);
    }
}

// On a full disk `gzl ls` and `gzl logs` must still show what history holds.
#[test]
fn ls_and_logs_work_on_a_full_disk() {
    let Some(disk) = Tmpfs::mount("4m", "a full disk") else {
        return;
    };
    let test = Test::with_gzlfile("test:\n    echo tested\n");
    test.commit("init");
    let home = disk.path().join("home");
    let run = test
        .command(&["run"])
        .env("GZL_HOME", &home)
        .output()
        .expect("run");
    assert_eq!(run.status.code(), Some(0));
    disk.fill();
    ls_and_logs(&test, &home);
}

// A stage's log and gzl's stop markers shared one directory: the log of a stage `stop-y`
// was the marker of a stage `y.log`, which then read as stopped when it failed.
#[test]
fn a_stage_named_like_a_marker_does_not_collide_with_it() {
    let test = Test::with_gzlfile("stop-y:\n    echo hello\n\ny.log: stop-y\n    exit 1\n");
    test.commit("init");
    let run = test.gzl(&["run"]).status(1);
    run.summary_has("y.log", "failed");
    assert!(run.stderr.contains("run 1 failed"), "{}", run.stderr);
    test.gzl(&["logs", "last", "stop-y"])
        .status(0)
        .stdout_has("hello");
    assert_eq!(test.runs()[0]["status"], "failed");
}

/// The mode bits of `path`.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

// Logs, scripts and history hold what stages print: gzl's home was readable by every user
// (made with the umask's 0755 and 0644).
#[test]
fn gzl_home_is_private_to_the_user() {
    let test = Test::with_gzlfile("test:\n    echo secret output\n");
    test.commit("init");
    // A umask that lets everyone read: gzl's modes must not depend on it.
    gzl_after(&test, "umask 000", &["run"]).status(0);
    let home = test.home();
    for dir in [
        home.clone(),
        home.join("runs"),
        home.join("runs/1"),
        home.join("scripts"),
        home.join("objects"),
        home.join("locks"),
        home.join("cache"),
        home.join("config"),
    ] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for file in [home.join("history.db"), home.join("runs/1/test.log")] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    for script in std::fs::read_dir(home.join("scripts")).expect("scripts") {
        let script = script.expect("script").path();
        assert_eq!(mode(&script), 0o600, "{}", script.display());
    }
}

// A home made by an older gzl is tightened; a `GZL_HOME` that existed before gzl (it may be
// shared) is not gzl's to change, but what gzl keeps in it is private.
#[test]
fn an_open_home_is_tightened_where_gzl_made_it() {
    let test = Test::with_gzlfile("test:\n    echo output\n");
    test.commit("init");
    let home = test.home();
    std::fs::create_dir_all(home.join("runs")).expect("home");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(home.join("runs"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    test.gzl(&["run"]).status(0);
    assert_eq!(mode(&home), 0o755);
    assert_eq!(mode(&home.join("runs")), 0o700);
    assert_eq!(mode(&home.join("history.db")), 0o600);
}

// Too many open files used to stop recording at the first log gzl could not open: the other
// stages' logs were lost and the run ended `interrupted`. The limit that makes a log fail
// depends on how many files gzl holds, so the test looks for it: from too few for the stages
// to start, up to enough for every log.
#[test]
fn too_many_open_files_is_reported_and_logs_are_kept() {
    const STAGES: usize = 6;
    let test = Test::new();
    let go = test.outside("go");
    let end = test.outside("end");
    let mut gzlfile = String::new();
    for i in 1..=STAGES {
        gzlfile.push_str(&format!(
            "s{i}:\n    touch {}\n    {}\n    echo from s{i}\n    touch {}\n    {}\n\n",
            test.outside(&format!("started-s{i}")).display(),
            wait_line(&go),
            test.outside(&format!("printed-s{i}")).display(),
            wait_line(&end),
        ));
    }
    test.write("Gzlfile", gzlfile);
    test.commit("init");
    let count = |prefix: &str| {
        (1..=STAGES)
            .filter(|i| test.outside(&format!("{prefix}-s{i}")).exists())
            .count()
    };
    for limit in 16..=96 {
        let home = test.outside(&format!("home-{limit}"));
        for prefix in ["started", "printed"] {
            for i in 1..=STAGES {
                let _ = std::fs::remove_file(test.outside(&format!("{prefix}-s{i}")));
            }
        }
        let _ = std::fs::remove_file(&go);
        let _ = std::fs::remove_file(&end);
        // History is made first, without the limit.
        let made = test.command(&["ls"]).env("GZL_HOME", &home).output();
        assert!(made.is_ok_and(|o| o.status.success()));
        let inner = test.command(&["run", "-j", &STAGES.to_string(), "--progress", "plain"]);
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {limit}; exec \"$0\" \"$@\""))
            .arg(inner.get_program())
            .args(inner.get_args())
            .current_dir(test.repo())
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in inner.get_envs() {
            if let Some(value) = value {
                command.env(key, value);
            }
        }
        command.env("GZL_HOME", &home);
        let mut child = Gzl(command.spawn().expect("gzl starts"));
        let stderr = child.0.stderr.take().expect("stderr");
        let (lines, received) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line);
            }
        });
        // Every stage starts, or one could not (too few files), or gzl has ended.
        let mut seen: Vec<String> = Vec::new();
        wait_for("the stages start, or gzl ends", || {
            seen.extend(received.try_iter());
            count("started") == STAGES
                || seen.iter().any(|line| line.contains(": failed in"))
                || child.0.try_wait().is_ok_and(|s| s.is_some())
        });
        let started = count("started") == STAGES;
        std::fs::write(&go, "").expect("go");
        if started {
            // Each stage has printed, and gzl has logged it or said it could not.
            let runs = home.join("runs/1");
            wait_for("every log is made or reported", || {
                seen.extend(received.try_iter());
                (1..=STAGES).all(|i| {
                    runs.join(format!("s{i}.log")).exists()
                        || seen
                            .iter()
                            .any(|line| line.contains(&format!("the log of `s{i}`")))
                }) || child.0.try_wait().is_ok_and(|s| s.is_some())
            });
        }
        std::fs::write(&end, "").expect("end");
        let status = child.0.wait().expect("gzl ends");
        reader.join().expect("reader");
        seen.extend(received.try_iter());
        let stderr = seen.join("\n");
        // Below the window the stages cannot even start; look further.
        if !started || !stderr.contains("cannot create the log of") {
            assert_ne!(
                status.code(),
                Some(0),
                "no limit made a log fail before every log could be made"
            );
            continue;
        }
        assert!(stderr.contains("Too many open files"), "{stderr}");
        assert_eq!(status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("run 1 passed: 6 passed"), "{stderr}");
        // The logs that could be made hold their stage's output, and history holds the run.
        let mut kept = 0;
        for i in 1..=STAGES {
            let lost = stderr.contains(&format!("cannot create the log of `s{i}`"));
            let logs = test
                .command(&["logs", "1", &format!("s{i}")])
                .env("GZL_HOME", &home)
                .output()
                .expect("gzl logs");
            if !lost {
                kept += 1;
                assert_eq!(
                    String::from_utf8_lossy(&logs.stdout),
                    format!("from s{i}\n")
                );
            }
        }
        assert!(kept > 0, "{stderr}");
        let ls = test
            .command(&["ls", "--json"])
            .env("GZL_HOME", &home)
            .output()
            .expect("gzl ls");
        let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).expect("ls --json");
        assert_eq!(ls["runs"][0]["status"], "passed");
        return;
    }
    panic!("no limit up to 96 open files let the stages start");
}
