//! How errors look on stderr.

use std::error::Error as _;

use crate::config::ConfigError;
use crate::error::Error;
use crate::plan::PlanError;
use crate::stagefile::StagefileError;
use crate::style::Style;

/// Prints `error` for people: Gzlfile diagnostics with their source lines, everything else as
/// `error: …` with its causes and a hint where one helps.
pub fn error(error: &Error) {
    let style = Style::for_stderr();
    let mut text = String::new();
    match error {
        Error::Stagefile(StagefileError::Invalid {
            path,
            source_text,
            diagnostics,
        }) => {
            let shown = shown_path(path);
            text.push_str(&crate::stagefile::render_all(
                diagnostics,
                source_text,
                &shown,
                style.enabled(),
            ));
            let count = diagnostics.len();
            text.push_str(&format!(
                "{}: {shown} has {count} error{}\n",
                style.error("error"),
                if count == 1 { "" } else { "s" }
            ));
        }
        Error::Config(ConfigError::Invalid {
            path,
            source_text,
            diagnostic,
        }) => {
            let shown = shown_path(path);
            text.push_str(&diagnostic.render(source_text, &shown, style.enabled()));
            text.push('\n');
            text.push_str(&format!("{}: {shown} is not valid\n", style.error("error")));
        }
        _ => {
            text.push_str(&format!("{}: {error}\n", style.error("error")));
            let mut source = error.source();
            // `transparent` variants repeat their inner error's message; skip the repeat.
            if source.is_some_and(|s| s.to_string() == error.to_string()) {
                source = source.and_then(|s| s.source());
            }
            while let Some(cause) = source {
                text.push_str(&format!("  caused by: {cause}\n"));
                source = cause.source();
            }
            if let Some(help) = help(error) {
                text.push_str(&format!("  {}: {help}\n", style.bold("help")));
            }
        }
    }
    super::note_raw(&text);
}

fn help(error: &Error) -> Option<String> {
    match error {
        Error::Plan(PlanError::UnknownStage { .. }) => Some("`gzl check` lists the stages".into()),
        // A new user's first Gzlfile: an empty file, or only comments.
        Error::Plan(PlanError::Empty { .. }) => Some(
            "run `gzl init --force` to write one for this project, or add a stage: its name and a colon, then its commands indented below"
                .into(),
        ),
        Error::Usage { help, .. } => help.clone(),
        Error::Pin(crate::pin::PinError::NotCached { .. }) => Some(
            "fetch it with `gzl cache fetch`, or run this gzl anyway with --no-pin (GZL_NO_PIN=1)"
                .into(),
        ),
        Error::Artifact(crate::artifacts::ArtifactError::Api(
            crate::api::ApiError::Connect { .. },
        )) => Some(
            "the job API lives as long as its run: `gzl obj-store` and `gzl obj-get` work in a stage while its run runs, not in a `gzl debug` shell afterwards"
                .into(),
        ),
        Error::Artifact(crate::artifacts::ArtifactError::NotRelocatable { .. }) => Some(
            "build it in this workspace rather than restoring it (in the stage that needs it, or in one whose result is not reused across workspaces), or build it without the workspace's absolute path in binary files (relative paths, $ORIGIN rpaths); gzl rewrites text files and links, not binaries"
                .into(),
        ),
        Error::Pin(crate::pin::PinError::Untrusted { .. }) => Some(
            "`gzl pin --trust` trusts it for this repository; your own release source (GZL_RELEASE_URL, or release_url in config.toml) needs no trust"
                .into(),
        ),
        Error::Release(
            crate::release::ReleaseError::Signature { .. },
        ) => Some(
            "a release source you trust that signs with another key: set release_public_key in config.toml; unsigned releases: verify_signatures = false (docs/config.md)"
                .into(),
        ),
        Error::Git(crate::git::GitError::Bare { .. }) => Some(
            "gzl runs commits there: `gzl run` runs HEAD, `gzl run --at REV` another; or work in a clone with a working tree"
                .into(),
        ),
        Error::Pin(crate::pin::PinError::Unchecked { .. }) => Some(
            "check the connection, or name a mirror with GZL_RELEASE_URL, and pin again".into(),
        ),
        Error::Pin(crate::pin::PinError::Unreleased { .. }) => {
            Some("pin one of those, or `gzl pin` alone for the latest release".into())
        }
        Error::Pin(crate::pin::PinError::NothingPassed { .. }) => {
            Some("run the pipeline at HEAD first: `gzl run`".into())
        }
        Error::Release(crate::release::ReleaseError::Unreachable { .. }) => Some(
            "check the connection, or name a mirror with GZL_RELEASE_URL; --no-pin (GZL_NO_PIN=1) runs this gzl anyway"
                .into(),
        ),
        Error::Bisect(crate::bisect::BisectError::NoGood { stage, .. }) => Some(format!(
            "name one with `--good REV`, or run the stage at an older commit first: `gzl run --at REV {stage}`"
        )),
        _ => None,
    }
}

/// A path relative to the current directory when it is below it, as people typed it.
pub fn shown_path(path: &std::path::Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| path.display().to_string())
}

/// How long ago something was, in its largest whole unit.
pub fn ago(elapsed: std::time::Duration) -> String {
    let secs = elapsed.as_secs();
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}
