//! The pinned tool: gzl.toml's `[gzl] version` decides which gzl runs in the repository, and a
//! missing version is fetched from a release source, here a real HTTP server on 127.0.0.1
//! serving releases made by `.ci/release`, signed with a test key the tests' user settings
//! trust (`release_public_key`). The released programs are stand-ins compiled with `cc`: real
//! executables of this machine that answer the version they are released as.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{Run, Test, write_executable};

/// The private key the tests sign releases with: a test key, trusted nowhere else.
const TEST_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/integration/keys/test-release.key"
);

/// The public half of `TEST_KEY`, as the user's `release_public_key`.
const TEST_PUBLIC_KEY: &str = "mqltELeQCFBqKeZR9aKCSwrpMEhU4yNlPQKaDoyrnQ0=";

/// The program that signs release archives.
const SIGNER: &str = env!("CARGO_BIN_EXE_gzl-release-sign");

/// A stand-in gzl: answers `--version` with `ANSWER`; otherwise execs `EXEC` (with
/// `GZL_CANDIDATE=1` when `CANDIDATE` is defined) or prints its version, its arguments and
/// whether it was handed over to.
const STAND_IN: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("gzl %s\n", ANSWER);
        return 0;
    }
#ifdef EXEC
#ifdef CANDIDATE
    setenv("GZL_CANDIDATE", "1", 1);
#endif
    argv[0] = EXEC;
    execv(EXEC, argv);
    perror(EXEC);
    return 127;
#else
    const char *handed_over = getenv("GZL_PIN_HANDED_OVER");
    printf("gzl %s with:", VERSION);
    for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
    printf(" (handed over: %s)\n", handed_over ? handed_over : "");
    return 0;
#endif
}
"#;

/// Compiles the stand-in into `dir` as `name`, with `defines` (`VERSION=...`, ...).
fn compile(dir: &Path, name: &str, defines: &[String]) -> PathBuf {
    let source = dir.join(format!("{name}.c"));
    std::fs::write(&source, STAND_IN).unwrap();
    let program = dir.join(name);
    let output = std::process::Command::new("cc")
        .args(defines.iter().map(|define| format!("-D{define}")))
        .arg("-o")
        .arg(&program)
        .arg(&source)
        .output()
        .expect("cc runs");
    assert!(
        output.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_file(source).unwrap();
    program
}

/// A stand-in gzl of `version` that answers `answer` to `--version`.
fn stand_in(dir: &Path, version: &str, answer: &str) -> PathBuf {
    compile(
        dir,
        &format!("stand-in-{version}"),
        &[
            format!("VERSION=\"{version}\""),
            format!("ANSWER=\"{answer}\""),
        ],
    )
}

/// How a release is signed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signed {
    WithTestKey,
    /// `--unsigned`.
    Not,
    /// Neither a key nor `--unsigned`.
    Unsaid,
}

/// A static file server for a release directory that records every request.
struct ReleaseServer {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

impl ReleaseServer {
    /// Serves releases of stand-in gzl programs (each prints its version, its arguments and
    /// whether it was handed over to), one per `(version, channel)`. Each response waits
    /// `delay`, so concurrent clients overlap.
    fn start(releases: &[(&str, Option<&str>)], delay: Duration) -> ReleaseServer {
        let dir = tempfile::tempdir().expect("release dir");
        for (version, channel) in releases {
            let program = stand_in(dir.path(), version, version);
            release(dir.path(), version, *channel, &program, Signed::WithTestKey);
        }
        ReleaseServer::serve(dir, delay)
    }

    /// Serves the releases in `dir`.
    fn serve(dir: tempfile::TempDir, delay: Duration) -> ReleaseServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let root = dir.path().to_path_buf();
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, log) = (root.clone(), Arc::clone(&log));
                std::thread::spawn(move || serve(stream, &root, &log, delay));
            }
        });
        ReleaseServer { url, requests, dir }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }
}

