//! The `probegate` command line: parses arguments and starts the part asked for.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use probegate::offline::{self, OutputFormat};

#[derive(Parser)]
#[command(
    name = "probegate",
    version,
    about = "Adds the probes and readiness gates pods lack, and warns when a probe depends on a metrics switch."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what the webhook would do to manifests, offline (a lint gate with --check).
    Mutate(MutateArgs),
}

#[derive(clap::Args)]
struct MutateArgs {
    /// A manifest file, a directory (read recursively: *.yaml, *.yml, *.json) or - for stdin.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,
    /// KEY=VALUE applied to every namespace, under its own annotations (repeatable).
    #[arg(long = "namespace-annotation", value_name = "KEY=VALUE", value_parser = offline::parse_annotation)]
    namespace_annotations: Vec<(String, String)>,
    /// What to print.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Yaml)]
    output: OutputFormat,
    /// Exit 1 when anything would be injected, warned or refused; 0 when clean.
    #[arg(long)]
    check: bool,
}

/// Exit code for bad input, distinct from `--check`'s 1.
const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Mutate(args) => mutate(args),
    }
}

fn mutate(args: MutateArgs) -> ExitCode {
    let result = probegate::manifest::read_paths(&args.paths, &mut std::io::stdin().lock())
        .map_err(offline::OfflineError::from)
        .and_then(|documents| {
            let options = offline::Options {
                format: args.output,
                check: args.check,
                namespace_annotations: args
                    .namespace_annotations
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
            };
            offline::run(documents, &options)
        });
    match result {
        Ok(report) => {
            let mut stderr = std::io::stderr().lock();
            for line in &report.stderr {
                let _ = writeln!(stderr, "{line}");
            }
            // A closed stdout (`| head`) is not worth a panic.
            let _ = std::io::stdout().lock().write_all(report.stdout.as_bytes());
            ExitCode::from(report.exit_code)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
