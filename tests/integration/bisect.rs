//! `gzl bisect`: the first failing commit, with probes in workspaces and known results reused.

use crate::harness::Test;

/// A repository of `commits` commits; commit i (1-based) holds `value` = i. The stage `test`
/// appends to the `outside` file `executed` each time it runs and passes while value < `breaks`.
fn history(commits: usize, breaks: usize) -> Test {
    let test = Test::new();
    let executed = test.outside("executed");
    test.write(
        "Gzlfile",
        format!(
            "test:\n    echo \"$(cat value)\" >> {}\n    test \"$(cat value)\" -lt {breaks}\n",
            executed.display()
        ),
    );
    for i in 1..=commits {
        test.write("value", format!("{i}\n"));
        test.commit(&format!("commit {i}"));
    }
    test
}

#[test]
fn bisect_finds_the_first_bad_commit_in_few_probes_and_then_in_none() {
    let test = history(64, 40);
    let breaking = test.git(&["rev-parse", "HEAD~24"]);
    let status = test.git(&["status", "--porcelain"]);
    let head = test.git(&["rev-parse", "HEAD"]);

    let run = test
        .gzl(&["bisect", "test", "--good", "HEAD~63"])
        .status(0)
        .stdout_has(&format!("first bad commit: {breaking}\n  commit 40\n"));
    let executed = test.outside_lines("executed").len();
    // ceil(log2 64) + 1 (the bad end is checked too).
    assert!(executed <= 7, "{executed} probes ran:\n{}", run.stderr);
    assert!(run.stdout.contains("last good commit: "), "{}", run.stdout);

    // Everything it needs is in history now: nothing runs.
    test.gzl(&["bisect", "test", "--good", "HEAD~63"])
        .status(0)
        .stdout_has(&format!("first bad commit: {breaking}"))
        .stdout_has("0 ran");
    assert_eq!(test.outside_lines("executed").len(), executed);

    // The user's checkout, index and git bisect state are untouched.
    assert_eq!(test.git(&["status", "--porcelain"]), status);
    assert_eq!(test.git(&["rev-parse", "HEAD"]), head);
    assert!(!test.path(".git/BISECT_LOG").exists());
    assert!(!test.path(".git/BISECT_START").exists());
    assert_eq!(test.read("value"), "64\n");
}

