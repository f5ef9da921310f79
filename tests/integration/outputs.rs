//! A cached need provides what it produced: `@outputs` stored when a stage passes and
//! restored where a stage that runs needs them; needs without `@outputs` run again in a
//! workspace that lacks their result; `@clean all` spares declared outputs.

use crate::harness::Test;

/// The minimal case: `install` writes an ignored `deps/`; `test` reads it and exits
/// with the committed `fail`. `OUTPUTS` is replaced by an `@outputs` line or nothing.
const MINIMAL: &str = "install:
    @when package.json
OUTPUTS    echo install >> LOG
    mkdir -p deps && echo lib > deps/lib
test: install
    cat deps/lib
    exit $(cat fail)
";

fn minimal(outputs: &str) -> Test {
    let test = Test::new();
    let log = test.outside("executed");
    test.write(
        "Gzlfile",
        MINIMAL
            .replace("OUTPUTS", outputs)
            .replace("LOG", &log.display().to_string()),
    );
    test.write(".gitignore", "deps/\n");
    test.write("fail", "0\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("fail", "1\n");
    test.commit("fail");
    test
}

/// The log of stage `stage` in run `run`.
fn log(test: &Test, run: &str, stage: &str) -> String {
    test.gzl(&["logs", run, stage]).stdout
}

// A failed run keeps its workspace, so the next run of the same commit gets another one:
// there `install` (cached, no @outputs) left nothing, and `test` said `deps/lib: No such
// file` instead of its real failure.
#[test]
fn a_need_without_outputs_runs_again_in_a_workspace_that_lacks_its_result() {
    let test = minimal("");
    // Run 2 takes the workspace install passed in: it is reused there.
    let second = test.gzl(&["run"]).status(1);
    second.summary_has("install", "cached");
    assert_eq!(test.outside_lines("executed"), ["install"]);
    assert!(log(&test, "2", "test").contains("lib"));
    test.gzl(&["why", "install"]).status(0).stdout_has(
        "install would run: its result (run 1) was made in another workspace than the one the run would take (a new workspace), and it declares no @outputs",
    );
    let third = test.gzl(&["run"]).status(1);
    third.summary_has("install", "passed");
    third.stderr_has(
        "`install` runs again: its result (run 1) is from another workspace and it declares no @outputs",
    );
    assert_eq!(test.outside_lines("executed"), ["install", "install"]);
    let failure = log(&test, "3", "test");
    assert!(failure.contains("lib"), "{failure}");
    assert!(!failure.contains("No such file"), "{failure}");
}

// The same with `@outputs deps`: install stays cached and its `deps/` is restored into the
// new workspace, so `test` fails on its own assertion.
#[test]
fn a_cached_need_restores_its_outputs_into_a_new_workspace() {
    let test = minimal("    @outputs deps\n");
    test.gzl(&["artifacts", "1", "install"])
        .status(0)
        .stdout_has("install  deps");
    test.gzl(&["run"]).status(1);
    test.gzl(&["why", "install"]).status(0).stdout_has(
        "install would reuse run 1: it passed with the same inputs; its outputs (1 file) would be restored into a new workspace",
    );
    let third = test.gzl(&["run"]).status(1);
    third.summary_has("install", "cached");
    third.stderr_has("`install` reuses run 1: its outputs restored (1 file)");
    assert_eq!(test.outside_lines("executed"), ["install"]);
    let failure = log(&test, "3", "test");
    assert!(failure.contains("lib"), "{failure}");
    assert!(!failure.contains("No such file"), "{failure}");
    // The cached stage's outputs are this run's artifacts too.
    test.gzl(&["artifacts", "3"])
        .status(0)
        .stdout_has("install  deps");
}

// Restoring into a workspace that holds the outputs at that key already would throw away
// what the stages after it did to them, and cost a copy of the tree.
#[test]
fn a_workspace_holding_the_outputs_at_that_key_is_not_restored_again() {
    let test = Test::with_gzlfile(
        "install:
    @when package.json
    @outputs deps
    mkdir -p deps && echo lib > deps/lib
test: install
    if test -e deps/touched; then echo kept; fi
    touch deps/touched
",
    );
    test.write(".gitignore", "deps/\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("src.txt", "changed\n");
    test.commit("change what test reads");
    let second = test.gzl(&["run"]).status(0);
    second.summary_has("install", "cached");
    assert!(!second.stderr.contains("restored"), "{}", second.stderr);
    assert!(log(&test, "2", "test").contains("kept"));
}

// A restore replaces what is at the path: files a failed run of another key left in
// `deps/` are gone, as if `install` had run here.
#[test]
fn a_restore_replaces_what_is_at_the_output_path() {
    let test = Test::with_gzlfile(
        "install:
    @when package.json
    @outputs deps
    mkdir -p deps && echo lib > deps/lib
    if grep -q broken package.json; then echo junk > deps/junk; exit 1; fi
test: install
    ls deps
",
    );
    // One workspace: every run uses it.
    test.write("gzl.toml", "[workspaces]\npool = 1\n");
    test.write(".gitignore", "deps/\n");
    test.write("package.json", "{}\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("package.json", "broken\n");
    test.commit("broken");
    test.gzl(&["run"]).status(1);
    test.write("package.json", "{}\n");
    test.write("src.txt", "changed\n");
    test.commit("fixed");
    let third = test.gzl(&["run"]).status(0);
    third.summary_has("install", "cached");
    third.stderr_has("`install` reuses run 1: its outputs restored (1 file)");
    let listing = log(&test, "3", "test");
    assert!(listing.contains("lib"), "{listing}");
    assert!(!listing.contains("junk"), "{listing}");
}

// Outputs whose objects gc removed cannot be restored: the stage runs again.
#[test]
fn outputs_gc_removed_make_the_stage_run_again() {
    let test = minimal("    @outputs deps\n");
    test.write("gzl.toml", "[artifacts]\nkeep = \"1ms\"\nkeep_last = 0\n");
    test.commit("expire artifacts at once");
    // The new gzl.toml is a file `install` does not read (@when): its key holds.
    test.gzl(&["run"])
        .status(1)
        .summary_has("install", "cached");
    std::thread::sleep(std::time::Duration::from_millis(5));
    test.gzl(&["gc"]).status(0);
    let again = test.gzl(&["run"]).status(1);
    again.summary_has("install", "passed");
    assert_eq!(test.outside_lines("executed"), ["install", "install"]);
    assert!(log(&test, "3", "test").contains("lib"));
}

// `@clean all` starts from a pristine tree, but a declared output of the run's stages is
// not the clean's to delete: the cached `install` provides it in place.
#[test]
fn clean_all_keeps_declared_outputs() {
    let test = Test::with_gzlfile(
        "install:
    @when package.json
    @outputs deps
    mkdir -p deps other && echo lib > deps/lib && echo x > other/x
test: install
    @clean all
    cat deps/lib
    if test -e other/x; then echo other survived; fi
",
    );
    test.write(".gitignore", "deps/\nother/\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("src.txt", "changed\n");
    test.commit("change what test reads");
    let second = test.gzl(&["run"]).status(0);
    second.summary_has("install", "cached");
    assert!(!second.stderr.contains("restored"), "{}", second.stderr);
    let output = log(&test, "2", "test");
    assert!(output.contains("lib"), "{output}");
    assert!(!output.contains("other survived"), "{output}");
}

// Globs name what they match, ignored files included, and nothing else; a pattern that
// matches nothing is said in the stage's log, not an error.
#[test]
fn glob_outputs_keep_and_restore_only_what_they_match() {
    let test = Test::with_gzlfile(
        "build:
    @when build.sh
    @outputs out/*.txt gen/** missing/*.x
    mkdir -p out gen/a && echo 1 > out/one.txt && echo 2 > out/two.txt && echo no > out/skip.log
    echo g > gen/a/file
test: build
    ls out gen/a
    exit $(cat fail)
",
    );
    test.write(".gitignore", "out/\ngen/\n");
    test.write("fail", "0\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    let build = log(&test, "1", "build");
    assert!(
        build.contains("@outputs `missing/*.x` matched nothing"),
        "{build}"
    );
    test.gzl(&["artifacts", "1", "build"])
        .status(0)
        .stdout_has("build  out/one.txt")
        .stdout_has("build  out/two.txt")
        // `gen/**` is all of `gen`: kept whole.
        .stdout_has("build  gen ");
    test.write("fail", "1\n");
    test.commit("fail");
    test.gzl(&["run"]).status(1);
    // Run 2's workspace is kept: run 3 restores into a new one.
    let third = test.gzl(&["run"]).status(1);
    third.stderr_has("`build` reuses run 1: its outputs restored (3 files)");
    let listing = log(&test, "3", "test");
    assert!(
        listing.contains("one.txt") && listing.contains("two.txt"),
        "{listing}"
    );
    assert!(listing.contains("file"), "{listing}");
    assert!(!listing.contains("skip.log"), "{listing}");
}

// A cached need of a need that runs again must provide its files too: the correction goes
// on through the stages it turns into runs.
#[test]
fn a_need_run_again_brings_its_own_cached_needs_along() {
    let test = Test::new();
    let log_path = test.outside("executed");
    test.write(
        "Gzlfile",
        "fetch:
    @when fetch.txt
    echo fetch >> LOG
    mkdir -p cache && echo data > cache/data
install: fetch
    @when package.json
    echo install >> LOG
    mkdir -p deps && cp cache/data deps/lib
test: install
    cat deps/lib
    exit $(cat fail)
"
        .replace("LOG", &log_path.display().to_string()),
    );
    test.write(".gitignore", "deps/\ncache/\n");
    test.write("fail", "0\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("fail", "1\n");
    test.commit("fail");
    test.gzl(&["run"]).status(1);
    test.gzl(&["run"])
        .status(1)
        .stderr_has("`install` runs again")
        .stderr_has("`fetch` runs again");
    assert_eq!(
        test.outside_lines("executed"),
        ["fetch", "install", "fetch", "install"]
    );
    assert!(log(&test, "3", "test").contains("data"));
}

// Stages a generator joins to the run are corrected for the workspace too: a joined cached
// need gets its outputs restored before the joined stage that needs it starts.
#[test]
fn a_generated_cached_need_restores_its_outputs() {
    let test = Test::with_gzlfile("gen:\n    @generates\n    cat stages.txt\n");
    test.write(
        "stages.txt",
        "install:\n    @when package.json\n    @outputs deps\n    mkdir -p deps && echo lib > deps/lib\ntest: install\n    cat deps/lib\n    exit $(cat fail)\n",
    );
    test.write(".gitignore", "deps/\n");
    test.write("fail", "0\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("fail", "1\n");
    test.commit("fail");
    test.gzl(&["run"]).status(1);
    let third = test.gzl(&["run"]).status(1);
    third.summary_has("install", "cached");
    assert!(
        log(&test, "3", "gen").contains("`install` reuses run 1: its outputs restored (1 file)")
    );
    let failure = log(&test, "3", "test");
    assert!(failure.contains("lib"), "{failure}");
}

// Outputs are relative to the stage's `@dir`: kept from there, restored there, and spared
// there by `@clean all`.
#[test]
fn outputs_of_a_stage_with_dir_are_restored_into_its_directory() {
    let test = Test::with_gzlfile(
        "install:
    @dir web
    @when web/package.json
    @outputs node_modules
    mkdir -p node_modules && echo lib > node_modules/lib
test: install
    @dir web
    @clean all
    cat node_modules/lib
    exit $(cat ../fail)
",
    );
    test.write("web/package.json", "{}\n");
    test.write(".gitignore", "node_modules/\n");
    test.write("fail", "0\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.gzl(&["artifacts", "1", "install"])
        .status(0)
        .stdout_has("install  node_modules");
    test.write("fail", "1\n");
    test.commit("fail");
    let second = test.gzl(&["run"]).status(1);
    // The same workspace: @clean all spared web/node_modules, so nothing is restored.
    assert!(!second.stderr.contains("restored"), "{}", second.stderr);
    assert!(log(&test, "2", "test").contains("lib"));
    let third = test.gzl(&["run"]).status(1);
    third.stderr_has("`install` reuses run 1: its outputs restored (1 file)");
    assert!(log(&test, "3", "test").contains("lib"));
}

// Restored outputs must name the workspace they are restored into, not the one they were made
// in (issue 24): a text file naming it is rewritten, and a binary file that embeds it makes
// the stage run again here, naming the file.
#[test]
fn restored_outputs_move_to_this_workspace_or_the_stage_runs_again() {
    let test = Test::new();
    let log_path = test.outside("executed");
    test.write(
        "Gzlfile",
        "install:
    @when package.json
    @outputs deps
    echo install >> LOG
    mkdir -p deps && echo \"$PWD/src\" > deps/paths.pth
    if test -e binary; then printf 'ELF\\0%s\\0' \"$PWD\" > deps/native.so; fi
test: install
    test \"$(cat deps/paths.pth)\" = \"$PWD/src\" && echo here
    exit $(cat fail)
"
        .replace("LOG", &log_path.display().to_string()),
    );
    test.write(".gitignore", "deps/\n");
    test.write("fail", "0\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("fail", "1\n");
    test.commit("fail");
    test.gzl(&["run"]).status(1);
    // A new workspace: the text file is moved there.
    let third = test.gzl(&["run"]).status(1);
    third.stderr_has("`install` reuses run 1: its outputs restored (1 file)");
    assert!(log(&test, "3", "test").contains("here"));
    assert_eq!(test.outside_lines("executed"), ["install"]);

    // The same again with a binary that embeds the workspace's path.
    test.write("binary", "");
    test.write("package.json", "{}\n");
    test.write("fail", "0\n");
    test.commit("binary");
    test.gzl(&["run"]).status(0);
    test.write("fail", "1\n");
    test.commit("fail again");
    test.gzl(&["run"]).status(1);
    let run = test.runs()[0]["id"].as_i64().unwrap() - 1;
    test.gzl(&["why", "install"]).status(0).stdout_has(&format!(
        "install would run: what it stored in run {run} cannot move into a new workspace: `deps/native.so` is a binary file that embeds the path of the workspace it was made in"
    ));
    let last = test.gzl(&["run"]).status(1);
    last.summary_has("install", "passed");
    last.stderr_has(&format!(
        "`install` runs again: what it stored in run {run} cannot move to this workspace: `deps/native.so` is a binary file"
    ));
}
