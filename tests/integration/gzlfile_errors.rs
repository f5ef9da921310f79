//! Every Gzlfile error is reported with file, line, column, the line, a caret and a hint,
//! exits 2 and runs nothing. The snapshots show exactly what users see.

use crate::harness::Test;

fn check_errors(gzlfile: &str) -> String {
    let test = Test::with_gzlfile(gzlfile);
    let run = test.gzl(&["run"]).status(2);
    assert!(run.stdout.is_empty(), "nothing ran: {}", run.stdout);
    assert!(
        !test.home().join("runs").exists() || test.runs().is_empty(),
        "no run recorded"
    );
    // `check` reports the same.
    let check = test.gzl(&["check"]).status(2);
    assert_eq!(check.stderr, run.stderr);
    run.stderr
}

#[test]
fn syntax_errors() {
    insta::assert_snapshot!(check_errors(
        "build\n    cargo build\nFOO = bar\n    echo\ntest build:\n  x\n"
    ));
}

#[test]
fn body_line_without_indentation() {
    insta::assert_snapshot!(check_errors("build:\ncargo build\n"));
}

#[test]
fn indented_line_before_any_stage() {
    insta::assert_snapshot!(check_errors("  echo hi\nbuild:\n  true\n"));
}

#[test]
fn unknown_attribute_lists_the_known_ones() {
    insta::assert_snapshot!(check_errors(
        "build:\n    @timout 10m\n    @echo hi\n    true\n"
    ));
}

#[test]
fn bad_durations() {
    insta::assert_snapshot!(check_errors(
        "a:\n  @timeout 10\n  @idle-timeout 1.5h\n  true\nb:\n  @timeout\n  true\n"
    ));
}

#[test]
fn duplicate_stage() {
    insta::assert_snapshot!(check_errors(
        "build:\n  true\ntest:\n  true\nbuild:\n  false\n"
    ));
}

#[test]
fn unknown_needed_stage_suggests_the_closest() {
    insta::assert_snapshot!(check_errors(
        "build:\n  true\ntest: biuld\n  true\ndeploy: nothing-like-it\n  true\n"
    ));
}

#[test]
fn cycles_print_the_path() {
    insta::assert_snapshot!(check_errors(
        "a: c\n  true\nb: a\n  true\nc: b\n  true\nself: self\n  true\n"
    ));
}

#[test]
fn inconsistent_indentation() {
    insta::assert_snapshot!(check_errors(
        "mixed:\n    echo a\n\techo b\nshallow:\n    echo a\n  echo b\n"
    ));
}

#[test]
fn bad_attribute_values() {
    insta::assert_snapshot!(check_errors(
        "a:\n  @env NOVALUE\n  @env 1X=2\n  @dir ../elsewhere\n  @shell python3 'unclosed\n  @timeout 1s\n  @timeout 2s\n  true\ngroup: a\n  @timeout 1s\n"
    ));
}

#[test]
fn not_utf8() {
    let test = Test::new();
    test.write("Gzlfile", b"build:\n  echo caf\xe9\n");
    let run = test.gzl(&["check"]).status(2);
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn every_error_of_the_file_is_reported_at_once() {
    let stderr = check_errors("a: missing\n  @bogus\n  true\na:\n  true\n");
    assert_eq!(stderr.matches("error:").count(), 4, "{stderr}");
    assert!(stderr.contains("has 3 errors"), "{stderr}");
}

#[test]
fn missing_gzlfile_says_where_gzl_looked() {
    let test = Test::new();
    test.write("sub/dir/file", "");
    let mut command = test.command(&["run"]);
    command.current_dir(test.path("sub/dir"));
    let run = crate::harness::Run::from(command.output().expect("gzl runs")).status(2);
    let root = test.repo().canonicalize().expect("canonical repo");
    assert!(
        run.stderr.contains(&format!(
            "no Gzlfile found in {} (the repository root)",
            root.display()
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("gzl init"), "{}", run.stderr);
}

#[test]
fn unknown_target_suggests_a_stage() {
    let test = Test::with_gzlfile("build:\n  true\n");
    test.gzl(&["run", "biuld"])
        .status(2)
        .stderr_has("no stage named `biuld`")
        .stderr_has("did you mean `build`?");
}

#[test]
fn gzl_toml_errors_name_the_file_line_and_key() {
    let test = Test::with_gzlfile("a:\n    true\n");
    test.commit("first");
    test.write(
        "gzl.toml",
        "# pool size below\n[workspaces]\npool = 2\nclaen = \"all\"\n",
    );
    test.gzl(&["run"])
        .status(2)
        .stderr_has("unknown field `claen`, expected one of `pool`, `clean`, `keep_failed`")
        .stderr_has("--> gzl.toml:4:1");
    test.write("gzl.toml", "# the pool\n[workspaces]\npool = 0\n");
    test.gzl(&["run"])
        .status(2)
        .stderr_has("`pool` must be at least 1")
        .stderr_has("--> gzl.toml:3:1");
    test.write("gzl.toml", "[history]\nkeep = \"forever\"\n");
    test.gzl(&["gc"])
        .status(2)
        .stderr_has("`forever` is not a duration")
        .stderr_has("--> gzl.toml:2:8");
    test.write("gzl.toml", "[unknown]\n");
    test.gzl(&["run"])
        .status(2)
        .stderr_has("unknown field `unknown`");
}
