//! The command line: global flags shared by every subcommand, and one file per subcommand.

pub mod check;
pub mod digest;
pub mod gate;
pub mod keygen;
pub mod output;
pub mod rules;
pub mod sign;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::sync::OnceCell;

use crate::error::{Error, Exit};
use crate::http::{Http, NetworkSettings};
use crate::keys::{Environment, KeyContext};
use crate::registry::Registry;
use crate::registry::credentials::AuthFiles;
use crate::source::{ImageSource, Store};
use crate::ui::{ColorChoice, Ui};

/// imagegate: resolve, sign and check container images in a pipeline, with the verdict your
/// cluster's admission controller would give.
#[derive(Debug, Parser)]
#[command(name = "imagegate", version, about, max_term_width = 100)]
#[command(
    after_help = "Exit codes: 0 passed, 1 a rule that breaks the build was violated, \
2 the input was wrong, 3 the gate could not finish (registry or key service unreachable, auth failure)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Digest(digest::DigestArgs),
    Check(check::CheckArgs),
    Gate(gate::GateArgs),
    Sign(sign::SignArgs),
    Verify(verify::VerifyArgs),
    GenerateKeyPair(keygen::KeygenArgs),
    /// The StackRox-style policies imagegate knows.
    Rules(rules::RulesArgs),
}

/// Flags every subcommand understands.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Docker config.json with registry credentials. Default: the first of
    /// $DOCKER_CONFIG/config.json, ~/.docker/config.json, $REGISTRY_AUTH_FILE and
    /// $XDG_RUNTIME_DIR/containers/auth.json that knows the registry.
    #[arg(long, global = true, value_name = "PATH")]
    pub registry_config: Option<PathBuf>,

    /// Extra trusted root certificates (PEM), on top of the system roots (or SSL_CERT_FILE).
    /// Repeatable.
    #[arg(long = "ca-file", global = true, value_name = "PATH")]
    pub ca_files: Vec<PathBuf>,

    /// Reach this registry over plain HTTP, or TLS without certificate checks. This host only;
    /// repeatable.
    #[arg(long = "insecure-registry", global = true, value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,

    /// How many times a request is tried again after a transient failure (5xx, 429, timeout,
    /// refused or reset connection); never after 401, 403 or 404.
    #[arg(long, global = true, value_name = "N", default_value_t = 3)]
    pub retries: u32,

    /// How long one network request may take, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,

    /// When to colour the output (NO_COLOR is honoured with auto).
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Print only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print what imagegate does (-v) and what its libraries do (-vv) on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    pub fn ui(&self) -> Ui {
        Ui::new(self.color, self.quiet, self.verbose)
    }

    fn network(&self) -> NetworkSettings {
        NetworkSettings {
            ca_files: self.ca_files.clone(),
            insecure_hosts: self.insecure_registries.clone(),
            retries: self.retries,
            timeout: Duration::from_secs(self.timeout),
        }
    }
}

/// What a subcommand gets: the global flags, the environment, and the network set up on
/// first use.
pub struct Context {
    pub global: GlobalArgs,
    pub ui: Ui,
    /// The environment, read once at start.
    pub env: Environment,
    registry: OnceCell<Registry>,
}

impl Context {
    pub fn new(global: GlobalArgs, ui: Ui) -> Context {
        Context {
            global,
            ui,
            env: Environment::from_process(),
            registry: OnceCell::new(),
        }
    }

    /// A line for the person watching, on stderr (not with -q).
    pub fn note(&self, text: &str) {
        if !self.ui.quiet {
            eprintln!("{text}");
        }
    }

    /// Whether imagegate may ask questions on the terminal.
    pub fn interactive(&self) -> bool {
        use std::io::IsTerminal;
        std::io::stdin().is_terminal() && self.env.get("CI").is_none_or(|v| v != "true")
    }

    /// What key backends need.
    pub fn key_context<'a>(&'a self, http: &'a Http) -> KeyContext<'a> {
        KeyContext {
            http,
            interactive: self.interactive(),
            env: &self.env,
        }
    }

    /// The registry client; building it reads the --ca-file roots.
    pub async fn registry(&self) -> Result<&Registry, Error> {
        self.registry
            .get_or_try_init(|| async {
                let http = Http::new(self.global.network())?;
                Ok(Registry::new(
                    http,
                    AuthFiles::discover(self.global.registry_config.clone()),
                ))
            })
            .await
    }

    /// Where `source` is read from: the registry (its client set up on first use) or the
    /// local layout, opened now.
    pub async fn store(&self, source: &ImageSource) -> Result<Store<'_>, Error> {
        let registry = match source {
            ImageSource::Registry(_) => Some(self.registry().await?),
            ImageSource::Layout(_) => None,
        };
        Store::open(source, registry)
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli, ui: Ui) -> Result<Exit, Error> {
    let ctx = Context::new(cli.global, ui);
    match cli.command {
        Command::Digest(args) => digest::run(&ctx, args).await,
        Command::Check(args) => check::run(&ctx, args).await,
        Command::Gate(args) => gate::run(&ctx, args).await,
        Command::Rules(args) => rules::run(&ctx, args).await,
        Command::Sign(args) => sign::run(&ctx, args).await,
        Command::Verify(args) => verify::run(&ctx, args).await,
        Command::GenerateKeyPair(args) => keygen::run(&ctx, args).await,
    }
}

/// `KEY=VALUE` for `-a`.
pub fn parse_annotation(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}
