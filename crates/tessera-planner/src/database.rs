//! Statements on whole databases: `CREATE DATABASE`, `DROP DATABASE`, `ALTER DATABASE ...
//! RENAME TO`.
//!
//! Each database of the coordinator PostgreSQL has its own Tessera catalog, and its shards
//! live in the database of the same name on every worker. These statements run on the
//! coordinator PostgreSQL as they are (they are local statements to the planner); the front
//! end reads them with [`database_command`] to do the workers' part after the coordinator's
//! succeeded (drop or rename the workers' copies) or, for a template with distributed tables,
//! before (refuse: a copy of its catalog would name shards the new database does not have).

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// A statement on a whole database, as [`database_command`] reads it. Names are folded as
/// PostgreSQL folds identifiers (lower case unless quoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseCommand {
    /// `CREATE DATABASE name [WITH] [TEMPLATE [=] template] ...`.
    Create {
        /// The new database.
        name: String,
        /// The TEMPLATE option, if given (PostgreSQL's default is `template1`).
        template: Option<String>,
    },
    /// `DROP DATABASE [IF EXISTS] name [[WITH] (FORCE)]`.
    Drop {
        /// The database dropped.
        name: String,
    },
    /// `ALTER DATABASE from RENAME TO to`.
    Rename {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
}

/// One significant token: a word (folded, and whether it was quoted) or anything else.
#[derive(Debug, PartialEq)]
enum Item {
    Word { value: String, quoted: bool },
    Equals,
    Other,
}

impl Item {
    fn keyword(&self, k: &str) -> bool {
        matches!(self, Item::Word { value, quoted: false } if value == k)
    }

    fn name(&self) -> Option<&str> {
        match self {
            Item::Word { value, .. } => Some(value),
            _ => None,
        }
    }
}

fn items(sql: &str) -> Option<Vec<Item>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    Some(
        tokens
            .into_iter()
            .filter_map(|t| match t {
                Token::Whitespace(_) | Token::SemiColon => None,
                Token::Word(w) => Some(match w.quote_style {
                    Some(_) => Item::Word {
                        value: w.value,
                        quoted: true,
                    },
                    None => Item::Word {
                        value: w.value.to_lowercase(),
                        quoted: false,
                    },
                }),
                // TEMPLATE = 'name' is accepted by PostgreSQL's grammar too.
                Token::SingleQuotedString(s) => Some(Item::Word {
                    value: s,
                    quoted: true,
                }),
                Token::Eq => Some(Item::Equals),
                _ => Some(Item::Other),
            })
            .collect(),
    )
}

/// Reads `sql` (one statement) as a statement on a whole database; `None` for any other
/// statement or text the tokenizer cannot read (PostgreSQL then judges it).
pub fn database_command(sql: &str) -> Option<DatabaseCommand> {
    // Most statements do not name a database: they are not tokenized (the router path runs
    // this for every statement).
    if !sql
        .as_bytes()
        .windows(8)
        .any(|w| w.eq_ignore_ascii_case(b"database"))
    {
        return None;
    }
    let items = items(sql)?;
    let at = |i: usize| items.get(i);
    let keyword = |i: usize, k: &str| at(i).is_some_and(|t| t.keyword(k));
    if keyword(0, "drop") && keyword(1, "database") {
        let n = if keyword(2, "if") && keyword(3, "exists") {
            4
        } else {
            2
        };
        return Some(DatabaseCommand::Drop {
            name: at(n)?.name()?.to_string(),
        });
    }
    if keyword(0, "alter") && keyword(1, "database") && keyword(3, "rename") && keyword(4, "to") {
        return Some(DatabaseCommand::Rename {
            from: at(2)?.name()?.to_string(),
            to: at(5)?.name()?.to_string(),
        });
    }
    if keyword(0, "create") && keyword(1, "database") {
        let name = at(2)?.name()?.to_string();
        let template = items.iter().enumerate().skip(3).find_map(|(i, t)| {
            if !t.keyword("template") {
                return None;
            }
            let value = if at(i + 1) == Some(&Item::Equals) {
                at(i + 2)
            } else {
                at(i + 1)
            };
            value.and_then(Item::name).map(str::to_string)
        });
        return Some(DatabaseCommand::Create { name, template });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_database_statements() {
        assert_eq!(
            database_command("DROP DATABASE IF EXISTS \"Regression\" WITH (FORCE);"),
            Some(DatabaseCommand::Drop {
                name: "Regression".into()
            })
        );
        assert_eq!(
            database_command("drop database Foo"),
            Some(DatabaseCommand::Drop { name: "foo".into() })
        );
        assert_eq!(
            database_command("ALTER DATABASE a RENAME TO \"B\""),
            Some(DatabaseCommand::Rename {
                from: "a".into(),
                to: "B".into()
            })
        );
        assert_eq!(
            database_command("CREATE DATABASE \"regression\" TEMPLATE=template0"),
            Some(DatabaseCommand::Create {
                name: "regression".into(),
                template: Some("template0".into())
            })
        );
        assert_eq!(
            database_command("CREATE DATABASE x WITH OWNER = bob ENCODING 'UTF8' TEMPLATE 'T1'"),
            Some(DatabaseCommand::Create {
                name: "x".into(),
                template: Some("T1".into())
            })
        );
        assert_eq!(
            database_command("create database x"),
            Some(DatabaseCommand::Create {
                name: "x".into(),
                template: None
            })
        );
        assert_eq!(
            database_command("ALTER DATABASE a SET work_mem = '1MB'"),
            None
        );
        assert_eq!(database_command("DROP TABLE t"), None);
    }
}
