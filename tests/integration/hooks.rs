//! Git hooks: install and uninstall keep what was there, post-commit runs in the background,
//! pre-push blocks a push whose stages fail.

use crate::harness::{Test, wait_until, write_executable};

#[test]
fn install_chains_an_existing_hook_and_uninstall_restores_it_exactly() {
    let test = Test::with_gzlfile("a:\n    true\n");
    test.commit("first");
    let mine = "#!/bin/sh\necho my own hook\nexit 0\n";
    write_executable(&test.path(".git/hooks/post-commit"), mine);

    test.gzl(&["hook", "install"])
        .status(0)
        .stdout_has("the hook that was there runs first");
    let installed = test.read(".git/hooks/post-commit");
    test.gzl(&["hook", "install"])
        .status(0)
        .stdout_has("already installed");
    assert_eq!(test.read(".git/hooks/post-commit"), installed);
    test.gzl(&["hook", "status"])
        .status(0)
        .stdout_has("post-commit    installed, chaining the hook that was there");

    // Both run on a commit: the user's hook first.
    test.write("x", "1");
    test.git(&["add", "x"]);
    let commit = test.git_run(&["commit", "-qam", "x"]);
    // git shows what a hook prints on stderr.
    let shown = format!("{}{}", commit.stdout, commit.stderr);
    assert!(shown.contains("my own hook"), "{shown}");

    test.gzl(&["hook", "uninstall"])
        .status(0)
        .stdout_has("the hook it chained is back");
    assert_eq!(test.read(".git/hooks/post-commit"), mine);
    assert!(!test.path(".git/hooks/post-commit.gzl-chained").exists());
    test.gzl(&["hook", "uninstall"])
        .status(0)
        .stdout_has("not gzl's hook, left alone");
    assert_eq!(test.read(".git/hooks/post-commit"), mine);
}

#[test]
fn hooks_go_where_core_hooks_path_says() {
    let test = Test::with_gzlfile("a:\n    true\n");
    test.commit("first");
    test.git(&["config", "core.hooksPath", ".husky"]);
    test.gzl(&["hook", "install", "post-commit", "pre-push"])
        .status(0);
    assert!(test.path(".husky/post-commit").exists());
    assert!(test.path(".husky/pre-push").exists());
    assert!(!test.path(".git/hooks/post-commit").exists());
    test.gzl(&["hook", "uninstall", "post-commit", "pre-push"])
        .status(0);
    assert!(!test.path(".husky/post-commit").exists());
    test.gzl(&["hook", "install", "pre-rebase"])
        .status(2)
        .stderr_has("gzl has no `pre-rebase` hook");
}

#[test]
fn post_commit_runs_the_new_commit_in_the_background() {
    let test = Test::with_gzlfile("test:\n    sleep 0.2\n");
    test.commit("first");
    test.gzl(&["hook", "install"]).status(0);
    test.write("x", "1");
    let head = test.commit("second");
    // The commit returned; the run lands in history on its own.
    let run = wait_for_run(&test, &head);
    assert_eq!(run["status"], "passed", "{run}");
    assert_eq!(run["branch"], "main");
}

#[test]
fn pre_push_blocks_a_push_whose_stages_fail() {
    let test = Test::new();
    test.write(
        "Gzlfile",
        "lint:\n    true\ntest:\n    test ! -e broken\nslow:\n    sleep 30\n",
    );
    test.write("gzl.toml", "[hooks]\npre-push = [\"lint\", \"test\"]\n");
    test.commit("first");
    let remote = test.outside("remote.git");
    std::process::Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&remote)
        .status()
        .expect("bare remote");
    test.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    test.gzl(&["hook", "install", "pre-push"]).status(0);

    test.git(&["push", "-q", "origin", "main"]);
    test.write("broken", "");
    let broken = test.commit("break it");
    let push = test.git_run(&["push", "origin", "main"]);
    assert_ne!(
        push.code,
        Some(0),
        "the push went through:\n{}",
        push.stderr
    );
    assert!(
        push.stderr.contains("the push is blocked"),
        "{}",
        push.stderr
    );
    assert!(push.stderr.contains("gzl logs"), "{}", push.stderr);
    let remote_head = std::process::Command::new("git")
        .args(["rev-parse", "main"])
        .current_dir(&remote)
        .output()
        .expect("rev-parse");
    assert_ne!(String::from_utf8_lossy(&remote_head.stdout).trim(), broken);
    // What was tested and passed pushes without running again.
    std::fs::remove_file(test.path("broken")).unwrap();
    test.commit("fix it");
    test.gzl(&["run", "lint", "test"]).status(0);
    let push = test.git_run(&["push", "origin", "main"]);
    assert_eq!(push.code, Some(0), "{}", push.stderr);
    assert!(push.stderr.contains("2 cached"), "{}", push.stderr);
}

