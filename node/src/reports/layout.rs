//! Page layout: words wrapped to the text width by measured glyph advances, lines placed top
//! down on A4 pages, a new page when one is full. Positions are millimetres from the bottom-left
//! corner, as PDF has them.

use super::ReportDoc;

pub const PAGE_W: f32 = 210.0;
pub const PAGE_H: f32 = 297.0;
pub const MARGIN: f32 = 20.0;
/// The footer (page numbers) sits below the text area.
pub const FOOTER_Y: f32 = 10.0;
const PT_TO_MM: f32 = 0.352_778;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Style {
    Title,
    Byline,
    Prompt,
    Heading,
    Body,
}

impl Style {
    pub fn size_pt(self) -> f32 {
        match self {
            Style::Title => 20.0,
            Style::Heading => 14.0,
            Style::Body => 11.0,
            Style::Byline | Style::Prompt => 9.5,
        }
    }

    /// Space before a block of this style, in mm.
    fn space_before(self) -> f32 {
        match self {
            Style::Heading => 5.0,
            Style::Body | Style::Prompt => 2.0,
            Style::Title | Style::Byline => 0.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub text: String,
    pub style: Style,
    pub x: f32,
    pub y: f32,
}

pub type Page = Vec<Line>;

struct Cursor<'a> {
    pages: Vec<Page>,
    y: f32,
    width: &'a dyn Fn(&str, f32) -> f32,
}

impl Cursor<'_> {
    fn line(&mut self, text: String, style: Style) {
        let h = style.size_pt() * PT_TO_MM * 1.35;
        if self.y - h < MARGIN {
            self.pages.push(Vec::new());
            self.y = PAGE_H - MARGIN;
        }
        self.y -= h;
        let page = self.pages.last_mut();
        if let Some(page) = page {
            page.push(Line {
                text,
                style,
                x: MARGIN,
                y: self.y,
            });
        }
    }

    /// `text` wrapped to the text width; a word longer than a line is cut by characters.
    fn block(&mut self, text: &str, style: Style) {
        self.y -= style.space_before();
        let max = PAGE_W - 2.0 * MARGIN;
        let size = style.size_pt();
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if (self.width)(&candidate, size) <= max {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                self.line(std::mem::take(&mut line), style);
            }
            let mut piece = String::new();
            for c in word.chars() {
                piece.push(c);
                if (self.width)(&piece, size) > max {
                    piece.pop();
                    self.line(std::mem::take(&mut piece), style);
                    piece.push(c);
                }
            }
            line = piece;
        }
        if !line.is_empty() {
            self.line(line, style);
        }
    }
}

/// The report's pages. `width(text, size_pt)` is the text's width in mm.
pub fn layout(doc: &ReportDoc, width: &dyn Fn(&str, f32) -> f32) -> Vec<Page> {
    let mut c = Cursor {
        pages: vec![Vec::new()],
        y: PAGE_H - MARGIN,
        width,
    };
    c.block(&doc.title, Style::Title);
    c.block(&doc.byline, Style::Byline);
    c.block(&format!("Prompt: {}", doc.prompt), Style::Prompt);
    for s in &doc.sections {
        c.block(&s.heading, Style::Heading);
        for p in &s.paragraphs {
            c.block(p, Style::Body);
        }
    }
    c.pages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::Section;

    /// Every character 2 mm wide at any size: 85 fit on a line.
    fn fixed(text: &str, _size: f32) -> f32 {
        text.chars().count() as f32 * 2.0
    }

    #[test]
    fn long_text_wraps_within_the_margins_and_flows_onto_new_pages() {
        let doc = ReportDoc {
            title: "Tides".into(),
            prompt: "why".into(),
            byline: "m".into(),
            sections: vec![Section {
                heading: "Body".into(),
                paragraphs: vec!["word ".repeat(3000), "x".repeat(200)],
            }],
        };
        let pages = layout(&doc, &fixed);
        assert!(pages.len() > 3, "{} pages", pages.len());
        for line in pages.iter().flatten() {
            assert!(fixed(&line.text, 11.0) <= PAGE_W - 2.0 * MARGIN, "{line:?}");
            assert!(line.y >= MARGIN && line.y <= PAGE_H - MARGIN, "{line:?}");
        }
        assert_eq!(pages[0][0].text, "Tides");
        assert_eq!(pages[0][0].style, Style::Title);
        let long: Vec<_> = pages
            .iter()
            .flatten()
            .filter(|l| l.text.starts_with('x'))
            .collect();
        assert_eq!(long.len(), 3, "a 200-char word is cut into 85 + 85 + 30");
    }
}
