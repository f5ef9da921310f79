//! Source states and workspaces: runs execute a captured state of the repository in gzl's
//! own checkout, never touching the user's files, index, stash, config, branches or tags.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Run, Test, wait_for_death, wait_for_pid};

fn workspace_of(test: &Test, run: usize) -> String {
    let runs = test.runs();
    let run = runs
        .iter()
        .find(|r| r["id"] == run)
        .unwrap_or_else(|| panic!("no run {run}"));
    run["workspace"].as_str().expect("a workspace").to_string()
}

#[test]
fn a_snapshot_holds_changes_and_untracked_files_but_not_ignored_ones_and_touches_nothing() {
    let test = Test::new();
    let listing = test.outside("listing");
    test.write(
        "Gzlfile",
        format!(
            "look:\n    cat tracked.txt staged.txt > {0}\n    ls -a >> {0}\n    echo \"dirty=$GZL_DIRTY\" >> {0}\n",
            listing.display()
        ),
    );
    test.write(".gitignore", "ignored.txt\nbuild/\n");
    test.write("tracked.txt", "committed\n");
    test.write("staged.txt", "committed\n");
    test.write("deleted.txt", "committed\n");
    test.commit("first");
    test.write("tracked.txt", "modified, not staged\n");
    test.write("staged.txt", "staged\n");
    test.git(&["add", "staged.txt"]);
    test.write("untracked.txt", "new\n");
    test.write("ignored.txt", "ignored\n");
    test.write("build/out", "ignored\n");
    std::fs::remove_file(test.path("deleted.txt")).expect("delete");
    test.write("stashed.txt", "x");
    test.git(&[
        "stash",
        "push",
        "-q",
        "--include-untracked",
        "--",
        "stashed.txt",
    ]);

    let status = test.git(&["status", "--porcelain"]);
    let index = std::fs::read(test.path(".git/index")).expect("index");
    let stash = test.git(&["stash", "list"]);
    let head = test.git(&["rev-parse", "HEAD"]);

    test.gzl(&["run"]).status(0);

    let seen = std::fs::read_to_string(&listing).expect("the stage ran");
    assert!(seen.starts_with("modified, not staged\nstaged\n"), "{seen}");
    let files: Vec<&str> = seen.lines().collect();
    assert!(files.contains(&"untracked.txt"), "{seen}");
    assert!(!files.contains(&"ignored.txt"), "{seen}");
    assert!(!files.contains(&"build"), "{seen}");
    assert!(!files.contains(&"deleted.txt"), "{seen}");
    assert!(files.contains(&"dirty=1"), "{seen}");

    assert_eq!(test.git(&["status", "--porcelain"]), status);
    assert_eq!(
        std::fs::read(test.path(".git/index")).expect("index"),
        index
    );
    assert_eq!(test.git(&["stash", "list"]), stash);
    assert_eq!(test.git(&["rev-parse", "HEAD"]), head);

    let run = &test.runs()[0];
    assert_eq!(run["dirty"], true);
    assert_eq!(run["commit"], head.as_str());
    let tree = run["tree"].as_str().expect("a tree");
    assert_ne!(tree, test.git(&["rev-parse", "HEAD^{tree}"]));
    // The snapshot is kept from git's garbage collection by a ref of its own.
    let refs = test.git(&["for-each-ref", "--format=%(refname)", "refs/gzl/"]);
    assert_eq!(refs, format!("refs/gzl/snapshots/{tree}"));
}

#[test]
fn a_clean_tree_runs_head_and_stages_see_the_source_state() {
    let test = Test::new();
    let env = test.outside("env");
    test.write(
        "Gzlfile",
        format!(
            "show:\n    echo \"$GZL_COMMIT $GZL_TREE $GZL_DIRTY $GZL_WORKSPACE $PWD\" > {}\n",
            env.display()
        ),
    );
    let head = test.commit("first");
    test.gzl(&["run"]).status(0);
    let seen = std::fs::read_to_string(&env).expect("the stage ran");
    let words: Vec<&str> = seen.split_whitespace().collect();
    assert_eq!(words[0], head);
    assert_eq!(words[1], test.git(&["rev-parse", "HEAD^{tree}"]));
    assert_eq!(words[2], "0");
    assert_eq!(words[3], words[4], "stages start at the workspace's top");
    assert!(
        words[3].starts_with(test.home().join("cache").to_str().unwrap()),
        "{seen}"
    );
    assert_eq!(test.runs()[0]["dirty"], false);
}

