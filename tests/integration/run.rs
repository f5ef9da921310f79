//! Running stages: order, parallelism, failure and skip propagation, timeouts, environment.

use crate::harness::{Test, read_pid, wait_for_death};

#[test]
fn a_diamond_runs_each_stage_after_what_it_needs() {
    // Each stage appends its name; `top` checks both branches ran before it.
    let test = Test::with_gzlfile(
        "top: left right\n  grep -q left order && grep -q right order\n  echo top >> order\n\
         left: base\n  grep -q base order\n  echo left >> order\n\
         right: base\n  grep -q base order\n  echo right >> order\n\
         base:\n  echo base > order\n",
    );
    test.gzl(&["run", "--in-place"]).status(0);
    let order = test.read("order");
    let lines: Vec<&str> = order.lines().collect();
    assert_eq!(lines.first(), Some(&"base"));
    assert_eq!(lines.last(), Some(&"top"));
    assert_eq!(lines.len(), 4);
}

#[test]
fn independent_stages_run_at_the_same_time() {
    // Each waits (up to a minute) for the other's file: only finishes if both run at once.
    let test = Test::with_gzlfile(
        "a:\n  touch a.started\n  for i in $(seq 600); do [ -e b.started ] && exit 0; sleep 0.1; done; exit 1\n\
         b:\n  touch b.started\n  for i in $(seq 600); do [ -e a.started ] && exit 0; sleep 0.1; done; exit 1\n",
    );
    test.gzl(&["run", "-j", "2"]).status(0);
}

#[test]
fn jobs_limits_how_many_run_at_once() {
    let test = Test::with_gzlfile(
        "a:\n  mkdir lock\n  sleep 0.3\n  rmdir lock\nb:\n  mkdir lock\n  sleep 0.3\n  rmdir lock\nc:\n  mkdir lock\n  sleep 0.3\n  rmdir lock\n",
    );
    test.gzl(&["run", "-j", "1"]).status(0);
}

#[test]
fn a_failure_skips_what_needs_it_and_the_rest_goes_on() {
    let test = Test::with_gzlfile(
        "build:\n  echo building\n  exit 3\ntest: build\n  touch test-ran\ndeploy: test\n  touch deploy-ran\nlint:\n  sleep 0.2\n  touch lint-ran\n",
    );
    let run = test.gzl(&["run", "--in-place"]).status(1);
    run.summary_has("build", "failed");
    run.summary_has("build", "exit code 3");
    run.summary_has("test", "skipped");
    run.summary_has("deploy", "skipped");
    run.summary_has("deploy", "build did not pass");
    run.summary_has("lint", "passed");
    assert!(!test.path("test-ran").exists());
    assert!(!test.path("deploy-ran").exists());
    assert!(test.path("lint-ran").exists());
    run.stderr_has("gzl logs 1 build");
}

#[test]
fn the_script_stops_at_the_first_failing_line_and_pipes_fail() {
    let test =
        Test::with_gzlfile("a:\n  false | true\n  touch after-pipe\nb:\n  cd sub\n  touch here\n");
    test.write("sub/.keep", "");
    test.gzl(&["run", "--in-place", "a"]).status(1);
    assert!(
        !test.path("after-pipe").exists(),
        "pipefail stops the script"
    );
    // Lines share one shell: `cd` carries over.
    test.gzl(&["run", "--in-place", "b"]).status(0);
    assert!(test.path("sub/here").exists());
}

#[test]
fn fail_fast_cancels_running_stages() {
    let test = Test::with_gzlfile(
        "slow:\n  echo $$ > slow.pid\n  sleep 1000\nbad:\n  while [ ! -s slow.pid ]; do sleep 0.05; done\n  exit 1\n",
    );
    let run = test
        .gzl(&["run", "--in-place", "-j", "2", "--fail-fast"])
        .status(1);
    run.summary_has("slow", "cancelled");
    run.summary_has("bad", "failed");
    wait_for_death(read_pid(&test.path("slow.pid")), "the cancelled stage");
}

