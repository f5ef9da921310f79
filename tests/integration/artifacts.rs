//! Artifacts: `gzl obj-store` in one stage, `gzl obj-get` in a later one, through the run's
//! job API; `gzl artifacts`; reuse of cached stages; `gzl gc` of the store.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::harness::Test;

/// `text` with `%gzl` replaced by the gzl under test and `%out` by the test's `outside`
/// directory, for stages that call gzl and leave traces.
/// A repository whose Gzlfile is `text`, with `%gzl` and `%out` filled in.
fn with_stages(text: &str) -> Test {
    let test = Test::new();
    test.write("Gzlfile", gzlfile(&test, text));
    test
}

fn gzlfile(test: &Test, text: &str) -> String {
    let outside = test.outside("x");
    let outside = outside.parent().expect("outside dir");
    text.replace("%gzl", env!("CARGO_BIN_EXE_gzl"))
        .replace("%out", &outside.display().to_string())
}

/// A stage `build` that makes `out/` (a file, an executable, a symbolic link, a
/// subdirectory) and `app.txt` and stores both.
const BUILD: &str = "build:
    echo built >> %out/executed
    mkdir -p out/bin out/share/doc
    printf 'tool\\n' > out/bin/tool
    chmod 755 out/bin/tool
    printf 'doc\\n' > out/share/doc/readme
    ln -s bin/tool out/link
    printf 'app\\n' > app.txt
    %gzl obj-store out ./app.txt
";

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// What `build` stored, checked at `dir`.
fn assert_restored(dir: &Path) {
    assert_eq!(
        std::fs::read_to_string(dir.join("out/bin/tool")).unwrap(),
        "tool\n"
    );
    assert_eq!(mode(&dir.join("out/bin/tool")), 0o755);
    assert_eq!(
        std::fs::read_to_string(dir.join("out/share/doc/readme")).unwrap(),
        "doc\n"
    );
    assert_eq!(
        std::fs::read_link(dir.join("out/link")).unwrap(),
        Path::new("bin/tool")
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("app.txt")).unwrap(),
        "app\n"
    );
}

