//! Research reports as files: the LLM's text split into sections (`sections`), laid out into
//! pages with real glyph widths (`layout`) and written as a PDF with an embedded TrueType font
//! (`pdf`). Pure and synchronous: the render activity runs it on a blocking thread.

mod layout;
mod pdf;
mod sections;

pub use layout::{Line, Page, Style, layout};
pub use pdf::{RenderError, Rendered, render};
pub use sections::{Section, sections};

/// What a report shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportDoc {
    pub title: String,
    pub prompt: String,
    pub sections: Vec<Section>,
    /// One line under the title: the model, the date.
    pub byline: String,
}
