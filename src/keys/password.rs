//! Passwords for encrypted keys: `COSIGN_PASSWORD` when it is set (even to an empty string, as
//! cosign reads it), else a prompt on the terminal, else an error that says what to set.

use std::io::IsTerminal;

use super::KeyError;
use crate::secret::Secret;

/// The password for the encrypted key at `origin`.
pub fn for_key(origin: &str, interactive: bool) -> Result<Secret, KeyError> {
    if let Some(value) = std::env::var_os("COSIGN_PASSWORD") {
        return Ok(Secret::new(value.to_string_lossy()));
    }
    if interactive && std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("Enter password for private key {origin}: "))
            .map(Secret::new)
            .map_err(|e| KeyError::Refused(format!("cannot read the password: {e}")));
    }
    Err(KeyError::PasswordNeeded {
        origin: origin.to_string(),
    })
}

/// A password for a new key: `COSIGN_PASSWORD`, or asked twice on the terminal.
pub fn for_new_key(interactive: bool) -> Result<Secret, KeyError> {
    if let Some(value) = std::env::var_os("COSIGN_PASSWORD") {
        return Ok(Secret::new(value.to_string_lossy()));
    }
    if interactive && std::io::stdin().is_terminal() {
        let read = |prompt: &str| {
            rpassword::prompt_password(prompt)
                .map(Secret::new)
                .map_err(|e| KeyError::Refused(format!("cannot read the password: {e}")))
        };
        let first = read("Enter password for private key: ")?;
        let again = read("Enter password for private key again: ")?;
        if first != again {
            return Err(KeyError::Refused("the passwords do not match".into()));
        }
        return Ok(first);
    }
    Err(KeyError::Refused(
        "a new key needs a password: set COSIGN_PASSWORD (it may be empty), or run on a terminal to be asked".into(),
    ))
}
