//! The `imagegate` binary: parse, run, map the outcome to an exit code — nothing else.

use std::process::ExitCode;

use clap::Parser;
use imagegate::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = cli.global.ui();
    ui.init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(imagegate::error::Exit::Incomplete.code());
        }
    };
    match runtime.block_on(cli::run(cli, ui)) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            ui.report_error(&err);
            ExitCode::from(err.exit().code())
        }
    }
}
