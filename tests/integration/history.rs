//! Run history: recorded runs, listed, looked up, shared by concurrent gzl processes.

use crate::harness::{Run, Test};

#[test]
fn two_runs_at_once_both_succeed_and_are_both_recorded() {
    let test = Test::with_gzlfile("a:\n  sleep 0.3\n  echo a\nb:\n  sleep 0.3\n");
    let other = Test::with_gzlfile("c:\n  sleep 0.3\n");
    let first = test.spawn(&["run"]);
    let second = test.spawn(&["run"]);
    let third = other
        .command(&["run"])
        .env("GZL_HOME", test.home())
        .spawn()
        .expect("gzl starts");
    // `ls` while they run works.
    test.gzl(&["ls", "--all-repos"]).status(0);
    Run::from(first.wait_with_output().expect("first")).status(0);
    Run::from(second.wait_with_output().expect("second")).status(0);
    assert_eq!(
        third.wait_with_output().expect("third").status.code(),
        Some(0)
    );
    let runs = test.runs();
    assert_eq!(runs.len(), 2, "only this repository's runs");
    assert!(runs.iter().all(|r| r["status"] == "passed"));
    let all = test.gzl(&["ls", "--all-repos", "--json"]).status(0);
    let value: serde_json::Value = serde_json::from_str(&all.stdout).expect("JSON");
    assert_eq!(value["runs"].as_array().map(Vec::len), Some(3));
}

#[test]
fn a_run_records_its_commit_branch_and_stages() {
    let test = Test::with_gzlfile("build:\n  echo b\ntest: build\n  exit 1\n");
    let commit = test.commit("first");
    test.gzl(&["run"]).status(1);
    let runs = test.runs();
    let run = &runs[0];
    assert_eq!(run["id"], 1);
    assert_eq!(run["commit"], commit);
    assert_eq!(run["branch"], "main");
    assert_eq!(run["dirty"], false);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["stage_counts"]["total"], 2);
    assert_eq!(run["stage_counts"]["passed"], 1);
    assert_eq!(run["stage_counts"]["failed"], 1);
    assert_eq!(run["gzl_version"], env!("CARGO_PKG_VERSION"));
    let ls = test.gzl(&["ls"]).status(0);
    let lines: Vec<&str> = ls.stdout.lines().collect();
    assert_eq!(lines[0], format!("{}  first  (main)", &commit[..8]));
    assert!(lines[1].contains("1 passed, 1 failed"), "{}", ls.stdout);
}

#[test]
fn a_dirty_tree_is_recorded_as_dirty() {
    let test = Test::with_gzlfile("a:\n  true\n");
    test.commit("first");
    test.write("Gzlfile", "a:\n  echo changed\n");
    test.gzl(&["run"]).status(0);
    assert_eq!(test.runs()[0]["dirty"], true);
    test.gzl(&["ls"])
        .status(0)
        .stdout_has("snapshot of changes");
}

#[test]
fn ls_limits_and_orders_newest_first() {
    let test = Test::with_gzlfile("a:\n  true\n");
    for _ in 0..3 {
        test.gzl(&["run"]).status(0);
    }
    let ls = test.gzl(&["ls", "--limit", "2"]).status(0);
    let ids: Vec<&str> = ls
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids, ["3", "2"]);
}

#[test]
fn logs_finds_runs_by_id_last_and_commit() {
    let test = Test::with_gzlfile("say:\n  echo \"run at $GZL_COMMIT\"\nquiet:\n  true\n");
    let first = test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("changed", "so the second commit runs again");
    let second = test.commit("second");
    test.gzl(&["run"]).status(0);
    test.gzl(&["logs", "1", "say"])
        .status(0)
        .stdout_has(&format!("run at {first}"));
    test.gzl(&["logs", "last", "say"])
        .status(0)
        .stdout_has(&format!("run at {second}"));
    test.gzl(&["logs", "HEAD~1", "say"])
        .status(0)
        .stdout_has(&format!("run at {first}"));
    test.gzl(&["logs", &first[..7], "say"])
        .status(0)
        .stdout_has(&format!("run at {first}"));
    // Without a stage: every stage under a header.
    test.gzl(&["logs", "last"])
        .status(0)
        .stdout_has("==> say (passed) <==\n")
        .stdout_has("==> quiet (passed) <==\n");
}

#[test]
fn logs_errors_name_what_is_missing() {
    let test = Test::with_gzlfile("say:\n  echo hi\n");
    test.gzl(&["logs", "last"])
        .status(2)
        .stderr_has("no runs yet");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.gzl(&["logs", "last", "sya"])
        .status(2)
        .stderr_has("did you mean `say`?");
    test.gzl(&["logs", "no-such-rev", "say"])
        .status(2)
        .stderr_has("`no-such-rev` does not name a commit");
}

#[test]
fn logs_follow_shows_output_until_the_stage_ends() {
    // `slow` prints its second line only once `-f` has shown the first.
    let test = Test::with_gzlfile(
        "slow:\n  echo one\n  touch started\n  while [ ! -e go ]; do sleep 0.02; done\n  echo two\n",
    );
    let run = test.spawn(&["run", "--in-place"]);
    test.wait_for_file("started");
    let follow = test.spawn_live(&["logs", "last", "slow", "-f"]);
    follow.wait_for_stdout("one\n");
    test.write("go", "");
    let follow = follow.finish().status(0);
    assert_eq!(follow.stdout, "one\ntwo\n");
    Run::from(run.wait_with_output().expect("run")).status(0);
}

