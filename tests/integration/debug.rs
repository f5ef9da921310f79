//! `gzl debug`: a shell where a stage ran, as it left it, with the environment it had.

use std::io::Write as _;
use std::process::Stdio;

use crate::harness::{Run, Test};

/// `gzl debug ARGS` with `script` as the shell's input.
fn debug_shell(test: &Test, args: &[&str], script: &str) -> Run {
    let mut child = test
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gzl starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the script");
    Run::from(child.wait_with_output().expect("gzl ends"))
}

#[test]
fn print_env_matches_the_environment_the_stage_had() {
    let test = Test::new();
    let seen = test.outside("env");
    test.write(
        "Gzlfile",
        format!(
            "test:\n    @env MODE=strict\n    @dir sub\n    env | grep -E '^(GZL_|MODE=|PWD=|CI=)' | grep -v -E '^GZL_(HOME|RELEASE_URL)=' | sort > {}\n    exit 1\n",
            seen.display()
        ),
    );
    test.write("sub/.keep", "");
    test.commit("first");
    test.gzl(&["run"]).status(1);
    let printed = test
        .gzl(&["debug", "last", "test", "--print-env"])
        .status(0);
    let mut printed: Vec<&str> = printed.stdout.lines().collect();
    printed.retain(|l| {
        l.starts_with("GZL_")
            || l.starts_with("MODE=")
            || l.starts_with("PWD=")
            || l.starts_with("CI=")
    });
    printed.sort_unstable();
    assert_eq!(printed, test.outside_lines("env"));
}

#[test]
fn the_shell_opens_where_the_stage_ran_as_it_left_it() {
    let test = Test::with_gzlfile(
        "test:\n    @env MODE=strict\n    @dir sub\n    echo left > debris\n    exit 3\n",
    );
    test.write("sub/.keep", "");
    test.commit("first");
    test.gzl(&["run"]).status(1);
    let run = debug_shell(
        &test,
        &["debug", "1", "test", "--shell", "/bin/sh"],
        "pwd\ncat debris\necho \"$GZL_STAGE $MODE $GZL_DEBUG\"\n",
    )
    .status(0)
    .stderr_has("gzl debug: run 1, stage `test` (failed)");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].ends_with("/sub"), "{}", run.stdout);
    assert_eq!(&lines[1..], ["left", "test strict 1"]);
    test.gzl(&["debug", "1", "tset"])
        .status(2)
        .stderr_has("did you mean `test`?");
}

#[test]
fn a_workspace_used_since_is_checked_out_again_at_the_runs_source() {
    let test = Test::with_gzlfile("test:\n    echo left > debris\n    exit 1\n");
    test.write("gzl.toml", "[workspaces]\npool = 1\n");
    test.write("version", "one\n");
    test.commit("first");
    test.gzl(&["run"]).status(1);
    test.write("version", "two\n");
    test.commit("second");
    // The pool of one gives run 1's workspace to run 2.
    test.gzl(&["run"]).status(1);
    let run = debug_shell(
        &test,
        &["debug", "1", "test", "--shell", "/bin/sh"],
        "cat version\nls debris 2>/dev/null || echo no debris\n",
    )
    .status(0)
    .stderr_has("checked out again");
    assert_eq!(run.stdout, "one\nno debris\n");
}

#[test]
fn a_run_in_place_opens_in_the_repository() {
    let test = Test::with_gzlfile("test:\n    exit 1\n");
    test.commit("first");
    test.gzl(&["run", "--in-place"]).status(1);
    let run = debug_shell(
        &test,
        &["debug", "1", "test", "--shell", "/bin/sh"],
        "pwd\n",
    )
    .status(0);
    assert_eq!(
        run.stdout.trim(),
        test.repo().canonicalize().unwrap().to_str().unwrap()
    );
}

#[test]
fn debug_refuses_stages_that_never_ran_and_runs_of_other_repositories() {
    let test = Test::with_gzlfile("test:\n    true\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.gzl(&["run"]).status(0);
    test.gzl(&["debug", "2", "test", "--print-env"])
        .status(2)
        .stderr_has("never started (cached)");
    let other = tempfile::tempdir().unwrap();
    std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(other.path())
        .status()
        .unwrap();
    let run = Run::from(
        test.command(&["debug", "1", "test", "--print-env"])
            .current_dir(other.path())
            .output()
            .unwrap(),
    );
    run.status(2).stderr_has("run 1 is a run of");
}

#[test]
fn run_debug_opens_a_shell_where_a_stage_failed_and_goes_on_or_stops() {
    let test = Test::new();
    // `other` runs beside the shell until the test lets it end (or a minute passes): it is
    // still running when the question is answered.
    let go = test.outside("go");
    test.write(
        "Gzlfile",
        format!(
            "fails:\n    echo left > debris\n    exit 3\nother:\n    for i in $(seq 3000); do [ -e {} ] && break; sleep 0.02; done\n    echo other done\n",
            go.display()
        ),
    );
    test.commit("first");
    let mut terminal = test.terminal("run --debug");
    terminal.wait_for("a shell where it ran");
    terminal.type_keys("echo \"inside $GZL_STAGE $(cat debris)\"\n");
    terminal.wait_for("inside fails left");
    terminal.type_keys("exit\n");
    terminal.wait_for("go on with the run?");
    terminal.type_keys("y\n");
    std::fs::write(&go, "").unwrap();
    let (_, shown) = terminal.finish();
    assert!(
        shown.contains("`fails` failed; a shell where it ran"),
        "{shown}"
    );
    assert!(shown.contains("inside fails left"), "{shown}");
    assert!(shown.contains("other done"), "the run went on:\n{shown}");
    assert_eq!(test.runs()[0]["status"], "failed");

    std::fs::remove_file(&go).unwrap();
    let (_, shown) = test.in_terminal(
        "run --debug --force-all",
        &[
            ("a shell where it ran", "exit\n"),
            ("go on with the run?", "n\n"),
        ],
    );
    assert!(shown.contains("stopping the run"), "{shown}");
    assert!(!shown.contains("other done"), "{shown}");
    assert_eq!(test.runs()[0]["status"], "cancelled");

    test.gzl(&["run", "--debug"])
        .status(2)
        .stderr_has("--debug opens a shell, so it needs a terminal");
}
