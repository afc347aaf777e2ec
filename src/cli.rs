//! The command line's arguments, as clap reads them; `main.rs` runs what they ask for.
//! Also the names the binary answers to: `probegate`, and `kubectl-probegate` as a kubectl
//! plugin (`kubectl probegate ...`), with `kubectl_complete-probegate` for kubectl's shell
//! completion of it (`complete.rs`).

mod complete;

pub(crate) use complete::{completion_script, plugin_completions};

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use std::net::{IpAddr, SocketAddr};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use probegate::offline::{self, OutputFormat};

/// The file name kubectl runs for `kubectl probegate`: a plugin is an executable on PATH
/// named `kubectl-` and the command's name, run with the arguments after it
/// (https://kubernetes.io/docs/tasks/extend-kubectl/kubectl-plugins/).
pub(crate) const PLUGIN: &str = "kubectl-probegate";
/// The file name kubectl runs to complete `kubectl probegate ...` in a shell: the plugin's
/// name behind `kubectl_complete-` (kubectl 1.26+, KEP-2379 "Shell Completion Support";
/// kubectl's pkg/cmd/plugin/plugin_completion.go).
pub(crate) const PLUGIN_COMPLETION: &str = "kubectl_complete-probegate";

/// What the binary was called as: the file name of its argv[0].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invoked {
    /// `probegate`, or any name other than the two below.
    Directly,
    /// `kubectl-probegate`, which kubectl runs for `kubectl probegate`.
    Plugin,
    /// `kubectl_complete-probegate`, which kubectl runs for completions of the plugin.
    PluginCompletion,
}

impl Invoked {
    /// kubectl runs a plugin by the path it found on PATH, as argv[0] too (kubectl's
    /// pkg/cmd/cmd.go, `DefaultPluginHandler.Execute`), so the file name is what counts.
    pub(crate) fn from_argv0(argv0: Option<&OsStr>) -> Invoked {
        match argv0
            .and_then(|a| Path::new(a).file_name())
            .and_then(OsStr::to_str)
        {
            Some(PLUGIN) => Invoked::Plugin,
            Some(PLUGIN_COMPLETION) => Invoked::PluginCompletion,
            _ => Invoked::Directly,
        }
    }
}

/// What to do, from the command line.
pub(crate) enum Invocation {
    Run(Box<Cli>, Invoked),
    /// kubectl asks for the completions of `kubectl probegate WORDS...`; the last word is
    /// the one being typed (empty for a new one).
    CompletePlugin(Vec<String>),
}

/// The command line, parsed as the name the binary was called by asks; a bad one exits 2
/// with clap's message, a help or version request 0.
pub(crate) fn parse() -> Invocation {
    let args: Vec<OsString> = std::env::args_os().collect();
    let invoked = Invoked::from_argv0(args.first().map(OsString::as_os_str));
    if invoked == Invoked::PluginCompletion {
        let words = args
            .iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return Invocation::CompletePlugin(words);
    }
    let matches = command(invoked).get_matches_from(args);
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => Invocation::Run(Box::new(cli), invoked),
        Err(error) => error.exit(),
    }
}

/// The command line's definition, named as usage, help and errors should name it: as a
/// plugin, `kubectl probegate` (otherwise clap takes the name from argv[0]).
pub(crate) fn command(invoked: Invoked) -> clap::Command {
    match invoked {
        Invoked::Directly => Cli::command(),
        Invoked::Plugin | Invoked::PluginCompletion => Cli::command().bin_name("kubectl probegate"),
    }
}

#[derive(Parser)]
#[command(
    name = "probegate",
    version,
    about = "Adds the probes and readiness gates pods lack, and warns when a probe depends on a metrics switch."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Show what the webhook would do to manifests, offline (a lint gate with --check).
    Mutate(MutateArgs),
    /// Run the webhook: HTTPS admission endpoint, health and metrics.
    Serve(ServeArgs),
    /// Make a CA and a serving certificate for the webhook's Service (or, with --client, a
    /// client certificate for the API server).
    Certs(CertsArgs),
    /// Read a live cluster (read-only): what the webhook would change in the workloads
    /// running there, and the probe hazards already running.
    Audit(AuditArgs),
    /// List what probegate knows of well-known software: each catalogue entry, its images,
    /// its probes and its source (with --catalogue, a catalogue of your own over them).
    Catalogue(CatalogueArgs),
    /// Run as a KRM function (kustomize, kpt): a ResourceList on stdin, the same mutated
    /// on stdout, findings in its results; configured by its functionConfig.
    #[command(name = "fn")]
    Function(FunctionArgs),
    /// Print a shell completion script on stdout: `source <(probegate completion bash)`
    /// (docs/cli.md: zsh, fish, and `kubectl probegate`).
    Completion(CompletionArgs),
}

