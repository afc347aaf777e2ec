//! The CLI's own face, through the real binary: `probegate completion bash|zsh|fish`, checked
//! by the shells themselves where installed (bash sources the script and completes), and
//! probegate as a kubectl plugin, named `kubectl-probegate` on PATH and run by the real
//! `kubectl`, with `kubectl_complete-probegate` answering kubectl's completion of it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Every subcommand, clap's `help` too, in the order `--help` lists them.
const SUBCOMMANDS: [&str; 8] = [
    "mutate",
    "serve",
    "certs",
    "audit",
    "catalogue",
    "fn",
    "completion",
    "help",
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn probegate(args: &[&str]) -> Output {
    common::probegate(Path::new(env!("CARGO_MANIFEST_DIR")), args, None)
}

/// Whether `program` is on PATH.
fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A folder holding the binary under the plugin's names, as a user installs it: a symlink
/// each, and kubectl-probegate also as a copy in a folder of its own.
struct Installed {
    dir: tempfile::TempDir,
    copied: tempfile::TempDir,
}

impl Installed {
    fn new() -> Installed {
        let binary = Path::new(env!("CARGO_BIN_EXE_probegate"));
        let dir = tempfile::tempdir().unwrap();
        for name in ["kubectl-probegate", "kubectl_complete-probegate"] {
            std::os::unix::fs::symlink(binary, dir.path().join(name)).unwrap();
        }
        // A file of its own, not a symlink: a hard link where the folders share a
        // filesystem (the debug binary is large, and several tests make one), else a copy.
        let copied = tempfile::tempdir().unwrap();
        let file = copied.path().join("kubectl-probegate");
        if std::fs::hard_link(binary, &file).is_err() {
            std::fs::copy(binary, &file).unwrap();
        }
        Installed { dir, copied }
    }

    fn plugin(&self) -> PathBuf {
        self.dir.path().join("kubectl-probegate")
    }

    /// PATH with the plugin's folder first, and without folders holding a plugin of the
    /// same name: one installed as docs/cli.md says would overshadow this one, and kubectl
    /// plugin list exits 1 over it.
    fn path(&self) -> String {
        let others = std::env::var("PATH").unwrap_or_default();
        let others = others.split(':').filter(|folder| {
            ["kubectl-probegate", "kubectl_complete-probegate"]
                .iter()
                .all(|name| !Path::new(folder).join(name).exists())
        });
        std::iter::once(self.dir.path().display().to_string())
            .chain(others.map(String::from))
            .collect::<Vec<_>>()
            .join(":")
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        assert!(
            installed("kubectl"),
            "kubectl is needed on PATH (the end-to-end suite drives it too)"
        );
        let mut command = Command::new("kubectl");
        command
            .args(args)
            .env("PATH", self.path())
            .env_remove("KUBECONFIG");
        common::output(command, stdin)
    }
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

/// That `out` exited `code` and said `says` on stdout or stderr.
fn answered(case: &str, out: &Output, code: i32, says: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{case}: {}",
        text(&out.stderr)
    );
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(said.contains(says), "{case}: {said}");
}

#[test]
fn each_shell_gets_a_script_naming_every_subcommand() {
    // (shell, the program that checks the script's syntax, its arguments before the file)
    let cases: [(&str, &str, &[&str]); 3] = [
        ("bash", "bash", &["-n"]),
        ("zsh", "zsh", &["-n"]),
        ("fish", "fish", &["--no-execute"]),
    ];
    for (shell, checker, check_args) in cases {
        let out = probegate(&["completion", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for name in SUBCOMMANDS.iter().chain(&["all-namespaces", "wide"]) {
            assert!(script.contains(name), "{shell}: {name} not in the script");
        }
        assert!(
            installed(checker),
            "{checker} is needed to check the {shell} script (Debian: apt-get install {checker}; \
             .ci/run installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("probegate.{shell}"));
        std::fs::write(&file, &script).unwrap();
        let checked = Command::new(checker)
            .args(check_args)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{shell}: {checker} refuses the script: {}",
            text(&checked.stderr)
        );
    }
}

/// What bash offers for `words` (the last one being typed) after running `setup` (which
/// defines the completion function), calling `function` as bash calls a completion
/// function: the command, the word, the word before it; with `path` as PATH.
fn bash_offers(setup: &str, function: &str, words: &[&str], path: &str) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let program = format!(
        "{setup}\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\nCOMP_LINE='{}'\nCOMP_POINT=${{#COMP_LINE}}\n{function} '{}' '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        quoted.join(" "),
        words.join(" "),
        words[0],
        words[cword],
        words[cword - 1],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .env("PATH", path)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "bash: {}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// What bash offers for `words` with `script`, a script of `probegate completion bash`,
/// sourced.
fn bash_completes(script: &str, words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("completion.bash");
    std::fs::write(&file, script).unwrap();
    let function = format!("_{}", words[0].replace('-', "__"));
    let path = std::env::var("PATH").unwrap_or_default();
    bash_offers(
        &format!("source '{}'", file.display()),
        &function,
        words,
        &path,
    )
}

#[test]
fn bash_completes_subcommands_options_and_values() {
    let direct = text(&probegate(&["completion", "bash"]).stdout);
    let installed = Installed::new();
    let as_plugin = text(&run(&installed.plugin(), &["completion", "bash"]).stdout);
    assert!(
        as_plugin.contains("complete -F _kubectl__probegate")
            && as_plugin.contains(" kubectl-probegate\n"),
        "as kubectl-probegate, the script completes that command"
    );
    struct Case<'a> {
        name: &'a str,
        script: &'a str,
        /// The words typed, the last one being completed.
        words: &'a [&'a str],
        offers: &'a [&'a str],
        lacks: &'a [&'a str],
    }
    let cases = [
        Case {
            name: "a subcommand",
            script: &direct,
            words: &["probegate", "au"],
            offers: &["audit"],
            lacks: &["mutate"],
        },
        Case {
            name: "every subcommand",
            script: &direct,
            words: &["probegate", ""],
            offers: &SUBCOMMANDS,
            lacks: &[],
        },
        Case {
            name: "audit's formats",
            script: &direct,
            words: &["probegate", "audit", "-o", ""],
            offers: &["table", "wide", "json", "yaml"],
            lacks: &["sarif"],
        },
        Case {
            name: "an option",
            script: &direct,
            words: &["probegate", "mutate", "--include"],
            offers: &["--include-excluded-namespaces"],
            lacks: &[],
        },
        Case {
            name: "a path: file names (run from the crate's folder)",
            script: &direct,
            words: &["probegate", "mutate", "-f", "exam"],
            offers: &["examples"],
            lacks: &[],
        },
        Case {
            name: "the shells",
            script: &direct,
            words: &["probegate", "completion", ""],
            offers: &["bash", "zsh", "fish"],
            lacks: &["powershell"],
        },
        Case {
            name: "the plugin's own name",
            script: &as_plugin,
            words: &["kubectl-probegate", "au"],
            offers: &["audit"],
            lacks: &[],
        },
    ];
    for Case {
        name: case,
        script,
        words,
        offers,
        lacks,
    } in cases
    {
        let offered = bash_completes(script, words);
        for word in offers {
            assert!(
                offered.iter().any(|o| o == word),
                "{case}: {word} not in {offered:?}"
            );
        }
        for word in lacks {
            assert!(
                !offered.iter().any(|o| o == word),
                "{case}: {word} in {offered:?}"
            );
        }
    }
}

