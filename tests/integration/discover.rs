//! What make and just users reach for: completion of stages and runs, the man page.

use std::path::Path;
use std::process::Command;

use crate::harness::{Run, Test};

const GZLFILE: &str = "# Compile it\nbuild:\n  true\n\n# Run the tests\ntest: build\n  true\n";

/// What bash's completion of `words` offers, the cursor on the last word: the script
/// `gzl completions bash` prints is loaded into a real bash, whose completion function runs as
/// bash runs it on TAB.
fn bash_completes(test: &Test, dir: &Path, words: &[&str]) -> Vec<String> {
    let gzl = env!("CARGO_BIN_EXE_gzl");
    let quoted: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
    let current = words.last().copied().unwrap_or_default();
    let previous = words.len().checked_sub(2).map_or("", |at| words[at]);
    let script = format!(
        "eval \"$('{gzl}' completions bash)\"\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_TYPE=9\n\
         _clap_complete_gzl gzl '{current}' '{previous}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", test.home())
        .env("GZL_HOME", test.home())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("bash runs");
    let run = Run::from(output).status(0);
    assert_eq!(run.stderr, "", "completion printed on stderr");
    run.stdout.lines().map(str::to_string).collect()
}

/// `COMPLETE=SHELL gzl -- WORDS...`, as zsh's and fish's registered functions call it.
fn complete(test: &Test, dir: &Path, shell: &str, words: &[&str]) -> Run {
    let mut command = test.command(&["--"]);
    command
        .args(words)
        .current_dir(dir)
        .env("COMPLETE", shell)
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .env("_CLAP_IFS", "\n");
    Run::from(command.output().expect("gzl runs"))
}

/// Completion used to offer subcommands and options only; make and just users expect the
/// stage names, and a run id is what `gzl logs` needs.
#[test]
fn completion_offers_stage_names_and_run_ids() {
    let test = Test::with_gzlfile(GZLFILE);
    let repo = test.repo();
    let offered = bash_completes(&test, &repo, &["gzl", "run", ""]);
    assert!(
        offered.starts_with(&["build".into(), "test".into()]),
        "{offered:?}"
    );
    assert_eq!(
        bash_completes(&test, &repo, &["gzl", "why", "te"]),
        ["test"]
    );
    // The stage after a run id is a stage too.
    assert_eq!(
        bash_completes(&test, &repo, &["gzl", "logs", "1", "b"]),
        ["build"]
    );
    // `-C` and `--file` on the line being completed say which Gzlfile.
    test.write("ci/other.gzl", "# Elsewhere\nelsewhere:\n  true\n");
    let outside = test.outside("plain");
    std::fs::create_dir_all(&outside).expect("dir");
    let repo_arg = repo.to_str().expect("UTF-8");
    assert_eq!(
        bash_completes(&test, &outside, &["gzl", "-C", repo_arg, "run", "b"]),
        ["build"]
    );
    assert_eq!(
        bash_completes(&test, &repo, &["gzl", "--file", "ci/other.gzl", "run", ""])[0],
        "elsewhere"
    );
    // Before any run there is no run id to offer, and nothing is made to find that out.
    assert!(!bash_completes(&test, &repo, &["gzl", "logs", ""]).contains(&"last".into()));

    test.gzl(&["run"]).status(0);
    test.gzl(&["run"]).status(0);
    let offered = bash_completes(&test, &repo, &["gzl", "logs", ""]);
    assert!(
        offered.starts_with(&["last".into(), "2".into(), "1".into()]),
        "{offered:?}"
    );
    assert_eq!(bash_completes(&test, &repo, &["gzl", "stop", "2"]), ["2"]);

    // zsh and fish get each candidate with its description.
    complete(&test, &repo, "zsh", &["gzl", "run", ""])
        .status(0)
        .stdout_has("build:Compile it\ntest:Run the tests\n");
    complete(&test, &repo, "fish", &["gzl", "debug", ""])
        .status(0)
        .stdout_has("last\tthe newest run\n2\tpassed · main · ");
}

