//! Kyverno's wildcard match (`ext/wildcard`, which wraps go-wildcard v1.0.3 `Match`).
//!
//! The whole string must match (anchored), case matters, `*` matches any run of characters
//! (including none, and including `/`, `:` and `@`), `?` matches exactly one character
//! (including `/`). There is no escaping and there are no character classes. An empty pattern
//! matches only the empty string. Matching is per Unicode scalar value, as go-wildcard walks
//! runes.

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    if pattern.is_empty() {
        return name.is_empty();
    }
    if pattern == "*" {
        return true;
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    matches_chars(&pattern, &name)
}

/// Greedy match with backtracking to the last `*`: the same language as go-wildcard's
/// recursive `deepMatchRune`, without its exponential worst case.
fn matches_chars(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and how much of `name` it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some('?') => {
                p += 1;
                n += 1;
            }
            Some(c) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                // Let the last `*` take one more character and retry from after it.
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    // Only stars may remain.
    pattern[p..].iter().all(|c| *c == '*')
}

/// Whether any of `patterns` matches `name`.
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| matches(p, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_go_wildcard() {
        let cases = [
            ("*", "s3:GetObject", true),
            ("", "s3:GetObject", false),
            ("", "", true),
            ("s3:*", "s3:ListMultipartUploadParts", true),
            ("s3:ListBucketMultipartUploads", "s3:ListBucket", false),
            ("my-bucket/oo*", "my-bucket/oo", true),
            ("my-bucket/In*", "my-bucket/India/Karnataka/", true),
            ("my-bucket/In*", "my-bucket/Karnataka/India/", false),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/Karnataka/Ban/Ban/Ban",
                true,
            ),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/Karnataka/Bangalore",
                false,
            ),
            ("a?c", "a/c", true),
            ("a?c", "ac", false),
            ("?", "", false),
            ("a*", "A", false),
            ("**", "", true),
            ("*?", "", false),
            ("*@*", "nginx@sha256:abc", true),
            ("*@*", "nginx:1.25", false),
            ("ghcr.io/o/app:v1*", "ghcr.io/o/app@sha256:abc", false),
            ("é?", "éé", true),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(matches(pattern, name), want, "{pattern:?} vs {name:?}");
        }
    }

    #[test]
    fn many_stars_stay_fast() {
        let pattern = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let name = "a".repeat(200);
        assert!(!matches(pattern, &name));
    }
}
