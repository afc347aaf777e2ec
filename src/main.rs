//! The `probegate` command line: parses arguments and starts the part asked for.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use probegate::admission::Admission;
use probegate::certs::{self, Names};
use probegate::health::Health;
use probegate::metrics::Metrics;
use probegate::namespace_cache::{ClusterCache, Directory};
use probegate::offline::{self, OutputFormat};
use probegate::server::{Limits, Listeners, Server};
use probegate::tls::{CertStore, ClientCaStore};

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
    /// Run the webhook: HTTPS admission endpoint, health and metrics.
    Serve(ServeArgs),
    /// Make a CA and a serving certificate for the webhook's Service (or, with --client, a
    /// client certificate for the API server).
    Certs(CertsArgs),
    /// Read a live cluster (read-only): what the webhook would change in the workloads
    /// running there, and the probe hazards already running.
    Audit(AuditArgs),
}

#[derive(clap::Args)]
struct AuditArgs {
    /// The kubeconfig file; default: KUBECONFIG, then ~/.kube/config, then in-cluster.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; default: its current context.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// A namespace to read (repeatable); default: the context's namespace.
    #[arg(
        short = 'n',
        long = "namespace",
        value_name = "NAMESPACE",
        conflicts_with = "all_namespaces"
    )]
    namespaces: Vec<String>,
    /// Read every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// KEY=VALUE applied to every namespace, under its own annotations, as given to
    /// `serve` (repeatable).
    #[arg(long = "namespace-annotation", value_name = "KEY=VALUE", value_parser = offline::parse_annotation)]
    namespace_annotations: Vec<(String, String)>,
    /// What to print.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = AuditFormat::Table)]
    output: AuditFormat,
    /// Exit 1 when there is any finding, 0 when clean (2 on errors, always).
    #[arg(long)]
    check: bool,
    /// How long a readiness gate may stay unset while the containers are ready before it
    /// counts as stuck (10m, 90s, 1h30m).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = probegate::audit::parse_duration)]
    stuck_after: k8s_openapi::jiff::SignedDuration,
}