/// Completion runs on every TAB, anywhere: it must never fail loudly, and never write.
#[test]
fn completion_outside_a_project_offers_nothing_and_writes_nothing() {
    let test = Test::new();
    let plain = test.outside("plain");
    std::fs::create_dir_all(&plain).expect("dir");
    for dir in [plain.as_path(), test.repo().as_path()] {
        for words in [["gzl", "run", ""], ["gzl", "logs", ""]] {
            // Options only: gzl answered, with nothing else to offer.
            let offered = bash_completes(&test, dir, &words);
            assert!(offered.contains(&"--help".into()), "{offered:?}");
            assert!(
                offered.iter().all(|word| word.starts_with('-')),
                "{offered:?}"
            );
        }
    }
    // An invalid Gzlfile offers no stages, and says nothing about it.
    test.write("Gzlfile", "build\n");
    let offered = bash_completes(&test, &test.repo(), &["gzl", "run", ""]);
    assert!(offered.contains(&"--help".into()), "{offered:?}");
    assert!(
        offered.iter().all(|word| word.starts_with('-')),
        "{offered:?}"
    );
    assert!(!test.home().exists(), "completion made gzl's home");

    // With history, completing reads it and changes nothing.
    test.write("Gzlfile", GZLFILE);
    test.gzl(&["run"]).status(0);
    let database = test.home().join("history.db");
    let before = std::fs::read(&database).expect("history");
    bash_completes(&test, &test.repo(), &["gzl", "logs", ""]);
    complete(&test, &test.repo(), "fish", &["gzl", "attach", ""]).status(0);
    assert!(
        std::fs::read(&database).expect("history") == before,
        "history changed"
    );
    assert_eq!(test.runs().len(), 1);
}

/// `gzl completions SHELL` prints what `COMPLETE=SHELL gzl` prints: the dynamic registration.
#[test]
fn completions_print_the_dynamic_registration() {
    let test = Test::new();
    for (shell, has) in [
        ("bash", "COMPLETE=\"bash\""),
        ("zsh", "COMPLETE=\"zsh\""),
        ("fish", "COMPLETE=fish"),
    ] {
        let printed = test.gzl(&["completions", shell]).status(0).stdout_has(has);
        let mut command = test.command(&[]);
        command.env("COMPLETE", shell);
        let registered = Run::from(command.output().expect("gzl runs")).status(0);
        assert_eq!(printed.stdout.trim(), registered.stdout.trim(), "{shell}");
    }
}

/// The commands `gzl --help` lists, but `help`.
fn commands(test: &Test) -> Vec<String> {
    let help = test.gzl(&["--help"]).status(0).stdout;
    let listed = help
        .split("Commands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("--help lists commands");
    listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// make and just users look for `man gzl`; the pages must cover every command.
#[test]
fn man_page_renders_and_names_every_command() {
    let test = Test::new();
    let commands = commands(&test);
    assert!(commands.len() > 20, "{commands:?}");
    let page = test.gzl(&["man"]).status(0).stdout;
    assert!(page.contains(".TH gzl 1"), "{page}");
    for name in &commands {
        let roff_name = format!("gzl\\-{}(1)", name.replace('-', "\\-"));
        assert!(page.contains(&roff_name), "gzl.1 lacks {roff_name}");
    }

    let out = test.outside("man");
    test.gzl(&["man", "--out", out.to_str().expect("UTF-8")])
        .status(0)
        .stderr_has("manual pages into");
    for name in
        std::iter::once("gzl".to_string()).chain(commands.iter().map(|n| format!("gzl-{n}")))
    {
        assert!(out.join(format!("{name}.1")).is_file(), "no {name}.1");
    }
    assert!(out.join("gzl-secret-set.1").is_file());

    // Rendered as `man` renders it, when this machine has man.
    let Ok(rendered) = Command::new("man")
        .arg("-l")
        .arg(out.join("gzl.1"))
        .env("MANWIDTH", "120")
        .env("MANPAGER", "cat")
        .env("LANG", "C.UTF-8")
        .output()
    else {
        return;
    };
    let rendered = Run::from(rendered).status(0);
    assert_eq!(rendered.stderr, "", "man warned");
    for name in &commands {
        assert!(
            rendered.stdout.contains(&format!("gzl-{name}(1)")),
            "{name}"
        );
    }
    assert!(rendered.stdout.contains("EXIT STATUS"));
}
