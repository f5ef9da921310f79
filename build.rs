//! Release builds keep line tables for gzl's own code (Cargo.toml's profiles), so a panic's
//! backtrace names files and lines; on Linux the linker stores them compressed, which makes
//! the installed binary a fraction of the size. GNU ld, gold, lld and mold all take the flag,
//! and Rust's backtraces read zlib-compressed debug sections. Debug builds are left alone:
//! compressing costs time at every link.
fn main() {
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    if linux && release {
        println!("cargo:rustc-link-arg-bins=-Wl,--compress-debug-sections=zlib");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
