//! `gzl ui` end to end in a real pseudo-terminal: it starts, moves, opens a log and quits.

use crate::harness::Test;

#[test]
fn the_ui_starts_moves_opens_a_log_and_quits() {
    let test = Test::with_gzlfile(
        "build:\n    echo building the thing\ntest: build\n    echo testing from the second stage\n",
    );
    test.commit("a commit to look at");
    test.gzl(&["run"]).status(0);
    // In a pseudo-terminal of 80x24: wait for the screen, focus the stages, move to the
    // second stage (its log opens), quit.
    let (success, shown) = test.in_terminal("ui", &[("", 1000), ("l", 400), ("j", 800), ("q", 0)]);
    assert!(success, "{shown}");
    // The screen is drawn in pieces with cursor moves between words.
    // The commit's subject, the first stage's log, then (after moving) the second's.
    for word in ["commit", "building", "second", "quit"] {
        assert!(shown.contains(word), "{word} not shown:\n{shown}");
    }
    // It restored the terminal: the alternate screen was left.
    assert!(shown.contains("\u{1b}[?1049l"), "{shown}");
}
