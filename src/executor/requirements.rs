//! Vetting a project's `requirements.txt` before anything is installed from
//! it. Pure helper of the executor, no actix inside.
//!
//! Only requirements the package index resolves are installed: a line that
//! points the installer anywhere else — a local path, an editable or VCS
//! checkout, a direct URL, another requirements file, another index — is
//! refused with its line number, so a project cannot make the node build
//! code it shipped beside its tests, nor two projects with the same file
//! share an environment that depends on their folders. The project itself
//! (`.`, `-e .`) is skipped instead: tests run from the project root, which
//! is on `sys.path`, as when a student runs pytest there.

/// Global options that only change how the index is read.
const HARMLESS_OPTIONS: [&str; 4] = ["--pre", "--prefer-binary", "--only-binary", "--no-binary"];

/// Endings of a local archive or wheel named as a requirement.
const ARCHIVES: [&str; 6] = [".whl", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("requirements.txt line {line} (`{text}`) is not installed: {why}")]
pub struct Refused {
    pub line: usize,
    pub text: String,
    pub why: &'static str,
}

/// What is installed: one requirement a line, comments and the project
/// itself left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    pub lines: Vec<String>,
}

impl Requirements {
    /// The text handed to the installer, and hashed into the environment's key.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// The distributions named, in their canonical form (PEP 503: lower
    /// case, each run of `-`, `_` and `.` one `-`), options left out.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .lines
            .iter()
            .filter(|l| !l.starts_with('-'))
            .map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c))).next().unwrap_or_default())
            .filter(|name| !name.is_empty())
            .map(canonical)
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// A distribution's name as pip and `importlib.metadata` compare them.
pub fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if "-_.".contains(c) {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Reads `text` as pip's requirements format, refusing the first line that
/// would install anything but packages from the index.
pub fn vet(text: &str) -> Result<Requirements, Refused> {
    let mut lines = Vec::new();
    for (number, line) in logical_lines(text) {
        let refuse = |why| Refused { line: number, text: line.chars().take(120).collect(), why };
        if line.is_empty() {
            continue;
        }
        if let Some(option) = line.strip_prefix('-') {
            let (name, value) = split_option(option);
            match name {
                "e" | "-editable" if is_project_itself(value) => continue,
                "e" | "-editable" => return Err(refuse("editable requirements are refused")),
                _ if HARMLESS_OPTIONS.contains(&format!("-{name}").as_str()) => lines.push(line),
                _ => return Err(refuse("options that name other files or indexes are refused")),
            }
            continue;
        }
        if is_project_itself(&line) {
            continue;
        }
        let spec = line.split(';').next().unwrap_or_default().trim();
        if spec.contains("://") || spec.starts_with("file:") || spec.contains('@') {
            return Err(refuse("URL and VCS requirements are refused"));
        }
        if spec.starts_with(['.', '/', '~']) || spec.contains('/') || spec.contains('\\') {
            return Err(refuse("local paths are refused"));
        }
        if ARCHIVES.iter().any(|a| spec.to_ascii_lowercase().ends_with(a)) {
            return Err(refuse("local archives are refused"));
        }
        lines.push(line);
    }
    Ok(Requirements { lines })
}

/// The lines pip reads, with their first physical line's number: a
/// trailing backslash joins the next line, and a `#` at the start or after
/// white space begins a comment.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (index, raw) in text.lines().enumerate() {
        if current.is_empty() {
            start = index + 1;
        }
        let without_comment = strip_comment(raw);
        match without_comment.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(without_comment);
                out.push((start, current.trim().to_owned()));
                current.clear();
            }
        }
    }
    if !current.trim().is_empty() {
        out.push((start, current.trim().to_owned()));
    }
    out
}

fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// `-e .`, `--editable=./` and the like: the option's name and its value.
fn split_option(option: &str) -> (&str, &str) {
    let end = option.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(option.len());
    let (name, rest) = option.split_at(end);
    (name, rest.trim_start_matches('=').trim())
}

fn is_project_itself(value: &str) -> bool {
    let path = value.split('[').next().unwrap_or_default().trim();
    matches!(path, "." | "./" | "file:." | "file:./")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_index_requirements_with_markers_extras_and_options() {
        let text = "# tools\nrequests==2.31 ; python_version >= '3.8'\nnumpy>=1.26  # fast\n\
                    pandas[performance] \\\n  <3\n--prefer-binary\n\n";
        let r = vet(text).unwrap();
        assert_eq!(
            r.lines,
            ["requests==2.31 ; python_version >= '3.8'", "numpy>=1.26", "pandas[performance]   <3", "--prefer-binary"]
        );
        assert_eq!(
            r.text(),
            "requests==2.31 ; python_version >= '3.8'\nnumpy>=1.26\npandas[performance]   <3\n--prefer-binary\n"
        );
    }

    #[test]
    fn names_are_the_canonical_distributions_without_versions_extras_markers_or_options() {
        let text = "pytest-Mock>=3 ; python_version >= '3.8'\nPytest_Timeout[extra]==2.1\nzope.interface\n\
                    --prefer-binary\npytest-mock\n";
        assert_eq!(vet(text).unwrap().names(), ["pytest-mock", "pytest-timeout", "zope-interface"]);
        assert_eq!(canonical("A__b.-C"), "a-b-c");
    }

    #[test]
    fn skips_the_project_itself() {
        let r = vet(".\n-e .\n--editable=./\n-e .[test]\npytest-mock\n").unwrap();
        assert_eq!(r.lines, ["pytest-mock"]);
    }

    #[test]
    fn refuses_what_is_not_on_the_index_naming_its_line() {
        let cases = [
            ("./evil", "local paths are refused"),
            ("../x", "local paths are refused"),
            ("/abs/path", "local paths are refused"),
            ("sub/pkg", "local paths are refused"),
            ("file:///tmp/x", "URL and VCS requirements are refused"),
            ("git+https://example.org/r.git", "URL and VCS requirements are refused"),
            ("pkg @ https://example.org/p.whl", "URL and VCS requirements are refused"),
            ("-e ./evil", "editable requirements are refused"),
            ("-e git+https://example.org/r.git#egg=r", "editable requirements are refused"),
            ("-r other.txt", "options that name other files or indexes are refused"),
            ("--requirement=other.txt", "options that name other files or indexes are refused"),
            ("-c constraints.txt", "options that name other files or indexes are refused"),
            ("-i https://example.org/simple", "options that name other files or indexes are refused"),
            ("--extra-index-url https://example.org", "options that name other files or indexes are refused"),
            ("-f ./wheels", "options that name other files or indexes are refused"),
            ("evil-1.0.tar.gz", "local archives are refused"),
        ];
        for (line, why) in cases {
            let err = vet(&format!("pytest\n\n{line}\n")).unwrap_err();
            assert_eq!((err.line, err.why), (3, why), "{line}");
            assert!(err.to_string().starts_with(&format!("requirements.txt line 3 (`{line}`) is not installed")));
        }
    }

    #[test]
    fn a_comment_hides_nothing_and_hash_inside_a_word_is_kept() {
        assert_eq!(vet("pkg==1#notacomment\n").unwrap().lines, ["pkg==1#notacomment"]);
        let err = vet("pytest # fine\n./evil # not fine\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