/// Answers one HTTP/1.1 request with the file at its path, or 404.
fn serve(stream: std::net::TcpStream, root: &Path, log: &Mutex<Vec<String>>, delay: Duration) {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    log.lock().unwrap().push(path.clone());
    std::thread::sleep(delay);
    let mut stream = &stream;
    match std::fs::read(root.join(path.trim_start_matches('/'))) {
        Ok(body) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
        Err(_) => {
            let _ = write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    }
}

/// Releases `program` (removed then) as gzl `version` into `dir` with the project's release
/// script.
fn release(dir: &Path, version: &str, channel: Option<&str>, program: &Path, signed: Signed) {
    let output = release_script(dir, version, channel, program, signed)
        .output()
        .expect(".ci/release runs");
    assert!(
        output.status.success(),
        ".ci/release: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_file(program).unwrap();
}

/// The project's release script, to release `program` as gzl `version` into `dir`.
fn release_script(
    dir: &Path,
    version: &str,
    channel: Option<&str>,
    program: &Path,
    signed: Signed,
) -> std::process::Command {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/release");
    let mut command = std::process::Command::new(script);
    command.env_remove("GZL_RELEASE_KEY");
    command.env("GZL_RELEASE_SIGNER", SIGNER);
    command.args(["--out".as_ref(), dir.as_os_str()]);
    command.args(["--binary".as_ref(), program.as_os_str()]);
    command.args(["--version", version]);
    match signed {
        Signed::WithTestKey => drop(command.args(["--key", TEST_KEY])),
        Signed::Not => drop(command.arg("--unsigned")),
        Signed::Unsaid => {}
    }
    if let Some(channel) = channel {
        command.args(["--channel", channel]);
    }
    command
}

/// Replaces the archive of `version` in the release directory `dir` with one holding what
/// `fill` puts into a directory, signed with the test key, and updates the checksums the
/// release publishes: a release whose only fault is what its archive holds.
fn repack(dir: &Path, version: &str, fill: impl FnOnce(&Path)) {
    let staging = tempfile::tempdir().unwrap();
    fill(staging.path());
    let archive = dir.join(format!("{version}/gzl-{version}-{}.tar.gz", host_target()));
    let before = sha256(&archive);
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(staging.path())
        .arg("-czf")
        .arg(&archive)
        .arg("gzl")
        .status()
        .unwrap();
    assert!(tar.success());
    let signed = std::process::Command::new(SIGNER)
        .args(["sign".as_ref(), archive.as_os_str(), TEST_KEY.as_ref()])
        .status()
        .unwrap();
    assert!(signed.success());
    let after = sha256(&archive);
    for listing in [
        dir.join(format!("{version}/SHA256SUMS")),
        dir.join("manifest.json"),
    ] {
        let text = std::fs::read_to_string(&listing).unwrap();
        assert!(text.contains(&before), "{text}");
        std::fs::write(&listing, text.replace(&before, &after)).unwrap();
    }
}

/// The SHA-256 of a file, in hex.
fn sha256(path: &Path) -> String {
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_string()
}

/// Writes the user's settings of `test`: the test key, and `more`.
fn user_config(test: &Test, more: &str) {
    std::fs::create_dir_all(test.home().join("config")).unwrap();
    std::fs::write(
        test.home().join("config/config.toml"),
        format!("release_public_key = \"{TEST_PUBLIC_KEY}\"\n{more}"),
    )
    .unwrap();
}

/// A repository whose gzl.toml holds `pin`, whose user trusts the test key.
fn pinned(pin: &str) -> Test {
    let test = Test::with_gzlfile("a:\n    echo ran\n");
    test.write("gzl.toml", format!("# which gzl\n[gzl]\n{pin}\n"));
    test.commit("first");
    user_config(&test, "");
    test
}

/// gzl in `test`, with no release source of the user's own: only gzl.toml can name one.
fn without_users_source(test: &Test, args: &[&str]) -> Run {
    Run::from(
        test.command(args)
            .env_remove("GZL_RELEASE_URL")
            .output()
            .unwrap(),
    )
}

fn gzl_from(test: &Test, server: &ReleaseServer, args: &[&str]) -> Run {
    Run::from(
        test.command(args)
            .env("GZL_RELEASE_URL", &server.url)
            .output()
            .unwrap(),
    )
}

/// What the binary cache holds: its version folders and any other entry but locks.
fn cache_entries(test: &Test) -> Vec<String> {
    let mut entries: Vec<String> = std::fs::read_dir(test.home().join("cache/bin"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".lock"))
        .collect();
    entries.sort();
    entries
}

#[test]
fn a_pinned_version_is_fetched_verified_cached_and_run_with_the_same_arguments() {
    let server = ReleaseServer::start(&[("0.9.4", None), ("0.10.0", None)], Duration::ZERO);
    let test = pinned("version = \"0.9\"");
    gzl_from(&test, &server, &["ls", "-n", "3"])
        .status(0)
        .stdout_has("gzl 0.9.4 with: ls -n 3 (handed over: 1)")
        .stderr_has("fetching gzl 0.9.4 from http://127.0.0.1");
    let archive = format!("/0.9.4/gzl-0.9.4-{}.tar.gz", host_target());
    assert_eq!(
        server.requests(),
        ["/manifest.json", "/0.9.4/SHA256SUMS", archive.as_str()]
    );
    assert_eq!(cache_entries(&test), ["0.9.4"]);

    // The second start uses the cache: no request at all.
    gzl_from(&test, &server, &["ls", "-n", "3"])
        .status(0)
        .stdout_has("gzl 0.9.4 with: ls -n 3");
    assert_eq!(server.requests().len(), 3);
    test.gzl(&["version"])
        .status(0)
        .stdout_has("pinned: 0.9; gzl 0.9.4 serves this repository, from");

    // Another repository on the machine pins another version; both stay cached.
    let other = pinned("version = \"0.10.0\"");
    let other_run = Run::from(
        other
            .command(&["check"])
            .env("GZL_HOME", test.home())
            .env("GZL_RELEASE_URL", &server.url)
            .output()
            .unwrap(),
    );
    other_run.status(0).stdout_has("gzl 0.10.0 with: check");
    assert_eq!(cache_entries(&test), ["0.10.0", "0.9.4"]);
    test.gzl(&["cache", "ls"])
        .status(0)
        .stdout_has("0.9.4 ")
        .stdout_has("0.10.0 ");
}

#[test]
fn a_checksum_mismatch_is_refused_and_nothing_is_installed() {
    let server = ReleaseServer::start(&[("0.9.4", None)], Duration::ZERO);
    let archive = server.path(&format!("0.9.4/gzl-0.9.4-{}.tar.gz", host_target()));
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&archive, bytes).unwrap();
    let test = pinned("version = \"0.9.4\"");
    gzl_from(&test, &server, &["run"])
        .status(2)
        .stderr_has("gzl 0.9.4 from http://127.0.0.1")
        .stderr_has("does not match its published SHA-256 checksum; the download was deleted");
    assert_eq!(cache_entries(&test), Vec::<String>::new());
}

#[test]
fn an_unreachable_release_source_names_the_version_and_the_source() {
    let test = pinned("version = \"0.9.4\"");
    test.gzl(&["run"])
        .status(3)
        .stderr_has("cannot reach the gzl release source http://127.0.0.1:9 for gzl 0.9.4")
        .stderr_has("--no-pin");
    assert_eq!(cache_entries(&test), Vec::<String>::new());
    test.gzl(&["run", "--no-pin"])
        .status(0)
        .stdout_has("ran")
        .stderr_has("warning: this repository pins gzl 0.9.4; running gzl");
    Run::from(
        test.command(&["run", "--force-all"])
            .env("GZL_NO_PIN", "1")
            .output()
            .unwrap(),
    )
    .status(0)
    .stderr_has("warning: this repository pins gzl 0.9.4");
}

#[test]
fn two_gzl_fetching_at_once_both_run_one_valid_binary() {
    let server = ReleaseServer::start(&[("0.9.4", None)], Duration::from_millis(300));
    let test = pinned("version = \"0.9.4\"");
    let start = |args: &[&str]| {
        test.command(args)
            .env("GZL_RELEASE_URL", &server.url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = start(&["ls", "-n", "1"]);
    let second = start(&["ls", "-n", "2"]);
    Run::from(first.wait_with_output().unwrap())
        .status(0)
        .stdout_has("gzl 0.9.4 with: ls -n 1");
    Run::from(second.wait_with_output().unwrap())
        .status(0)
        .stdout_has("gzl 0.9.4 with: ls -n 2");
    let archives = server
        .requests()
        .iter()
        .filter(|path| path.ends_with(".tar.gz"))
        .count();
    assert_eq!(archives, 1, "{:?}", server.requests());
    assert_eq!(cache_entries(&test), ["0.9.4"]);
}

#[test]
fn auto_update_off_never_fetches_and_says_how_to() {
    let server = ReleaseServer::start(&[("0.9.4", None)], Duration::ZERO);
    let test = pinned("version = \"0.9.4\"");
    user_config(&test, "auto_update = false\n");
    gzl_from(&test, &server, &["run"])
        .status(2)
        .stderr_has("auto_update = false in")
        .stderr_has("fetch it with `gzl cache fetch`");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    gzl_from(&test, &server, &["cache", "fetch"])
        .status(0)
        .stderr_has("gzl 0.9.4: ");
    gzl_from(&test, &server, &["ls"])
        .status(0)
        .stdout_has("gzl 0.9.4 with: ls");
    assert_eq!(cache_entries(&test), ["0.9.4"]);
}

#[test]
fn a_channel_pin_follows_the_release_the_channel_names() {
    let server = ReleaseServer::start(
        &[("0.9.4", Some("stable")), ("0.10.0-beta.1", Some("beta"))],
        Duration::ZERO,
    );
    let test = pinned("channel = \"beta\"");
    gzl_from(&test, &server, &["ls"])
        .status(0)
        .stdout_has("gzl 0.10.0-beta.1 with: ls")
        .stderr_has("pins gzl channel `beta`; fetching gzl 0.10.0-beta.1");
    let asked = server.requests().len();
    // What the channel named is remembered: the next start asks nothing.
    gzl_from(&test, &server, &["ls"])
        .status(0)
        .stdout_has("gzl 0.10.0-beta.1 with: ls");
    assert_eq!(server.requests().len(), asked);
    test.write("gzl.toml", "[gzl]\nchannel = \"nightly\"\n");
    gzl_from(&test, &server, &["run"])
        .status(2)
        .stderr_has("has no channel `nightly` (it has `beta`, `stable`)");
}

#[test]
fn a_cached_gzl_that_satisfies_the_pin_takes_over_with_the_same_arguments() {
    let test = pinned("version = \"9.9\"");
    let fake = test.home().join("cache/bin/9.9.4/gzl");
    std::fs::create_dir_all(fake.parent().unwrap()).unwrap();
    write_executable(
        &fake,
        "#!/bin/sh\necho \"gzl 9.9.4 with: $* (handed over: $GZL_PIN_HANDED_OVER)\"\n",
    );
    test.gzl(&["ls", "-n", "3"])
        .status(0)
        .stdout_has("gzl 9.9.4 with: ls -n 3 (handed over: 1)");
    // The pinned gzl may know commands and options this one does not, and its help applies.
    test.gzl(&["a-newer-command", "--flag"])
        .status(0)
        .stdout_has("gzl 9.9.4 with: a-newer-command --flag");
    test.gzl(&["--help"])
        .status(0)
        .stdout_has("gzl 9.9.4 with: --help");
    // A requirement this gzl meets changes nothing.
    test.write(
        "gzl.toml",
        format!("[gzl]\nversion = \"{}\"\n", env!("CARGO_PKG_VERSION")),
    );
    test.gzl(&["run"]).status(0).stdout_has("ran");
    test.write("gzl.toml", "[gzl]\nversion = \"not a version\"\n");
    test.gzl(&["run"])
        .status(2)
        .stderr_has("is not a version or a requirement");
    // The pin is found in a file with settings this gzl does not know (a newer gzl's).
    test.write(
        "gzl.toml",
        "[gzl]\nversion = \"9.9.4\"\n\n[future]\nsetting = 1\n",
    );
    test.gzl(&["ls"]).status(0).stdout_has("gzl 9.9.4 with: ls");
}

#[test]
fn cache_prune_removes_binaries_unused_for_long_but_keeps_the_one_in_use() {
    let test = pinned("version = \"9.9.4\"");
    for version in ["9.9.4", "9.8.0"] {
        let fake = test.home().join(format!("cache/bin/{version}/gzl"));
        std::fs::create_dir_all(fake.parent().unwrap()).unwrap();
        write_executable(&fake, "#!/bin/sh\necho stand-in\n");
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(90 * 24 * 3600);
        // Read-only: a descriptor open for writing would make running it "Text file busy".
        std::fs::File::open(&fake)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    }
    test.gzl(&["cache", "prune"])
        .status(0)
        .stderr_has("removed gzl 9.8.0")
        .stderr_has("removed 1 cached gzl binaries");
    assert_eq!(cache_entries(&test), ["9.9.4"]);
    test.gzl(&["cache", "prune", "--all"])
        .status(0)
        .stderr_has("removed gzl 9.9.4");
    assert_eq!(cache_entries(&test), Vec::<String>::new());
}

#[test]
fn pin_writes_gzl_toml_keeping_what_was_there() {
    let server = ReleaseServer::start(
        &[("0.9.4", Some("stable")), ("0.10.0", None)],
        Duration::ZERO,
    );
    let test = Test::with_gzlfile("a:\n    true\n");
    user_config(&test, "");
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
    gzl_from(&test, &server, &["pin", "--channel", "stable"]).status(0);
    let text = test.read("gzl.toml");
    assert!(text.contains("channel = \"stable\""), "{text}");
    assert!(!text.contains("version ="), "{text}");
    test.gzl(&["pin", "x.y"])
        .status(2)
        .stderr_has("is not a version");
    // Without a version: the latest release.
    gzl_from(&test, &server, &["pin"])
        .status(0)
        .stderr_has("pinned gzl version = \"0.10.0\"");
    assert!(test.read("gzl.toml").contains("version = \"0.10.0\""));
}

#[test]
fn self_update_replaces_the_running_gzl_with_the_latest_release() {
    let test = Test::with_gzlfile("a:\n    true\n");
    user_config(&test, "");
    let copy = test.outside("gzl");
    write_executable(&copy, std::fs::read(env!("CARGO_BIN_EXE_gzl")).unwrap());
    let copied_gzl = |server: &ReleaseServer, args: &[&str]| run_copy(&test, &copy, server, args);
    let older = ReleaseServer::start(&[("0.0.1", None)], Duration::ZERO);
    copied_gzl(&older, &["self-update"])
        .status(0)
        .stderr_has("is up to date");
    let newer = ReleaseServer::start(&[("0.0.1", None), ("99.0.0", None)], Duration::ZERO);
    copied_gzl(&newer, &["self-update"])
        .status(0)
        .stderr_has(&format!(
            "updated gzl {} to 99.0.0",
            env!("CARGO_PKG_VERSION")
        ));
    copied_gzl(&newer, &["anything"])
        .status(0)
        .stdout_has("gzl 99.0.0 with: anything");
    let beside: Vec<_> = std::fs::read_dir(copy.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
    assert_eq!(beside, ["gzl"], "nothing is left beside the binary");
}

#[test]
fn self_update_follows_the_users_channel() {
    let server = ReleaseServer::start(
        &[("99.0.0", Some("stable")), ("100.0.0-beta.1", Some("beta"))],
        Duration::ZERO,
    );
    let test = Test::with_gzlfile("a:\n    true\n");
    user_config(&test, "channel = \"beta\"\n");
    let copy = test.outside("gzl");
    write_executable(&copy, std::fs::read(env!("CARGO_BIN_EXE_gzl")).unwrap());
    let copied_gzl = |args: &[&str]| run_copy(&test, &copy, &server, args);
    copied_gzl(&["self-update"])
        .status(0)
        .stderr_has("to 100.0.0-beta.1");
    copied_gzl(&["x"])
        .status(0)
        .stdout_has("gzl 100.0.0-beta.1 with: x");
}

#[test]
fn gzl_toml_names_the_source_and_a_channels_last_answer_serves_while_it_is_down() {
    let server = ReleaseServer::start(&[("0.9.4", Some("stable"))], Duration::ZERO);
    let test = pinned(&format!(
        "channel = \"stable\"\nrelease_url = \"{}\"",
        server.url
    ));
    let without_variable = |args: &[&str]| without_users_source(&test, args);
    without_variable(&["pin", "--trust"]).status(0);
    without_variable(&["ls"])
        .status(0)
        .stdout_has("gzl 0.9.4 with: ls");
    assert!(!server.requests().is_empty());
    // GZL_RELEASE_URL wins over gzl.toml.
    test.gzl(&["version"])
        .status(0)
        .stdout_has("release source: http://127.0.0.1:9 (yours");
    // Two days later, the source is down: what the channel named last still serves.
    let answer = test.home().join("cache/bin/channels/stable");
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&answer)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    test.write(
        "gzl.toml",
        "[gzl]\nchannel = \"stable\"\nrelease_url = \"http://127.0.0.1:9\"\n",
    );
    let asked = server.requests().len();
    without_variable(&["pin", "--trust"]).status(0);
    without_variable(&["ls"])
        .status(0)
        .stdout_has("gzl 0.9.4 with: ls");
    assert_eq!(server.requests().len(), asked);
}

#[test]
fn pin_verify_tries_the_candidate_on_what_passed_and_pins_only_when_nothing_differs() {
    // Candidates are this gzl under another version number; the picky one lets stages tell.
    let dir = tempfile::tempdir().unwrap();
    let gzl = env!("CARGO_BIN_EXE_gzl");
    for (version, picky) in [("0.98.0", false), ("0.99.0", true)] {
        let mut defines = vec![format!("ANSWER=\"{version}\""), format!("EXEC=\"{gzl}\"")];
        if picky {
            defines.push("CANDIDATE".into());
        }
        let program = compile(dir.path(), &format!("stand-in-{version}"), &defines);
        release(dir.path(), version, None, &program, Signed::WithTestKey);
    }
    let server = ReleaseServer::serve(dir, Duration::ZERO);
    let test = Test::with_gzlfile(
        "build:\n    echo built\npicky: build\n    test -z \"$GZL_CANDIDATE\"\nnever:\n    false\n",
    );
    test.write("gzl.toml", "[gzl] # which gzl\nversion = \"0.1\"\n");
    test.commit("first");
    user_config(&test, "");
    gzl_from(&test, &server, &["pin", "--verify", "0.99.0"])
        .status(2)
        .stderr_has("no stage has passed at HEAD")
        .stderr_has("`gzl run`");
    gzl_from(&test, &server, &["run"]).status(1);

    gzl_from(&test, &server, &["pin", "--verify", "0.99.0"])
        .status(1)
        .stderr_has("trying gzl 0.99.0 on the 2 stages that passed at")
        .stderr_has("picky: passed before, failed with gzl 0.99.0")
        .stderr_has("gzl 0.99.0 differs on 1 of 2 stages; the pin stays as it was");
    assert!(test.read("gzl.toml").contains("version = \"0.1\""));

    gzl_from(&test, &server, &["pin", "--verify", "0.98"])
        .status(0)
        .stderr_has("gzl 0.98.0 passes all 2")
        .stderr_has("pinned gzl version = \"0.98\"");
    assert!(
        test.read("gzl.toml")
            .starts_with("[gzl] # which gzl\nversion = \"0.98\"\n")
    );
    // The trials ran in workspaces, without reusing results, and are in the history.
    let runs = test.runs();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(
        runs.iter().all(|run| run["workspace"].is_string()),
        "{runs:?}"
    );
}

/// Runs `copy`, a copy of gzl that `self-update` may replace, in `test`'s repository with
/// releases from `server`.
fn run_copy(test: &Test, copy: &Path, server: &ReleaseServer, args: &[&str]) -> Run {
    Run::from(
        std::process::Command::new(copy)
            .args(args)
            .env_clear()
            .env("GZL_HOME", test.home())
            .env("GZL_RELEASE_URL", &server.url)
            .current_dir(test.repo())
            .output()
            .unwrap(),
    )
}

/// The target triple gzl was built for, which release archives are named after.
fn host_target() -> String {
    let output = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

/// A repository pinning gzl `version` from the release source at `url` (its gzl.toml's
/// `release_url`).
fn pinned_at(version: &str, url: &str) -> Test {
    pinned(&format!("version = \"{version}\"\nrelease_url = \"{url}\""))
}

// A cloned repository's gzl.toml must not make gzl download and run a program the user did
// not choose: its release_url is not used until the user trusts it.
#[test]
fn a_repository_release_url_is_not_used_without_trust() {
    let server = ReleaseServer::start(&[("0.9.4", None)], Duration::ZERO);
    let test = pinned_at("0.9.4", &server.url);
    let asks = format!(
        "asks for gzl 0.9.4 from {} (release_url), a release source you have not trusted for",
        server.url
    );
    without_users_source(&test, &["run"])
        .status(0)
        .stdout_has("ran")
        .stderr_has(&asks)
        .stderr_has("running gzl")
        .stderr_has("`gzl pin --trust` allows it");
    without_users_source(&test, &["cache", "fetch"])
        .status(2)
        .stderr_has(&asks)
        .stderr_has("`gzl pin --trust` trusts it for this repository");
    test.gzl(&["version"])
        .status(0)
        .stdout_has("release source: http://127.0.0.1:9 (yours");
    without_users_source(&test, &["version"])
        .status(0)
        .stdout_has("(gzl.toml, not trusted for this repository: `gzl pin --trust` allows it)");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert_eq!(cache_entries(&test), Vec::<String>::new());
}

// `gzl pin --trust` is the non-interactive consent; `--untrust` takes it back.
#[test]
fn gzl_pin_trust_allows_the_repository_source() {
    let server = ReleaseServer::start(&[("0.9.4", None)], Duration::ZERO);
    let test = pinned_at("0.9.4", &server.url);
    without_users_source(&test, &["pin", "--trust"])
        .status(0)
        .stderr_has(&format!("trusted {} as the release source of", server.url));
    without_users_source(&test, &["ls", "-n", "1"])
        .status(0)
        .stdout_has("gzl 0.9.4 with: ls -n 1 (handed over: 1)")
        .stderr_has("fetching gzl 0.9.4 from http://127.0.0.1");
    without_users_source(&test, &["version"])
        .status(0)
        .stdout_has("(gzl.toml, trusted for this repository)");
    assert!(test.home().join("config/trusted.toml").is_file());
    without_users_source(&test, &["pin", "--untrust"])
        .status(0)
        .stderr_has(&format!("no longer trusting {}", server.url));
    without_users_source(&test, &["version"])
        .status(0)
        .stdout_has("not trusted for this repository");
    // Nothing to trust without a release_url.
    test.write("gzl.toml", "[gzl]\nversion = \"0.9.4\"\n");
    without_users_source(&test, &["pin", "--trust"])
        .status(2)
        .stderr_has("names no release_url: there is nothing to trust");
}

// Trust is for a repository AND a URL: gzl.toml pointing elsewhere needs consent again.
#[test]
fn changing_a_trusted_release_url_needs_trust_again() {
    let trusted = ReleaseServer::start(&[("0.9.4", None)], Duration::ZERO);
    let other = ReleaseServer::start(&[("0.9.5", None)], Duration::ZERO);
    let test = pinned_at("0.9.4", &trusted.url);
    without_users_source(&test, &["pin", "--trust"]).status(0);
    test.write(
        "gzl.toml",
        format!(
            "[gzl]\nversion = \"0.9.5\"\nrelease_url = \"{}\"\n",
            other.url
        ),
    );
    without_users_source(&test, &["run"])
        .status(0)
        .stdout_has("ran")
        .stderr_has(&format!(
            "asks for gzl 0.9.5 from {} (release_url), a release source you have not trusted",
            other.url
        ));
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    without_users_source(&test, &["pin", "--trust"]).status(0);
    without_users_source(&test, &["ls"])
        .status(0)
        .stdout_has("gzl 0.9.5 with: ls");
    assert!(trusted.requests().is_empty(), "{:?}", trusted.requests());
}

// The user's own release source is the user's choice: it needs no trust, and a repository
// cannot override it.
#[test]
fn the_users_release_source_wins_over_the_repository() {
    let users = ReleaseServer::start(&[("0.9.4", None)], Duration::ZERO);
    let repositorys = ReleaseServer::start(&[("0.9.4", None)], Duration::ZERO);
    let test = pinned_at("0.9.4", &repositorys.url);
    without_users_source(&test, &["pin", "--trust"]).status(0);
    user_config(&test, &format!("release_url = \"{}\"\n", users.url));
    let run = without_users_source(&test, &["ls"])
        .status(0)
        .stdout_has("gzl 0.9.4 with: ls")
        .stderr_has(&format!("fetching gzl 0.9.4 from {}", users.url));
    assert!(!run.stderr.contains("trust"), "{}", run.stderr);
    assert!(!users.requests().is_empty());
    assert!(
        repositorys.requests().is_empty(),
        "{:?}",
        repositorys.requests()
    );
}

/// Serves release 0.9.4 whose archive holds what `fill` makes, signed and checksummed as a
/// good release is, and asks gzl in a repository pinning it to run: the error it gives.
fn fetch_repacked(fill: impl FnOnce(&Path)) -> (Test, Run) {
    let server = ReleaseServer::start(&[("0.9.4", None)], Duration::ZERO);
    repack(server.dir.path(), "0.9.4", fill);
    let test = pinned("version = \"0.9.4\"");
    let run = gzl_from(&test, &server, &["run"]);
    assert_eq!(
        cache_entries(&test),
        Vec::<String>::new(),
        "nothing installed"
    );
    (test, run)
}

// A symbolic link in the archive would install a link to any file on the machine as gzl.
#[test]
fn a_symlink_in_a_release_archive_is_refused() {
    let (_test, run) = fetch_repacked(|dir| {
        std::os::unix::fs::symlink("/bin/sh", dir.join("gzl")).unwrap();
    });
    run.status(2).stderr_has(
        "the archive of gzl 0.9.4 from http://127.0.0.1:",
    ).stderr_has("holds a symbolic link to `/bin/sh` as `gzl`, not a program for this machine; nothing was installed");
}

// An empty file is not a gzl, however it is signed.
#[test]
fn an_empty_binary_is_refused() {
    let (_test, run) = fetch_repacked(|dir| {
        std::fs::write(dir.join("gzl"), "").unwrap();
    });
    run.status(2)
        .stderr_has("holds an empty file as `gzl`, not a program for this machine");
}

// A script is not an executable of this platform: gzl releases are programs.
#[test]
fn a_script_instead_of_a_binary_is_refused() {
    let server = ReleaseServer::serve(tempfile::tempdir().unwrap(), Duration::ZERO);
    let program = server.path("script");
    std::fs::write(&program, "#!/bin/sh\necho gzl 0.9.4\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    release(
        server.dir.path(),
        "0.9.4",
        None,
        &program,
        Signed::WithTestKey,
    );
    let test = pinned("version = \"0.9.4\"");
    gzl_from(&test, &server, &["run"])
        .status(2)
        .stderr_has("holds a script (`#!/bin/sh`) as `gzl`, not a program for this machine");
    assert_eq!(cache_entries(&test), Vec::<String>::new());
}

// A program for another architecture would fail at every start (or run under emulation):
// the ELF header's machine must be this one's.
#[cfg(target_os = "linux")]
#[test]
fn an_executable_for_another_machine_is_refused() {
    let (_test, run) = fetch_repacked(|dir| {
        let program = stand_in(dir, "0.9.4", "0.9.4");
        let mut bytes = std::fs::read(&program).unwrap();
        // e_machine: x86-64 (62) becomes AArch64 (183), anything else x86-64.
        let other: u16 = if bytes[18] == 62 { 183 } else { 62 };
        bytes[18..20].copy_from_slice(&other.to_le_bytes());
        std::fs::remove_file(&program).unwrap();
        std::fs::write(dir.join("gzl"), bytes).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.join("gzl"), std::fs::Permissions::from_mode(0o755)).unwrap();
    });
    run.status(2)
        .stderr_has("holds an ELF executable for machine")
        .stderr_has(&format!("not for {}", std::env::consts::ARCH));
}

// A release is handed over to only when it is the version the pin asked for.
#[test]
fn a_binary_that_answers_another_version_is_not_handed_over() {
    let server = ReleaseServer::serve(tempfile::tempdir().unwrap(), Duration::ZERO);
    let program = stand_in(server.dir.path(), "0.9.4", "6.6.6");
    release(
        server.dir.path(),
        "0.9.4",
        None,
        &program,
        Signed::WithTestKey,
    );
    let test = pinned("version = \"0.9.4\"");
    let run = gzl_from(&test, &server, &["run"])
        .status(2)
        .stderr_has("the gzl fetched as 0.9.4 from http://127.0.0.1:")
        .stderr_has(
            "answers `gzl 6.6.6` to `gzl --version`, not `gzl 0.9.4`; nothing was installed",
        );
    assert!(!run.stdout.contains("with:"), "{}", run.stdout);
    assert_eq!(cache_entries(&test), Vec::<String>::new());
}

// Checksums only say the download is what the server holds; a signature says who made it.
#[test]
fn an_unsigned_release_is_refused() {
    let server = ReleaseServer::serve(tempfile::tempdir().unwrap(), Duration::ZERO);
    let program = stand_in(server.dir.path(), "0.9.4", "0.9.4");
    release(server.dir.path(), "0.9.4", None, &program, Signed::Not);
    let test = pinned("version = \"0.9.4\"");
    gzl_from(&test, &server, &["run"])
        .status(2)
        .stderr_has("gzl 0.9.4 from http://127.0.0.1:")
        .stderr_has("is not signed by a key gzl trusts")
        .stderr_has("verify_signatures = false");
    assert_eq!(cache_entries(&test), Vec::<String>::new());

    // Signed, but with a key the user has not named: refused the same way.
    let signed = ReleaseServer::start(&[("0.9.4", None)], Duration::ZERO);
    std::fs::write(test.home().join("config/config.toml"), "").unwrap();
    gzl_from(&test, &signed, &["run"])
        .status(2)
        .stderr_has("is not signed by a key gzl trusts")
        .stderr_has("set release_public_key in config.toml");
    assert_eq!(cache_entries(&test), Vec::<String>::new());

    // The release script does not make an unsigned release unless told to.
    let program = stand_in(server.dir.path(), "0.9.5", "0.9.5");
    let mut script = release_script(server.dir.path(), "0.9.5", None, &program, Signed::Unsaid);
    let output = script.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("releases are signed: pass --key FILE"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// An unsigned release (a team's own builds, say) is the user's explicit choice.
#[test]
fn an_unsigned_release_is_taken_only_with_the_users_setting() {
    let server = ReleaseServer::serve(tempfile::tempdir().unwrap(), Duration::ZERO);
    let program = stand_in(server.dir.path(), "0.9.4", "0.9.4");
    release(server.dir.path(), "0.9.4", None, &program, Signed::Not);
    let test = pinned("version = \"0.9.4\"");
    user_config(&test, "verify_signatures = false\n");
    gzl_from(&test, &server, &["ls"])
        .status(0)
        .stdout_has("gzl 0.9.4 with: ls");
    assert_eq!(cache_entries(&test), ["0.9.4"]);
}

// On a terminal gzl asks before it uses a repository's release source, and remembers a yes.
#[test]
fn a_yes_at_the_prompt_trusts_the_repository_source() {
    use std::io::{Read as _, Write as _};
    let server = ReleaseServer::start(&[("0.9.4", None)], Duration::ZERO);
    let test = pinned_at("0.9.4", &server.url);
    let pty = nix::pty::openpty(None, None).unwrap();
    let terminal = std::fs::File::from(pty.slave);
    let child = test
        .command(&["ls"])
        .env_remove("GZL_RELEASE_URL")
        .stdin(terminal.try_clone().unwrap())
        .stderr(terminal)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // What gzl writes to the terminal, read aside so that waiting for it has a deadline.
    let mut master = std::fs::File::from(pty.master);
    let mut answer = master.try_clone().unwrap();
    let (sender, written) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = master.read(&mut buffer) {
            if sender
                .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    let mut screen = String::new();
    while !screen.contains("[y/N]") {
        screen += &written
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no question on the terminal: {screen}"));
    }
    assert!(
        screen.contains(&format!("asks for gzl 0.9.4 from {}", server.url)),
        "{screen}"
    );
    answer.write_all(b"y\n").unwrap();
    Run::from(child.wait_with_output().unwrap())
        .status(0)
        .stdout_has("gzl 0.9.4 with: ls");
    let trusted = std::fs::read_to_string(test.home().join("config/trusted.toml")).unwrap();
    assert!(trusted.contains(&server.url), "{trusted}");
    without_users_source(&test, &["version"])
        .status(0)
        .stdout_has("(gzl.toml, trusted for this repository)");
}

// gzl prints what the pin says (the source to trust, the channel): a cloned gzl.toml must not
// drive the terminal through those messages.
#[test]
fn control_characters_in_the_pin_are_refused_not_printed() {
    let test = pinned("version = \"0.9.4\"\nrelease_url = \"http://x/\\u001b[2J\\r\"");
    let run = without_users_source(&test, &["run"]).status(2).stderr_has(
        "gzl.toml's [gzl] release_url holds control characters: \"http://x/\\u{1b}[2J\\r\"",
    );
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    test.write("gzl.toml", "[gzl]\nchannel = \"\\u001b]0;owned\\u0007\"\n");
    let run = without_users_source(&test, &["version"]).status(0);
    assert!(!run.stdout.contains('\u{1b}'), "{:?}", run.stdout);
}

// `gzl pin 9.9.9` wrote a pin nothing could serve, and every later command exited 2 until
// --no-pin: a version the release source does not have is refused, and nothing is written.
#[test]
fn pin_refuses_a_version_the_release_source_does_not_have() {
    let server = ReleaseServer::start(&[("0.9.4", None), ("0.10.0", None)], Duration::ZERO);
    let test = Test::with_gzlfile("a:\n    true\n");
    user_config(&test, "");
    let refused = gzl_from(&test, &server, &["pin", "9.9.9"]).status(2);
    assert_eq!(
        refused.stderr,
        format!(
            "error: no gzl release at {} satisfies 9.9.9 (it has 0.10.0, 0.9.4); gzl.toml was not changed\n  help: pin one of those, or `gzl pin` alone for the latest release\n",
            server.url
        )
    );
    assert!(!test.path("gzl.toml").exists());
    gzl_from(&test, &server, &["pin", "--channel", "nightly"])
        .status(2)
        .stderr_has("has no channel `nightly` (it has none); gzl.toml was not changed");
    assert!(!test.path("gzl.toml").exists());
    gzl_from(&test, &server, &["pin", "0.9"])
        .status(0)
        .stderr_has("pinned gzl version = \"0.9\"");
    assert_eq!(server.requests(), ["/manifest.json"; 3]);
}

// A release source that cannot be reached is a failure to try again, not a usage error.
#[test]
fn pin_without_the_network_is_exit_3_and_writes_nothing() {
    let test = Test::with_gzlfile("a:\n    true\n");
    user_config(&test, "");
    test.gzl(&["pin", "0.9.4"])
        .status(3)
        .stderr_has(
            "error: cannot check that the release source has gzl 0.9.4; gzl.toml was not changed",
        )
        .stderr_has("caused by: cannot reach the gzl release source http://127.0.0.1:9");
    assert!(!test.path("gzl.toml").exists());
    // What this gzl serves needs no release source.
    test.gzl(&["pin", "0.1"]).status(0);
}

// `gzl pin banana` said gzl.toml pinned `banana`; the argument is what is not a version.
#[test]
fn pin_says_an_argument_that_is_not_a_version_is_not_one() {
    let test = Test::with_gzlfile("a:\n    true\n");
    test.gzl(&["pin", "banana"]).status(2).stderr_has(
        "error: `banana` is not a version: `gzl pin` takes a version such as `0.4.2` (that one exactly) or a requirement such as `0.4` (semver)",
    );
    assert!(!test.path("gzl.toml").exists());
}

// A pin that cannot be served stopped `gzl ls` and `gzl logs` too: commands that only read
// history warn once and go on with this gzl; the others still refuse.
#[test]
fn commands_that_only_read_history_run_despite_a_pin_nothing_serves() {
    let server = ReleaseServer::start(&[("0.9.4", None)], Duration::ZERO);
    let test = pinned("version = \"9.9.9\"");
    test.gzl(&["run", "--no-pin"]).status(0);
    let reading: [&[&str]; 6] = [
        &["ls"],
        &["logs", "1", "a"],
        &["why", "a"],
        &["check"],
        &["artifacts", "1"],
        &["version"],
    ];
    for args in reading {
        for run in [gzl_from(&test, &server, args), test.gzl(args)] {
            let run = run.status(0);
            let warnings = run.stderr.matches("warning").count();
            assert!(warnings <= 1, "{args:?} warns once:\n{}", run.stderr);
            if args != ["version"] {
                run.stderr_has("gzl: warning: ").stderr_has(&format!(
                    "`gzl {}` only reads history, so gzl 0.1.0 goes on",
                    args[0]
                ));
            }
        }
    }
    gzl_from(&test, &server, &["ls"])
        .stderr_has("gzl: warning: no gzl release at http://127.0.0.1:")
        .stdout_has("passed");
    test.gzl(&["ls"])
        .stderr_has("gzl: warning: cannot reach the gzl release source http://127.0.0.1:9");
    // `attach` goes on to its own answer: there is no running run.
    test.gzl(&["attach"])
        .status(2)
        .stderr_has("only reads history")
        .stderr_has("no run");
    gzl_from(&test, &server, &["run"])
        .status(2)
        .stderr_has("no gzl release at");
    test.gzl(&["run"]).status(3).stderr_has("cannot reach");
}
