//! Completions: the shell scripts `probegate completion` prints (clap_complete's), and
//! `kubectl probegate ...` completed in kubectl's protocol for plugins. For a plugin
//! `kubectl-NAME`, kubectl runs `kubectl_complete-NAME` with the words typed after
//! `kubectl NAME`, the last one being the word typed so far (empty for a new one), and reads
//! one candidate a line, then optionally `:DIRECTIVE`, a Cobra shell completion directive
//! (kubectl's pkg/cmd/plugin/plugin_completion.go, `pluginCompletion`). A candidate may be
//! followed by a tab and its description, as Cobra's own completions are (Cobra's
//! shell_completions.md, "Descriptions for completions").
//!
//! The candidates come from the same clap definition the binary parses with: subcommands,
//! options, and the values an option or argument allows.
//!
//! Why not clap_complete's own engine (`clap_complete::engine::complete`): in 4.6 it is
//! behind the `unstable-dynamic` feature, whose API may change in any release, and it lists
//! file names itself where this hands paths back to the shell (directive 0), which knows
//! `~`, folders and quoting. The cases in the tests below and in tests/completion_plugin.rs
//! are the table an engine swap would have to pass.

use clap::{Arg, Command, CommandFactory as _, ValueHint};

use super::{Cli, CompletionShell, Invoked, PLUGIN};

// The directives' values are Cobra's `ShellCompDirective` constants (Cobra's completions.go).
/// Cobra's `ShellCompDirectiveDefault`: the shell may offer file names too.
const FILES: u8 = 0;
/// Cobra's `ShellCompDirectiveNoFileComp`: only the candidates given.
const NO_FILES: u8 = 4;

/// What the next word is, after the words already typed.
enum Next<'a> {
    /// A value of this option.
    Value(&'a Arg),
    /// A subcommand, an option, or the command's next positional argument (this many of
    /// them are typed already).
    Word {
        cmd: &'a Command,
        positionals: usize,
    },
}

/// The completion script for `shell`, for the command as the shell runs it: `probegate`,
/// or `kubectl-probegate` when called by that name (`kubectl probegate` itself is
/// completed through kubectl, by `kubectl_complete-probegate`).
pub(crate) fn completion_script(
    shell: CompletionShell,
    invoked: Invoked,
) -> Result<String, std::io::Error> {
    let mut cmd = Cli::command();
    let name = match invoked {
        Invoked::Directly => cmd.get_name().to_owned(),
        Invoked::Plugin | Invoked::PluginCompletion => PLUGIN.to_owned(),
    };
    cmd.set_bin_name(name);
    cmd.build();
    let generator = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    // try_generate, where clap_complete's `generate` would panic on an error.
    clap_complete::Generator::try_generate(&generator, &cmd, &mut script)?;
    Ok(String::from_utf8_lossy(&script).into_owned())
}

/// The candidates for kubectl's completion of `kubectl probegate WORDS...`, in its
/// protocol.
pub(crate) fn plugin_completions(words: &[String]) -> String {
    let mut cmd = Cli::command();
    cmd.build();
    answer(&cmd, words)
}

/// The answer for `words`: candidates, one a line, and the directive.
fn answer(root: &Command, words: &[String]) -> String {
    let (current, typed) = match words.split_last() {
        Some((current, typed)) => (current.as_str(), typed),
        None => ("", &[][..]),
    };
    let (candidates, directive) = match next(root, typed) {
        Next::Value(arg) => values(arg, current),
        Next::Word { cmd, positionals } => word(cmd, positionals, current),
    };
    let mut out = String::new();
    for (candidate, help) in candidates {
        out.push_str(&candidate);
        if !help.is_empty() {
            out.push('\t');
            out.push_str(&help);
        }
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    out
}

/// Follows the typed words through subcommands and options.
fn next<'a>(root: &'a Command, typed: &[String]) -> Next<'a> {
    let mut cmd = root;
    let mut positionals = 0;
    let mut pending: Option<&Arg> = None;
    let mut options_done = false;
    for word in typed {
        if pending.take().is_some() {
            continue;
        }
        if word == "--" && !options_done {
            options_done = true;
            continue;
        }
        if options_done || !word.starts_with('-') || word == "-" {
            match cmd.find_subcommand(word) {
                Some(sub) if positionals == 0 && !options_done => cmd = sub,
                _ => positionals += 1,
            }
            continue;
        }
        let arg = match word.strip_prefix("--") {
            // `--output=json` carries its value.
            Some(long) if long.contains('=') => None,
            Some(long) => cmd.get_arguments().find(|a| a.get_long() == Some(long)),
            // `-n` alone; `-nshop` carries its value; in a cluster (`-Ao`) flags come first,
            // and an option that takes a value takes the rest of the word, or the next one.
            None => {
                let mut arg = None;
                let mut letters = word.chars().skip(1);
                while let Some(letter) = letters.next() {
                    let found = cmd.get_arguments().find(|a| a.get_short() == Some(letter));
                    if found.is_some_and(|a| a.get_action().takes_values()) {
                        arg = found.filter(|_| letters.next().is_none());
                        break;
                    }
                }
                arg
            }
        };
        pending = arg.filter(|a| a.get_action().takes_values());
    }
    match pending {
        Some(arg) => Next::Value(arg),
        None => Next::Word { cmd, positionals },
    }
}

