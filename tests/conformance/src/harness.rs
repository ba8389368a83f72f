//! A minimal test runner for suites that need a live server: each test is a closure returning
//! `Err(reason)` on failure; the runner prints one line per test and a summary.

use crate::client::XsResult;
use std::fmt::Debug;
use std::time::Instant;

/// Collects pass/fail counts for one suite.
pub struct Runner {
    suite: String,
    filter: Option<String>,
    skip: Vec<String>,
    quiet: bool,
    pub passed: usize,
    pub failed: usize,
    pub failures: Vec<String>,
}

impl Runner {
    /// A runner for `suite`; only tests whose name contains `filter` run.
    pub fn new(suite: &str, filter: Option<String>, quiet: bool) -> Runner {
        Runner {
            suite: suite.to_string(),
            filter,
            skip: Vec::new(),
            quiet,
            passed: 0,
            failed: 0,
            failures: Vec::new(),
        }
    }

    /// Tests named here are not run (used when validating a suite against a reference server
    /// with known bugs); each skip is printed.
    pub fn skip(&mut self, names: &[String]) {
        self.skip.extend_from_slice(names);
    }

    /// Runs one test unless filtered out or skipped, printing `ok`/`FAIL` with its duration.
    pub fn run(&mut self, name: &str, f: impl FnOnce() -> Result<(), String>) {
        if self.filter.as_deref().is_some_and(|p| !name.contains(p)) {
            return;
        }
        if self.skip.iter().any(|s| s == name) {
            println!("  skip {}/{name} (--skip)", self.suite);
            return;
        }
        let t = Instant::now();
        let r = f();
        let ms = t.elapsed().as_millis();
        match r {
            Ok(()) => {
                self.passed += 1;
                if !self.quiet {
                    println!("  ok   {}/{name} ({ms} ms)", self.suite);
                }
            }
            Err(e) => {
                self.failed += 1;
                println!("  FAIL {}/{name}: {e}", self.suite);
                self.failures.push(format!("{name}: {e}"));
            }
        }
    }

    /// Prints the summary line `<suite>: N passed, M failed`; true when nothing failed.
    pub fn finish(&self) -> bool {
        println!(
            "{}: {} passed, {} failed",
            self.suite, self.passed, self.failed
        );
        self.failed == 0
    }
}

/// `Ok` when `got == want`, else an error naming `what` with both values.
pub fn eq<T: Debug + PartialEq>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

/// Compares a reply with an expected payload or error, printing payloads readably.
pub fn reply(what: &str, got: XsResult, want: XsResult) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {}, want {}",
            render(&got),
            render(&want)
        ))
    }
}

/// The `OK\0` acknowledgement payload.
pub fn ok() -> XsResult {
    Ok(b"OK\0".to_vec())
}

/// An error reply with the given name.
pub fn err(name: &str) -> XsResult {
    Err(name.to_string())
}

/// A successful reply with the given payload.
pub fn val(bytes: &[u8]) -> XsResult {
    Ok(bytes.to_vec())
}

/// Renders a reply as `"payload"` or `ERROR(name)`.
pub fn render(r: &XsResult) -> String {
    match r {
        Ok(p) => format!("\"{}\"", crate::wire::show(p)),
        Err(e) => format!("ERROR({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons() {
        assert!(reply("w", ok(), ok()).is_ok());
        assert_eq!(
            reply("r", err("ENOENT"), val(b"x")).unwrap_err(),
            "r: got ERROR(ENOENT), want \"x\""
        );
        assert_eq!(eq("n", 1, 2).unwrap_err(), "n: got 1, want 2");
        let mut r = Runner::new("s", Some("keep".into()), true);
        r.run("keep-me", || Ok(()));
        r.run("skip-me", || Err("not run".into()));
        r.run("keep-fail", || Err("boom".into()));
        r.skip(&["keep-skipped".to_string()]);
        r.run("keep-skipped", || Err("skipped".into()));
        assert_eq!((r.passed, r.failed), (1, 1));
        assert!(!r.finish());
    }
}
