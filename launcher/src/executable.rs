//! Finding executables: a program name or path to the file `exec` would run.
//!
//! Owns the PATH search (as `execvp` does it: a name with a `/` is a path,
//! otherwise each PATH entry is tried, an empty entry meaning the current
//! directory) and the "is it executable" check. Used for the user's program
//! and for the MPI launchers; what to do when nothing is found is the
//! caller's decision.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

/// The result of looking a program up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// An executable regular file (or a symlink to one).
    Found(PathBuf),
    /// Something exists but cannot be executed (a directory, no `x` bit).
    NotExecutable(PathBuf),
    /// Nothing by that name.
    NotFound,
}

/// Looks `program` up the way `execvp` would, using this process's PATH.
pub fn lookup(program: &OsStr) -> Lookup {
    lookup_in(program, std::env::var_os("PATH").as_deref())
}

/// Looks `program` up with an explicit PATH value (`None`: no PATH, so only
/// names with a `/` can be found).
pub fn lookup_in(program: &OsStr, path_var: Option<&OsStr>) -> Lookup {
    if program.is_empty() {
        return Lookup::NotFound;
    }
    let as_path = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        return check(as_path);
    }
    let mut first_unusable = None;
    for dir in path_entries(path_var) {
        match check(&dir.join(program)) {
            found @ Lookup::Found(_) => return found,
            Lookup::NotExecutable(path) => {
                first_unusable.get_or_insert(path);
            }
            Lookup::NotFound => {}
        }
    }
    first_unusable.map_or(Lookup::NotFound, Lookup::NotExecutable)
}

/// The directories of a PATH value; an empty entry is the current directory.
fn path_entries(path_var: Option<&OsStr>) -> Vec<PathBuf> {
    let Some(value) = path_var else {
        return Vec::new();
    };
    std::env::split_paths(value)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            }
        })
        .collect()
}

/// Checks one candidate path.
fn check(path: &Path) -> Lookup {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
            Lookup::Found(path.to_path_buf())
        }
        Ok(_) => Lookup::NotExecutable(path.to_path_buf()),
        Err(_) => Lookup::NotFound,
    }
}

/// A bare name (no `/`) looked up in the current directory, as `./NAME`
/// (`None` for a name with a `/`, or nothing there).
pub fn in_current_dir(program: &OsStr) -> Option<Lookup> {
    if program.is_empty() || program.as_encoded_bytes().contains(&b'/') {
        return None;
    }
    match check(&Path::new(".").join(program)) {
        Lookup::NotFound => None,
        found => Some(found),
    }
}

/// The first of `names` found on PATH, as `(name, path)`.
pub fn first_on_path<'a>(names: &[&'a str]) -> Option<(&'a str, PathBuf)> {
    names
        .iter()
        .find_map(|name| match lookup(OsStr::new(name)) {
            Lookup::Found(path) => Some((*name, path)),
            _ => None,
        })
}

/// `path` made absolute against the current directory, without its `.`
/// components (`./hello` in `/tmp/x` is `/tmp/x/hello`). Symlinks and `..`
/// are kept as they are (`/usr/bin/mpirun` stays `/usr/bin/mpirun`;
/// resolving `..` would need the symlinks resolved).
pub fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => path.to_path_buf(),
        }
    };
    without_dots(&joined)
}

/// `path` without its `.` components (a leading one of a relative path
/// included: `./a` is `a`).
fn without_dots(path: &Path) -> PathBuf {
    let kept: PathBuf = path
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    if kept.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn make(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn finds_on_path_and_by_path() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        make(a.path(), "tool", 0o644);
        let good = make(b.path(), "tool", 0o755);
        let path_var = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(
            lookup_in(OsStr::new("tool"), Some(&path_var)),
            Lookup::Found(good.clone())
        );
        assert_eq!(lookup_in(good.as_os_str(), None), Lookup::Found(good));
    }

    #[test]
    fn reports_non_executables_and_missing() {
        let a = tempfile::tempdir().unwrap();
        let plain = make(a.path(), "plain", 0o644);
        let path_var = a.path().as_os_str().to_os_string();
        assert_eq!(
            lookup_in(OsStr::new("plain"), Some(&path_var)),
            Lookup::NotExecutable(plain)
        );
        assert_eq!(
            lookup_in(a.path().as_os_str(), None),
            Lookup::NotExecutable(a.path().to_path_buf())
        );
        assert_eq!(
            lookup_in(OsStr::new("nope"), Some(&path_var)),
            Lookup::NotFound
        );
        assert_eq!(lookup_in(OsStr::new("plain"), None), Lookup::NotFound);
        assert_eq!(lookup_in(OsStr::new(""), Some(&path_var)), Lookup::NotFound);
    }

    #[test]
    fn absolute_paths_have_no_dot_components() {
        assert_eq!(
            absolute(Path::new("/tmp/x/./hello")),
            Path::new("/tmp/x/hello")
        );
        assert_eq!(absolute(Path::new("/a/./b/../c")), Path::new("/a/b/../c"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new("./hello")), cwd.join("hello"));
        assert_eq!(absolute(Path::new(".")), cwd);
        assert_eq!(without_dots(Path::new("./.")), Path::new("."));
    }
}
