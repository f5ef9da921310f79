//! What runs print: raw or prefixed output, logs stored byte for byte, JSON events.

use crate::harness::Test;

#[test]
fn one_stage_at_a_time_prints_output_as_is() {
    let test = Test::with_gzlfile("a:\n  echo first\nb: a\n  echo second\n");
    let run = test.gzl(&["run"]).status(0);
    assert_eq!(run.stdout, "first\nsecond\n");
}

#[test]
fn stages_side_by_side_prefix_each_line_with_their_name() {
    let test = Test::with_gzlfile(
        "build:\n  echo out\n  echo err >&2\n  printf unfinished\nlint-all:\n  echo linted\n",
    );
    let run = test.gzl(&["run", "-j", "2"]).status(0);
    assert!(run.stdout.contains("build    | out\n"), "{}", run.stdout);
    assert!(run.stdout.contains("build    | err\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains("build    | unfinished\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("lint-all | linted\n"), "{}", run.stdout);
}

#[test]
fn quiet_prints_only_the_summary() {
    let test = Test::with_gzlfile("a:\n  echo noisy\n");
    let run = test.gzl(&["run", "--quiet"]).status(0);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    run.stderr_has("run 1 passed: 1 passed");
}

// `-q` on 5,000 stages printed 5,001 lines: one per passed or cached stage.
#[test]
fn quiet_prints_failures_and_the_summary_not_a_line_per_stage() {
    let test = Test::with_gzlfile("a:\n  echo noisy\nb:\n  echo failing\n  exit 3\nc: b\n  true\n");
    test.commit("a, a failing b, and c after it");
    test.gzl(&["run", "--quiet"]).status(1);
    // `a` is cached now, `b` fails again and `c` is skipped.
    let run = test.gzl(&["run", "--quiet"]).status(1);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stderr);
    assert!(
        lines[0].starts_with("  failed    b") && lines[0].ends_with("exit code 3"),
        "{}",
        run.stderr
    );
    assert!(
        lines[1].starts_with("run 2 failed: 1 cached, 1 failed, 1 skipped in "),
        "{}",
        run.stderr
    );
    assert_eq!(lines[2], "  see its log: gzl logs 2 b");
}

#[test]
fn stdout_and_stderr_interleave_in_the_log_as_written() {
    let test = Test::with_gzlfile("a:\n  echo 1\n  echo 2 >&2\n  echo 3\n  echo 4 >&2\n");
    test.gzl(&["run"]).status(0);
    test.gzl(&["logs", "last", "a"])
        .status(0)
        .stdout_has("1\n2\n3\n4\n");
}

#[test]
fn output_that_is_not_utf8_is_stored_as_it_came() {
    let test = Test::with_gzlfile("bin:\n  printf 'ok \\377\\376 \\000 end\\n'\n");
    let run = test.gzl(&["run"]).status(0);
    assert_eq!(run.raw_stdout, b"ok \xff\xfe \x00 end\n");
    let logs = test.gzl(&["logs", "last", "bin"]).status(0);
    assert_eq!(logs.raw_stdout, b"ok \xff\xfe \x00 end\n");
}

#[test]
fn a_huge_line_is_stored_whole_while_memory_stays_bounded() {
    // 200 MB without a newline, beside another stage so output is prefixed line by line.
    let test = Test::with_gzlfile(
        "huge:\n  head -c 200000000 /dev/zero | tr '\\0' x\nother:\n  echo small\n",
    );
    let (code, peak_kb) = run_measuring_memory(&test, &["run", "-j", "2", "--quiet"]);
    assert_eq!(code, Some(0));
    let log = test.home().join("runs/1/huge.log");
    assert_eq!(std::fs::metadata(&log).expect("log").len(), 200_000_000);
    assert!(
        peak_kb < 100_000,
        "gzl's peak memory {peak_kb} kB grew with the output"
    );
}

#[test]
fn gigabytes_of_output_pass_through_in_bounded_memory() {
    let test = Test::with_gzlfile("flood:\n  head -c 1000000000 /dev/zero | tr '\\0' '\\n'\n");
    let (code, peak_kb) = run_measuring_memory(&test, &["run", "--quiet"]);
    assert_eq!(code, Some(0));
    let log = test.home().join("runs/1/flood.log");
    assert_eq!(std::fs::metadata(&log).expect("log").len(), 1_000_000_000);
    assert!(
        peak_kb < 100_000,
        "gzl's peak memory {peak_kb} kB grew with the output"
    );
    std::fs::remove_file(log).expect("remove the big log");
}

/// Runs gzl to its end, sampling its peak resident memory (VmHWM) while it lives.
fn run_measuring_memory(test: &Test, args: &[&str]) -> (Option<i32>, u64) {
    let mut child = test.command(args).spawn().expect("gzl starts");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path)
            && let Some(kb) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().expect("gzl's status") {
            return (status.code(), peak_kb);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn json_events_describe_the_run() {
    let test = Test::with_gzlfile("build:\n  echo built\ntest: build\n  echo tested\n  exit 4\n");
    let run = test.gzl(&["run", "--json"]).status(1);
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "run_started",
            "stage_started",
            "output",
            "stage_finished",
            "stage_started",
            "output",
            "stage_finished",
            "run_finished"
        ]
    );
    assert_eq!(events[0]["schema"], 1);
    assert_eq!(events[0]["stages"][1]["needs"][0], "build");
    assert_eq!(events[2]["line"], "built");
    assert_eq!(events[6]["status"], "failed");
    assert_eq!(events[6]["exit_code"], 4);
    assert_eq!(events[7]["status"], "failed");
}

