//! Secrets: `@secret NAME` gives one stage a value, masked wherever its output goes.

use std::io::Write as _;
use std::process::Stdio;

use crate::harness::{Run, Test};

const TOKEN: &str = "s3cr3t-t0ken-value";

/// `gzl ARGS` with `GZL_SECRET_TOKEN` set.
fn with_token(test: &Test, args: &[&str]) -> Run {
    Run::from(
        test.command(args)
            .env("GZL_SECRET_TOKEN", TOKEN)
            .output()
            .expect("gzl runs"),
    )
}

#[test]
fn a_secret_reaches_its_stage_only_and_is_masked_everywhere() {
    let test = Test::with_gzlfile(
        "deploy:\n    @secret TOKEN\n    echo \"whole: $TOKEN\"\n    printf 'split: %s' \"$(echo $TOKEN | cut -c1-6)\"\n    sleep 0.2\n    printf '%s\\n' \"$(echo $TOKEN | cut -c7-)\"\n    printf 'b64: '; printf '%s' \"$TOKEN\" | base64\n    echo \"$(printf 'x%.0s' $(seq 200)) $TOKEN $(printf 'y%.0s' $(seq 200))\"\nother:\n    echo \"other sees: [$TOKEN] [$GZL_SECRET_TOKEN]\"\n",
    );
    test.commit("first");
    let run = with_token(&test, &["run", "-j", "1"]).status(0);
    let logs = test.gzl(&["logs", "last"]).status(0);
    let json = with_token(&test, &["run", "--force", "--json"]).status(0);
    for (what, text) in [
        ("terminal", &run.stdout),
        ("log", &logs.stdout),
        ("json", &json.stdout),
    ] {
        assert!(!text.contains(TOKEN), "{what} shows the secret:\n{text}");
        assert!(
            !text.contains("czNjcjN0LXQwa2VuLXZhbHVl"),
            "{what} shows it in base64:\n{text}"
        );
        assert!(text.contains("whole: ***"), "{what}:\n{text}");
        assert!(text.contains("split: ***"), "{what}:\n{text}");
        assert!(text.contains("b64: ***"), "{what}:\n{text}");
        assert!(text.contains("xxx *** yyy"), "{what}:\n{text}");
    }
    assert!(logs.stdout.contains("other sees: [] []"), "{}", logs.stdout);
    // Recorded by name only.
    let env = test.gzl(&["debug", "1", "deploy", "--print-env"]).status(0);
    assert!(env.stdout.contains("TOKEN=***\n"), "{}", env.stdout);
    // The name is part of the key, the value is not: a new token does not run it again.
    let again = Run::from(
        test.command(&["run"])
            .env("GZL_SECRET_TOKEN", "another-token-value")
            .output()
            .unwrap(),
    )
    .status(0);
    again.summary_has("deploy", "cached");
}

#[test]
fn a_missing_or_short_secret_fails_the_stage_before_it_starts() {
    let test =
        Test::with_gzlfile("deploy:\n    @secret TOKEN\n    touch started\nother:\n    true\n");
    test.commit("first");
    let run = test.gzl(&["run", "--in-place"]).status(1);
    assert!(!test.path("started").exists());
    assert!(
        run.stdout.contains(
            "secret `TOKEN` is not set; gzl looked in the environment variable GZL_SECRET_TOKEN, "
        ) && run
            .stdout
            .contains("and the system keyring (service `gzl`, account `TOKEN`)"),
        "{}",
        run.stdout
    );
    run.summary_has("other", "passed");
    let short = Run::from(
        test.command(&["run", "--in-place", "deploy"])
            .env("GZL_SECRET_TOKEN", "abc")
            .output()
            .unwrap(),
    )
    .status(1);
    assert!(
        short.stdout.contains("shorter than 4 characters"),
        "{}",
        short.stdout
    );
    test.write("Gzlfile", "deploy:\n    @secret lower-case\n    true\n");
    test.gzl(&["check"])
        .status(2)
        .stderr_has("`lower-case` is not a secret name");
}

#[test]
fn secrets_are_stored_by_gzl_secret_and_a_readable_file_is_refused() {
    let test = Test::with_gzlfile("deploy:\n    @secret TOKEN\n    echo \"got $TOKEN\"\n");
    test.commit("first");
    let mut set = test
        .command(&["secret", "set", "TOKEN"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    set.stdin
        .take()
        .unwrap()
        .write_all(format!("{TOKEN}\n").as_bytes())
        .unwrap();
    Run::from(set.wait_with_output().unwrap()).status(0);
    test.gzl(&["secret", "ls"]).status(0).stdout_has("TOKEN\n");
    let file = test.home().join("config/secrets.toml");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    test.gzl(&["run"]).status(0).stdout_has("got ***");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = test.gzl(&["run", "--force"]).status(1);
    assert!(
        refused.stdout.contains("can be read by others"),
        "{}",
        refused.stdout
    );
    assert!(refused.stdout.contains("chmod 600"), "{}", refused.stdout);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    test.gzl(&["secret", "rm", "TOKEN"]).status(0);
    test.gzl(&["secret", "ls"]).status(0);
    test.gzl(&["secret", "rm", "TOKEN"])
        .status(2)
        .stderr_has("no secret `TOKEN`");
}
