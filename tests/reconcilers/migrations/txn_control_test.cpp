// The transaction-control lexer: which statements of a migration would end or split its
// transaction, on inputs built to fool a lexer.

#include "reconcilers/migrations/txn_control.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace tmaster::migrations {
namespace {

// The keyword found, and where, as "KEYWORD@line:column"; "" when nothing is found.
std::string Found(std::string_view sql) {
  std::optional<TransactionControl> found = FindTransactionControl(sql);
  if (!found) return "";
  return found->keyword + "@" + std::to_string(found->line) + ":" + std::to_string(found->column);
}

TEST_CASE("transaction control at a statement's start is found, in any case") {
  CHECK(Found("begin;\nCREATE TABLE t (id int);") == "BEGIN@1:1");
  CHECK(Found("CREATE TABLE t (id int);\nCOMMIT;") == "COMMIT@2:1");
  CHECK(Found("CREATE TABLE t (id int);\n-- done\ncommit;") == "COMMIT@3:1");
  CHECK(Found("CREATE TABLE t (id int);\nEND;") == "END@2:1");
  CHECK(Found("END;") == "END@1:1");
  CHECK(Found("SELECT 1;\n  START TRANSACTION ISOLATION LEVEL SERIALIZABLE;") == "START@2:3");
  CHECK(Found("SELECT 1; SAVEPOINT a;") == "SAVEPOINT@1:11");
  CHECK(Found("SELECT 1; RELEASE SAVEPOINT a;") == "RELEASE@1:11");
  CHECK(Found("SELECT 1; release a;") == "RELEASE@1:11");
  CHECK(Found("SELECT 1; ROLLBACK TO SAVEPOINT a;") == "ROLLBACK@1:11");
  CHECK(Found("SELECT 1; ROLLBACK PREPARED 'x';") == "ROLLBACK@1:11");
  CHECK(Found("SELECT 1; Abort;") == "ABORT@1:11");
  CHECK(Found("SELECT 1; PREPARE TRANSACTION 'x';") == "PREPARE@1:11");
  CHECK(Found("SELECT 1; COMMIT PREPARED 'x';") == "COMMIT@1:11");
  CHECK(Found("SELECT 1;COMMIT") == "COMMIT@1:10");
  CHECK(Found("/* a */ /* b */ COMMIT") == "COMMIT@1:17");
}

TEST_CASE("the first statement that controls the transaction is the one reported") {
  CHECK(Found("SELECT 1;\nSAVEPOINT a;\nCOMMIT;") == "SAVEPOINT@2:1");
}

TEST_CASE("ordinary migrations have no transaction control") {
  CHECK(Found("") == "");
  CHECK(Found(";;;") == "");
  CHECK(Found("CREATE TABLE orders (id bigint PRIMARY KEY, commit_id text, ending date);\n"
              "CREATE INDEX ON orders (commit_id);\n"
              "SELECT 1 AS begin;\n"
              "SELECT commit_id, ending FROM orders;\n"
              "UPDATE orders SET ending = now() WHERE commit_id IS NULL;") == "");
  // PREPARE of a statement is not PREPARE TRANSACTION.
  CHECK(Found("PREPARE q (int) AS SELECT $1;\nEXECUTE q(1);\nDEALLOCATE q;") == "");
  // A word that is not at a statement's start, even after a parenthesis.
  CHECK(Found("SELECT (begin) FROM t;\nSELECT x FROM t WHERE end_at > now();") == "");
  CHECK(Found("(SELECT 1) UNION (SELECT 2);") == "");
}

TEST_CASE("keywords inside strings, identifiers and comments do not count") {
  CHECK(Found("SELECT 'a;COMMIT;b';") == "");
  CHECK(Found("SELECT 'it''s; COMMIT; ok';") == "");
  CHECK(Found("SELECT \"commit\" FROM t;") == "");
  CHECK(Found("CREATE TABLE \"a;\"\"b\" (id int);\nSELECT 1 FROM \"x;END\";") == "");
  CHECK(Found("SELECT 1; -- COMMIT;\nSELECT 2;") == "");
  CHECK(Found("SELECT 1; /* COMMIT; */ SELECT 2;") == "");
  CHECK(Found("SELECT 1; /* outer /* inner */ COMMIT; still outer */ SELECT 2;") == "");
  CHECK(Found("SELECT 1; /* a /* b /* c */ */ ; COMMIT; */ SELECT 2;") == "");
  // After a nested comment closes, the text is code again.
  CHECK(Found("SELECT 1; /* a /* b */ c */ COMMIT;") == "COMMIT@1:29");
  CHECK(Found("SELECT 'x' -- ' ; COMMIT;\n;") == "");
}

TEST_CASE("escape strings: a backslash quotes the next character") {
  CHECK(Found("SELECT E'\\'; COMMIT; \\'';") == "");
  CHECK(Found("SELECT e'a\\\\'; COMMIT;") == "COMMIT@1:16");
  CHECK(Found("SELECT E'it''s\\n'; ROLLBACK;") == "ROLLBACK@1:20");
  // In a standard string a backslash is an ordinary character (standard_conforming_strings on).
  CHECK(Found("SELECT 'a\\'; COMMIT;") == "COMMIT@1:14");
  // The word before the quote must be exactly E.
  CHECK(Found("SELECT xe'\\'; COMMIT;") == "COMMIT@1:15");
}

TEST_CASE("dollar quotes: function and DO bodies, tags, nested other tags, parameters") {
  CHECK(Found("DO $$ BEGIN COMMIT; END $$;") == "");
  CHECK(Found("CREATE PROCEDURE p() LANGUAGE plpgsql AS $body$\n"
              "BEGIN\n  INSERT INTO t VALUES (1);\n  COMMIT;\nEND;\n$body$;") == "");
  CHECK(Found("CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $outer$\n"
              "  SELECT $inner$; COMMIT; $inner$ || $$ END; $$;\n$outer$;\nSELECT 1;") == "");
  // A different tag does not close the quote; the right one does.
  CHECK(Found("SELECT $a$ $b$ ; COMMIT; $a$; COMMIT;") == "COMMIT@1:31");
  // $1 is a parameter, not a dollar quote: the COMMIT after it is code.
  CHECK(Found("PREPARE q AS SELECT $1; COMMIT; SELECT $1;") == "COMMIT@1:25");
  // A `$` inside an identifier does not open a quote.
  CHECK(Found("SELECT a$b$ FROM t; COMMIT;") == "COMMIT@1:21");
  CHECK(Found("SELECT $_x1$ ; $_x1$; END;") == "END@1:23");
}

TEST_CASE("a SQL-standard routine body (BEGIN ATOMIC ... END) is one statement") {
  CHECK(Found("CREATE FUNCTION f() RETURNS int LANGUAGE sql\n"
              "BEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN true THEN 1 ELSE 2 END;\nEND;\n"
              "SELECT 2;") == "");
  CHECK(Found("CREATE OR REPLACE PROCEDURE p(a int) LANGUAGE sql\n"
              "begin atomic\n  insert into t values (a);\nend;") == "");
  CHECK(Found("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC END; COMMIT;") ==
        "COMMIT@1:64");
  // After the body's END the statement ends at the next `;`, and what follows is top level.
  CHECK(Found("CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\nEND;\n"
              "END;") == "END@5:1");
  // A CASE's END inside a body statement does not close the body.
  CHECK(Found("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC\n"
              "  SELECT 1 AS case;\n  SELECT CASE WHEN x THEN 1 END AS end;\nEND;\nEND;") ==
        "END@5:1");
  // Transaction control cannot be in a body: one found there is reported.
  CHECK(Found("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; COMMIT; END;") ==
        "COMMIT@1:69");
}

TEST_CASE("BEGIN ATOMIC does not open a body outside CREATE FUNCTION/PROCEDURE or in parentheses") {
  // A routine named begin: its `;` ends the statement.
  CHECK(Found("CREATE FUNCTION begin() RETURNS int LANGUAGE sql AS 'SELECT 1'; COMMIT;") ==
        "COMMIT@1:65");
  CHECK(Found("CREATE FUNCTION f(begin int) RETURNS int LANGUAGE sql RETURN 1; COMMIT;") ==
        "COMMIT@1:65");
  CHECK(Found("CREATE FUNCTION atomic() RETURNS int LANGUAGE sql RETURN 1; END;") ==
        "END@1:61");
  CHECK(Found("CREATE TABLE begin (atomic int); END;") == "END@1:34");
  CHECK(Found("SELECT 1; BEGIN ATOMIC; END;") == "BEGIN@1:11");
}

TEST_CASE("an unterminated string, identifier, dollar quote or comment ends the scan") {
  CHECK(Found("SELECT 'abc; COMMIT;") == "");
  CHECK(Found("SELECT \"abc; COMMIT;") == "");
  CHECK(Found("SELECT $x$ abc; COMMIT;") == "");
  CHECK(Found("SELECT 1; /* /* */ COMMIT;") == "");
  CHECK(Found("SELECT E'abc\\") == "");
  // The first hit before it is still reported.
  CHECK(Found("COMMIT; SELECT 'abc") == "COMMIT@1:1");
  CHECK(Found("SAVEPOINT a; SELECT $$") == "SAVEPOINT@1:1");
}

TEST_CASE("line and column count characters, not bytes") {
  // "café" and "ü" are multi-byte in UTF-8; the column counts each as one character.
  CHECK(Found("SELECT 'café'; COMMIT;") == "COMMIT@1:16");
  CHECK(Found("-- ünïcödé\nSELECT 'ü';\n\tCOMMIT;") == "COMMIT@3:2");
  CHECK(Found("SELECT '日本語'; /* ✓ */ END;") == "END@1:23");
  CHECK(Found("SELECT 1;\r\nCOMMIT;") == "COMMIT@2:1");
}

// A deterministic generator of SQL-ish text: fragments that open and close quotes, comments and
// bodies, plus raw bytes (invalid UTF-8, NUL), in random order.
class Fragments {
 public:
  explicit Fragments(std::uint64_t seed) : state_(seed) {}