#[derive(Clone, Copy, ValueEnum)]
enum AuditFormat {
    /// One row per finding, grouped by namespace, and a summary line.
    Table,
    /// The AuditReport schema (README.md), as JSON.
    Json,
    /// The same, as YAML.
    Yaml,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Webhook HTTPS address.
    #[arg(long, default_value = "0.0.0.0:8443")]
    addr: SocketAddr,
    /// Health address (plain HTTP): /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8081")]
    health_addr: SocketAddr,
    /// Metrics address (plain HTTP): /metrics.
    #[arg(long, default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// Do not serve metrics (health is unaffected).
    #[arg(long)]
    no_metrics: bool,
    /// Serving certificate chain (PEM). Without it and --tls-key-file, a self-signed pair
    /// for localhost is made in a temporary folder.
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// Serving private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) a webhook client's certificate must chain to: the webhook
    /// then refuses clients without one (health and metrics are unaffected). Reloaded
    /// when the file changes.
    #[arg(long, value_name = "FILE")]
    client_ca_file: Option<PathBuf>,
    /// Do not look for a cluster: namespace annotations come from --namespace-config.
    #[arg(long)]
    standalone: bool,
    /// YAML map of namespace name to annotations, for standalone mode.
    #[arg(long, value_name = "FILE")]
    namespace_config: Option<PathBuf>,
    /// KEY=VALUE applied to every namespace, under its own annotations (repeatable).
    #[arg(long = "namespace-annotation", value_name = "KEY=VALUE", value_parser = offline::parse_annotation)]
    namespace_annotations: Vec<(String, String)>,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter, e.g. info or probegate=debug; RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// How long requests in flight may take to finish after SIGTERM.
    #[arg(long, default_value_t = 15)]
    shutdown_grace_seconds: u64,
    /// After SIGTERM, how long to keep serving while unready before closing the listener,
    /// so endpoints stop sending here first (5 in the shipped manifests).
    #[arg(long, default_value_t = 0)]
    shutdown_delay_seconds: u64,
    /// How long a kept-alive connection may idle between requests before it is closed.
    /// Longer than the API server's own idle timeout (90 s), so it is the client that
    /// closes idle connections, never in the middle of sending a review.
    #[arg(long, default_value_t = 120)]
    idle_timeout_seconds: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct CertsArgs {
    /// The webhook's Service name.
    #[arg(long, default_value = "probegate")]
    service: String,
    /// The Service's namespace.
    #[arg(long, default_value = "probegate")]
    namespace: String,
    /// Another DNS name for the certificate (repeatable).
    #[arg(long = "dns", value_name = "NAME")]
    dns: Vec<String>,
    /// An IP address for the certificate (repeatable).
    #[arg(long = "ip", value_name = "ADDR")]
    ips: Vec<IpAddr>,
    /// Where to write ca.crt, ca.key, tls.crt and tls.key (with --client: client-ca.crt,
    /// client-ca.key, client.crt and client.key).
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Make a client certificate for the API server to present to the webhook (which
    /// trusts client-ca.crt through --client-ca-file), instead of a serving certificate.
    #[arg(long, conflicts_with_all = ["dns", "ips"])]
    client: bool,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Sign with this existing CA (with --ca-key) instead of making a new one, so the
    /// webhook's caBundle (or, with --client, its --client-ca-file) stays the same.
    #[arg(long, requires = "ca_key", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// The existing CA's private key (PEM).
    #[arg(long, requires = "ca_cert", value_name = "FILE")]
    ca_key: Option<PathBuf>,
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
    /// Also mutate objects in namespaces the shipped webhook configuration never sends
    /// (kube-system, probegate).
    #[arg(long)]
    include_excluded_namespaces: bool,
}

/// Exit code for bad input, distinct from `--check`'s 1.
const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Mutate(args) => mutate(args),
        Command::Serve(args) => report(serve(args)),
        Command::Certs(args) => report(make_certs(args)),
        Command::Audit(args) => audit(args),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn make_certs(args: CertsArgs) -> anyhow::Result<()> {
    let mut names = Names::for_service(&args.service, &args.namespace);
    names.dns.extend(args.dns);
    names.ips.extend(args.ips);
    let ca = match (&args.ca_cert, &args.ca_key) {
        (Some(cert), Some(key)) => {
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))
            };
            Some(certs::Ca {
                cert_pem: read(cert)?,
                key_pem: read(key)?,
            })
        }
        _ => None,
    };
    if args.client {
        let bundle = match &ca {
            Some(ca) => certs::sign_client(ca, args.days)?,
            None => certs::generate_client(args.days)?,
        };
        bundle.write_client(&args.out)?;
        eprintln!(
            "wrote {}: client.crt and client.key for the API server's kubeconfig, client-ca.crt for --client-ca-file",
            args.out.display()
        );
        return Ok(());
    }
    let bundle = match &ca {
        Some(ca) => certs::sign(ca, &names, args.days)?,
        None => certs::generate(&names, args.days)?,
    };
    bundle.write(&args.out)?;
    use base64::Engine as _;
    println!(
        "{}",
        base64::engine::general_purpose::STANDARD.encode(&bundle.ca_pem)
    );
    Ok(())
}

fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .context("bad --log-level")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

