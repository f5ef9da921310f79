//! The pinned tool: gzl.toml's `[gzl] version` decides which gzl runs in the repository.

use crate::harness::{Run, Test};

#[test]
fn a_pin_this_gzl_does_not_satisfy_is_refused_unless_told_to_go_on() {
    let test = Test::with_gzlfile("a:\n    echo ran\n");
    test.write("gzl.toml", "[gzl]\nversion = \"9.9.9\"\n");
    test.commit("first");
    test.gzl(&["run"])
        .status(2)
        .stderr_has("this repository pins gzl 9.9.9 (gzl.toml), and this is gzl")
        .stderr_has("--no-pin");
    test.gzl(&["run", "--no-pin"])
        .status(0)
        .stdout_has("ran")
        .stderr_has("warning: this repository pins gzl 9.9.9");
    Run::from(
        test.command(&["run", "--force"])
            .env("GZL_NO_PIN", "1")
            .output()
            .unwrap(),
    )
    .status(0);
    // A requirement this gzl meets changes nothing.
    test.write(
        "gzl.toml",
        format!("[gzl]\nversion = \"{}\"\n", env!("CARGO_PKG_VERSION")),
    );
    test.gzl(&["run"]).status(0);
    test.write("gzl.toml", "[gzl]\nversion = \"not a version\"\n");
    test.gzl(&["ls"])
        .status(2)
        .stderr_has("is not a version or a requirement");
    // The pin is found in a file with settings this gzl does not know (a newer gzl's).
    test.write(
        "gzl.toml",
        "[gzl]\nversion = \"9.9.9\"\n\n[future]\nsetting = 1\n",
    );
    test.gzl(&["ls"]).status(2).stderr_has("pins gzl 9.9.9");
}

#[test]
fn a_cached_gzl_that_satisfies_the_pin_takes_over_with_the_same_arguments() {
    let test = Test::with_gzlfile("a:\n    true\n");
    test.write("gzl.toml", "# which gzl\n[gzl]\nversion = \"9.9\"\n");
    test.commit("first");
    let fake = test.home().join("cache/bin/9.9.4/gzl");
    std::fs::create_dir_all(fake.parent().unwrap()).unwrap();
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"gzl 9.9.4 with: $* (handed over: $GZL_PIN_HANDED_OVER)\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    test.gzl(&["ls", "-n", "3"])
        .status(0)
        .stdout_has("gzl 9.9.4 with: ls -n 3 (handed over: 1)");
    test.gzl(&["version"])
        .status(0)
        .stdout_has("pinned: gzl 9.9.4 serves this repository, from");
}

#[test]
fn pin_writes_gzl_toml_keeping_what_was_there() {
    let test = Test::with_gzlfile("a:\n    true\n");
    test.write(
        "gzl.toml",
        "# Settings for gzl.\n[workspaces]\npool = 2 # two is enough\n",
    );
    test.gzl(&["pin", "0.1"]).status(0);
    let text = test.read("gzl.toml");
    assert!(
        text.starts_with("# Settings for gzl.\n[workspaces]\npool = 2 # two is enough\n"),
        "{text}"
    );
    assert!(text.contains("[gzl]\nversion = \"0.1\"\n"), "{text}");
    test.gzl(&["version"])
        .status(0)
        .stdout_has("pinned: 0.1; this gzl serves it");
    test.gzl(&["pin", "--channel", "stable"]).status(0);
    let text = test.read("gzl.toml");
    assert!(text.contains("channel = \"stable\""), "{text}");
    assert!(!text.contains("version ="), "{text}");
    test.gzl(&["pin", "x.y"])
        .status(2)
        .stderr_has("is not a version");
}
