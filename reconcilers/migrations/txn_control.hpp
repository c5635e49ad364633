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
/// its record. Understands `--` and nested `/* */` comments, single-quoted strings (with `''`
/// and E'' escapes), quoted identifiers and dollar quotes, so keywords inside function bodies,
/// strings and comments do not count; `BEGIN` that opens a `DO`/function body is inside a dollar
/// quote or follows `BEGIN ATOMIC` in a SQL-standard body and is not a statement start.
std::optional<TransactionControl> FindTransactionControl(std::string_view sql);

}  // namespace tmaster::migrations