#[tokio::main]
// Every field is bound by name, none skipped with `..`: a flag parsed but never used is an
// unused variable, and the build refuses it.
#[deny(unused_variables)]
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        addr,
        health_addr,
        metrics_addr,
        no_metrics,
        tls_cert_file,
        tls_key_file,
        client_ca_file,
        standalone,
        namespace_config,
        namespace_annotations,
        log_format,
        log_level,
        shutdown_grace_seconds,
        shutdown_delay_seconds,
        idle_timeout_seconds,
    } = args;
    init_logging(log_format, &log_level)?;
    let certs = match (&tls_cert_file, &tls_key_file) {
        (Some(cert), Some(key)) => CertStore::open(cert, key)?,
        _ => {
            let names = Names {
                dns: vec!["localhost".into()],
                ips: vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()],
            };
            let bundle = certs::generate(&names, 365)?;
            let dir = tempfile::Builder::new()
                .prefix("probegate-certs-")
                .tempdir()?
                .keep();
            bundle.write(&dir)?;
            tracing::info!(ca = %dir.join("ca.crt").display(), "no --tls-cert-file: serving a self-signed certificate for localhost; trust this CA");
            CertStore::open(&dir.join("tls.crt"), &dir.join("tls.key"))?
        }
    };
    let client_ca = client_ca_file
        .as_deref()
        .map(ClientCaStore::open)
        .transpose()?;
    let (directory, watchers) = directory(standalone, namespace_config.as_deref()).await?;
    let metrics = Arc::new(Metrics::new(&directory));
    let defaults = namespace_annotations.into_iter().collect();
    let admission = Arc::new(Admission::new(directory.clone(), defaults, metrics.clone()));
    let bind = |addr: SocketAddr| {
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))
    };
    let listeners = Listeners {
        webhook: bind(addr)?,
        health: bind(health_addr)?,
        metrics: if no_metrics {
            None
        } else {
            Some(bind(metrics_addr)?)
        },
    };
    let server = Server {
        listeners,
        certs,
        client_ca,
        admission,
        metrics,
        health: Health::new(directory.clone()),
        limits: Limits {
            grace: Duration::from_secs(shutdown_grace_seconds),
            shutdown_delay: Duration::from_secs(shutdown_delay_seconds),
            idle_timeout: Duration::from_secs(idle_timeout_seconds),
            ..Limits::default()
        },
    };
    server.run(terminated()).await?;
    for watcher in watchers {
        watcher.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Cluster mode when a cluster is configured (KUBECONFIG, ~/.kube/config or in-cluster),
/// standalone when asked or when none is.
async fn directory(
    standalone: bool,
    namespace_config: Option<&std::path::Path>,
) -> anyhow::Result<(Directory, Vec<tokio::task::JoinHandle<()>>)> {
    if standalone {
        return Ok((Directory::standalone(namespace_config)?, Vec::new()));
    }
    match kube::Config::infer().await {
        Ok(config) => {
            if namespace_config.is_some() {
                tracing::warn!("--namespace-config is for standalone mode; a cluster was found, so its namespaces are used");
            }
            let client =
                kube::Client::try_from(config).context("cannot build a Kubernetes client")?;
            let (cache, watchers) = ClusterCache::start(client);
            tracing::info!("cluster mode: watching namespaces and services");
            Ok((Directory::Cluster(cache), watchers))
        }
        Err(error) if std::env::var_os("KUBECONFIG").is_some() => {
            Err(anyhow::Error::new(error).context("KUBECONFIG is set but unusable"))
        }
        // In a pod, defaults in place of the namespaces' own settings would be wrong answers
        // (opt-outs and deny ignored) behind a ready probe: refuse to start instead.
        Err(error) if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => Err(anyhow::Error::new(error)
            .context("running in a pod but the in-cluster configuration is unusable (is the service account token mounted?); pass --standalone to run without the cluster")),
        Err(error) => {
            tracing::info!(%error, "no cluster found: standalone mode");
            Ok((Directory::standalone(namespace_config)?, Vec::new()))
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
    }
}

fn mutate(args: MutateArgs) -> ExitCode {
    let result = probegate::manifest::read_paths(&args.paths, &mut std::io::stdin().lock())
        .map_err(offline::OfflineError::from)
        .and_then(|documents| {
            let options = offline::Options {
                format: args.output,
                check: args.check,
                include_excluded_namespaces: args.include_excluded_namespaces,
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
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(report.stdout.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::from(report.exit_code),
                // A reader that stopped early (`| head`) wanted no more.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    ExitCode::from(report.exit_code)
                }
                Err(e) => {
                    eprintln!("error: cannot write the output: {e}");
                    ExitCode::from(EXIT_BAD_INPUT)
                }
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

#[tokio::main]
#[deny(unused_variables)]
async fn audit(args: AuditArgs) -> ExitCode {
    use std::io::IsTerminal as _;
    let AuditArgs {
        kubeconfig,
        context,
        namespaces,
        all_namespaces,
        namespace_annotations,
        output,
        check,
        stuck_after,
    } = args;
    let options = probegate::audit::Options {
        kubeconfig,
        context,
        scope: if all_namespaces {
            probegate::audit::Scope::All
        } else {
            probegate::audit::Scope::Namespaces(namespaces)
        },
        namespace_annotations: namespace_annotations.into_iter().collect(),
        stuck_after,
        progress: std::io::stderr().is_terminal(),
    };
    let report = match probegate::audit::run(&options).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let text = match output {
        AuditFormat::Table => Ok(report.to_table()),
        AuditFormat::Json => report.to_json(),
        AuditFormat::Yaml => report.to_yaml(),
    };
    let written = text.map_err(std::io::Error::other).and_then(|text| {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
    });
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    }
    if check && !report.findings.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