#[test]
fn a_closed_stderr_does_not_crash_gzl_or_strand_its_stages() {
    // Regression: tracing reported the broken pipe with `eprintln!`, which panicked mid-run.
    let test = Test::with_gzlfile("a:\n  sleep 0.2\nb:\n  sleep 0.2\n");
    let mut child = test
        .command(&["run", "-j", "2"])
        .env("GZL_LOG", "gzl=trace")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gzl starts");
    drop(child.stderr.take());
    assert_eq!(child.wait().expect("gzl ends").code(), Some(0));
    assert_eq!(test.runs()[0]["status"], "passed");
}

#[test]
fn off_a_terminal_progress_is_a_line_per_stage_start_and_end() {
    let test = Test::with_gzlfile("build:\n    echo building\ntest: build\n    exit 2\n");
    test.commit("first");
    let run = test.gzl(&["run"]).status(1);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("gzl: "))
        .collect();
    let expected = [
        "gzl: start `build`",
        "gzl: end `build`: passed in ",
        "gzl: start `test`",
        "gzl: end `test`: failed in ",
    ];
    for (line, expected) in lines.iter().zip(expected) {
        assert!(line.starts_with(expected), "{}", run.stderr);
    }
    assert_eq!(lines.len(), 4, "{}", run.stderr);
    let quiet = test
        .gzl(&["run", "--force-all", "--progress", "none"])
        .status(1);
    assert!(!quiet.stderr.contains("gzl: start"), "{}", quiet.stderr);
}

#[test]
fn on_a_terminal_progress_shows_bars_with_the_time_left() {
    // 2 s, median and run: time enough to draw the bar with time left on a loaded machine.
    let test = Test::with_gzlfile("slow:\n    sleep 2\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    // `script` runs gzl in a pseudo-terminal, as a person would.
    let gzl = env!("CARGO_BIN_EXE_gzl");
    let run = std::process::Command::new("script")
        .args(["-qec", &format!("{gzl} run --force-all"), "/dev/null"])
        .current_dir(test.repo())
        .env("GZL_HOME", test.home())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("TERM", "xterm")
        .output()
        .expect("script (util-linux) runs gzl in a pseudo-terminal");
    let shown = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{shown}");
    assert!(shown.contains("0/1 stages"), "{shown}");
    assert!(shown.contains("left"), "{shown}");
    assert!(
        shown.contains("slow ["),
        "a bar towards the median: {shown}"
    );
    assert!(shown.contains("run 2"), "{shown}");
}

// bash's error lines named gzl's stored script (`/…/scripts/6b53…: line 1: …`), a file people
// never edit, shared by every stage with the same text: they name the Gzlfile's line instead.
#[test]
fn a_failing_line_names_the_gzlfile_line_and_stage_not_the_stored_script() {
    let test = Test::with_gzlfile(concat!(
        "build:\n",
        "    true\n",
        "\n",
        "# The tests.\n",
        "test: build\n",
        "    echo start\n",
        "    nosuchcmd --flag\n",
        "    echo after\n",
        "again:\n",
        "    echo start\n",
        "    nosuchcmd --flag\n",
        "    echo after\n",
        "posix:\n",
        "    @shell sh -e\n",
        "    echo in sh\n",
        "\n",
        "    nosuch_in_sh\n",
        "one:\n",
        "    nosuch_alone\n",
        "unclosed:\n",
        "    if true; then\n",
        "      echo never\n",
    ));
    let run = test.gzl(&["run", "-j", "1"]).status(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    // `test` and `again` share one stored script; each names its own line.
    assert!(
        lines.contains(&"Gzlfile:7 (test): nosuchcmd: command not found"),
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&"Gzlfile:11 (again): nosuchcmd: command not found"),
        "{}",
        run.stdout
    );
    // dash says `not found`, a bash as sh `command not found`.
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("Gzlfile:17 (posix): nosuch_in_sh: ")),
        "{}",
        run.stdout
    );
    // A single command runs without a shell; when it cannot start, the shell says so.
    assert!(
        lines.contains(&"Gzlfile:19 (one): nosuch_alone: command not found"),
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&"Gzlfile:22 (unclosed): syntax error: unexpected end of file"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("scripts/"), "{}", run.stdout);
    // The log holds what was shown.
    test.gzl(&["logs", "1", "test"])
        .status(0)
        .stdout_has("start\nGzlfile:7 (test): nosuchcmd: command not found\n");
}

// Another interpreter's messages are its own: gzl rewrites only bash's and sh's.
#[test]
fn other_shells_error_lines_are_left_as_they_are() {
    let test = Test::with_gzlfile("py:\n    @shell python3\n    import sys\n    undefined_name\n");
    test.gzl(&["run"])
        .status(1)
        .stdout_has("scripts/")
        .stdout_has("line 2, in <module>");
}

// A generated stage has no line in the Gzlfile: its error lines name its generator's output,
// where its text is.
#[test]
fn a_generated_stages_failing_line_names_its_generator() {
    let test = Test::with_gzlfile(concat!(
        "gen:\n",
        "    @generates\n",
        "    printf 'child:\\n    echo child\\n    nosuch_generated\\n'\n",
    ));
    test.gzl(&["run"])
        .status(1)
        .stdout_has("gen's output:3 (child): nosuch_generated: command not found\n");
}