  std::string Text(std::size_t pieces) {
    static constexpr std::string_view kPieces[] = {
        "'", "''", "E'", "\\", "\"", "$", "$$", "$a$", "$1", "--", "\n", "/*", "*/", ";",
        "(", ")", " ", "BEGIN", "ATOMIC", "END", "COMMIT", "CREATE", "FUNCTION", "OR",
        "REPLACE", "PREPARE", "TRANSACTION", "CASE", "é", "\xff", "\x80", std::string_view("\0", 1)};
    std::string out;
    for (std::size_t i = 0; i < pieces; ++i) {
      if (Below(8) == 0) {
        out.push_back(static_cast<char>(Below(256)));
      } else {
        out += kPieces[Below(std::size(kPieces))];
      }
    }
    return out;
  }

 private:
  std::size_t Below(std::size_t n) {
    state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::size_t>((state_ >> 33U) % n);
  }
  std::uint64_t state_;
};

TEST_CASE("random inputs never crash, and a hit is always inside the text") {
  Fragments fragments(11);
  for (int round = 0; round < 20000; ++round) {
    const std::string text = fragments.Text(static_cast<std::size_t>(round % 40));
    std::optional<TransactionControl> found = FindTransactionControl(text);
    if (!found) continue;
    CAPTURE(text);
    CHECK(found->line >= 1);
    CHECK(found->column >= 1);
    CHECK(static_cast<std::size_t>(found->column) <= text.size());
  }
}

}  // namespace
}  // namespace tmaster::migrations

TEST_CASE("FindUnterminated: where a quote or comment that runs to the end starts") {
  using tmaster::migrations::FindUnterminated;
  const auto at = [](std::string_view sql) {
    const auto found = FindUnterminated(sql);
    return found ? found->what + "@" + std::to_string(found->line) + ":" +
                       std::to_string(found->column)
                 : std::string();
  };
  CHECK(at("SELECT 1;\nSELECT 'abc") == "string@2:8");
  CHECK(at("SELECT E'abc\\'") == "string@1:8");
  CHECK(at("SELECT \"abc") == "quoted identifier@1:8");
  CHECK(at("SELECT $x$ abc") == "dollar quote@1:8");
  CHECK(at("SELECT 1; /* /* */ still open") == "comment@1:11");
  // Closed ones, and a line comment at the end (the runner starts a new line after the file).
  CHECK(at("SELECT 'a''b', \"x\"\"y\", $$ $x$ $$, E'\\''; /* /* */ */ -- end") == "");
  CHECK(at("") == "");
}