#[test]
fn fail_fast_does_not_start_waiting_stages() {
    let test = Test::with_gzlfile("bad:\n  exit 1\nlater:\n  touch later-ran\n");
    let run = test.gzl(&["run", "-j", "1", "--fail-fast"]).status(1);
    run.summary_has("later", "cancelled");
    assert!(!test.path("later-ran").exists());
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    // 3 s: time enough for the script to write its pids on a loaded machine.
    let test = Test::with_gzlfile(
        "slow:\n  @timeout 3s\n  sleep 1000 &\n  echo $! > child.pid\n  echo $$ > shell.pid\n  sleep 1000\n",
    );
    let run = test.gzl(&["run", "--in-place"]).status(1);
    run.summary_has("slow", "timed out");
    wait_for_death(read_pid(&test.path("child.pid")), "the background child");
    wait_for_death(read_pid(&test.path("shell.pid")), "the shell");
    let log = test.gzl(&["logs", "last", "slow"]).status(0);
    assert!(
        log.stdout.contains("gzl: timed out after 3s"),
        "{}",
        log.stdout
    );
}

#[test]
fn an_idle_timeout_stops_a_silent_stage_but_not_a_chatty_one() {
    // `chatty` outlives its idle timeout by far, printing 20 times as often: a loaded machine
    // cannot stretch its pauses to the timeout.
    let test = Test::with_gzlfile(
        "silent:\n  @idle-timeout 2s\n  echo start\n  sleep 1000\n\
         chatty:\n  @idle-timeout 2s\n  for i in $(seq 30); do echo $i; sleep 0.1; done\n",
    );
    let run = test.gzl(&["run"]).status(1);
    run.summary_has("silent", "timed out");
    run.summary_has("silent", "no output for");
    run.summary_has("chatty", "passed");
}

#[test]
fn a_process_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let test = Test::with_gzlfile(
        "stubborn:\n  @timeout 3s\n  trap '' TERM\n  echo $$ > shell.pid\n  while true; do sleep 0.05; done\n",
    );
    test.gzl(&["run", "--in-place", "--grace", "300ms"])
        .status(1);
    wait_for_death(read_pid(&test.path("shell.pid")), "the stubborn shell");
}

#[test]
fn background_processes_do_not_outlive_a_passing_stage() {
    let test = Test::with_gzlfile("leaky:\n  sleep 1000 &\n  echo $! > child.pid\n  echo done\n");
    let run = test
        .gzl(&["run", "--in-place"])
        .status(0)
        .stdout_has("done");
    assert!(run.summary_of("leaky").contains("passed"));
    wait_for_death(read_pid(&test.path("child.pid")), "the background child");
}

#[test]
fn stages_get_the_gzl_environment_and_their_attributes() {
    let test = Test::with_gzlfile(
        "env:\n  @env GREETING=hello world\n  @env EMPTY=\n  @dir sub\n  echo \"$CI $GZL $GZL_RUN_ID $GZL_STAGE $GREETING [$EMPTY]\" > env.txt\n  echo \"$GZL_REPO_ROOT\" >> env.txt\n  echo \"$GZL_COMMIT\" >> env.txt\n  pwd >> env.txt\n",
    );
    test.write("sub/.keep", "");
    let commit = test.commit("first");
    test.gzl(&["run", "--in-place"]).status(0);
    let root = test.repo().canonicalize().expect("canonical");
    let env = test.read("sub/env.txt");
    let lines: Vec<&str> = env.lines().collect();
    assert_eq!(lines[0], "true 1 1 env hello world []");
    assert_eq!(lines[1], root.display().to_string());
    assert_eq!(lines[2], commit);
    assert_eq!(lines[3], root.join("sub").display().to_string());
}

#[test]
fn gzl_commit_is_empty_before_the_first_commit() {
    let test = Test::with_gzlfile("a:\n  echo \"[$GZL_COMMIT]\"\n");
    test.gzl(&["run"]).status(0).stdout_has("[]");
}

#[test]
fn shell_attribute_runs_another_interpreter_with_relative_indentation_kept() {
    let test = Test::with_gzlfile(
        "py:\n    @shell python3\n    import sys\n    def greet(name):\n        return 'hi ' + name\n\n    print(greet('there'))\n    @staticmethod\n    def later(): pass\n",
    );
    test.gzl(&["run"]).status(0).stdout_has("hi there");
}

#[test]
fn heredocs_keep_blank_lines_and_indentation() {
    let test = Test::with_gzlfile("a:\n    cat > out.txt <<'EOF'\n    one\n\n      two\n    EOF\n");
    test.gzl(&["run", "--in-place"]).status(0);
    assert_eq!(test.read("out.txt"), "one\n\n  two\n");
}

