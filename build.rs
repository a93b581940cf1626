//! Records the git revision the binary is built from, for `--version`,
//! `GET /` and the `commandes_build_info` metric (`src/build_info.rs`).
//!
//! `COMMANDES_REVISION` in the build's environment wins (a Docker build has
//! no `.git`: pass `--build-arg REVISION=…`); else `git rev-parse --short
//! HEAD`; else `unknown`, so a build from a source tarball without `.git`,
//! or without git installed, still works.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=COMMANDES_REVISION");
    let given = std::env::var("COMMANDES_REVISION")
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty() && r != "unknown")
        // A full hash (`--build-arg REVISION=$(git rev-parse HEAD)`) is
        // shortened as `git rev-parse --short` would.
        .map(|r| {
            if r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
                r[..7].to_string()
            } else {
                r
            }
        });
    let revision = given
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=COMMANDES_REVISION={revision}");
}

/// The short hash of `HEAD`, and the files whose change means a new one.
fn git_revision() -> Option<String> {
    let revision = git(&["rev-parse", "--short", "HEAD"])?;
    // HEAD moves on a checkout; the branch's ref on a commit; packed-refs
    // when refs are packed. `--git-path` finds them in a worktree too
    // (where `.git` is a file). Only existing files are named: cargo
    // would rebuild every time for a missing one.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    Some(revision)
}

/// A git command's trimmed output, if it ran and succeeded.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
