#include "manifests/config.hpp"

#include <grp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "manifests/loader.hpp"
#include "manifests/naming.hpp"
#include "manifests/yaml_support.hpp"

namespace tmaster::manifests {
namespace {

namespace fs = std::filesystem;
using detail::Quote;
using detail::ScalarType;

constexpr std::uintmax_t kMaxConfigBytes = 1024U * 1024U;
constexpr std::int64_t kMaxWorkers = 64;
// Each backup is a pg_dump (and a verification a pg_restore) holding a server connection and a
// core; more than 16 at once starves the reconcilers and the tenants of the same servers.
constexpr std::int64_t kMaxBackupConcurrency = 16;
constexpr std::int64_t kInt32Max = 2147483647;

bool IsEnvName(std::string_view name) {
  if (name.empty()) return false;
  auto head = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!head(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return head(c) || (c >= '0' && c <= '9'); });
}

// A DNS name: dot-separated DNS labels, at most 253 characters (surgir.online, localhost).
bool IsDnsName(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  std::size_t begin = 0;
  while (true) {
    std::size_t dot = text.find('.', begin);
    std::string_view label =
        text.substr(begin, dot == std::string_view::npos ? std::string_view::npos : dot - begin);
    if (!IsDnsLabel(label)) return false;
    if (dot == std::string_view::npos) return true;
    begin = dot + 1;
  }
}

bool IsHttpUrl(std::string_view url) {
  for (std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
    if (url.substr(0, scheme.size()) == scheme && url.size() > scheme.size() &&
        url[scheme.size()] != '/') {
      return url.find_first_of(" \t\r\n") == std::string_view::npos;
    }
  }
  return false;
}

// What `git clone` may be given: a URL of a known scheme or scp-like user@host:path, never
// something that starts with '-' (it would be read as an option).
bool IsGitUrl(std::string_view url) {
  if (url.empty() || url.front() == '-') return false;
  if (url.find_first_of(" \t\r\n") != std::string_view::npos) return false;
  for (std::string_view scheme : {"https://", "http://", "ssh://", "git://", "file://"}) {
    if (url.substr(0, scheme.size()) == scheme && url.size() > scheme.size()) return true;
  }
  std::size_t at = url.find('@');
  std::size_t colon = url.find(':');
  return at != std::string_view::npos && colon != std::string_view::npos && at < colon &&
         colon + 1 < url.size();
}

// Whether a "scheme://" URL carries credentials in its userinfo ("user:token@host", or
// "token@host" over http): they would show in `ps` and land in the checkout's .git/config, so
// they go in username/password instead. An ssh:// login name alone ("ssh://git@host/x") is no
// secret; scp-like "git@host:x" has no scheme and is not checked.
bool HasCredentials(std::string_view url) {
  const std::size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return false;
  const std::string_view rest = url.substr(scheme + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  const std::size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return false;
  return url.substr(0, scheme) != "ssh" || authority.substr(0, at).find(':') != std::string_view::npos;
}

bool IsBranchName(std::string_view branch) {
  if (branch.empty() || branch.front() == '-' || branch.front() == '/' || branch.back() == '/') {
    return false;
  }
  if (branch.find("..") != std::string_view::npos || branch.find("//") != std::string_view::npos) {
    return false;
  }
  return std::all_of(branch.begin(), branch.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/';
  });
}

// A path inside the repository: relative, without `..`.
bool IsRepoPath(std::string_view path) {
  if (path.empty()) return false;
  fs::path p{std::string(path)};
  if (p.is_absolute()) return false;
  return std::none_of(p.begin(), p.end(), [](const fs::path& part) { return part == ".."; });
}

// An fnmatch pattern as the config may give it: printable ASCII, at most 200 characters.
bool IsGlobText(std::string_view text) {
  if (text.empty() || text.size() > 200) return false;
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

// host:port with a non-empty host (name, IPv4 or [IPv6]) and a port in 1..65535.
bool IsListenAddress(std::string_view text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return false;
  } else if (host.find(':') != std::string_view::npos) {
    return false;
  }
  if (port.empty() || port.size() > 5) return false;
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  int value = std::stoi(std::string(port));
  return value >= 0 && value <= 65535;  // 0: any free port (the daemon logs the one it got)
}

/// The state shared by every reader of one config file.
struct Context {
  std::string file;
  fs::path dir;
  std::vector<Diagnostic> errors;

  void Error(const YAML::Mark& mark, std::string field, std::string message) {
    errors.push_back(Diagnostic{Diagnostic::Severity::kError, detail::ToLocation(mark, file, 0),
                                std::move(field), std::move(message)});
  }

