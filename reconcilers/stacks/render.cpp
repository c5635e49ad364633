#include "reconcilers/stacks/render.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstddef>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/confined.hpp"
#include "common/text.hpp"

namespace tmaster::stacks {
namespace {

constexpr std::string_view kInvalidTemplate = "InvalidStackTemplate";
constexpr std::string_view kInvalidEnv = "InvalidStackEnv";
// A compose file is a few KiB; anything near this is a mistake (or an alias bomb), and the
// rendered file travels in one HTTP request body.
constexpr std::size_t kMaxTemplateBytes = 1 << 20;
constexpr std::size_t kMaxEmittedNodes = 100'000;
constexpr int kMaxDepth = 64;
// YAML allows at most 1024 characters in a key written without `? ` (yaml-cpp's emitter does not
// check, and escapes a control byte into four characters, so this is a quarter of it and some):
// longer keys are refused rather than written into a file that does not parse. Compose's keys
// (services, labels, environment names) are far shorter.
constexpr std::size_t kMaxKeyBytes = 200;

Failure TemplateError(const RenderInputs& in, const std::string& what) {
  return Failure::Stalled(std::string(kInvalidTemplate),
                          "stack template " + in.template_name + ": " + what);
}

// --- Env ---

bool IsEnvName(std::string_view name) {
  if (name.empty()) return false;
  const auto head = static_cast<unsigned char>(name.front());
  if (!(std::isalpha(head) != 0 || head == '_')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return std::isalnum(u) != 0 || u == '_';
  });
}

// The names of the variables the operator sets in every dedicated stack's Env (BuildStackEnv).
constexpr std::array<std::string_view, 13> kOperatorEnvNames = {
    "DATABASE_URL", "DB_HOST",          "DB_NAME",         "DB_PASSWORD", "DB_PORT",
    "DB_USER",      "TM_CERT_RESOLVER", "TM_EDGE_NETWORK", "TM_HOST",     "TM_IMAGE",
    "TM_PORT",      "TM_VERSION",       "TM_WORKSPACE"};

bool IsOperatorName(std::string_view name) {
  return name.starts_with("TM_") || name.starts_with("DB_") || name == "DATABASE_URL";
}

// An env file is `NAME=VALUE` per line: a line break would end the value and start a variable
// of the writer's choosing, a NUL ends it early. Neither can be carried, so both are refused.
bool IsEnvFileSafe(std::string_view value) {
  return value.find_first_of(std::string_view("\n\r\0", 3)) == std::string_view::npos;
}

// --- ${VAR} interpolation, used only to recognise template keys and names that already mean
// ours (the file itself keeps its references: compose interpolates them from the Env). ---

using Vars = std::map<std::string, std::string, std::less<>>;

std::string Interpolate(std::string_view text, const Vars& vars, int depth = 0);

std::string Lookup(const Vars& vars, std::string_view name, bool* set) {
  const auto it = vars.find(name);
  *set = it != vars.end();
  return *set ? it->second : std::string();
}

std::string Braced(std::string_view inner, const Vars& vars, int depth) {
  std::size_t n = 0;
  while (n < inner.size() &&
         (std::isalnum(static_cast<unsigned char>(inner[n])) != 0 || inner[n] == '_')) {
    ++n;
  }
  bool set = false;
  const std::string value = Lookup(vars, inner.substr(0, n), &set);
  std::string_view rest = inner.substr(n);
  const bool colon = rest.starts_with(':');
  if (colon) rest.remove_prefix(1);
  if (rest.empty()) return value;
  const char op = rest.front();
  const std::string_view word = rest.substr(1);
  const bool present = colon ? (set && !value.empty()) : set;
  if (op == '-') return present ? value : Interpolate(word, vars, depth + 1);
  if (op == '+') return present ? Interpolate(word, vars, depth + 1) : std::string();
  return value;  // `?`: an error in compose when unset; for matching, the value (or nothing)
}

std::string Interpolate(std::string_view text, const Vars& vars, int depth) {
  if (depth > 8) return std::string(text);
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '$' || i + 1 == text.size()) {
      out.push_back(text[i++]);
      continue;
    }
    const char next = text[i + 1];
    if (next == '$') {
      out.push_back('$');
      i += 2;
      continue;
    }
    if (next == '{') {
      int open = 1;
      std::size_t j = i + 2;
      for (; j < text.size() && open > 0; ++j) {
        if (text[j] == '{') ++open;
        if (text[j] == '}') --open;
      }
      if (open != 0) {
        out.append(text.substr(i));
        break;
      }
      out += Braced(text.substr(i + 2, j - i - 3), vars, depth);
      i = j;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(next)) != 0 || next == '_') {
      std::size_t j = i + 1;
      while (j < text.size() &&
             (std::isalnum(static_cast<unsigned char>(text[j])) != 0 || text[j] == '_')) {
        ++j;
      }
      bool set = false;
      out += Lookup(vars, text.substr(i + 1, j - i - 1), &set);
      i = j;
      continue;
    }
    out.push_back(text[i++]);
  }
  return out;
}

// Literal values the operator puts into the file must not be interpolated by compose.
std::string EscapeDollar(std::string_view text) {
  std::string out;
  for (char c : text) {
    out.push_back(c);
    if (c == '$') out.push_back('$');
  }
  return out;
}

// --- YAML ---

// A string scalar that is emitted quoted, so `true` or `8000` stay strings for compose.
YAML::Node Str(const std::string& value) {
  YAML::Node node(value);
  node.SetTag("!");
  return node;
}

