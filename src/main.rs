//! The `probegate` command line: parses arguments and starts the part asked for.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use probegate::admission::Admission;
use probegate::catalogue_file::{self, CatalogueStore};
use probegate::certs::{self, Names};
use probegate::health::Health;
use probegate::metrics::Metrics;
use probegate::namespace_cache::{ClusterCache, Directory};
use probegate::offline::{self};
use probegate::server::{Limits, Listeners, Server};
use probegate::tls::{CertStore, ClientCaStore};

mod cli;
use cli::{
    AuditArgs, AuditFormat, CatalogueArgs, CertsArgs, Command, FunctionArgs, Invocation, LogFormat,
    MutateArgs, ServeArgs,
};

/// Exit code for bad input, distinct from `--check`'s 1.
const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let (cli, invoked) = match cli::parse() {
        Invocation::Run(cli, invoked) => (cli, invoked),
        Invocation::CompletePlugin(words) => {
            return print(&cli::plugin_completions(&words), &[], 0);
        }
    };
    match cli.command {
        Command::Mutate(args) => mutate(args),
        Command::Serve(args) => report(serve(args)),
        Command::Certs(args) => report(make_certs(args)),
        Command::Audit(args) => audit(args),
        Command::Catalogue(args) => catalogue(args),
        Command::Function(args) => function(args),
        Command::Completion(args) => match cli::completion_script(args.shell, invoked) {
            Ok(script) => print(&script, &[], 0),
            Err(error) => {
                eprintln!("error: the completion script could not be written: {error}");
                ExitCode::from(EXIT_BAD_INPUT)
            }
        },
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
        catalogue,
        log_format,
        log_level,
        shutdown_grace_seconds,
        shutdown_delay_seconds,
        idle_timeout_seconds,
    } = args;
    init_logging(log_format, &log_level)?;
    let certs = serving_certs(tls_cert_file.as_deref(), tls_key_file.as_deref())?;
    let client_ca = client_ca_file
        .as_deref()
        .map(ClientCaStore::open)
        .transpose()?;
    let (directory, watchers) = directory(standalone, namespace_config.as_deref()).await?;
    let metrics = Arc::new(Metrics::new(&directory));
    let defaults = namespace_annotations.into_iter().collect();
    let catalogue = match &catalogue {
        Some(path) => CatalogueStore::open(path)?,
        None => CatalogueStore::builtin(),
    };
    let admission = Arc::new(Admission::with_catalogue(
        directory.clone(),
        defaults,
        metrics.clone(),
        catalogue,
    ));
    let listeners = Listeners {
        webhook: bind(addr)?,
        health: bind(health_addr)?,
        metrics: (!no_metrics).then(|| bind(metrics_addr)).transpose()?,
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

/// The given pair, or a self-signed one for localhost (a local run), with its CA written
/// where the log says.
fn serving_certs(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> anyhow::Result<Arc<CertStore>> {
    if let (Some(cert), Some(key)) = (cert, key) {
        return Ok(CertStore::open(cert, key)?);
    }
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
    Ok(CertStore::open(&dir.join("tls.crt"), &dir.join("tls.key"))?)
}

fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))
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

/// `stderr`'s lines, then `stdout`; exits `exit_code` unless stdout cannot be written.
fn print(stdout: &str, stderr: &[String], exit_code: u8) -> ExitCode {
    let mut err = std::io::stderr().lock();
    for line in stderr {
        let _ = writeln!(err, "{line}");
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(stdout.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::from(exit_code),
        // A reader that stopped early (`| head`) wanted no more.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(exit_code),
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn function(args: FunctionArgs) -> ExitCode {
    let mut input = String::new();
    if let Err(error) = std::io::stdin().lock().read_to_string(&mut input) {
        eprintln!("error: cannot read standard input: {error}");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    match probegate::krm::run(&input, args.check) {
        Ok(answer) => print(&answer.stdout, &answer.stderr, answer.exit_code),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn mutate(args: MutateArgs) -> ExitCode {
    let catalogue = match args
        .catalogue
        .as_deref()
        .map(catalogue_file::load)
        .transpose()
    {
        Ok(catalogue) => catalogue,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
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
                catalogue,
                explain: args.explain,
            };
            offline::run(documents, &options)
        });
    match result {
        Ok(report) => print(&report.stdout, &report.stderr, report.exit_code),
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
        catalogue,
        output,
        check,
        suggest,
        stuck_after,
    } = args;
    let catalogue = match catalogue.as_deref().map(catalogue_file::load).transpose() {
        Ok(catalogue) => catalogue.map(Arc::new),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
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
        catalogue,
    };
    let report = match probegate::audit::run(&options).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    use probegate::audit::suggest;
    let text = match (suggest, output) {
        (false, AuditFormat::Table) => Ok(report.to_table()),
        (false, AuditFormat::Wide) => Ok(report.to_wide_table()),
        (false, AuditFormat::Json) => report.to_json(),
        (false, AuditFormat::Yaml) => report.to_yaml(),
        (true, AuditFormat::Table | AuditFormat::Wide) => suggest::to_text(&report.suggestions),
        (true, AuditFormat::Json) => suggest::to_json(&report.suggestions),
        (true, AuditFormat::Yaml) => suggest::to_yaml(&report.suggestions),
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

fn catalogue(args: CatalogueArgs) -> ExitCode {
    let loaded = args
        .catalogue
        .as_deref()
        .map(catalogue_file::load)
        .transpose();
    let owned = match loaded {
        Ok(owned) => owned,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let catalogue = owned
        .as_ref()
        .unwrap_or_else(|| probegate::engine::catalogue::Catalogue::builtin());
    let text = match &args.image {
        Some(image) => match catalogue.find_image(image) {
            Some(entry) => probegate::engine::catalogue::describe(entry),
            None => {
                eprintln!(
                    "no catalogue entry matches image {image:?} (conditions on flags or variables are not checked here)"
                );
                return ExitCode::FAILURE;
            }
        },
        None => probegate::engine::catalogue::table(catalogue),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
