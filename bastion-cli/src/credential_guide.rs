//! A first run without any credential reads like a guide: which credentials were tried and why
//! each was unavailable, then the command or flag that fixes each case. The SDK's own message
//! (one long line with a troubleshooting link per credential) stays in `--output json`.

/// The guide shown under "no Azure credential could give an access token", from the SDK's
/// message: which credentials were tried and why each failed, then the fixes. (`exit` makes
/// the error; this module only reads the message, so it imports nothing of the CLI's.)
pub fn guide(cause: &str) -> Vec<String> {
    let mut guide = Vec::new();
    let tried = tried(cause);
    if tried.is_empty() {
        guide.push(format!("the credential said: {}", first_sentence(cause)));
    } else {
        guide.push("tried:".to_owned());
        for (name, why) in tried {
            guide.push(format!("  {name}: {why}"));
        }
    }
    guide.extend(
        [
            "fix one of:",
            "  az login                         sign in with the Azure CLI (the default credential)",
            "  --auth managed-identity          on an Azure VM, App Service or pod with an identity",
            "  --auth client-secret             with AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET",
            "  --auth token --token-file FILE   an ARM access token you already have",
            "or try bastion without Azure: bastion demo",
        ]
        .map(str::to_owned),
    );
    guide
}

/// `(credential, why)` for each credential the SDK's message reports as failed.
fn tried(cause: &str) -> Vec<(&'static str, String)> {
    const MARK: &str = "Credential authentication failed.";
    let cause = cause.split_whitespace().collect::<Vec<_>>().join(" ");
    // Where each "<Name>Credential authentication failed." starts, and its name.
    let marks: Vec<(usize, usize, &str)> = cause
        .match_indices(MARK)
        .map(|(at, _)| {
            let start = cause[..at]
                .rfind(|c: char| !c.is_ascii_alphanumeric())
                .map_or(0, |i| i + 1);
            (start, at + MARK.len(), &cause[start..at])
        })
        .collect();
    marks
        .iter()
        .enumerate()
        .map(|(i, &(_, reason_start, name))| {
            let reason_end = marks.get(i + 1).map_or(cause.len(), |next| next.0);
            (
                friendly(name),
                first_sentence(&cause[reason_start..reason_end]),
            )
        })
        .collect()
}

fn friendly(sdk_name: &str) -> &'static str {
    match sdk_name {
        "AzureCli" => "Azure CLI (az)",
        "AzureDeveloperCli" => "Azure Developer CLI (azd)",
        "ManagedIdentity" | "ImdsManagedIdentity" | "AppServiceManagedIdentity" => {
            "managed identity"
        }
        "WorkloadIdentity" => "workload identity",
        "ClientSecret" => "client secret",
        "Environment" => "environment variables",
        _ => "a credential",
    }
}

/// Why one credential failed: the SDK's reason, or, when that only says "non-transport error
/// occurred", the detail that follows its troubleshooting link; at most 240 characters.
fn first_sentence(text: &str) -> String {
    let (before, after) = match text.find("To troubleshoot") {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let before = before.trim().trim_end_matches(['.', ';', ':']);
    // "To troubleshoot, visit URL - detail" or "... URL: detail".
    let detail = after
        .and_then(|a| a.split_once("visit "))
        .and_then(|(_, rest)| rest.split_once(char::is_whitespace))
        .map(|(_, detail)| detail.trim_start_matches(['-', ':', ' ']).trim())
        .filter(|d| !d.is_empty());
    let generic = before.is_empty() || before.starts_with("non-transport error");
    let chosen = match detail {
        Some(d) if generic => d.strip_prefix("invalid configuration: ").unwrap_or(d),
        _ => before,
    };
    let mut out: String = chosen.chars().take(240).collect();
    if chosen.chars().count() > 240 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_AZ: &str = "non-transport error occurred which will not be retried: Multiple errors were encountered while attempting to authenticate:\nAzureCliCredential authentication failed. az not found on PATH\nTo troubleshoot, visit https://aka.ms/azsdk/rust/identity/troubleshoot#azure-cli - az not found on PATH\nAzureDeveloperCliCredential authentication failed. azd not found on PATH\nTo troubleshoot, visit https://aka.ms/azsdk/rust/identity/troubleshoot#azd - azd not found on PATH";

    #[test]
    fn each_credential_tried_is_named_once_with_its_reason() {
        assert_eq!(
            tried(NO_AZ),
            [
                ("Azure CLI (az)", "az not found on PATH".to_owned()),
                (
                    "Azure Developer CLI (azd)",
                    "azd not found on PATH".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn the_guide_has_the_fixes_and_no_troubleshooting_links() {
        let text = guide(NO_AZ).join("\n");
        for needle in [
            "az login",
            "--auth managed-identity",
            "--auth client-secret",
            "--auth token",
            "bastion demo",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        assert!(!text.contains("https://"), "{text}");
        assert_eq!(text.matches(": az not found on PATH").count(), 1, "{text}");
        assert_eq!(text.matches(": azd not found on PATH").count(), 1, "{text}");
    }

    #[test]
    fn a_generic_reason_gives_way_to_the_detail_after_the_link() {
        let cause = "ManagedIdentityCredential authentication failed. non-transport error occurred which will not be retried\nTo troubleshoot, visit https://aka.ms/x#managed-id: invalid configuration: refusing plain http to localhost: it resolves to 192.0.2.2";
        assert_eq!(
            tried(cause),
            [(
                "managed identity",
                "refusing plain http to localhost: it resolves to 192.0.2.2".to_owned()
            )]
        );
    }

    #[test]
    fn an_unrecognised_message_is_still_shown_briefly() {
        let guide = guide("the token endpoint said no. To troubleshoot, visit x");
        assert!(guide[0].contains("the token endpoint said no"), "{guide:?}");
    }
}