YAML::Node PlainScalar(const std::string& value) { return YAML::Node(value); }

std::optional<std::string> ScalarOf(const YAML::Node& node) {
  if (!node.IsDefined() || !node.IsScalar()) return std::nullopt;
  return node.Scalar();
}

bool IsAbsent(const YAML::Node& node) { return !node.IsDefined() || node.IsNull(); }

// yaml-cpp's own Dump drops the quoting of scalars (`"8000"` would come back as the integer
// 8000, `"true"` as a boolean), so the tree is written out by hand: a scalar that was quoted in
// the template (tag `!`) or that we made with Str() is written double-quoted, other tags are
// kept, and flow collections stay flow.
class Writer {
 public:
  Writer() { out_.SetIndent(2); }

  bool Write(const YAML::Node& node, int depth = 0) {
    if (++count_ > kMaxEmittedNodes || depth > kMaxDepth) return false;
    EmitTag(node.Tag());
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out_ << YAML::Null;
        return true;
      case YAML::NodeType::Scalar:
        if (node.Tag() == "!") out_ << YAML::DoubleQuoted;
        out_ << node.Scalar();
        return true;
      case YAML::NodeType::Sequence:
        if (node.Style() == YAML::EmitterStyle::Flow || node.size() == 0) out_ << YAML::Flow;
        out_ << YAML::BeginSeq;
        for (const auto& item : node) {
          if (!Write(item, depth + 1)) return false;
        }
        out_ << YAML::EndSeq;
        return true;
      case YAML::NodeType::Map:
        if (node.Style() == YAML::EmitterStyle::Flow || node.size() == 0) out_ << YAML::Flow;
        out_ << YAML::BeginMap;
        for (const auto& entry : node) {
          if (entry.first.IsScalar() && entry.first.Scalar().size() > kMaxKeyBytes) {
            const YAML::Mark mark = entry.first.Mark();
            long_key_ = true;
            long_key_line_ = mark.is_null() ? 0 : mark.line + 1;
            return false;
          }
          out_ << YAML::Key;
          if (!Write(entry.first, depth + 1)) return false;
          out_ << YAML::Value;
          if (!Write(entry.second, depth + 1)) return false;
        }
        out_ << YAML::EndMap;
        return true;
    }
    return false;
  }

  [[nodiscard]] bool good() const { return out_.good(); }
  /// Write failed on a key longer than kMaxKeyBytes, written on this line (1-based) of the
  /// template; 0 for a key we made (a label given in list form).
  [[nodiscard]] bool long_key() const { return long_key_; }
  [[nodiscard]] int long_key_line() const { return long_key_line_; }
  [[nodiscard]] std::string error() const { return out_.GetLastError(); }
  [[nodiscard]] std::string text() const { return std::string(out_.c_str()) + "\n"; }

 private:
  void EmitTag(const std::string& tag) {
    static constexpr std::string_view kCore = "tag:yaml.org,2002:";
    if (tag.empty() || tag == "?" || tag == "!") return;
    if (tag.starts_with(kCore)) {
      out_ << YAML::SecondaryTag(tag.substr(kCore.size()));
    } else if (tag.size() > 1 && tag.front() == '!') {
      out_ << YAML::LocalTag(tag.substr(1));
    } else {
      out_ << YAML::VerbatimTag(tag);
    }
  }

  YAML::Emitter out_;
  std::size_t count_ = 0;
  bool long_key_ = false;
  int long_key_line_ = 0;
};

struct Label {
  std::string key;
  std::string value;
};

// The routed service's Traefik labels. `swarm`: the set for `deploy.labels`, which only a swarm
// provider reads: Traefik v3's swarm provider names the network `traefik.swarm.network`, v2's
// docker provider in swarm mode `traefik.docker.network`, and each ignores the other's key, so
// both are written (docs/stacks.md#one-file-for-both-kinds). The port label is there in both sets:
// on swarm Traefik cannot detect a port and requires it.
std::vector<Label> OurLabels(const RenderInputs& in, bool swarm) {
  const std::string router = "traefik.http.routers." + StackName(in.workspace);
  const std::string service = "traefik.http.services." + StackName(in.workspace);
  std::vector<Label> labels = {
      {"traefik.enable", "true"},
      {"traefik.docker.network", in.edge_network},
  };
  if (swarm) labels.push_back({"traefik.swarm.network", in.edge_network});
  labels.push_back({router + ".rule", "Host(`" + in.host + "`)"});
  labels.push_back({router + ".entrypoints", "websecure"});
  labels.push_back({router + ".tls.certresolver", in.cert_resolver});
  labels.push_back({service + ".loadbalancer.server.port", std::to_string(in.port)});
  return labels;
}

Vars MatchVars(const RenderInputs& in) {
  return {{"TM_WORKSPACE", in.workspace},
          {"TM_HOST", in.host},
          {"TM_IMAGE", in.image},
          {"TM_VERSION", in.version},
          {"TM_PORT", std::to_string(in.port)},
          {"TM_EDGE_NETWORK", in.edge_network},
          {"TM_CERT_RESOLVER", in.cert_resolver}};
}

