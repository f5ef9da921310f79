//! gzl: a local-first CI. The binary is a thin layer over this library; `cli` parses
//! arguments and calls the modules below, each of which owns one concept.

pub mod api;
pub mod artifacts;
pub mod attach;
pub mod bisect;
pub mod cache;
pub mod cli;
pub mod config;
pub mod debug;
pub mod duration;
pub mod error;
pub mod exec;
pub mod gc;
pub mod git;
pub mod history;
pub mod home;
pub mod hooks;
pub mod outputs;
pub mod pin;
pub mod pipeline;
pub mod plan;
pub mod project;
pub mod release;
pub mod report;
pub mod secrets;
pub mod stagefile;
pub mod status;
pub mod stop;
pub mod store;
pub mod style;
pub mod templates;
pub mod ui;
pub mod watch;
pub mod workspace;
