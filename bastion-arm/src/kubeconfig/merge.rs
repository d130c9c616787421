//! Merging fetched credentials into a user's kubeconfig document.

use std::path::Path;

use yaml_serde::Value;

use super::{Kubeconfig, KubeconfigError, key};

impl Kubeconfig {
    /// Merges `incoming` into this document like `az aks get-credentials`: its clusters,
    /// contexts and users replace the entries of the same name or are appended, and its
    /// `current-context` becomes this document's. `apiVersion: v1` and `kind: Config` are added
    /// when missing; everything else is kept.
    pub fn merge(&mut self, incoming: &Kubeconfig) {
        let Some(map) = self.doc.as_mapping_mut() else {
            return;
        };
        for section in ["clusters", "contexts", "users"] {
            let entries: Vec<Value> = incoming
                .doc
                .get(section)
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default();
            let list = map
                .entry(key(section))
                .or_insert_with(|| Value::Sequence(Vec::new()));
            if !list.is_sequence() {
                *list = Value::Sequence(Vec::new());
            }
            if let Some(list) = list.as_sequence_mut() {
                for entry in entries {
                    let name = entry.get("name").cloned();
                    match list.iter_mut().find(|e| e.get("name") == name.as_ref()) {
                        Some(existing) => *existing = entry,
                        None => list.push(entry),
                    }
                }
            }
        }
        if let Some(current) = incoming.doc.get("current-context") {
            map.insert(key("current-context"), current.clone());
        }
        for (k, v) in [("apiVersion", "v1"), ("kind", "Config")] {
            map.entry(key(k))
                .or_insert_with(|| Value::String(v.to_owned()));
        }
    }

