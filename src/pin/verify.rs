//! `gzl pin --verify`: before a repository moves its pin, the candidate gzl runs the stages
//! that passed at HEAD, in a workspace and without reusing results, and every stage whose
//! result differs is reported: an upgrade tried in the dark before it is made in the light.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{HANDED_OVER, PinError};

/// What the candidate gzl made of the stages that passed.
#[derive(Debug, Clone)]
pub struct Trial {
    /// The candidate's run, as `gzl ls` shows it.
    pub run: Option<i64>,
    /// Each stage's status in that run (`passed`, `failed`, `skipped`, …).
    pub statuses: BTreeMap<String, String>,
}

impl Trial {
    /// The stages of `passed` whose result is not a pass with the candidate, with its status.
    pub fn differences<'a>(
        &'a self,
        passed: impl IntoIterator<Item = &'a String>,
    ) -> Vec<(&'a str, &'a str)> {
        passed
            .into_iter()
            .filter_map(|stage| {
                let status = self.statuses.get(stage).map_or("not run", String::as_str);
                (status != "passed").then_some((stage.as_str(), status))
            })
            .collect()
    }
}

/// Runs `stages` at `commit` of the repository at `root` with the gzl at `candidate`, which
/// records the run in the same history.
pub fn trial(
    candidate: &Path,
    root: &Path,
    commit: &str,
    stages: &[String],
) -> Result<Trial, PinError> {
    let failed = |message: String| PinError::Trial {
        candidate: candidate.to_path_buf(),
        message,
    };
    let mut child = Command::new(candidate)
        .arg("-C")
        .arg(root)
        .args(["run", "--no-cache", "--json", "--at", commit])
        .args(stages)
        // The candidate runs as asked, whatever the repository pins now.
        .env(HANDED_OVER, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let mut trial = Trial {
        run: None,
        statuses: BTreeMap::new(),
    };
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.map_err(|e| failed(e.to_string()))?;
        // Events this gzl does not know, or lines that are not events, are the candidate's own.
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        match event["event"].as_str() {
            Some("run_started") => trial.run = event["run"].as_i64(),
            Some("stage_finished") => {
                if let (Some(stage), Some(status)) =
                    (event["stage"].as_str(), event["status"].as_str())
                {
                    trial.statuses.insert(stage.into(), status.into());
                }
            }
            _ => {}
        }
    }
    let status = child.wait().map_err(|e| failed(e.to_string()))?;
    // Exit 1 is stages failing, which is what is compared; anything else is the candidate's.
    if trial.run.is_none() || !matches!(status.code(), Some(0 | 1)) {
        return Err(failed(format!(
            "it exited with {status} without running the stages"
        )));
    }
    Ok(trial)
}