#[derive(clap::Args)]
pub(crate) struct CompletionArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub(crate) shell: CompletionShell,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(clap::Args)]
pub(crate) struct FunctionArgs {
    /// Validate: pass the items on unchanged, report every finding as an error and exit 1
    /// on any (as the functionConfig's `check`).
    #[arg(long)]
    pub(crate) check: bool,
}

#[derive(clap::Args)]
pub(crate) struct CatalogueArgs {
    /// A catalogue of your own (docs/catalogue.md): its entries are added, or replace the
    /// built-in ones of the same name.
    #[arg(long, value_name = "FILE")]
    pub(crate) catalogue: Option<PathBuf>,
    /// Only the entry that matches this image (as a container names it), and why.
    #[arg(long, value_name = "IMAGE")]
    pub(crate) image: Option<String>,
}

#[derive(clap::Args)]
pub(crate) struct AuditArgs {
    /// The kubeconfig file; default: KUBECONFIG, then ~/.kube/config, then in-cluster.
    #[arg(long, value_name = "PATH")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; default: its current context.
    #[arg(long, value_name = "NAME")]
    pub(crate) context: Option<String>,
    /// A namespace to read (repeatable); default: the context's namespace.
    #[arg(
        short = 'n',
        long = "namespace",
        value_name = "NAMESPACE",
        conflicts_with = "all_namespaces"
    )]
    pub(crate) namespaces: Vec<String>,
    /// Read every namespace.
    #[arg(short = 'A', long)]
    pub(crate) all_namespaces: bool,
    /// KEY=VALUE applied to every namespace, under its own annotations, as given to
    /// `serve` (repeatable).
    #[arg(long = "namespace-annotation", value_name = "KEY=VALUE", value_parser = offline::parse_annotation)]
    pub(crate) namespace_annotations: Vec<(String, String)>,
    /// A catalogue of your own (docs/catalogue.md): its entries are added, or replace the
    /// built-in ones of the same name.
    #[arg(long, value_name = "FILE")]
    pub(crate) catalogue: Option<PathBuf>,
    /// What to print.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = AuditFormat::Table)]
    pub(crate) output: AuditFormat,
    /// Exit 1 when there is any finding, 0 when clean (2 on errors, always).
    #[arg(long)]
    pub(crate) check: bool,
    /// Print the suggested start-up budgets instead of the report: `kubectl patch` lines
    /// (with -o yaml or json, the strategic-merge patches alone). Nothing is written.
    #[arg(long)]
    pub(crate) suggest: bool,
    /// How long a readiness gate may stay unset while the containers are ready before it
    /// counts as stuck (10m, 90s, 1h30m).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = probegate::audit::parse_duration)]
    pub(crate) stuck_after: k8s_openapi::jiff::SignedDuration,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum AuditFormat {
    /// One row per finding, grouped by namespace, and a summary line: each finding and
    /// what to do in a few words.
    Table,
    /// The table with the full what to do and the full explanation of each finding.
    Wide,
    /// The AuditReport schema (docs/audit.md), as JSON.
    Json,
    /// The same, as YAML.
    Yaml,
}

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Webhook HTTPS address.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub(crate) addr: SocketAddr,
    /// Health address (plain HTTP): /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub(crate) health_addr: SocketAddr,
    /// Metrics address (plain HTTP): /metrics.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub(crate) metrics_addr: SocketAddr,
    /// Do not serve metrics (health is unaffected).
    #[arg(long)]
    pub(crate) no_metrics: bool,
    /// Serving certificate chain (PEM). Without it and --tls-key-file, a self-signed pair
    /// for localhost is made in a temporary folder.
    #[arg(long, requires = "tls_key_file")]
    pub(crate) tls_cert_file: Option<PathBuf>,
    /// Serving private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long, requires = "tls_cert_file")]
    pub(crate) tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) a webhook client's certificate must chain to: the webhook
    /// then refuses clients without one (health and metrics are unaffected). Reloaded
    /// when the file changes.
    #[arg(long, value_name = "FILE")]
    pub(crate) client_ca_file: Option<PathBuf>,
    /// Do not look for a cluster: namespace annotations come from --namespace-config.
    #[arg(long)]
    pub(crate) standalone: bool,
    /// YAML map of namespace name to annotations, for standalone mode.
    #[arg(long, value_name = "FILE")]
    pub(crate) namespace_config: Option<PathBuf>,
    /// KEY=VALUE applied to every namespace, under its own annotations (repeatable).
    #[arg(long = "namespace-annotation", value_name = "KEY=VALUE", value_parser = offline::parse_annotation)]
    pub(crate) namespace_annotations: Vec<(String, String)>,
    /// A catalogue of your own (docs/catalogue.md) over the built-in one; reloaded when the
    /// file changes (a file that does not validate is refused, and the one in service stays).
    #[arg(long, value_name = "FILE")]
    pub(crate) catalogue: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Log filter, e.g. info or probegate=debug; RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    pub(crate) log_level: String,
    /// How long requests in flight may take to finish after SIGTERM.
    #[arg(long, default_value_t = 15)]
    pub(crate) shutdown_grace_seconds: u64,
    /// After SIGTERM, how long to keep serving while unready before closing the listener,
    /// so endpoints stop sending here first (5 in the shipped manifests).
    #[arg(long, default_value_t = 0)]
    pub(crate) shutdown_delay_seconds: u64,
    /// How long a kept-alive connection may idle between requests before it is closed.
    /// Longer than the API server's own idle timeout (90 s), so it is the client that
    /// closes idle connections, never in the middle of sending a review.
    #[arg(long, default_value_t = 120)]
    pub(crate) idle_timeout_seconds: u64,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
