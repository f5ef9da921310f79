//! `gzl ui` end to end in a real pseudo-terminal: it starts, moves, opens a log and quits.

use std::io::Write as _;
use std::process::Stdio;

use crate::harness::Test;

#[test]
fn the_ui_starts_moves_opens_a_log_and_quits() {
    let test = Test::with_gzlfile(
        "build:\n    echo building the thing\ntest: build\n    echo testing from the second stage\n",
    );
    test.commit("a commit to look at");
    test.gzl(&["run"]).status(0);
    // `script` (util-linux) gives gzl a pseudo-terminal of 80x24; keys go in on its stdin.
    let gzl = env!("CARGO_BIN_EXE_gzl");
    let mut child = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("stty rows 24 cols 80; {gzl} ui"),
            "/dev/null",
        ])
        .current_dir(test.repo())
        .env("GZL_HOME", test.home())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs gzl in a pseudo-terminal");
    let mut keys = child.stdin.take().expect("stdin");
    for (key, wait) in [("", 1000), ("l", 400), ("j", 800), ("q", 0)] {
        std::thread::sleep(std::time::Duration::from_millis(wait));
        keys.write_all(key.as_bytes()).expect("a key");
        keys.flush().expect("sent");
    }
    let output = child.wait_with_output().expect("the ui ends");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    // The screen is drawn in pieces with cursor moves between words.
    // The commit's subject, the first stage's log, then (after moving) the second's.
    for word in ["commit", "building", "second", "quit"] {
        assert!(shown.contains(word), "{word} not shown:\n{shown}");
    }
    // It restored the terminal: the alternate screen was left.
    assert!(shown.contains("\u{1b}[?1049l"), "{shown}");
}