#[test]
fn logs_of_every_stage_keep_headers_on_their_own_lines() {
    let test = Test::with_gzlfile("a:\n  printf no-newline\nb: a\n  echo y\n");
    test.gzl(&["run"]).status(0);
    test.gzl(&["logs", "last"])
        .status(0)
        .stdout_has("no-newline\n==> b (passed) <==\ny\n");
}

#[test]
fn logs_of_a_number_that_is_no_run_says_so() {
    let test = Test::with_gzlfile("a:\n  true\n");
    test.commit("first");
    test.gzl(&["logs", "999"])
        .status(2)
        .stderr_has("no run 999");
}

#[test]
fn a_relative_gzl_home_works_from_anywhere() {
    let test = Test::with_gzlfile("a:\n  echo ran\n");
    test.write("sub/.keep", "");
    let mut command = test.command(&["run"]);
    command
        .current_dir(test.path("sub"))
        .env("GZL_HOME", "../relative-home");
    crate::harness::Run::from(command.output().expect("gzl"))
        .status(0)
        .stdout_has("ran");
    assert!(test.path("relative-home/history.db").exists());
}

#[test]
fn ls_shows_the_time_left_and_how_a_run_compares_with_the_usual() {
    // The usual is 2 s (the median with the third run too), so `ls` sees time left however
    // slowly it starts on a loaded machine; the third run takes 4 s, over 1.25 times the usual.
    let test = Test::with_gzlfile("work:\n    sleep 2\n");
    test.commit("first");
    for _ in 0..2 {
        test.gzl(&["run", "--force-all"]).status(0);
    }
    let started = test.outside("started");
    test.write(
        "Gzlfile",
        format!("work:\n    touch {}\n    sleep 4\n", started.display()),
    );
    let runner = test.spawn(&["run"]);
    test.wait_for_outside("started");
    let ls = test.gzl(&["ls"]).status(0);
    let running = ls
        .stdout
        .lines()
        .find(|l| l.contains("running"))
        .unwrap_or("");
    assert!(running.contains("left"), "{}", ls.stdout);
    assert!(runner.wait_with_output().unwrap().status.success());
    // Two earlier samples are too few to call 4 s unusual.
    let ls = test.gzl(&["ls"]).status(0);
    assert!(!ls.stdout.contains("than usual"), "{}", ls.stdout);
}

// A first run read "242% slower than usual" (compared with itself), and a failed run was
// compared with passed runs' median.
#[test]
fn ls_compares_a_passed_run_with_five_earlier_runs_and_no_failed_run() {
    let test = Test::with_gzlfile("work:\n    sleep 0.1\n");
    test.commit("first");
    for _ in 0..5 {
        test.gzl(&["run", "--force-all"]).status(0);
    }
    let ls = test.gzl(&["ls"]).status(0);
    assert!(!ls.stdout.contains("than usual"), "{}", ls.stdout);
    // Runs 6 and 7 take 1.5 s where 0.1 s is usual; 7 fails.
    test.write("Gzlfile", "work:\n    sleep 1.5\n");
    test.gzl(&["run"]).status(0);
    test.write("Gzlfile", "work:\n    sleep 1.5\n    exit 1\n");
    test.gzl(&["run"]).status(1);
    let ls = test.gzl(&["ls"]).status(0);
    let line = |id: &str| {
        ls.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no run {id}:\n{}", ls.stdout))
            .to_string()
    };
    assert!(line("6").contains("slower than usual"), "{}", ls.stdout);
    assert!(line("7").contains("failed"), "{}", ls.stdout);
    assert!(!line("7").contains("than usual"), "{}", ls.stdout);
}

// A run whose gzl was killed showed the time of its last stage event as when it ended.
#[test]
fn ls_says_when_a_killed_gzl_was_found_dead_not_its_last_event() {
    let test = Test::new();
    let started = test.outside("started");
    test.write(
        "Gzlfile",
        format!("slow:\n    touch {}\n    sleep 1000\n", started.display()),
    );
    test.commit("a slow one");
    let mut runner = test.spawn(&["run"]);
    test.wait_for_outside("started");
    let killed_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    runner.kill().expect("kill gzl");
    runner.wait().expect("reaped");
    let runs = test.runs();
    assert_eq!(runs[0]["status"], "interrupted", "{runs:?}");
    let finished = runs[0]["finished_at"].as_str().unwrap_or_default();
    assert!(
        finished >= killed_at.as_str(),
        "ended {finished}, before gzl was killed at {killed_at}"
    );
    let ls = test.gzl(&["ls"]).status(0);
    let line = ls
        .stdout
        .lines()
        .find(|l| l.contains("interrupted"))
        .unwrap_or_default();
    assert!(line.contains("  ≥"), "ran at least until last seen: {line}");
    assert!(line.contains("gzl died"), "{line}");
}
