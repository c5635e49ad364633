#include "reconcilers/migrations/txn_control.hpp"

#include <array>
#include <cstddef>
#include <string>
#include <utility>

namespace tmaster::migrations {
namespace {

// What the scanner hands to the statement logic. Strings, quoted identifiers, dollar quotes,
// numbers, parameters and operators are all kOther: none of them can start a statement that
// controls the transaction, and none can hide a `;` from PostgreSQL.
enum class TokenKind { kWord, kSemicolon, kOpenParen, kCloseParen, kOther, kEnd };

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string_view text;  // the word, for kWord
  int line = 0;
  int column = 0;
};

bool IsIdentStart(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsIdentChar(unsigned char c) { return IsIdentStart(c) || IsDigit(c) || c == '$'; }
// The characters of a dollar quote's tag: an identifier without `$`.
bool IsTagChar(unsigned char c) { return IsIdentStart(c) || IsDigit(c); }

bool EqualsUpper(std::string_view word, std::string_view upper) {
  if (word.size() != upper.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    char c = word[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != upper[i]) return false;
  }
  return true;
}

// A byte-level scanner in the manner of PostgreSQL's own lexer (standard_conforming_strings on,
// the default since 9.1; the migration runner keeps it on, see docs/decisions.md). It keeps the
// line and the column in characters: a UTF-8 continuation byte does not advance the column.
class Scanner {
 public:
  explicit Scanner(std::string_view sql) : sql_(sql) {}

  // The next token, or kEnd at the end of the text or inside an unterminated string, quoted
  // identifier, dollar quote or comment (everything after it is inside it for PostgreSQL too).
  Token Next() {
    for (;;) {
      if (AtEnd()) return {};
      const unsigned char c = Peek();
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
        Advance(1);
        continue;
      }
      if (c == '-' && Peek(1) == '-') {
        while (!AtEnd() && Peek() != '\n') Advance(1);
        continue;
      }
      if (c == '/' && Peek(1) == '*') {
        const Token at{TokenKind::kEnd, {}, line_, column_};
        if (!SkipBlockComment()) return Unterminated(at, "comment");
        continue;
      }
      break;
    }
    Token token{TokenKind::kOther, {}, line_, column_};
    const unsigned char c = Peek();
    if (c == ';') {
      Advance(1);
      token.kind = TokenKind::kSemicolon;
      return token;
    }
    if (c == '(' || c == ')') {
      Advance(1);
      token.kind = c == '(' ? TokenKind::kOpenParen : TokenKind::kCloseParen;
      return token;
    }
    if (c == '\'') return SkipQuoted('\'', false) ? token : Unterminated(token, "string");
    if (c == '"') return SkipQuoted('"', false) ? token : Unterminated(token, "quoted identifier");
    if (c == '$') return SkipDollar() ? token : Unterminated(token, "dollar quote");
    if (IsIdentStart(c)) {
      const std::size_t start = pos_;
      while (!AtEnd() && IsIdentChar(Peek())) Advance(1);
      const std::string_view word = sql_.substr(start, pos_ - start);
      // E'...': an escape string, where a backslash quotes the next character.
      if ((word == "E" || word == "e") && !AtEnd() && Peek() == '\'') {
        return SkipQuoted('\'', true) ? token : Unterminated(token, "string");
      }
      token.kind = TokenKind::kWord;
      token.text = word;
      return token;
    }
    if (IsDigit(c)) {
      while (!AtEnd() && (IsIdentChar(Peek()) || Peek() == '.')) Advance(1);
      return token;
    }
    Advance(1);  // an operator or other punctuation character
    return token;
  }

  /// Where the string, quoted identifier, dollar quote or comment that the text ends inside
  /// starts (`text` says which); nullopt while none did.
  [[nodiscard]] const std::optional<Token>& unterminated() const { return unterminated_; }

 private:
  Token Unterminated(Token at, std::string_view what) {
    at.kind = TokenKind::kEnd;
    at.text = what;
    unterminated_ = at;
    return {};
  }
  bool AtEnd() const { return pos_ >= sql_.size(); }
  unsigned char Peek(std::size_t ahead = 0) const {
    return pos_ + ahead < sql_.size() ? static_cast<unsigned char>(sql_[pos_ + ahead]) : 0;
  }
  void Advance(std::size_t bytes) {
    for (std::size_t i = 0; i < bytes && !AtEnd(); ++i, ++pos_) {
      const auto c = static_cast<unsigned char>(sql_[pos_]);
      if (c == '\n') {
        ++line_;
        column_ = 1;
      } else if ((c & 0xC0U) != 0x80U) {
        ++column_;
      }
    }
  }

  // `/* ... */`, nested as PostgreSQL nests them. False when the text ends inside.
  bool SkipBlockComment() {
    int depth = 0;
    while (!AtEnd()) {
      if (Peek() == '/' && Peek(1) == '*') {
        ++depth;
        Advance(2);
      } else if (Peek() == '*' && Peek(1) == '/') {
        Advance(2);
        if (--depth == 0) return true;
      } else {
        Advance(1);
      }
    }
    return false;
  }

  // A string or quoted identifier from its opening quote; a doubled quote is one quote, and in
  // an escape string a backslash quotes the next byte. False when the text ends inside.
  bool SkipQuoted(char quote, bool backslash_escapes) {
    Advance(1);
    while (!AtEnd()) {
      const unsigned char c = Peek();
      if (backslash_escapes && c == '\\') {
        Advance(2);
        continue;
      }
      Advance(1);
      if (c != static_cast<unsigned char>(quote)) continue;
      if (Peek() != static_cast<unsigned char>(quote)) return true;
      Advance(1);  // a doubled quote
    }
    return false;
  }

  // At a `$` that does not continue an identifier: a parameter ($1), a dollar quote ($$ or
  // $tag$, closed by the same delimiter; other tags inside are text), or a lone `$`. False when
  // a dollar quote is not closed.
  bool SkipDollar() {
    if (IsDigit(Peek(1))) {
      Advance(1);
      while (!AtEnd() && IsDigit(Peek())) Advance(1);
      return true;
    }
    std::size_t end = pos_ + 1;
    if (end < sql_.size() && IsIdentStart(static_cast<unsigned char>(sql_[end]))) {
      while (end < sql_.size() && IsTagChar(static_cast<unsigned char>(sql_[end]))) ++end;
    }
    if (end >= sql_.size() || sql_[end] != '$') {
      Advance(1);
      return true;
    }
    const std::string_view delimiter = sql_.substr(pos_, end - pos_ + 1);
    const std::size_t close = sql_.find(delimiter, end + 1);
    if (close == std::string_view::npos) {
      Advance(sql_.size() - pos_);
      return false;
    }
    Advance(close + delimiter.size() - pos_);
    return true;
  }

  std::string_view sql_;
  std::size_t pos_ = 0;
  int line_ = 1;
  int column_ = 1;
  std::optional<Token> unterminated_;
};

// Whether the first word of a statement controls the transaction. PREPARE does only when
// TRANSACTION follows (PREPARE name AS ... is an ordinary prepared statement), which the caller
// checks on the next token.
constexpr std::array<std::string_view, 9> kControlKeywords = {
    "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE"};

std::optional<std::string_view> ControlKeyword(std::string_view word) {
  for (std::string_view keyword : kControlKeywords) {
    if (EqualsUpper(word, keyword)) return keyword;
  }
  return std::nullopt;
}

// The statement logic over the tokens. A statement starts at the beginning of the text and after
// each `;` at top level. The one place a `;` does not end a statement outside quotes is a
// SQL-standard routine body, `CREATE [OR REPLACE] {FUNCTION|PROCEDURE} ... BEGIN ATOMIC stmt;
// ... END`. Its statements are refused as transaction control like top-level ones (none is valid
// inside a body, so one that appears means the text is really at top level), except `END` at a
// body statement's start, which closes the body: each body statement ends with `;`, so this is
// the body's END and never a CASE's. Only `BEGIN` directly followed by `ATOMIC` opens a body, so
// a routine named `begin` cannot make the scanner swallow the statements after it.
class StatementScanner {
 public:
  explicit StatementScanner(std::string_view sql) : scanner_(sql) {}

