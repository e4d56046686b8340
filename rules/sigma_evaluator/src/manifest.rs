//! The manifest of a deployment: name, the fields its rules read, a subscription by
//! logsource category and pinned actions, the highest level as default severity, MITRE ids
//! and the correlation timespans as windows.

use vigil_sdk::manifest::{MAX_CLAUSES, MAX_FIELDS};
use vigil_sdk::{Manifest, Severity, Subscription};

use crate::compile::push_unique;
use crate::{Correlation, DetectionRule, MAX_MITRE};

pub(crate) fn build_manifest(
    name: &str,
    version: &str,
    detections: &[DetectionRule],
    correlations: &[Correlation],
    mut fields: Vec<String>,
) -> Manifest {
    let severity = detections
        .iter()
        .filter(|d| d.alert)
        .map(|d| d.severity)
        .chain(correlations.iter().map(|c| c.severity))
        .min()
        .unwrap_or(Severity::P3);
    let mut mitre: Vec<String> = Vec::new();
    for id in detections.iter().flat_map(|d| &d.mitre).chain(correlations.iter().flat_map(|c| &c.mitre)) {
        if mitre.len() < MAX_MITRE {
            push_unique(&mut mitre, id);
        }
    }
    let mut description = String::from("Sigma: ");
    let titles: Vec<&str> =
        detections.iter().map(|d| d.title.as_str()).chain(correlations.iter().map(|c| c.title.as_str())).collect();
    description.push_str(&titles.join("; "));
    if description.len() > 1000 {
        let mut end = 1000;
        while !description.is_char_boundary(end) {
            end -= 1;
        }
        description.truncate(end);
    }
    // Declared fields are copied per event; past the cap, the rest are read lazily.
    fields.truncate(MAX_FIELDS);
    let mut manifest = Manifest::detection(name)
        .version(version)
        .description(&description)
        .severity(severity)
        .mitre(mitre)
        .fields(fields)
        .windows_ms(correlations.iter().map(|c| c.timespan_ms));
    // One clause per rule: its logsource category and the actions it can match (when its
    // condition pins them); past the clause cap, one clause per category; a rule without a
    // category or actions wants every event.
    let clause = |d: &DetectionRule| {
        let mut c = Subscription::all();
        if let Some(category) = d.category.as_ref().filter(|c| c.len() <= 128) {
            c = c.categories([category.clone()]);
        }
        if let Some(actions) = &d.actions {
            c = c.actions(actions.iter().cloned());
        }
        c
    };
    let mut clauses: Vec<Subscription> = Vec::new();
    for d in detections {
        let c = clause(d);
        if !clauses.contains(&c) {
            clauses.push(c);
        }
    }
    if clauses.iter().any(|c| c == &Subscription::all()) {
        clauses = vec![Subscription::all()];
    } else if clauses.len() > MAX_CLAUSES {
        let mut categories: Vec<String> = Vec::new();
        for c in &clauses {
            for category in &c.categories {
                push_unique(&mut categories, category);
            }
        }
        let every_clause_has_one = clauses.iter().all(|c| !c.categories.is_empty());
        clauses = if every_clause_has_one && categories.len() <= 256 {
            vec![Subscription::all().categories(categories)]
        } else {
            vec![Subscription::all()]
        };
    }
    for c in clauses {
        manifest = manifest.subscribe(c);
    }
    manifest
}
