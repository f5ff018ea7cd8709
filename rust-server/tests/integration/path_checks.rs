//! The path checks that need no filesystem (`paths::check_request_path`) and
//! `realpath`'s bisection (same answer as trying every prefix).

use std::path::{Component, Path, PathBuf};
use trackprint_server::error::ErrorCode;
use trackprint_server::paths::{check_request_path, realpath, Roots, NAME_MAX, PATH_MAX};

fn refused(path: &str) -> String {
    let err = check_request_path(path).expect_err(path);
    assert_eq!((err.code, err.stage), (ErrorCode::BadRequest, "request"), "{path:.60}");
    assert!(!err.message.is_empty());
    err.message
}

#[test]
fn nul_byte() {
    assert!(refused("/music/a\0b.flac").contains("NUL"));
    assert!(refused("\0").contains("NUL"));
}

#[test]
fn longer_than_path_max() {
    let at_limit = "/a".repeat(PATH_MAX / 2);
    assert_eq!(at_limit.len(), PATH_MAX);
    assert!(check_request_path(&at_limit).is_ok());
    let over = format!("{at_limit}b");
    let message = refused(&over);
    assert!(message.contains("PATH_MAX") && message.contains("4097"), "{message}");
    assert!(refused(&"/a".repeat(40_000)).contains("PATH_MAX"));
}

#[test]
fn component_longer_than_name_max() {
    let ok = format!("/music/{}", "n".repeat(NAME_MAX));
    assert!(check_request_path(&ok).is_ok());
    let message = refused(&format!("/music/{}/a.flac", "n".repeat(NAME_MAX + 1)));
    assert!(message.contains("NAME_MAX") && message.contains("256"), "{message}");
}

#[test]
fn relative_or_empty() {
    assert!(refused("music/a.flac").contains("absolute"));
    assert!(refused("./a.flac").contains("absolute"));
    refused("");
}

#[test]
fn a_message_never_repeats_the_path() {
    for path in ["/music/secret\0name.flac", "secret/relative.flac"] {
        assert!(!refused(path).contains("secret"), "{path}");
    }
}

#[test]
fn resolve_refuses_before_touching_the_filesystem() {
    let roots = Roots::new(&[std::env::temp_dir()]).unwrap();
    for path in ["/tmp/a\0b", "relative.flac"] {
        assert_eq!(roots.resolve(path).unwrap_err().code, ErrorCode::BadRequest);
    }
}

/// The previous, one-prefix-at-a-time `realpath`.
fn realpath_linear(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let components: Vec<Component> = path.components().collect();
    for split in (1..components.len()).rev() {
        let prefix: PathBuf = components[..split].iter().collect();
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

#[test]
fn realpath_bisection_matches_the_linear_search() {
    let dir = std::env::temp_dir().join(format!("trackprint-path-checks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a/b/c")).unwrap();
    std::fs::write(dir.join("a/file"), b"x").unwrap();
    std::os::unix::fs::symlink(dir.join("a/b"), dir.join("link")).unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("dangling")).unwrap();
    let d = dir.display();
    let cases = [
        format!("{d}/a/b/c"),
        format!("{d}/a/b/c/missing.flac"),
        format!("{d}/a/missing/deeper/x.flac"),
        format!("{d}/a/missing/../../../escape.flac"),
        format!("{d}/link/c/missing.flac"),
        format!("{d}/link/../file"),
        format!("{d}/dangling/x.flac"),
        format!("{d}/a/file/below.flac"),
        format!("{d}/a/./b/../b/c/./missing/.."),
        format!("{d}{}", "/a/..".repeat(300)) + "/missing/x",
        format!("{d}{}", "/m".repeat(1000)),
        "/no/such/top/level".to_string(),
    ];
    for case in &cases {
        assert_eq!(realpath(Path::new(case)), realpath_linear(Path::new(case)), "{case:.120}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn symlinks_leading_outside_are_refused_unless_allowed() {
    let base = std::env::temp_dir().join(format!("trackprint-symlinks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (library, elsewhere) = (base.join("library"), base.join("elsewhere"));
    std::fs::create_dir_all(&library).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("secret.flac"), b"x").unwrap();
    std::fs::write(library.join("real.flac"), b"x").unwrap();
    std::os::unix::fs::symlink(elsewhere.join("secret.flac"), library.join("link.flac")).unwrap();
    let link = library.join("link.flac").display().to_string();
    let outside = elsewhere.join("secret.flac").display().to_string();
    let real = library.join("real.flac").display().to_string();

    let strict = Roots::new(std::slice::from_ref(&library)).unwrap();
    let refused = strict.resolve(&link).unwrap_err();
    assert_eq!(refused.code, ErrorCode::OutsideLibrary);
    assert!(refused.message.contains("symlink"), "{}", refused.message);
    assert!(strict.resolve(&real).is_ok());

    let allowing = strict.clone().allowing_symlinks_outside(true);
    assert_eq!(allowing.resolve(&link).unwrap(), std::fs::canonicalize(elsewhere.join("secret.flac")).unwrap());
    // allowing symlinks never lets in a path that is itself outside, nor `..` out of a root
    assert_eq!(allowing.resolve(&outside).unwrap_err().code, ErrorCode::OutsideLibrary);
    let dotdot = format!("{}/../elsewhere/secret.flac", library.display());
    assert_eq!(allowing.resolve(&dotdot).unwrap_err().code, ErrorCode::OutsideLibrary);
    let _ = std::fs::remove_dir_all(&base);
}
