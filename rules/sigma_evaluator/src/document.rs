//! The Sigma text as YAML documents, and the lines of the text errors point at.

/// One YAML document of the text, with the line it starts at (1-based).
pub(crate) struct Doc {
    pub(crate) text: String,
    pub(crate) first_line: usize,
}

impl Doc {
    /// The text's line of the first line of this document containing `needle`.
    pub(crate) fn line_of(&self, needle: &str) -> usize {
        if needle.is_empty() {
            return self.first_line;
        }
        self.text.lines().position(|l| l.contains(needle)).map_or(self.first_line, |i| self.first_line + i)
    }

    /// The first line declaring a top-level `key:`.
    pub(crate) fn key_line(&self, key: &str) -> usize {
        let prefix = format!("{key}:");
        self.text.lines().position(|l| l.starts_with(&prefix)).map_or(self.first_line, |i| self.first_line + i)
    }

    pub(crate) fn has_key(&self, key: &str) -> bool {
        let prefix = format!("{key}:");
        self.text.lines().any(|l| l.starts_with(&prefix))
    }

    /// The line of an error message: its first quoted word, else the first `|modifier` the
    /// message names (`invalid CIDR` -> a line with `|cidr`), else the document's start.
    pub(crate) fn error_line(&self, message: &str) -> usize {
        let word = quoted(message);
        if !word.is_empty() && self.text.contains(word) {
            return self.line_of(word);
        }
        let lower = message.to_ascii_lowercase();
        for (i, line) in self.text.lines().enumerate() {
            let named = line.split('|').skip(1).any(|m| {
                let m = m.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("");
                m.len() >= 2
                    && (lower.contains(&format!(" {m}")) || lower.starts_with(m) || lower.contains(&format!("{m} ")))
            });
            if named {
                return self.first_line + i;
            }
        }
        self.first_line
    }

    /// The line a YAML error message points at (`... at line N column M`), in the text.
    pub(crate) fn yaml_error_line(&self, message: &str) -> usize {
        message
            .split("line ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(self.first_line, |n| self.first_line + n.saturating_sub(1))
    }
}

pub(crate) fn split_documents(text: &str) -> Vec<Doc> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut first_line = 1;
    for (i, line) in text.lines().enumerate() {
        let marker = line.trim_end();
        if marker == "---" || marker == "..." {
            if !current.trim().is_empty() {
                docs.push(Doc { text: std::mem::take(&mut current), first_line });
            }
            current.clear();
            first_line = i + 2;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.trim().is_empty() {
        docs.push(Doc { text: current, first_line });
    }
    docs
}

/// The first quoted word of an error message (`'foo'`, `"foo"` or `` `foo` ``), to find it
/// in the document.
fn quoted(message: &str) -> &str {
    for q in ['\'', '"', '`'] {
        if let Some(start) = message.find(q)
            && let Some(len) = message[start + 1..].find(q)
        {
            return &message[start + 1..start + 1 + len];
        }
    }
    ""
}