  std::optional<TransactionControl> Find() {
    for (Token token = scanner_.Next(); token.kind != TokenKind::kEnd; token = scanner_.Next()) {
      if (std::optional<TransactionControl> found = Step(token)) return found;
    }
    return std::nullopt;
  }

 private:
  std::optional<TransactionControl> Step(const Token& token) {
    const bool statement_start = word_index_ == 0 && !any_token_;
    const bool body_statement_start = in_body_ && body_statement_start_;
    const std::optional<Token> pending_prepare = std::exchange(pending_prepare_, std::nullopt);
    const bool after_begin = std::exchange(after_begin_, false);
    any_token_ = true;
    body_statement_start_ = false;

    switch (token.kind) {
      case TokenKind::kSemicolon:
        if (in_body_) {
          body_statement_start_ = true;
        } else {
          StartStatement();
        }
        return std::nullopt;
      case TokenKind::kOpenParen:
        ++paren_depth_;
        return std::nullopt;
      case TokenKind::kCloseParen:
        if (paren_depth_ > 0) --paren_depth_;
        return std::nullopt;
      case TokenKind::kOther:
      case TokenKind::kEnd:
        return std::nullopt;
      case TokenKind::kWord:
        break;
    }

    if (pending_prepare && EqualsUpper(token.text, "TRANSACTION")) {
      return TransactionControl{"PREPARE", pending_prepare->line, pending_prepare->column};
    }
    if (body_statement_start && EqualsUpper(token.text, "END")) {
      in_body_ = false;
      ++word_index_;
      return std::nullopt;
    }
    if (statement_start || body_statement_start) {
      if (std::optional<std::string_view> keyword = ControlKeyword(token.text)) {
        if (*keyword != "PREPARE") {
          return TransactionControl{std::string(*keyword), token.line, token.column};
        }
        pending_prepare_ = token;
      }
    }
    NoteRoutineWord(token, after_begin);
    ++word_index_;
    return std::nullopt;
  }

