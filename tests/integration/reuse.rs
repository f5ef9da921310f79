//! Results that are not run twice: input keys, `cached` stages, `@when`, `--force`,
//! `--no-cache`, flaky stages, `gzl why`.

use crate::harness::Test;

/// A Gzlfile whose stages append their name to an `outside` log each time they execute.
fn counting(test: &Test, stages: &str) -> String {
    let log = test.outside("executed");
    stages.replace("LOG", &log.display().to_string())
}

#[test]
fn a_second_run_of_the_same_source_executes_nothing() {
    let test = Test::new();
    let gzlfile = counting(
        &test,
        "build:\n    echo build >> LOG\ntest: build\n    echo test >> LOG\n",
    );
    test.write("Gzlfile", gzlfile);
    test.commit("first");
    test.gzl(&["run"]).status(0);
    let again = test.gzl(&["run"]).status(0);
    assert_eq!(test.outside_lines("executed"), ["build", "test"]);
    again.summary_has("build", "cached");
    assert!(again.summary_of("test").contains("reuses run 1"));
    assert!(again.stderr.contains("2 cached"), "{}", again.stderr);

    let runs = test.runs();
    assert_eq!(runs[0]["status"], "passed");
    assert_eq!(runs[0]["stage_counts"]["cached"], 2);
    let json = test.gzl(&["run", "--json"]).status(0);
    let finished: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "stage_finished")
        .collect();
    assert!(finished.iter().all(|e| e["status"] == "cached"));
    assert!(finished.iter().all(|e| e["cached_from"] == 1));
    assert_eq!(test.outside_lines("executed").len(), 2);
}