#[test]
fn an_unknown_shell_is_refused_with_exit_2() {
    // (case, arguments, what stderr says)
    let cases: [(&str, &[&str], &str); 2] = [
        (
            "a shell it does not know",
            &["completion", "powershell"],
            "invalid value 'powershell' for '<SHELL>'\n  [possible values: bash, zsh, fish]",
        ),
        (
            "no shell",
            &["completion"],
            "the following required arguments were not provided:\n  <SHELL>",
        ),
    ];
    for (case, args, says) in cases {
        let out = probegate(args);
        assert_eq!(out.status.code(), Some(2), "{case}");
        assert!(
            text(&out.stderr).contains(says),
            "{case}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{case}: no script");
    }
}

#[test]
fn named_kubectl_probegate_it_answers_as_kubectl_probegate() {
    let installed = Installed::new();
    let direct = PathBuf::from(env!("CARGO_BIN_EXE_probegate"));
    let copied = installed.copied.path().join("kubectl-probegate");
    // (case, binary, arguments, exit code, stdout or stderr must say)
    let cases: [(&str, &Path, &[&str], i32, &str); 7] = [
        (
            "help",
            &installed.plugin(),
            &["--help"],
            0,
            "Usage: kubectl probegate <COMMAND>",
        ),
        (
            "help, a copy",
            &copied,
            &["--help"],
            0,
            "Usage: kubectl probegate <COMMAND>",
        ),
        (
            "a subcommand's help",
            &installed.plugin(),
            &["audit", "--help"],
            0,
            "Usage: kubectl probegate audit [OPTIONS]",
        ),
        (
            "an error",
            &installed.plugin(),
            &["nope"],
            2,
            "error: unrecognized subcommand 'nope'\n\nUsage: kubectl probegate <COMMAND>",
        ),
        (
            "a missing argument",
            &installed.plugin(),
            &["mutate"],
            2,
            "Usage: kubectl probegate mutate --filename <PATH>",
        ),
        (
            "the version is probegate's",
            &installed.plugin(),
            &["--version"],
            0,
            concat!("probegate ", env!("CARGO_PKG_VERSION")),
        ),
        (
            "by its own name",
            &direct,
            &["--help"],
            0,
            "Usage: probegate <COMMAND>",
        ),
    ];
    for (case, binary, args, code, says) in cases {
        answered(case, &run(binary, args), code, says);
    }
}

