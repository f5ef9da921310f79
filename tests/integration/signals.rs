//! Stopping gzl: Ctrl-C and SIGTERM stop every stage's process group; a gzl killed outright
//! leaves a run that the next gzl shows as interrupted.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Run, Test, process_alive, wait_for, wait_for_death, wait_for_pid};

const LONG_STAGES: &str = "a:\n  sleep 1000 &\n  echo $! > a-child.pid\n  echo $$ > a.pid\n  wait\nb:\n  echo $$ > b.pid\n  sleep 1000\nafter: a b\n  touch after-ran\n";

fn interrupt_with(signal: Signal) {
    let test = Test::with_gzlfile(LONG_STAGES);
    let child = test.spawn(&["run", "--in-place", "-j", "2"]);
    let pids = ["a.pid", "a-child.pid", "b.pid"].map(|file| wait_for_pid(&test.path(file)));
    kill(Pid::from_raw(child.id() as i32), signal).expect("signal gzl");
    let run = Run::from(child.wait_with_output().expect("gzl ends")).status(130);
    for (pid, file) in pids.into_iter().zip(["a.pid", "a-child.pid", "b.pid"]) {
        wait_for_death(pid, file);
    }
    assert!(!test.path("after-ran").exists());
    run.summary_has("a", "cancelled");
    run.summary_has("after", "cancelled");
    let runs = test.runs();
    assert_eq!(runs[0]["status"], "cancelled");
}

#[test]
fn ctrl_c_stops_every_stage_and_exits_130() {
    interrupt_with(Signal::SIGINT);
}

#[test]
fn sigterm_stops_every_stage_and_exits_130() {
    interrupt_with(Signal::SIGTERM);
}

#[test]
fn a_killed_gzl_leaves_an_interrupted_run_not_a_running_one() {
    let test = Test::with_gzlfile(
        "done:\n  echo finished\nslow: done\n  sleep 0.5\n  echo $$ > slow.pid\n  sleep 1000\n",
    );
    // History is written in batches: once `done` is on disk (and `slow` runs), a gzl killed
    // then must not lose it.
    let mut child = test.spawn(&["run", "--in-place"]);
    let stage = wait_for_pid(&test.path("slow.pid"));
    wait_for("`done` recorded as passed", || {
        test.runs()
            .first()
            .is_some_and(|run| run["stage_counts"]["passed"] == 1)
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill gzl");
    child.wait().expect("reaped");
    assert!(process_alive(stage), "nobody stopped the stage yet");

    // The next gzl that looks marks the run interrupted and stops what it left running.
    let runs = test.runs();
    wait_for_death(stage, "the abandoned stage");
    assert_eq!(runs[0]["status"], "interrupted");
    assert_eq!(
        runs[0]["stage_counts"]["passed"], 1,
        "what was recorded is kept"
    );
    assert_eq!(runs[0]["stage_counts"]["interrupted"], 1);
    test.gzl(&["ls"]).status(0).stdout_has("interrupted");
    test.gzl(&["logs", "last", "done"])
        .status(0)
        .stdout_has("finished");
}
