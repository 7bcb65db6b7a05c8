//! Command-line entry point: a thin layer over the library.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use juju_secrets_operator::controller::{self, RunConfig};
use juju_secrets_operator::plan;

/// See Cargo.toml: less memory held beyond the live heap than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Manage Juju user secrets, grants and secret backends from Kubernetes.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlanOutput {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Run {
        /// Kubeconfig file (default: in-cluster configuration, else ~/.kube/config).
        #[arg(long, env = "KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
        /// The Kubernetes Secret holding the Juju connection, as NAMESPACE/NAME, with
        /// keys `endpoints` (comma-separated host:port), `ca-cert`, `username`, `password`.
        #[arg(long, env = "JUJU_CONNECTION_SECRET")]
        juju_connection_secret: String,
        /// Namespaces to watch, comma-separated (default: all).
        #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',')]
        namespaces: Vec<String>,
        /// Tenancy policy file mapping namespaces to the Juju models they may use
        /// (default: every namespace may use every model).
        #[arg(long, env = "TENANCY_POLICY")]
        tenancy_policy: Option<PathBuf>,
        /// Default interval for re-reading Juju to correct drift (e.g. 30s, 10m, 1h).
        #[arg(long, env = "REFRESH_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
        refresh_interval: Duration,
        /// Log format.
        #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Log filter (tracing EnvFilter syntax, e.g. `info` or `info,juju_secrets_operator=debug`).
        #[arg(long, env = "LOG_LEVEL", default_value = "info")]
        log_level: String,
        /// Address of /metrics, /healthz and /readyz.
        #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:8080")]
        metrics_addr: SocketAddr,
        /// Reconciles in flight per controller at most. A pass whose Juju write is
        /// queued gives its reconcile back while it waits for the batch, so these bound
        /// the passes at work (each holds its pass's state, ~15 KB); apiserver writes
        /// are bounded separately.
        #[arg(long, env = "MAX_CONCURRENT_RECONCILES", default_value_t = 256)]
        max_concurrent_reconciles: u16,
        /// Elect a leader with a Lease so several replicas can run; only the holder
        /// reconciles. Turn off only when exactly one process runs.
        #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
        leader_election: bool,
        /// Name of the leader Lease.
        #[arg(long, env = "LEASE_NAME", default_value = "juju-secrets-operator")]
        lease_name: String,
        /// Namespace of the leader Lease (default: the connection Secret's namespace).
        #[arg(long, env = "LEASE_NAMESPACE")]
        lease_namespace: Option<String>,
        /// How long the leader Lease holds without renewal (3s to 1h). A standby
        /// takes over within this time after the leader dies.
        #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
        lease_duration: Duration,
    },
    /// Show what applying manifests would do in Juju, key by key, never a value; writes
    /// nothing anywhere. Exit status: 0 no changes, 2 changes (or objects that would not
    /// become Ready), 1 errors.
    Plan {
        /// Manifest file, directory (read recursively) or `-` for standard input;
        /// repeatable.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Namespace of manifest objects that name none (default: the kubeconfig
        /// context's, else `default`).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// Kubeconfig file (default: in-cluster configuration, else ~/.kube/config).
        #[arg(long, env = "KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
        /// The operator's connection Secret, as NAMESPACE/NAME: the Juju connection
        /// (unless --juju-connection is given), and where the operator keeps its
        /// ownership record.
        #[arg(long, env = "JUJU_CONNECTION_SECRET")]
        juju_connection_secret: String,
        /// A Secret manifest (keys endpoints, ca-cert, username, password) to reach Juju
        /// with instead, e.g. a read-only user's.
        #[arg(long)]
        juju_connection: Option<PathBuf>,
        /// The operator's tenancy policy file.
        #[arg(long, env = "TENANCY_POLICY")]
        tenancy_policy: Option<PathBuf>,
        /// Also plan the deletion of objects absent from the manifests: JujuSecrets and
        /// JujuSecretGrants of the manifests' namespaces, and JujuSecretBackends when
        /// the manifests hold any (as `kubectl apply --prune` or Argo CD's pruning).
        #[arg(long)]
        prune: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: PlanOutput,
    },
    /// Print the CustomResourceDefinitions as YAML, or write one file per kind into a
    /// directory (how `crds/` is generated).
    Crds {
        /// Write `<crd-name>.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Print a Kubernetes Secret with the Juju connection, made from the emulator's (or
    /// any) connection.json, for `kubectl apply -f -`.
    ConnectionSecret {
        /// connection.json as written by juju-emulator.
        #[arg(long)]
        from_emulator: PathBuf,
        /// The Juju user whose credentials go into the Secret.
        #[arg(long, default_value = "admin")]
        user: String,
        /// Namespace of the Secret.
        #[arg(long)]
        namespace: String,
        /// Name of the Secret.
        #[arg(long, default_value = "juju-connection")]
        name: String,
    },
}

