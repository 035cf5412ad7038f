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

use sqlparser::ast::{Expr, Statement};
use sqlparser::dialect::{Dialect, PostgreSqlDialect, Precedence};
use sqlparser::keywords::{self, Keyword};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer, Word};

/// The dialect every statement is parsed with (a unit value, so parsers can borrow it for
/// any lifetime).
pub static DIALECT: TesseraDialect = TesseraDialect(PostgreSqlDialect {});

/// A parser over `sql` in [`DIALECT`], with the token stream adjusted to PostgreSQL's
/// keyword list: an unquoted `top` (a keyword only in SQL Server's `SELECT TOP n`, none in
/// PostgreSQL's kwlist.h) becomes the identifier it is in PostgreSQL, so `SELECT top.a FROM
/// (...) top` parses. Quoting a lower-cased name changes nothing in PostgreSQL.
///
/// Errors: the tokenizer's (an unterminated string or quoted identifier).
pub(crate) fn parser(sql: &str) -> Result<Parser<'static>, ParserError> {
    let mut tokens = Tokenizer::new(&DIALECT, sql)
        .with_unescape(true)
        .tokenize_with_location()?;
    for token in &mut tokens {
        if let Token::Word(word) = &mut token.token {
            if word.keyword == Keyword::TOP && word.quote_style.is_none() {
                *word = Word {
                    value: word.value.to_lowercase(),
                    quote_style: Some('"'),
                    keyword: Keyword::NoKeyword,
                };
            }
        }
    }
    Ok(Parser::new(&DIALECT).with_tokens_with_locations(tokens))
}

/// Every statement of `sql`, parsed as [`parser`] does.
///
/// Errors: sqlparser's syntax error, or the tokenizer's.
pub fn parse_statements(sql: &str) -> Result<Vec<Statement>, ParserError> {
    parser(sql)?.parse_statements()
}

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

    /// `x [NOT] IN ( ... )`: a list whose first element is a parenthesized subquery
    /// (`x IN ((SELECT a ...), (SELECT b ...))`) is a list in PostgreSQL (gram.yy's
    /// `in_expr`: a `select_with_parens` alone, else an `expr_list`); sqlparser takes the
    /// first subquery for the whole operand and fails on the comma.
    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        _precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        let negated = match (
            parser.peek_nth_token(0).token,
            parser.peek_nth_token(1).token,
        ) {
            (Token::Word(w), Token::LParen) if w.keyword == Keyword::IN => false,
            (Token::Word(n), Token::Word(w))
                if n.keyword == Keyword::NOT
                    && w.keyword == Keyword::IN
                    && parser.peek_nth_token(2).token == Token::LParen =>
            {
                true
            }
            _ => return None,
        };
        Some(parse_in(parser, expr.clone(), negated))
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

/// `[NOT] IN ( <subquery> | <expression list> )`, with the next tokens `[NOT] IN (`: a
/// subquery only when it is the whole parenthesized operand.
fn parse_in(parser: &mut Parser, expr: Expr, negated: bool) -> Result<Expr, ParserError> {
    if negated {
        parser.expect_keyword_is(Keyword::NOT)?;
    }
    parser.expect_keyword_is(Keyword::IN)?;
    parser.expect_token(&Token::LParen)?;
    let subquery = parser.maybe_parse(|p| {
        let query = p.parse_query()?;
        p.expect_token(&Token::RParen)?;
        Ok(query)
    })?;
    if let Some(subquery) = subquery {
        return Ok(Expr::InSubquery {
            expr: Box::new(expr),
            subquery,
            negated,
        });
    }
    let list = parser.parse_comma_separated(Parser::parse_expr)?;
    parser.expect_token(&Token::RParen)?;
    Ok(Expr::InList {
        expr: Box::new(expr),
        list,
        negated,
    })
}

#[cfg(test)]
mod tests {
    use sqlparser::parser::Parser;

    fn parses(sql: &str) -> bool {
        super::parse_statements(sql)
            .map_err(|e| eprintln!("{sql}: {e}"))
            .is_ok()
    }

    #[test]
    fn postgresql_aliases_parse() {
        assert!(parses("SELECT * FROM (SELECT 1 AS a LIMIT 1) top"));
        assert!(parses("SELECT top.a, top FROM (SELECT 1 AS a LIMIT 1) top"));
        assert!(parses("SELECT DISTINCT TOP.a FROM (SELECT 1 AS a) Top"));
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
    fn in_list_of_subqueries_is_a_list() {
        use sqlparser::ast::{Expr, SetExpr, Statement};
        let where_of = |sql: &str| match super::parse_statements(sql).unwrap().remove(0) {
            Statement::Query(q) => match *q.body {
                SetExpr::Select(s) => s.selection.unwrap(),
                other => panic!("{other}"),
            },
            other => panic!("{other}"),
        };
        match where_of("SELECT 1 FROM t WHERE x NOT IN ((SELECT 1), (SELECT max(y) FROM u))") {
            Expr::InList { list, negated, .. } => assert!(list.len() == 2 && negated),
            other => panic!("{other:?}"),
        }
        match where_of("SELECT 1 FROM t WHERE x IN ((SELECT 1))") {
            Expr::InSubquery { negated, .. } => assert!(!negated),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reserved_words_keep_their_meaning() {
        let statements = [
            "SELECT * FROM t LIMIT 1",
            "SELECT * FROM t WINDOW w AS (PARTITION BY a)",
            "SELECT * FROM t TABLESAMPLE SYSTEM (10)",
            "UPDATE t SET x = 1",
            "SELECT * FROM a LEFT JOIN b ON a.x = b.x",
            "SELECT * FROM t WHERE a IN (SELECT b FROM u) AND a NOT IN (1, 2)",
            "SELECT * FROM t WHERE a NOT IN ((SELECT 1) UNION (SELECT 2))",
            "SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4)) OR a IN ((1), 2)",
        ];
        for sql in statements {
            let parsed = super::parse_statements(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let plain = Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert_eq!(parsed, plain, "{sql}");
        }
    }
}