// The labels as (key node, value node) pairs, from either compose form. `where` names the
// node in messages (`services.app.labels`).
Outcome<std::vector<std::pair<YAML::Node, YAML::Node>>> LabelEntries(const YAML::Node& labels,
                                                                     const RenderInputs& in,
                                                                     const std::string& where) {
  std::vector<std::pair<YAML::Node, YAML::Node>> entries;
  if (IsAbsent(labels)) return entries;
  if (labels.IsMap()) {
    for (const auto& entry : labels) entries.emplace_back(entry.first, entry.second);
    return entries;
  }
  if (!labels.IsSequence()) return TemplateError(in, where + " is neither a mapping nor a list");
  for (const auto& item : labels) {
    const auto text = ScalarOf(item);
    if (!text) return TemplateError(in, where + " has an item that is not a string");
    const auto eq = text->find('=');
    if (eq == std::string::npos) {
      entries.emplace_back(PlainScalar(*text), Str(""));
    } else {
      entries.emplace_back(PlainScalar(text->substr(0, eq)), Str(text->substr(eq + 1)));
    }
  }
  return entries;
}

// `labels` (either form) as a map with `ours` in it. Keys of the template that mean one of ours
// (`traefik.http.routers.tm-${TM_WORKSPACE}.rule`) take our canonical key and value, in the
// template's order; the others pass through; ours not met are appended in our order.
Outcome<YAML::Node> MergeLabels(const YAML::Node& template_labels, const std::vector<Label>& ours,
                                const RenderInputs& in, const std::string& where) {
  auto entries = LabelEntries(template_labels, in, where);
  if (!entries) return entries.failure();
  const Vars vars = MatchVars(in);
  std::set<std::string> written;
  YAML::Node labels(YAML::NodeType::Map);
  auto write_ours = [&](const Label& label) {
    if (written.insert(label.key).second) labels[label.key] = Str(EscapeDollar(label.value));
  };
  for (const auto& [key, value] : *entries) {
    const auto text = ScalarOf(key);
    const Label* match = nullptr;
    if (text) {
      const std::string meant = Interpolate(*text, vars);
      for (const auto& label : ours) {
        if (label.key == *text || label.key == meant) match = &label;
      }
    }
    if (match) {
      write_ours(*match);
      continue;
    }
    labels.force_insert(key, value);
  }
  for (const auto& label : ours) write_ours(label);
  return labels;
}

// Our labels on the routed service twice: as container `labels` (compose; Traefik's docker
// provider) and as `deploy.labels` (swarm; Traefik's swarm provider reads only service labels,
// and compose ignores them). Other labels of the template stay where the template put them.
Status AddLabels(YAML::Node service, const RenderInputs& in, const std::string& svc) {
  const std::string where = "services." + svc;
  auto labels = MergeLabels(service["labels"], OurLabels(in, false), in, where + ".labels");
  if (!labels) return labels.failure();
  service["labels"] = *labels;

  if (IsAbsent(service["deploy"])) service["deploy"] = YAML::Node(YAML::NodeType::Map);
  YAML::Node deploy = service["deploy"];
  if (!deploy.IsMap()) return TemplateError(in, where + ".deploy is not a mapping");
  auto deploy_labels =
      MergeLabels(deploy["labels"], OurLabels(in, true), in, where + ".deploy.labels");
  if (!deploy_labels) return deploy_labels.failure();
  deploy["labels"] = *deploy_labels;
  return Ok();
}

// --- env_file: stack.env ---

// Portainer's env file, as a service's `env_file` names it: `stack.env` (or `./stack.env`), as a
// string or as the `path` of the long form.
bool IsStackEnvFile(const YAML::Node& item) {
  auto path = ScalarOf(item);
  if (!path && item.IsMap()) path = ScalarOf(item["path"]);
  return path && (*path == "stack.env" || *path == "./stack.env");
}

// The names a service's `environment` sets: the keys of the map form, what precedes `=` in the
// list form (a bare `NAME` counts: compose takes it from the environment).
Outcome<std::set<std::string>> EnvironmentNames(const YAML::Node& environment,
                                                const RenderInputs& in, const std::string& where) {
  std::set<std::string> names;
  if (IsAbsent(environment)) return names;
  if (environment.IsMap()) {
    const auto keys_of = [&names](const YAML::Node& map) {
      if (!map.IsDefined() || !map.IsMap()) return;
      for (const auto& entry : map) {
        if (const auto key = ScalarOf(entry.first)) names.insert(*key);
      }
    };
    keys_of(environment);
    // A merge key's mappings set their names too (an entry of ours would override them).
    const YAML::Node merged = environment["<<"];
    keys_of(merged);
    if (merged.IsDefined() && merged.IsSequence()) {
      for (const auto& item : merged) keys_of(item);
    }
    return names;
  }
  if (!environment.IsSequence()) {
    return TemplateError(in, where + " is neither a mapping nor a list");
  }
  for (const auto& item : environment) {
    if (const auto text = ScalarOf(item)) names.insert(text->substr(0, text->find('=')));
  }
  return names;
}