#[test]
fn bisect_starts_from_the_newest_commit_known_good() {
    let test = history(16, 10);
    test.gzl(&["bisect", "test"])
        .status(2)
        .stderr_has("no known good commit for `test`");
    test.gzl(&["run", "--at", "HEAD~10"]).status(0);
    let json = test.gzl(&["bisect", "test", "--json"]).status(0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(value["first_bad"], test.git(&["rev-parse", "HEAD~6"]));
    assert_eq!(value["stage"], "test");
    let probes = value["probes"].as_array().expect("probes");
    assert!(probes.iter().all(|p| p["verdict"] != "skip"));
}

#[test]
fn bisect_says_so_when_the_bad_end_passes() {
    let test = history(8, 100);
    test.gzl(&["bisect", "test", "--good", "HEAD~7"])
        .status(1)
        .stderr_has("`test` passes at");
}

#[test]
fn commits_that_cannot_be_tested_are_skipped() {
    let test = Test::new();
    let gzlfile = "test:\n    v=$(cat value)\n    if [ $v -ge 5 ] && [ $v -le 7 ]; then exit 125; fi\n    test $v -lt 6\n";
    test.write("Gzlfile", gzlfile);
    for i in 1..=12 {
        test.write("value", format!("{i}\n"));
        if i == 3 {
            // A commit whose Gzlfile lacks the stage cannot be tested either.
            test.write("Gzlfile", "other:\n    true\n");
        } else {
            test.write("Gzlfile", gzlfile);
        }
        test.commit(&format!("commit {i}"));
    }
    // It breaks at 6, inside the untestable 5..7: the answer is one of them or 8.
    let run = test
        .gzl(&["bisect", "test", "--good", "HEAD~11"])
        .status(1)
        .stdout_has("the first bad commit is one of these");
    for i in [5, 6, 7, 8] {
        assert!(
            run.stdout.contains(&format!("commit {i}\n")),
            "{}",
            run.stdout
        );
    }
    assert!(run.stderr.contains("(it exited 125)"), "{}", run.stderr);
}

#[test]
fn bisect_follows_merges() {
    let test = Test::with_gzlfile("test:\n    test ! -e broken\n");
    test.write("a", "1");
    let base = test.commit("base");
    test.git(&["checkout", "-q", "-b", "side"]);
    test.write("b", "1");
    test.commit("side 1");
    test.write("broken", "");
    let culprit = test.commit("side 2 breaks it");
    test.write("c", "1");
    test.commit("side 3");
    test.git(&["checkout", "-q", "main"]);
    test.write("d", "1");
    test.commit("main 1");
    test.git(&["merge", "-q", "--no-edit", "side"]);
    test.write("e", "1");
    test.commit("after the merge");
    test.gzl(&["bisect", "test", "--good", &base])
        .status(0)
        .stdout_has(&format!("first bad commit: {culprit}"));
    // Along first parents only, the merge itself is where it broke.
    let merge = test.git(&["rev-parse", "HEAD~1"]);
    test.gzl(&["bisect", "test", "--good", &base, "--first-parent"])
        .status(0)
        .stdout_has(&format!("first bad commit: {merge}"));
}

#[test]
fn bisect_refuses_what_cannot_be_bisected() {
    let test = history(8, 5);
    test.gzl(&["bisect", "tset", "--good", "HEAD~7"])
        .status(2)
        .stderr_has("did you mean `test`?");
    test.gzl(&["bisect", "test", "--good", "HEAD", "--bad", "HEAD~2"])
        .status(2)
        .stderr_has("is not an ancestor of --bad");
    test.git(&["checkout", "-q", "-b", "other", "HEAD~4"]);
    test.write("elsewhere", "1");
    test.commit("on another branch");
    test.gzl(&["bisect", "test", "--good", "other", "--bad", "main"])
        .status(2)
        .stderr_has("is not an ancestor");
    test.gzl(&["bisect", "test", "--file", "Gzlfile"])
        .status(2)
        .stderr_has("cannot be combined with --file");
}

#[test]
fn parallel_probes_find_the_same_commit() {
    let test = history(32, 20);
    let breaking = test.git(&["rev-parse", "HEAD~12"]);
    test.gzl(&["bisect", "test", "--good", "HEAD~31", "-j", "3"])
        .status(0)
        .stdout_has(&format!("first bad commit: {breaking}"));
    // Probes ran side by side, each in a workspace of its own.
    let workspaces: std::collections::HashSet<String> = test
        .runs()
        .iter()
        .filter_map(|r| r["workspace"].as_str().map(str::to_string))
        .collect();
    assert!(workspaces.len() >= 3, "{workspaces:?}");
}

// Parallel probes run in one gzl. When a failing probe's run ended, its sweep for what its
// stages left took a passing probe's stage, still running, for an orphan of its own and killed
// it: the passing commit read as failing and bisect named a commit before the culprit.
#[test]
fn a_probe_that_ends_does_not_kill_the_probes_still_running() {
    let test = Test::new();
    // Failing commits end at once; passing ones are still running when they do.
    test.write(
        "Gzlfile",
        "test:\n    test \"$(cat value)\" -lt 5\n    sleep 2\n",
    );
    for i in 1..=8 {
        test.write("value", format!("{i}\n"));
        test.commit(&format!("commit {i}"));
    }
    let breaking = test.git(&["rev-parse", "HEAD~3"]);
    test.gzl(&["bisect", "test", "--good", "HEAD~7", "-j", "3"])
        .status(0)
        .stdout_has(&format!("first bad commit: {breaking}\n  commit 5\n"));
}

/// A repository of `commits` commits where `test` fails from commit `breaks` on, and says in
/// the `outside` file `warmth` whether an ignored cache a probe before it left was there.
fn warm_history(commits: usize, breaks: usize) -> Test {
    let test = Test::new();
    let warmth = test.outside("warmth");
    test.write(".gitignore", "cache/\n");
    test.write(
        "Gzlfile",
        format!(
            "test:\n    if [ -e cache/warm ]; then echo warm >> {0}; else echo cold >> {0}; fi\n    mkdir -p cache && touch cache/warm\n    test \"$(cat value)\" -lt {breaks}\n",
            warmth.display()
        ),
    );
    for i in 1..=commits {
        test.write("value", format!("{i}\n"));
        test.commit(&format!("commit {i}"));
    }
    test
}

/// The `gzl gc --dry-run` lines of workspaces kept from a failed run.
fn kept_workspaces(test: &Test) -> Vec<String> {
    let run = test.gzl(&["gc", "--dry-run"]).status(0);
    run.stdout
        .lines()
        .filter(|line| line.contains("kept from a failed run,"))
        .map(str::to_string)
        .collect()
}

// Each failed probe kept its workspace, so the next probe started cold in a fresh one, without
// what a stage it reused from history had installed: bisect named the wrong commit on real
// projects. Probes now share one warm workspace, as `git bisect run` shares the checkout.
#[test]
fn sequential_probes_share_one_warm_workspace() {
    let test = warm_history(16, 6);
    let breaking = test.git(&["rev-parse", "HEAD~10"]);
    // Probes at 16, 8, 4, 6 and 5: the last one passed, in the workspace commit 6 failed in.
    test.gzl(&["bisect", "test", "--good", "HEAD~15"])
        .status(0)
        .stdout_has(&format!("first bad commit: {breaking}"))
        .stdout_has(&format!(
            "its workspace went on to later probes: gzl debug 4 test checks {} out again",
            &breaking[..10]
        ));
    assert_eq!(kept_workspaces(&test), Vec::<String>::new());
    let warmth = test.outside_lines("warmth");
    assert!(warmth.len() >= 4, "{warmth:?}");
    assert_eq!(warmth[0], "cold", "{warmth:?}");
    assert!(warmth[1..].iter().all(|w| w == "warm"), "{warmth:?}");
    let workspaces: std::collections::HashSet<String> = test
        .runs()
        .iter()
        .filter_map(|r| r["workspace"].as_str().map(str::to_string))
        .collect();
    assert_eq!(workspaces.len(), 1, "{workspaces:?}");
}

// Every failed probe kept a workspace for debugging: a bisect left a pool full of kept
// workspaces, and the next probes ran cold. Only the answer's is kept, and the output says so.
#[test]
fn only_the_first_bad_commits_workspace_is_kept() {
    let test = warm_history(16, 5);
    let breaking = test.git(&["rev-parse", "HEAD~11"]);
    // Probes at 16, 8, 4, 6 and 5: four fail, the last at the first bad commit (run 5).
    let run = test
        .gzl(&["bisect", "test", "--good", "HEAD~15"])
        .status(0)
        .stdout_has(&format!("first bad commit: {breaking}"))
        .stdout_has(&format!(
            "workspace of {} kept for gzl debug: gzl debug 5 test\n",
            &breaking[..10]
        ));
    assert_eq!(run.stderr.matches(" bad ").count(), 4, "{}", run.stderr);
    let kept = kept_workspaces(&test);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].ends_with("by run 5"), "{kept:?}");
    // `gzl debug` opens that workspace, as the probe left it.
    let debug = test
        .gzl(&["debug", "5", "test", "--shell", "/bin/true"])
        .status(0);
    assert!(
        !debug.stderr.contains("checked out again"),
        "{}",
        debug.stderr
    );
}

