//! `gzl man`: the manual pages, made by clap_mangen from the definitions `--help` shows, so
//! the two cannot drift.

use std::path::{Path, PathBuf};

use clap::CommandFactory as _;

use super::Cli;
use crate::error::{Error, ExitCode};

#[derive(clap::Args)]
pub struct Args {
    /// Write gzl.1 and a page for every command (gzl-run.1, gzl-secret-set.1, …) into DIR,
    /// instead of printing gzl.1
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// What gzl.1 says after the options and commands: what `--help` has no room for.
const MORE: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success: every stage passed or was reused, or the command did what was asked.
.TP
\fB1\fR
A stage failed, timed out or was stopped.
.TP
\fB2\fR
Usage error, an invalid Gzlfile or gzl.toml: nothing ran.
.TP
\fB3\fR
gzl itself failed: history, files, git or a workspace.
.TP
\fB130\fR
Interrupted by SIGINT, SIGTERM or SIGHUP.
.SH ENVIRONMENT
.TP
\fBGZL_HOME\fR
gzl's data directory, with the cache directory as its \fIcache\fR subdirectory.
.TP
\fBGZL_FILE\fR
The Gzlfile to use, as \fB\-\-file\fR.
.TP
\fBGZL_LOG\fR
A tracing filter for what gzl itself does, as \fB\-v\fR.
.TP
\fBGZL_NO_PIN\fR
As \fB\-\-no\-pin\fR.
.SH FILES
.TP
\fIGzlfile\fR
The pipeline, at the repository root.
.TP
\fIgzl.toml\fR
The repository's settings: workspaces, retention, the pinned gzl version.
.TP
\fI~/.local/share/gzl\fR
The data directory on Linux (\fI~/Library/Application Support/gzl\fR on macOS,
\fB$GZL_HOME\fR when set): run history (\fIhistory.db\fR), logs, stored outputs.
.TP
\fI~/.cache/gzl\fR
The cache directory on Linux (\fI~/Library/Caches/gzl\fR on macOS, \fI$GZL_HOME/cache\fR
when set): the workspaces runs check out and build in; \fBgzl gc \-\-dry\-run\fR shows
what each takes.
.SH "SEE ALSO"
\fBgzl\-run\fR(1), \fBgzl\-check\fR(1), \fBgzl\-gc\fR(1), and docs/cli.md, docs/gzlfile.md and
docs/config.md in gzl's source.
"#;

pub fn run(directory: Option<&Path>, args: &Args) -> Result<ExitCode, Error> {
    // As clap_mangen's own generate_to: `help` is `--help`, not a page.
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let Some(out) = &args.out else {
        super::print(&main_page(&command)?);
        return Ok(ExitCode::Success);
    };
    let out = super::current_dir(directory)?.join(out);
    let io_error = |source| Error::Io {
        message: format!("cannot write the manual pages into {}", out.display()),
        source,
    };
    std::fs::create_dir_all(&out).map_err(io_error)?;
    std::fs::write(out.join("gzl.1"), main_page(&command)?).map_err(io_error)?;
    let mut written = 1;
    let mut pending: Vec<&clap::Command> = command.get_subcommands().collect();
    while let Some(sub) = pending.pop() {
        if sub.is_hide_set() {
            continue;
        }
        clap_mangen::Man::new(sub.clone())
            .generate_to(&out)
            .map_err(io_error)?;
        written += 1;
        pending.extend(sub.get_subcommands());
    }
    super::note(&format!(
        "wrote {written} manual pages into {}",
        out.display()
    ));
    Ok(ExitCode::Success)
}

/// gzl.1: the options, every command, and the sections of [`MORE`].
fn main_page(command: &clap::Command) -> Result<String, Error> {
    let mut roff = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut roff)
        .map_err(|source| Error::Io {
            message: "cannot render the manual page".into(),
            source,
        })?;
    let mut page = String::from_utf8_lossy(&roff).into_owned();
    page.push_str(MORE);
    Ok(page)
}
