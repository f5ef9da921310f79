//! `gzl init`'s templates, each end to end on a small real project it generates, with the
//! ecosystem's real tools: init, run, break a test, run twice, fix it, edit a source file,
//! bisect. A tool that is missing fails the test, naming what to install.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::harness::{Run, Test};

/// One template and the project it is tried on.
struct Case {
    /// The template `gzl init` must pick.
    template: &'static str,
    /// The case's name in the matrix of results.
    label: &'static str,
    /// Programs the project's stages run, each with what provides it.
    tools: &'static [(&'static str, &'static str)],
    /// The project, as a user would have it before `gzl init`.
    files: &'static [(&'static str, &'static str)],
    /// Done after `gzl init`, before the first commit: what a user of the ecosystem does.
    prepare: fn(&Project),
    /// The source file the tests check, and its content when the tests pass and when they
    /// fail.
    source: &'static str,
    good: &'static str,
    bad: &'static str,
    /// How a line comment starts in `source`: an edit that changes nothing the tests see.
    comment: &'static str,
    /// What the failing test prints: the real assertion.
    assertion: &'static str,
    /// The stage that installs dependencies, keyed on the manifest and lock files only.
    install: Option<&'static str>,
}

/// What a stage prints when the files a cached need produced are missing from its workspace:
/// never the reason a test fails.
const FALSE_FAILURES: [&str; 4] = [
    "No such file or directory",
    "Cannot find module",
    "command not found",
    "ModuleNotFoundError",
];

/// A project in a test repository, with the tools' environment and a log of timed steps.
struct Project {
    test: Test,
    case: &'static Case,
    env: Vec<(&'static str, OsString)>,
    steps: std::cell::RefCell<Vec<String>>,
}

impl Project {
    fn new(case: &'static Case) -> Self {
        for (program, install) in case.tools {
            assert!(
                on_path(program),
                "the {} template's test needs `{program}` on PATH: install {install}",
                case.template
            );
        }
        let test = Test::new();
        let env = tool_env();
        Project {
            test,
            case,
            env,
            steps: Default::default(),
        }
    }

    /// `gzl ARGS` with the tools' environment, timed and recorded as step `step`.
    fn gzl(&self, step: &str, args: &[&str]) -> Run {
        let mut command = self.test.command(args);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let start = Instant::now();
        let run = Run::from(command.output().expect("gzl runs"));
        let line = format!(
            "{:<14} {:<20} {:<6} {:>6.1}s",
            self.case.label,
            step,
            match run.code {
                Some(0) => "passed".to_string(),
                Some(1) => "failed".to_string(),
                code => format!("exit {code:?}"),
            },
            start.elapsed().as_secs_f64()
        );
        eprintln!("matrix: {line}");
        self.steps.borrow_mut().push(line);
        run
    }

