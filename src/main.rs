//! The `sipveil` command line: the operator contract of DESIGN.md (`run`, `check`,
//! `subscriber add|list|remove`), each taking `--config FILE`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sipveil::config::Config;
use sipveil::policy::PolicySet;
use tracing_subscriber::EnvFilter;

/// sipveil: a SIP Session Border Controller (topology-hiding B2BUA).
#[derive(Parser, Debug)]
#[command(name = "sipveil", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the SBC in the foreground.
    Run {
        /// The TOML config file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate the config and every policy file; exit 0 when valid, 1 when not.
    Check {
        /// The TOML config file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Manage the registrar's subscribers (digest credentials).
    Subscriber {
        #[command(subcommand)]
        action: SubscriberCommand,
    },
}

#[derive(Subcommand, Debug)]
enum SubscriberCommand {
    /// Add a subscriber, or change its password.
    Add {
        /// The subscriber's address of record, USER@DOMAIN.
        aor: String,
        /// The password (stored only as HA1 hashes).
        #[arg(long)]
        password: String,
        /// The TOML config file (its data_dir holds the store).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// List subscribers, one USER@DOMAIN per line.
    List {
        /// The TOML config file (its data_dir holds the store).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Remove a subscriber.
    Remove {
        /// The subscriber's address of record, USER@DOMAIN.
        aor: String,
        /// The TOML config file (its data_dir holds the store).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log_guard = init_logging();
    match cli.command {
        Command::Check { config } => match Config::load(&config) {
            Ok(cfg) => {
                warn_missing_policy_dir(&cfg);
                let policy = match PolicySet::load_for(&cfg) {
                    Ok(p) => p,
                    Err(e) => return fail(&e),
                };
                println!(
                    "{}: OK: {}; {}",
                    config.display(),
                    cfg.summary(),
                    policy.summary()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Run { config } => {
            let cfg = match Config::load(&config) {
                Ok(cfg) => cfg,
                Err(e) => return fail(&e),
            };
            warn_missing_policy_dir(&cfg);
            // An invalid policy refuses the start, reported like `check` does.
            if let Err(e) = PolicySet::load_for(&cfg) {
                return fail(&e);
            }
            if let Err(e) = cfg.ensure_data_dir() {
                eprintln!(
                    "error: cannot create data_dir {}: {e}",
                    cfg.node.data_dir.display()
                );
                return ExitCode::FAILURE;
            }
            match run(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Subscriber { action } => subscriber(action),
    }
}

/// Subscriber management. With sipveil running on the config's data_dir the
/// request goes through its admin socket (sled allows one process per store, and
/// the running node must see the change at once); with it stopped, the store is
/// opened here. Exit 0 on success, 1 with a message otherwise.
fn subscriber(action: SubscriberCommand) -> ExitCode {
    use sipveil::admin::Request;
    let (config, req) = match action {
        SubscriberCommand::Add {
            aor,
            password,
            config,
        } => (config, Request::SubscriberAdd { aor, password }),
        SubscriberCommand::List { config } => (config, Request::SubscriberList),
        SubscriberCommand::Remove { aor, config } => (config, Request::SubscriberRemove { aor }),
    };
    let cfg = match Config::load(&config) {
        Ok(cfg) => cfg,
        Err(e) => return fail(&e),
    };
    if let Request::SubscriberAdd { aor, .. } = &req {
        warn_foreign_domain(&cfg, aor);
    }
    let resp = match sipveil::admin::execute(&cfg.node.data_dir, &req) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !resp.ok {
        let why = resp.error.as_deref().unwrap_or("request refused");
        eprintln!("error: {why}");
        return ExitCode::FAILURE;
    }
    match &req {
        Request::SubscriberList => {
            for aor in resp.subscribers.unwrap_or_default() {
                println!("{aor}");
            }
        }
        Request::SubscriberAdd { aor, .. } => println!("subscriber {aor} added"),
        Request::SubscriberRemove { aor } => println!("subscriber {aor} removed"),
    }
    ExitCode::SUCCESS
}

/// A subscriber outside `[registrar] domain` is stored, but nothing authenticates
/// against it until the domain matches; say so rather than leave the operator
/// wondering why the phone gets 403.
fn warn_foreign_domain(cfg: &Config, aor: &str) {
    let Ok(parsed) = sipveil::registrar::subscribers::Aor::parse(aor) else {
        return;
    };
    match &cfg.registrar {
        Some(r) if r.domain.eq_ignore_ascii_case(&parsed.domain) => {}
        Some(r) => eprintln!(
            "warning: {} is not in the registrar domain {}; it is stored but cannot register",
            parsed, r.domain
        ),
        None => eprintln!("warning: no [registrar] section; {parsed} is stored but unused"),
    }
}

/// Prints a config or policy error, one `file:line: message` per line, and gives
/// exit code 1.
fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    for line in e.to_string().lines() {
        eprintln!("error: {line}");
    }
    ExitCode::FAILURE
}

/// Logs to stderr, filtered by RUST_LOG (default `info`).
fn init_logging() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Log lines are written by a background thread so the signaling loop never
    // waits on stderr; the guard flushes what is queued when main returns.
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .init();
    guard
}

/// A typo in `[policy] dir` would silently leave only the built-in defaults active,
/// so say so.
fn warn_missing_policy_dir(cfg: &Config) {
    let dir: &Path = &cfg.policy.dir;
    if !dir.is_dir() {
        tracing::warn!(
            "policy dir {} does not exist; built-in defaults only",
            dir.display()
        );
    }
}

// ---------------------------------------------------------------------------
// Runtime entry point.
// It receives a validated config whose data_dir already exists; returning Ok
// exits 0, returning Err prints the error and exits 1.
// ---------------------------------------------------------------------------
fn run(cfg: Config) -> anyhow::Result<()> {
    tracing::info!("config loaded: {}", cfg.summary());
    let rc = sipveil::runtime::from_config(&cfg)?;
    sipveil::runtime::run(rc)
}