// `docker stack deploy` has no stack.env (Portainer writes it for compose only, and passes a
// swarm stack's Env as the deploy's own environment), so a service that reads it fails to deploy
// on swarm. Each such reference becomes `NAME: ${NAME}` entries for the Env's names the service
// does not set itself: compose interpolates them from `--env-file stack.env` as before, swarm
// from the deploy's environment, and no value is ever written into the file. The template's own
// entries keep precedence, as they did over the env file. Other env files are left alone.
Status ReplaceStackEnvFile(YAML::Node service, const RenderInputs& in, const std::string& svc) {
  const YAML::Node env_file = service["env_file"];
  if (IsAbsent(env_file)) return Ok();
  if (env_file.IsSequence()) {
    YAML::Node kept(YAML::NodeType::Sequence);
    kept.SetStyle(env_file.Style());
    for (const auto& item : env_file) {
      if (!IsStackEnvFile(item)) kept.push_back(item);
    }
    if (kept.size() == env_file.size()) return Ok();
    if (kept.size() == 0) {
      service.remove("env_file");
    } else {
      service["env_file"] = kept;
    }
  } else if (IsStackEnvFile(env_file)) {
    service.remove("env_file");
  } else {
    return Ok();
  }

  const std::string where = "services." + svc + ".environment";
  auto set = EnvironmentNames(service["environment"], in, where);
  if (!set) return set.failure();
  if (IsAbsent(service["environment"])) service["environment"] = YAML::Node(YAML::NodeType::Map);
  YAML::Node environment = service["environment"];
  for (const std::string& name : in.env_names) {
    if (set->contains(name)) continue;
    const std::string reference = "${" + name + "}";
    if (environment.IsMap()) {
      environment[name] = Str(reference);
    } else {
      environment.push_back(Str(name + "=" + reference));
    }
  }
  return Ok();
}

Status ReplaceStackEnvFiles(YAML::Node root, const RenderInputs& in) {
  YAML::Node services = root["services"];
  for (auto entry : services) {
    if (!entry.second.IsMap()) continue;
    const auto name = ScalarOf(entry.first);
    if (auto done = ReplaceStackEnvFile(entry.second, in, name.value_or("?")); !done) return done;
  }
  return Ok();
}

// The key under top-level `networks:` that stands for the edge network: an entry whose name
// (or, without a name, whose key) interpolates to it; otherwise a fresh key.
std::string EdgeKey(const YAML::Node& networks, const RenderInputs& in) {
  const Vars vars = MatchVars(in);
  if (networks.IsMap()) {
    for (const auto& entry : networks) {
      const auto key = ScalarOf(entry.first);
      if (!key) continue;
      std::string name = *key;
      if (entry.second.IsMap()) {
        if (const auto n = ScalarOf(entry.second["name"])) name = *n;
      }
      if (Interpolate(name, vars) == in.edge_network) return *key;
    }
    for (const std::string& candidate : {in.edge_network, std::string("tm-edge")}) {
      if (!networks[candidate].IsDefined()) return candidate;
    }
    return "tm-edge";
  }
  return in.edge_network;
}

// Returns the key the edge network has in the service's `networks:`.
Outcome<std::string> AddNetworks(YAML::Node root, YAML::Node service, const RenderInputs& in,
                                 const std::string& svc) {
  const YAML::Node networks = root["networks"];
  if (!IsAbsent(networks) && !networks.IsMap()) {
    return TemplateError(in, "top-level networks is not a mapping");
  }
  if (!IsAbsent(service["network_mode"])) {
    return TemplateError(in, "services." + svc +
                                 " sets network_mode, so it cannot join the edge network " +
                                 in.edge_network);
  }
  const std::string key = EdgeKey(networks, in);
  if (IsAbsent(networks)) root["networks"] = YAML::Node(YAML::NodeType::Map);
  YAML::Node edge(YAML::NodeType::Map);
  edge["name"] = Str(EscapeDollar(in.edge_network));
  edge["external"] = PlainScalar("true");
  root["networks"][key] = edge;

  const YAML::Node joined = service["networks"];
  if (IsAbsent(joined)) {
    // Without `networks:` the service sat on `default` with the stack's other services; keep it
    // there as well.
    YAML::Node list(YAML::NodeType::Sequence);
    list.push_back(PlainScalar("default"));
    list.push_back(PlainScalar(key));
    service["networks"] = list;
    return key;
  }
  if (joined.IsSequence()) {
    for (const auto& item : joined) {
      if (ScalarOf(item) == key) return key;
    }
    service["networks"].push_back(PlainScalar(key));
    return key;
  }
  if (joined.IsMap()) {
    if (!joined[key].IsDefined()) service["networks"][key] = YAML::Node(YAML::NodeType::Map);
    return key;
  }
  return TemplateError(in, "services." + svc + ".networks is neither a mapping nor a list");
}

// A compose file parsed, with its routed service chosen (`app`, else the first one) and given
// an image when it has none: the start of both renderings.
struct Compose {
  YAML::Node root;
  YAML::Node service;
  std::string svc;
};

