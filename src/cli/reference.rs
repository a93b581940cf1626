//! What the command line says about itself, all from the clap definitions:
//! `--help` with each flag's default, `commandes completions SHELL` and
//! `commandes man [COMMAND]`.
//!
//! The defaults are those of [`Settings::default`], added here to a command
//! used only to print (the one that parses has none: a default there would
//! be a flag given, and would win over config.toml and the environment).

use std::io::Write;

use anyhow::Context;

use crate::config::Settings;

/// `cmd` with the defaults of the flags that override settings, as the
/// help, the manual page and the completions show them.
pub(super) fn documented(cmd: clap::Command) -> clap::Command {
    let defaults = Settings::default();
    let values = [
        ("database_url", defaults.database.url.expose()),
        ("host", defaults.server.host.clone()),
        ("port", defaults.server.port.to_string()),
    ];
    let with_defaults = move |cmd: clap::Command| {
        values.iter().fold(cmd, |cmd, (id, value)| {
            if cmd.get_arguments().any(|a| a.get_id() == id) {
                cmd.mut_arg(*id, |a| a.default_value(value.clone()))
            } else {
                cmd
            }
        })
    };
    let cmd = with_defaults.clone()(cmd);
    cmd.mut_subcommand("serve", with_defaults)
}

/// Prints the completion script of `shell`.
pub(super) fn completions(
    mut cmd: clap::Command,
    shell: clap_complete::Shell,
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "commandes", &mut out);
    print(&out)
}

/// Prints the manual page of commandes, or of its subcommand `name`.
pub(super) fn man(cmd: clap::Command, name: Option<&str>) -> anyhow::Result<()> {
    // Built, so that the subcommands have their full names
    // (`commandes-import`) and the global flags.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let page = match name {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                anyhow::bail!("no subcommand {name:?}: one of {}", names.join(", "));
            }
        },
    };
    // Every page names the build it documents, as `--version` does.
    let source = format!("commandes {}", crate::build_info::LONG_VERSION);
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .source(source)
        .render(&mut out)?;
    print(&out)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a
/// message.
fn print(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}
