//! Environment variables with a `_FILE` twin: `NAME_FILE=/run/secrets/x` stands for `NAME`
//! set to that file's contents, the convention of Docker and Kubernetes secrets (a secret
//! mounted as a file never shows in `docker inspect`, `/proc/*/environ` or a crash dump of the
//! environment). Used for `HOOKLINE_*` configuration variables and for `${NAME}` in rule files.

use std::path::PathBuf;

/// The suffix that turns a variable into a path to its value.
pub const SUFFIX: &str = "_FILE";

/// A variable could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvFileError {
    /// Both `NAME` and `NAME_FILE` are set; which one wins would be a guess.
    #[error("both {name} and {name}_FILE are set; set only one")]
    Both {
        /// The variable.
        name: String,
    },
    /// `NAME_FILE` names a file that cannot be read.
    #[error("cannot read {name}_FILE={}: {reason}", path.display())]
    Unreadable {
        /// The variable.
        name: String,
        /// The file.
        path: PathBuf,
        /// Why (the io error, as text so the error stays `Clone` for rule problems).
        reason: String,
    },
}

/// `NAME` from the process environment, or the contents of the file `NAME_FILE` names (one
/// trailing newline removed: `echo secret > file` should give `secret`). `None` when neither
/// is set.
pub fn var(name: &str) -> Result<Option<String>, EnvFileError> {
    lookup(name, &|n| std::env::var(n).ok())
}

/// [`var`] over any environment, for tests.
pub fn lookup(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, EnvFileError> {
    let direct = env(name);
    let Some(path) = env(&format!("{name}{SUFFIX}")) else {
        return Ok(direct);
    };
    if direct.is_some() {
        return Err(EnvFileError::Both { name: name.into() });
    }
    read(name, PathBuf::from(path)).map(Some)
}

/// Reads the file of `NAME_FILE`.
pub fn read(name: &str, path: PathBuf) -> Result<String, EnvFileError> {
    match std::fs::read_to_string(&path) {
        Ok(mut text) => {
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            Ok(text)
        }
        Err(e) => Err(EnvFileError::Unreadable {
            name: name.into(),
            path,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_file_variant() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let path = file.display().to_string();
        let env = |n: &str| match n {
            "TOKEN_FILE" => Some(path.clone()),
            "PLAIN" => Some("p".to_string()),
            "BOTH" | "BOTH_FILE" => Some("x".to_string()),
            "GONE_FILE" => Some("/nonexistent/hookline".to_string()),
            _ => None,
        };
        assert_eq!(lookup("TOKEN", &env), Ok(Some("s3cret".into())));
        assert_eq!(lookup("PLAIN", &env), Ok(Some("p".into())));
        assert_eq!(lookup("UNSET", &env), Ok(None));
        assert_eq!(
            lookup("BOTH", &env).unwrap_err().to_string(),
            "both BOTH and BOTH_FILE are set; set only one"
        );
        let gone = lookup("GONE", &env).unwrap_err().to_string();
        assert!(
            gone.starts_with("cannot read GONE_FILE=/nonexistent/hookline: "),
            "{gone}"
        );
    }

    #[test]
    fn keeps_inner_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pem");
        std::fs::write(&file, "a\nb\r\n").unwrap();
        assert_eq!(read("PEM", file).unwrap(), "a\nb");
    }
}
