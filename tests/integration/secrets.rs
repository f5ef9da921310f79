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
    let json = with_token(&test, &["run", "--force-all", "--json"]).status(0);
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
    let refused = test.gzl(&["run", "--force-all"]).status(1);
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

/// Every file under `dir` (recursively) whose bytes hold `needle`.
fn files_holding(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
            {
                found.push(path);
            }
        }
    }
    found
}

// A generator's stdout went straight to runs/ID/STAGE.generated, unmasked, and from there into
// the generated stages' scripts, their logs, JSON and history.
#[test]
fn a_secret_printed_by_a_generator_is_masked_in_every_output() {
    let test = Test::with_gzlfile(
        "gen:\n    @generates\n    @secret TOKEN\n    printf 'use-it:\\n    echo \"inlined %s\"\\n' \"$TOKEN\"\n    echo \"on stderr $TOKEN\" >&2\n",
    );
    test.commit("first");
    let run = with_token(&test, &["run"]).status(0);
    run.summary_has("use-it", "passed");
    let logs = test.gzl(&["logs", "last", "use-it"]).status(0);
    // A generated script gets `***` where the generator inlined the secret.
    assert!(logs.stdout.contains("inlined ***"), "{}", logs.stdout);
    let json = with_token(&test, &["run", "--json"]).status(0);
    let generated = test.gzl(&["logs", "last", "gen"]).status(0);
    for (what, text) in [
        ("terminal", &run.stdout),
        ("summary", &run.stderr),
        ("log of the generated stage", &logs.stdout),
        ("log of the generator", &generated.stdout),
        ("json", &json.stdout),
    ] {
        assert!(!text.contains(TOKEN), "{what} shows the secret:\n{text}");
    }
    // Nowhere in gzl's home: the .generated file, the stored scripts, logs, history.db.
    assert!(
        test.home().join("scripts").is_dir() && test.home().join("history.db").is_file(),
        "the home holds no scripts or history"
    );
    assert_eq!(
        files_holding(&test.home(), TOKEN),
        Vec::<std::path::PathBuf>::new()
    );
    assert!(
        !files_holding(&test.home(), "inlined ***").is_empty(),
        "the masked text is not where the secret would have been"
    );
}

