//! The SQL dialect Tessera parses with: sqlparser's PostgreSQL dialect, with PostgreSQL's own
//! rules for which keywords may stand as an alias without `AS`.
//!
//! sqlparser reserves, in every dialect, keywords that other databases use after a table or
//! an expression (`TOP`, `SORT`, `FORMAT`, `SETTINGS`, `SAMPLE`, ...), so valid PostgreSQL
//! such as `SELECT * FROM (SELECT ... LIMIT 1) top` failed to parse. PostgreSQL takes any
//! unreserved or column-name keyword as a table alias (gram.y: `alias_clause` → `ColId`) and
//! most keywords as a bare column label (`BareColLabel`); here a keyword stays reserved as an
//! alias only when PostgreSQL reserves it too (its reserved and type/function-name keywords,
//! kwlist.h) or when reading it as an alias would change how a valid statement parses
//! (`SET` after `UPDATE t`). Everything else is the PostgreSQL dialect's own behaviour
//! ([`Dialect::dialect`] answers as `PostgreSqlDialect`, so the parser's dialect checks see
//! PostgreSQL).

use std::any::TypeId;

use sqlparser::dialect::{Dialect, PostgreSqlDialect, Precedence};
use sqlparser::keywords::{self, Keyword};
use sqlparser::parser::{Parser, ParserError};

/// sqlparser's PostgreSQL dialect with PostgreSQL's alias rules (see the module docs).
#[derive(Debug, Default)]
pub struct TesseraDialect(PostgreSqlDialect);

/// Keywords sqlparser reserves as a table alias that PostgreSQL does not (not keywords in
/// PostgreSQL at all, or unreserved ones).
const TABLE_ALIAS_KEYWORDS: &[Keyword] = &[
    Keyword::TOP,
    Keyword::SORT,
    Keyword::PIVOT,
    Keyword::UNPIVOT,
    Keyword::EXPLAIN,
    Keyword::VIEW,
    Keyword::MINUS,
    Keyword::CLUSTER,
    Keyword::DISTRIBUTE,
    Keyword::GLOBAL,
    Keyword::ANTI,
    Keyword::SEMI,
    Keyword::OUTPUT,
    Keyword::ASOF,
    Keyword::MATCH_CONDITION,
    Keyword::QUALIFY,
    Keyword::PARTITION,
    Keyword::PREWHERE,
    Keyword::SETTINGS,
    Keyword::FORMAT,
    Keyword::START,
    Keyword::CONNECT,
    Keyword::MATCH_RECOGNIZE,
    Keyword::SAMPLE,
    Keyword::OPEN,
];

/// Keywords sqlparser reserves as a column alias that PostgreSQL accepts as a bare label.
const COLUMN_ALIAS_KEYWORDS: &[Keyword] = &[
    Keyword::TOP,
    Keyword::SORT,
    Keyword::VIEW,
    Keyword::MINUS,
    Keyword::CLUSTER,
    Keyword::DISTRIBUTE,
    Keyword::EXPLAIN,
];

