//! Rendering: human text (stderr, except where a command's output is the result) or JSON (one
//! object per result or event, one per line, on stdout).

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::OutputFormat;
use crate::exit::CliError;

/// Where and how a command reports.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Text or JSON.
    pub format: OutputFormat,
    /// `-q`: only errors (and results) are printed.
    pub quiet: bool,
}

impl Output {
    /// A renderer.
    pub fn new(format: OutputFormat, quiet: bool) -> Self {
        Self { format, quiet }
    }

    /// Whether JSON was asked for.
    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// A progress message for humans: stderr in text mode (unless quiet); nothing in JSON mode.
    pub fn info(&self, text: impl AsRef<str>) {
        if !self.quiet && !self.is_json() {
            eprintln!("{}", text.as_ref());
        }
    }

    /// A warning: stderr in text mode (unless quiet); a `warning` event in JSON.
    pub fn warn(&self, text: impl AsRef<str>) {
        if self.is_json() {
            self.json(&json!({"event": "warning", "message": text.as_ref()}));
        } else if !self.quiet {
            eprintln!("warning: {}", text.as_ref());
        }
    }

    /// A warning about security that `-q` does not hide (a tunnel exposed to the network, a
    /// token in the process list): stderr in text mode; a `warning` event in JSON.
    pub fn warn_always(&self, text: impl AsRef<str>) {
        if self.is_json() {
            self.json(&json!({"event": "warning", "message": text.as_ref()}));
        } else {
            eprintln!("warning: {}", text.as_ref());
        }
    }

    /// An event: `text` on stderr for humans (unless quiet), `value` as one JSON line on stdout.
    pub fn event(&self, text: impl AsRef<str>, value: Value) {
        if self.is_json() {
            self.json(&value);
        } else if !self.quiet {
            eprintln!("{}", text.as_ref());
        }
    }

    /// An event that is always shown in text mode, even with `-q` (e.g. the ready line).
    pub fn essential(&self, text: impl AsRef<str>, value: Value) {
        if self.is_json() {
            self.json(&value);
        } else {
            eprintln!("{}", text.as_ref());
        }
    }

    /// A result that is the command's output: `text` on stdout, or `value` as JSON on stdout.
    pub fn result(&self, text: impl AsRef<str>, value: Value) {
        if self.is_json() {
            self.json(&value);
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_ref().as_bytes());
            let _ = out.flush();
        }
    }

    /// One JSON object on its own line on stdout.
    pub fn json(&self, value: &Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }

    /// The final error: `error: <what> — <what to do>` on stderr; in JSON mode also an
    /// `error` object on stdout.
    pub fn error(&self, err: &CliError) {
        let err = &err.clone().with_default_hint();
        if self.is_json() {
            self.json(&json!({
                "event": "error",
                "error": err.what,
                "hint": err.hint,
                "detail": err.detail,
                "guide": err.guide,
                "kind": err.code.name(),
                "exit_code": err.code.status(),
            }));
        }
        eprintln!("error: {err}");
        for line in &err.guide {
            eprintln!("  {line}");
        }
    }
}

/// A step of a multi-step command (`aks`, `demo`): started now, reported with its duration.
#[derive(Debug)]
pub struct Step {
    out: Output,
    name: &'static str,
    started: Instant,
}

impl Output {
    /// Starts timing a step.
    pub fn step(&self, name: &'static str) -> Step {
        Step {
            out: *self,
            name,
            started: Instant::now(),
        }
    }
}

impl Step {
    /// Reports the step as done: `✓ <detail>  (<duration>)`.
    pub fn done(self, detail: impl AsRef<str>) -> Duration {
        let took = self.started.elapsed();
        self.out.event(
            format!("✓ {}  ({})", detail.as_ref(), duration(took)),
            json!({
                "event": "step",
                "step": self.name,
                "detail": detail.as_ref(),
                "duration_ms": took.as_millis() as u64,
            }),
        );
        took
    }
}

/// `1.23 s` / `420 ms`.
pub fn duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// `512 B`, `3.4 KiB`, `1.2 MiB`.
pub fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f < KIB {
        format!("{n} B")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else if f < KIB * KIB * KIB {
        format!("{:.1} MiB", f / (KIB * KIB))
    } else {
        format!("{:.2} GiB", f / (KIB * KIB * KIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(duration(Duration::from_millis(420)), "420 ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1.50 s");
    }
}
