//! Dockerfile lines from an image config's `history[].created_by`, normalised the way StackRox
//! builds its image layers (`pkg/registries/docker/metadata_v1.go`), so that a policy's
//! `Dockerfile Line` value (`RUN=apt-get update`) matches what StackRox would match.
//!
//! StackRox's rule: trim, drop the classic builder's `/bin/sh -c #(nop)` and `/bin/sh -c `
//! prefixes, trim again, then take a leading Dockerfile keyword as the instruction (the value is
//! the rest after one space); anything else is a `RUN` whose value is the whole line.
//!
//! On top of that, history written by BuildKit and by builds with `ARG`s is unwrapped, because
//! StackRox would otherwise see `RUN /bin/sh -c apt-get update # buildkit` and no shipped policy
//! would match it:
//! - the trailing `# buildkit` marker is removed;
//! - `|N NAME=value … ` build-argument prefixes are removed (classic builder and BuildKit);
//! - `RUN [--mount=… ]/bin/sh -c CMD` becomes `RUN CMD`;
//! - BuildKit's `EXPOSE map[22/tcp:{} 80/tcp:{}]` becomes `EXPOSE 22/tcp 80/tcp`.
//!
//! Keywords are matched as whole words (`ADDUSER x` is a `RUN`, not an `ADD`), and history
//! entries with an empty `created_by` carry no instruction and are left out.

use super::DockerfileLine;

/// The keywords StackRox recognises (`pkg/registries/types/types.go`).
const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

const NOP_PREFIX: &str = "/bin/sh -c #(nop)";
const SHELL_PREFIX: &str = "/bin/sh -c ";
const BUILDKIT_MARKER: &str = "# buildkit";

/// One Dockerfile line per history entry that names an instruction, in history order.
pub fn dockerfile_lines(history: &[String]) -> Vec<DockerfileLine> {
    history.iter().filter_map(|h| dockerfile_line(h)).collect()
}

/// The Dockerfile line of one `created_by` string, or `None` when it is empty.
pub fn dockerfile_line(created_by: &str) -> Option<DockerfileLine> {
    let mut line = strip_buildkit_marker(created_by.trim());
    line = strip_build_args(line);
    line = strip_shell_prefixes(line);
    if line.is_empty() {
        return None;
    }

    let (instruction, value) = split_instruction(line);
    let value = match instruction {
        "RUN" => unwrap_run_value(value).to_string(),
        "EXPOSE" => expose_ports(value),
        _ => value.to_string(),
    };
    Some(DockerfileLine {
        instruction: instruction.to_string(),
        value,
    })
}

fn strip_buildkit_marker(line: &str) -> &str {
    match line.strip_suffix(BUILDKIT_MARKER) {
        Some(rest) => rest.trim_end(),
        None => line,
    }
}

/// The classic builder's (and StackRox's) prefix removal: `#(nop)` first, then the shell.
fn strip_shell_prefixes(line: &str) -> &str {
    let mut line = line.trim();
    for prefix in [NOP_PREFIX, SHELL_PREFIX] {
        if let Some(rest) = line.strip_prefix(prefix) {
            line = rest;
        }
    }
    line.trim()
}

/// `|2 A=1 B=2 /bin/sh -c make` → `/bin/sh -c make`: Docker records the build arguments in
/// effect before the command. Values may contain spaces, so when a shell follows, everything
/// up to it is dropped; otherwise (exec form) N `NAME=value` words are skipped.
fn strip_build_args(line: &str) -> &str {
    let Some(rest) = line.strip_prefix('|') else {
        return line;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return line;
    }
    let Ok(count) = rest[..digits].parse::<usize>() else {
        return line;
    };
    let args = &rest[digits..];
    if let Some(at) = args.find("/bin/sh -c") {
        return args[at..].trim();
    }
    let mut tail = args;
    for _ in 0..count {
        tail = tail.trim_start();
        match tail.find(char::is_whitespace) {
            Some(end) => tail = &tail[end..],
            None => tail = "",
        }
    }
    tail.trim()
}

/// `KEYWORD rest` → (`KEYWORD`, `rest`); anything else is a `RUN` of the whole line.
fn split_instruction(line: &str) -> (&'static str, &str) {
    let word_end = line.find(char::is_whitespace).unwrap_or(line.len());
    let word = &line[..word_end];
    match INSTRUCTIONS.iter().find(|&&keyword| keyword == word) {
        // As StackRox does: drop exactly the one space after the keyword.
        Some(keyword) => {
            let rest = &line[word_end..];
            (keyword, rest.strip_prefix(' ').unwrap_or(rest))
        }
        None => ("RUN", line),
    }
}

/// BuildKit writes `RUN /bin/sh -c CMD`, possibly with `--mount=…` flags or build arguments
/// before the shell; the command is what a policy means.
fn unwrap_run_value(value: &str) -> &str {
    let mut rest = value.trim_start();
    while rest.starts_with("--") {
        match rest.find(char::is_whitespace) {
            Some(end) => rest = rest[end..].trim_start(),
            None => return value,
        }
    }
    rest = strip_build_args(rest);
    match rest.strip_prefix(SHELL_PREFIX) {
        Some(command) => command.trim(),
        // Nothing to unwrap: keep StackRox's value as it was.
        None if rest.len() == value.trim_start().len() => value,
        None => rest,
    }
}

