//! Outputs stored in one workspace of the pool and restored in another (issue 24): with real
//! tools, what `gzl obj-get` restores runs this workspace's code, and what it cannot move is
//! refused, naming the file. Each test runs a commit whose stage fails, which keeps its
//! workspace, so the next run gets another one.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::Test;

/// `text` with `%gzl` replaced by the gzl under test and `%out` by the test's `outside`
/// directory.
fn with_stages(text: &str) -> Test {
    let test = Test::new();
    let outside = test.outside("x");
    let outside = outside.parent().expect("outside dir").display().to_string();
    test.write(
        "Gzlfile",
        text.replace("%gzl", env!("CARGO_BIN_EXE_gzl"))
            .replace("%out", &outside),
    );
    test
}

fn workspace_of(test: &Test, run: u64) -> PathBuf {
    let runs = test.runs();
    let run = runs
        .iter()
        .find(|r| r["id"] == run)
        .unwrap_or_else(|| panic!("no run {run}"));
    PathBuf::from(run["workspace"].as_str().expect("a workspace"))
}

/// Fails (never skips) when a tool the test needs is missing, saying what to install.
fn require(program: &str, args: &[&str], install: &str) {
    let works = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        works,
        "`{program} {}` does not work on this machine; install {install}",
        args.join(" ")
    );
}

/// Every file and link below `dir` whose bytes or target name `workspace` (as a directory:
/// `WORKSPACE/`, so another workspace whose name starts the same is not counted).
fn naming(dir: &Path, workspace: &Path) -> Vec<PathBuf> {
    let needle = format!("{}/", workspace.display());
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        if metadata.is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            if format!("{}/", target.display()).starts_with(&needle) {
                found.push(path);
            }
        } else if metadata.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            if memchr::memmem::find(&bytes, needle.as_bytes()).is_some() {
                found.push(path);
            }
        }
    }
    found
}

/// A PEP 517 build backend in the project itself, so `pip install -e .` works offline with
/// nothing but pip (no setuptools or wheel): an editable install is a wheel holding a `.pth`
/// naming the source directory, and a console script `pkg-hello`.
const BACKEND: &str = r#"import base64, hashlib, os, zipfile

def _wheel(directory, files):
    dist = "pkg-0.1.dist-info"
    files = dict(files)
    files[dist + "/METADATA"] = b"Metadata-Version: 2.1\nName: pkg\nVersion: 0.1\n"
    files[dist + "/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[dist + "/entry_points.txt"] = b"[console_scripts]\npkg-hello = pkg:main\n"
    lines = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append("%s,sha256=%s,%d" % (name, digest, len(data)))
    lines.append(dist + "/RECORD,,")
    files[dist + "/RECORD"] = ("\n".join(lines) + "\n").encode()
    name = "pkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return name

def get_requires_for_build_editable(config_settings=None):
    return []

def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"pkg_editable.pth": (os.path.abspath("src") + "\n").encode()})

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open("src/pkg/__init__.py", "rb") as source:
        return _wheel(wheel_directory, {"pkg/__init__.py": source.read()})
"#;

const PYPROJECT: &str = r#"[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "pkg"
version = "0.1"
"#;

fn package(result: &str) -> String {
    format!("def f():\n    return \"{result}\"\n\ndef main():\n    print(\"hello\", f())\n")
}

// Issue 24: a venv with an editable install, stored in workspace 1 and restored in
// workspace 2, ran workspace 1's source (its `.pth`) through workspace 1's python (its
// scripts' shebangs): a bisect blamed the wrong commit.
#[test]
fn a_restored_venv_runs_this_workspaces_code_and_its_console_script_starts() {
    require(
        "python3",
        &["-m", "venv", "--help"],
        "python3 and python3-venv",
    );
    require("python3", &["-m", "pip", "--version"], "python3-pip");
    let test = with_stages(
        "install:
    @when pyproject.toml backend.py
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --no-index --no-build-isolation --disable-pip-version-check -e .
    %gzl obj-store .venv
test: install
    %gzl obj-get .venv
    .venv/bin/python -c 'import pkg; print(\"result\", pkg.f())' >> %out/results
    .venv/bin/pkg-hello >> %out/results
    exit $(cat fail)
",
    );
    test.write("pyproject.toml", PYPROJECT);
    test.write("backend.py", BACKEND);
    test.write("src/pkg/__init__.py", package("one"));
    test.write("fail", "1\n");
    test.commit("first");
    test.gzl(&["run"]).status(1);
    test.write("src/pkg/__init__.py", package("two"));
    test.write("fail", "0\n");
    test.commit("second: f changes");
    let run = test.gzl(&["run"]).status(0);
    run.summary_has("install", "cached");
    let (first, second) = (workspace_of(&test, 1), workspace_of(&test, 2));
    assert_ne!(first, second, "the second run has a workspace of its own");
    assert_eq!(
        test.outside_lines("results"),
        ["result one", "hello one", "result two", "hello two"]
    );
    // Nothing restored keeps naming the workspace that stored it (its byte code included).
    assert_eq!(naming(&second.join(".venv"), &first), Vec::<PathBuf>::new());
    let script = std::fs::read_to_string(second.join(".venv/bin/pkg-hello")).unwrap();
    assert!(
        script.starts_with(&format!("#!{}/.venv/bin/python", second.display())),
        "{script}"
    );
}