fn init_logging(format: LogFormat, filter: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("invalid log level: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    // Transparent huge pages off for this process: with them the allocator's arenas are
    // backed by 2 MiB pages that stay resident while mostly empty (peak RSS at 10,000
    // objects 145 MiB with them, 123 MiB without; BENCHMARKS.md). Where THP is "always",
    // only this prevents it; the `no_thp` build of mimalloc covers "madvise".
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("note: cannot turn transparent huge pages off ({e}); memory use may be higher");
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan {
            files,
            namespace,
            kubeconfig,
            juju_connection_secret,
            juju_connection,
            tenancy_policy,
            prune,
            output,
        } => {
            let config = plan::PlanConfig {
                files,
                namespace: namespace.unwrap_or_default(),
                kubeconfig,
                connection_secret: juju_connection_secret,
                juju_connection,
                tenancy_policy,
                prune,
            };
            return run_plan(config, output);
        }
        Command::Crds { out_dir } => write_crds(out_dir),
        Command::ConnectionSecret {
            from_emulator,
            user,
            namespace,
            name,
        } => connection_secret(&from_emulator, &user, &namespace, &name),
        Command::Run {
            kubeconfig,
            juju_connection_secret,
            namespaces,
            tenancy_policy,
            refresh_interval,
            log_format,
            log_level,
            metrics_addr,
            max_concurrent_reconciles,
            leader_election,
            lease_name,
            lease_namespace,
            lease_duration,
        } => init_logging(log_format, &log_level)
            .map_err(Into::into)
            .and_then(|()| {
                if lease_duration < controller::leader::MIN_LEASE_DURATION
                    || lease_duration > controller::leader::MAX_LEASE_DURATION
                {
                    return Err(format!(
                        "--lease-duration must be between {} and {}",
                        humantime::format_duration(controller::leader::MIN_LEASE_DURATION),
                        humantime::format_duration(controller::leader::MAX_LEASE_DURATION)
                    )
                    .into());
                }
                let leader_election = leader_election.then(|| {
                    let namespace =
                        lease_namespace
                            .filter(|n| !n.is_empty())
                            .unwrap_or_else(|| {
                                controller::connection_namespace(&juju_connection_secret).to_owned()
                            });
                    controller::leader::LeaderElection {
                        lease_name,
                        namespace,
                        identity: controller::leader::default_identity(),
                        duration: lease_duration,
                    }
                });
                let config = RunConfig {
                    kubeconfig,
                    connection_secret: juju_connection_secret,
                    namespaces: namespaces.into_iter().filter(|n| !n.is_empty()).collect(),
                    tenancy_policy,
                    refresh_interval,
                    metrics_addr,
                    max_concurrent_reconciles,
                    leader_election,
                };
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                runtime
                    .block_on(controller::run(config))
                    .map_err(Into::into)
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `plan`: the plan on standard output, problems on standard error, and the exit
/// status of `terraform plan -detailed-exitcode`.
fn run_plan(mut config: plan::PlanConfig, output: PlanOutput) -> ExitCode {
    // Logs only for warnings: standard error carries what went wrong.
    let _ = init_logging(LogFormat::Text, "warn");
    let made = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            runtime.block_on(async {
                if config.namespace.is_empty() {
                    config.namespace = plan::default_namespace(config.kubeconfig.as_ref()).await;
                }
                plan::plan(&config).await.map_err(|e| e.to_string())
            })
        });
    match made {
        Ok(report) => {
            match output {
                PlanOutput::Text => print!("{}", report.text()),
                PlanOutput::Json => match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                },
            }
            ExitCode::from(report.exit_code())
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_crds(out_dir: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    let files = juju_secrets_operator::crd::files()?;
    match out_dir {
        None => {
            for (_, yaml) in files {
                print!("---\n{yaml}");
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for (name, yaml) in files {
                std::fs::write(dir.join(name), yaml)?;
            }
        }
    }
    Ok(())
}

fn connection_secret(
    path: &PathBuf,
    user: &str,
    namespace: &str,
    name: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let info: juju_client::connection_file::ConnectionInfo =
        serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let account = info
        .users
        .iter()
        .find(|u| u.username == user)
        .ok_or_else(|| format!("user {user:?} not in {}", path.display()))?;
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": {
            "endpoints": info.endpoint,
            "ca-cert": info.ca_cert,
            "username": account.username,
            "password": account.password,
        },
    });
    print!("{}", serde_yaml_ng::to_string(&secret)?);
    Ok(())
}