type Candidates = Vec<(String, String)>;

/// Candidates for the word being typed where a subcommand, option or argument may come.
fn word(cmd: &Command, positionals: usize, current: &str) -> (Candidates, u8) {
    // `--output=w` and `-o=w`: the candidates are the bare values, since the shell scripts
    // kubectl makes with Cobra take the `--flag=` part off the word before matching and put
    // it back themselves (bash: `cur="${cur#*=}"`; zsh and fish: their `flagPrefix`).
    if let Some((name, value)) = current.split_once('=').filter(|_| current.starts_with('-')) {
        let arg = match name.strip_prefix("--") {
            Some(long) => cmd.get_arguments().find(|a| a.get_long() == Some(long)),
            None => {
                let mut letters = name.chars().skip(1);
                let short = letters.next();
                cmd.get_arguments()
                    .find(|a| a.get_short() == short)
                    .filter(|_| letters.next().is_none())
            }
        };
        return match arg {
            Some(arg) => values(arg, value),
            None => (Vec::new(), NO_FILES),
        };
    }
    if current.starts_with('-') {
        let options = cmd
            .get_arguments()
            .filter(|a| !a.is_positional() && !a.is_hide_set())
            .filter_map(|a| Some((format!("--{}", a.get_long()?), first_line(a.get_help()))))
            .filter(|(option, _)| option.starts_with(current))
            .collect();
        return (options, NO_FILES);
    }
    if cmd.has_subcommands() {
        let subcommands = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name().starts_with(current))
            .map(|s| (s.get_name().to_owned(), first_line(s.get_about())))
            .collect();
        return (subcommands, NO_FILES);
    }
    match cmd.get_positionals().nth(positionals) {
        Some(arg) => values(arg, current),
        None => (Vec::new(), NO_FILES),
    }
}

/// The values `arg` allows that start with `current`; for a path, the shell's own file
/// names.
fn values(arg: &Arg, current: &str) -> (Candidates, u8) {
    let allowed: Candidates = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set() && v.get_name().starts_with(current))
        .map(|v| (v.get_name().to_owned(), first_line(v.get_help())))
        .collect();
    if !allowed.is_empty() {
        return (allowed, NO_FILES);
    }
    match arg.get_value_hint() {
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath => (Vec::new(), FILES),
        _ => (Vec::new(), NO_FILES),
    }
}

/// A help text's first line, without tabs (a tab would start the description).
fn first_line(help: Option<&clap::builder::StyledStr>) -> String {
    help.map(|h| h.to_string())
        .and_then(|h| h.lines().next().map(|l| l.replace('\t', " ")))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand, in the order `--help` lists them, and the directive.
    const EVERY_SUBCOMMAND: &[&str] = &[
        "mutate",
        "serve",
        "certs",
        "audit",
        "catalogue",
        "fn",
        "completion",
        "help",
        ":4",
    ];

    fn complete(words: &[&str]) -> Vec<String> {
        let mut cmd = crate::cli::Cli::command();
        cmd.build();
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        answer(&cmd, &words)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn candidates_follow_the_command_line() {
        // (case, words after `kubectl probegate`, the candidates and directive)
        let cases: [(&str, &[&str], &[&str]); 15] = [
            ("nothing typed: every subcommand", &[""], EVERY_SUBCOMMAND),
            ("a subcommand's start", &["au"], &["audit", ":4"]),
            (
                "a subcommand's options",
                &["audit", "--all"],
                &["--all-namespaces", ":4"],
            ),
            (
                "an option's values",
                &["audit", "-o", ""],
                &["table", "wide", "json", "yaml", ":4"],
            ),
            (
                "an option's values, after its long name",
                &["audit", "--output", "y"],
                &["yaml", ":4"],
            ),
            (
                "a value joined to the option: the bare value",
                &["audit", "--output=w"],
                &["wide", ":4"],
            ),
            (
                "a value joined to the short option",
                &["audit", "-o=y"],
                &["yaml", ":4"],
            ),
            (
                "a value given: the next word is anything again",
                &["audit", "-n", "shop", "--che"],
                &["--check", ":4"],
            ),
            (
                "a path: the shell's file names",
                &["mutate", "-f", ""],
                &[":0"],
            ),
            (
                "a positional argument's values",
                &["completion", ""],
                &["bash", "zsh", "fish", ":4"],
            ),
            (
                "an option ending a cluster of flags",
                &["audit", "-Ao", "y"],
                &["yaml", ":4"],
            ),
            (
                "a cluster whose option carries its value",
                &["audit", "-Aoyaml", "--che"],
                &["--check", ":4"],
            ),
            (
                "a value nobody can guess",
                &["audit", "--context", ""],
                &[":4"],
            ),
            ("nothing matches", &["zz"], &[":4"]),
            ("no words at all", &[], EVERY_SUBCOMMAND),
        ];
        for (case, words, expected) in cases {
            assert_eq!(complete(words), expected.to_vec(), "{case}");
        }
    }

    #[test]
    fn subcommands_carry_their_description_after_a_tab() {
        let mut cmd = crate::cli::Cli::command();
        cmd.build();
        let answer = answer(&cmd, &["aud".to_owned()]);
        let (name, help) = answer.lines().next().unwrap().split_once('\t').unwrap();
        assert_eq!(name, "audit");
        assert!(help.starts_with("Read a live cluster"), "{help}");
    }
}
