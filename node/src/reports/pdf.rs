//! The PDF itself (printpdf): the laid-out lines in an embedded TrueType font, so any text the
//! font covers (accents, Greek, Cyrillic, …) shows and extracts as itself; "Page i of n" at the
//! foot of every page.

use super::ReportDoc;
use super::layout::{FOOTER_Y, PAGE_H, PAGE_W, layout};
use printpdf::{Mm, PdfDocument};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the font is not a usable TrueType font: {0}")]
    Font(String),
    #[error("the PDF could not be written: {0}")]
    Pdf(String),
}

#[derive(Debug)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub pages: usize,
}

const PT_TO_MM: f32 = 0.352_778;

/// Renders `doc` set in `font` (the bytes of a .ttf file).
pub fn render(doc: &ReportDoc, font: &[u8]) -> Result<Rendered, RenderError> {
    let face = ttf_parser::Face::parse(font, 0).map_err(|e| RenderError::Font(e.to_string()))?;
    let per_em = f32::from(face.units_per_em());
    let width = |text: &str, size: f32| -> f32 {
        let units: f32 = text
            .chars()
            .map(|c| {
                face.glyph_index(c)
                    .and_then(|g| face.glyph_hor_advance(g))
                    .map_or(per_em / 2.0, f32::from)
            })
            .sum();
        units / per_em * size * PT_TO_MM
    };
    let pages = layout(doc, &width);
    let (pdf, page1, layer1) = PdfDocument::new(&doc.title, Mm(PAGE_W), Mm(PAGE_H), "text");
    let font_ref = pdf
        .add_external_font(std::io::Cursor::new(font))
        .map_err(|e| RenderError::Font(e.to_string()))?;
    let n = pages.len();
    for (i, lines) in pages.iter().enumerate() {
        let layer = if i == 0 {
            pdf.get_page(page1).get_layer(layer1)
        } else {
            let (p, l) = pdf.add_page(Mm(PAGE_W), Mm(PAGE_H), "text");
            pdf.get_page(p).get_layer(l)
        };
        for line in lines {
            layer.use_text(
                line.text.as_str(),
                line.style.size_pt(),
                Mm(line.x),
                Mm(line.y),
                &font_ref,
            );
        }
        let footer = format!("Page {} of {n}", i + 1);
        let x = (PAGE_W - width(&footer, 9.0)) / 2.0;
        layer.use_text(footer, 9.0, Mm(x), Mm(FOOTER_Y), &font_ref);
    }
    let bytes = pdf
        .save_to_bytes()
        .map_err(|e| RenderError::Pdf(e.to_string()))?;
    Ok(Rendered { bytes, pages: n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_FONT;
    use crate::reports::Section;

    #[test]
    fn a_report_renders_to_a_pdf_with_its_pages() {
        let Ok(font) = std::fs::read(DEFAULT_FONT) else {
            panic!("{DEFAULT_FONT} is missing: apt-get install fonts-dejavu-core");
        };
        let doc = ReportDoc {
            title: "Les marées — Ἥλιος".into(),
            prompt: "Explain tides".into(),
            byline: "smollm2-135m".into(),
            sections: vec![Section {
                heading: "Causes".into(),
                paragraphs: vec!["The Moon pulls the sea. ".repeat(400)],
            }],
        };
        let r = render(&doc, &font).unwrap();
        assert!(r.bytes.starts_with(b"%PDF-"));
        assert!(r.pages >= 2, "{} pages", r.pages);
        assert!(render(&doc, b"not a font").is_err());
    }
}
