use std::time::{Duration, SystemTime};

use super::Context;
use crate::error::{Error, ExitCode};
use crate::home::Home;
use crate::pin::{self, Cache, Pin, Serving, Wanted};

#[derive(clap::Subcommand)]
pub enum Command {
    /// List the cached gzl binaries
    Ls,
    /// Remove cached gzl binaries no gzl handed over to lately
    Prune {
        /// Keep the binaries used within this long
        #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = super::run::parse_duration)]
        unused_for: Duration,
        /// Remove every cached binary
        #[arg(long, conflicts_with = "unused_for")]
        all: bool,
    },
    /// Fetch a gzl into the cache: the one this repository pins when VERSION is omitted
    Fetch {
        /// A version (`0.4.2`) or requirement (`0.4`)
        #[arg(value_name = "VERSION")]
        release: Option<String>,
    },
}

pub fn run(context: &Context, command: &Command) -> Result<ExitCode, Error> {
    let home = Home::locate()?;
    let cache = Cache::of(&home);
    match command {
        Command::Ls => {
            let binaries = cache.binaries();
            if binaries.is_empty() {
                super::note(&format!("no gzl binaries in {}", cache.dir().display()));
            }
            let now = SystemTime::now();
            let width = binaries
                .iter()
                .map(|binary| binary.version.to_string().len())
                .max()
                .unwrap_or(0);
            let lines: String = binaries
                .iter()
                .map(|binary| {
                    format!(
                        "{:<width$}  {:>10}  used {:<9} {}\n",
                        binary.version.to_string(),
                        indicatif::DecimalBytes(binary.size).to_string(),
                        super::render::ago(now.duration_since(binary.used).unwrap_or_default()),
                        binary.path.display()
                    )
                })
                .collect();
            super::print(&lines);
        }
        Command::Prune { unused_for, all } => {
            // The gzl this repository pins stays, unless told otherwise.
            let serving = Pin::read(&context.project.root)
                .ok()
                .and_then(|pin| pin.wanted)
                .map(|wanted| pin::serving(&wanted, &cache));
            let mut freed = 0;
            let mut removed = 0;
            for binary in cache.binaries() {
                let serves_here = matches!(&serving, Some(Serving::Cached { version, .. }) if *version == binary.version);
                let recent = binary.used.elapsed().is_ok_and(|age| age < *unused_for);
                if !all && (serves_here || recent) {
                    continue;
                }
                cache.remove(&binary)?;
                super::note(&format!("removed gzl {}", binary.version));
                freed += binary.size;
                removed += 1;
            }
            super::note(&format!(
                "removed {removed} cached gzl binaries, {}",
                indicatif::DecimalBytes(freed)
            ));
        }
        Command::Fetch { release } => {
            let wanted = match release {
                Some(version) => Wanted::Version {
                    written: version.clone(),
                    requirement: pin::requirement(version)?,
                },
                None => Pin::read(&context.project.root)?.wanted.ok_or_else(|| {
                    Error::usage(
                        "this repository pins no gzl version (gzl.toml [gzl] version)",
                        Some("name one: `gzl cache fetch 0.4.2`".into()),
                    )
                })?,
            };
            let (source, _) = super::pin::sources(context, &format!("gzl {wanted}"))?;
            let (version, serving) = pin::obtain(&wanted, &source, &cache, &mut |_| {})?;
            let path = super::pin::binary(serving)?;
            super::note(&format!("gzl {version}: {}", path.display()));
        }
    }
    Ok(ExitCode::Success)
}
