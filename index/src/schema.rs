//! The tantivy schema and the per-language analysers. Each free-text field exists
//! once per supported language (`_en`, `_da`); a profile fills the copy of its own
//! language and queries search both, so Danish and English text are each stemmed
//! by their own stemmer.

use klynge_models::TextLanguage;
use tantivy::Index;
use tantivy::schema::{FAST, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};

/// The free-text parts of a profile that can be searched separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    /// Description, name and tags.
    Body,
    Offers,
    Needs,
}

#[derive(Clone)]
pub(crate) struct Fields {
    pub doc_type: Field,
    pub id: Field,
    pub raw: Field,
    pub normalised: Field,
    pub updated_at: Field,
    pub name: Field,
    pub body: [Field; 2],
    pub offers: [Field; 2],
    pub needs: [Field; 2],
    pub kind: Field,
    pub country: Field,
    pub region: Field,
    pub sector: Field,
    pub size: Field,
    pub sme: Field,
    pub member: Field,
}

pub(crate) const ANALYZERS: [(&str, Language); 2] = [("klynge_en", Language::English), ("klynge_da", Language::Danish)];

pub(crate) fn language_slot(language: TextLanguage) -> usize {
    match language {
        TextLanguage::English => 0,
        TextLanguage::Danish => 1,
    }
}

impl Fields {
    pub fn text(&self, field: TextField) -> [Field; 2] {
        match field {
            TextField::Body => self.body,
            TextField::Offers => self.offers,
            TextField::Needs => self.needs,
        }
    }
}

pub(crate) fn build_schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = |analyzer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(analyzer)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
    };
    let stored_text = |analyzer: &str| text(analyzer).set_stored();
    let fields = Fields {
        doc_type: builder.add_text_field("doc_type", STRING),
        id: builder.add_text_field("id", STRING | STORED | FAST),
        raw: builder.add_text_field("raw", STORED),
        normalised: builder.add_text_field("normalised", STORED),
        updated_at: builder.add_text_field("updated_at", STORED),
        name: builder.add_text_field("name", text("klynge_name")),
        body: [
            builder.add_text_field("body_en", stored_text("klynge_en")),
            builder.add_text_field("body_da", stored_text("klynge_da")),
        ],
        offers: [
            builder.add_text_field("offers_en", text("klynge_en")),
            builder.add_text_field("offers_da", text("klynge_da")),
        ],
        needs: [
            builder.add_text_field("needs_en", text("klynge_en")),
            builder.add_text_field("needs_da", text("klynge_da")),
        ],
        kind: builder.add_text_field("kind", STRING),
        country: builder.add_text_field("country", STRING),
        region: builder.add_text_field("region", STRING),
        sector: builder.add_text_field("sector", STRING),
        size: builder.add_text_field("size", STRING),
        sme: builder.add_text_field("sme", STRING),
        member: builder.add_text_field("member", STRING),
    };
    (builder.build(), fields)
}

pub(crate) fn register_analyzers(index: &Index) {
    let tokenizers = index.tokenizers();
    for (name, language) in ANALYZERS {
        tokenizers.register(
            name,
            TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(RemoveLongFilter::limit(40))
                .filter(LowerCaser)
                .filter(Stemmer::new(language))
                .build(),
        );
    }
    tokenizers.register(
        "klynge_name",
        TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .build(),
    );
}

/// The levels at which a sector filter may cut a normalised NACE code: `C10.51` →
/// `C`, `C10`, `C10.5`, `C10.51`. Indexing all of them turns a prefix filter into one
/// exact term lookup.
pub(crate) fn sector_prefixes(code: &str) -> Vec<&str> {
    [1, 3, 5, 6].into_iter().filter(|&end| end <= code.len()).map(|end| &code[..end]).collect()
}

/// Every NUTS level of a region code: `DK041` → `DK`, `DK0`, `DK04`, `DK041`.
pub(crate) fn region_prefixes(code: &str) -> Vec<&str> {
    (2.min(code.len())..=code.len()).map(|end| &code[..end]).collect()
}

#[cfg(test)]
mod tests {
    use super::{region_prefixes, sector_prefixes};

    #[test]
    fn prefixes_of_sector_and_region_codes() {
        assert_eq!(sector_prefixes("C10.51"), vec!["C", "C10", "C10.5", "C10.51"]);
        assert_eq!(sector_prefixes("C"), vec!["C"]);
        assert_eq!(region_prefixes("DK041"), vec!["DK", "DK0", "DK04", "DK041"]);
    }
}