Outcome<YAML::Node> Parse(std::string_view text, const RenderInputs& in) {
  if (text.size() > kMaxTemplateBytes) return TemplateError(in, "larger than 1 MiB");
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return TemplateError(in, "line " + std::to_string(e.mark.line + 1) + ", column " +
                                 std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
}


Outcome<Compose> OpenCompose(std::string_view template_text, const RenderInputs& inputs) {
  auto parsed = Parse(template_text, inputs);
  if (!parsed) return parsed.failure();
  YAML::Node root = *parsed;
  if (!root.IsMap()) return TemplateError(inputs, "not a mapping with services");
  const YAML::Node services = root["services"];
  if (!services.IsDefined() || !services.IsMap() || services.size() == 0) {
    return TemplateError(inputs, "has no services mapping");
  }

  std::string svc;
  for (const auto& entry : services) {
    const auto name = ScalarOf(entry.first);
    if (!name) return TemplateError(inputs, "a service name is not a string");
    if (svc.empty() || *name == "app") svc = *name;
    if (*name == "app") break;
  }
  if (IsAbsent(services[svc])) root["services"][svc] = YAML::Node(YAML::NodeType::Map);
  YAML::Node service = root["services"][svc];
  if (!service.IsMap()) return TemplateError(inputs, "services." + svc + " is not a mapping");

  const YAML::Node image = service["image"];
  if (IsAbsent(image) || (image.IsScalar() && image.Scalar().empty())) {
    service["image"] = Str(EscapeDollar(inputs.image + ":" + inputs.version));
  }
  return Compose{root, service, svc};
}

Outcome<std::string> WriteCompose(const YAML::Node& root, const RenderInputs& inputs) {
  Writer writer;
  if (!writer.Write(root) || !writer.good()) {
    const std::string why =
        writer.long_key()
            ? (writer.long_key_line() > 0 ? "line " + std::to_string(writer.long_key_line()) + ": "
                                          : std::string("a label: ")) +
                  "a key longer than " + std::to_string(kMaxKeyBytes) +
                  " bytes; YAML allows at most 1024 characters in a key"
        : writer.good() ? "too deeply nested or too many aliases"
                        : "cannot be written back: " + writer.error();
    return TemplateError(inputs, why);
  }
  return writer.text();
}

// --- the shared runtime's additions ---

// `labels` (either form) as a map with `traefik.enable: "false"` in it (replacing a template key
// that means it); other labels pass through (inert while Traefik ignores the service).
Outcome<YAML::Node> WithTraefikDisabled(const YAML::Node& template_labels, const RenderInputs& in,
                                        const std::string& where) {
  auto entries = LabelEntries(template_labels, in, where);
  if (!entries) return entries.failure();
  const Vars vars = MatchVars(in);
  YAML::Node labels(YAML::NodeType::Map);
  bool written = false;
  for (const auto& [key, value] : *entries) {
    const auto text = ScalarOf(key);
    if (text && (*text == "traefik.enable" || Interpolate(*text, vars) == "traefik.enable")) {
      if (!written) labels["traefik.enable"] = Str("false");
      written = true;
      continue;
    }
    labels.force_insert(key, value);
  }
  if (!written) labels["traefik.enable"] = Str("false");
  return labels;
}

// Traefik ignores the runtime on both kinds of endpoint: the container `labels` (its docker
// provider) and `deploy.labels` (its swarm provider, which reads only service labels) both say
// `traefik.enable: "false"`; its routes come from the operator's Traefik document.
Status DisableTraefik(YAML::Node service, const RenderInputs& in, const std::string& svc) {
  const std::string where = "services." + svc;
  auto labels = WithTraefikDisabled(service["labels"], in, where + ".labels");
  if (!labels) return labels.failure();
  service["labels"] = *labels;
  if (IsAbsent(service["deploy"])) service["deploy"] = YAML::Node(YAML::NodeType::Map);
  YAML::Node deploy = service["deploy"];
  if (!deploy.IsMap()) return TemplateError(in, where + ".deploy is not a mapping");
  auto deploy_labels = WithTraefikDisabled(deploy["labels"], in, where + ".deploy.labels");
  if (!deploy_labels) return deploy_labels.failure();
  deploy["labels"] = *deploy_labels;
  return Ok();
}

// The alias on the edge network (key `edge_key`); a list of networks becomes a mapping, since
// only that form carries aliases.
Status AddEdgeAlias(YAML::Node service, const std::string& edge_key, const std::string& alias,
                    const RenderInputs& in, const std::string& svc) {
  const std::string where = "services." + svc + ".networks";
  if (service["networks"].IsSequence()) {
    YAML::Node map(YAML::NodeType::Map);
    for (const auto& item : service["networks"]) {
      const auto name = ScalarOf(item);
      if (!name) return TemplateError(in, where + " has an item that is not a string");
      map[*name] = YAML::Node(YAML::NodeType::Map);
    }
    service["networks"] = map;
  }
  if (!service["networks"].IsMap()) {
    return TemplateError(in, where + " is neither a mapping nor a list");
  }
  YAML::Node edge = service["networks"][edge_key];
  if (IsAbsent(edge)) {
    service["networks"][edge_key] = YAML::Node(YAML::NodeType::Map);
    edge = service["networks"][edge_key];
  }
  if (!edge.IsMap()) return TemplateError(in, where + "." + edge_key + " is not a mapping");
  YAML::Node aliases = edge["aliases"];
  if (IsAbsent(aliases)) {
    YAML::Node list(YAML::NodeType::Sequence);
    list.push_back(Str(alias));
    edge["aliases"] = list;
    return Ok();
  }
  if (!aliases.IsSequence()) {
    return TemplateError(in, where + "." + edge_key + ".aliases is not a list");
  }
  for (const auto& item : aliases) {
    if (ScalarOf(item) == alias) return Ok();
  }
  edge["aliases"].push_back(Str(alias));
  return Ok();
}

// The target of a volume entry: the second field of the short syntax, `target` of the long one.
std::optional<std::string> VolumeTarget(const YAML::Node& item) {
  if (item.IsMap()) return ScalarOf(item["target"]);
  const auto text = ScalarOf(item);
  if (!text) return std::nullopt;
  const std::size_t first = text->find(':');
  if (first == std::string::npos) return *text;  // an anonymous volume: its path is the target
  const std::size_t second = text->find(':', first + 1);
  return text->substr(first + 1, second == std::string::npos ? std::string::npos
                                                             : second - first - 1);
}

Status AddBindingsMount(YAML::Node service, const std::filesystem::path& bindings,
                        const RenderInputs& in, const std::string& svc) {
  const std::string ours =
      EscapeDollar(bindings.string()) + ":" + std::string(kBindingsMountTarget) + ":ro";
  const YAML::Node volumes = service["volumes"];
  if (IsAbsent(volumes)) {
    YAML::Node list(YAML::NodeType::Sequence);
    list.push_back(Str(ours));
    service["volumes"] = list;
    return Ok();
  }
  if (!volumes.IsSequence()) return TemplateError(in, "services." + svc + ".volumes is not a list");
  for (const auto& item : volumes) {
    if (ScalarOf(item) == ours) return Ok();
    if (VolumeTarget(item) == std::string(kBindingsMountTarget)) {
      return TemplateError(in, "services." + svc + ".volumes mounts something else at " +
                                   std::string(kBindingsMountTarget) +
                                   ", where the operator mounts the product's bindings");
    }
  }
  service["volumes"].push_back(Str(ours));
  return Ok();
}

// `name=value` in the service's `environment` (mapping or list form), replacing a value the
// template gives it.
Status SetServiceVariable(YAML::Node service, const std::string& name, const std::string& value,
                          const RenderInputs& in, const std::string& svc) {
  const YAML::Node environment = service["environment"];
  if (IsAbsent(environment)) service["environment"] = YAML::Node(YAML::NodeType::Map);
  if (service["environment"].IsMap()) {
    service["environment"][name] = Str(EscapeDollar(value));
    return Ok();
  }
  if (!environment.IsSequence()) {
    return TemplateError(in, "services." + svc + ".environment is neither a mapping nor a list");
  }
  const std::string item = name + "=" + EscapeDollar(value);
  for (std::size_t i = 0; i < environment.size(); ++i) {
    const auto text = ScalarOf(environment[i]);
    if (text && (*text == name || text->starts_with(name + "="))) {
      service["environment"][i] = Str(item);
      return Ok();
    }
  }
  service["environment"].push_back(Str(item));
  return Ok();
}

// What a compose volume's short syntax cannot carry: a `:` ends the source, a line break or NUL
// cannot be written in the env file that carries TM_BINDINGS_DIR.
std::optional<std::string> BindingsDirProblem(const std::filesystem::path& bindings) {
  const std::string text = bindings.string();
  if (!bindings.is_absolute()) return "is not an absolute path";
  if (text.find(':') != std::string::npos) return "holds a ':', which a compose volume cannot carry";
  if (!IsEnvFileSafe(text)) return "holds a line break or NUL";
  return std::nullopt;
}

// The RenderInputs the shared parts reuse: no workspace, no host. The caller fills env_names.
RenderInputs AsRenderInputs(const SharedRuntimeInputs& in) {
  RenderInputs out;
  out.image = in.image;
  out.version = in.version;
  out.port = in.port;
  out.edge_network = in.edge_network;
  out.cert_resolver = in.cert_resolver;
  out.template_name = in.template_name;
  return out;
}

}  // namespace

