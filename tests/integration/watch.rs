//! `gzl watch`: a run for each new commit, coalesced while runs go on; Ctrl-C stops it.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Run, Test, wait_for_death, wait_for_pid, wait_until};

/// Waits until history has a finished run of each commit.
fn wait_for_runs(test: &Test, commits: &[&str]) -> Vec<serde_json::Value> {
    wait_until(&format!("finished runs of {commits:?}"), || {
        let runs = test.runs();
        let done = commits.iter().all(|commit| {
            runs.iter()
                .any(|r| r["commit"] == *commit && r["status"] != "running")
        });
        if done {
            Ok(runs)
        } else {
            Err(format!("{runs:#?}"))
        }
    })
}

fn stop(child: std::process::Child) -> Run {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("signal gzl");
    Run::from(child.wait_with_output().expect("gzl ends"))
}

#[test]
fn commits_amends_and_branch_switches_each_start_a_run() {
    let test = Test::with_gzlfile("test:\n    test ! -e broken\n");
    let first = test.commit("first");
    let watch = test.spawn(&["watch"]);
    wait_for_runs(&test, &[&first]);

    test.write("a", "1");
    let second = test.commit("second");
    wait_for_runs(&test, &[&second]);
    test.write("broken", "");
    test.git(&["add", "broken"]);
    test.git(&["commit", "-q", "--amend", "-m", "second, amended"]);
    let amended = test.git(&["rev-parse", "HEAD"]);
    let runs = wait_for_runs(&test, &[&amended]);
    let amended_run = runs
        .iter()
        .find(|r| r["commit"] == amended.as_str())
        .unwrap();
    assert_eq!(amended_run["status"], "failed");
    assert_eq!(amended_run["branch"], "main");
    test.git(&["checkout", "-q", "-b", "other", &first]);
    test.write("b", "1");
    let on_other = test.commit("on other");
    wait_for_runs(&test, &[&on_other]);

    let run = stop(watch).status(130);
    assert!(
        run.stderr.contains("second, amended  (main)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("on other  (other)"), "{}", run.stderr);
    assert!(run.stderr.contains("failed"), "{}", run.stderr);
}

#[test]
fn commits_that_come_during_a_run_are_coalesced_or_each_run() {
    for every_commit in [false, true] {
        let test = Test::new();
        let started = test.outside("started");
        // The first run lasts until every commit is made, however slowly git runs.
        let go = test.outside("go");
        test.write(
            "Gzlfile",
            format!(
                "slow:\n    cat n >> {}\n    while [ ! -e {} ]; do sleep 0.02; done\n",
                started.display(),
                go.display()
            ),
        );
        test.write("n", "0\n");
        test.commit("first");
        let args: &[&str] = if every_commit {
            &["watch", "--every-commit"]
        } else {
            &["watch"]
        };
        let watch = test.spawn(args);
        test.wait_for_outside("started");
        let mut commits = Vec::new();
        for i in 1..=3 {
            test.write("n", format!("{i}\n"));
            commits.push(test.commit(&format!("commit {i}")));
        }
        std::fs::write(&go, "").unwrap();
        wait_for_runs(&test, &[commits.last().unwrap()]);
        stop(watch).status(130);
        let ran = test.outside_lines("started");
        if every_commit {
            assert_eq!(ran, ["0", "1", "2", "3"]);
        } else {
            assert_eq!(ran, ["0", "3"], "only the newest pending commit runs");
        }
    }
}

#[test]
fn ctrl_c_stops_the_run_in_progress_and_leaves_no_process() {
    let test = Test::new();
    let pid = test.outside("stage.pid");
    test.write(
        "Gzlfile",
        format!("slow:\n    echo $$ > {}\n    sleep 1000\n", pid.display()),
    );
    test.commit("first");
    let watch = test.spawn(&["watch"]);
    let stage = wait_for_pid(&pid);
    stop(watch).status(130);
    wait_for_death(stage, "the stage");
    assert_eq!(test.runs()[0]["status"], "cancelled");
}

#[test]
fn a_commit_with_a_broken_gzlfile_fails_and_watching_goes_on() {
    let test = Test::with_gzlfile("test:\n    true\n");
    test.commit("first");
    let watch = test.spawn(&["watch", "test"]);
    test.write("Gzlfile", "test:\n    @timout 1s\n    true\n");
    let broken = test.commit("broken Gzlfile");
    let runs = wait_for_runs(&test, &[&broken]);
    let failed = runs
        .iter()
        .find(|r| r["commit"] == broken.as_str())
        .unwrap();
    assert_eq!(failed["status"], "failed");
    test.write("Gzlfile", "test:\n    true\n");
    let fixed = test.commit("fixed");
    let runs = wait_for_runs(&test, &[&fixed]);
    let passed = runs.iter().find(|r| r["commit"] == fixed.as_str()).unwrap();
    assert_eq!(passed["status"], "passed");
    stop(watch)
        .status(130)
        .stderr_has("its Gzlfile has 1 error(s), first: unknown attribute `@timout`");
}

#[test]
fn branch_patterns_choose_what_is_watched() {
    let test = Test::with_gzlfile("test:\n    true\n");
    let first = test.commit("first");
    test.git(&["branch", "feature/a"]);
    let watch = test.spawn(&["watch", "--branch", "feature/*"]);
    wait_for_runs(&test, &[&first]);
    test.git(&["checkout", "-q", "feature/a"]);
    test.write("x", "1");
    let feature = test.commit("on feature");
    wait_for_runs(&test, &[&feature]);
    test.git(&["checkout", "-q", "main"]);
    test.write("y", "1");
    let main = test.commit("on main");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let run = stop(watch).status(130);
    assert!(
        !test.runs().iter().any(|r| r["commit"] == main.as_str()),
        "main is not watched: {}",
        run.stderr
    );
    let runs = test.runs();
    let on_feature = runs
        .iter()
        .find(|r| r["commit"] == feature.as_str())
        .unwrap();
    assert_eq!(on_feature["branch"], "feature/a");
    test.gzl(&["watch", "--file", "Gzlfile"])
        .status(2)
        .stderr_has("--file goes only with --worktree");
}

#[test]
fn worktree_mode_reruns_on_saved_changes_and_stops_a_stale_run() {
    let test = Test::new();
    let seen = test.outside("seen");
    let child = test.outside("child.pid");
    test.write(".gitignore", "target/\n");
    test.write(
        "Gzlfile",
        format!(
            "serve:\n    cat src.txt >> {}\n    sleep 1000 &\n    echo $! > {}\n    wait\n",
            seen.display(),
            child.display()
        ),
    );
    test.write("src.txt", "one\n");
    test.commit("first");
    let watch = test.spawn(&["watch", "--worktree"]);
    let first_child = wait_for_pid(&child);
    std::fs::remove_file(&child).unwrap();

    // Build output git ignores changes nothing; a saved source file stops the stale run.
    test.write("target/out", "ignored");
    test.write("src.txt", "two\n");
    let second_child = wait_for_pid(&child);
    wait_for_death(first_child, "the stale run's process");
    assert_eq!(test.outside_lines("seen"), ["one", "two"]);

    let run = stop(watch).status(130);
    wait_for_death(second_child, "the stage's child");
    let runs = test.runs();
    assert_eq!(runs.len(), 2, "{}", run.stderr);
    assert!(runs.iter().all(|r| r["status"] == "cancelled"));
}

// A closed terminal's SIGHUP, once a run had taken over the signal, was swallowed while gzl
// watch waited for commits: it kept watching with nobody to see it.
#[test]
fn sighup_ends_gzl_watch_while_it_waits_for_commits() {
    let test = Test::with_gzlfile("test:\n    true\n");
    let first = test.commit("first");
    let mut watch = test.spawn(&["watch"]);
    wait_for_runs(&test, &[&first]);
    kill(Pid::from_raw(watch.id() as i32), Signal::SIGHUP).expect("signal gzl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while watch.try_wait().expect("gzl watch").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = watch.kill();
            panic!("gzl watch went on watching after SIGHUP");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Run::from(watch.wait_with_output().expect("gzl ends")).status(130);
}

// The watch listens for Ctrl-C from its start: a Ctrl-C that came as a run ended (taken by the
// ending run, too late to cancel it) was lost, and the watch went on forever. The SIGTERM with
// which `gzl stop RUN` stops one of the watch's runs is not the watch's end, though.
#[test]
fn gzl_stop_of_a_watched_run_does_not_end_the_watch() {
    let test = Test::new();
    let pid = test.outside("stage.pid");
    test.write(
        "Gzlfile",
        format!(
            "slow:\n    echo $$ > {}\n    test -e quick || sleep 1000\n",
            pid.display()
        ),
    );
    let first = test.commit("first");
    let watch = test.spawn(&["watch"]);
    wait_for_pid(&pid);
    test.gzl(&["stop", "1"]).status(0);
    let runs = wait_for_runs(&test, &[&first]);
    assert_eq!(runs[0]["status"], "stopped");
    test.write("quick", "");
    let second = test.commit("second");
    let runs = wait_for_runs(&test, &[&second]);
    let run = runs
        .iter()
        .find(|r| r["commit"] == second.as_str())
        .unwrap();
    assert_eq!(run["status"], "passed");
    stop(watch).status(130);
}
