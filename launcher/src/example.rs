//! `--example NAME` and `--bin NAME`: building a Cargo example or binary of
//! the current workspace and finding it.
//!
//! Owns asking cargo where the workspace is (`cargo locate-project
//! --workspace`) and where it builds (`cargo metadata`'s `target_directory`,
//! which honours `CARGO_TARGET_DIR` and `.cargo/config`), and running
//! `cargo build --example NAME` (or `--bin NAME`, with `--package` and
//! `--release` as given) with cargo's own messages left visible. Running the
//! binary is `run`'s business.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::Error;
use crate::progress::Progress;

/// Which kind of Cargo target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `cargo build --example NAME`: `<target>/<profile>/examples/NAME`.
    Example,
    /// `cargo build --bin NAME`: `<target>/<profile>/NAME`.
    Bin,
}

impl Kind {
    fn flag(self) -> &'static str {
        match self {
            Kind::Example => "--example",
            Kind::Bin => "--bin",
        }
    }
}

/// An example or binary of the current workspace, located but not
/// necessarily built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The target's name (`examples/NAME.rs`, or a `[[bin]]`/`src/main.rs`).
    pub name: String,
    /// An example or a binary.
    pub kind: Kind,
    /// The package to build it from (`--package`), when given.
    pub package: Option<String>,
    /// Built with `--release`.
    pub release: bool,
    /// The workspace root, where cargo is run.
    pub workspace: PathBuf,
    /// Where the built binary is (or will be).
    pub binary: PathBuf,
}

impl Example {
    /// Locates the example or binary `name` of the workspace around the
    /// current directory.
    pub fn locate(
        name: &str,
        kind: Kind,
        package: Option<&str>,
        release: bool,
    ) -> Result<Example, Error> {
        let workspace = workspace_root()?;
        let target_dir = target_directory(&workspace)?;
        Ok(Example {
            name: name.to_string(),
            kind,
            package: package.map(str::to_string),
            release,
            binary: binary_path(&target_dir, kind, name, release),
            workspace,
        })
    }

    /// How it is named on cargo's command line: `--example NAME`.
    pub fn what(&self) -> String {
        format!("{} {}", self.kind.flag(), self.name)
    }

    /// Runs `cargo build [--package P] --example NAME [--release]` (or
    /// `--bin NAME`) in the workspace. With a spinner showing, cargo's
    /// messages are printed above it.
    pub fn build(&self, progress: &mut Progress) -> Result<(), Error> {
        let noun = match self.kind {
            Kind::Example => "example",
            Kind::Bin => "binary",
        };
        progress.spin(format!("building {noun} {}", self.name));
        let mut command = Command::new(cargo());
        command.current_dir(&self.workspace).arg("build");
        if let Some(package) = &self.package {
            command.args(["--package", package]);
        }
        command.args([self.kind.flag(), &self.name]);
        if self.release {
            command.arg("--release");
        }
        let status = if progress.enabled() {
            command.args(["--color", "always"]).stderr(Stdio::piped());
            let mut child = command
                .spawn()
                .map_err(|err| Error::io("cannot run cargo build", err))?;
            if let Some(stderr) = child.stderr.take() {
                for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                    progress.println(String::from_utf8_lossy(&line).trim_end());
                }
            }
            child.wait()
        } else {
            command.status()
        }
        .map_err(|err| Error::io("cannot run cargo build", err))?;
        progress.clear();
        if !status.success() {
            return Err(Error::BuildFailed {
                what: self.what(),
                status: status.to_string(),
            });
        }
        if !self.binary.is_file() {
            return Err(Error::ExampleMissing {
                what: self.what(),
                path: self.binary.clone(),
            });
        }
        Ok(())
    }
}

/// `<target_dir>/{debug|release}/examples/NAME` for an example,
/// `<target_dir>/{debug|release}/NAME` for a binary.
pub fn binary_path(target_dir: &Path, kind: Kind, name: &str, release: bool) -> PathBuf {
    let profile = target_dir.join(if release { "release" } else { "debug" });
    match kind {
        Kind::Example => profile.join("examples").join(name),
        Kind::Bin => profile.join(name),
    }
}

/// The cargo to run: `$CARGO` (set when we run under cargo), else `cargo`.
fn cargo() -> OsString {
    std::env::var_os("CARGO")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "cargo".into())
}

/// Runs a cargo query and returns its stdout, or cargo's first error line.
fn cargo_query(args: &[&str], dir: Option<&Path>) -> Result<String, Error> {
    let mut command = Command::new(cargo());
    command.args(args).stdin(Stdio::null());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command
        .output()
        .map_err(|err| Error::Workspace(format!("cannot run cargo: {err}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no message");
        let first = first.strip_prefix("error: ").unwrap_or(first);
        let what = args.first().copied().unwrap_or("query");
        return Err(Error::Workspace(format!("cargo {what}: {first}")));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The directory of the workspace's root `Cargo.toml`.
fn workspace_root() -> Result<PathBuf, Error> {
    let manifest = cargo_query(
        &["locate-project", "--workspace", "--message-format", "plain"],
        None,
    )?;
    let manifest = PathBuf::from(manifest.trim());
    manifest
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::Workspace(format!("odd manifest path {}", manifest.display())))
}

/// `target_directory` from `cargo metadata`, run in the workspace.
fn target_directory(workspace: &Path) -> Result<PathBuf, Error> {
    let json = cargo_query(
        &["metadata", "--format-version", "1", "--no-deps"],
        Some(workspace),
    )?;
    parse_target_directory(&json)
}

/// Reads `target_directory` out of `cargo metadata` JSON.
fn parse_target_directory(json: &str) -> Result<PathBuf, Error> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|err| Error::Workspace(format!("cannot read cargo metadata: {err}")))?;
    value
        .get("target_directory")
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| Error::Workspace("cargo metadata has no target_directory".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_paths() {
        let target = Path::new("/w/target");
        assert_eq!(
            binary_path(target, Kind::Example, "quickstart", false),
            Path::new("/w/target/debug/examples/quickstart")
        );
        assert_eq!(
            binary_path(target, Kind::Example, "bench", true),
            Path::new("/w/target/release/examples/bench")
        );
        assert_eq!(
            binary_path(target, Kind::Bin, "sweep", true),
            Path::new("/w/target/release/sweep")
        );
    }

    #[test]
    fn reads_target_directory() {
        let json = r#"{"packages":[],"target_directory":"/tmp/t","version":1}"#;
        assert_eq!(parse_target_directory(json).unwrap(), Path::new("/tmp/t"));
        assert!(parse_target_directory("{}").is_err());
        assert!(parse_target_directory("not json").is_err());
    }
}
