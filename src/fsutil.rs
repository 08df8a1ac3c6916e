//! Files imagegate writes: always whole or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file could not be written; names the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk,
/// then renamed over `path`. A failure midway leaves `path` as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic_with_mode(path, bytes, 0o644)
}

/// [`write_atomic`] with the file's permission bits (e.g. 0o600 for a private key; the file
/// never exists with looser bits, not even briefly).
pub fn write_atomic_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let fail = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".imagegate-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(fail)?;
    {
        use std::os::unix::fs::PermissionsExt;
        // The temporary file starts as 0600; widen only when asked.
        if mode != 0o600 {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(fail)?;
        }
    }
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_replaces_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digest");
        write_atomic(&path, b"sha256:old").unwrap();
        write_atomic(&path, b"sha256:new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"sha256:new");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_file() {
        let err = write_atomic(Path::new("/nonexistent-dir/x/digest"), b"x").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot write /nonexistent-dir/x/digest:"),
            "{err}"
        );
    }
}
