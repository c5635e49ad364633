// Fuzz target: the migration lexer (reconcilers/migrations/txn_control.hpp). The input is the text
// of a migration file, as is.
//
// Properties beyond "no crash, no sanitizer report":
//  - a position reported by FindTransactionControl or FindUnterminated lies inside the text
//    (line 1.., column 1.. counted in characters as documented: UTF-8 continuation bytes do not
//    count);
//  - the keyword reported is one of the documented ones and is what the text holds at that
//    position (any case);
//  - an unterminated construct starts with what its name says (a quote, `$`, `/*` or `--`,
//    possibly after a string prefix such as E, U&, B, X).

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "reconcilers/migrations/txn_control.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using tmaster::fuzz::Require;

// The byte offset of 1-based (line, column), where the column counts characters as the lexer
// does (UTF-8 continuation bytes do not count): the column-th byte of the line that is not a
// continuation byte. nullopt when outside the text. Every token reported starts with an ASCII
// byte, so it is never a continuation byte.
std::optional<std::size_t> OffsetOf(std::string_view text, int line, int column) {
  if (line < 1 || column < 1) return std::nullopt;
  std::size_t at = 0;
  for (int l = 1; l < line; ++l) {
    const auto newline = text.find('\n', at);
    if (newline == std::string_view::npos) return std::nullopt;
    at = newline + 1;
  }
  int seen = 0;
  for (; at < text.size() && text[at] != '\n'; ++at) {
    if ((static_cast<unsigned char>(text[at]) & 0xC0U) == 0x80U) continue;
    if (++seen == column) return at;
  }
  return std::nullopt;
}

bool StartsWithNoCase(std::string_view text, std::string_view word) {
  if (text.size() < word.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(text[i])) != static_cast<unsigned char>(word[i])) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view sql = tmaster::fuzz::AsText(data, size);

  if (const auto control = tmaster::migrations::FindTransactionControl(sql)) {
    constexpr std::string_view kKeywords[] = {"BEGIN",    "START",     "COMMIT",
                                              "END",      "ROLLBACK",  "ABORT",
                                              "SAVEPOINT", "RELEASE",  "PREPARE"};
    Require(std::find(std::begin(kKeywords), std::end(kKeywords), control->keyword) !=
                std::end(kKeywords),
            "FindTransactionControl: a documented keyword");
    const auto at = OffsetOf(sql, control->line, control->column);
    Require(at.has_value(), "FindTransactionControl: the position lies inside the text");
    Require(StartsWithNoCase(sql.substr(*at), control->keyword),
            "FindTransactionControl: the keyword is at the position reported");
  }

  if (const auto open = tmaster::migrations::FindUnterminated(sql)) {
    const auto at = OffsetOf(sql, open->line, open->column);
    Require(at.has_value(), "FindUnterminated: the position lies inside the text");
    const std::string_view rest = sql.substr(*at);
    const char first = rest.front();
    if (open->what == "comment") {
      Require(rest.substr(0, 2) == "/*" || rest.substr(0, 2) == "--",
              "FindUnterminated: a comment starts with /* or --");
    } else if (open->what == "dollar quote") {
      Require(first == '$', "FindUnterminated: a dollar quote starts with $");
    } else if (open->what == "quoted identifier") {
      Require(first == '"' || StartsWithNoCase(rest, "U&\""),
              "FindUnterminated: a quoted identifier starts with \" or U&\"");
    } else if (open->what == "string") {
      const auto quote = rest.find('\'');
      Require(quote != std::string_view::npos && quote <= 2,
              "FindUnterminated: a string starts with ' or a prefix of at most two characters");
    } else {
      Require(false, "FindUnterminated: a documented kind");
    }
  }
  return 0;
}