  fs::path Resolve(const std::string& text) const {
    fs::path path(text);
    if (path.is_relative()) path = dir / path;
    return path.lexically_normal();
  }
};

std::string Join(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

/// Strict reading of one mapping: every key must be taken by the code that knows it; what is
/// left when the reader goes away is an unknown field. Duplicate keys are errors.
class MapReader {
 public:
  MapReader(Context& context, const YAML::Node& node, std::string path, const YAML::Mark& mark)
      : context_(context), node_(node), path_(std::move(path)), mark_(mark) {
    if (!node.IsMap()) {
      context_.Error(node.IsNull() ? mark : node.Mark(), path_,
                     "must be object, got " + detail::Describe(node));
      ok_ = false;
      return;
    }
    for (const YAML::Node& key : detail::DuplicateKeys(node)) {
      context_.Error(key.Mark(), Join(path_, key.Scalar()),
                     "duplicate field " + Quote(key.Scalar()));
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) {
        context_.Error(it->first.Mark(), path_, "field names must be strings");
        continue;
      }
      entries_.emplace(it->first.Scalar(), std::make_pair(it->first, it->second));
    }
  }

  MapReader(const MapReader&) = delete;
  MapReader& operator=(const MapReader&) = delete;

  // What no code took is unknown. A destructor must not throw: on allocation failure the
  // finding is lost, not the process.
  ~MapReader() {
    try {
      for (const auto& [key, entry] : entries_) {
        if (taken_.count(key) != 0) continue;
        context_.Error(entry.first.Mark(), Join(path_, key), "unknown field " + Quote(key));
      }
    } catch (...) {  // NOLINT(bugprone-empty-catch)
    }
  }

  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const YAML::Mark& mark() const { return mark_; }
  [[nodiscard]] bool Has(const std::string& key) const { return entries_.count(key) != 0; }
  [[nodiscard]] std::string PathOf(const std::string& key) const { return Join(path_, key); }
  [[nodiscard]] YAML::Mark KeyMark(const std::string& key) const {
    auto found = entries_.find(key);
    return found == entries_.end() ? mark_ : found->second.first.Mark();
  }
  // Where the value of `key` is; its key when the value is null (a null's mark is the next token).
  [[nodiscard]] YAML::Mark ValueMark(const std::string& key) const {
    auto found = entries_.find(key);
    if (found == entries_.end()) return mark_;
    const YAML::Node& value = found->second.second;
    return value.IsNull() ? found->second.first.Mark() : value.Mark();
  }

  /// The value of `key` (marked as known), or nullopt when absent.
  std::optional<YAML::Node> Take(const std::string& key) {
    taken_.insert(key);
    auto found = entries_.find(key);
    if (found == entries_.end()) return std::nullopt;
    return found->second.second;
  }

  void Error(const std::string& key, std::string message) {
    context_.Error(ValueMark(key), PathOf(key), std::move(message));
  }

  void Missing(const std::string& key) {
    context_.Error(mark_, PathOf(key), "required field is missing");
  }

  std::optional<std::string> String(const std::string& key, bool required = false) {
    std::optional<YAML::Node> node = Take(key);
    if (!node) {
      if (required) Missing(key);
      return std::nullopt;
    }
    if (!node->IsScalar() || detail::Resolve(*node) != ScalarType::kString) {
      Error(key, "must be string, got " + detail::Describe(*node));
      return std::nullopt;
    }
    if (node->Scalar().empty()) {
      Error(key, "must not be empty");
      return std::nullopt;
    }
    return node->Scalar();
  }

  std::optional<std::int64_t> Integer(const std::string& key, std::int64_t min, std::int64_t max) {
    std::optional<YAML::Node> node = Take(key);
    if (!node) return std::nullopt;
    if (!node->IsScalar() || detail::Resolve(*node) != ScalarType::kInteger) {
      Error(key, "must be integer, got " + detail::Describe(*node));
      return std::nullopt;
    }
    std::optional<std::int64_t> value = detail::ParseInteger(node->Scalar());
    if (!value || *value < min || *value > max) {
      Error(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                     ", got " + node->Scalar().substr(0, 40));
      return std::nullopt;
    }
    return value;
  }

  /// A map of label keys to values, checked as metadata.labels are; empty when absent.
  std::map<std::string, std::string> Labels(const std::string& key) {
    std::map<std::string, std::string> out;
    std::optional<YAML::Node> node = Take(key);
    if (!node) return out;
    if (!node->IsMap()) {
      Error(key, "must be a map of label keys to values, got " + detail::Describe(*node));
      return out;
    }
    for (auto it = node->begin(); it != node->end(); ++it) {
      const std::string field = PathOf(key) + "[" + it->first.Scalar() + "]";
      if (!it->first.IsScalar() || !it->second.IsScalar() ||
          detail::Resolve(it->second) != ScalarType::kString) {
        context_.Error(it->first.Mark(), field, "a label value must be a string");
        continue;
      }
      if (std::optional<std::string> error = LabelKeyError(it->first.Scalar())) {
        context_.Error(it->first.Mark(), field,
                       "invalid label key " + Quote(it->first.Scalar()) + ": " + *error);
        continue;
      }
      if (std::optional<std::string> error = LabelValueError(it->second.Scalar())) {
        context_.Error(it->second.Mark(), field,
                       "invalid label value " + Quote(it->second.Scalar()) + ": " + *error);
        continue;
      }
      out.emplace(it->first.Scalar(), it->second.Scalar());
    }
    return out;
  }

  std::optional<bool> Boolean(const std::string& key) {
    std::optional<YAML::Node> node = Take(key);
    if (!node) return std::nullopt;
    if (!node->IsScalar() || detail::Resolve(*node) != ScalarType::kBoolean) {
      Error(key, "must be boolean (true or false), got " + detail::Describe(*node));
      return std::nullopt;
    }
    return node->Scalar() == "true";
  }

  std::optional<std::chrono::seconds> Duration(const std::string& key) {
    std::optional<YAML::Node> node = Take(key);
    if (!node) return std::nullopt;
    std::optional<std::chrono::seconds> value;
    if (node->IsScalar() && detail::Resolve(*node) == ScalarType::kString) {
      value = ParseDuration(node->Scalar());
    }
    if (!value) {
      Error(key, "must be a duration such as 90s, 5m or 1h30m, got " + detail::Describe(*node));
      return std::nullopt;
    }
    if (value->count() <= 0) {
      Error(key, "must be longer than 0s");
      return std::nullopt;
    }
    return value;
  }

  /// A size: an integer of bytes or a string `<n>KiB` / `<n>MiB`, more than zero.
  std::optional<std::uintmax_t> Size(const std::string& key) {
    std::optional<YAML::Node> node = Take(key);
    if (!node) return std::nullopt;
    std::optional<std::uintmax_t> value;
    if (node->IsScalar()) {
      const ScalarType type = detail::Resolve(*node);
      if (type == ScalarType::kInteger || type == ScalarType::kString) {
        value = ParseSize(node->Scalar());
      }
    }
    if (!value) {
      Error(key,
            "must be a size above zero and at most 2^53 bytes, in bytes or as <n>KiB or <n>MiB "
            "(for example 1MiB), got " +
                detail::Describe(*node));
      return std::nullopt;
    }
    return value;
  }

  std::optional<fs::path> Path(const std::string& key) {
    std::optional<std::string> text = String(key);
    if (!text) return std::nullopt;
    return context_.Resolve(*text);
  }

  /// A secret given as `<base>Env` or `<base>File`; `<base>` itself (the secret inline) is an
  /// error whose message never repeats the value.
  SecretRef Secret(const std::string& base, bool required) {
    const std::string env_key = base + "Env";
    const std::string file_key = base + "File";
    const bool inline_value = Take(base).has_value();
    if (inline_value) {
      context_.Error(KeyMark(base), PathOf(base),
                     "secrets may not be written in the config; use " + env_key +
                         " (an environment variable) or " + file_key + " (a file)");
    }
    SecretRef ref;
    const bool has_env = Has(env_key);
    const bool has_file = Has(file_key);
    if (has_env && has_file) {
      context_.Error(KeyMark(file_key), PathOf(file_key),
                     "set only one of " + env_key + " and " + file_key);
    }
    if (std::optional<std::string> env = String(env_key)) {
      if (IsEnvName(*env)) {
        ref.env = *env;
      } else {
        Error(env_key,
              "must be an environment variable name matching ^[A-Za-z_][A-Za-z0-9_]*$, "
              "got " +
                  Quote(*env));
      }
    }
    if (std::optional<fs::path> file = Path(file_key)) ref.file = *file;
    if (required && !has_env && !has_file && !inline_value) {
      context_.Error(mark_, PathOf(env_key),
                     "one of " + env_key + " or " + file_key + " is required");
    }
    return ref;
  }

 private:
  Context& context_;
  YAML::Node node_;
  std::string path_;
  YAML::Mark mark_;
  bool ok_ = true;
  std::map<std::string, std::pair<YAML::Node, YAML::Node>> entries_;
  std::set<std::string> taken_;
};

/// Calls `read(item, index_path, mark)` for every item of the list under `key`.
template <class Read>
void ForEachItem(MapReader& parent, const std::string& key, Read read) {
  std::optional<YAML::Node> list = parent.Take(key);
  if (!list) return;
  if (!list->IsSequence()) {
    parent.Error(key, "must be array, got " + detail::Describe(*list));
    return;
  }
  std::size_t index = 0;
  for (auto it = list->begin(); it != list->end(); ++it, ++index) {
    const YAML::Node item = *it;
    read(item, parent.PathOf(key) + "[" + std::to_string(index) + "]",
         item.IsNull() ? parent.ValueMark(key) : item.Mark());
  }
}

std::optional<std::string> Name(MapReader& reader) {
  std::optional<std::string> name = reader.String("name", /*required=*/true);
  if (name && !IsDnsLabel(*name)) {
    reader.Error("name",
                 "must be a DNS label (lower-case letters, digits and '-', at most 63 "
                 "characters), got " +
                     Quote(*name));
    return std::nullopt;
  }
  return name;
}

void CheckUnique(Context& context, std::map<std::string, YAML::Mark>& seen, const std::string& what,
                 const std::string& name, const MapReader& reader) {
  auto [first, inserted] = seen.emplace(name, reader.ValueMark("name"));
  if (inserted) return;
  context.Error(reader.ValueMark("name"), reader.PathOf("name"),
                what + " " + Quote(name) + " is defined twice (first at line " +
                    std::to_string(first->second.line + 1) + ")");
}

void ReadClusters(Context& context, MapReader& root, Config& config) {
  if (!root.Has("clusters")) {
    root.Missing("clusters");
    return;
  }
  std::map<std::string, YAML::Mark> seen;
  ForEachItem(root, "clusters",
              [&](const YAML::Node& item, const std::string& path, const YAML::Mark& mark) {
                MapReader reader(context, item, path, mark);
                if (!reader.ok()) return;
                ClusterConfig cluster;
                if (std::optional<std::string> name = Name(reader)) {
                  cluster.name = *name;
                  CheckUnique(context, seen, "cluster", *name, reader);
                }
                cluster.dsn = reader.Secret("dsn", /*required=*/true);
                if (auto host = reader.String("stacksHost")) cluster.stacks_host = *host;
                if (auto port = reader.Integer("stacksPort", 1, 65535)) {
                  cluster.stacks_port = static_cast<int>(*port);
                }
                if (auto pattern = reader.String("adoptPattern")) {
                  if (IsGlobText(*pattern)) {
                    cluster.adopt_pattern = *pattern;
                  } else {
                    reader.Error("adoptPattern",
                                 "must be a glob of printable characters (for example "
                                 "\"legacy_*\"), at most 200 characters");
                  }
                }
                cluster.capacity = reader.Integer("capacity", 0, 10'000'000);
                cluster.labels = reader.Labels("labels");
                config.clusters.push_back(std::move(cluster));
              });
  if (config.clusters.empty() && root.Has("clusters")) {
    root.Error("clusters", "at least one cluster is required");
  }
}

void ReadGit(Context& context, const YAML::Node& node, const std::string& path,
             const YAML::Mark& mark, GitSourceConfig& git) {
  MapReader reader(context, node, path, mark);
  if (!reader.ok()) return;
  if (std::optional<std::string> url = reader.String("url", /*required=*/true)) {
    if (IsGitUrl(*url) && HasCredentials(*url)) {
      // Never quoted: the userinfo is a secret.
      reader.Error("url",
                   "must not carry credentials (user:token@host); give them as usernameEnv/"
                   "usernameFile and passwordEnv/passwordFile");
    } else if (IsGitUrl(*url)) {
      git.url = *url;
    } else {
      reader.Error("url",
                   "must be an https://, http://, ssh://, git:// or file:// URL or "
                   "user@host:path, got " +
                       Quote(*url));
    }
  }
  if (std::optional<std::string> branch = reader.String("branch")) {
    if (IsBranchName(*branch)) {
      git.branch = *branch;
    } else {
      reader.Error("branch",
                   "must be a branch name of letters, digits, '.', '_', '-' and '/', "
                   "got " +
                       Quote(*branch));
    }
  }
  if (std::optional<std::string> repo_path = reader.String("path")) {
    if (IsRepoPath(*repo_path)) {
      git.path = *repo_path;
    } else {
      reader.Error("path", "must be a relative path inside the repository (no '..'), got " +
                               Quote(*repo_path));
    }
  }
  if (auto interval = reader.Duration("interval")) git.interval = *interval;
  if (auto timeout = reader.Duration("timeout")) git.timeout = *timeout;
  git.webhook_secret = reader.Secret("webhookSecret", /*required=*/true);
  git.username = reader.Secret("username", /*required=*/false);
  git.password = reader.Secret("password", /*required=*/false);
}

void ReadSources(Context& context, MapReader& root, Config& config) {
  std::map<std::string, YAML::Mark> seen;
  ForEachItem(root, "sources",
              [&](const YAML::Node& item, const std::string& path, const YAML::Mark& mark) {
                MapReader reader(context, item, path, mark);
                if (!reader.ok()) return;
                SourceConfig source;
                if (std::optional<std::string> name = Name(reader)) {
                  source.name = *name;
                  CheckUnique(context, seen, "source", *name, reader);
                }
                const bool has_directory = reader.Has("directory");
                const bool has_git = reader.Has("git");
                if (has_directory == has_git) {
                  context.Error(has_git ? reader.KeyMark("git") : mark, path,
                                "a source needs exactly one of directory or git");
                }
                source.directory = reader.Path("directory");
                if (std::optional<YAML::Node> git = reader.Take("git")) {
                  GitSourceConfig git_config;
                  ReadGit(context, *git, reader.PathOf("git"), reader.ValueMark("git"), git_config);
                  source.git = std::move(git_config);
                }
                config.sources.push_back(std::move(source));
              });
}

void ReadPortainer(Context& context, const YAML::Node& node, const std::string& path,
                   const YAML::Mark& mark, PortainerConfig& portainer) {
  MapReader reader(context, node, path, mark);
  if (!reader.ok()) return;
  if (std::optional<std::string> url = reader.String("url", /*required=*/true)) {
    if (IsHttpUrl(*url)) {
      portainer.url = *url;
    } else {
      reader.Error("url", "must be an http:// or https:// URL, got " + Quote(*url));
    }
  }
  portainer.api_key = reader.Secret("apiKey", /*required=*/true);
  if (auto skip = reader.Boolean("insecureSkipVerify")) portainer.insecure_skip_verify = *skip;
  // Below 10s the probe would run on nearly every pass; above a day a converted endpoint would
  // go unnoticed for too long (an engine that joins a swarm is seen only when the kind expires).
  if (auto ttl = reader.Duration("endpointKindTtl")) {
    if (*ttl < std::chrono::seconds(10) || *ttl > std::chrono::hours(24)) {
      reader.Error("endpointKindTtl", "must be between 10s and 24h, got " + FormatDuration(*ttl));
    } else {
      portainer.endpoint_kind_ttl = *ttl;
    }
  }
}

void ReadStacks(Context& context, MapReader& root, Config& config) {
  StacksConfig& stacks = config.stacks;
  stacks.directory = context.Resolve("deployments");
  std::optional<YAML::Node> node = root.Take("stacks");
  if (!node) return;
  MapReader reader(context, *node, "stacks", root.ValueMark("stacks"));
  if (!reader.ok()) return;
  if (std::optional<std::string> backend = reader.String("backend")) {
    if (*backend == "directory" || *backend == "portainer") {
      stacks.backend = *backend;
    } else {
      reader.Error("backend",
                   "must be one of \"directory\", \"portainer\", got " + Quote(*backend));
    }
  }
  if (auto directory = reader.Path("directory")) stacks.directory = *directory;
  if (auto ledger = reader.Path("ledgerFile")) stacks.ledger_file = *ledger;
  if (std::optional<YAML::Node> portainer = reader.Take("portainer")) {
    ReadPortainer(context, *portainer, "stacks.portainer", reader.ValueMark("portainer"),
                  stacks.portainer);
  } else if (stacks.backend == "portainer") {
    context.Error(reader.ValueMark("backend"), "stacks.portainer",
                  "required when stacks.backend is portainer");
  }
  if (auto network = reader.String("edgeNetwork")) stacks.edge_network = *network;
  if (auto resolver = reader.String("certResolver")) stacks.cert_resolver = *resolver;
  std::map<std::int64_t, int> seen;  // id -> line
  ForEachItem(reader, "endpoints",
              [&](const YAML::Node& item, const std::string& path, const YAML::Mark& mark) {
                MapReader entry(context, item, path, mark);
                if (!entry.ok()) return;
                EndpointConfig endpoint;
                if (auto id = entry.Integer("id", 1, std::numeric_limits<std::int32_t>::max())) {
                  endpoint.id = static_cast<int>(*id);
                  auto [first, inserted] = seen.emplace(*id, entry.ValueMark("id").line + 1);
                  if (!inserted) {
                    entry.Error("id", "endpoint " + std::to_string(*id) +
                                          " is defined twice (first at line " +
                                          std::to_string(first->second) + ")");
                  }
                } else if (!entry.Has("id")) {
                  entry.Missing("id");
                }
                endpoint.capacity = entry.Integer("capacity", 0, 10'000'000);
                endpoint.labels = entry.Labels("labels");
                stacks.endpoints.push_back(std::move(endpoint));
              });
}

// A duration of at most an hour: a server limit longer than that is a typo, not a choice.
std::optional<std::chrono::seconds> ShortDuration(MapReader& reader, const std::string& key) {
  std::optional<std::chrono::seconds> value = reader.Duration(key);
  if (value && *value > std::chrono::hours(1)) {
    reader.Error(key, "must be at most 1h");
    return std::nullopt;
  }
  return value;
}

std::optional<std::uintmax_t> SizeBetween(MapReader& reader, const std::string& key,
                                          std::uintmax_t min, std::uintmax_t max,
                                          const char* range) {
  std::optional<std::uintmax_t> value = reader.Size(key);
  if (value && (*value < min || *value > max)) {
    reader.Error(key, std::string("must be between ") + range + ", got " +
                          std::to_string(*value) + " bytes");
    return std::nullopt;
  }
  return value;
}

// The server's limits (README.md#config-reference; what each does: HttpServerOptions in
// controller/api/http_server.hpp).
void ReadHttpLimits(Context& context, MapReader& reader, HttpConfig& http) {
  constexpr std::uintmax_t kKiB = 1024;
  http.max_connections = reader.Integer("maxConnections", 1, 100'000);
  http.header_timeout = ShortDuration(reader, "headerTimeout");
  http.body_timeout = ShortDuration(reader, "bodyTimeout");
  http.write_timeout = ShortDuration(reader, "writeTimeout");
  http.idle_timeout = ShortDuration(reader, "idleTimeout");
  http.max_header_bytes = SizeBetween(reader, "maxHeaderBytes", kKiB, kKiB * kKiB, "1KiB and 1MiB");
  http.max_body_bytes =
      SizeBetween(reader, "maxBodyBytes", kKiB, 64 * kKiB * kKiB, "1KiB and 64MiB");
  http.threads = reader.Integer("threads", 1, kMaxWorkers);
  std::optional<YAML::Node> limit = reader.Take("webhookRateLimit");
  if (!limit) return;
  MapReader r(context, *limit, reader.PathOf("webhookRateLimit"),
              reader.ValueMark("webhookRateLimit"));
  if (!r.ok()) return;
  HttpRateLimitConfig& out = http.webhook_rate_limit;
  out.per_second = r.Integer("perSecond", 1, 1'000'000);
  out.burst = r.Integer("burst", 1, 1'000'000);
  out.max_addresses = r.Integer("maxAddresses", 100, 10'000'000);
}

// `tlsCertFile` and `tlsKeyFile`: both or neither, each a readable file (the server reloads them
// when they change; a pair that does not load then keeps the previous one).
void ReadHttpTls(MapReader& reader, HttpConfig& http) {
  std::optional<fs::path> cert = reader.Path("tlsCertFile");
  std::optional<fs::path> key = reader.Path("tlsKeyFile");
  if (cert.has_value() != key.has_value()) {
    const std::string missing = cert ? "tlsKeyFile" : "tlsCertFile";
    const std::string given = cert ? "tlsCertFile" : "tlsKeyFile";
    reader.Error(given, "set " + missing + " too: TLS needs both the certificate and its key");
    return;
  }
  if (!cert) return;
  bool readable = true;
  for (const auto& [key_name, path] : {std::pair<std::string, fs::path>{"tlsCertFile", *cert},
                                       std::pair<std::string, fs::path>{"tlsKeyFile", *key}}) {
    std::error_code ec;
    std::ifstream in(path);
    if (!fs::is_regular_file(path, ec) || !in) {
      reader.Error(key_name, "cannot read " + Quote(path.string()) + " (a PEM file)");
      readable = false;
    }
  }
  if (!readable) return;
  http.tls_cert_file = *cert;
  http.tls_key_file = *key;
}

// `usersFile`: the dashboard's users (issue 14), a file readable now. Its content (names, hashes,
// roles) is read by controller/api/users.hpp, which the manifests do not depend on.
void ReadHttpUsersFile(MapReader& reader, HttpConfig& http) {
  std::optional<fs::path> file = reader.Path("usersFile");
  if (!file) return;
  std::error_code ec;
  std::ifstream in(*file);
  if (!fs::is_regular_file(*file, ec) || !in) {
    reader.Error("usersFile", "cannot read " + Quote(file->string()) +
                                  " (a YAML file: users: [{name, hash, role}])");
    return;
  }
  http.users_file = *file;
}

void ReadHttp(Context& context, MapReader& root, Config& config) {
  std::optional<YAML::Node> node = root.Take("http");
  if (!node) return;
  MapReader reader(context, *node, "http", root.ValueMark("http"));
  if (!reader.ok()) return;
  if (std::optional<std::string> listen = reader.String("listen")) {
    if (IsListenAddress(*listen)) {
      config.http.listen = *listen;
    } else {
      reader.Error("listen", "must be host:port (for example 127.0.0.1:8080 or [::1]:8080), got " +
                                 Quote(*listen));
    }
  }
  config.http.token = reader.Secret("token", /*required=*/false);
  config.http.read_token = reader.Secret("readToken", /*required=*/false);
  // docs/api.md#authentication: without a token, nobody beyond this machine may reach the API.
  if (reader.Has("listen") && !config.http.token.IsSet() && !config.http.read_token.IsSet() &&
      !IsLoopbackListen(config.http.listen)) {
    reader.Error("listen", Quote(config.http.listen) +
                               " is not a loopback address: without http.tokenEnv/tokenFile (or "
                               "readTokenEnv/readTokenFile) the API serves only on 127.0.0.1, "
                               "[::1] or localhost");
  }
  ReadHttpTls(reader, config.http);
  ReadHttpUsersFile(reader, config.http);
  ReadHttpLimits(context, reader, config.http);
}

void ReadRouting(Context& context, MapReader& root, Config& config) {
  std::optional<YAML::Node> node = root.Take("routing");
  if (!node) return;
  MapReader reader(context, *node, "routing", root.ValueMark("routing"));
  if (!reader.ok()) return;
  config.routing_token = reader.Secret("token", /*required=*/false);
  if (std::optional<YAML::Node> suspended = reader.Take("suspendedService")) {
    if (!suspended->IsScalar() || detail::Resolve(*suspended) != ScalarType::kString ||
        !IsHttpUrl(suspended->Scalar())) {
      context.Error(suspended->Mark(), "routing.suspendedService",
                    "must be an http:// or https:// URL, got " + detail::Describe(*suspended));
    } else {
      config.suspended_service = suspended->Scalar();
    }
  }
  std::optional<YAML::Node> services = reader.Take("sharedServices");
  if (!services) return;
  const std::string path = "routing.sharedServices";
  if (!services->IsMap()) {
    reader.Error("sharedServices", "must be object, got " + detail::Describe(*services));
    return;
  }
  for (const YAML::Node& key : detail::DuplicateKeys(*services)) {
    context.Error(key.Mark(), path + "." + key.Scalar(), "duplicate field " + Quote(key.Scalar()));
  }
  for (auto it = services->begin(); it != services->end(); ++it) {
    const std::string product = it->first.Scalar();
    const std::string field = path + "." + product;
    if (!IsDnsLabel(product, kMaxNameLength)) {
      context.Error(it->first.Mark(), field,
                    "must be a product name (a DNS label of at most 40 "
                    "characters), got " +
                        Quote(product));
      continue;
    }
    const YAML::Node url = it->second;
    if (!url.IsScalar() || detail::Resolve(url) != ScalarType::kString ||
        !IsHttpUrl(url.Scalar())) {
      context.Error(url.IsNull() ? it->first.Mark() : url.Mark(), field,
                    "must be an http:// or https:// URL, got " + detail::Describe(url));
      continue;
    }
    config.shared_services[product] = url.Scalar();
  }
}

// A group the files of bindings or the pooler are given: a POSIX group name that exists here.
std::optional<std::string> Group(MapReader& reader) {
  std::optional<std::string> group = reader.String("group");
  if (!group) return std::nullopt;
  const auto first = static_cast<unsigned char>(group->front());
  const bool valid = group->size() <= 32 && (std::islower(first) != 0 || first == '_') &&
                     std::all_of(group->begin(), group->end(), [](char c) {
                       return std::islower(static_cast<unsigned char>(c)) != 0 ||
                              std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '_' ||
                              c == '-';
                     });
  if (!valid) {
    reader.Error("group", "must be a group name such as tm-runtime, got " + Quote(*group));
    return std::nullopt;
  }
  if (::getgrnam(group->c_str()) == nullptr) {
    reader.Error("group", "group " + Quote(*group) + " does not exist on this machine");
    return std::nullopt;
  }
  return group;
}

void ReadBindings(Context& context, MapReader& root, Config& config) {
  std::optional<YAML::Node> node = root.Take("bindings");
  if (!node) return;
  MapReader reader(context, *node, "bindings", root.ValueMark("bindings"));
  if (!reader.ok()) return;
  BindingsConfig bindings;
  std::optional<fs::path> dir = reader.Path("dir");
  if (auto group = Group(reader)) bindings.group = *group;
  if (!dir) {
    if (!reader.Has("dir")) reader.Missing("dir");
    return;
  }
  bindings.dir = *dir;
  config.bindings = bindings;
}

void ReadPooler(Context& context, MapReader& root, Config& config) {
  std::optional<YAML::Node> node = root.Take("pooler");
  if (!node) return;
  MapReader pooler(context, *node, "pooler", root.ValueMark("pooler"));
  if (!pooler.ok()) return;
  std::optional<YAML::Node> bouncer = pooler.Take("pgbouncer");
  if (!bouncer) {
    pooler.Missing("pgbouncer");
    return;
  }
  MapReader reader(context, *bouncer, "pooler.pgbouncer", pooler.ValueMark("pgbouncer"));
  if (!reader.ok()) return;
  PgBouncerConfig out;
  bool ok = true;
  if (std::optional<fs::path> dir = reader.Path("dir")) {
    out.dir = *dir;
  } else {
    if (!reader.Has("dir")) reader.Missing("dir");
    ok = false;
  }
  if (auto group = Group(reader)) out.group = *group;
  if (std::optional<std::string> listen = reader.String("listen", /*required=*/true)) {
    const std::size_t colon = listen->rfind(':');
    if (!IsListenAddress(*listen) || listen->substr(colon + 1) == "0") {
      reader.Error("listen", "must be host:port of PgBouncer's listener (for example "
                             "127.0.0.1:6432), got " + Quote(*listen));
      ok = false;
    } else {
      out.listen_host = listen->substr(0, colon);
      if (out.listen_host.front() == '[') {
        out.listen_host = out.listen_host.substr(1, out.listen_host.size() - 2);
      }
      out.listen_port = std::stoi(listen->substr(colon + 1));
    }
  } else {
    ok = false;
  }
  std::optional<YAML::Node> reload = reader.Take("reload");
  if (!reload) {
    reader.Missing("reload");
    ok = false;
  } else {
    MapReader r(context, *reload, "pooler.pgbouncer.reload", reader.ValueMark("reload"));
    if (!r.ok()) return;
    if (auto pid = r.Path("pidFile")) out.reload_pid_file = *pid;
    out.reload_admin_dsn = r.Secret("adminDsn", /*required=*/false);
    const bool pid = !out.reload_pid_file.empty();
    const bool admin = out.reload_admin_dsn.IsSet();
    if (pid == admin) {
      context.Error(r.mark(), "pooler.pgbouncer.reload",
                    "set exactly one of pidFile (SIGHUP) or adminDsnEnv/adminDsnFile (RELOAD on "
                    "the admin console)");
      ok = false;
    }
  }
  if (ok) config.pgbouncer = out;
}

void ReadRuntimes(Context& context, MapReader& root, Config& config) {
  std::optional<YAML::Node> node = root.Take("runtimes");
  if (!node) return;
  if (!node->IsMap()) {
    root.Error("runtimes", "must be object, got " + detail::Describe(*node));
    return;
  }
  for (const YAML::Node& key : detail::DuplicateKeys(*node)) {
    context.Error(key.Mark(), "runtimes." + key.Scalar(), "duplicate field " + Quote(key.Scalar()));
  }
  for (auto it = node->begin(); it != node->end(); ++it) {
    const std::string product = it->first.Scalar();
    const std::string path = "runtimes." + product;
    if (!IsDnsLabel(product, kMaxNameLength)) {
      context.Error(it->first.Mark(), path,
                    "must be a product name (a DNS label of at most 40 characters), got " +
                        Quote(product));
      continue;
    }
    MapReader reader(context, it->second, path,
                     it->second.IsNull() ? it->first.Mark() : it->second.Mark());
    if (!reader.ok()) continue;
    RuntimeConfig runtime;
    runtime.token = reader.Secret("token", /*required=*/true);
    if (runtime.token.IsSet()) config.runtimes[product] = runtime;
  }
}

void ReadBackups(Context& context, MapReader& root, Config& config) {
  config.backups.directory = context.Resolve("backups");
  std::optional<YAML::Node> node = root.Take("backups");
  if (!node) return;
  MapReader reader(context, *node, "backups", root.ValueMark("backups"));
  if (!reader.ok()) return;
  if (auto directory = reader.Path("directory")) config.backups.directory = *directory;
  BackupsConfig& out = config.backups;
  if (auto concurrency = reader.Integer("concurrency", 1, kMaxBackupConcurrency)) {
    out.concurrency = static_cast<int>(*concurrency);
  }
  if (auto before = reader.Boolean("beforeMigrations")) out.before_migrations = *before;
  if (auto encrypt = reader.Boolean("encrypt")) out.encrypt = *encrypt;
  if (std::optional<YAML::Node> verify = reader.Take("verify")) {
    const bool text = verify->IsScalar() && detail::Resolve(*verify) == ScalarType::kString;
    if (text && verify->Scalar() == "restore") {
      out.verify = BackupVerify::kRestore;
    } else if (text && verify->Scalar() == "list") {
      out.verify = BackupVerify::kList;
    } else {
      reader.Error("verify", "must be restore (restored into a scratch database) or list (only "
                             "pg_restore --list), got " + detail::Describe(*verify));
    }
  }
  if (std::optional<YAML::Node> keep = reader.Take("keepAfterDelete")) {
    const bool text = keep->IsScalar() && detail::Resolve(*keep) == ScalarType::kString;
    std::optional<std::chrono::seconds> duration;
    if (text) duration = ParseDuration(keep->Scalar());
    if (text && keep->Scalar() == "keep") {
      out.keep_after_delete = KeepAfterDelete{KeepAfterDelete::Kind::kKeep, {}};
    } else if (text && keep->Scalar() == "delete") {
      out.keep_after_delete = KeepAfterDelete{KeepAfterDelete::Kind::kDelete, {}};
    } else if (duration && duration->count() > 0) {
      out.keep_after_delete = KeepAfterDelete{KeepAfterDelete::Kind::kFor, *duration};
    } else {
      reader.Error("keepAfterDelete",
                   "must be keep, delete or a duration above 0s such as 720h (30 days), got " +
                       detail::Describe(*keep));
    }
  }
}

void ReadReconcile(Context& context, MapReader& root, Config& config) {
  std::optional<YAML::Node> node = root.Take("reconcile");
  if (!node) return;
  MapReader reader(context, *node, "reconcile", root.ValueMark("reconcile"));
  if (!reader.ok()) return;
  if (auto workers = reader.Integer("workers", 1, kMaxWorkers)) {
    config.reconcile.workers = static_cast<int>(*workers);
  }
  if (auto interval = reader.Duration("resyncInterval"))
    config.reconcile.resync_interval = *interval;
  if (auto max = reader.Integer("maxDeletionsPerSync", 0, kInt32Max)) {
    config.reconcile.max_deletions_per_sync = static_cast<int>(*max);
  }
  ReconcileConfig& reconcile = config.reconcile;
  if (auto timeout = reader.Duration("statementTimeout")) reconcile.statement_timeout = *timeout;
  if (auto timeout = reader.Duration("lockTimeout")) reconcile.lock_timeout = *timeout;
  if (auto timeout = reader.Duration("migrationTimeout")) reconcile.migration_timeout = *timeout;
  if (auto timeout = reader.Duration("drainTimeout")) reconcile.drain_timeout = *timeout;
  if (auto size = reader.Size("maxMigrationSize")) reconcile.max_migration_bytes = *size;
  if (auto size = reader.Size("maxTemplateSize")) reconcile.max_template_bytes = *size;
}

void ReadRollouts(Context& context, MapReader& root, Config& config) {
  std::optional<YAML::Node> node = root.Take("rollouts");
  if (!node) return;
  MapReader reader(context, *node, "rollouts", root.ValueMark("rollouts"));
  if (!reader.ok()) return;
  if (std::optional<std::string> url = reader.String("healthBaseUrl", /*required=*/false)) {
    if (IsHttpUrl(*url)) {
      config.rollouts.health_base_url = *url;
    } else {
      reader.Error("healthBaseUrl", "must be an http:// or https:// URL, got " + Quote(*url));
    }
  }
  if (auto limit = reader.Integer("revisionHistoryLimit", 1, 10'000)) {
    config.rollouts.revision_history_limit = static_cast<int>(*limit);
  }
}

void ReadRoot(Context& context, const YAML::Node& root, Config& config) {
  MapReader reader(context, root, "", root.Mark());
  if (!reader.ok()) return;
  if (std::optional<std::string> domain = reader.String("baseDomain", /*required=*/true)) {
    if (IsDnsName(*domain)) {
      config.base_domain = *domain;
    } else {
      reader.Error("baseDomain",
                   "must be a DNS name such as example.com (lower-case), got " + Quote(*domain));
    }
  }
  std::set<std::string> reserved;
  ForEachItem(reader, "reservedSubdomains",
              [&](const YAML::Node& item, const std::string& path, const YAML::Mark& mark) {
                if (!item.IsScalar() || detail::Resolve(item) != ScalarType::kString ||
                    !IsDnsLabel(item.Scalar())) {
                  context.Error(mark, path, "must be a DNS label, got " + detail::Describe(item));
                  return;
                }
                if (reserved.insert(item.Scalar()).second) {
                  config.reserved_subdomains.push_back(item.Scalar());
                }
              });
  config.master_key = reader.Secret("masterKey", /*required=*/true);
  ReadClusters(context, reader, config);
  if (std::optional<YAML::Node> store = reader.Take("store")) {
    MapReader store_reader(context, *store, "store", reader.ValueMark("store"));
    if (store_reader.ok()) {
      config.store.dsn = store_reader.Secret("dsn", /*required=*/false);
      if (std::optional<YAML::Node> retention = store_reader.Take("retention")) {
        MapReader r(context, *retention, "store.retention", store_reader.ValueMark("retention"));
        RetentionConfig& out = config.store.retention;
        if (r.ok()) {
          constexpr std::int64_t kMaxRows = 100'000'000;
          if (auto age = r.Duration("eventsMaxAge")) out.events_max_age = *age;
          if (auto count = r.Integer("eventsMaxCount", 1, kMaxRows)) out.events_max_count = *count;
          if (auto age = r.Duration("deliveriesMaxAge")) out.deliveries_max_age = *age;
          if (auto count = r.Integer("deliveriesMaxCount", 1, kMaxRows)) {
            out.deliveries_max_count = *count;
          }
          if (auto count = r.Integer("rejectedDeliveries", 1, 1'000'000)) {
            out.rejected_deliveries = *count;
          }
        }
      }
    }
  }
  ReadSources(context, reader, config);
  ReadStacks(context, reader, config);
  ReadHttp(context, reader, config);
  ReadRouting(context, reader, config);
  ReadBindings(context, reader, config);
  ReadPooler(context, reader, config);
  ReadRuntimes(context, reader, config);
  ReadBackups(context, reader, config);
  ReadReconcile(context, reader, config);
  ReadRollouts(context, reader, config);
}

ConfigResult LoadConfigUnsafe(const fs::path& file) {
  ConfigResult result;
  Context context;
  context.file = file.string();
  std::error_code ec;
  fs::path absolute = fs::absolute(file, ec);
  if (ec) absolute = file;
  context.dir = absolute.parent_path();
  result.config.file = absolute.lexically_normal();

  auto file_error = [&](std::string message) {
    result.errors.push_back(Diagnostic{Diagnostic::Severity::kError, Location{context.file, 0, 0},
                                       "", std::move(message)});
    return result;
  };
  std::uintmax_t size = fs::file_size(file, ec);
  if (ec) return file_error("cannot read config: " + ec.message());
  if (size > kMaxConfigBytes) return file_error("config is larger than 1 MiB");
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return file_error("cannot read config");

  detail::ParsedText parsed = detail::ParseDocuments(text.str(), context.file);
  if (!parsed.errors.empty()) {
    result.errors = std::move(parsed.errors);
    return result;
  }
  if (parsed.documents.empty()) return file_error("config is empty");
  if (parsed.documents.size() > 1) {
    result.errors.push_back(Diagnostic{
        Diagnostic::Severity::kError,
        detail::ToLocation(YAML::Mark::null_mark(), context.file, parsed.documents[1].line_offset),
        "", "the config must be a single YAML document"});
    return result;
  }
  ReadRoot(context, parsed.documents.front().root, result.config);
  result.errors = std::move(context.errors);
  std::stable_sort(result.errors.begin(), result.errors.end(),
                   [](const Diagnostic& a, const Diagnostic& b) {
                     if (a.where.line != b.where.line) return a.where.line < b.where.line;
                     return a.where.column < b.where.column;
                   });
  return result;
}

}  // namespace

std::string SecretRef::Describe() const {
  if (!env.empty()) return "environment variable " + env;
  if (!file.empty()) return "file " + file.string();
  return "no secret reference";
}

ConfigResult LoadConfig(const std::filesystem::path& file) {
  try {
    return LoadConfigUnsafe(file);
  } catch (const std::exception& e) {
    ConfigResult result;
    result.config.file = file;
    result.errors.push_back(Diagnostic{Diagnostic::Severity::kError, Location{file.string(), 0, 0},
                                       "",
                                       std::string("internal error reading config: ") + e.what()});
    return result;
  }
}

bool IsLoopbackListen(std::string_view listen) {
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view host = listen.substr(0, colon);
  if (host == "localhost" || host == "[::1]") return true;
  // 127.a.b.c, each part a decimal number 0..255.
  if (host.substr(0, 4) != "127.") return false;
  int parts = 0;
  std::string_view rest = host;
  while (true) {
    const std::size_t dot = rest.find('.');
    const std::string_view part = rest.substr(0, dot);
    if (part.empty() || part.size() > 3 ||
        part.find_first_not_of("0123456789") != std::string_view::npos ||
        std::stoi(std::string(part)) > 255) {
      return false;
    }
    ++parts;
    if (dot == std::string_view::npos) break;
    rest = rest.substr(dot + 1);
  }
  return parts == 4;
}

std::optional<std::chrono::seconds> ParseDuration(std::string_view text) {
  if (text == "0") return std::chrono::seconds(0);
  constexpr std::string_view kUnits = "hms";
  constexpr std::int64_t kFactors[] = {3600, 60, 1};
  constexpr std::int64_t kMaxSeconds = std::int64_t{100} * 365 * 24 * 3600;  // a century
  std::int64_t total = 0;
  std::size_t next_unit = 0;  // units must come in order h, m, s, each at most once
  std::size_t i = 0;
  if (text.empty()) return std::nullopt;
  while (i < text.size()) {
    std::size_t digits_begin = i;
    std::int64_t value = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (i - digits_begin >= 12) return std::nullopt;
      value = value * 10 + (text[i] - '0');
      ++i;
    }
    if (i == digits_begin || i == text.size()) return std::nullopt;
    std::size_t unit = kUnits.find(text[i], next_unit);
    if (unit == std::string_view::npos) return std::nullopt;
    next_unit = unit + 1;
    ++i;
    total += value * kFactors[unit];
    if (total > kMaxSeconds) return std::nullopt;
  }
  return std::chrono::seconds(total);
}

std::string FormatDuration(std::chrono::seconds duration) {
  assert(duration.count() >= 0 && "FormatDuration: a negative duration");
  const std::int64_t total = duration.count();
  if (total <= 0) return "0s";
  std::string out;
  const std::int64_t hours = total / 3600;
  const std::int64_t minutes = total % 3600 / 60;
  const std::int64_t seconds = total % 60;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (minutes > 0) out += std::to_string(minutes) + "m";
  if (seconds > 0) out += std::to_string(seconds) + "s";
  return out;
}

std::optional<std::uintmax_t> ParseSize(std::string_view text) {
  constexpr std::uintmax_t kMaxBytes = std::uintmax_t{1} << 53U;
  std::uintmax_t factor = 1;
  for (auto [suffix, unit] : {std::pair<std::string_view, std::uintmax_t>{"KiB", 1024U},
                              std::pair<std::string_view, std::uintmax_t>{"MiB", 1024U * 1024U}}) {
    if (text.size() > suffix.size() && text.substr(text.size() - suffix.size()) == suffix) {
      factor = unit;
      text.remove_suffix(suffix.size());
      break;
    }
  }
  if (text.empty() || text.size() > 16) return std::nullopt;
  std::uintmax_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uintmax_t>(c - '0');
  }
  if (value == 0 || value > kMaxBytes / factor) return std::nullopt;
  return value * factor;
}

}  // namespace tmaster::manifests
