#include "reconcilers/postgres/model.hpp"

#include <array>
#include <string>
#include <utility>
#include <type_traits>
#include <variant>

#include "common/crypto.hpp"
#include "common/text.hpp"

namespace tmaster::postgres {
namespace {

constexpr std::string_view kMarkerPrefix = "tenant-master:workspace=";
// A memo only has to tell "this verifier was checked against this password" apart from chance;
// 128 bits is plenty and keeps the comment short.
constexpr std::size_t kMemoHexChars = 32;
// The same for a marker's signature: forging one is a 2^128 guess.
constexpr std::size_t kSignatureHexChars = 32;
constexpr std::string_view kSignatureField = "sig";

std::string MarkerSignature(Marker marker, const Secret& key) {
  marker.fields.erase(std::string(kSignatureField));
  return crypto::Hex(crypto::HmacSha256(key.Reveal(), marker.Render()))
      .substr(0, kSignatureHexChars);
}

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

std::string LoginWord(bool login) { return login ? "LOGIN" : "NOLOGIN"; }

// Markers are shown by meaning, not verbatim: the role marker's memo is not secret, but nobody
// reading a plan needs it.
std::string DescribeMarker(const std::string& rendered) {
  const auto marker = Marker::Parse(rendered);
  if (!marker) return "an unrecognised comment";
  std::string out = "workspace " + Quoted(marker->workspace);
  std::vector<std::string> notes;
  if (marker->fields.contains("pw")) notes.emplace_back("password verified");
  if (const auto it = marker->fields.find("migration"); it != marker->fields.end()) {
    notes.push_back("migration " + it->second);
  }
  if (const auto it = marker->fields.find("state"); it != marker->fields.end()) {
    notes.push_back("state " + it->second);
  }
  if (const auto it = marker->fields.find(std::string(kReclaimField)); it != marker->fields.end()) {
    notes.push_back(it->second == kReclaimRetained ? std::string("retained after removal")
                                                   : "reclaim " + it->second);
  }
  if (!notes.empty()) out += " (" + Join(notes) + ")";
  return out;
}

}  // namespace

std::optional<Marker> Marker::Parse(std::string_view comment) {
  if (!comment.starts_with(kMarkerPrefix)) return std::nullopt;
  std::string_view rest = comment.substr(kMarkerPrefix.size());
  const auto first_end = rest.find(';');
  Marker marker;
  marker.workspace = std::string(rest.substr(0, first_end));
  if (marker.workspace.empty()) return std::nullopt;
  rest = first_end == std::string_view::npos ? std::string_view{} : rest.substr(first_end + 1);
  while (!rest.empty()) {
    const auto end = rest.find(';');
    const std::string_view pair = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    const auto eq = pair.find('=');
    // A field we cannot read is dropped rather than failing the whole marker: the workspace
    // name, which is what ownership hangs on, was readable.
    if (eq == std::string_view::npos || eq == 0) continue;
    marker.fields[std::string(pair.substr(0, eq))] = std::string(pair.substr(eq + 1));
  }
  return marker;
}

std::string Marker::Render() const {
  std::string out(kMarkerPrefix);
  out += workspace;
  for (const auto& [key, value] : fields) {  // std::map: sorted keys, a stable rendering
    out += ';';
    out += key;
    out += '=';
    out += value;
  }
  return out;
}

Marker SignMarker(Marker marker, const Secret& key) {
  marker.fields[std::string(kSignatureField)] = MarkerSignature(marker, key);
  return marker;
}

Marker MovedMarker(Marker current, const std::string& to, const Secret& key) {
  current.fields[std::string(kMovedField)] = to;
  return SignMarker(std::move(current), key);
}

bool MarkerSignatureValid(const Marker& marker, const Secret& key) {
  const auto sig = marker.fields.find(std::string(kSignatureField));
  if (sig == marker.fields.end()) return false;
  return crypto::ConstantTimeEqual(sig->second, MarkerSignature(marker, key));
}

std::string PasswordMemo(const Secret& password, std::string_view verifier) {
  return crypto::Hex(crypto::HmacSha256(password.Reveal(), verifier)).substr(0, kMemoHexChars);
}

std::string Describe(const Action& action) {
  return std::visit(
      Overloaded{
          [](const CreateRole& a) {
            return "create role " + Quoted(a.role) + " (" + LoginWord(a.login) +
                   ", CONNECTION LIMIT " + std::to_string(a.connection_limit) +
                   ", password: derived)";
          },
          [](const AlterRole& a) {
            return "alter role " + Quoted(a.role) + " (" + LoginWord(a.login) +
                   " NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS, "
                   "CONNECTION LIMIT " +
                   std::to_string(a.connection_limit) + ")";
          },
          [](const SetRolePassword& a) {
            return "set password of role " + Quoted(a.role) +
                   " (password: derived, sent as a SCRAM verifier)";
          },
          [](const SetRoleMarker& a) {
            return "mark role " + Quoted(a.role) + " as owned by " + DescribeMarker(a.marker);
          },
          [](const TerminateSessions& a) {
            return "terminate open sessions of role " + Quoted(a.role);
          },
          [](const CreateDatabase& a) {
            return "create database " + Quoted(a.database) + " (OWNER " + Quoted(a.owner) +
                   ", ENCODING UTF8, marked for " + DescribeMarker(a.marker) + ")";
          },
          [](const AlterDatabaseOwner& a) {
            return "change owner of database " + Quoted(a.database) + " to " + Quoted(a.owner);
          },
          [](const RevokePublicAccess& a) {
            return "revoke CONNECT, TEMPORARY on database " + Quoted(a.database) + " from PUBLIC";
          },
          [](const SetDatabaseMarker& a) {
            return "mark database " + Quoted(a.database) + " as owned by " +
                   DescribeMarker(a.marker);
          },
          [](const EnsureExtensions& a) {
            return "ensure extensions in database " + Quoted(a.database) + ": " +
                   Join(a.extensions);
          },
          [](const ApplyMigrations& a) {
            std::vector<std::string> files;
            files.reserve(a.migrations.size());
            for (const auto& m : a.migrations) files.push_back(m.file);
            const std::size_t n = a.migrations.size();
            return "apply " + std::to_string(n) + (n == 1 ? " migration" : " migrations") +
                   " to database " + Quoted(a.database) + " as " + Quoted(a.role) + ": " +
                   Join(files);
          },
          [](const DropDatabase& a) {
            return "drop database " + Quoted(a.database) + " (WITH FORCE: open sessions end)";
          },
          [](const DropRole& a) { return "drop role " + Quoted(a.role); },
      },
      action);
}

std::string KindOf(const Action& action) {
  static constexpr std::array<const char*, std::variant_size_v<Action>> kNames = {
      "CreateRole",        "AlterRole",        "SetRolePassword",    "SetRoleMarker",
      "TerminateSessions", "CreateDatabase",   "AlterDatabaseOwner", "RevokePublicAccess",
      "SetDatabaseMarker", "EnsureExtensions", "ApplyMigrations",    "DropDatabase",
      "DropRole",
  };
  return kNames[action.index()];
}

bool IsInDatabase(const Action& action) {
  return std::holds_alternative<EnsureExtensions>(action) ||
         std::holds_alternative<ApplyMigrations>(action);
}

}  // namespace tmaster::postgres
