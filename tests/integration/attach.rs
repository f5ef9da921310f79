//! `gzl attach`: another process's run, live, from its start; its exit code is the run's.

use crate::harness::{Run, Test};

#[test]
fn attach_shows_output_from_before_and_after_it_attached_and_exits_with_the_runs_status() {
    let test = Test::new();
    let started = test.outside("started");
    let go = test.outside("go");
    test.write(
        "Gzlfile",
        format!(
            "talk:\n    echo before attaching\n    touch {}\n    while [ ! -e {} ]; do sleep 0.05; done\n    echo after attaching\n    exit 4\nquiet:\n    true\n",
            started.display(),
            go.display()
        ),
    );
    test.commit("first");
    let runner = test.spawn(&["run"]);
    test.wait_for_outside("started");
    let attach = test.spawn_live(&["attach"]);
    attach.wait_for_stderr("attached to run 1");
    std::fs::write(&go, "").unwrap();
    let attached = attach.finish();
    Run::from(runner.wait_with_output().expect("runner ends")).status(1);
    let attached = attached
        .status(1)
        .stdout_has("talk  | before attaching\n")
        .stdout_has("talk  | after attaching\n")
        .stderr_has("attached to run 1");
    attached.summary_has("talk", "exit code 4");
}

#[test]
fn attach_without_a_running_run_says_so() {
    let test = Test::with_gzlfile("a:\n    true\n");
    test.commit("first");
    test.gzl(&["attach"])
        .status(2)
        .stderr_has("no run of this repository is running");
    test.gzl(&["run"]).status(0);
    // A finished run replays at once.
    test.gzl(&["attach", "1"])
        .status(0)
        .stderr_has("run 1 passed");
}
