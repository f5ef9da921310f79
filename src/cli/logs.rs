use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use super::Context;
use crate::error::{Error, ExitCode};
use crate::history::{History, RunRecord, StageRecord};
use crate::pipeline;
use crate::status::{RunStatus, StageStatus};

#[derive(clap::Args)]
pub struct Args {
    /// A run id, `last`, or a commit-ish (its newest run)
    run: String,

    /// Only this stage's log [default: every stage's, under a header each]
    stage: Option<String>,

    /// Follow the output of running stages until they end
    #[arg(short, long)]
    follow: bool,
}

/// How often a followed log is checked for more output.
const POLL: Duration = Duration::from_millis(50);

pub fn run(context: &Context, args: &Args) -> Result<ExitCode, Error> {
    let history = pipeline::open_history_to_read()?;
    let run = find_run(context, &history, &args.run)?;
    let stages: Vec<StageRecord> = history
        .stages(run.id)?
        .into_iter()
        .map(|stage| with_log_path(&history, run.id, stage))
        .collect();
    let selected: Vec<&StageRecord> = match &args.stage {
        Some(name) => vec![find_stage(&run, &stages, name)?],
        None => stages.iter().collect(),
    };
    let reused = reused_logs(&history, &selected)?;
    match &args.stage {
        Some(name) => {
            if let Some(from) = reused.first().and_then(|r| r.as_ref()).map(|r| r.1) {
                super::note(&format!(
                    "gzl: `{name}` is cached in run {}: this is its output in run {from}",
                    run.id
                ));
            }
        }
        None => {
            // One line for them all: a note per stage buries the logs.
            let mut from: Vec<i64> = reused.iter().flatten().map(|r| r.1).collect();
            let count = from.len();
            from.sort_unstable();
            from.dedup();
            if count > 0 {
                super::note(&format!(
                    "gzl: {count} of {} stages are cached in run {}: their logs are from {}",
                    selected.len(),
                    run.id,
                    runs_named(&from)
                ));
            }
        }
    }
    let mut out = LineTracker {
        inner: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock()),
        at_line_start: true,
    };
    for (stage, reused) in selected.into_iter().zip(&reused) {
        let shown = (|| {
            if args.stage.is_none() {
                // A log that ends mid-line must not swallow the next header.
                let newline = if out.at_line_start { "" } else { "\n" };
                match reused {
                    Some((_, from)) => writeln!(
                        out,
                        "{newline}==> {} ({}, log of run {from}) <==",
                        stage.name, stage.status
                    )?,
                    None => writeln!(out, "{newline}==> {} ({}) <==", stage.name, stage.status)?,
                }
            }
            match reused {
                Some((reused, _)) => copy_log(reused, &mut out, 0).map(|_| ()),
                None if args.follow => follow(&history, run.id, stage, &mut out),
                None => copy_log(stage, &mut out, 0).map(|_| ()),
            }
        })();
        match shown.and_then(|()| out.flush()) {
            Ok(()) => {}
            // The reader has gone (`gzl logs 5 | head`): nothing more to show, as for cat.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(error) => {
                return Err(Error::Io {
                    message: format!("cannot show the log of `{}`", stage.name),
                    source: error,
                });
            }
        }
    }
    Ok(ExitCode::Success)
}

/// For each stage, when it is cached: the stage as it ran in the run it reuses (whose log
/// is its output), with that run. Each such run's stages are read once, however many
/// stages reuse it.
fn reused_logs(
    history: &History,
    stages: &[&StageRecord],
) -> Result<Vec<Option<(StageRecord, i64)>>, Error> {
    let mut runs: HashMap<i64, HashMap<String, StageRecord>> = HashMap::new();
    let mut reused = Vec::with_capacity(stages.len());
    for stage in stages {
        let (StageStatus::Cached, Some(from)) = (stage.status, stage.cached_from) else {
            reused.push(None);
            continue;
        };
        let source = if stages.len() == 1 {
            history.stage(from, &stage.name)?
        } else {
            let by_name = match runs.entry(from) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => entry.insert(
                    history
                        .stages(from)?
                        .into_iter()
                        .map(|s| (s.name.clone(), s))
                        .collect(),
                ),
            };
            by_name.get(&stage.name).cloned()
        };
        reused.push(source.map(|s| (with_log_path(history, from, s), from)));
    }
    Ok(reused)
}