#[test]
fn crlf_and_bom_are_accepted() {
    let test = Test::new();
    test.write(
        "Gzlfile",
        "\u{feff}# windows\r\nbuild:\r\n  echo built\r\ntest: build\r\n  echo tested\r\n",
    );
    test.gzl(&["run"])
        .status(0)
        .stdout_has("built")
        .stdout_has("tested");
}

#[test]
fn tabs_indent_a_body_and_comments_may_sit_anywhere() {
    let test =
        Test::with_gzlfile("# top\nbuild:  # trailing\n\techo one\n# between\n\n\techo two\n");
    test.gzl(&["run"]).status(0).stdout_has("one\ntwo\n");
}

#[test]
fn a_group_passes_when_what_it_needs_passes() {
    let test = Test::with_gzlfile("a:\n  true\nb:\n  true\nall: a b\n");
    let run = test.gzl(&["run", "all"]).status(0);
    assert!(run.summary_of("all").contains("passed"));
}

#[test]
fn a_named_stage_runs_with_what_it_needs_and_nothing_else() {
    let test = Test::with_gzlfile(
        "build:\n  touch built\ntest: build\n  touch tested\nlint:\n  touch linted\n",
    );
    test.gzl(&["run", "--in-place", "test"]).status(0);
    assert!(test.path("built").exists());
    assert!(test.path("tested").exists());
    assert!(!test.path("linted").exists());
}

#[test]
fn a_missing_interpreter_fails_the_stage_with_a_message() {
    let test = Test::with_gzlfile("a:\n  @shell no-such-interpreter-xyz\n  true\n");
    let run = test.gzl(&["run"]).status(1);
    run.summary_has("a", "could not start");
    run.stdout_has("gzl: cannot start `no-such-interpreter-xyz`");
}

#[test]
fn a_missing_working_directory_fails_the_stage() {
    let test = Test::with_gzlfile("a:\n  @dir nowhere\n  true\n");
    test.gzl(&["run"])
        .status(1)
        .stdout_has("does not exist (set by @dir)");
}

#[test]
fn a_stage_killed_by_a_signal_is_reported() {
    let test = Test::with_gzlfile("a:\n  kill -9 $$\n");
    let run = test.gzl(&["run"]).status(1);
    run.summary_has("a", "killed by signal 9");
}

#[test]
fn comments_above_the_attributes_do_not_hide_them() {
    let test = Test::with_gzlfile(
        "a:\n    # why this stage exists\n    @env WHO=attribute\n    echo \"$WHO\"\n",
    );
    test.gzl(&["run"]).status(0).stdout_has("attribute");
}

#[test]
fn a_single_command_behaves_as_under_bash() {
    // Run without a shell for speed, but a missing program still exits 127 as in bash, and a
    // script without `#!` still runs as a shell script.
    let test = Test::with_gzlfile(
        "missing:\n  no-such-program-xyz --flag\nnoshebang:\n  ./plain.sh\nlocal-path:\n  @env PATH=bin:/usr/bin:/bin\n  tool\n",
    );
    test.write("plain.sh", "echo from plain script\n");
    test.write("bin/tool", "#!/bin/sh\necho local tool\n");
    for file in ["plain.sh", "bin/tool"] {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(test.path(file), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let run = test.gzl(&["run", "-j", "1"]).status(1);
    run.summary_has("missing", "exit code 127");
    run.stdout_has("command not found")
        .stdout_has("from plain script")
        .stdout_has("local tool");
}

#[test]
fn stages_carry_a_run_token() {
    let test = Test::with_gzlfile("a:\n  echo \"token=[$GZL_TOKEN]\"\n");
    let run = test.gzl(&["run"]).status(0);
    let token = run
        .stdout
        .split("token=[")
        .nth(1)
        .and_then(|t| t.split(']').next())
        .unwrap_or("");
    assert_eq!(token.len(), 32, "{}", run.stdout);
}

#[test]
fn a_body_of_comments_only_is_a_group() {
    let test = Test::with_gzlfile("a:\n  true\nall: a\n    # nothing to do here\n");
    let run = test.gzl(&["run"]).status(0);
    assert!(run.summary_of("all").contains("passed"));
}