std::string StackName(std::string_view workspace) { return "tm-" + std::string(workspace); }

bool IsSecretEnvName(std::string_view name) {
  return name == "DB_PASSWORD" || name == "DATABASE_URL";
}

Secret DatabaseUrl(const DbConnection& db) {
  std::string host = db.host;
  if (host.find(':') != std::string::npos && !host.starts_with('[')) {
    host = "[" + host + "]";  // IPv6 literal
  } else if (!host.starts_with('[')) {
    host = PercentEncode(host);  // a socket directory becomes %2F...
  }
  return Secret("postgresql://" + PercentEncode(db.user) + ":" +
                PercentEncode(db.password.Reveal()) + "@" + host + ":" + std::to_string(db.port) +
                "/" + PercentEncode(db.database));
}

Outcome<std::vector<EnvVar>> BuildStackEnv(const RenderInputs& inputs, const DbConnection& db,
                                           const std::map<std::string, std::string>& extra) {
  std::vector<EnvVar> env = {
      {"DATABASE_URL", DatabaseUrl(db).Reveal(), true},
      {"DB_HOST", db.host, false},
      {"DB_NAME", db.database, false},
      {"DB_PASSWORD", db.password.Reveal(), true},
      {"DB_PORT", std::to_string(db.port), false},
      {"DB_USER", db.user, false},
      {"TM_CERT_RESOLVER", inputs.cert_resolver, false},
      {"TM_EDGE_NETWORK", inputs.edge_network, false},
      {"TM_HOST", inputs.host, false},
      {"TM_IMAGE", inputs.image, false},
      {"TM_PORT", std::to_string(inputs.port), false},
      {"TM_VERSION", inputs.version, false},
      {"TM_WORKSPACE", inputs.workspace, false},
  };
  const std::string owner = "workspace " + inputs.workspace + ": ";
  for (const auto& [name, value] : extra) {
    if (!IsEnvName(name)) {
      return Failure::Stalled(std::string(kInvalidEnv),
                              owner +
                                  "spec.dedicated.env has a variable whose name is not "
                                  "[A-Za-z_][A-Za-z0-9_]*");
    }
    if (IsOperatorName(name)) {
      return Failure::Stalled(std::string(kInvalidEnv),
                              owner + "spec.dedicated.env." + name +
                                  " is set by the operator (TM_*, DB_*, DATABASE_URL)");
    }
    env.push_back({name, value, false});
  }
  for (const auto& var : env) {
    if (!IsEnvFileSafe(var.value)) {
      return Failure::Stalled(std::string(kInvalidEnv),
                              owner + "Env variable " + var.name +
                                  " holds a line break or NUL, which a stack's env file "
                                  "cannot carry");
    }
  }
  std::sort(env.begin(), env.end(),
            [](const EnvVar& a, const EnvVar& b) { return a.name < b.name; });
  return env;
}

