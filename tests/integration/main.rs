//! Integration tests: the built `gzl` against temp git repositories.

mod artifacts;
mod attach;
mod bisect;
mod commands;
mod debug;
mod faults;
mod generates;
mod gzlfile_errors;
mod gzlfile_fuzz;
mod harness;
mod history;
mod hooks;
mod output;
mod outputs;
mod pin;
mod processes;
mod reuse;
mod run;
mod secrets;
mod signals;
mod stop;
mod templates;
mod ui;
mod watch;
mod workspaces;