    /// The entries of `incoming` that would replace a *different* entry of the same name here,
    /// as `section/name` (`clusters/myaks`): what `az aks get-credentials` refuses without
    /// `--overwrite-existing`. Identical entries are not conflicts.
    pub fn conflicts_with(&self, incoming: &Kubeconfig) -> Vec<String> {
        let mut found = Vec::new();
        for section in ["clusters", "contexts", "users"] {
            let ours: Vec<&Value> = self
                .doc
                .get(section)
                .and_then(Value::as_sequence)
                .map(|s| s.iter().collect())
                .unwrap_or_default();
            for entry in incoming
                .doc
                .get(section)
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let Some(name) = entry.get("name") else {
                    continue;
                };
                if ours
                    .iter()
                    .any(|e| e.get("name") == Some(name) && *e != entry)
                {
                    found.push(format!("{section}/{}", name.as_str().unwrap_or("?")));
                }
            }
        }
        found
    }

    /// Renames the (first) context, its cluster and the context's cluster reference to `name`,
    /// and makes it current: `az aks get-credentials --context NAME`.
    pub fn rename_context(&mut self, name: &str) {
        let new = Value::String(name.to_owned());
        let mut old_cluster = None;
        if let Some(ctx) = self
            .doc
            .get_mut("contexts")
            .and_then(Value::as_sequence_mut)
            .and_then(|s| s.first_mut())
        {
            if let Some(m) = ctx.as_mapping_mut() {
                m.insert(key("name"), new.clone());
            }
            if let Some(c) = ctx.get_mut("context").and_then(Value::as_mapping_mut) {
                old_cluster = c.insert(key("cluster"), new.clone());
            }
        }
        if let Some(clusters) = self
            .doc
            .get_mut("clusters")
            .and_then(Value::as_sequence_mut)
        {
            let target = clusters
                .iter()
                .position(|c| old_cluster.is_some() && c.get("name") == old_cluster.as_ref())
                .unwrap_or(0);
            if let Some(m) = clusters.get_mut(target).and_then(Value::as_mapping_mut) {
                m.insert(key("name"), new.clone());
            }
        }
        if let Some(m) = self.doc.as_mapping_mut() {
            m.insert(key("current-context"), new);
        }
    }

    /// This document merged into the kubeconfig file at `path` as it is now (see
    /// [`Kubeconfig::merge`]), or unchanged when there is no such file. Nothing is written.
    pub fn merged_into_file(self, path: &Path) -> Result<Kubeconfig, KubeconfigError> {
        if !path.exists() {
            return Ok(self);
        }
        let mut base = Kubeconfig::read(path)?;
        base.merge(&self);
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ClusterSelector;
    use super::*;
    use crate::testing::{PRIVATE_CLUSTER_KUBECONFIG as FETCHED, USER_KUBECONFIG as EXISTING};

    #[test]
    fn merge_replaces_by_name_appends_the_rest_and_switches_context() {
        let mut base = Kubeconfig::parse(EXISTING).unwrap();
        base.merge(&Kubeconfig::parse(FETCHED).unwrap());
        assert_eq!(base.cluster_names(), ["other", "myaks"]);
        assert_eq!(
            base.server("myaks"),
            Some("https://myaks.privatelink.eastus.azmk8s.io:443")
        );
        assert_eq!(base.server("other"), Some("https://other.example:6443"));
        assert_eq!(base.context_names(), ["other", "myaks"]);
        assert_eq!(base.current_context(), Some("myaks"));
        let doc = base.as_value();
        assert_eq!(doc["users"].as_sequence().unwrap().len(), 2);
        assert_eq!(doc["preferences"]["colors"].as_bool(), Some(true));
        assert_eq!(doc["apiVersion"].as_str(), Some("v1"));
        assert_eq!(doc["kind"].as_str(), Some("Config"));
    }

    #[test]
    fn merge_into_an_empty_document_or_odd_sections() {
        let mut base = Kubeconfig::parse("clusters: oops\n").unwrap();
        base.merge(&Kubeconfig::parse(FETCHED).unwrap());
        assert_eq!(base.cluster_names(), ["myaks"]);
        assert_eq!(
            base.resolve_cluster(ClusterSelector::CurrentContext)
                .unwrap(),
            "myaks"
        );
    }

    #[test]
    fn merged_into_a_file_or_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let fetched = Kubeconfig::parse(FETCHED).unwrap();
        // No file yet: the fetched document alone.
        assert_eq!(fetched.clone().merged_into_file(&path).unwrap(), fetched);
        std::fs::write(&path, EXISTING).unwrap();
        let merged = fetched.merged_into_file(&path).unwrap();
        assert_eq!(merged.cluster_names(), ["other", "myaks"]);
        assert_eq!(merged.current_context(), Some("myaks"));
        // Nothing was written.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), EXISTING);
    }

    #[test]
    fn conflicts_are_different_entries_of_the_same_name() {
        let fetched = Kubeconfig::parse(FETCHED).unwrap();
        let existing = Kubeconfig::parse(EXISTING).unwrap();
        // EXISTING has an older `myaks` cluster (another server).
        assert_eq!(existing.conflicts_with(&fetched), ["clusters/myaks"]);
        let mut merged = existing.clone();
        merged.merge(&fetched);
        // The same entries again: nothing to refuse.
        assert!(merged.conflicts_with(&fetched).is_empty());
        let mut renamed = fetched.clone();
        renamed.rename_context("other");
        let found = merged.conflicts_with(&renamed);
        assert_eq!(found, ["clusters/other", "contexts/other"]);
    }

    #[test]
    fn rename_context_renames_context_cluster_and_current() {
        let mut k = Kubeconfig::parse(FETCHED).unwrap();
        k.rename_context("prod");
        assert_eq!(k.context_names(), ["prod"]);
        assert_eq!(k.cluster_names(), ["prod"]);
        assert_eq!(k.current_context(), Some("prod"));
        assert_eq!(
            k.resolve_cluster(ClusterSelector::CurrentContext).unwrap(),
            "prod"
        );
    }

    #[test]
    fn debug_shows_names_not_secrets() {
        let k = Kubeconfig::parse(FETCHED).unwrap();
        let text = format!("{k:?}");
        assert!(text.contains("myaks"), "{text}");
        assert!(!text.contains("token") && !text.contains("Q0E="), "{text}");
    }
}