    /// A program of the ecosystem run in the repository with the tools' environment, which
    /// must succeed.
    fn tool(&self, program: &str, args: &[&str]) {
        let output = Command::new(program)
            .args(args)
            .current_dir(self.test.repo())
            // The temp dir above the repository, gzl's HOME in the harness.
            .env("HOME", self.test.repo().parent().expect("the temp dir"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Writes the source file, good or broken, with `notes` comment lines after it.
    fn source(&self, broken: bool, notes: usize) {
        let mut text = if broken {
            self.case.bad
        } else {
            self.case.good
        }
        .to_string();
        for note in 1..=notes {
            text.push_str(&format!("{} note {note}\n", self.case.comment));
        }
        self.test.write(self.case.source, text);
    }

    /// Asserts that `run` failed on the project's real assertion, not on a missing file.
    fn fails_on_the_assertion(&self, run: &Run) {
        assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
        run.summary_has("test", "failed");
        assert!(
            run.stdout.contains(self.case.assertion),
            "the output lacks the assertion {:?}:\n{}",
            self.case.assertion,
            run.stdout
        );
        for false_failure in FALSE_FAILURES {
            assert!(
                !run.stdout.contains(false_failure),
                "a false failure ({false_failure:?}):\n{}",
                run.stdout
            );
        }
    }
}

/// Whether `program` is found on PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The environment the tools need besides gzl's hermetic one: the harness gives gzl a temp
/// `HOME`, where rustup would find no toolchain; and download caches shared by the runs of
/// these tests (under cargo's target dir), so a second run of the suite installs from them.
fn tool_env() -> Vec<(&'static str, OsString)> {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let caches = Path::new(env!("CARGO_TARGET_TMPDIR")).join("template-caches");
    let mut env = vec![
        (
            "RUSTUP_HOME",
            std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| home.join(".rustup").into()),
        ),
        (
            "CARGO_HOME",
            std::env::var_os("CARGO_HOME").unwrap_or_else(|| home.join(".cargo").into()),
        ),
        ("PIP_CACHE_DIR", caches.join("pip").into()),
        // pip reaches PyPI for pytest and setuptools: bounded waits, not the default 15 s
        // times 5 retries.
        ("PIP_DEFAULT_TIMEOUT", "30".into()),
        ("PIP_RETRIES", "1".into()),
        ("npm_config_cache", caches.join("npm").into()),
        // The Node project's dependency is a tarball in the repository: npm needs no registry.
        ("npm_config_offline", "true".into()),
        ("npm_config_audit", "false".into()),
        ("npm_config_fund", "false".into()),
        ("npm_config_update_notifier", "false".into()),
        ("GOCACHE", caches.join("go-build").into()),
        ("GOPATH", caches.join("go").into()),
        // The Go module has no dependencies: nothing is downloaded.
        ("GOPROXY", "off".into()),
        ("GOTOOLCHAIN", "local".into()),
    ];
    if let Some(toolchain) = std::env::var_os("RUSTUP_TOOLCHAIN") {
        env.push(("RUSTUP_TOOLCHAIN", toolchain));
    }
    env
}

/// Init, run, break a test, run twice, fix it, edit a source file, bisect: what a user of the
/// template does in the first hour.
fn daily_loop(case: &'static Case) {
    let project = Project::new(case);
    let test = &project.test;
    for (path, text) in case.files {
        test.write(path, text);
    }
    project.source(false, 0);
    project
        .gzl("init", &["init"])
        .status(0)
        .stderr_has(&format!("from the {} template", case.template));
    (case.prepare)(&project);
    project.gzl("check", &["check"]).status(0);
    test.commit("a project with gzl");

    // The first run installs, builds and tests.
    let cold = project.gzl("run (cold)", &["run"]).status(0);
    cold.summary_has("test", "passed");

    // A broken test fails on its assertion, and again on the second run: the failed run
    // keeps its workspace, so the second runs in another one, with the install reused.
    project.source(true, 0);
    test.commit("break the tests");
    let failed = project.gzl("run (broken)", &["run"]);
    project.fails_on_the_assertion(&failed);
    let again = project.gzl("run (broken, again)", &["run"]);
    project.fails_on_the_assertion(&again);
    if let Some(install) = case.install {
        // In the other workspace, the install's outputs come from the store.
        again.summary_has(install, "cached");
        let restored = format!("`{install}` reuses run 1: its outputs restored");
        assert!(again.stderr.contains(&restored), "{}", again.stderr);
    }

    // Fixed (with a note, so that its tree is new and the tests run), it passes: the tests
    // run this commit's code, wherever the install came from.
    project.source(false, 1);
    test.commit("fix the tests");
    let fixed = project.gzl("run (fixed)", &["run"]);
    assert_eq!(
        fixed.code,
        Some(0),
        "the fixed commit fails: did its tests run another workspace's code?\n{}\n{}",
        fixed.stdout,
        fixed.stderr
    );

    // A source file's edit runs the tests and reuses the install.
    project.source(false, 2);
    test.commit("edit a source file");
    let warm = project.gzl("run (source edit)", &["run"]).status(0);
    warm.summary_has("test", "passed");
    if let Some(install) = case.install {
        warm.summary_has(install, "cached");
    }

    // Three more commits, one of which breaks the tests: bisect names it.
    project.source(false, 3);
    test.commit("another harmless edit");
    project.source(true, 3);
    let breaking = test.commit("the breaking commit");
    project.source(true, 4);
    test.commit("an edit after it");
    project
        .gzl("bisect", &["bisect", "test"])
        .status(0)
        .stdout_has(&format!("first bad commit: {breaking}"));

    eprintln!(
        "matrix for {}:\n{}",
        case.label,
        project.steps.borrow().join("\n")
    );
}

fn nothing_to_prepare(_: &Project) {}

const PYTHON: Case = Case {
    template: "python",
    label: "python",
    tools: &[(
        "python3",
        "Python 3 with venv (Debian: python3 python3-venv)",
    )],
    files: &[
        (".gitignore", ".venv/\n__pycache__/\n*.egg-info/\n"),
        (
            "pyproject.toml",
            "[build-system]\nrequires = [\"setuptools>=64\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
             [project]\nname = \"calc\"\nversion = \"0.1.0\"\n",
        ),
        ("requirements-dev.txt", "pytest\n"),
        (
            "tests/test_calc.py",
            "from calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n",
        ),
    ],
    prepare: python_has_venv,
    source: "src/calc/__init__.py",
    good: "def add(a, b):\n    return a + b\n",
    bad: "def add(a, b):\n    return a + b + 1\n",
    comment: "#",
    assertion: "assert 5 == 4",
    install: Some("venv"),
};

/// `python3 -m venv` needs Debian's python3-venv: say so rather than fail in the stage.
fn python_has_venv(project: &Project) {
    project.tool("python3", &["-c", "import venv, ensurepip"]);
}

#[test]
fn python_template_daily_loop() {
    daily_loop(&PYTHON);
}

const NODE: Case = Case {
    template: "node",
    label: "node",
    tools: &[
        ("node", "Node.js 18 or later"),
        ("npm", "npm"),
        ("tar", "tar"),
    ],
    files: &[
        (".gitignore", "node_modules/\n"),
        (
            "package.json",
            "{\n  \"name\": \"calc\",\n  \"version\": \"1.0.0\",\n  \"private\": true,\n  \
             \"scripts\": { \"test\": \"node --test\" },\n  \
             \"dependencies\": { \"adder\": \"file:vendor/adder-1.0.0.tgz\" }\n}\n",
        ),
        (
            "test/calc.test.js",
            "const test = require('node:test');\nconst assert = require('node:assert');\n\
             const { double } = require('../calc');\n\n\
             test('double', () => {\n  assert.strictEqual(double(2), 4);\n});\n",
        ),
    ],
    prepare: node_dependency_and_lock,
    source: "calc.js",
    good: "const { add } = require('adder');\n\nexports.double = (x) => add(x, x);\n",
    bad: "const { add } = require('adder');\n\nexports.double = (x) => add(x, x) + 1;\n",
    comment: "//",
    assertion: "5 !== 4",
    install: Some("install"),
};

/// The project's dependency, and the lock file `npm install` writes, committed as users do.
fn node_dependency_and_lock(project: &Project) {
    node_dependency(project);
    project.tool("npm", &["install", "--package-lock-only"]);
    assert!(project.test.path("package-lock.json").is_file());
}

/// The project's dependency: a package tarball kept in the repository, so npm needs no
/// registry.
fn node_dependency(project: &Project) {
    let test = &project.test;
    test.write(
        "../adder/package/package.json",
        "{ \"name\": \"adder\", \"version\": \"1.0.0\", \"main\": \"index.js\" }\n",
    );
    test.write(
        "../adder/package/index.js",
        "exports.add = (a, b) => a + b;\n",
    );
    std::fs::create_dir_all(test.path("vendor")).expect("vendor dir");
    project.tool(
        "tar",
        &[
            "-czf",
            "vendor/adder-1.0.0.tgz",
            "-C",
            "../adder",
            "package",
        ],
    );
}

#[test]
fn node_template_daily_loop() {
    daily_loop(&NODE);
}

/// A project without a lock file, which `npm ci` refuses: the template runs `npm install`.
const NODE_WITHOUT_LOCK: Case = Case {
    label: "node (no lock)",
    prepare: node_dependency,
    ..NODE
};

#[test]
fn node_template_daily_loop_without_a_lock_file() {
    daily_loop(&NODE_WITHOUT_LOCK);
}

const RUST: Case = Case {
    template: "rust",
    label: "rust",
    tools: &[
        ("cargo", "Rust (rustup.rs)"),
        ("rustfmt", "rustfmt (rustup component add rustfmt)"),
        ("cargo-clippy", "clippy (rustup component add clippy)"),
    ],
    files: &[
        (".gitignore", "/target\n"),
        (
            "Cargo.toml",
            "[package]\nname = \"calc\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        ),
    ],
    prepare: nothing_to_prepare,
    source: "src/lib.rs",
    good: "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\n\
           #[cfg(test)]\nmod tests {\n    #[test]\n    fn adds() {\n        \
           assert_eq!(super::add(2, 2), 4);\n    }\n}\n",
    bad: "pub fn add(a: i32, b: i32) -> i32 {\n    a + b + 1\n}\n\n\
          #[cfg(test)]\nmod tests {\n    #[test]\n    fn adds() {\n        \
          assert_eq!(super::add(2, 2), 4);\n    }\n}\n",
    comment: "//",
    assertion: "left: 5",
    install: None,
};

#[test]
fn rust_template_daily_loop() {
    daily_loop(&RUST);
}

const GO: Case = Case {
    template: "go",
    label: "go",
    tools: &[("go", "Go (Debian: golang-go)")],
    files: &[
        ("go.mod", "module example.com/calc\n\ngo 1.19\n"),
        (
            "calc_test.go",
            "package calc\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\
             \tif got := Add(2, 2); got != 4 {\n\t\tt.Errorf(\"Add(2, 2) = %d, want 4\", got)\n\t}\n}\n",
        ),
    ],
    prepare: nothing_to_prepare,
    source: "calc.go",
    good: "package calc\n\nfunc Add(a, b int) int {\n\treturn a + b\n}\n",
    bad: "package calc\n\nfunc Add(a, b int) int {\n\treturn a + b + 1\n}\n",
    comment: "//",
    assertion: "Add(2, 2) = 5, want 4",
    install: None,
};

#[test]
fn go_template_daily_loop() {
    daily_loop(&GO);
}

const MAKE: Case = Case {
    template: "make",
    label: "make",
    tools: &[("make", "make"), ("cc", "a C compiler (Debian: gcc)")],
    files: &[
        (".gitignore", "*.o\n/test_calc\n"),
        (
            "Makefile",
            "all: test_calc\n\ntest_calc: test_calc.o calc.o\n\t$(CC) -o $@ test_calc.o calc.o\n\n\
             test: test_calc\n\t./test_calc\n\n.PHONY: all test\n",
        ),
        (
            "test_calc.c",
            "#include <assert.h>\n\nint add(int a, int b);\n\n\
             int main(void) {\n    assert(add(2, 2) == 4);\n    return 0;\n}\n",
        ),
    ],
    prepare: nothing_to_prepare,
    source: "calc.c",
    good: "int add(int a, int b) { return a + b; }\n",
    bad: "int add(int a, int b) { return a + b + 1; }\n",
    comment: "//",
    assertion: "Assertion `add(2, 2) == 4' failed",
    install: None,
};

#[test]
fn make_template_daily_loop() {
    daily_loop(&MAKE);
}

const GENERIC: Case = Case {
    template: "generic",
    label: "generic",
    tools: &[("sh", "a POSIX shell")],
    files: &[(
        "test.sh",
        "got=$(sh add.sh 2 2)\n[ \"$got\" = 4 ] || { echo \"add.sh 2 2 gave $got, want 4\"; exit 1; }\n",
    )],
    prepare: fill_in_the_generic_template,
    source: "add.sh",
    good: "echo $(($1 + $2))\n",
    bad: "echo $(($1 + $2 + 1))\n",
    comment: "#",
    assertion: "add.sh 2 2 gave 5, want 4",
    install: None,
};

/// The generic template's stages say what to put where: the user does.
fn fill_in_the_generic_template(project: &Project) {
    let gzlfile = project.test.read("Gzlfile");
    let filled = gzlfile
        .replace("echo \"build the project here\"", "sh -n add.sh")
        .replace("echo \"run the tests here\"", "sh test.sh");
    assert_ne!(filled, gzlfile, "the generic template's placeholders moved");
    project.test.write("Gzlfile", filled);
}

#[test]
fn generic_template_daily_loop() {
    daily_loop(&GENERIC);
}