#[test]
fn kubectl_finds_and_runs_the_plugin() {
    let installed = Installed::new();
    let out = installed.kubectl(&["plugin", "list"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(
        listed.contains(&installed.plugin().display().to_string()),
        "kubectl plugin list: {listed}"
    );

    let manifest = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/plain-web-with-service/input.yaml"),
    )
    .unwrap();
    let direct = common::probegate(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &["mutate", "-f", "-", "--check"],
        Some(&manifest),
    );
    // Arguments and stdin reach it, and its answer comes back whole: as run directly.
    let through = installed.kubectl(
        &["probegate", "mutate", "-f", "-", "--check"],
        Some(&manifest),
    );
    assert_eq!(
        (
            through.status.code(),
            text(&through.stdout),
            text(&through.stderr)
        ),
        (
            direct.status.code(),
            text(&direct.stdout),
            text(&direct.stderr)
        ),
        "kubectl probegate mutate answers as probegate mutate"
    );
    assert_eq!(direct.status.code(), Some(1), "the fixture has findings");

    // (case, kubectl's arguments, exit code, what stdout or stderr says)
    let cases: [(&str, &[&str], i32, &str); 3] = [
        (
            "help",
            &["probegate", "--help"],
            0,
            "Usage: kubectl probegate <COMMAND>",
        ),
        (
            "a bad value: clap's message and exit code",
            &["probegate", "audit", "-o", "bad"],
            2,
            "invalid value 'bad' for '--output <OUTPUT>'",
        ),
        (
            "its own completion script",
            &["probegate", "completion", "bash"],
            0,
            "complete -F _kubectl__probegate",
        ),
    ];
    for (case, args, code, says) in cases {
        answered(case, &installed.kubectl(args, None), code, says);
    }
}

#[test]
fn kubectl_completes_the_plugin_through_kubectl_complete_probegate() {
    let installed = Installed::new();
    // (case, words after `kubectl __complete probegate`, candidates, kubectl's directive)
    let cases: [(&str, &[&str], &[&str], &str); 5] = [
        (
            "a subcommand",
            &["au"],
            &["audit"],
            "ShellCompDirectiveNoFileComp",
        ),
        (
            "every subcommand",
            &[""],
            &SUBCOMMANDS,
            "ShellCompDirectiveNoFileComp",
        ),
        (
            "audit's formats",
            &["audit", "-o", ""],
            &["table", "wide", "json", "yaml"],
            "ShellCompDirectiveNoFileComp",
        ),
        (
            "an option",
            &["audit", "--all-n"],
            &["--all-namespaces"],
            "ShellCompDirectiveNoFileComp",
        ),
        (
            "a file: the shell's file names",
            &["mutate", "-f", ""],
            &[],
            "ShellCompDirectiveDefault",
        ),
    ];
    for (case, words, candidates, directive) in cases {
        let mut args = vec!["__complete", "probegate"];
        args.extend(words);
        let out = installed.kubectl(&args, None);
        assert_eq!(out.status.code(), Some(0), "{case}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let offered: Vec<&str> = stdout
            .lines()
            .filter(|l| !l.starts_with(':'))
            .map(|l| l.split('\t').next().unwrap_or_default())
            .collect();
        assert_eq!(offered, candidates, "{case}: {stdout}");
        assert!(
            text(&out.stderr).contains(&format!("Completion ended with directive: {directive}")),
            "{case}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn bash_completes_kubectl_probegate_through_kubectls_own_script() {
    // kubectl's bash completion is built on bash-completion's functions.
    let bash_completion = Path::new("/usr/share/bash-completion/bash_completion");
    assert!(
        bash_completion.is_file(),
        "bash-completion is not installed, and kubectl's bash script needs it \
         (Debian: apt-get install bash-completion; .ci/run installs it)"
    );
    let installed = Installed::new();
    // (case, the line typed, what bash must offer)
    let cases: [(&str, &[&str], &[&str]); 3] = [
        ("a subcommand", &["kubectl", "probegate", "au"], &["audit"]),
        (
            "audit's formats",
            &["kubectl", "probegate", "audit", "-o", ""],
            &["table", "wide", "json", "yaml"],
        ),
        (
            "a format joined to its option",
            &["kubectl", "probegate", "audit", "--output=w"],
            &["wide"],
        ),
    ];
    let setup = format!(
        "source '{}'\nsource <(kubectl completion bash)",
        bash_completion.display()
    );
    for (case, words, offers) in cases {
        let offered = bash_offers(&setup, "__start_kubectl", words, &installed.path());
        assert_eq!(offered, offers.to_vec(), "{case}");
    }
}