// A probe whose install stage failed read as `bad` although the stage under test never ran
// there: bisect named a commit before the culprit. Such a commit cannot be tested: `skip`.
#[test]
fn a_probe_whose_need_failed_is_skipped_not_bad() {
    let test = Test::new();
    test.write(".gitignore", "deps/\n");
    // `install` breaks at commits 7 and 8 only; `test` breaks from commit 10 on.
    test.write(
        "Gzlfile",
        "install:\n    v=$(cat value); test $v -lt 7 || test $v -gt 8\n    mkdir -p deps\n\ntest: install\n    test -d deps\n    test \"$(cat value)\" -lt 10\n",
    );
    for i in 1..=16 {
        test.write("value", format!("{i}\n"));
        test.commit(&format!("commit {i}"));
    }
    let breaking = test.git(&["rev-parse", "HEAD~6"]);
    let run = test
        .gzl(&["bisect", "test", "--good", "HEAD~15"])
        .status(0)
        .stdout_has(&format!("first bad commit: {breaking}\n  commit 10\n"));
    assert!(
        run.stderr.contains("skip") && run.stderr.contains("(`install`, which it needs, failed)"),
        "{}",
        run.stderr
    );
}

// The answer gave only counts: which verdicts ran and which history supplied (and from which
// run) could not be told. It lists every probe, with its duration or the run it came from.
#[test]
fn the_answer_lists_each_probe_and_marks_verdicts_inferred_from_history() {
    let test = history(16, 6);
    let head = test.git(&["rev-parse", "HEAD"]);
    let first = test.gzl(&["bisect", "test", "--good", "HEAD~15"]).status(0);
    let listed: Vec<&str> = first
        .stdout
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(" ran in "))
        .collect();
    assert_eq!(
        listed.len(),
        test.outside_lines("executed").len(),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains(&format!("  {}  bad   ran in ", &head[..10])),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains(" (run 1)\n"), "{}", first.stdout);
    // Again: every verdict comes from history, and says from which run.
    let again = test.gzl(&["bisect", "test", "--good", "HEAD~15"]).status(0);
    assert!(
        again
            .stdout
            .contains(&format!("  {}  bad   inferred from run 1\n", &head[..10])),
        "{}",
        again.stdout
    );
    assert!(!again.stdout.contains(" ran in "), "{}", again.stdout);
}

