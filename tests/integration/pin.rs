//! The pinned tool: gzl.toml's `[gzl] version` decides which gzl runs in the repository, and a
//! missing version is fetched from a release source, here a real HTTP server on 127.0.0.1
//! serving releases made by `.ci/release`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{Run, Test, write_executable};

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
            let stand_in = format!(
                "#!/bin/sh\necho \"gzl {version} with: $* (handed over: $GZL_PIN_HANDED_OVER)\"\n"
            );
            release(dir.path(), version, *channel, &stand_in);
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

/// Releases `script` as gzl `version` into `dir` with the project's release script.
fn release(dir: &Path, version: &str, channel: Option<&str>, script: &str) {
    let program = dir.join(format!("stand-in-{version}"));
    std::fs::write(&program, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/release");
    let mut command = std::process::Command::new(script);
    command.args(["--out".as_ref(), dir.as_os_str()]);
    command.args(["--binary".as_ref(), program.as_os_str()]);
    command.args(["--version", version]);
    if let Some(channel) = channel {
        command.args(["--channel", channel]);
    }
    let output = command.output().expect(".ci/release runs");
    assert!(
        output.status.success(),
        ".ci/release: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_file(program).unwrap();
}

/// A repository whose gzl.toml holds `pin`, whose gzl fetches from `server`.
fn pinned(pin: &str) -> Test {
    let test = Test::with_gzlfile("a:\n    echo ran\n");
    test.write("gzl.toml", format!("# which gzl\n[gzl]\n{pin}\n"));
    test.commit("first");
    test
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
    gzl_from(&test, &server, &["ls"])
        .status(2)
        .stderr_has("gzl 0.9.4 from http://127.0.0.1")
        .stderr_has("does not match its published SHA-256 checksum; the download was deleted");
    assert_eq!(cache_entries(&test), Vec::<String>::new());
}

#[test]
fn an_unreachable_release_source_names_the_version_and_the_source() {
    let test = pinned("version = \"0.9.4\"");
    test.gzl(&["run"])
        .status(2)
        .stderr_has("cannot reach the gzl release source http://127.0.0.1:9 for gzl 0.9.4")
        .stderr_has("--no-pin");
    assert_eq!(cache_entries(&test), Vec::<String>::new());
    test.gzl(&["run", "--no-pin"])
        .status(0)
        .stdout_has("ran")
        .stderr_has("warning: this repository pins gzl 0.9.4; running gzl");
    Run::from(
        test.command(&["run", "--force"])
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
    std::fs::create_dir_all(test.home().join("config")).unwrap();
    std::fs::write(
        test.home().join("config/config.toml"),
        "auto_update = false\n",
    )
    .unwrap();
    gzl_from(&test, &server, &["ls"])
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
    gzl_from(&test, &server, &["ls"])
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
    test.gzl(&["ls"])
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
    let server = ReleaseServer::start(&[("0.9.4", None), ("0.10.0", None)], Duration::ZERO);
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
    // Without a version: the latest release.
    gzl_from(&test, &server, &["pin"])
        .status(0)
        .stderr_has("pinned gzl version = \"0.10.0\"");
    assert!(test.read("gzl.toml").contains("version = \"0.10.0\""));
}

#[test]
fn self_update_replaces_the_running_gzl_with_the_latest_release() {
    let test = Test::with_gzlfile("a:\n    true\n");
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
    std::fs::create_dir_all(test.home().join("config")).unwrap();
    std::fs::write(
        test.home().join("config/config.toml"),
        "channel = \"beta\"\n",
    )
    .unwrap();
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
    let without_variable = |args: &[&str]| {
        Run::from(
            test.command(args)
                .env_remove("GZL_RELEASE_URL")
                .output()
                .unwrap(),
        )
    };
    without_variable(&["ls"])
        .status(0)
        .stdout_has("gzl 0.9.4 with: ls");
    assert!(!server.requests().is_empty());
    // GZL_RELEASE_URL wins over gzl.toml.
    test.gzl(&["version"])
        .status(0)
        .stdout_has("release source: http://127.0.0.1:9");
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
    release(
        dir.path(),
        "0.98.0",
        None,
        &format!("#!/bin/sh\nexec {gzl} \"$@\"\n"),
    );
    release(
        dir.path(),
        "0.99.0",
        None,
        &format!("#!/bin/sh\nGZL_CANDIDATE=1 exec {gzl} \"$@\"\n"),
    );
    let server = ReleaseServer::serve(dir, Duration::ZERO);
    let test = Test::with_gzlfile(
        "build:\n    echo built\npicky: build\n    test -z \"$GZL_CANDIDATE\"\nnever:\n    false\n",
    );
    test.write("gzl.toml", "[gzl] # which gzl\nversion = \"0.1\"\n");
    test.commit("first");
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
