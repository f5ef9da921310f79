//! Stages made at run time: a `@generates` stage prints Gzlfile text, and those stages join
//! the run.

use crate::harness::Test;

/// A generator of one shard per line of `shards.txt`; each shard says its number, and with
/// `barrier` waits (up to a minute) until every shard has started, which only happens when they
/// run at the same time.
fn sharded(barrier: Option<&std::path::Path>) -> Test {
    let wait = match barrier {
        Some(dir) => format!(
            "    touch {dir}/started-$n; for i in $(seq 600); do [ $(ls {dir} | wc -l) -ge 4 ] && break; sleep 0.1; done; [ $(ls {dir} | wc -l) -ge 4 ]\\n",
            dir = dir.display()
        ),
        None => String::new(),
    };
    let test = Test::with_gzlfile(&format!(
        "build:\n    echo built\nshards: build\n    @generates\n    echo splitting >&2\n    while read n; do printf 'test-%s: build\\n    n=%s\\n    echo shard %s\\n{wait}' $n $n $n; done < shards.txt\nreport: shards\n    echo report\n"
    ));
    test.write("shards.txt", "1\n2\n3\n4\n");
    test.commit("first");
    test
}

#[test]
fn a_generated_graph_of_four_shards_runs_in_parallel_before_what_needs_the_generator() {
    let barrier = tempfile::tempdir().unwrap();
    let test = sharded(Some(barrier.path()));
    let run = test.gzl(&["run", "-j", "4"]).status(0);
    let run = run
        .stdout_has("shards | gzl: generated 4 stages: test-1, test-2, test-3, test-4")
        .stdout_has("test-3 | shard 3");
    for shard in ["test-1", "test-2", "test-3", "test-4"] {
        run.summary_has(shard, "passed");
    }
    // The summary lists the shards right after what generated them.
    let position = |stage: &str| run.stderr.find(&run.summary_of(stage)).unwrap();
    let listed = ["shards", "test-1", "test-2", "test-3", "test-4", "report"].map(position);
    assert!(listed.is_sorted(), "{}", run.stderr);
    // The report ran after every shard.
    let report = run.stdout.find("report | report").expect("report ran");
    for shard in 1..=4 {
        let line = run
            .stdout
            .find(&format!("shard {shard}\n"))
            .expect("shard ran");
        assert!(line < report, "{}", run.stdout);
    }
    // Generated stages are in history like any other.
    test.gzl(&["logs", "last", "test-2"])
        .status(0)
        .stdout_has("shard 2");
    test.gzl(&["logs", "last", "shards"])
        .status(0)
        .stdout_has("splitting");
}

#[test]
fn generated_stages_are_reused_by_their_own_keys_and_the_generator_always_runs() {
    // Each shard reads only the Gzlfile, so only its own text decides its key.
    let test = Test::with_gzlfile(
        "shards:\n    @generates\n    while read n; do printf 'test-%s:\\n    @when Gzlfile\\n    echo shard %s\\n' $n $n; done < shards.txt\n",
    );
    test.write("shards.txt", "1\n2\n3\n4\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("shards.txt", "1\n2\n3\n5\n");
    test.commit("shard 5 instead of 4");
    let run = test.gzl(&["run"]).status(0);
    run.summary_has("shards", "passed");
    for shard in ["test-1", "test-2", "test-3"] {
        run.summary_has(shard, "cached");
    }
    run.summary_has("test-5", "passed");
    assert!(!run.stderr.contains("test-4"), "{}", run.stderr);
    test.gzl(&["why", "shards"])
        .status(0)
        .stdout_has("a @generates stage always runs");
}

#[test]
fn a_malformed_generated_text_is_reported_against_it_naming_the_generator() {
    let test = Test::with_gzlfile(
        "build:\n    true\nshards: build\n    @generates\n    printf 'test-1: biuld\\n    true\\nbuild:\\n    true\\n'\nreport: shards\n    echo report\n",
    );
    test.commit("first");
    let run = test.gzl(&["run"]).status(1);
    let run = run
        .stdout_has("gzl: `shards` generated stages gzl cannot run:")
        .stdout_has("--> the output of `shards`:1:9")
        .stdout_has("unknown stage `biuld`")
        .stdout_has("stage `build` is already defined in the Gzlfile");
    run.summary_has("shards", "failed");
    run.summary_has("report", "skipped");
}

#[test]
fn a_generated_stage_that_needs_what_waits_for_it_is_refused() {
    let test = Test::with_gzlfile(
        "gen:\n    @generates\n    printf 'late: report\\n    true\\n'\nreport: gen\n    true\n",
    );
    test.commit("first");
    test.gzl(&["run"]).status(1).stdout_has(
        "`gen` generated `late`, which needs `report`; but `report` waits for what `gen` generates",
    );
}

#[test]
fn generated_stages_show_in_json_events() {
    let test = sharded(None);
    let run = test.gzl(&["run", "--json"]).status(0);
    let joined: serde_json::Value = run
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["event"] == "stages_joined")
        .expect("a stages_joined event");
    assert_eq!(joined["generator"], "shards");
    assert_eq!(joined["stages"][0]["name"], "test-1");
    assert_eq!(joined["stages"][0]["needs"][0], "build");
    let finished: Vec<String> = run
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "stage_finished")
        .map(|event| event["stage"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(finished.len(), 7, "{finished:?}");
}

#[test]
fn generates_takes_no_value_and_needs_a_script() {
    let test =
        Test::with_gzlfile("shards:\n    @generates yes\n    true\ngroup:\n    @generates\n");
    test.gzl(&["check"])
        .status(2)
        .stderr_has("`@generates` takes no value")
        .stderr_has("stage `group` has attributes but no script");
}

// The text a generator prints is checked by the same code as a Gzlfile: a lone `\r` before
// a bad token panicked the runner and left the run `interrupted`.
#[test]
fn generated_text_with_a_lone_carriage_return_fails_the_generator_not_the_run() {
    let test = Test::with_gzlfile(
        "gen:\n    @generates\n    printf 'late: x\\r y!\\n    true\\n\\033[2J'\nreport: gen\n    echo report\nother:\n    echo other\n",
    );
    test.commit("first");
    let run = test.gzl(&["run"]).status(1);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let run = run
        .stdout_has("gzl: `gen` generated stages gzl cannot run:")
        .stdout_has("`y!` is not a valid stage name")
        .stdout_has("1 | late: x\\r y!\n");
    assert!(!run.stdout.contains('\x1b'), "{}", run.stdout);
    run.summary_has("gen", "failed");
    run.summary_has("report", "skipped");
    run.summary_has("other", "passed");
    assert_eq!(test.runs()[0]["status"], "failed");
}
