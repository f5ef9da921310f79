//! `gzl ui` end to end in a real pseudo-terminal: it starts, moves, opens a log and quits.

use crate::harness::{Test, wait_until};

#[test]
fn the_ui_starts_moves_opens_a_log_and_quits() {
    let test = Test::with_gzlfile(
        "build:\n    echo building the thing\ntest: build\n    echo testing from the second stage\n",
    );
    test.commit("a commit to look at");
    test.gzl(&["run"]).status(0);
    // In a pseudo-terminal of 80x24: wait for the screen (its last line lists the keys), focus
    // the stages, move to the second stage, wait for its log, quit.
    let (success, shown) = test.in_terminal("ui", &[("quit", "l"), ("", "j"), ("second", "q")]);
    assert!(success, "{shown}");
    // The screen is drawn in pieces with cursor moves between words.
    // The commit's subject, the first stage's log, then (after moving) the second's.
    for word in ["commit", "building", "second", "quit"] {
        assert!(shown.contains(word), "{word} not shown:\n{shown}");
    }
    // It restored the terminal: the alternate screen was left.
    assert!(shown.contains("\u{1b}[?1049l"), "{shown}");
}

#[test]
fn keys_stop_a_running_run_and_run_its_commit_again() {
    let test = Test::new();
    // The first run waits; the one `r` starts finds the mark and passes at once.
    let mark = test.outside("started");
    test.write(
        "Gzlfile",
        format!(
            "slow:\n    [ -e {mark} ] && exit 0\n    touch {mark}\n    sleep 30\n",
            mark = mark.display()
        ),
    );
    let head = test.commit("a slow one");
    let runner = test.spawn(&["run"]);
    test.wait_for_outside("started");
    // The running run is the newest, so it is selected: `s` asks, `n` keeps it running, `s`
    // and `y` stop it, `r` runs its commit again in the background; each says so in the footer
    // ("stop run 1? y/n", "stop run 1: done", "started a run of …", drawn word by word).
    let (success, shown) = test.in_terminal(
        "ui",
        &[
            ("quit", "s"),
            ("1?", "n"),
            ("not", "s"),
            ("1?", "y"),
            ("done", "r"),
            ("started", "q"),
        ],
    );
    assert!(success, "{shown}");
    // `gzl stop` printed "stopped run 1" onto the screen the user came back to.
    assert_eq!(beside_the_ui(&shown), "", "{shown:?}");
    let stopped = crate::harness::Run::from(runner.wait_with_output().expect("the runner ends"));
    assert_eq!(stopped.code, Some(1), "{}", stopped.stderr);
    let runs = wait_until("the second run to pass", || {
        let runs = test.runs();
        if runs.len() == 2 && runs[0]["status"] == "passed" {
            Ok(runs)
        } else {
            Err(format!("{runs:?}"))
        }
    });
    assert_eq!(runs[1]["status"], "stopped", "{runs:?}");
    assert_eq!(runs[0]["commit"], head.as_str(), "{runs:?}");
}

/// The text written outside the UI's alternate screen, escape sequences left out: what the
/// user finds in their terminal after quitting.
fn beside_the_ui(shown: &str) -> String {
    let mut text = String::new();
    let mut on_screen = false;
    let mut chars = shown.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            if !on_screen && !c.is_whitespace() {
                text.push(c);
            }
            continue;
        }
        // CSI: parameters up to a final byte; others: one character.
        let mut sequence = String::new();
        if chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                sequence.push(c);
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
        match sequence.as_str() {
            "?1049h" => on_screen = true,
            "?1049l" => on_screen = false,
            _ => {}
        }
    }
    text
}

// A cached stage showed an empty log in `gzl ui`: it did not run, its output is the reused run's.
#[test]
fn the_ui_shows_a_cached_stage_s_reused_log() {
    let test = Test::with_gzlfile("say:\n    echo said only once\n");
    test.commit("one stage");
    test.gzl(&["run"]).status(0);
    test.gzl(&["run"]).status(0);
    // Run 2, the newest, is selected with its one stage, cached from run 1.
    let (success, shown) = test.in_terminal("ui", &[("once", "q")]);
    assert!(success, "{shown}");
    // The title says so: "say (cached: log of run 1)", drawn word by word.
    assert!(
        shown.contains("(cached:") && shown.contains("1)"),
        "{shown}"
    );
}

// Without a terminal `gzl ui` failed with exit 3 and "No such device or address (os error 6)".
#[test]
fn the_ui_without_a_terminal_says_it_needs_one() {
    let test = Test::with_gzlfile("a:\n    true\n");
    test.gzl(&["ui"])
        .status(2)
        .stderr_has("error: gzl ui needs a terminal");
}
