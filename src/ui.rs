//! What imagegate prints besides its results: colours, log lines on stderr, error reports.

use std::fmt;
use std::io::IsTerminal;

use console::style;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::error::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set.
    Auto,
    Always,
    Never,
}

/// How chatty to be and whether to colour.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub color: bool,
    pub quiet: bool,
    pub verbose: u8,
}

impl Ui {
    pub fn new(choice: ColorChoice, quiet: bool, verbose: u8) -> Ui {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && std::io::stderr().is_terminal(),
        };
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color);
        Ui {
            color,
            quiet,
            verbose,
        }
    }

    /// Log lines go to stderr: warnings by default, errors only with -q, debug with -v
    /// (imagegate's own) and -vv (every library's, oci-client included).
    pub fn init_logging(&self) {
        let own = match (self.quiet, self.verbose) {
            (true, _) => Level::ERROR,
            (false, 0) => Level::WARN,
            (false, 1) => Level::DEBUG,
            (false, _) => Level::TRACE,
        };
        let others = if self.verbose >= 2 {
            Level::DEBUG
        } else {
            own.min(Level::WARN)
        };
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("imagegate", own)
            .with_default(others);
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(self.color)
                    .event_format(LogLine),
            )
            .with(filter)
            .try_init();
    }

    /// `error: …`, its causes, and a hint, on stderr.
    pub fn report_error(&self, err: &Error) {
        let mut text = format!("{} {err}", style("error:").red().bold());
        let mut source = std::error::Error::source(err);
        // Transparent wrappers repeat their inner message; show only causes that add something.
        let shown = err.to_string();
        while let Some(cause) = source {
            let line = cause.to_string();
            if !shown.contains(&line) {
                text.push_str(&format!("\n  {} {line}", style("caused by:").dim()));
            }
            source = cause.source();
        }
        if let Some(hint) = err.hint() {
            text.push_str(&format!("\n  {} {hint}", style("hint:").cyan().bold()));
        }
        eprintln!("{text}");
    }
}

/// `warning: message` — the level as a word, no timestamps or module paths.
struct LogLine;

impl<S, N> FormatEvent<S, N> for LogLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        let label = match level {
            Level::ERROR => style("error:").red().bold(),
            Level::WARN => style("warning:").yellow().bold(),
            Level::INFO => style("info:").bold(),
            Level::DEBUG => style("debug:").dim(),
            Level::TRACE => style("trace:").dim(),
        };
        write!(writer, "{label} ")?;
        if level >= Level::DEBUG && !event.metadata().target().starts_with("imagegate") {
            write!(writer, "[{}] ", event.metadata().target())?;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{fields}: ")?;
                }
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Progress of a long step on stderr: a spinner on a terminal, timestamped lines in a log,
/// nothing with -q.
pub struct Progress {
    spinner: Option<indicatif::ProgressBar>,
    quiet: bool,
}

impl Progress {
    pub fn new(ui: &Ui) -> Progress {
        let spinner = (!ui.quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Progress {
            spinner,
            quiet: ui.quiet,
        }
    }

    /// Announces the next step.
    pub fn step(&self, message: &str) {
        match &self.spinner {
            Some(bar) => bar.set_message(message.to_string()),
            None if !self.quiet => {
                eprintln!("[{}] {message}", chrono::Utc::now().format("%H:%M:%S"));
            }
            None => {}
        }
    }

    /// A result worth keeping on screen (printed above the spinner).
    pub fn done(&self, message: &str) {
        match &self.spinner {
            Some(bar) => bar.println(format!("{} {message}", style("✓").green())),
            None => self.step(message),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}