#[test]
fn at_runs_an_old_commit_while_the_checkout_changes() {
    let test = Test::new();
    let seen = test.outside("seen");
    test.write(
        "Gzlfile",
        format!(
            "show:\n    cat version >> {0}\n    echo \"$GZL_COMMIT\" >> {0}\n",
            seen.display()
        ),
    );
    test.write("version", "one\n");
    let first = test.commit("first");
    test.write("version", "two\n");
    test.commit("second");
    test.write("version", "three, being edited\n");

    test.gzl(&["run", "--at", "HEAD~1"]).status(0);
    assert_eq!(test.outside_lines("seen"), ["one", first.as_str()]);
    assert_eq!(test.read("version"), "three, being edited\n");
    test.gzl(&["run", "--at", &first[..8]]).status(0);

    test.gzl(&["run", "--at", "no-such-rev"])
        .status(2)
        .stderr_has("`no-such-rev` does not name a commit");
}

#[test]
fn at_a_commit_uses_the_gzlfile_of_that_commit() {
    let test = Test::with_gzlfile("old:\n    echo old stage\n");
    test.commit("first");
    test.write("Gzlfile", "new:\n    echo new stage\n");
    test.commit("second");
    test.gzl(&["run", "--at", "HEAD~1"])
        .status(0)
        .stdout_has("old stage");
    test.write("Gzlfile", "broken:\n    @timout 1s\n    true\n");
    test.commit("third");
    test.gzl(&["run", "--at", "HEAD"])
        .status(2)
        .stderr_has("--> HEAD:Gzlfile:2:6");
    std::fs::remove_file(test.path("Gzlfile")).expect("rm");
    test.commit("fourth");
    test.gzl(&["run", "--at", "HEAD~3"]).status(0);
    test.gzl(&["run", "--at", "HEAD"])
        .status(2)
        .stderr_has("commit HEAD has no Gzlfile");
}

#[test]
fn in_place_runs_in_the_working_tree() {
    let test = Test::with_gzlfile("here:\n    pwd > where\n");
    test.commit("first");
    test.gzl(&["run", "--in-place"]).status(0);
    assert_eq!(
        test.read("where").trim(),
        test.repo().canonicalize().unwrap().to_str().unwrap()
    );
    assert!(test.runs()[0]["workspace"].is_null());
}

#[test]
fn stages_cannot_change_the_users_config_branches_tags_or_hooks() {
    let test = Test::with_gzlfile(
        "meddle:\n    git config core.hooksPath .husky\n    git config user.name stage\n    git config user.email stage@example.com\n    git branch from-stage\n    git tag v-stage\n    git commit -q --allow-empty -m x\n    git tag -f v1\n    mkdir -p .git/hooks && echo '#!/bin/sh' > .git/hooks/pre-commit\n",
    );
    test.commit("first");
    test.git(&["tag", "v1"]);
    let config = test.read(".git/config");
    let refs = test.git(&["for-each-ref"]);

    test.gzl(&["run"]).status(0);

    assert_eq!(test.read(".git/config"), config);
    assert_eq!(test.git(&["for-each-ref"]), refs);
    assert!(!test.path(".git/hooks/pre-commit").exists());

    // Nor does what the stage did to its workspace reach the next run.
    let refs_seen = test.outside("refs");
    test.write(
        "Gzlfile",
        format!(
            "look:\n    git for-each-ref --format='%(refname)' > {0}\n    git config --get core.hooksPath >> {0} || true\n",
            refs_seen.display()
        ),
    );
    test.gzl(&["run"]).status(0);
    assert_eq!(
        test.outside_lines("refs"),
        ["refs/heads/main", "refs/tags/v1"]
    );
}

