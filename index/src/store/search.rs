//! The user's search: filtered full-text search over profiles with relevance
//! order, a total count and highlighted snippets.

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::snippet::SnippetGenerator;
use tantivy::{TantivyDocument, Term};

use super::{FIRM, FirmIndex, IndexError, StoredFirm};
use crate::schema::language_slot;
use klynge_models::model::ProfileFilter;

#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub query: Option<String>,
    pub filter: ProfileFilter,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone)]
pub struct SearchHit {
    pub firm: StoredFirm,
    pub score: f32,
    /// HTML snippet with `<b>` around matched terms, when there was a query.
    pub snippet: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SearchPage {
    pub total: usize,
    pub hits: Vec<SearchHit>,
}

impl FirmIndex {
    /// Full-text search with filters, relevance order, total count and snippets.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchPage, IndexError> {
        let fields = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, Box::new(self.doc_type_query(FIRM)))];
        let text = request.query.as_deref().map(str::trim).filter(|text| !text.is_empty());
        let text_query = text.map(|text| {
            let mut searched = vec![(fields.name, 3.0)];
            for field in fields.body.into_iter().chain(fields.offers).chain(fields.needs) {
                searched.push((field, 1.0));
            }
            self.text_query(text, &searched)
        });
        match &text_query {
            Some(query) => clauses.push((Occur::Must, query.box_clone())),
            None => clauses.push((Occur::Must, Box::new(AllQuery))),
        }
        let filter = &request.filter;
        let filters = [
            (fields.kind, filter.kind.map(|kind| kind.as_str().to_string())),
            (fields.country, filter.country.clone()),
            (fields.region, filter.region.clone()),
            (fields.sector, filter.sector.clone()),
            (fields.size, filter.size.map(|size| size.as_str().to_string())),
            (fields.sme, filter.sme.map(|sme| sme.to_string())),
        ];
        for (field, value) in filters {
            if let Some(value) = value {
                let term = Term::from_field_text(field, &value);
                let filter = BoostQuery::new(Box::new(TermQuery::new(term, IndexRecordOption::Basic)), 0.0);
                clauses.push((Occur::Must, Box::new(filter)));
            }
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let limit = request.limit.max(1);
        let (top, total) = searcher
            .search(&query, &(TopDocs::with_limit(limit).and_offset(request.offset).order_by_score(), Count))?;
        let snippets = match &text_query {
            Some(text_query) => fields
                .body
                .into_iter()
                .map(|field| SnippetGenerator::create(&searcher, text_query.as_ref(), field).ok())
                .collect(),
            None => Vec::new(),
        };
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let firm = self.load_firm(&searcher, address)?;
            let snippet = snippets.get(language_slot(firm.firm.language)).and_then(|generator| {
                let generator = generator.as_ref()?;
                let doc: TantivyDocument = searcher.doc(address).ok()?;
                let snippet = generator.snippet_from_doc(&doc);
                (!snippet.fragment().is_empty()).then(|| snippet.to_html())
            });
            hits.push(SearchHit { firm, score, snippet });
        }
        Ok(SearchPage { total, hits })
    }
}