// Diagnostics about generated text quote the line they are about.
#[test]
fn a_secret_in_an_invalid_generated_line_is_masked_in_the_diagnostic() {
    let test = Test::with_gzlfile(
        "gen:\n    @generates\n    @secret TOKEN\n    printf 'not a stage %s\\n' \"$TOKEN\"\n",
    );
    test.commit("first");
    let run = with_token(&test, &["run"]).status(1);
    run.summary_has("gen", "failed");
    assert!(
        run.stdout.contains("generated stages gzl cannot run"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("not a stage ***"), "{}", run.stdout);
    let json = with_token(&test, &["run", "--json"]).status(1);
    for text in [&run.stdout, &run.stderr, &json.stdout] {
        assert!(!text.contains(TOKEN), "shows the secret:\n{text}");
    }
    assert_eq!(
        files_holding(&test.home(), TOKEN),
        Vec::<std::path::PathBuf>::new()
    );
}

/// `gzl secret set NAME`, given `value` on stdin.
fn secret_set(test: &Test, name: &str, value: &str) -> Run {
    let mut set = test
        .command(&["secret", "set", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    set.stdin
        .take()
        .unwrap()
        .write_all(format!("{value}\n").as_bytes())
        .unwrap();
    Run::from(set.wait_with_output().unwrap())
}

// The secrets file was written through `secrets.toml.tmp` opened without O_EXCL: a leftover
// there kept its permissions (0644) and a symbolic link there was followed.
#[test]
fn the_secrets_file_is_never_written_through_a_leftover() {
    use std::os::unix::fs::PermissionsExt as _;
    let test = Test::new();
    let config = test.home().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let file = config.join("secrets.toml");
    let leftover = config.join("secrets.toml.tmp");
    let mode = |path: &std::path::Path| {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };

    std::fs::write(&leftover, "").unwrap();
    std::fs::set_permissions(&leftover, std::fs::Permissions::from_mode(0o644)).unwrap();
    secret_set(&test, "TOKEN", TOKEN).status(0);
    assert_eq!(mode(&file), 0o600);
    assert!(std::fs::read_to_string(&file).unwrap().contains(TOKEN));
    assert!(
        !std::fs::read_to_string(&leftover)
            .unwrap_or_default()
            .contains(TOKEN)
    );

    let elsewhere = test.outside("elsewhere");
    std::fs::write(&elsewhere, "").unwrap();
    std::fs::remove_file(&leftover).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &leftover).unwrap();
    secret_set(&test, "OTHER", "another-token-value").status(0);
    assert!(std::fs::symlink_metadata(&file).unwrap().is_file());
    assert_eq!(mode(&file), 0o600);
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "");
    test.gzl(&["secret", "ls"])
        .status(0)
        .stdout_has("OTHER\nTOKEN\n");
}

/// How many characters of the base64 text `encoded` that carry bits of a secret (`length`
/// bytes from byte `offset` of the encoded data) `masked` still shows, line breaks aside.
/// Panics unless `masked` is `encoded` with one part masked.
fn secret_characters_shown(encoded: &str, masked: &str, offset: usize, length: usize) -> usize {
    let flat = |text: &str| text.replace(['\r', '\n'], "");
    let (encoded, masked) = (flat(encoded), flat(masked));
    let common = |a: &mut dyn Iterator<Item = (u8, u8)>| a.take_while(|(x, y)| x == y).count();
    let before = common(&mut encoded.bytes().zip(masked.bytes()));
    let after =
        common(&mut encoded.bytes().rev().zip(masked.bytes().rev())).min(masked.len() - before);
    let hidden = &masked[before..masked.len() - after];
    assert!(
        !hidden.is_empty() && hidden.bytes().all(|b| b == b'*'),
        "not masked in one place: {masked}"
    );
    let bits = 8 * offset..8 * (offset + length);
    (0..encoded.len())
        .filter(|&i| i < before || i >= encoded.len() - after)
        .filter(|&i| 6 * i < bits.end && 6 * i + 6 > bits.start)
        .count()
}

// Only the base64 of the secret alone was masked: not inside `user:TOKEN` (a Basic auth
// header) at the two other alignments, nor wrapped by `base64` at 76 columns.
#[test]
fn base64_of_a_secret_inside_basic_auth_and_wrapped_is_masked_in_a_stage_output() {
    let test = Test::new();
    let outside = test.outside("encoded");
    test.write(
        "Gzlfile",
        format!(
            "enc:\n    @secret TOKEN\n    for user in u us usr; do printf '%s:%s' $user \"$TOKEN\" | base64 | tee -a {out}; done\n    echo BEGIN\n    printf '%s' \"$(printf 'x%.0s' $(seq 100))$TOKEN$(printf 'y%.0s' $(seq 100))\" | base64 | tee -a {out}\n    echo END\n",
            out = outside.display()
        ),
    );
    test.commit("first");
    with_token(&test, &["run"]).status(0);
    let log = test.gzl(&["logs", "last", "enc"]).status(0).stdout;
    assert!(!log.contains(TOKEN), "{log}");
    let encoded = std::fs::read_to_string(&outside).unwrap();
    let encoded: Vec<&str> = encoded.lines().collect();
    let masked: Vec<&str> = log.lines().collect();
    for (user, line) in ["u", "us", "usr"].iter().enumerate() {
        let shown =
            secret_characters_shown(encoded[user], masked[user], line.len() + 1, TOKEN.len());
        assert!(shown <= 2, "{} shows {shown} characters", masked[user]);
    }
    let wrapped = encoded[3..].join("\n");
    assert!(encoded.len() > 5, "base64 did not wrap: {wrapped}");
    let begin = masked.iter().position(|l| *l == "BEGIN").unwrap();
    let end = masked.iter().position(|l| *l == "END").unwrap();
    let shown = secret_characters_shown(
        &wrapped,
        &masked[begin + 1..end].join("\n"),
        100,
        TOKEN.len(),
    );
    assert!(shown <= 2, "{log}");
}