  // Tracks CREATE [OR REPLACE] {FUNCTION|PROCEDURE} and its `BEGIN ATOMIC` (outside
  // parentheses: a parameter may be named `begin`).
  void NoteRoutineWord(const Token& token, bool after_begin) {
    const std::string_view word = token.text;
    if (word_index_ == 0) {
      is_create_ = EqualsUpper(word, "CREATE");
      return;
    }
    if (!is_create_) return;
    const bool routine = EqualsUpper(word, "FUNCTION") || EqualsUpper(word, "PROCEDURE");
    if (word_index_ == 1) {
      is_routine_ = routine;
      or_replace_ = EqualsUpper(word, "OR");
      return;
    }
    if (or_replace_ && word_index_ == 2 && !EqualsUpper(word, "REPLACE")) or_replace_ = false;
    if (or_replace_ && word_index_ == 3) is_routine_ = routine;
    if (!is_routine_ || in_body_ || paren_depth_ != 0) return;
    if (after_begin && EqualsUpper(word, "ATOMIC")) {
      in_body_ = true;
      body_statement_start_ = true;
      return;
    }
    after_begin_ = EqualsUpper(word, "BEGIN");
  }

  void StartStatement() {
    word_index_ = 0;
    any_token_ = false;
    paren_depth_ = 0;
    is_create_ = false;
    or_replace_ = false;
    is_routine_ = false;
    in_body_ = false;
    body_statement_start_ = false;
    after_begin_ = false;
    pending_prepare_.reset();
  }

  Scanner scanner_;
  int word_index_ = 0;     // words seen in this statement
  bool any_token_ = false;  // any token seen in this statement (a word after `(` starts nothing)
  int paren_depth_ = 0;
  bool is_create_ = false;
  bool or_replace_ = false;
  bool is_routine_ = false;
  bool in_body_ = false;               // inside BEGIN ATOMIC ... END
  bool body_statement_start_ = false;  // at the start of a statement of that body
  bool after_begin_ = false;           // the previous token was the word BEGIN
  std::optional<Token> pending_prepare_;  // PREPARE at a statement's start, TRANSACTION next?
};

}  // namespace

std::optional<TransactionControl> FindTransactionControl(std::string_view sql) {
  return StatementScanner(sql).Find();
}

std::optional<Unterminated> FindUnterminated(std::string_view sql) {
  Scanner scanner(sql);
  while (scanner.Next().kind != TokenKind::kEnd) {
  }
  const std::optional<Token>& at = scanner.unterminated();
  if (!at) return std::nullopt;
  return Unterminated{std::string(at->text), at->line, at->column};
}

}  // namespace tmaster::migrations
