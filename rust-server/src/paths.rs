//! Library roots: which paths the server may read (`trackprint/paths.py`).
//!
//! A path is resolved like `os.path.realpath` (symlinks and `..` resolved,
//! also when the file itself does not exist) and must lie under a root.

use crate::error::{AnalysisError, ErrorCode, Result};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Roots(Vec<PathBuf>);

impl Roots {
    /// Canonicalises every root; a root that does not exist is a startup error.
    pub fn new(roots: &[PathBuf]) -> std::io::Result<Self> {
        let mut out = Vec::new();
        for r in roots {
            out.push(std::fs::canonicalize(r).map_err(|e| std::io::Error::new(e.kind(), format!("library root {}: {e}", r.display())))?);
        }
        Ok(Roots(out))
    }

    pub fn list(&self) -> Vec<String> {
        self.0.iter().map(|p| p.display().to_string()).collect()
    }

    /// The canonical form of `path` when it lies under a root, else `outside_library`.
    pub fn resolve(&self, path: &str) -> Result<PathBuf> {
        let outside = || AnalysisError::new(ErrorCode::OutsideLibrary, "open", "path is outside the library roots").with_path(path);
        let raw = Path::new(path);
        if !raw.is_absolute() {
            return Err(AnalysisError::new(ErrorCode::OutsideLibrary, "open", "path must be absolute").with_path(path));
        }
        let target = realpath(raw);
        if self.0.iter().any(|root| target.starts_with(root)) {
            Ok(target)
        } else {
            Err(outside())
        }
    }
}

/// `os.path.realpath`: canonicalise the longest existing prefix, then apply the rest lexically.
pub fn realpath(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let components: Vec<Component> = path.components().collect();
    for split in (0..components.len()).rev() {
        let prefix: PathBuf = components[..split].iter().collect();
        if prefix.as_os_str().is_empty() {
            continue;
        }
        if let Ok(mut base) = std::fs::canonicalize(&prefix) {
            for c in &components[split..] {
                match c {
                    Component::ParentDir => {
                        base.pop();
                    }
                    Component::CurDir => {}
                    other => base.push(other.as_os_str()),
                }
            }
            return base;
        }
    }
    path.to_path_buf()
}
