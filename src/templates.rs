//! The Gzlfiles `gzl init` writes, chosen by what the repository holds.

use std::path::Path;

/// A starting Gzlfile for one kind of project.
pub struct Template {
    pub name: &'static str,
    /// The file whose presence selects this template; `None` for the generic one.
    pub marker: Option<&'static [&'static str]>,
    pub text: &'static str,
}

/// In the order they are tried.
pub const TEMPLATES: [Template; 6] = [
    Template {
        name: "rust",
        marker: Some(&["Cargo.toml"]),
        text: include_str!("../templates/rust.Gzlfile"),
    },
    Template {
        name: "node",
        marker: Some(&["package.json"]),
        text: include_str!("../templates/node.Gzlfile"),
    },
    Template {
        name: "python",
        marker: Some(&["pyproject.toml", "setup.py"]),
        text: include_str!("../templates/python.Gzlfile"),
    },
    Template {
        name: "go",
        marker: Some(&["go.mod"]),
        text: include_str!("../templates/go.Gzlfile"),
    },
    Template {
        name: "make",
        marker: Some(&["Makefile", "makefile", "GNUmakefile"]),
        text: include_str!("../templates/make.Gzlfile"),
    },
    Template {
        name: "generic",
        marker: None,
        text: include_str!("../templates/generic.Gzlfile"),
    },
];

/// The template for the project at `root`.
pub fn choose(root: &Path) -> &'static Template {
    TEMPLATES
        .iter()
        .find(|t| {
            t.marker
                .is_none_or(|files| files.iter().any(|f| root.join(f).is_file()))
        })
        .unwrap_or(&TEMPLATES[TEMPLATES.len() - 1])
}