#[test]
fn a_stage_that_rewrites_tracked_files_or_leaves_output_does_not_leak_into_the_next_run() {
    let test = Test::new();
    let seen = test.outside("seen");
    test.write(".gitignore", "target/\n");
    test.write(
        "Gzlfile",
        format!(
            "build:\n    cat Cargo.lock >> {0}\n    ls >> {0}\n    ls target >> {0} || true\n    echo rewritten > Cargo.lock\n    touch stray-output\n    mkdir -p target && touch target/incremental-$GZL_RUN_ID\n",
            seen.display()
        ),
    );
    test.write("Cargo.lock", "pinned\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    std::fs::remove_file(&seen).expect("rm");
    test.gzl(&["run", "--force-all"]).status(0);
    let lines = test.outside_lines("seen");
    assert_eq!(lines[0], "pinned", "{lines:?}");
    assert!(!lines.contains(&"stray-output".to_string()), "{lines:?}");
    // Ignored build output survives: incremental builds stay fast.
    assert!(lines.contains(&"incremental-1".to_string()), "{lines:?}");
}

#[test]
fn clean_all_starts_from_a_pristine_tree() {
    let test = Test::new();
    test.write(".gitignore", "target/\n");
    let seen = test.outside("seen");
    test.write(
        "Gzlfile",
        format!(
            "build:\n    @clean all\n    ls target >> {0} 2>/dev/null || echo none >> {0}\n    mkdir -p target && touch target/old\n",
            seen.display()
        ),
    );
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.gzl(&["run", "--force-all"]).status(0);
    assert_eq!(test.outside_lines("seen"), ["none", "none"]);
}

#[test]
fn concurrent_runs_use_different_workspaces() {
    let test = Test::new();
    let marker = test.outside("started");
    // Each run waits (up to a minute) until both have started: they overlap.
    test.write(
        "Gzlfile",
        format!(
            "slow:\n    echo \"$GZL_WORKSPACE\" >> {m}\n    for i in $(seq 600); do [ $(wc -l < {m}) -ge 2 ] && break; sleep 0.1; done\n",
            m = marker.display()
        ),
    );
    test.commit("first");
    let first = test.spawn(&["run", "--no-cache"]);
    let second = test.spawn(&["run", "--no-cache"]);
    for child in [first, second] {
        Run::from(child.wait_with_output().expect("gzl ends")).status(0);
    }
    let workspaces = test.outside_lines("started");
    assert_eq!(workspaces.len(), 2);
    assert_ne!(workspaces[0], workspaces[1]);
}

#[test]
fn a_failed_run_keeps_its_workspace_and_the_next_run_uses_another() {
    let test = Test::with_gzlfile("fail:\n    touch left-behind\n    exit 1\n");
    test.commit("first");
    test.gzl(&["run"]).status(1);
    let kept = workspace_of(&test, 1);
    test.gzl(&["run"]).status(1);
    let second = workspace_of(&test, 2);
    assert_ne!(kept, second);
    assert!(std::path::Path::new(&kept).join("left-behind").exists());
}

#[test]
fn the_oldest_kept_workspace_is_reused_when_the_pool_is_full() {
    let test = Test::with_gzlfile("fail:\n    exit 1\n");
    test.write("gzl.toml", "[workspaces]\npool = 1\n");
    test.commit("first");
    test.gzl(&["run"]).status(1);
    test.gzl(&["run"])
        .status(1)
        .stderr_has("reusing workspace 0, kept from failed run 1");
    assert_eq!(workspace_of(&test, 1), workspace_of(&test, 2));
}

#[test]
fn a_stale_lease_of_a_killed_gzl_is_taken_over() {
    let test = Test::new();
    let pid = test.outside("slow.pid");
    test.write(
        "Gzlfile",
        format!("slow:\n    echo $$ > {}\n    sleep 1000\n", pid.display()),
    );
    test.write("gzl.toml", "[workspaces]\npool = 1\n");
    test.commit("first");
    let mut child = test.spawn(&["run"]);
    wait_for_pid(&pid);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill gzl");
    child.wait().expect("reaped");

    test.write(
        "Gzlfile",
        format!("quick:\n    echo $GZL_WORKSPACE > {}\n", pid.display()),
    );
    test.gzl(&["run"])
        .status(0)
        .stderr_has("taking over workspace 0 from interrupted run 1");
    assert_eq!(workspace_of(&test, 1), workspace_of(&test, 2));
    let runs = test.runs();
    assert_eq!(runs[1]["status"], "interrupted");
}

#[test]
fn a_killed_stage_is_stopped_before_its_workspace_is_reused() {
    let test = Test::new();
    let pid = test.outside("slow.pid");
    test.write(
        "Gzlfile",
        format!("slow:\n    echo $$ > {}\n    sleep 1000\n", pid.display()),
    );
    test.commit("first");
    let mut child = test.spawn(&["run"]);
    let stage = wait_for_pid(&pid);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill gzl");
    child.wait().expect("reaped");
    test.write("Gzlfile", "quick:\n    true\n");
    test.gzl(&["run"]).status(0);
    wait_for_death(stage, "the killed run's stage");
}

#[test]
fn submodules_are_checked_out_in_the_workspace() {
    let test = Test::new();
    // A repository to use as a submodule, next to the main one.
    let library = test.outside("library");
    std::fs::create_dir_all(&library).unwrap();
    let git = |dir: &std::path::Path, args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&library, &["init", "-q"]);
    std::fs::write(library.join("lib.txt"), "from the submodule\n").unwrap();
    git(&library, &["add", "-A"]);
    git(&library, &["commit", "-qm", "lib"]);
    git(
        &test.repo(),
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            library.to_str().unwrap(),
            "vendor/lib",
        ],
    );
    test.write("Gzlfile", "show:\n    cat vendor/lib/lib.txt\n");
    test.commit("with a submodule");
    test.gzl(&["run"])
        .status(0)
        .stdout_has("from the submodule");
}