#[test]
fn pre_commit_checks_the_staged_tree_and_blocks_a_failing_commit() {
    let test = Test::with_gzlfile("test:\n    test \"$(cat value)\" != bad\n");
    test.write("gzl.toml", "[hooks]\npre-commit = [\"test\"]\n");
    test.write("value", "good\n");
    test.commit("first");
    test.gzl(&["hook", "install", "pre-commit"]).status(0);
    let commit = |test: &Test| test.git_run(&["commit", "-q", "-m", "change"]);
    // Staged bad, fixed in the working tree but not staged: the staged tree is what counts.
    test.write("value", "bad\n");
    test.git(&["add", "value"]);
    test.write("value", "good again\n");
    let blocked = commit(&test);
    assert_ne!(blocked.code, Some(0), "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains("the commit is blocked"),
        "{}",
        blocked.stderr
    );
    assert_eq!(test.git(&["log", "--format=%s"]), "first");
    // Staging the fix lets it through.
    test.git(&["add", "value"]);
    commit(&test).status(0);
    assert_eq!(test.git(&["log", "-1", "--format=%s"]), "change");
}

/// Waits for a finished run of `commit` in history, and returns it.
fn wait_for_run(test: &Test, commit: &str) -> serde_json::Value {
    wait_until(&format!("a finished run of {commit}"), || {
        let runs = test.runs();
        runs.iter()
            .find(|r| r["commit"] == commit && r["status"] != "running")
            .cloned()
            .ok_or_else(|| format!("{runs:?}"))
    })
}

#[test]
fn post_checkout_and_post_merge_run_the_new_head_with_their_stages() {
    let test = Test::with_gzlfile("a:\n    true\nb:\n    true\n");
    test.write("gzl.toml", "[hooks]\npost-checkout = [\"a\"]\n");
    let first = test.commit("first");
    test.git(&["checkout", "-q", "-b", "topic"]);
    test.write("x", "1");
    let topic = test.commit("on topic");
    test.gzl(&["hook", "install", "post-checkout", "post-merge"])
        .status(0);

    // Switching branches runs the new HEAD, with the stages gzl.toml gives post-checkout.
    test.git(&["checkout", "-q", "main"]);
    let run = wait_for_run(&test, &first);
    assert_eq!(run["status"], "passed", "{run}");
    assert_eq!(run["stages"].as_array().map(Vec::len), Some(1), "{run}");
    assert_eq!(run["stages"][0]["name"], "a", "{run}");

    // Checking out a file keeps HEAD where it was: no run.
    test.write("Gzlfile", "a:\n    true\nb:\n    true\n# edited\n");
    test.git(&["checkout", "-q", "--", "Gzlfile"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(test.runs().len(), 1);

    // A merge runs what it brought, every stage.
    test.git(&["merge", "-q", "topic"]);
    let run = wait_for_run(&test, &topic);
    assert_eq!(run["status"], "passed", "{run}");
    assert_eq!(run["stages"].as_array().map(Vec::len), Some(2), "{run}");
    assert_eq!(test.runs().len(), 2);
}

#[test]
fn a_commit_in_a_linked_worktree_runs_that_worktree_s_commit() {
    let test = Test::with_gzlfile("a:\n    true\n");
    test.commit("first");
    test.gzl(&["hook", "install"]).status(0);
    let side = test.outside("side");
    test.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "side",
        &side.display().to_string(),
    ]);
    std::fs::write(side.join("y"), "2").unwrap();
    let git = |args: &[&str]| test.git_in(&side, args);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "on side"]);
    let head = git(&["rev-parse", "HEAD"]);
    let run = wait_for_run(&test, &head);
    assert_eq!(run["status"], "passed", "{run}");
    assert_eq!(run["branch"], "side", "{run}");
    // The main worktree was not touched.
    assert!(!test.path("y").exists());
}