// The case that hid issue 24: a `node_modules` made by npm moves between workspaces as it
// is (its links are relative), and its bins run this workspace's package.
#[test]
fn a_restored_node_modules_keeps_its_bin_links_and_runs_this_workspaces_package() {
    require("npm", &["--version"], "nodejs and npm");
    let test = with_stages(
        "install:
    @when package.json tool/package.json
    npm install --offline --no-audit --no-fund --loglevel=error
    %gzl obj-store node_modules
test: install
    %gzl obj-get node_modules
    node_modules/.bin/tool-hello >> %out/results
    exit $(cat fail)
",
    );
    test.write(
        "package.json",
        r#"{"name": "app", "version": "1.0.0", "private": true, "dependencies": {"tool": "file:tool"}}"#,
    );
    test.write(
        "tool/package.json",
        r#"{"name": "tool", "version": "1.0.0", "bin": {"tool-hello": "bin/hello.js"}}"#,
    );
    let hello = |word: &str| format!("#!/usr/bin/env node\nconsole.log(\"hello {word}\");\n");
    test.write("tool/bin/hello.js", hello("one"));
    std::fs::set_permissions(
        test.path("tool/bin/hello.js"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    test.write("fail", "1\n");
    test.commit("first");
    test.gzl(&["run"]).status(1);
    test.write("tool/bin/hello.js", hello("two"));
    test.write("fail", "0\n");
    test.commit("second");
    let run = test.gzl(&["run"]).status(0);
    run.summary_has("install", "cached");
    let (first, second) = (workspace_of(&test, 1), workspace_of(&test, 2));
    assert_ne!(first, second);
    assert_eq!(test.outside_lines("results"), ["hello one", "hello two"]);
    assert!(
        std::fs::symlink_metadata(second.join("node_modules/.bin/tool-hello"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(
        naming(&second.join("node_modules"), &first),
        Vec::<PathBuf>::new()
    );
}

// A binary file embedding the workspace's path cannot be rewritten: restoring it elsewhere
// would run against the other workspace, so obj-get refuses, naming the file, and writes
// nothing (not even the paths before it that could move).
#[test]
fn a_binary_embedding_the_workspace_is_refused_naming_it_and_nothing_is_written() {
    let test = with_stages(
        "build:
    @when build.txt
    mkdir -p out/lib docs
    printf 'ELF\\0\\0rpath=%s/out/lib\\0' \"$GZL_REPO_ROOT\" > out/lib/native.so
    echo \"docs of $GZL_REPO_ROOT\" > docs/readme
    %gzl obj-store docs out
test: build
    code=0
    %gzl obj-get docs out 2> %out/refusal || code=$?
    echo \"exit $code\" >> %out/trace
    ls >> %out/trace
    exit $(cat fail)
",
    );
    test.write("build.txt", "1\n");
    test.write("fail", "1\n");
    test.commit("first");
    test.gzl(&["run"]).status(1);
    // In the workspace that stored them: restored as they are.
    assert!(test.outside_lines("trace").contains(&"out".to_string()));
    std::fs::remove_file(test.outside("trace")).unwrap();
    test.write("fail", "0\n");
    test.commit("second");
    let run = test.gzl(&["run"]).status(0);
    run.summary_has("build", "cached");
    let (first, second) = (workspace_of(&test, 1), workspace_of(&test, 2));
    assert_ne!(first, second);
    let trace = test.outside_lines("trace");
    assert_eq!(trace[0], "exit 2", "{trace:?}");
    assert!(
        !trace.contains(&"out".to_string()) && !trace.contains(&"docs".to_string()),
        "nothing is written: {trace:?}"
    );
    let refusal = std::fs::read_to_string(test.outside("refusal")).unwrap();
    assert!(
        refusal.contains(&format!(
            "cannot restore `out` into this workspace ({}): `out/lib/native.so`, which stage `build` stored in {}, is a binary file",
            second.display(),
            first.display()
        )),
        "{refusal}"
    );
    assert!(
        refusal.contains("help: build it in this workspace"),
        "{refusal}"
    );
}
