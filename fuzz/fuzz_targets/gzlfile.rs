//! Any bytes as a Gzlfile: stages or diagnostics, never a panic, and diagnostics that hold no
//! control character a terminal would act on. The seeded, bounded version of this runs in
//! `cargo test` (tests/integration/gzlfile_fuzz.rs).

#![no_main]

use std::path::Path;

use gzl::stagefile::{Gzlfile, StagefileError, render_all};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Gzlfile::from_bytes(Path::new("Gzlfile"), data.to_vec()) {
        Ok(gzlfile) => {
            let _ = gzl::plan::Plan::new(&gzlfile, &[]);
            let _ = Gzlfile::generated("gen", &gzlfile.source, &["build", "gen"]);
        }
        Err(StagefileError::Invalid {
            source_text,
            diagnostics,
            ..
        }) => {
            assert!(!diagnostics.is_empty(), "an invalid Gzlfile says why");
            let shown = render_all(&diagnostics, &source_text, "Gzlfile", false);
            let raw = shown.chars().find(|&c| c.is_control() && c != '\n');
            assert!(raw.is_none(), "{raw:?} unescaped in:\n{shown}");
        }
        Err(error) => panic!("neither stages nor diagnostics: {error}"),
    }
});
