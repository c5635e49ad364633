// Fuzz target: compose rendering (reconcilers/stacks/render.hpp): a product's stack template
// with a workspace's values, and the stack's Env.
//
// Input, in the split format of tests/fuzz/fuzz_input.hpp: optional field lines, an empty line,
// then the template's text. Fields (each optional; the default in brackets): `workspace` [acme],
// `host` [acme.surgir.online], `image` [ghcr.io/acme/erp], `version` [2.3.1], `port` [8000;
// a number, else the default], `edgeNetwork` [tenant-network], `certResolver` [le], and any
// number of `env.NAME: value` (spec.dedicated.env). An input without an empty line is all
// template (so plain compose files are valid seeds).
//
// Properties beyond "no crash, no exception, no sanitizer report":
//  - rendering is idempotent: a rendered file renders again, to itself, when the template is
//    UTF-8 and the fields are printable ASCII (as validated manifests make them);
//  - the database password never shows in the compose file;
//  - a built Env is sorted by name, names are unique and `[A-Za-z_][A-Za-z0-9_]*`, no value holds
//    a newline, carriage return or NUL, and every variable that carries the password is secret.

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "common/secret.hpp"
#include "reconcilers/stacks/render.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

namespace stacks = tmaster::stacks;
using tmaster::fuzz::Require;

constexpr std::string_view kPassword = "fuzz-db-password-7Qx";

bool IsEnvName(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) return false;
  }
  return true;
}

// Well-formed UTF-8 (no check of overlong forms or surrogates: the emitter's concern is bytes
// that are not UTF-8 at all, which it writes as U+FFFD).
bool IsUtf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const std::size_t length = c < 0x80            ? 1
                               : (c >> 5) == 0x6U  ? 2
                               : (c >> 4) == 0xEU  ? 3
                               : (c >> 3) == 0x1EU ? 4
                                                   : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0U) != 0x80U) return false;
    }
    i += length;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = tmaster::fuzz::AsText(data, size);
  tmaster::fuzz::SplitInput input;
  if (text.find("\n\n") == std::string_view::npos || text.find(": ") > text.find("\n\n")) {
    input.body = std::string(text);  // no field block: all template
  } else {
    input = tmaster::fuzz::Split(text);
  }
  stacks::RenderInputs in;
  in.workspace = "acme";
  in.host = "acme.surgir.online";
  in.image = "ghcr.io/acme/erp";
  in.version = "2.3.1";
  in.port = 8000;
  in.edge_network = "tenant-network";
  in.cert_resolver = "le";
  in.template_name = "fuzz.yml";
  std::map<std::string, std::string> extra;
  for (const auto& [name, value] : input.fields) {
    if (name == "workspace") in.workspace = value;
    else if (name == "host") in.host = value;
    else if (name == "image") in.image = value;
    else if (name == "version") in.version = value;
    else if (name == "edgeNetwork") in.edge_network = value;
    else if (name == "certResolver") in.cert_resolver = value;
    else if (name == "port" && !value.empty() && value.size() <= 5 &&
             value.find_first_not_of("0123456789") == std::string::npos) {
      in.port = std::stoi(value);
    } else if (name.rfind("env.", 0) == 0) {
      extra[name.substr(4)] = value;
    }
  }

  // The password checks hold unless the input itself holds the password.
  const bool input_has_password = text.find(kPassword) != std::string_view::npos;
  bool printable = IsUtf8(input.body);
  for (const auto& field : input.fields) {
    for (const char c : field.second) printable = printable && c >= ' ' && c <= '~';
  }
  // What `env_file: stack.env` becomes: entries for the Env's names (BuildDesiredStack passes
  // them all; here a few of the operator's and the input's extras).
  std::set<std::string> names = {"DATABASE_URL", "DB_PASSWORD", "TM_HOST"};
  for (const auto& [name, value] : extra) {
    if (IsEnvName(name)) names.insert(name);
  }
  in.env_names.assign(names.begin(), names.end());
  const auto rendered = stacks::RenderStackFile(input.body, in);
  if (rendered) {
    Require(input_has_password || rendered->find(kPassword) == std::string::npos,
            "the password never shows in the compose file");
    // Only for a UTF-8 template and values the manifests can hold: the YAML emitter writes
    // invalid UTF-8 as U+FFFD and a NUL as `\0`, so a key holding them is not the one recognised
    // (or even allowed: a key's length) again (tests/fuzz/corpus/render/crash-invalid-utf8-*;
    // a validated workspace name is a DNS label).
    if (printable) {
      const auto again = stacks::RenderStackFile(*rendered, in);
      Require(static_cast<bool>(again), "a rendered file renders again");
      Require(*again == *rendered, "rendering is idempotent");
    }
  } else {
    Require(!rendered.failure().message.empty(), "a refused template says why");
  }

  stacks::DbConnection db;
  db.host = "db.internal";
  db.port = 5432;
  db.database = "tenant_acme";
  db.user = "user_acme";
  db.password = tmaster::Secret(std::string(kPassword));
  const auto env = stacks::BuildStackEnv(in, db, extra);
  if (!env) {
    Require(input_has_password || env.failure().message.find(kPassword) == std::string::npos,
            "an Env error never shows the password");
    return 0;
  }
  for (std::size_t i = 0; i < env->size(); ++i) {
    const stacks::EnvVar& var = (*env)[i];
    Require(IsEnvName(var.name), "Env names are identifiers");
    Require(i == 0 || (*env)[i - 1].name < var.name, "the Env is sorted, names unique");
    Require(var.value.find_first_of(std::string_view("\n\r\0", 3)) == std::string::npos,
            "no Env value holds a newline, carriage return or NUL");
    if (!input_has_password && var.value.find(kPassword) != std::string::npos) {
      Require(var.secret, "a variable that carries the password is secret");
    }
  }
  return 0;
}
