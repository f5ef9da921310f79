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

// The renderer ended lines at a lone `\r` while the parser does not, and a span after one
// made `gzl check` panic.
#[test]
fn a_lone_carriage_return_before_a_bad_token_does_not_panic() {
    let stderr = check_errors("a: x\r y!\n  true\n");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("error: `y!` is not a valid stage name\n --> Gzlfile:1:7\n  |\n1 | a: x\\r y!\n  |        ^^ needed here\n"),
        "{stderr}"
    );
    // A line of a lone `\r` is shown as one, not as an empty line.
    let stderr = check_errors("a:\n  true\n\r\r\n");
    assert!(
        stderr.contains("found `\\r`\n --> Gzlfile:3:1\n  |\n3 | \\r\n  | ^^ "),
        "{stderr}"
    );
    // Other places a `\r` can stand: each gives a verdict, never a panic.
    for gzlfile in [
        "\r",
        "\r\n",
        "a:\r",
        "a: b\r!x\n",
        "a: b\r\n  true\r\n\r\rb:\r\n  true\n",
        "a:\n  @timeout\r 5s\n  true\n",
        "a:\n  @env X=\r\n  @bad\r!\n  true\r",
        "a\r: b\n  true\n",
        "a: \r\n\r  true\n",
    ] {
        let test = Test::with_gzlfile(gzlfile);
        let run = test.gzl(&["check"]);
        assert!(
            matches!(run.code, Some(0 | 2)) && !run.stderr.contains("panicked"),
            "{gzlfile:?}: {:?}\n{}",
            run.code,
            run.stderr
        );
    }
}

// A Gzlfile from a cloned repository must not drive the terminal of whoever checks it.
#[test]
fn control_characters_in_diagnostics_are_escaped() {
    let stderr = check_errors(
        "a: \x1b]0;owned\x07 b\n  true\n\x1b[2J\u{9b}1m:\n  true\nc:\n  @timeout \x1b[31m\u{202e}5s\n  true\n",
    );
    for raw in ['\x1b', '\x07', '\u{9b}', '\u{202e}'] {
        assert!(!stderr.contains(raw), "{raw:?} in {stderr}");
    }
    // In messages and in the quoted line, with the carets under the escaped text.
    let need = "\\x1b]0;owned\\x07";
    assert!(
        stderr.contains(&format!("error: `{need}` is not a valid stage name\n")),
        "{stderr}"
    );
    let carets = "^".repeat(need.len());
    assert!(
        stderr.contains(&format!("1 | a: {need} b\n  |    {carets} needed here\n")),
        "{stderr}"
    );
    assert!(stderr.contains("found `\\x1b[2J\\u{9b}1m:`"), "{stderr}");
    let value = "\\x1b[31m\\u{202e}5s";
    let carets = "^".repeat(value.len());
    assert!(
        stderr.contains(&format!(
            "6 |   @timeout {value}\n  |            {carets} not a duration\n"
        )),
        "{stderr}"
    );
}

// 8,000 unknown needs printed 8,000 copies of a 50 kB line (hundreds of MB), and looking
// for a suggestion for each took seconds.
#[test]
fn eight_thousand_unknown_needs_are_reported_capped() {
    let needs: Vec<String> = (0..8_000).map(|i| format!("stage-{i}x")).collect();
    let stages: String = (0..100).map(|i| format!("stage-{i}:\n  true\n")).collect();
    let test = Test::with_gzlfile(&format!("all: {}\n  true\n{stages}", needs.join(" ")));
    let run = test.gzl(&["check"]).status(2);
    let stderr = &run.stderr;
    assert_eq!(
        stderr.matches("error: unknown stage").count(),
        50,
        "{stderr:.2000}"
    );
    assert!(stderr.contains("did you mean `stage-1`?"), "{stderr:.2000}");
    assert!(
        stderr.ends_with("... and 7950 more errors\n\nerror: Gzlfile has 8000 errors\n"),
        "{}",
        &stderr[stderr.len().saturating_sub(2000)..]
    );
    assert!(stderr.len() < 100_000, "{} bytes", stderr.len());
}

// `@outputs` paths must stay below the stage's directory and be globs gzl can match; each
// bad one is reported at its own column with the fix.
#[test]
fn bad_outputs_are_diagnosed() {
    insta::assert_snapshot!(check_errors(
        "install:\n  @outputs node_modules ../shared\n  true\nbuild:\n  @outputs /tmp/out\n  true\ntest:\n  @outputs .git\n  true\n"
    ));
}

// An empty or comment-only Gzlfile said only "has no stages", leaving a new user stuck.
#[test]
fn an_empty_or_comment_only_gzlfile_points_to_gzl_init() {
    for gzlfile in [
        "",
        "\n\n",
        "# the pipeline, one day\n\n# more to come\n",
        "    # an indented comment is a comment too\n",
    ] {
        let stderr = check_errors(gzlfile);
        assert!(stderr.contains("Gzlfile has no stages"), "{stderr}");
        assert!(
            stderr.contains("help: run `gzl init --force` to write one for this project"),
            "{stderr}"
        );
    }
}