#[test]
fn a_changed_file_runs_again_and_a_dirty_tree_is_keyed_by_its_content() {
    let test = Test::new();
    test.write(
        "Gzlfile",
        counting(&test, "check:\n    echo check >> LOG\n"),
    );
    test.write("src.txt", "one\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("src.txt", "two\n");
    test.gzl(&["run"]).status(0);
    test.gzl(&["run"]).status(0);
    // Committing the same content is the same source: nothing runs.
    test.commit("second");
    test.gzl(&["run"]).status(0);
    assert_eq!(test.outside_lines("executed"), ["check", "check"]);
}

#[test]
fn when_paths_unchanged_across_a_docs_commit_are_cached() {
    let test = Test::new();
    test.write(
        "Gzlfile",
        counting(
            &test,
            "test:\n    @when src/** Cargo.toml\n    echo test >> LOG\ndocs:\n    @when docs/\n    echo docs >> LOG\n",
        ),
    );
    test.write("src/lib.rs", "fn main() {}\n");
    test.write("Cargo.toml", "[package]\n");
    test.write("docs/guide.md", "# Guide\n");
    test.commit("first");
    test.gzl(&["run", "-j", "1"]).status(0);
    test.write("docs/guide.md", "# Guide, better\n");
    test.write("README.md", "hello\n");
    test.commit("docs only");
    let run = test.gzl(&["run", "-j", "1"]).status(0);
    run.summary_has("test", "cached");
    test.write("src/lib.rs", "fn main() { }\n");
    test.commit("code");
    test.gzl(&["run", "-j", "1"]).status(0);
    assert_eq!(
        test.outside_lines("executed"),
        ["test", "docs", "docs", "test"]
    );
}

#[test]
fn a_stage_runs_again_when_what_it_needs_ran_again() {
    let test = Test::new();
    test.write(
        "Gzlfile",
        counting(
            &test,
            "build:\n    @when src/**\n    echo build >> LOG\ntest: build\n    @when tests/**\n    echo test >> LOG\nlint:\n    @when tests/**\n    echo lint >> LOG\n",
        ),
    );
    test.write("src/a", "1");
    test.write("tests/t", "1");
    test.commit("first");
    test.gzl(&["run", "-j", "1"]).status(0);
    test.write("src/a", "2");
    test.commit("source change");
    test.gzl(&["run", "-j", "1"]).status(0);
    let executed = test.outside_lines("executed");
    assert_eq!(&executed[3..], ["build", "test"], "{executed:?}");
}

#[test]
fn changing_a_stage_script_or_attribute_runs_it_again() {
    let test = Test::new();
    test.write(
        "Gzlfile",
        counting(&test, "a:\n    echo a >> LOG\nb:\n    echo b >> LOG\n"),
    );
    test.commit("first");
    test.gzl(&["run"]).status(0);
    // Only b's text changes (and so the Gzlfile, which is in the tree: untracked here).
    test.write(
        "Gzlfile",
        counting(
            &test,
            "a:\n    @when nothing-matches\n    echo a >> LOG\nb:\n    @timeout 1m\n    echo b >> LOG\n",
        ),
    );
    test.gzl(&["run"]).status(0);
    test.gzl(&["run"]).status(0);
    let mut executed = test.outside_lines("executed");
    executed.sort();
    assert_eq!(executed, ["a", "a", "b", "b"]);
}

#[test]
fn force_runs_everything_or_a_stage_and_what_needs_it() {
    let test = Test::new();
    test.write(
        "Gzlfile",
        counting(
            &test,
            "build:\n    echo build >> LOG\ntest: build\n    echo test >> LOG\nlint:\n    echo lint >> LOG\n",
        ),
    );
    test.commit("first");
    test.gzl(&["run", "-j", "1"]).status(0);
    test.gzl(&["run", "-j", "1", "test", "lint", "--force", "test"])
        .status(0);
    assert_eq!(&test.outside_lines("executed")[3..], ["test"]);
    test.gzl(&["run", "-j", "1", "test", "--force", "build"])
        .status(0);
    assert_eq!(&test.outside_lines("executed")[4..], ["build", "test"]);
    test.gzl(&["run", "-j", "1", "--force-all"]).status(0);
    assert_eq!(test.outside_lines("executed").len(), 9);
    test.gzl(&["run", "-j", "1", "lint", "--force-all"])
        .status(0);
    assert_eq!(&test.outside_lines("executed")[9..], ["lint"]);
    test.gzl(&["run", "test", "--force", "lint"])
        .status(2)
        .stderr_has("--force lint: no stage `lint` in this run");
}

// `gzl run --force test` ran every stage (clap took `test` as the optional value of
// `--force`); a make or just user means "run test, forced", as `make -B test` does.
#[test]
fn force_stage_without_other_stages_runs_only_that_stage_forced() {
    let test = Test::new();
    test.write(
        "Gzlfile",
        counting(
            &test,
            "build:\n    echo build >> LOG\ntest: build\n    echo test >> LOG\nlint:\n    echo lint >> LOG\n",
        ),
    );
    test.commit("first");
    test.gzl(&["run", "-j", "1"]).status(0);
    let run = test.gzl(&["run", "-j", "1", "--force", "test"]).status(0);
    assert_eq!(&test.outside_lines("executed")[3..], ["test"]);
    assert!(
        !run.stderr.contains("lint"),
        "lint is not in the run:\n{}",
        run.stderr
    );
    run.summary_has("build", "cached")
        .summary_has("test", "passed");
    test.gzl(&["run", "-j", "1", "--force=lint"]).status(0);
    assert_eq!(&test.outside_lines("executed")[4..], ["lint"]);
    test.gzl(&["run", "-j", "1", "--force", "build", "--force", "lint"])
        .status(0);
    let mut executed = test.outside_lines("executed")[5..].to_vec();
    executed.sort();
    assert_eq!(executed, ["build", "lint"], "test is not in the run");
    test.gzl(&["run", "--force", "nope"])
        .status(2)
        .stderr_has("no stage named `nope`");
}

// A bare `--force` once forced every stage; it is now an error that points to `--force-all`
// rather than a run that silently means something else.
#[test]
fn bare_force_is_a_usage_error_pointing_to_force_all() {
    let test = Test::new();
    test.write("Gzlfile", counting(&test, "a:\n    echo a >> LOG\n"));
    test.commit("first");
    for args in [
        &["run", "--force"][..],
        &["run", "a", "--force"],
        &["run", "--force="],
    ] {
        test.gzl(args)
            .status(2)
            .stderr_has("--force needs a stage")
            .stderr_has("--force-all");
    }
    assert!(test.outside_lines("executed").is_empty());
    test.gzl(&["run", "--force", "a", "--force-all"]).status(2);
}

#[test]
fn no_cache_neither_reuses_nor_offers_results() {
    let test = Test::new();
    test.write("Gzlfile", counting(&test, "a:\n    echo a >> LOG\n"));
    test.commit("first");
    test.gzl(&["run", "--no-cache"]).status(0);
    test.gzl(&["run"]).status(0);
    test.gzl(&["run", "--no-cache"]).status(0);
    test.gzl(&["run"]).status(0);
    assert_eq!(test.outside_lines("executed"), ["a", "a", "a"]);
}

#[test]
fn in_place_results_are_recorded_but_never_reused() {
    let test = Test::new();
    test.write("Gzlfile", counting(&test, "a:\n    echo a >> LOG\n"));
    test.commit("first");
    test.gzl(&["run", "--in-place"]).status(0);
    test.gzl(&["run"]).status(0);
    test.gzl(&["run", "--in-place"]).status(0);
    assert_eq!(test.outside_lines("executed"), ["a", "a", "a"]);
}

#[test]
fn failed_results_are_never_reused_and_a_later_pass_is_flaky() {
    let test = Test::new();
    let flag = test.outside("pass-now");
    test.write(
        "Gzlfile",
        counting(
            &test,
            &format!(
                "shaky:\n    echo shaky >> LOG\n    test -e {}\n",
                flag.display()
            ),
        ),
    );
    test.commit("first");
    test.gzl(&["run"]).status(1);
    test.gzl(&["run"]).status(1);
    std::fs::write(&flag, "").unwrap();
    test.gzl(&["run"]).status(0);
    test.gzl(&["run"]).status(0);
    assert_eq!(test.outside_lines("executed").len(), 3);
    let json = test.gzl(&["ls", "--json"]).status(0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let third = &value["runs"][1];
    assert_eq!(third["id"], 3);
    assert_eq!(third["stages"][0]["flaky"], true);
    test.gzl(&["ls"]).status(0).stdout_has("flaky");
}

#[test]
fn logs_of_a_cached_stage_show_the_run_it_reuses() {
    let test = Test::with_gzlfile("say:\n    echo said once\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.gzl(&["run"]).status(0);
    test.gzl(&["logs", "2", "say"])
        .status(0)
        .stdout_has("said once")
        .stderr_has("`say` is cached in run 2: this is its output in run 1");
}

// `gzl logs RUN` printed a note per cached stage (5,000 of them) and read the reused run's
// stages again for each one (7 minutes).
#[test]
fn logs_of_a_run_of_cached_stages_say_once_where_they_come_from() {
    let gzlfile: String = (0..30)
        .map(|i| format!("s{i}:\n    echo output of {i}\n"))
        .collect();
    let test = Test::with_gzlfile(&gzlfile);
    test.commit("thirty stages");
    test.gzl(&["run"]).status(0);
    test.gzl(&["run"]).status(0);
    let logs = test.gzl(&["logs", "2"]).status(0);
    assert_eq!(
        logs.stderr,
        "gzl: 30 of 30 stages are cached in run 2: their logs are from run 1\n"
    );
    assert!(
        logs.stdout
            .starts_with("==> s0 (cached, log of run 1) <==\noutput of 0\n==> s1 (cached"),
        "{}",
        logs.stdout
    );
    assert!(
        logs.stdout
            .ends_with("==> s29 (cached, log of run 1) <==\noutput of 29\n"),
        "{}",
        logs.stdout
    );
}

// `gzl logs RUN` went on through every stage after its reader had gone (`| head -1`).
#[test]
fn logs_end_quietly_when_their_reader_has_gone() {
    // Stages that print nothing: no log to fail on, only headers.
    let gzlfile: String = (0..30).map(|i| format!("s{i}:\n    true\n")).collect();
    let test = Test::with_gzlfile(&gzlfile);
    test.commit("thirty silent stages");
    test.gzl(&["run"]).status(0);
    test.gzl(&["run"]).status(0);
    for run in ["1", "2"] {
        // A pipe nobody reads: gzl's first write fails.
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let output = test
            .command(&["logs", run])
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("gzl runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(
            !stderr.contains("s1") && !stderr.contains("error"),
            "nothing after the first stage: {stderr}"
        );
    }
}

#[test]
fn why_names_the_run_it_reuses_or_the_input_that_differs() {
    let test = Test::with_gzlfile(
        "build:\n    @when src/**\n    true\ntest: build\n    @when tests/**\n    true\n",
    );
    test.write("src/lib.rs", "1\n");
    test.write("tests/t.rs", "1\n");
    test.commit("first");
    test.gzl(&["why", "test"])
        .status(0)
        .stdout_has("test would run: it needs `build`, which would run");
    test.gzl(&["run"]).status(0);
    test.gzl(&["why", "test"])
        .status(0)
        .stdout_has("test would reuse run 1: it passed with the same inputs");
    test.write("tests/t.rs", "2\n");
    test.write("docs.md", "not read by test\n");
    test.gzl(&["why", "test"])
        .status(0)
        .stdout_has("compared with run 1")
        .stdout_has("files it reads changed: tests/t.rs\n");
    // Explaining a snapshot makes no commit and no ref: only a run's workspace needs one.
    assert_eq!(test.git(&["for-each-ref", "refs/gzl/"]), "");
    test.write("src/lib.rs", "2\n");
    test.gzl(&["why", "test"])
        .status(0)
        .stdout_has("it needs `build`, whose inputs changed");
    test.write(
        "Gzlfile",
        "build:\n    @when src/**\n    true\ntest: build\n    @when tests/**\n    @timeout 5m\n    echo changed\n",
    );
    test.gzl(&["why", "test"])
        .status(0)
        .stdout_has("the script changed")
        .stdout_has("@timeout was added: 5m");
    test.gzl(&["why", "test", "--at", "HEAD"])
        .status(0)
        .stdout_has("would reuse run 1");
    test.gzl(&["why", "nope"])
        .status(2)
        .stderr_has("no stage named `nope`");
}
