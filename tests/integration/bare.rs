//! Bare repositories (a server's, a mirror, `git clone --bare`): no working tree, but commits,
//! history and workspaces made from the objects need none. gzl said "not in a git repository".

use std::path::{Path, PathBuf};

use crate::harness::{Run, Test};

/// `gzl ARGS` started in `dir`.
fn gzl_in(test: &Test, dir: &Path, args: &[&str]) -> Run {
    Run::from(
        test.command(args)
            .current_dir(dir)
            .output()
            .expect("gzl runs"),
    )
}

/// A repository whose `test` passes at its first commit and fails at its second, cloned bare.
fn bare_clone(test: &Test) -> PathBuf {
    test.write(
        "Gzlfile",
        "build:\n    echo built\ntest: build\n    echo testing\n    test -f ok || nosuch_tool\n",
    );
    test.write("ok", "");
    test.commit("good");
    test.git(&["rm", "-q", "ok"]);
    test.commit("bad");
    let bare = test.outside("repo.git");
    test.git(&["clone", "-q", "--bare", ".", &bare.display().to_string()]);
    bare
}

// `--at`, `bisect`, `ls` and `check` need no working tree: they work in a bare repository, on
// its commits, with the Gzlfile each commit holds.
#[test]
fn a_bare_clone_runs_commits_bisects_and_lists_runs() {
    let test = Test::new();
    let bare = bare_clone(&test);
    gzl_in(&test, &bare, &["ls"])
        .status(0)
        .stderr_has("no runs yet");
    gzl_in(&test, &bare, &["check"])
        .status(0)
        .stdout_has("test   needs build");
    gzl_in(&test, &bare, &["run", "--at", "HEAD~1", "test"])
        .status(0)
        .stdout_has("testing");
    // Without --at, the run is of HEAD: a bare repository has no changes to snapshot.
    gzl_in(&test, &bare, &["run", "test"])
        .status(1)
        .stdout_has("Gzlfile:5 (test): nosuch_tool: command not found");
    let ls = gzl_in(&test, &bare, &["ls"]).status(0);
    assert!(
        ls.stdout.contains("bad") && ls.stdout.contains("good"),
        "{}",
        ls.stdout
    );
    gzl_in(&test, &bare, &["bisect", "test", "--good", "HEAD~1"])
        .status(0)
        .stdout_has("first bad commit: ");
    gzl_in(&test, &bare, &["logs", "2", "test"])
        .status(0)
        .stdout_has("nosuch_tool");
    // The bare repository's history is its own, not the clone's.
    test.gzl(&["ls"]).status(0).stderr_has("no runs yet");
}

// What does need a working tree says so, and why, instead of "not in a git repository".
#[test]
fn in_a_bare_repository_what_needs_a_working_tree_says_so() {
    let test = Test::new();
    let bare = bare_clone(&test);
    let shown = bare.canonicalize().unwrap().display().to_string();
    gzl_in(&test, &bare, &["run", "--in-place"])
        .status(2)
        .stderr_has(&format!(
            "error: {shown} is a bare repository: --in-place needs a working tree, and it has none"
        ))
        .stderr_has("`gzl run` runs HEAD, `gzl run --at REV` another");
    gzl_in(&test, &bare, &["watch", "--worktree"])
        .status(2)
        .stderr_has("is a bare repository: --worktree needs a working tree");
    gzl_in(&test, &bare, &["init"])
        .status(2)
        .stderr_has("is a bare repository: gzl init needs a working tree");
    assert!(!bare.join("Gzlfile").exists());
}

// `git init --bare`, then a push: the commits pushed are run from the bare repository's
// objects; before any commit, gzl says there is no Gzlfile to read yet.
#[test]
fn a_repository_made_with_git_init_bare_runs_what_is_pushed() {
    let test = Test::new();
    let bare = test.outside("server.git");
    test.git(&[
        "init",
        "-q",
        "--bare",
        "-b",
        "main",
        &bare.display().to_string(),
    ]);
    gzl_in(&test, &bare, &["ls"])
        .status(0)
        .stderr_has("no runs yet");
    gzl_in(&test, &bare, &["run"])
        .status(2)
        .stderr_has("no Gzlfile found in HEAD of")
        .stderr_has("push a commit that has one");
    test.write("Gzlfile", "hello:\n    echo hello from $GZL_COMMIT\n");
    let commit = test.commit("first");
    test.git(&["push", "-q", &bare.display().to_string(), "main"]);
    gzl_in(&test, &bare, &["run", "--at", "main"])
        .status(0)
        .stdout_has(&format!("hello from {commit}"));
    gzl_in(&test, &bare, &["run"])
        .status(0)
        .stderr_has("cached");
}
