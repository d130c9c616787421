//! The pre-flight report: the row type ([`Finding`]) shared by the role and network checks, and
//! the [`Report`] with its text renderer (see docs/arm-and-aks.md#pre-flight-report).

use std::fmt;

use serde::Serialize;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// The condition holds.
    Pass,
    /// Not blocking, but the user should know.
    Warn,
    /// The tunnel will not work as configured; aborts unless checks are skipped.
    Fail,
    /// The check could not be made (e.g. a resource was unreadable).
    Unknown,
}

impl Status {
    /// `PASS`, `WARN`, `FAIL` or `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of a pre-flight report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A short stable id: `N1`…`N5` for network checks, `R1`… for role checks.
    pub id: String,
    /// What was checked.
    pub title: String,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to change, when something should change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    /// A finding without a fix.
    pub fn new(
        id: impl Into<String>,
        title: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            status,
            detail: detail.into(),
            fix: None,
        }
    }

    /// Adds the fix.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// The findings of a pre-flight run, in check order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The rows.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Appends a finding.
    pub fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// Whether nothing failed (WARN and UNKNOWN do not block).
    pub fn passed(&self) -> bool {
        !self.findings.iter().any(|f| f.status == Status::Fail)
    }

    /// The failed findings.
    pub fn failed(&self) -> Vec<&Finding> {
        self.with_status(Status::Fail)
    }

    /// The findings with `status`.
    pub fn with_status(&self, status: Status) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.status == status)
            .collect()
    }

    /// The finding with `id`, if any.
    pub fn get(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }

    /// Plain-text rendering: one line per check, then indented detail and fix lines.
    pub fn render_text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(
                f,
                "{:<7} {:<3} {}",
                finding.status.as_str(),
                finding.id,
                finding.title
            )?;
            if !finding.detail.is_empty() {
                writeln!(f, "            {}", finding.detail)?;
            }
            if let Some(fix) = &finding.fix {
                writeln!(f, "            fix: {fix}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_pass_fail_and_text() {
        let mut r = Report::default();
        r.push(Finding::new(
            "N1",
            "Bastion supports native client",
            Status::Pass,
            "Standard",
        ));
        r.push(Finding::new("N5", "Cluster SKU", Status::Warn, "Automatic"));
        assert!(r.passed());
        r.push(
            Finding::new(
                "N4",
                "Authorized IP ranges",
                Status::Fail,
                "20.1.2.3 not allowed",
            )
            .with_fix("az aks update ..."),
        );
        assert!(!r.passed());
        assert_eq!(r.failed().len(), 1);
        assert_eq!(r.get("N5").unwrap().status, Status::Warn);
        let text = r.render_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "PASS    N1  Bastion supports native client");
        assert!(lines.contains(&"WARN    N5  Cluster SKU"));
        assert!(lines.contains(&"FAIL    N4  Authorized IP ranges"));
        assert!(lines.contains(&"            fix: az aks update ..."));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["findings"][2]["status"], "FAIL");
    }
}