/// "run 4" or "runs 2, 4 and 7", the first few of many.
fn runs_named(ids: &[i64]) -> String {
    const SHOWN: usize = 5;
    let mut names: Vec<String> = ids.iter().take(SHOWN).map(i64::to_string).collect();
    if ids.len() > SHOWN {
        names.push(format!("{} more", ids.len() - SHOWN));
    }
    match names.split_last() {
        Some((last, [])) => format!("run {last}"),
        Some((last, rest)) => format!("runs {} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The stage called `name` of `run`, or an error that suggests one.
pub(super) fn find_stage<'a>(
    run: &RunRecord,
    stages: &'a [StageRecord],
    name: &str,
) -> Result<&'a StageRecord, Error> {
    stages.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        let help = crate::stagefile::suggest(name, names.iter().copied())
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| format!("its stages: {}", names.join(", ")));
        Error::usage(format!("run {} has no stage `{name}`", run.id), Some(help))
    })
}

/// Resolves `last`, a run id, or a commit-ish to a run of this repository.
pub(super) fn find_run(
    context: &Context,
    history: &History,
    selector: &str,
) -> Result<RunRecord, Error> {
    let identity = context.project.identity();
    let not_found = |what: String| Error::usage(what, Some("`gzl ls` lists the runs".into()));
    if selector == "last" {
        return history
            .newest_run(&identity, None)?
            .ok_or_else(|| not_found("no runs yet in this repository".into()));
    }
    let id = selector.parse::<i64>().ok();
    if let Some(id) = id
        && let Some(run) = history.run(id)?
    {
        return Ok(run);
    }
    let Some(repo) = &context.project.repo else {
        return Err(not_found(format!("no run {selector}")));
    };
    let commit = match (repo.resolve_commit(selector), id) {
        (Ok(commit), _) => commit,
        // A number that is neither a run nor a commit was meant as a run.
        (Err(_), Some(_)) => return Err(not_found(format!("no run {selector}"))),
        (Err(error), None) => return Err(error.into()),
    };
    history
        .newest_run(&identity, Some(&commit))?
        .ok_or_else(|| {
            not_found(format!(
                "no run of commit {} ({selector})",
                &commit[..commit.len().min(12)]
            ))
        })
}

/// Remembers whether the last byte written ended a line.
struct LineTracker<W> {
    inner: W,
    at_line_start: bool,
}

impl<W: Write> Write for LineTracker<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        if let Some(&last) = buf[..written].last() {
            self.at_line_start = last == b'\n';
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The stage with its log's path: where history has none (its row could not be written, on a
/// full disk say), the place its log is made in, which holds it if it was.
fn with_log_path(history: &History, run: i64, mut stage: StageRecord) -> StageRecord {
    if stage.log_path.is_none() && stage.status != StageStatus::Pending {
        stage.log_path = Some(
            history
                .home()
                .run_dir(run)
                .join(format!("{}.log", stage.name)),
        );
    }
    stage
}

/// Copies a stage's log from `offset` on; returns the new offset.
fn copy_log(stage: &StageRecord, out: &mut impl Write, offset: u64) -> std::io::Result<u64> {
    let Some(path) = &stage.log_path else {
        return Ok(offset);
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(error) => return Err(error),
    };
    file.seek(SeekFrom::Start(offset))?;
    let copied = std::io::copy(&mut (&mut file).take(u64::MAX), out)?;
    out.flush()?;
    Ok(offset + copied)
}

/// Shows a stage's log and then what it writes, until the stage has ended and all is shown.
fn follow(
    history: &History,
    run: i64,
    stage: &StageRecord,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut offset = 0;
    let mut current = stage.clone();
    loop {
        offset = copy_log(&current, out, offset)?;
        if current.status.is_final() {
            // Read once more: output written just before the stage ended.
            copy_log(&current, out, offset)?;
            return Ok(());
        }
        std::thread::sleep(POLL);
        pipeline::settle_from_reader(history);
        if let Ok(stages) = history.stages(run)
            && let Some(updated) = stages.into_iter().find(|s| s.position == stage.position)
        {
            current = with_log_path(history, run, updated);
        }
        if current.status == StageStatus::Pending {
            let finished = history
                .run(run)
                .ok()
                .flatten()
                .is_none_or(|r| r.status != RunStatus::Running);
            if finished {
                return Ok(());
            }
        }
    }
}