#[test]
fn outside_git_a_run_happens_in_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Gzlfile"), "here:\n    touch ran-here\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gzl"))
        .arg("run")
        .current_dir(dir.path())
        .env("GZL_HOME", dir.path().join("home"))
        .env("GIT_CEILING_DIRECTORIES", dir.path().parent().unwrap())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(dir.path().join("ran-here").exists());
}

#[test]
fn gc_removes_workspaces_snapshots_and_logs_beyond_retention_but_keeps_results() {
    // `pass` reads only src/, so writing gzl.toml below does not change its inputs.
    let test = Test::with_gzlfile("pass:\n    @when src/**\n    echo passing\nfail:\n    exit 1\n");
    test.commit("first");
    test.write("untracked.txt", "a snapshot\n");
    test.gzl(&["run", "fail"]).status(1);
    test.gzl(&["run", "fail"]).status(1);
    test.gzl(&["run", "pass"]).status(0);
    let workspaces = [
        workspace_of(&test, 1),
        workspace_of(&test, 2),
        workspace_of(&test, 3),
    ];
    assert!(workspaces.iter().all(|w| std::path::Path::new(w).is_dir()));

    // Generous defaults: nothing is old enough yet.
    test.gzl(&["gc"])
        .status(0)
        .stdout_has("removed 0 workspaces, 0 snapshots, the logs of 0 runs");

    test.write(
        "gzl.toml",
        "[workspaces]\npool = 1\nkeep_failed = \"0s\"\n\n[history]\nkeep = \"0s\"\n",
    );
    test.gzl(&["gc"])
        .status(0)
        .stdout_has("kept from a failed run longer than keep_failed")
        .stdout_has("removed 2 workspaces, 1 snapshot, the logs of 3 runs");
    let left: Vec<&String> = workspaces
        .iter()
        .filter(|w| std::path::Path::new(w).exists())
        .collect();
    assert_eq!(left, [&workspaces[2]], "the passing run's workspace stays");
    assert_eq!(
        test.git(&["for-each-ref", "refs/gzl/"]),
        "",
        "snapshot refs are gone"
    );
    assert_eq!(test.runs().len(), 3, "the runs stay listed");
    test.gzl(&["logs", "3", "pass"]).status(0);
    // Results outlive their logs.
    test.gzl(&["run", "pass"])
        .status(0)
        .stderr_has("reuses run 3");
}