/// Object files in the store's blobs.
fn blobs(test: &Test) -> usize {
    std::fs::read_dir(test.home().join("objects/blobs"))
        .map(|fans| {
            fans.flatten()
                .map(|fan| std::fs::read_dir(fan.path()).map_or(0, Iterator::count))
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn artifacts_pass_to_a_later_stage_with_modes_links_and_directories() {
    let test = with_stages(&format!(
        "{BUILD}deploy: build
    rm -rf out app.txt
    %gzl obj-get out app.txt
    cp -a out app.txt %out/
"
    ));
    test.commit("first");
    let run = test.gzl(&["run"]).status(0);
    assert!(
        run.stdout.contains("gzl: stored out (3 files, 9 B)")
            && run.stdout.contains("gzl: restored out from `build`"),
        "{}",
        run.stdout
    );
    assert_restored(test.outside("x").parent().unwrap());
    // The socket lives as long as the run.
    assert!(!test.home().join("runs/1/api.sock").exists());
}

#[test]
fn a_cached_stage_still_provides_its_artifacts() {
    let test = with_stages(&format!(
        "{}test: build
    rm -rf out app.txt
    %gzl obj-get out app.txt
    echo \"$(cat app.txt) $(cat input.txt)\" >> %out/tested
",
        BUILD.replace("build:\n", "build:\n    @when src/**\n")
    ));
    test.write("src/main.c", "int main;\n");
    test.write("input.txt", "one\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("input.txt", "two\n");
    test.commit("second");
    let again = test.gzl(&["run"]).status(0);
    again.summary_has("build", "cached");
    assert_eq!(test.outside_lines("executed"), ["built"]);
    assert_eq!(test.outside_lines("tested"), ["app one", "app two"]);
    // The cached stage's artifacts are the run's too.
    test.gzl(&["artifacts", "2"])
        .status(0)
        .stdout_has("build  out")
        .stdout_has("build  app.txt");
}

#[test]
fn a_stage_whose_artifacts_gc_removed_runs_again() {
    let test = with_stages(&format!(
        "{BUILD}test: build
    rm -rf out app.txt
    %gzl obj-get out app.txt
    echo tested >> %out/tested
"
    ));
    test.write("gzl.toml", "[artifacts]\nkeep = \"1ms\"\nkeep_last = 0\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    assert!(blobs(&test) > 0);
    std::thread::sleep(std::time::Duration::from_millis(5));
    test.gzl(&["gc"])
        .status(0)
        .stdout_has("let go 2 artifacts; removed 5 objects");
    assert_eq!(blobs(&test), 0);
    test.gzl(&["artifacts", "1"])
        .status(0)
        .stdout_has("(removed by gc)");
    test.gzl(&["artifacts", "1", "--out", "exported"])
        .status(2)
        .stderr_has("run 1: `out` of stage `build` was removed by gzl gc");
    // The same source again: `build` would be reused, but its artifacts are gone.
    test.gzl(&["why", "build"]).status(0).stdout_has(
        "build would run: it passed with the same inputs in run 1, but the store no longer holds what it stored there (gzl gc)",
    );
    test.gzl(&["why", "test"])
        .status(0)
        .stdout_has("test would run: it needs `build`, which would run");
    let again = test.gzl(&["run"]).status(0);
    again.summary_has("build", "passed");
    assert_eq!(test.outside_lines("executed"), ["built", "built"]);
    assert_eq!(test.outside_lines("tested"), ["tested", "tested"]);
}

#[test]
fn getting_a_path_no_upstream_stage_stored_is_refused_naming_the_stages() {
    let test = with_stages(
        "build:
    echo app > app
    %gzl obj-store app
    touch %out/stored
prepare:
    true
wait:
    while [ ! -e %out/stored ]; do sleep 0.02; done
lint: prepare wait
    %gzl obj-get app
missing: build
    %gzl obj-get nothing/here
",
    );
    test.commit("first");
    test.gzl(&["run", "-j", "4"]).status(1);
    let lint = test.gzl(&["logs", "last", "lint"]).status(0);
    assert!(
        lint.stdout.contains(
            "no stage upstream of `lint` stored `app` (upstream: `prepare`, `wait`); stage `build` stored it, but `lint` does not need it"
        ),
        "{}",
        lint.stdout
    );
    test.gzl(&["logs", "last", "missing"])
        .status(0)
        .stdout_has("no stage upstream of `missing` stored `nothing/here` (upstream: `build`)");
}

#[test]
fn two_stages_storing_the_same_path_is_an_error() {
    let test = with_stages(
        "first:
    echo one > dist
    %gzl obj-store dist
second: first
    echo two > dist
    %gzl obj-store dist
",
    );
    test.commit("first");
    let run = test.gzl(&["run"]).status(1);
    run.summary_has("second", "failed");
    test.gzl(&["logs", "last", "second"])
        .status(0)
        .stdout_has("`dist` is already stored by stage `first` in this run; two stages cannot store the same path");
    // History keeps the first stage's.
    test.gzl(&["artifacts", "last"])
        .status(0)
        .stdout_has("first  dist");
}

#[test]
fn the_store_keeps_identical_content_once_across_runs() {
    let test = with_stages(
        "build:
    mkdir -p a b
    printf 'same bytes\\n' > a/one
    printf 'same bytes\\n' > b/two
    %gzl obj-store a b
",
    );
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.gzl(&["run", "--force-all"]).status(0);
    assert_eq!(blobs(&test), 1);
    let first = test.gzl(&["artifacts", "1"]).status(0).stdout;
    let second = test.gzl(&["artifacts", "2"]).status(0).stdout;
    assert_eq!(first, second);
}

#[test]
fn gzl_artifacts_lists_and_exports_a_run() {
    let test = Test::new();
    test.write("Gzlfile", gzlfile(&test, BUILD));
    test.commit("first");
    test.gzl(&["run"]).status(0);
    let listed = test.gzl(&["artifacts", "1"]).status(0);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", listed.stdout);
    assert!(
        lines[0].starts_with("STAGE  PATH     FILES  SIZE  DIGEST"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("build  out          3   9 B  "),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("build  app.txt      1   4 B  "),
        "{}",
        lines[2]
    );
    let json = test.gzl(&["artifacts", "last", "--json"]).status(0);
    let object: serde_json::Value = serde_json::from_str(&json.stdout).expect("one JSON object");
    assert_eq!(object["schema"], 1);
    assert_eq!(object["run"], 1);
    assert_eq!(object["artifacts"][0]["path"], "out", "{object}");
    assert_eq!(object["artifacts"][0]["files"], 3, "{object}");
    assert_eq!(object["artifacts"][1]["stage"], "build", "{object}");
    assert_eq!(object["artifacts"][1]["stored_in"], 1, "{object}");

    let out = test.outside("exported");
    test.gzl(&[
        "artifacts",
        "1",
        "build",
        "--out",
        &out.display().to_string(),
    ])
    .status(0)
    .stderr_has("exported/out (3 files, 9 B)");
    assert_restored(&out);

    test.gzl(&["artifacts", "1", "deploy"])
        .status(2)
        .stderr_has("run 1 has no stage `deploy`");
    test.gzl(&["artifacts", "7"]).status(2).stderr_has("7");
}

#[test]
fn stage_commands_outside_a_stage_say_so() {
    let test = Test::new();
    for command in ["obj-store", "obj-get"] {
        test.gzl(&[command, "target/app"])
            .status(2)
            .stderr_has(&format!("gzl {command} must be run inside a gzl stage"));
    }
    // A stage's environment after its run ended (a `gzl debug` shell): the API is gone.
    let gone = test.outside("api.sock");
    crate::harness::Run::from(
        test.command(&["obj-get", "target/app"])
            .env("GZL_API", &gone)
            .env("GZL_STAGE_TOKEN", "00000000000000000000000000000000")
            .output()
            .unwrap(),
    )
    .status(3)
    .stderr_has("cannot reach gzl's job API at")
    .stderr_has("not in a `gzl debug` shell afterwards");
}

#[test]
fn a_request_with_another_token_is_refused() {
    let test = with_stages(
        "build:
    @env GZL_STAGE_TOKEN=00000000000000000000000000000000
    echo app > app
    %gzl obj-store app
",
    );
    test.commit("first");
    test.gzl(&["run"]).status(1);
    test.gzl(&["logs", "last", "build"])
        .status(0)
        .stdout_has("the runner refused: wrong GZL_STAGE_TOKEN");
    test.gzl(&["artifacts", "last"])
        .status(0)
        .stderr_has("stored no artifacts");
}

#[test]
fn a_home_too_deep_for_a_socket_serves_the_api_from_a_private_directory() {
    let test = with_stages(
        "build:
    echo app > app
    %gzl obj-store app
    echo \"$GZL_API\" > %out/api
use: build
    rm app
    %gzl obj-get app
",
    );
    test.commit("first");
    let deep = test.home().join("a".repeat(60)).join("b".repeat(60));
    let run = test
        .command(&["run"])
        .env("GZL_HOME", &deep)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let api = test.outside_lines("api");
    assert!(api[0].len() <= 100 && !api[0].starts_with(&*deep.to_string_lossy()));
    assert!(!Path::new(&api[0]).exists(), "the socket outlives its run");
}

#[test]
fn the_job_api_speaks_versioned_line_json_and_names_what_it_speaks() {
    let test = with_stages(
        "other:
    true
probe: other
    @shell python3
    import json, os, socket
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ['GZL_API'])
    replies = s.makefile('r')
    def ask(request):
        s.sendall((request + '\\n').encode())
        return replies.readline()
    base = {'token': os.environ['GZL_STAGE_TOKEN']}
    with open('%out/api', 'w') as out:
        for request in [
            dict(base, v=2, op='hello', client='0.0.1', later_field=True),
            dict(base, v=3, op='hello'),
            dict(base, v=2, op='upload'),
            dict(base, v=1, op='hello', token=os.environ['GZL_TOKEN'], stage='probe'),
            dict(base, v=2, op='lookup', path='nothing'),
        ]:
            out.write(ask(json.dumps(request)))
        out.write(ask('not json'))
",
    );
    test.commit("first");
    test.gzl(&["run"]).status(0);
    let replies: Vec<serde_json::Value> = test
        .outside_lines("api")
        .iter()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(replies.len(), 6);
    let hello = &replies[0];
    assert_eq!(hello["ok"], true, "{hello}");
    assert_eq!(hello["v"], 2);
    assert_eq!(hello["versions"], serde_json::json!([2]));
    assert_eq!(hello["capabilities"], serde_json::json!(["store.local"]));
    assert!(hello["store"].as_str().unwrap().ends_with("/objects"));
    let refused = |reply: &serde_json::Value, text: &str| {
        assert_eq!(reply["ok"], false, "{reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(text), "{error:?} lacks {text:?}");
    };
    refused(&replies[1], "job API version 3 is not spoken here");
    assert_eq!(replies[1]["versions"], serde_json::json!([2]));
    refused(&replies[2], "unknown request `upload`");
    // An older gzl in a stage is told why, and what to use.
    refused(&replies[3], "job API version 1 is not spoken here");
    refused(
        &replies[3],
        "the gzl in this stage is older than the one running it",
    );
    assert_eq!(replies[3]["versions"], serde_json::json!([2]));
    refused(
        &replies[4],
        "no stage upstream of `probe` stored `nothing` (upstream: `other`)",
    );
    refused(&replies[5], "not a job API request");
}

#[test]
fn a_stage_whose_objects_left_the_store_runs_again() {
    let test = with_stages(&format!(
        "{BUILD}test: build
    rm -rf out app.txt
    %gzl obj-get out app.txt
"
    ));
    test.commit("first");
    test.gzl(&["run"]).status(0);
    std::fs::remove_dir_all(test.home().join("objects/blobs")).unwrap();
    let again = test.gzl(&["run"]).status(0);
    again.summary_has("build", "passed");
    assert_eq!(test.outside_lines("executed"), ["built", "built"]);
    // Stored anew, it is reused from then on.
    let third = test.gzl(&["run"]).status(0);
    third.summary_has("build", "cached");
    third.summary_has("test", "cached");
}

#[test]
fn stages_side_by_side_store_at_once_and_a_stage_needing_both_gets_both() {
    let test = Test::new();
    let stage = |name: &str| {
        format!(
            "{name}:
    mkdir -p {name}
    for i in $(seq 1 200); do echo \"{name} $i\" > {name}/$i.txt; done
    %gzl obj-store {name}
"
        )
    };
    test.write(
        "Gzlfile",
        gzlfile(
            &test,
            &format!(
                "{}{}{}all: left middle right
    rm -rf left middle right
    %gzl obj-get left middle right
    cat left/7.txt middle/200.txt right/1.txt > %out/got
",
                stage("left"),
                stage("middle"),
                stage("right")
            ),
        ),
    );
    test.commit("first");
    test.gzl(&["run", "-j", "3"]).status(0);
    assert_eq!(
        test.outside_lines("got"),
        ["left 7", "middle 200", "right 1"]
    );
    let listed = test.gzl(&["artifacts", "last"]).status(0).stdout;
    assert_eq!(listed.matches("  200  ").count(), 3, "{listed}");
}

#[test]
fn generated_stages_store_and_get_artifacts_also_when_cached() {
    let test = with_stages("build:
    echo app > app
    %gzl obj-store app
parts: build
    @generates
    for n in 1 2; do printf 'part-%s: build\\n    %gzl obj-get app\\n    echo \"part %s $(cat app)\" > out-%s\\n    %gzl obj-store out-%s\\n' $n $n $n $n; done
report: parts
    rm -f out-1 out-2
    %gzl obj-get out-1 out-2
    cat out-1 out-2 >> %out/report
");
    test.commit("first");
    test.gzl(&["run", "-j", "2"]).status(0);
    let again = test.gzl(&["run", "-j", "2"]).status(0);
    again.summary_has("part-1", "cached");
    assert_eq!(
        test.outside_lines("report"),
        ["part 1 app", "part 2 app", "part 1 app", "part 2 app"]
    );
    test.gzl(&["artifacts", "2", "part-2"])
        .status(0)
        .stdout_has("part-2  out-2");
}

#[test]
fn gc_keeps_the_artifacts_of_the_newest_runs_of_each_branch() {
    let test = with_stages(
        "build:
    cat version > app
    %gzl obj-store app
",
    );
    test.write("gzl.toml", "[artifacts]\nkeep = \"1ms\"\nkeep_last = 1\n");
    test.write("version", "one\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("version", "two\n");
    test.commit("second");
    test.gzl(&["run"]).status(0);
    std::thread::sleep(std::time::Duration::from_millis(5));
    test.gzl(&["gc"])
        .status(0)
        .stdout_has("let go 1 artifact; removed 2 objects");
    test.gzl(&["artifacts", "1"])
        .status(0)
        .stdout_has("(removed by gc)");
    let out = test.outside("kept");
    test.gzl(&["artifacts", "2", "--out", &out.display().to_string()])
        .status(0);
    assert_eq!(std::fs::read_to_string(out.join("app")).unwrap(), "two\n");
    // Nothing more to let go.
    test.gzl(&["gc"])
        .status(0)
        .stdout_has("let go 0 artifacts; removed 0 objects");
}

#[test]
fn a_path_inside_a_stored_directory_can_be_got_on_its_own() {
    let test = with_stages(&format!(
        "{BUILD}tool: build
    rm -rf out
    %gzl obj-get out/bin/tool out/share
    [ -x out/bin/tool ] && cat out/bin/tool out/share/doc/readme > %out/got
    [ ! -e out/link ]
missing: build
    %gzl obj-get out/bin/nothing
"
    ));
    test.commit("first");
    let run = test.gzl(&["run"]).status(1);
    run.summary_has("tool", "passed");
    run.summary_has("missing", "exit code 2");
    assert_eq!(test.outside_lines("got"), ["tool", "doc"]);
    test.gzl(&["logs", "last", "missing"])
        .status(0)
        .stdout_has("`out/bin/nothing` is not in `out`, the directory stage `build` stored");
}

/// A stage script in Python that talks to the job API: `ask(request)` sends one request
/// (a dict, with this stage's credential added, or a str sent as it is) and returns the
/// answer as a dict (None when the connection closed).
const PYTHON_CLIENT: &str = "    @shell python3
    import json, os, socket, time
    def connect():
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.environ['GZL_API'])
        return s, s.makefile('r')
    def ask(request, conn=None):
        s, replies = conn or connect()
        if isinstance(request, dict):
            request = json.dumps(dict({'v': 2, 'token': os.environ['GZL_STAGE_TOKEN']}, **request))
        s.sendall((request + '\\n').encode())
        line = replies.readline()
        return json.loads(line) if line else None
";

// Every stage held the run's token and named itself: any stage could store or get as another.
#[test]
fn a_stage_cannot_speak_for_another_stage() {
    let test = with_stages(&format!(
        "build:
    echo app > app
    %gzl obj-store app
    touch %out/stored
impostor:
{PYTHON_CLIENT}    deadline = time.time() + 60
    while not os.path.exists('%out/stored') and time.time() < deadline:
        time.sleep(0.02)
    run_token = ask({{'op': 'lookup', 'path': 'app', 'token': os.environ['GZL_TOKEN'], 'stage': 'build'}})
    named = ask({{'op': 'lookup', 'path': 'app', 'stage': 'build'}})
    stored = ask({{'op': 'stored', 'path': 'app', 'stage': 'build', 'digest': '0' * 64, 'size': 1, 'files': 1}})
    with open('%out/answers', 'w') as out:
        for answer in [run_token, named, stored]:
            out.write(json.dumps(answer) + '\\n')
"
    ));
    test.commit("first");
    test.gzl(&["run", "-j", "2"]).status(0);
    let answers: Vec<serde_json::Value> = test
        .outside_lines("answers")
        .iter()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let error = |i: usize| answers[i]["error"].as_str().unwrap_or_default().to_string();
    // The run's token is no credential; a stage's own one speaks for it, whatever it claims.
    assert!(error(0).contains("wrong GZL_STAGE_TOKEN"), "{}", answers[0]);
    assert!(
        error(1).contains("stage `build` stored it, but `impostor` does not need it"),
        "{}",
        answers[1]
    );
    assert_eq!(answers[2]["ok"], false, "{}", answers[2]);
    test.gzl(&["artifacts", "last"])
        .status(0)
        .stdout_has("build  app");
}

// A request line without end would grow the runner's memory without bound.
#[test]
fn an_oversized_request_line_is_refused() {
    let test = with_stages(&format!(
        "probe:
{PYTHON_CLIENT}    conn = connect()
    # One byte more than a line may hold, and no end of line: the runner reads it all.
    conn[0].sendall(b'x' * ((1 << 20) + 1))
    long = json.loads(conn[1].readline())
    after = conn[1].readline()
    ok = ask({{'op': 'hello'}})
    with open('%out/answers', 'w') as out:
        out.write(json.dumps([long, after, ok]) + '\\n')
"
    ));
    test.commit("first");
    test.gzl(&["run"]).status(0);
    let answers: serde_json::Value =
        serde_json::from_str(&test.outside_lines("answers")[0]).unwrap();
    assert_eq!(answers[0]["ok"], false, "{answers}");
    assert!(
        answers[0]["error"]
            .as_str()
            .unwrap()
            .contains("a request line is longer than 1048576 bytes"),
        "{answers}"
    );
    assert_eq!(answers[1], "", "the connection is closed after it");
    assert_eq!(
        answers[2]["ok"], true,
        "a new connection is served: {answers}"
    );
}

// A stage (or what it left running) opening connections without end would starve the run.
#[test]
fn connections_beyond_the_limit_are_refused() {
    let test = with_stages(&format!(
        "probe:
{PYTHON_CLIENT}    held = [connect() for _ in range(64)]
    hellos = [ask({{'op': 'hello'}}, conn) for conn in held]
    beyond = connect()
    refused = beyond[1].readline()
    for s, replies in held:
        replies.close()
        s.close()
    deadline = time.time() + 60
    again = None
    while time.time() < deadline:
        try:
            again = ask({{'op': 'hello'}})
        except OSError:
            # Refused and closed while the runner has yet to see the others close.
            again = None
        if again and again['ok']:
            break
        time.sleep(0.02)
    with open('%out/answers', 'w') as out:
        out.write(json.dumps([all(h['ok'] for h in hellos), refused, again]) + '\\n')
"
    ));
    test.commit("first");
    test.gzl(&["run"]).status(0);
    let answers: serde_json::Value =
        serde_json::from_str(&test.outside_lines("answers")[0]).unwrap();
    assert_eq!(answers[0], true, "64 connections are served: {answers}");
    let refused: serde_json::Value =
        serde_json::from_str(answers[1].as_str().unwrap()).expect("a refusal line");
    assert_eq!(refused["ok"], false);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("serves 64 connections at once and all are taken"),
        "{refused}"
    );
    assert_eq!(answers[2]["ok"], true, "freed slots serve again: {answers}");
}

/// A repository whose `pkg` is a committed link to `elsewhere`, outside it, and a stage
/// `build` that stores `pkg/dist` (a directory holding `app`) from its own `made/`.
fn with_a_planted_link(consumer: &str) -> (Test, std::path::PathBuf) {
    let test = with_stages(&format!(
        "build:
    @dir made
    mkdir -p pkg/dist
    echo app > pkg/dist/app
    %gzl obj-store pkg/dist
{consumer}"
    ));
    test.write("made/.keep", "");
    let elsewhere = test.outside("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, test.path("pkg")).unwrap();
    test.commit("first");
    (test, elsewhere)
}

// A link in the workspace (committed, or made by an earlier stage) carried restored files
// anywhere the user can write.
#[test]
fn obj_get_does_not_follow_a_planted_symlink_out_of_the_workspace() {
    let (test, elsewhere) = with_a_planted_link(
        "deploy: build
    %gzl obj-get pkg/dist
",
    );
    test.gzl(&["run"])
        .status(1)
        .summary_has("deploy", "exit code 2");
    test.gzl(&["logs", "last", "deploy"])
        .status(0)
        .stdout_has("cannot restore `pkg/dist`, which stage `build` stored")
        .stdout_has("/pkg: it is a symbolic link, and gzl does not write through links");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

// `gzl artifacts --out DIR` wrote through a link in DIR just as obj-get did.
#[test]
fn artifacts_out_does_not_write_through_a_symlink() {
    let (test, elsewhere) = with_a_planted_link("");
    test.gzl(&["run"]).status(0);
    let out = test.outside("exported");
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("pkg")).unwrap();
    let out_arg = out.display().to_string();
    test.gzl(&["artifacts", "1", "--out", &out_arg])
        .status(2)
        .stderr_has("run 1: cannot write `pkg/dist` of stage `build`")
        .stderr_has("it is a symbolic link");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // A link where the artifact itself goes is replaced, not entered.
    std::fs::remove_file(out.join("pkg")).unwrap();
    std::fs::create_dir(out.join("pkg")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("pkg/dist")).unwrap();
    test.gzl(&["artifacts", "1", "--out", &out_arg]).status(0);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_to_string(out.join("pkg/dist/app")).unwrap(),
        "app\n"
    );
}

// A stage writes the store itself: a tree it made by hand could name `link -> elsewhere` and
// then `link/file`, which a restore would write through the link it had just made.
#[test]
fn a_tree_entry_below_a_symlink_entry_is_refused() {
    let elsewhere_test = Test::new();
    let elsewhere = elsewhere_test.outside("elsewhere");
    let blob = blake3::hash(b"x").to_hex().to_string();
    let tree = format!(
        r#"{{"v":1,"entries":[{{"path":"","kind":"dir","mode":493}},{{"path":"link","kind":"symlink","target":"{}"}},{{"path":"link/file","kind":"file","mode":420,"size":1,"digest":"{blob}"}}]}}"#,
        elsewhere.display()
    );
    let digest = blake3::hash(tree.as_bytes()).to_hex().to_string();
    let test = with_stages(&format!(
        "smuggle:
{PYTHON_CLIENT}    answer = ask({{'op': 'stored', 'path': 'out', 'digest': '{digest}', 'size': 1, 'files': 2}})
    with open('%out/answer', 'w') as out:
        out.write(json.dumps(answer) + '\\n')
"
    ));
    for (dir, name, bytes) in [("trees", &digest, tree.as_bytes()), ("blobs", &blob, b"x")] {
        let path = test.home().join("objects").join(dir).join(&name[..2]);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join(&name[2..]), bytes).unwrap();
    }
    test.commit("first");
    test.gzl(&["run"]).status(0);
    let answer: serde_json::Value = serde_json::from_str(&test.outside_lines("answer")[0]).unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("entry `link/file` is not below a directory listed before it"),
        "{answer}"
    );
    test.gzl(&["artifacts", "last"])
        .status(0)
        .stderr_has("stored no artifacts");
}

/// BUILD, reused while `src/` is unchanged, and a stage `test` that gets its artifacts each
/// run.
fn with_a_cached_build() -> Test {
    let test = with_stages(&format!(
        "{}test: build
    rm -rf out app.txt
    %gzl obj-get out app.txt
    echo \"$(cat out/bin/tool) $(cat input.txt)\" >> %out/tested
",
        BUILD.replace("build:\n", "build:\n    @when src/**\n")
    ));
    test.write("src/main.c", "int main;\n");
    test.write("input.txt", "one\n");
    test.commit("first");
    test.gzl(&["run"]).status(0);
    test.write("input.txt", "two\n");
    test.commit("second");
    test
}

/// The blob holding `bytes`, made writable.
fn blob_of(test: &Test, bytes: &[u8]) -> std::path::PathBuf {
    let digest = blake3::hash(bytes).to_hex().to_string();
    let path = test
        .home()
        .join("objects/blobs")
        .join(&digest[..2])
        .join(&digest[2..]);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

// A changed object was restored as if it were what the stage stored.
#[test]
fn a_tampered_object_is_an_error_naming_it() {
    let test = with_a_cached_build();
    let blob = blob_of(&test, b"tool\n");
    std::fs::write(&blob, "evil\n").unwrap();
    let run = test.gzl(&["run"]).status(1);
    run.summary_has("build", "cached");
    run.summary_has("test", "exit code 3");
    test.gzl(&["logs", "last", "test"])
        .status(0)
        .stdout_has("cannot restore `out`, which stage `build` stored")
        .stdout_has(&format!(
            "{} does not hold the bytes stored for",
            blob.display()
        ))
        .stdout_has("out/bin/tool (changed or cut short since it was stored)");
    // It left the store, so the stage that stored it runs again.
    let again = test.gzl(&["run"]).status(0);
    again.summary_has("build", "passed");
    assert_eq!(test.outside_lines("executed"), ["built", "built"]);
    assert_eq!(test.outside_lines("tested"), ["tool one", "tool two"]);
}

// A cut-short object was only found missing when a later stage restored it.
#[test]
fn a_truncated_object_makes_the_cached_stage_run_again() {
    let test = with_a_cached_build();
    std::fs::write(blob_of(&test, b"tool\n"), "to").unwrap();
    let run = test.gzl(&["run"]).status(0);
    run.summary_has("build", "passed");
    assert_eq!(test.outside_lines("executed"), ["built", "built"]);
    assert_eq!(test.outside_lines("tested"), ["tool one", "tool two"]);
}

// Restored files must not become setuid or setgid programs, whatever the store says.
#[test]
fn setuid_bits_are_not_restored() {
    let test = with_stages(
        "build:
    mkdir -p sbin
    printf x > sbin/tool
    chmod 6755 sbin/tool
    chmod 3775 sbin
    %gzl obj-store sbin
use: build
    rm -rf sbin
    %gzl obj-get sbin
    stat -c %a sbin/tool sbin > %out/modes
",
    );
    test.commit("first");
    test.gzl(&["run"]).status(0);
    assert_eq!(test.outside_lines("modes"), ["755", "775"]);
}
