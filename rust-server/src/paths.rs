//! Library roots: which paths the server may read (`trackprint/paths.py`).
//!
//! A request's path first passes [`check_request_path`], which touches no
//! filesystem and costs one pass over the string (NUL byte, `PATH_MAX`,
//! `NAME_MAX`, absolute); a failure there is the client's (`bad_request`).
//! Only then is it resolved like `os.path.realpath` (symlinks and `..`
//! resolved, also when the file itself does not exist) and must lie under a
//! root. Resolving makes system calls that can block (a dead mount), so the
//! HTTP layer runs [`Roots::resolve`] inside the analysis slot, on a blocking
//! thread, never on the async runtime's threads.

use crate::error::{AnalysisError, ErrorCode, Result};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Longest path the kernel accepts, in bytes (Linux `PATH_MAX`, which counts the final NUL).
pub const PATH_MAX: usize = 4096;
/// Longest file name (one path component), in bytes (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Refuse a path no file can have, before any filesystem call: a NUL byte,
/// more than [`PATH_MAX`] bytes, a component of more than [`NAME_MAX`] bytes,
/// or a relative path. Every refusal is `bad_request` at stage `request`
/// (the message names the limit, never the path).
pub fn check_request_path(path: &str) -> Result<()> {
    let bad = |message: String| Err(AnalysisError::new(ErrorCode::BadRequest, "request", message));
    if path.is_empty() {
        return bad("path is empty".into());
    }
    if let Some(at) = path.bytes().position(|b| b == 0) {
        return bad(format!("path contains a NUL byte (at byte {at})"));
    }
    if path.len() > PATH_MAX {
        return bad(format!("path is {} bytes, longer than PATH_MAX ({PATH_MAX} bytes)", path.len()));
    }
    if let Some(longest) = path.split('/').map(str::len).max().filter(|&n| n > NAME_MAX) {
        return bad(format!("a path component is {longest} bytes, longer than NAME_MAX ({NAME_MAX} bytes)"));
    }
    if !path.starts_with('/') {
        return bad("path must be absolute".into());
    }
    Ok(())
}

/// The library roots and the symlink policy (cheap to clone: shared).
///
/// A path is inside when its canonical form lies under a root's canonical
/// form. With `allow_symlinks_outside` (off by default, `--allow-symlinks-outside`)
/// a path is also inside when its lexical form (`..` applied, symlinks not
/// followed) lies under a root as given: a symlink in the library may then
/// lead anywhere. `trackprint/paths.py` applies the same rule.
#[derive(Debug, Clone)]
pub struct Roots {
    canonical: Arc<[PathBuf]>,
    lexical: Arc<[PathBuf]>,
    allow_symlinks_outside: bool,
}

impl Roots {
    /// Canonicalises every root; a root that does not exist is a startup error.
    pub fn new(roots: &[PathBuf]) -> std::io::Result<Self> {
        let mut canonical = Vec::new();
        for r in roots {
            canonical.push(std::fs::canonicalize(r).map_err(|e| std::io::Error::new(e.kind(), format!("library root {}: {e}", r.display())))?);
        }
        let lexical: Vec<PathBuf> = roots.iter().map(|r| lexical_absolute(r)).collect();
        Ok(Roots { canonical: canonical.into(), lexical: lexical.into(), allow_symlinks_outside: false })
    }

    /// The same roots, with symlinks leading outside them allowed (or not).
    pub fn allowing_symlinks_outside(mut self, allow: bool) -> Self {
        self.allow_symlinks_outside = allow;
        self
    }

    pub fn list(&self) -> Vec<String> {
        self.canonical.iter().map(|p| p.display().to_string()).collect()
    }

    /// The canonical form of `path` when it is inside the library (see [`Roots`]),
    /// else `outside_library` (or `bad_request` when [`check_request_path`]
    /// refuses it). Blocking: system calls.
    pub fn resolve(&self, path: &str) -> Result<PathBuf> {
        check_request_path(path).map_err(|e| e.with_path(path))?;
        let target = realpath(Path::new(path));
        if self.canonical.iter().any(|root| target.starts_with(root)) {
            return Ok(target);
        }
        let lexically_inside = self.lexical.iter().any(|root| lexical_absolute(Path::new(path)).starts_with(root));
        match (lexically_inside, self.allow_symlinks_outside) {
            (true, true) => Ok(target),
            (true, false) => Err(AnalysisError::new(
                ErrorCode::OutsideLibrary,
                "open",
                "a symlink that leads outside the library roots (allow_symlinks_outside is off)",
            )
            .with_path(path)),
            (false, _) => Err(AnalysisError::new(ErrorCode::OutsideLibrary, "open", "path is outside the library roots").with_path(path)),
        }
    }
}

/// `os.path.normpath(os.path.abspath(path))`: `.` and `..` applied to the text, no symlink followed.
fn lexical_absolute(path: &Path) -> PathBuf {
    let mut out = if path.is_absolute() { PathBuf::new() } else { std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")) };
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `os.path.realpath`: canonicalise the longest existing prefix, then apply the rest lexically.
///
/// Resolution goes left to right, so when a prefix canonicalises every
/// shorter one does too: the longest is found by bisection, O(log n)
/// `canonicalize` calls for n components instead of one per component (which
/// made an 80 KB path cost seconds of CPU).
pub fn realpath(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let components: Vec<Component> = path.components().collect();
    // invariant: the first `good` components canonicalise to `base` (none yet when good == 0),
    // the first `bad` do not
    let (mut good, mut bad) = (0, components.len());
    let mut base: Option<PathBuf> = None;
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        let prefix: PathBuf = components[..mid].iter().collect();
        match std::fs::canonicalize(&prefix) {
            Ok(p) => {
                good = mid;
                base = Some(p);
            }
            Err(_) => bad = mid,
        }
    }
    let Some(mut base) = base else {
        return path.to_path_buf();
    };
    for c in &components[good..] {
        match c {
            Component::ParentDir => {
                base.pop();
            }
            Component::CurDir => {}
            other => base.push(other.as_os_str()),
        }
    }
    base
}
