use std::io::{BufRead as _, IsTerminal as _, Write as _};

use crate::error::{Error, ExitCode};
use crate::home::Home;
use crate::secrets;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Store a secret; its value is read from stdin (a prompt that does not echo on a terminal)
    Set {
        /// The secret's name, as stages ask for it with `@secret NAME`
        name: String,
    },
    /// List the stored secrets' names
    Ls,
    /// Remove a stored secret
    Rm { name: String },
}

pub fn run(command: &Command) -> Result<ExitCode, Error> {
    let home = Home::locate()?;
    let path = secrets::file(&home);
    let mut stored = secrets::read(&path)?;
    match command {
        Command::Set { name } => {
            secrets::check_name(name)?;
            let value = read_value(name)?;
            if value.chars().count() < secrets::MIN_LENGTH {
                return Err(secrets::SecretError::TooShort { name: name.clone() }.into());
            }
            stored.insert(name.clone(), value);
            secrets::write(&path, &stored)?;
            super::note(&format!("stored secret `{name}` in {}", path.display()));
        }
        Command::Ls => {
            let names: String = stored.keys().map(|name| format!("{name}\n")).collect();
            super::print(&names);
        }
        Command::Rm { name } => {
            if stored.remove(name).is_none() {
                return Err(Error::usage(
                    format!("no secret `{name}` in {}", path.display()),
                    Some("`gzl secret ls` lists them".into()),
                ));
            }
            secrets::write(&path, &stored)?;
            super::note(&format!("removed secret `{name}`"));
        }
    }
    Ok(ExitCode::Success)
}

/// The value from stdin: on a terminal after a prompt, with echo off while it is typed.
fn read_value(name: &str) -> Result<String, Error> {
    let io = |source| Error::Io {
        message: "cannot read the secret's value".into(),
        source,
    };
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let saved = if terminal {
        let _ = write!(std::io::stderr(), "value of {name} (not shown): ");
        let _ = std::io::stderr().flush();
        hide_input(&stdin)
    } else {
        None
    };
    let mut value = String::new();
    let read = stdin.lock().read_line(&mut value);
    if let Some(saved) = saved {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &saved);
        let _ = writeln!(std::io::stderr());
    }
    read.map_err(io)?;
    Ok(value.trim_end_matches(['\n', '\r']).to_string())
}

/// Turns echo off on the terminal; returns the settings to restore.
fn hide_input(stdin: &std::io::Stdin) -> Option<nix::sys::termios::Termios> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let saved = tcgetattr(stdin).ok()?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(stdin, SetArg::TCSANOW, &quiet).ok()?;
    Some(saved)
}
