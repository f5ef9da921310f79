//! `gzl stop`: a run, or one stage of it, stopped from another process; nothing survives.

use crate::harness::{Run, Test, wait_for_death, wait_for_pid};

#[test]
fn stop_ends_a_whole_run_and_every_process_it_started() {
    let test = Test::new();
    let pids = [test.outside("a.pid"), test.outside("child.pid")];
    test.write(
        "Gzlfile",
        format!(
            "a:\n    sleep 1000 &\n    echo $! > {}\n    echo $$ > {}\n    wait\nafter: a\n    true\n",
            pids[1].display(),
            pids[0].display()
        ),
    );
    test.commit("first");
    let runner = test.spawn(&["run"]);
    let alive = pids.clone().map(|pid| wait_for_pid(&pid));
    test.gzl(&["stop", "last", "--grace", "2s"])
        .status(0)
        .stderr_has("stopped run 1");
    let run = Run::from(runner.wait_with_output().expect("runner ends"));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for (pid, file) in alive.into_iter().zip(&pids) {
        wait_for_death(pid, &file.display().to_string());
    }
    assert_eq!(test.runs()[0]["status"], "stopped");
    test.gzl(&["stop", "1"])
        .status(1)
        .stderr_has("run 1 is not running (it is stopped)");
}

#[test]
fn stopping_one_stage_skips_what_needs_it_and_the_rest_goes_on() {
    let test = Test::new();
    let pid = test.outside("slow.pid");
    let done = test.outside("other-done");
    test.write(
        "Gzlfile",
        format!(
            "slow:\n    trap '' TERM\n    echo $$ > {}\n    while true; do sleep 0.1; done\nneeds-slow: slow\n    true\nother:\n    sleep 1\n    touch {}\n",
            pid.display(),
            done.display()
        ),
    );
    test.commit("first");
    let runner = test.spawn(&["run", "-j", "2"]);
    let slow = wait_for_pid(&pid);
    // `slow` ignores SIGTERM: it is killed when the grace period ends.
    test.gzl(&["stop", "1", "slow", "--grace", "300ms"])
        .status(0)
        .stderr_has("stopped stage `slow` of run 1");
    let run = Run::from(runner.wait_with_output().expect("runner ends"));
    wait_for_death(slow, "the stopped stage");
    assert!(done.exists(), "the other stage went on:\n{}", run.stderr);
    run.summary_has("slow", "stopped");
    run.summary_has("needs-slow", "skipped");
    run.summary_has("other", "passed");
    assert_eq!(test.runs()[0]["status"], "stopped");
    test.gzl(&["stop", "1", "other"])
        .status(1)
        .stderr_has("is not running");
}

#[test]
fn a_stage_that_exits_cleanly_on_sigterm_is_still_stopped() {
    let test = Test::new();
    let pid = test.outside("server.pid");
    test.write(
        "Gzlfile",
        format!(
            "server:\n    trap 'exit 0' TERM\n    echo $$ > {}\n    while true; do sleep 0.1; done\n",
            pid.display()
        ),
    );
    test.commit("first");
    let runner = test.spawn(&["run"]);
    wait_for_pid(&pid);
    test.gzl(&["stop", "1", "server"]).status(0);
    let run = Run::from(runner.wait_with_output().expect("runner ends"));
    run.summary_has("server", "stopped");
    // Recorded stopped, so not a pass any later run could reuse.
    assert_eq!(test.runs()[0]["status"], "stopped");
}