/// 16 commits where `test` takes 0.3 s and fails from commit 10 on with `assertion failed`;
/// at commit 8 it fails at once with `network down`, every time or (`once`) only the first.
fn flaky_history(once: bool) -> Test {
    let test = Test::new();
    let flag = test.outside("flaked");
    let flaky = if once {
        format!("[ ! -e {0} ] && touch {0}", flag.display())
    } else {
        "true".to_string()
    };
    test.write(
        "Gzlfile",
        format!(
            "test:\n    v=$(cat value)\n    if [ $v -eq 8 ] && {flaky}; then echo network down; exit 1; fi\n    sleep 0.3\n    if [ $v -ge 10 ]; then echo \"assertion failed: value $v\"; exit 1; fi\n"
        ),
    );
    for i in 1..=16 {
        test.write("value", format!("{i}\n"));
        test.commit(&format!("commit {i}"));
    }
    test
}

// A probe that failed far faster than the bad end, with other last lines (a reused install
// missing, a network hiccup), was trusted: bisect named a commit too early. It is reported
// with the evidence and run again with its needs forced; here the second run passes.
#[test]
fn a_suspicious_failure_is_run_again_with_its_needs_forced() {
    let test = flaky_history(true);
    let breaking = test.git(&["rev-parse", "HEAD~6"]);
    let run = test
        .gzl(&["bisect", "test", "--good", "HEAD~15"])
        .status(0)
        .stdout_has(&format!("first bad commit: {breaking}\n  commit 10\n"))
        .stderr_has("suspicious: run 2: it ended in ")
        .stderr_has("under a tenth of run 1's")
        .stderr_has("its last lines share none with run 1's (it ended with `network down`)")
        .stderr_has("ran again with its needs forced (run 3): good");
    assert!(
        run.stdout.contains("\n    suspicious: run 2: "),
        "{}",
        run.stdout
    );
}

// A probe that fails the same odd way every time stays suspicious: without --strict it is bad
// (and says so), with --strict it is a skip and the search goes around it.
#[test]
fn strict_skips_a_probe_that_stays_suspicious() {
    let test = flaky_history(false);
    let breaking = test.git(&["rev-parse", "HEAD~6"]);
    let eight = test.git(&["rev-parse", "HEAD~8"]);
    test.gzl(&["bisect", "test", "--good", "HEAD~15"])
        .status(0)
        .stdout_has(&format!("first bad commit: {eight}"))
        .stdout_has("bad   ran in ")
        .stdout_has("still suspicious (run 3: it ended in ");
    test.gzl(&["bisect", "test", "--good", "HEAD~15", "--strict"])
        .status(0)
        .stdout_has(&format!("first bad commit: {breaking}\n  commit 10\n"))
        .stdout_has(": its failure stays suspicious (--strict)");
}

// Issue 23: with `install` reused from history, probes in a workspace it had not run in failed
// at once for want of what it installs, and bisect trusted them. Whether probes share one
// workspace or run side by side in several, the answer is the culprit.
#[test]
fn bisect_names_the_culprit_with_the_install_stage_cached() {
    let test = Test::new();
    test.write(".gitignore", "deps/\n");
    test.write("deps.txt", "tool 1\n");
    test.write(
        "Gzlfile",
        "install:\n    @when deps.txt\n    mkdir -p deps && cp deps.txt deps/tool\n\ntest: install\n    test -e deps/tool || { echo 'deps/tool: No such file or directory'; exit 1; }\n    sleep 0.2\n    if [ $(cat value) -ge 13 ]; then echo \"assertion failed: $(cat value)\"; exit 1; fi\n",
    );
    for i in 1..=20 {
        test.write("value", format!("{i}\n"));
        test.commit(&format!("commit {i}"));
    }
    let breaking = test.git(&["rev-parse", "HEAD~7"]);
    // History holds install's result before bisect starts.
    test.gzl(&["run", "--at", "HEAD~19", "test"]).status(0);
    for jobs in ["1", "3"] {
        test.gzl(&["bisect", "test", "--recheck-failures", "-j", jobs])
            .status(0)
            .stdout_has(&format!("first bad commit: {breaking}\n  commit 13\n"));
    }
}