Outcome<std::string> RenderStackFile(std::string_view template_text, const RenderInputs& inputs) {
  auto compose = OpenCompose(template_text, inputs);
  if (!compose) return compose.failure();
  Compose& c = *compose;
  if (auto done = AddLabels(c.service, inputs, c.svc); !done) return done.failure();
  if (auto done = AddNetworks(c.root, c.service, inputs, c.svc); !done) return done.failure();
  if (auto done = ReplaceStackEnvFiles(c.root, inputs); !done) return done.failure();
  return WriteCompose(c.root, inputs);
}

RenderInputs MakeRenderInputs(const manifests::Workspace& workspace,
                              const manifests::Product& product, const manifests::Config& config) {
  RenderInputs in;
  in.workspace = workspace.name;
  const std::string subdomain = workspace.subdomain.empty() ? workspace.name : workspace.subdomain;
  in.host = config.base_domain.empty() ? subdomain : subdomain + "." + config.base_domain;
  in.image = product.image;
  in.version = workspace.dedicated && !workspace.dedicated->version.empty()
                   ? workspace.dedicated->version
                   : product.default_version;
  in.port = product.port;
  in.edge_network = config.stacks.edge_network;
  in.cert_resolver = config.stacks.cert_resolver;
  in.template_name = product.stack_template.empty()
                         ? "of product " + product.name
                         : product.stack_template.string() + " of product " + product.name;
  in.env_names.assign(kOperatorEnvNames.begin(), kOperatorEnvNames.end());
  if (workspace.dedicated) {
    for (const auto& [name, value] : workspace.dedicated->env) in.env_names.push_back(name);
  }
  std::sort(in.env_names.begin(), in.env_names.end());
  return in;
}

Outcome<DesiredStack> BuildDesiredStack(const manifests::Workspace& workspace,
                                        const manifests::Product& product,
                                        const manifests::Config& config, const DbConnection& db,
                                        std::string_view template_text) {
  if (!workspace.dedicated) {
    return Failure::Stalled("NotDedicated",
                            "workspace " + workspace.name + " has no spec.dedicated");
  }
  RenderInputs inputs = MakeRenderInputs(workspace, product, config);
  if (inputs.version.empty()) {
    return Failure::Stalled("InvalidStackVersion", "workspace " + workspace.name +
                                                       ": no spec.dedicated.version and "
                                                       "product " +
                                                       product.name + " has no defaultVersion");
  }
  auto env = BuildStackEnv(inputs, db, workspace.dedicated->env);
  if (!env) return env.failure();
  inputs.env_names.clear();  // the Env just built is the authority on its names
  for (const auto& var : *env) inputs.env_names.push_back(var.name);
  auto file = RenderStackFile(template_text, inputs);
  if (!file) return file.failure();
  DesiredStack stack;
  stack.workspace = workspace.name;
  stack.name = StackName(workspace.name);
  stack.endpoint = workspace.dedicated->endpoint;
  stack.file = std::move(file).value();
  stack.env = std::move(env).value();
  stack.active = !workspace.suspend;
  return stack;
}

Outcome<std::string> ReadStackTemplate(const manifests::Product& product,
                                       std::uintmax_t max_bytes) {
  if (product.stack_template.empty()) {
    return Failure::Stalled(
        std::string(kInvalidTemplate),
        "product " + product.name + " has no stackTemplate; dedicated workspaces need one");
  }
  const std::filesystem::path root =
      product.root.empty() ? product.stack_template.parent_path() : product.root;
  const std::optional<std::filesystem::path> relative =
      confined::Beneath(root, product.stack_template);
  const std::string shown =
      relative ? confined::Show(*relative) : product.stack_template.filename().string();
  const std::string where = "stack template " + shown + " of product " + product.name;
  if (!relative) {
    return Failure::Stalled(std::string(kInvalidTemplate),
                            where + " is outside the source folder; it was not read");
  }
  Outcome<std::string> text = confined::ReadFile(root, *relative, max_bytes);
  if (text) return text;
  const Failure& failure = text.failure();
  if (failure.reason == confined::kTooLarge) {
    return Failure::Stalled("StackTemplateTooLarge",
                            where + " is larger than the limit of " + std::to_string(max_bytes) +
                                " bytes (reconcile.maxTemplateSize); it was not read");
  }
  if (failure.reason == confined::kEscapes) {
    return Failure::Stalled(std::string(kInvalidTemplate),
                            where +
                                " leads out of the source folder (a symbolic link or '..' "
                                "pointing outside it); it was not read");
  }
  return Failure::Stalled(std::string(kInvalidTemplate),
                          "cannot read " + where + ": " + failure.message);
}

Outcome<DesiredStack> BuildDesiredStack(const manifests::Workspace& workspace,
                                        const manifests::Product& product,
                                        const manifests::Config& config, const DbConnection& db) {
  Outcome<std::string> text = ReadStackTemplate(product);
  if (!text) return text.failure();
  return BuildDesiredStack(workspace, product, config, db, *text);
}

// --- the shared runtime ---

std::string SharedRuntimeStackName(std::string_view product) {
  return "tm-" + SharedRuntimeStackKey(product);
}