#[test]
fn a_commit_run_records_the_branch_only_when_named_by_it() {
    let test = Test::with_gzlfile("a:\n    true\n");
    test.commit("first");
    test.commit("second");
    test.gzl(&["run", "--at", "HEAD~1"]).status(0);
    test.gzl(&["run", "--at", "main"]).status(0);
    let runs = test.runs();
    assert_eq!(runs[1]["branch"], serde_json::Value::Null);
    assert_eq!(runs[0]["branch"], "main");
    test.gzl(&["run", "--at", "HEAD", "--file", "Gzlfile"])
        .status(2)
        .stderr_has("cannot be combined with --file");
}

#[test]
fn gc_removes_the_workspaces_of_a_repository_that_is_gone() {
    let test = Test::with_gzlfile("a:\n    true\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    let old = workspace_of(&test, 1);
    // The repository moves: its old pool belongs to nothing now.
    let moved = test.outside("moved");
    std::fs::rename(test.repo(), &moved).expect("move the repository");
    std::fs::create_dir(test.repo()).expect("an empty directory where it was");
    let run = crate::harness::Run::from(
        test.command(&["gc"])
            .current_dir(&moved)
            .output()
            .expect("gzl runs"),
    )
    .status(0)
    .stdout_has("its repository is gone");
    assert!(!std::path::Path::new(&old).exists(), "{}", run.stdout);
}

#[test]
fn concurrent_runs_of_the_same_snapshot_both_run() {
    let test = Test::with_gzlfile("slow:\n    sleep 0.5\n");
    test.commit("first");
    test.write("changed.txt", "the same change for both\n");
    // A copy of the index left by a gzl killed while making a snapshot.
    test.write(".git/gzl-index-999999999", "stale");
    let first = test.spawn(&["run", "--no-cache"]);
    let second = test.spawn(&["run", "--no-cache"]);
    for child in [first, second] {
        Run::from(child.wait_with_output().expect("gzl ends")).status(0);
    }
    assert!(!test.path(".git/gzl-index-999999999").exists());
    let runs = test.runs();
    assert_eq!(runs[0]["tree"], runs[1]["tree"]);
}

#[test]
fn a_workspace_git_cannot_use_is_set_aside_made_anew_and_gc_empties_the_trash() {
    let test = Test::with_gzlfile("a:\n    cat file\n");
    test.write("file", "one\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    let workspace = std::path::PathBuf::from(workspace_of(&test, 1));
    // A workspace whose repository git cannot read.
    std::fs::write(workspace.join(".git/HEAD"), "garbage\n").unwrap();
    test.write("file", "two\n");
    test.commit("second");
    test.gzl(&["run"]).status(0).stdout_has("two");
    assert_eq!(workspace_of(&test, 2), workspace.display().to_string());
    let trash = workspace.parent().unwrap().join("trash");
    let aside: Vec<_> = std::fs::read_dir(&trash).unwrap().flatten().collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    test.gzl(&["gc"]).status(0);
    assert!(!trash.exists(), "gc leaves {}", trash.display());
}

/// A stage that leaves about 1 MiB in its workspace and fails, so the workspace is kept and
/// the next run takes another.
const HEAVY: &str =
    "heavy:\n    @when src/**\n    head -c 1000000 /dev/urandom > blob\n    exit 1\n";

/// A pool of four Rust workspaces can take 8 GB: `gc --dry-run` must show what each takes,
/// and change nothing.
#[test]
fn gc_dry_run_lists_each_workspace_with_its_size_and_removes_nothing() {
    let test = Test::with_gzlfile(HEAVY);
    test.commit("first");
    test.gzl(&["run"]).status(1);
    test.gzl(&["run"]).status(1);
    let workspaces = [workspace_of(&test, 1), workspace_of(&test, 2)];
    test.write("gzl.toml", "[workspaces]\nkeep_failed = \"0s\"\n");
    let run = test.gzl(&["gc", "--dry-run"]).status(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("workspaces: 2 taking "),
        "{}",
        run.stdout
    );
    // Each workspace with its size: the blob and the checkout, under 2 MiB.
    for line in &lines[1..3] {
        let size: f64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no size in {line:?}"));
        assert!(
            line.contains(" MiB ") && (0.95..2.0).contains(&size),
            "{line}"
        );
        assert!(line.contains("kept from a failed run"), "{line}");
    }
    run.stdout_has("would remove 2 workspaces, 0 snapshots")
        .stdout_has("kept from a failed run longer than keep_failed");
    for workspace in &workspaces {
        assert!(
            std::path::Path::new(workspace).is_dir(),
            "dry run removed {workspace}"
        );
    }
    test.gzl(&["gc"])
        .status(0)
        .stdout_has("removed 2 workspaces")
        .stdout_has("workspaces: 0 taking 0 B");
}

/// `[workspaces] max_size` caps the pool's disk: gc removes free workspaces, least recently
/// used first, but never one a run holds nor the one used last.
#[test]
fn max_size_makes_gc_remove_the_least_recently_used_workspaces() {
    let test = Test::new();
    let started = test.outside("started");
    let go = test.outside("go");
    test.write(
        "Gzlfile",
        format!(
            "{HEAVY}wait:\n    @when nothing\n    touch {}\n    while [ ! -e {} ]; do sleep 0.05; done\n",
            started.display(),
            go.display()
        ),
    );
    test.commit("first");
    for _ in 0..3 {
        test.gzl(&["run", "heavy"]).status(1);
    }
    let workspaces: Vec<String> = (1..=3).map(|run| workspace_of(&test, run)).collect();
    let exists = |at: usize| std::path::Path::new(&workspaces[at]).is_dir();
    // About 3 MiB in three workspaces: a cap of 2.5 MiB lets the oldest go.
    test.write("gzl.toml", "[workspaces]\nmax_size = \"2.5M\"\n");
    test.gzl(&["gc"])
        .status(0)
        .stdout_has("beyond max_size")
        .stdout_has("removed 1 workspace");
    assert!(!exists(0) && exists(1) && exists(2));

    // A run holds one of them (the pool reuses none: all are kept from failed runs).
    let waiting = test.spawn(&["run", "wait"]);
    test.wait_for_outside("started");
    test.write("gzl.toml", "[workspaces]\nmax_size = 1\n");
    test.gzl(&["gc"])
        .status(0)
        .stdout_has("left 1 workspace in use");
    // Of the free ones, the one used last stays, however big.
    assert!(!exists(1) && exists(2));
    std::fs::write(&go, "").expect("go");
    Run::from(waiting.wait_with_output().expect("run ends")).status(0);
}

/// With max_size set, the end of a run trims the pool too, keeping the workspace it used.
#[test]
fn a_run_ends_by_bringing_the_pool_under_max_size() {
    let test = Test::with_gzlfile(HEAVY);
    test.commit("first");
    test.gzl(&["run"]).status(1);
    test.gzl(&["run"]).status(1);
    let old = [workspace_of(&test, 1), workspace_of(&test, 2)];
    test.write("gzl.toml", "[workspaces]\nmax_size = \"1.5M\"\n");
    test.gzl(&["run"])
        .status(1)
        .stderr_has("removed workspace")
        .stderr_has("the pool took more than max_size 1.50 MiB");
    assert!(!std::path::Path::new(&old[0]).exists());
    assert!(!std::path::Path::new(&old[1]).exists());
    assert!(std::path::Path::new(&workspace_of(&test, 3)).is_dir());
}
