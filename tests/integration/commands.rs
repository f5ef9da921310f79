//! `check`, `init`, `completions` and the global options.

use crate::harness::Test;

const PIPELINE: &str = "# a pipeline\nbuild:\n  cargo build\ntest: build\n  @timeout 10m\n  @env RUST_BACKTRACE=1\n  cargo test\nlint:\n  cargo clippy\nall: test lint\n";

#[test]
fn check_lists_the_stages_in_a_valid_order() {
    let test =
        Test::with_gzlfile("all: test lint\ntest: build\n  true\nlint:\n  true\nbuild:\n  true\n");
    let run = test.gzl(&["check"]).status(0);
    assert_eq!(
        run.stdout,
        "build\ntest   needs build\nlint\nall    needs test, lint  (group)\n"
    );
    run.stderr_has("Gzlfile: 4 stages, valid");
}

/// `just --list` shows each recipe's comment; `gzl check` shows each stage's the same way.
#[test]
fn check_lists_stage_descriptions_in_a_column() {
    let test = Test::with_gzlfile(
        "# Compile it\nbuild:\n  true\n\n# Run the tests\n# (all of them)\ntest: build\n  true\n\n# not about lint\n\nlint:\n  true\n",
    );
    let run = test.gzl(&["check"]).status(0);
    assert_eq!(
        run.stdout,
        "build               # Compile it\n\
         test   needs build  # Run the tests\n\
         \x20                   # (all of them)\n\
         lint\n"
    );
    let json = test.gzl(&["check", "--json"]).status(0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(value["stages"][0]["description"], "Compile it");
    assert_eq!(
        value["stages"][1]["description"],
        "Run the tests\n(all of them)"
    );
    assert_eq!(value["stages"][2]["description"], serde_json::Value::Null);
}

/// A description is the Gzlfile's text, shown on a terminal: escapes in it must not drive it.
#[test]
fn control_characters_in_stage_descriptions_are_escaped() {
    let test = Test::with_gzlfile("# \x1b]0;pwned\x07red \x1b[31mtext\u{202e}\nbuild:\n  true\n");
    let run = test.gzl(&["check"]).status(0);
    assert_eq!(
        run.stdout,
        "build  # \\x1b]0;pwned\\x07red \\x1b[31mtext\\u{202e}\n"
    );
    let json = test.gzl(&["check", "--json"]).status(0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(
        value["stages"][0]["description"],
        "\x1b]0;pwned\x07red \x1b[31mtext\u{202e}"
    );
}

#[test]
fn check_json_describes_every_stage() {
    let test = Test::with_gzlfile(PIPELINE);
    let run = test.gzl(&["check", "--json"]).status(0);
    let value: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(value["schema"], 1);
    let test_stage = &value["stages"][1];
    assert_eq!(test_stage["name"], "test");
    assert_eq!(test_stage["needs"][0], "build");
    assert_eq!(test_stage["line"], 4);
    assert_eq!(test_stage["timeout_ms"], 600_000);
    assert_eq!(test_stage["env"][0][0], "RUST_BACKTRACE");
    assert_eq!(value["stages"][3]["group"], true);
}

// Tools reading `check --json` see what a stage leaves for the others, as written.
#[test]
fn check_json_lists_outputs() {
    let test = Test::with_gzlfile("install:\n  @outputs node_modules dist/*.js\n  true\n");
    let run = test.gzl(&["check", "--json"]).status(0);
    let value: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(
        value["stages"][0]["outputs"],
        serde_json::json!(["node_modules", "dist/*.js"])
    );
}

#[test]
fn check_dot_draws_the_graph() {
    let test = Test::with_gzlfile(PIPELINE);
    let run = test.gzl(&["check", "--dot"]).status(0);
    assert!(run.stdout.starts_with("digraph gzl {"));
    assert!(run.stdout.contains("\"build\" -> \"test\";"));
    assert!(run.stdout.contains("\"lint\" -> \"all\";"));
}

#[test]
fn init_picks_a_template_for_the_project_and_never_overwrites() {
    let test = Test::new();
    test.write("Cargo.toml", "[package]\nname = \"x\"\n");
    test.gzl(&["init"]).status(0).stderr_has("rust template");
    assert!(test.read("Gzlfile").contains("cargo clippy"));
    test.gzl(&["check"]).status(0);
    test.write("Gzlfile", "mine:\n  true\n");
    test.gzl(&["init"]).status(2).stderr_has("--force");
    assert_eq!(test.read("Gzlfile"), "mine:\n  true\n");
    test.gzl(&["init", "--force"]).status(0);
    assert!(test.read("Gzlfile").contains("cargo clippy"));
}

#[test]
fn every_template_is_a_valid_gzlfile() {
    for (marker, expected) in [
        ("package.json", "npm"),
        ("pyproject.toml", "pytest"),
        ("go.mod", "go test"),
        ("Makefile", "make test"),
        ("", "echo"),
    ] {
        let test = Test::new();
        if !marker.is_empty() {
            test.write(marker, "");
        }
        test.gzl(&["init"]).status(0);
        assert!(test.read("Gzlfile").contains(expected), "{marker}");
        test.gzl(&["check"]).status(0);
    }
}

#[test]
fn directory_and_file_options() {
    let test = Test::with_gzlfile("a:\n  echo from-root\n");
    test.write("ci/other.gzl", "b:\n  echo from-other\n");
    test.write("sub/.keep", "");
    let mut command = test.command(&["-C", "sub", "run"]);
    command.current_dir(test.repo());
    let run = crate::harness::Run::from(command.output().expect("gzl"));
    run.status(0).stdout_has("from-root");
    test.gzl(&["run", "--file", "ci/other.gzl"])
        .status(0)
        .stdout_has("from-other");
    test.gzl(&["-C", "nowhere", "run"])
        .status(2)
        .stderr_has("no such directory");
}

#[test]
fn completions_are_printed_for_a_shell() {
    let test = Test::new();
    test.gzl(&["completions", "bash"])
        .status(0)
        .stdout_has("_clap_complete_gzl()");
}

#[test]
fn usage_errors_exit_2() {
    let test = Test::with_gzlfile("a:\n  true\n");
    test.gzl(&["run", "--jobs", "0"]).status(2);
    test.gzl(&["no-such-command"]).status(2);
}