std::string SharedRuntimeStackKey(std::string_view product) {
  return "shared-" + std::string(product);
}

std::string SharedRuntimeMarkerOf(const ObservedStack& stack) {
  std::string product;
  for (const auto& var : stack.env) {
    if (var.name == "TM_WORKSPACE") return {};
    if (var.name == "TM_PRODUCT") product = var.value;
  }
  if (product.empty() || Lower(stack.name) != SharedRuntimeStackName(product)) return {};
  return product;
}

Outcome<std::vector<EnvVar>> BuildSharedRuntimeEnv(const SharedRuntimeInputs& inputs) {
  std::vector<EnvVar> env = {
      {"SERVICE_BINDING_ROOT", std::string(kBindingsMountTarget), false},
      {"TM_BINDINGS_DIR", inputs.bindings.string(), false},
      {"TM_CERT_RESOLVER", inputs.cert_resolver, false},
      {"TM_EDGE_NETWORK", inputs.edge_network, false},
      {"TM_IMAGE", inputs.image, false},
      {"TM_PORT", std::to_string(inputs.port), false},
      {"TM_PRODUCT", inputs.product, false},
      {"TM_VERSION", inputs.version, false},
  };
  for (const auto& var : env) {
    if (!IsEnvFileSafe(var.value)) {
      return Failure::Stalled(std::string(kInvalidEnv),
                              "shared runtime of product " + inputs.product + ": Env variable " +
                                  var.name +
                                  " holds a line break or NUL, which a stack's env file "
                                  "cannot carry");
    }
  }
  return env;  // written in name order
}

Outcome<std::string> RenderSharedRuntimeFile(std::string_view template_text,
                                             const SharedRuntimeInputs& inputs) {
  if (const auto problem = BindingsDirProblem(inputs.bindings)) {
    return Failure::Stalled("InvalidBindingsDir", "shared runtime of product " + inputs.product +
                                                      ": the bindings folder " +
                                                      inputs.bindings.string() + " " + *problem);
  }
  RenderInputs in = AsRenderInputs(inputs);
  // The Env's names, for each `env_file: stack.env` (a swarm deploy has no such file).
  auto env = BuildSharedRuntimeEnv(inputs);
  if (!env) return env.failure();
  for (const EnvVar& var : *env) in.env_names.push_back(var.name);
  auto compose = OpenCompose(template_text, in);
  if (!compose) return compose.failure();
  Compose& c = *compose;
  if (auto done = DisableTraefik(c.service, in, c.svc); !done) return done.failure();
  auto edge_key = AddNetworks(c.root, c.service, in, c.svc);
  if (!edge_key) return edge_key.failure();
  if (auto done =
          AddEdgeAlias(c.service, *edge_key, SharedRuntimeStackName(inputs.product), in, c.svc);
      !done) {
    return done.failure();
  }
  if (auto done = AddBindingsMount(c.service, inputs.bindings, in, c.svc); !done) {
    return done.failure();
  }
  if (auto done = SetServiceVariable(c.service, "SERVICE_BINDING_ROOT",
                                     std::string(kBindingsMountTarget), in, c.svc);
      !done) {
    return done.failure();
  }
  // After SERVICE_BINDING_ROOT: the routed service sets it, so no `${...}` entry replaces it.
  if (auto done = ReplaceStackEnvFiles(c.root, in); !done) return done.failure();
  return WriteCompose(c.root, in);
}

SharedRuntimeInputs MakeSharedRuntimeInputs(const manifests::Product& product,
                                            const manifests::Config& config,
                                            const std::filesystem::path& bindings_dir) {
  SharedRuntimeInputs in;
  in.product = product.name;
  in.image = product.image;
  in.version = product.default_version;
  in.port = product.port;
  in.edge_network = config.stacks.edge_network;
  in.cert_resolver = config.stacks.cert_resolver;
  in.bindings = (bindings_dir / product.name).lexically_normal();
  const std::filesystem::path file =
      product.shared_runtime ? product.shared_runtime->stack_template : std::filesystem::path();
  in.template_name = file.empty() ? "of the shared runtime of product " + product.name
                                  : file.string() + " of the shared runtime of product " +
                                        product.name;
  return in;
}

Outcome<DesiredStack> BuildSharedRuntimeStack(const manifests::Product& product,
                                              const manifests::Config& config,
                                              const std::filesystem::path& bindings_dir,
                                              std::string_view template_text) {
  if (!product.shared_runtime) {
    return Failure::Stalled("NoSharedRuntime",
                            "product " + product.name + " has no spec.sharedRuntime");
  }
  const SharedRuntimeInputs inputs = MakeSharedRuntimeInputs(product, config, bindings_dir);
  if (inputs.version.empty()) {
    return Failure::Stalled("InvalidStackVersion",
                            "shared runtime of product " + product.name +
                                ": the product has no defaultVersion");
  }
  auto env = BuildSharedRuntimeEnv(inputs);
  if (!env) return env.failure();
  auto file = RenderSharedRuntimeFile(template_text, inputs);
  if (!file) return file.failure();
  DesiredStack stack;
  stack.workspace = SharedRuntimeStackKey(product.name);
  stack.name = SharedRuntimeStackName(product.name);
  stack.endpoint = product.shared_runtime->endpoint;
  stack.file = std::move(file).value();
  stack.env = std::move(env).value();
  stack.active = true;
  return stack;
}

}  // namespace tmaster::stacks
