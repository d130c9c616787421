//! A check of the workspace's test layout: each crate's integration tests are one binary,
//! `tests/main.rs`, which declares every test file as a module. A file left out of it would
//! never be built or run, silently; each `tests/main.rs` asserts that none is.

use std::path::Path;

/// Panics, naming them, if the crate at `manifest_dir` has `tests/*.rs` files that its
/// `tests/main.rs` does not declare.
pub fn assert_test_files_declared(manifest_dir: &str) {
    let missing = undeclared_test_files(&Path::new(manifest_dir).join("tests"));
    assert!(
        missing.is_empty(),
        "add `mod NAME;` to {manifest_dir}/tests/main.rs for {missing:?}: a test file it does \
         not declare is never built or run"
    );
}

/// The `tests/*.rs` files in `tests_dir` that its `main.rs` does not declare with
/// `mod NAME;`, sorted. A directory or `main.rs` that cannot be read is reported as a missing
/// entry too, so that the check fails loudly rather than passing on nothing.
fn undeclared_test_files(tests_dir: &Path) -> Vec<String> {
    let main = match std::fs::read_to_string(tests_dir.join("main.rs")) {
        Ok(text) => text,
        Err(e) => return vec![format!("{}/main.rs: {e}", tests_dir.display())],
    };
    let declared: Vec<&str> = main
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    let entries = match std::fs::read_dir(tests_dir) {
        Ok(entries) => entries,
        Err(e) => return vec![format!("{}: {e}", tests_dir.display())],
    };
    let mut missing: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".rs").map(str::to_owned))
        .filter(|stem| stem != "main" && !declared.contains(&stem.as_str()))
        .collect();
    missing.sort();
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_missing_from_main_rs_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.rs"),
            "//! doc\n\nmod common;\nmod listed;\n",
        )
        .unwrap();
        for f in [
            "listed.rs",
            "forgotten.rs",
            "also_forgotten.rs",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("common")).unwrap();
        assert_eq!(
            undeclared_test_files(dir.path()),
            vec!["also_forgotten".to_owned(), "forgotten".to_owned()]
        );
    }

    #[test]
    #[should_panic(expected = "add `mod NAME;`")]
    fn the_assertion_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let tests = dir.path().join("tests");
        std::fs::create_dir(&tests).unwrap();
        std::fs::write(tests.join("main.rs"), "").unwrap();
        std::fs::write(tests.join("forgotten.rs"), "").unwrap();
        assert_test_files_declared(dir.path().to_str().unwrap());
    }

    #[test]
    fn an_unreadable_directory_is_not_a_pass() {
        let dir = tempfile::tempdir().unwrap();
        let missing = undeclared_test_files(&dir.path().join("absent"));
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].contains("main.rs"), "{missing:?}");
    }
}
