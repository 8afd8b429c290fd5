//! The sections of a report, from the model's text: Markdown headings (`#`, `##`, …) and lines
//! that are only bold (`**Method**`) start a section; text before the first heading, or a text
//! without any, is one section under a default heading.

#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    pub heading: String,
    /// Paragraphs, Markdown emphasis removed.
    pub paragraphs: Vec<String>,
}

fn heading_of(line: &str) -> Option<String> {
    let t = line.trim();
    if let Some(rest) = t.strip_prefix('#') {
        let h = rest.trim_start_matches('#').trim();
        return (!h.is_empty()).then(|| plain(h));
    }
    let inner = t.strip_prefix("**")?.strip_suffix("**")?;
    let inner = inner.trim().trim_end_matches(':');
    (!inner.is_empty() && !inner.contains("**") && inner.chars().count() <= 80)
        .then(|| inner.to_string())
}

/// Text without Markdown emphasis markers.
fn plain(s: &str) -> String {
    s.replace("**", "").replace("__", "")
}

pub fn sections(text: &str, default_heading: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut current = Section {
        heading: default_heading.to_string(),
        paragraphs: Vec::new(),
    };
    let mut para = String::new();
    let flush = |para: &mut String, sec: &mut Section| {
        if !para.trim().is_empty() {
            sec.paragraphs.push(plain(para.trim()));
        }
        para.clear();
    };
    for line in text.lines() {
        if let Some(h) = heading_of(line) {
            flush(&mut para, &mut current);
            let next = Section {
                heading: h,
                paragraphs: Vec::new(),
            };
            let prev = std::mem::replace(&mut current, next);
            if !prev.paragraphs.is_empty() {
                out.push(prev);
            }
        } else if line.trim().is_empty() {
            flush(&mut para, &mut current);
        } else {
            // A list item keeps its own line.
            let t = line.trim();
            if t.starts_with("- ") || t.starts_with("* ") || t.starts_with("• ") {
                flush(&mut para, &mut current);
            }
            if !para.is_empty() {
                para.push(' ');
            }
            para.push_str(t);
        }
    }
    flush(&mut para, &mut current);
    if !current.paragraphs.is_empty() || out.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_split_sections_and_text_without_any_is_one() {
        let s = sections("Tides rise.\nAnd fall.", "Report");
        assert_eq!(
            s,
            vec![Section {
                heading: "Report".into(),
                paragraphs: vec!["Tides rise. And fall.".into()],
            }]
        );
        let text = "Intro line.\n\n# Causes\nThe **Moon** pulls.\n\n**Effects:**\n- high water\n- low water\n## Empty\n";
        let s = sections(text, "Overview");
        let headings: Vec<_> = s.iter().map(|s| s.heading.as_str()).collect();
        assert_eq!(headings, ["Overview", "Causes", "Effects"]);
        assert_eq!(s[1].paragraphs, ["The Moon pulls."]);
        assert_eq!(s[2].paragraphs, ["- high water", "- low water"]);
        assert_eq!(sections("", "Report")[0].paragraphs.len(), 0);
    }
}