pub(crate) struct CertsArgs {
    /// The webhook's Service name.
    #[arg(long, default_value = "probegate")]
    pub(crate) service: String,
    /// The Service's namespace.
    #[arg(long, default_value = "probegate")]
    pub(crate) namespace: String,
    /// Another DNS name for the certificate (repeatable).
    #[arg(long = "dns", value_name = "NAME")]
    pub(crate) dns: Vec<String>,
    /// An IP address for the certificate (repeatable).
    #[arg(long = "ip", value_name = "ADDR")]
    pub(crate) ips: Vec<IpAddr>,
    /// Where to write ca.crt, ca.key, tls.crt and tls.key (with --client: client-ca.crt,
    /// client-ca.key, client.crt and client.key).
    #[arg(long, default_value = ".")]
    pub(crate) out: PathBuf,
    /// Make a client certificate for the API server to present to the webhook (which
    /// trusts client-ca.crt through --client-ca-file), instead of a serving certificate.
    #[arg(long, conflicts_with_all = ["dns", "ips"])]
    pub(crate) client: bool,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub(crate) days: u32,
    /// Sign with this existing CA (with --ca-key) instead of making a new one, so the
    /// webhook's caBundle (or, with --client, its --client-ca-file) stays the same.
    #[arg(long, requires = "ca_key", value_name = "FILE")]
    pub(crate) ca_cert: Option<PathBuf>,
    /// The existing CA's private key (PEM).
    #[arg(long, requires = "ca_cert", value_name = "FILE")]
    pub(crate) ca_key: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct MutateArgs {
    /// A manifest file, a directory (read recursively: *.yaml, *.yml, *.json) or - for stdin.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub(crate) paths: Vec<PathBuf>,
    /// KEY=VALUE applied to every namespace, under its own annotations (repeatable).
    #[arg(long = "namespace-annotation", value_name = "KEY=VALUE", value_parser = offline::parse_annotation)]
    pub(crate) namespace_annotations: Vec<(String, String)>,
    /// What to print.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Yaml)]
    pub(crate) output: OutputFormat,
    /// Exit 1 when anything would be injected, warned or refused; 0 when clean.
    #[arg(long)]
    pub(crate) check: bool,
    /// Also mutate objects in namespaces the shipped webhook configuration never sends
    /// (kube-system, probegate).
    #[arg(long)]
    pub(crate) include_excluded_namespaces: bool,
    /// A catalogue of your own (docs/catalogue.md): its entries are added, or replace the
    /// built-in ones of the same name.
    #[arg(long, value_name = "FILE")]
    pub(crate) catalogue: Option<PathBuf>,
    /// Print, instead of the manifests, what decided each container's probes: the catalogue
    /// entry or convention that matched, or why none did.
    #[arg(long, conflicts_with = "output")]
    pub(crate) explain: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_it_is_called_by_is_argv0s_file_name() {
        // (case, argv[0], what it is called as)
        let cases = [
            ("by its own name", Some("probegate"), Invoked::Directly),
            (
                "a path",
                Some("/usr/local/bin/probegate"),
                Invoked::Directly,
            ),
            ("renamed", Some("./pg"), Invoked::Directly),
            ("no argv[0]", None, Invoked::Directly),
            (
                "kubectl runs the plugin by its path",
                Some("/home/me/bin/kubectl-probegate"),
                Invoked::Plugin,
            ),
            (
                "the plugin on PATH",
                Some("kubectl-probegate"),
                Invoked::Plugin,
            ),
            (
                "kubectl's completion of it",
                Some("/home/me/bin/kubectl_complete-probegate"),
                Invoked::PluginCompletion,
            ),
            (
                "another plugin's name",
                Some("kubectl-probegate-old"),
                Invoked::Directly,
            ),
        ];
        for (case, argv0, invoked) in cases {
            assert_eq!(
                Invoked::from_argv0(argv0.map(OsStr::new)),
                invoked,
                "{case}"
            );
        }
    }
}
