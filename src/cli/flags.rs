//! The effective value of every flag of `fleetmon serve`, for
//! `/api/v1/status/flags`: read from clap's own definitions and matches, so
//! a flag added to `ServeArgs` shows up without being listed here. Values
//! are as clap holds them (given on the command line, from the environment,
//! or the default); a flag with neither is `""`, as Prometheus shows it.

use std::collections::BTreeMap;

use clap::{ArgAction, ArgMatches, Command};

/// What a flag that may hold a credential shows instead of its value.
const MASK: &str = "<secret>";

/// Every long flag of `command` (without `--`) and its value in `matches`,
/// which must come from `command`. Help and version are actions, not
/// settings, and are left out; flags that may hold a credential (see
/// [`is_secret`]) show `<secret>`.
pub fn effective(command: &Command, matches: &ArgMatches) -> BTreeMap<String, String> {
    let mut flags = BTreeMap::new();
    for arg in command.get_arguments() {
        let Some(name) = arg.get_long() else {
            continue;
        };
        if matches!(arg.get_action(), ArgAction::Help | ArgAction::Version) {
            continue;
        }
        let value = if is_secret(name) {
            MASK.to_string()
        } else {
            // `try_`: an argument of another subcommand is "no value", not a panic.
            match matches.try_get_raw(arg.get_id().as_str()) {
                Ok(Some(values)) => values
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(","),
                _ => String::new(),
            }
        };
        flags.insert(name.to_string(), value);
    }
    flags
}

/// Whether a flag's name says it may hold a credential.
fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "token", "secret"]
        .iter()
        .any(|word| name.contains(word))
}

/// The flags of the `serve` invocation in `matches` (the top level, or the
/// `serve` subcommand), from the built `command` they were parsed with.
pub fn of_serve(command: &Command, matches: &ArgMatches) -> BTreeMap<String, String> {
    match matches.subcommand() {
        Some(("serve", sub)) => match command.find_subcommand("serve") {
            Some(serve) => effective(serve, sub),
            None => BTreeMap::new(),
        },
        _ => effective(command, matches),
    }
}

#[cfg(test)]
mod tests {
    use clap::{Arg, CommandFactory};

    use super::*;
    use crate::cli::Cli;

    fn flags_of(args: &[&str]) -> BTreeMap<String, String> {
        let mut command = Cli::command();
        command.build();
        let matches = command
            .clone()
            .try_get_matches_from(args)
            .unwrap_or_else(|e| panic!("{e}"));
        of_serve(&command, &matches)
    }

    #[test]
    fn every_serve_flag_with_its_effective_value() {
        for args in [
            &["fleetmon", "--query.timeout", "30s"][..],
            &["fleetmon", "serve", "--query.timeout=30s"][..],
        ] {
            let flags = flags_of(args);
            assert_eq!(flags["query.timeout"], "30s", "{args:?}");
            // Defaults, booleans and unset options.
            assert_eq!(flags["query.lookback-delta"], "5m");
            assert_eq!(flags["storage.wal-compression"], "true");
            assert_eq!(flags["web.anonymous-read"], "false");
            assert_eq!(flags["config.file"], "");
            // The global log flags are serve flags too.
            assert_eq!(flags["log.level"], "info");
            assert!(!flags.contains_key("help") && !flags.contains_key("version"));
            assert!(flags.keys().all(|k| !k.starts_with('-')));
        }
        // Every flag of `serve`, none of the other subcommands'.
        let mut serve = Cli::command();
        serve.build();
        let serve = serve.find_subcommand("serve").cloned().unwrap();
        let longs = serve
            .get_arguments()
            .filter(|a| !matches!(a.get_action(), ArgAction::Help | ArgAction::Version))
            .filter_map(|a| a.get_long())
            .count();
        assert_eq!(flags_of(&["fleetmon"]).len(), longs);
        assert!(!flags_of(&["fleetmon"]).contains_key("server"));
    }

    #[test]
    fn credentials_are_masked() {
        let command = Command::new("t")
            .arg(Arg::new("password").long("admin.password"))
            .arg(Arg::new("token").long("remote.Token-file"))
            .arg(Arg::new("secret").long("client-secret"))
            .arg(Arg::new("user").long("admin.user"));
        let matches = command.clone().get_matches_from([
            "t",
            "--admin.password=hunter2",
            "--remote.Token-file=/t",
            "--client-secret=s",
            "--admin.user=me",
        ]);
        let flags = effective(&command, &matches);
        assert_eq!(flags["admin.password"], "<secret>");
        assert_eq!(flags["remote.Token-file"], "<secret>");
        assert_eq!(flags["client-secret"], "<secret>");
        assert_eq!(flags["admin.user"], "me");
    }
}
