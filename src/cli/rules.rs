//! `imagegate rules list`: the StackRox-style policies a check would use.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use comfy_table::{Table, presets};

use super::Context;
use crate::error::{Error, Exit};
use crate::policy::stackrox::{LifecycleStage, PolicySet};

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List policies: the built-in set, or those in --rules.
    List {
        /// Policy files or folders (default: the built-in set).
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
    },
}

pub async fn run(_ctx: &Context, args: RulesArgs) -> Result<Exit, Error> {
    let RulesCommand::List { rules } = args.command;
    let set = if rules.is_empty() {
        PolicySet::builtin()
    } else {
        PolicySet::load(&rules)?
    };
    let mut table = Table::new();
    table.load_preset(presets::ASCII_MARKDOWN);
    table.set_header([
        "POLICY",
        "SEVERITY",
        "ENABLED",
        "BREAKS BUILD",
        "STAGES",
        "CATEGORIES",
    ]);
    let mut summaries = set.list();
    summaries.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.name.cmp(&b.name))
    });
    for p in &summaries {
        let stages: Vec<&str> = p
            .lifecycle_stages
            .iter()
            .map(|s| match s {
                LifecycleStage::Build => "BUILD",
                LifecycleStage::Deploy => "DEPLOY",
                LifecycleStage::Runtime => "RUNTIME",
            })
            .collect();
        table.add_row([
            p.name.clone(),
            p.severity.to_string(),
            if p.enabled { "yes".into() } else { "no".into() },
            if p.breaks_build {
                "X".into()
            } else {
                "-".into()
            },
            stages.join(","),
            p.categories.join(", "),
        ]);
    }
    println!("{table}");
    let enabled = summaries.iter().filter(|p| p.enabled).count();
    let breaking = summaries
        .iter()
        .filter(|p| p.enabled && p.breaks_build)
        .count();
    eprintln!(
        "{} policies ({enabled} enabled, {breaking} of them break the build); `imagegate check --rules PATH` uses your own",
        summaries.len()
    );
    Ok(Exit::Passed)
}
