#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tmaster::migrations {

/// A transaction-control statement found in a migration's text.
struct TransactionControl {
  std::string keyword;  ///< upper case: BEGIN, START, COMMIT, END, ROLLBACK, ABORT, SAVEPOINT,
                        ///< RELEASE, PREPARE (TRANSACTION)
  int line = 0;         ///< 1-based
  int column = 0;       ///< 1-based, in characters
};

/// The first statement of `sql` that controls the transaction, or nullopt. A migration runs in
/// one transaction with its ledger row; a COMMIT inside it would commit half the file without
/// its record. A statement starts at the beginning of the text and after each `;` outside
/// quotes and comments; its first word counts when it is BEGIN, START, COMMIT (also COMMIT
/// PREPARED), END, ROLLBACK (also TO / PREPARED), ABORT, SAVEPOINT, RELEASE, or PREPARE followed
/// by TRANSACTION. Understands `--` and nested `/* */` comments, single-quoted strings (with
/// `''`, and backslash escapes in E'' strings), quoted identifiers with `""`, and dollar quotes
/// (`$$`, `$tag$`; `$1` is a parameter), so keywords inside function and DO bodies, strings,
/// identifiers and comments do not count. A SQL-standard body (`CREATE [OR REPLACE]
/// {FUNCTION|PROCEDURE} ... BEGIN ATOMIC ...; END`) is one statement: its `;` do not end the
/// CREATE, and its END closes it. Lexes as PostgreSQL does with standard_conforming_strings on
/// (the default): the caller runs migrations with it on. The text ending inside a string,
/// identifier, dollar quote or comment ends the scan (what precedes it is still reported).
std::optional<TransactionControl> FindTransactionControl(std::string_view sql);

/// Where a string, quoted identifier, dollar quote or comment that runs to the end of the text
/// starts.
struct Unterminated {
  std::string what;  ///< `string`, `quoted identifier`, `dollar quote` or `comment`
  int line = 0;      ///< 1-based
  int column = 0;    ///< 1-based, in characters
};

/// nullopt when every quote and comment of `sql` is closed. The runner appends the ledger row
/// and COMMIT after a migration's text: an unclosed `/*` or quote would swallow them, so such a
/// migration is refused like one with transaction control.
std::optional<Unterminated> FindUnterminated(std::string_view sql);

}  // namespace tmaster::migrations
