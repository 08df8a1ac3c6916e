//! The errors that end a run, and the one place that maps them to exit codes.

use crate::fsutil::WriteError;
use crate::http::SetupError;
use crate::keys::KeyError;
use crate::oci::PlatformError;
use crate::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::registry::credentials::CredentialError;
use crate::source::SourceError;

/// The exit codes of imagegate (the README carries the same table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Passed; warnings (violations of rules that do not break the build) may be listed.
    Passed = 0,
    /// At least one rule that breaks the build was violated.
    Violations = 1,
    /// The input was wrong: usage, a policy that does not parse, a bad reference or key URI.
    BadInput = 2,
    /// The gate could not finish: a registry or key service unreachable or refusing, auth failure.
    Incomplete = 3,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Everything that can stop imagegate. Each module reports its own typed error; this enum
/// gathers them so that [`Error::exit`] decides every exit code in one place.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Network(#[from] SetupError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    Usage(String),
    /// An input file (policy, report, manifest) that cannot be used.
    #[error("{message}")]
    Input {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    StackRox(#[from] crate::policy::stackrox::StackRoxError),
    #[error(transparent)]
    Kyverno(#[from] crate::policy::kyverno::KyvernoError),
    /// Signatures were checked and none (or not enough) verified.
    #[error("{image}: {message}{}", details.iter().map(|d| format!("\n  - {d}")).collect::<String>())]
    Verification {
        image: String,
        message: String,
        details: Vec<String>,
    },
}

impl From<CredentialError> for Error {
    fn from(e: CredentialError) -> Self {
        Error::Registry(RegistryError::Credentials(e))
    }
}

impl Error {
    /// The exit code for this error — the only place that decides it.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Reference(_) | Error::Platform(_) | Error::Network(_) | Error::Usage(_) => {
                Exit::BadInput
            }
            Error::Source(_) | Error::Write(_) => Exit::BadInput,
            Error::Input { .. } | Error::StackRox(_) | Error::Kyverno(_) => Exit::BadInput,
            Error::Verification { .. } => Exit::Violations,
            Error::Registry(RegistryError::Credentials(CredentialError::Helper { .. })) => {
                Exit::Incomplete
            }
            Error::Registry(RegistryError::Credentials(_) | RegistryError::Setup(_)) => {
                Exit::BadInput
            }
            Error::Registry(_) => Exit::Incomplete,
            Error::Key(KeyError::Remote { .. } | KeyError::BadRemoteSignature { .. }) => {
                Exit::Incomplete
            }
            Error::Key(_) => Exit::BadInput,
        }
    }

    /// A next step for the user, when there is one to suggest.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Registry(e) => e.hint(),
            Error::Key(e) => e.hint(),
            Error::Source(SourceError::NotALayout { .. }) => Some(
                "write an OCI layout with `skopeo copy docker://IMAGE oci:DIR:TAG`, or name a registry image instead".into(),
            ),
            Error::Write(_) => Some("check that the folder exists and is writable".into()),
            Error::Input { hint, .. } => hint.clone(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_design_table() {
        assert_eq!(Exit::Passed.code(), 0);
        assert_eq!(Exit::Violations.code(), 1);
        assert_eq!(Exit::BadInput.code(), 2);
        assert_eq!(Exit::Incomplete.code(), 3);
        let bad_ref = Error::from(crate::reference::ImageRef::parse("UP/Per").unwrap_err());
        assert_eq!(bad_ref.exit(), Exit::BadInput);
        let unreachable = Error::from(RegistryError::Unreachable {
            registry: "r".into(),
            method: "GET",
            url: "http://r/v2/".into(),
            cause: "refused".into(),
            attempts: 4,
        });
        assert_eq!(unreachable.exit(), Exit::Incomplete);
        assert!(unreachable.to_string().contains("gave up after 4 attempts"));
    }
}