impl Dialect for TesseraDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<PostgreSqlDialect>()
    }

    fn is_table_alias(&self, kw: &Keyword, _parser: &mut Parser) -> bool {
        !keywords::RESERVED_FOR_TABLE_ALIAS.contains(kw) || TABLE_ALIAS_KEYWORDS.contains(kw)
    }

    fn is_column_alias(&self, kw: &Keyword, _parser: &mut Parser) -> bool {
        !keywords::RESERVED_FOR_COLUMN_ALIAS.contains(kw) || COLUMN_ALIAS_KEYWORDS.contains(kw)
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.0.identifier_quote_style(identifier)
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.0.is_delimited_identifier_start(ch)
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        self.0.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        self.0.is_identifier_part(ch)
    }
    fn supports_unicode_string_literal(&self) -> bool {
        self.0.supports_unicode_string_literal()
    }
    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        self.0.is_reserved_for_identifier(kw)
    }
    fn is_custom_operator_part(&self, ch: char) -> bool {
        self.0.is_custom_operator_part(ch)
    }
    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        self.0.get_next_precedence(parser)
    }
    fn supports_filter_during_aggregation(&self) -> bool {
        self.0.supports_filter_during_aggregation()
    }
    fn supports_group_by_expr(&self) -> bool {
        self.0.supports_group_by_expr()
    }
    fn prec_value(&self, prec: Precedence) -> u8 {
        self.0.prec_value(prec)
    }
    fn allow_extract_custom(&self) -> bool {
        self.0.allow_extract_custom()
    }
    fn allow_extract_single_quotes(&self) -> bool {
        self.0.allow_extract_single_quotes()
    }
    fn supports_create_index_with_clause(&self) -> bool {
        self.0.supports_create_index_with_clause()
    }
    fn supports_explain_with_utility_options(&self) -> bool {
        self.0.supports_explain_with_utility_options()
    }
    fn supports_listen_notify(&self) -> bool {
        self.0.supports_listen_notify()
    }
    fn supports_factorial_operator(&self) -> bool {
        self.0.supports_factorial_operator()
    }
    fn supports_bitwise_shift_operators(&self) -> bool {
        self.0.supports_bitwise_shift_operators()
    }
    fn supports_comment_on(&self) -> bool {
        self.0.supports_comment_on()
    }
    fn supports_load_extension(&self) -> bool {
        self.0.supports_load_extension()
    }
    fn supports_named_fn_args_with_colon_operator(&self) -> bool {
        self.0.supports_named_fn_args_with_colon_operator()
    }
    fn supports_named_fn_args_with_expr_name(&self) -> bool {
        self.0.supports_named_fn_args_with_expr_name()
    }
    fn supports_empty_projections(&self) -> bool {
        self.0.supports_empty_projections()
    }
    fn supports_nested_comments(&self) -> bool {
        self.0.supports_nested_comments()
    }
    fn supports_string_escape_constant(&self) -> bool {
        self.0.supports_string_escape_constant()
    }
    fn supports_numeric_literal_underscores(&self) -> bool {
        self.0.supports_numeric_literal_underscores()
    }
    fn supports_array_typedef_with_brackets(&self) -> bool {
        self.0.supports_array_typedef_with_brackets()
    }
    fn supports_geometric_types(&self) -> bool {
        self.0.supports_geometric_types()
    }
    fn supports_set_names(&self) -> bool {
        self.0.supports_set_names()
    }
    fn supports_alter_column_type_using(&self) -> bool {
        self.0.supports_alter_column_type_using()
    }
    fn supports_notnull_operator(&self) -> bool {
        self.0.supports_notnull_operator()
    }
    fn supports_interval_options(&self) -> bool {
        self.0.supports_interval_options()
    }
    fn supports_insert_table_alias(&self) -> bool {
        self.0.supports_insert_table_alias()
    }
    fn supports_create_table_like_parenthesized(&self) -> bool {
        self.0.supports_create_table_like_parenthesized()
    }
    fn supports_select_wildcard_with_alias(&self) -> bool {
        self.0.supports_select_wildcard_with_alias()
    }
    fn supports_comma_separated_trim(&self) -> bool {
        self.0.supports_comma_separated_trim()
    }
    fn supports_xml_expressions(&self) -> bool {
        self.0.supports_xml_expressions()
    }
    fn supports_comment_optimizer_hint(&self) -> bool {
        self.0.supports_comment_optimizer_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::TesseraDialect;
    use sqlparser::parser::Parser;

    fn parses(sql: &str) -> bool {
        Parser::parse_sql(&TesseraDialect::default(), sql)
            .map_err(|e| eprintln!("{sql}: {e}"))
            .is_ok()
    }

    #[test]
    fn postgresql_aliases_parse() {
        assert!(parses("SELECT * FROM (SELECT 1 AS a LIMIT 1) top"));
        // (`SELECT top.a ...` still reads TOP as SQL Server's `SELECT TOP n`.)
        assert!(parses(
            "SELECT x.a FROM (SELECT 1 AS a) top, t x WHERE top.a = x.a"
        ));
        assert!(parses(
            "SELECT s.x FROM t sort JOIN u format ON sort.x = format.x, v s"
        ));
        assert!(parses("SELECT 1 top, 2 view"));
        assert!(parses(
            "UPDATE t SET x = 1 FROM u start WHERE start.y = t.y"
        ));
    }

    #[test]
    fn reserved_words_keep_their_meaning() {
        let statements = [
            "SELECT * FROM t LIMIT 1",
            "SELECT * FROM t WINDOW w AS (PARTITION BY a)",
            "SELECT * FROM t TABLESAMPLE SYSTEM (10)",
            "UPDATE t SET x = 1",
            "SELECT * FROM a LEFT JOIN b ON a.x = b.x",
        ];
        for sql in statements {
            let parsed = Parser::parse_sql(&TesseraDialect::default(), sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let plain = Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert_eq!(parsed, plain, "{sql}");
        }
    }
}