/// BuildKit records exposed ports as a Go map: `map[22/tcp:{} 80/tcp:{}]` → `22/tcp 80/tcp`.
fn expose_ports(value: &str) -> String {
    let trimmed = value.trim();
    match trimmed
        .strip_prefix("map[")
        .and_then(|inner| inner.strip_suffix(']'))
    {
        Some(inner) => inner
            .split_whitespace()
            .map(|port| port.strip_suffix(":{}").unwrap_or(port))
            .collect::<Vec<_>>()
            .join(" "),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(created_by: &str) -> Option<(String, String)> {
        dockerfile_line(created_by).map(|l| (l.instruction, l.value))
    }

    fn pair(instruction: &str, value: &str) -> Option<(String, String)> {
        Some((instruction.to_string(), value.to_string()))
    }

    #[test]
    fn classic_builder_lines() {
        let cases = [
            (
                "/bin/sh -c #(nop) ADD file:770e381d in / ",
                pair("ADD", "file:770e381d in /"),
            ),
            (
                "/bin/sh -c #(nop)  CMD [\"bash\"]",
                pair("CMD", "[\"bash\"]"),
            ),
            (
                "/bin/sh -c apt-get update && apt-get install -y curl",
                pair("RUN", "apt-get update && apt-get install -y curl"),
            ),
            ("/bin/sh -c #(nop)  EXPOSE 22/tcp", pair("EXPOSE", "22/tcp")),
            (
                "/bin/sh -c #(nop) COPY dir:4f1a in /app ",
                pair("COPY", "dir:4f1a in /app"),
            ),
            ("/bin/sh -c #(nop)  ENV A=b", pair("ENV", "A=b")),
            (
                "/bin/sh -c #(nop)  LABEL maintainer=me",
                pair("LABEL", "maintainer=me"),
            ),
            // An instruction keyword with two spaces keeps the second one, as in StackRox.
            ("EXPOSE  22/tcp", pair("EXPOSE", " 22/tcp")),
        ];
        for (input, expected) in cases {
            assert_eq!(line(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn buildkit_lines() {
        let cases = [
            (
                "RUN /bin/sh -c apt-get update # buildkit",
                pair("RUN", "apt-get update"),
            ),
            ("COPY . /app # buildkit", pair("COPY", ". /app")),
            ("ENV A=b", pair("ENV", "A=b")),
            ("WORKDIR /app", pair("WORKDIR", "/app")),
            ("USER app", pair("USER", "app")),
            (
                "EXPOSE map[22/tcp:{} 8080/tcp:{}]",
                pair("EXPOSE", "22/tcp 8080/tcp"),
            ),
            (
                "RUN |1 VERSION=1.2 /bin/sh -c make install # buildkit",
                pair("RUN", "make install"),
            ),
            (
                "RUN --mount=type=cache,target=/root/.cache /bin/sh -c pip install -r req.txt # buildkit",
                pair("RUN", "pip install -r req.txt"),
            ),
            ("ENTRYPOINT [\"/app\"]", pair("ENTRYPOINT", "[\"/app\"]")),
        ];
        for (input, expected) in cases {
            assert_eq!(line(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn build_argument_prefixes() {
        assert_eq!(
            line("|1 HTTP_PROXY=http://proxy:3128 /bin/sh -c apk update"),
            pair("RUN", "apk update")
        );
        // A value with a space: the shell marks where the command starts.
        assert_eq!(
            line("|2 A=one two B=3 /bin/sh -c echo hi"),
            pair("RUN", "echo hi")
        );
        // Exec form: no shell, so the N arguments are skipped word by word.
        assert_eq!(
            line("|2 A=1 B=2 apt-get update"),
            pair("RUN", "apt-get update")
        );
        // Not a build-argument prefix.
        assert_eq!(line("|x y"), pair("RUN", "|x y"));
    }

    #[test]
    fn unknown_instructions_are_run_and_keywords_are_whole_words() {
        assert_eq!(line("apt-get update"), pair("RUN", "apt-get update"));
        assert_eq!(line("ADDUSER bob"), pair("RUN", "ADDUSER bob"));
        assert_eq!(line("run lower case"), pair("RUN", "run lower case"));
        assert_eq!(line("HEALTHCHECK NONE"), pair("HEALTHCHECK", "NONE"));
        assert_eq!(line("ONBUILD RUN make"), pair("ONBUILD", "RUN make"));
        assert_eq!(line("STOPSIGNAL"), pair("STOPSIGNAL", ""));
    }

    #[test]
    fn empty_entries_are_left_out() {
        let history = vec![
            String::new(),
            "   ".to_string(),
            "/bin/sh -c #(nop) ".to_string(),
            "/bin/sh -c #(nop) WORKDIR /w".to_string(),
        ];
        let lines = dockerfile_lines(&history);
        assert_eq!(
            lines,
            vec![DockerfileLine {
                instruction: "WORKDIR".into(),
                value: "/w".into()
            }]
        );
    }

    #[test]
    fn run_without_shell_keeps_its_value() {
        assert_eq!(
            line("RUN [\"apt-get\", \"update\"]"),
            pair("RUN", "[\"apt-get\", \"update\"]")
        );
        assert_eq!(line("RUN --network=none"), pair("RUN", "--network=none"));
    }
}
