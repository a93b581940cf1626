//! What this binary is: its version and the git revision it was built from
//! (recorded by `build.rs`; `unknown` for a build without git). `--version`,
//! `GET /` and the `commandes_build_info` metric all say it from here.

/// The crate's version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The short git hash of the build's `HEAD`, or `unknown`.
pub const REVISION: &str = env!("COMMANDES_REVISION");

/// `VERSION (REVISION)`, what `commandes --version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("COMMANDES_REVISION"),
    ")"
);
