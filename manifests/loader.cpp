#include "manifests/loader.hpp"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "common/confined.hpp"
#include "common/cron.hpp"
#include "common/text.hpp"
#include "manifests/naming.hpp"
#include "manifests/rollout_spec.hpp"
#include "manifests/schema.hpp"
#include "manifests/yaml_support.hpp"

namespace tmaster::manifests {

namespace {

namespace fs = std::filesystem;
using detail::Quote;
using detail::ScalarType;

constexpr std::uintmax_t kMaxFileBytes = 16U * 1024U * 1024U;
constexpr const char* kInvalidManifest = "InvalidManifest";
constexpr const char* kConflict = "Conflict";

// Databases and roles a workspace may never claim: PostgreSQL's own, and the operator's store.
const std::set<std::string>& ReservedDatabases() {
  static const std::set<std::string> names = {"postgres", "template0", "template1",
                                              "tenant_master"};
  return names;
}
const std::set<std::string>& ReservedRoles() {
  static const std::set<std::string> names = {"postgres",     "public",       "none",
                                              "current_user", "session_user", "current_role"};
  return names;
}

// Variables the operator itself sends to a dedicated stack (docs/stacks.md#name-and-env).
bool IsOperatorVariable(const std::string& name) {
  return name.rfind("TM_", 0) == 0 || name.rfind("DB_", 0) == 0 || name == "DATABASE_URL";
}

bool IsEnvName(const std::string& name) {
  if (name.empty()) return false;
  auto head = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!head(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return head(c) || (c >= '0' && c <= '9'); });
}

}  // namespace

// Kept by the parse cache (ParseCache::Result), so not in the anonymous namespace.
namespace loading {

namespace fs = std::filesystem;

/// One parsed document and where it came from.
struct Source {
  std::string file;
  fs::path base_dir;
  fs::path source_root;  ///< absolute, normal: product paths must stay beneath it
  std::size_t file_index = 0;
  YAML::Node root;
  int line_offset = 0;

  [[nodiscard]] Location At(const YAML::Node& node) const {
    return detail::ToLocation(node.Mark(), file, line_offset);
  }
  [[nodiscard]] Location At(const YAML::Mark& mark) const {
    return detail::ToLocation(mark, file, line_offset);
  }
};

struct WorkspaceEntry {
  Workspace workspace;
  Source source;
  Location name_at, product_at, mode_at, subdomain_at, database_at, owner_at, cluster_at;
  bool subdomain_defaulted = false;
  bool database_defaulted = false;
  bool owner_defaulted = false;
  std::vector<Diagnostic> errors;     ///< its own findings: InvalidManifest
  std::vector<Diagnostic> conflicts;  ///< clashes with other workspaces: Conflict
};

}  // namespace loading

namespace {

using loading::Source;
using loading::WorkspaceEntry;


// `map[key]` when map is a mapping holding key; a null node otherwise (validated documents
// never hold explicit nulls, so null means absent).
YAML::Node Child(const YAML::Node& map, const char* key) {
  if (!map.IsDefined() || !map.IsMap()) return YAML::Node();
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
  }
  return YAML::Node();
}

bool Present(const YAML::Node& node) { return node.IsDefined() && !node.IsNull(); }

// An absolute, lexically normal folder without a trailing separator.
fs::path NormalRoot(const fs::path& folder) {
  std::error_code ec;
  fs::path root = fs::absolute(folder.empty() ? fs::path(".") : folder, ec);
  if (ec) root = folder;
  root = root.lexically_normal();
  if (!root.has_filename() && root.has_relative_path()) root = root.parent_path();
  return root;
}

// The key node of `key`, for locating a field by its name rather than its value.
std::optional<YAML::Mark> KeyMark(const YAML::Node& map, const char* key) {
  if (!map.IsDefined() || !map.IsMap()) return std::nullopt;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) return it->first.Mark();
  }
  return std::nullopt;
}

std::string Str(const YAML::Node& map, const char* key, std::string fallback = {}) {
  YAML::Node node = Child(map, key);
  return node.IsScalar() ? node.Scalar() : fallback;
}

int Int(const YAML::Node& map, const char* key, int fallback) {
  YAML::Node node = Child(map, key);
  if (!node.IsScalar()) return fallback;
  std::optional<std::int64_t> value = detail::ParseInteger(node.Scalar());
  // The schema bounds every integer field to int32 (format: int32).
  return value ? static_cast<int>(*value) : fallback;
}

bool Bool(const YAML::Node& map, const char* key, bool fallback) {
  YAML::Node node = Child(map, key);
  return node.IsScalar() ? node.Scalar() == "true" : fallback;
}

std::vector<std::string> StrList(const YAML::Node& map, const char* key) {
  std::vector<std::string> out;
  YAML::Node node = Child(map, key);
  if (!node.IsSequence()) return out;
  for (const YAML::Node& item : node) out.push_back(item.Scalar());
  return out;
}

std::map<std::string, std::string> StrMap(const YAML::Node& map, const char* key) {
  std::map<std::string, std::string> out;
  YAML::Node node = Child(map, key);
  if (!node.IsMap()) return out;
  for (auto it = node.begin(); it != node.end(); ++it) {
    out.emplace(it->first.Scalar(), it->second.Scalar());
  }
  return out;
}

// metadata.name when it is a usable name: a workspace known by such a name is never mistaken
// for an orphan. A name that breaks the naming rules cannot belong to any existing workspace.
std::optional<std::string> ReadableName(const YAML::Node& root) {
  YAML::Node name = Child(Child(root, "metadata"), "name");
  if (!name.IsScalar() || detail::Resolve(name) != ScalarType::kString) return std::nullopt;
  if (!IsDnsLabel(name.Scalar(), kMaxNameLength)) return std::nullopt;
  return name.Scalar();
}

std::string FileLine(const Location& where) {
  return where.file + ":" + std::to_string(where.line);
}

struct ProductEntry {
  Product product;
  Source source;
  Location name_at;
  bool valid = true;
};


// metadata.name (and where it is written) and metadata.labels, read alike for every kind.
template <class Entry, class Object>
void ReadMetadata(const Source& source, const YAML::Node& metadata, Entry& entry, Object& object) {
  object.name = Str(metadata, "name");
  entry.name_at = source.At(Child(metadata, "name"));
  object.labels = StrMap(metadata, "labels");
}

}  // namespace

/// Per file: its identity when it was last read and what that read kept. A file whose results
/// depend on its text alone (it holds no Product document: a product's paths are probed on disk
/// at every load) keeps what adding it produced, the diagnostics it emitted and the workspaces it
/// declared, and an unchanged one is replayed from them without parsing or validating it alone
/// again; any other keeps its parsed documents (yaml-cpp trees, several kB a small file), which
/// are validated again. Checks across documents (references, names and fields used twice) run on
/// every load.
class ParseCache {
 public:
  struct Key {
    ino_t inode = 0;
    off_t size = 0;
    std::int64_t mtime_ns = 0;
    std::int64_t ctime_ns = 0;
    bool operator==(const Key&) const = default;
  };
  struct Result {
    std::vector<Diagnostic> diagnostics;  ///< in the order they were emitted
    /// The workspaces, without their YAML tree; `paths`: their source's folders were set (the
    /// load's base_dir and root, kept once in Entry, not in each).
    std::vector<std::pair<WorkspaceEntry, bool>> workspaces;
  };
  struct Entry {
    Key key;
    detail::ParsedText parsed;  ///< when `result` is not set
    std::optional<Result> result;
    /// What `result` was made under: it is replayed only under the same.
    std::string base_dir, root;
    std::vector<std::string> reserved_subdomains;
  };
  std::map<std::string, Entry> files;
};

std::shared_ptr<ParseCache> MakeParseCache() { return std::make_shared<ParseCache>(); }

namespace {

class Loader {
 public:
  explicit Loader(const LoadOptions& options) : options_(options) {}

  void AddPath(const fs::path& path) {
    std::error_code ec;
    fs::file_status status = fs::status(path, ec);
    if (ec || !fs::exists(status)) {
      FileError(path.string(), "no such file or directory");
      return;
    }
    const bool directory = fs::is_directory(status);
    root_ = NormalRoot(!options_.root.empty() ? options_.root
                       : directory            ? path
                                              : path.parent_path());
    if (!directory) {
      AddFile(path, /*walked=*/false);
      return;
    }
    std::vector<fs::path> files;
    CollectManifests(path, files);
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) AddFile(file, /*walked=*/true);
  }

  void AddText(std::string_view text, const std::string& file, const fs::path& base_dir) {
    root_ = NormalRoot(options_.root.empty() ? base_dir : options_.root);
    AddParsed(detail::ParseDocuments(text, file), file, base_dir);
  }

  void AddParsed(detail::ParsedText parsed, const std::string& file, const fs::path& base_dir) {
    const std::size_t file_index = next_file_index_++;
    // Documents and broken documents, in file order, so `rejected` keeps the order of the file.
    std::size_t next_error = 0;
    for (detail::Document& document : parsed.documents) {
      while (next_error < parsed.errors.size() &&
             parsed.errors[next_error].where.line <= document.line_offset) {
        AddBroken(file_index, std::move(parsed.errors[next_error]), parsed.salvaged[next_error]);
        ++next_error;
      }
      AddDocument(
          Source{file, base_dir, root_, file_index, document.root, document.line_offset});
    }
    for (; next_error < parsed.errors.size(); ++next_error) {
      AddBroken(file_index, std::move(parsed.errors[next_error]), parsed.salvaged[next_error]);
    }
  }

  // A document that does not parse: an error, and, when a line scan finds it is a Workspace with a
  // usable name, a rejected workspace, so its last good spec is kept
  // (docs/architecture.md#manifests).
  void AddBroken(std::size_t file_index, Diagnostic error,
                 const detail::ParsedText::Salvage& salvage) {
    Emit(file_index, error);
    if (salvage.kind != "Workspace" || !IsDnsLabel(salvage.name, kMaxNameLength)) return;
    WorkspaceEntry entry;
    entry.source.file = error.where.file;
    entry.source.file_index = file_index;
    entry.workspace.name = salvage.name;
    entry.workspace.where = Location{error.where.file, salvage.kind_line, 1};
    entry.name_at = entry.workspace.where;
    entry.errors.push_back(std::move(error));
    workspaces_.push_back(std::move(entry));
  }

  void InternalError(const std::string& what) {
    Emit(next_file_index_++, Diagnostic{Diagnostic::Severity::kError, Location{}, "",
                                        "internal error while loading manifests: " + what});
  }

  Fleet Finish() {
    CheckProducts();
    for (WorkspaceEntry& entry : workspaces_) {
      if (entry.errors.empty()) ResolveReferences(entry);
    }
    CheckUniqueNames();
    CheckUniqueField(&WorkspaceEntry::subdomain_at, "spec.subdomain", "subdomain",
                     [](const Workspace& w) { return w.subdomain; });
    CheckUniqueField(&WorkspaceEntry::database_at, "spec.database.name", "database",
                     [](const Workspace& w) { return w.database.name; });
    CheckUniqueField(&WorkspaceEntry::owner_at, "spec.database.owner", "owner role",
                     [](const Workspace& w) { return w.database.owner; });
    return Build();
  }

 private:
  // --- input ---------------------------------------------------------------------------------

  void CollectManifests(const fs::path& root, std::vector<fs::path>& out) {
    std::error_code ec;
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
    if (ec) {
      FileError(root.string(), "cannot read directory: " + ec.message());
      return;
    }
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) {
        FileError(root.string(), "cannot read directory: " + ec.message());
        return;
      }
      const fs::path& path = it->path();
      const std::string name = path.filename().string();
      // Hidden entries (.git, editors' swap files, Kubernetes' ..data links) are not manifests.
      if (!name.empty() && name.front() == '.') {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      const std::string extension = path.extension().string();
      if (extension != ".yaml" && extension != ".yml") continue;
      if (it->is_regular_file(ec)) out.push_back(path);
    }
  }

  // `walked`: found by walking a source's folder, so read confined to it (a symbolic link named
  // x.yaml pointing out of the folder is refused, never parsed: its errors would echo it).
  void AddFile(const fs::path& path, bool walked) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(path, ec);
    if (!ec && !seen_files_.insert(canonical).second) return;  // named twice
    const std::string file = path.string();
    fs::path base_dir = path.parent_path();
    if (base_dir.empty()) base_dir = ".";
    std::optional<ParseCache::Key> key;
    if (options_.parse_cache != nullptr) {
      key = CacheKey(path);
      auto cached = options_.parse_cache->files.find(file);
      if (key && cached != options_.parse_cache->files.end() && cached->second.key == *key) {
        const ParseCache::Entry& entry = cached->second;
        if (!entry.result) {
          AddParsed(detail::ParsedText(entry.parsed), file, base_dir);
          return;
        }
        if (SameContext(entry, base_dir)) {
          Replay(*entry.result, base_dir);
          return;
        }
        // Made under another folder or options: read and validated again below.
      }
    }
    std::optional<std::string> text = walked ? ReadConfined(path) : ReadPlain(path);
    if (!text) return;
    if (options_.parse_cache == nullptr || !key) {
      AddParsed(detail::ParseDocuments(*text, file), file, base_dir);
      return;
    }
    ParseCache::Entry& entry = options_.parse_cache->files[file];
    entry.key = *key;
    entry.parsed = detail::ParseDocuments(*text, file);
    entry.result.reset();
    const std::size_t diagnostics_before = diagnostics_.size();
    const std::size_t workspaces_before = workspaces_.size();
    const std::size_t products_before = products_.size();
    AddParsed(detail::ParsedText(entry.parsed), file, base_dir);
    if (!HoldsProduct(entry.parsed)) {
      ParseCache::Result result;
      for (std::size_t i = diagnostics_before; i < diagnostics_.size(); ++i) {
        result.diagnostics.push_back(diagnostics_[i].second);
      }
      for (std::size_t i = workspaces_before; i < workspaces_.size(); ++i) {
        WorkspaceEntry kept = workspaces_[i];
        const bool paths = !kept.source.base_dir.empty();
        kept.source.base_dir = fs::path();  // not clear(): it keeps the components' buffer
        kept.source.source_root = fs::path();
        result.workspaces.emplace_back(std::move(kept), paths);
      }
      if (products_.size() == products_before) {
        entry.result = std::move(result);
        entry.parsed = detail::ParsedText();
        entry.base_dir = base_dir.native();
        entry.root = root_.native();
        entry.reserved_subdomains = options_.reserved_subdomains;
      }
    }
  }

  // A document of the file names kind Product (even an invalid one): its results may depend on
  // more than the file (ResolvePath probes the disk), so the file is validated at every load.
  static bool HoldsProduct(const detail::ParsedText& parsed) {
    for (const detail::Document& document : parsed.documents) {
      if (!document.root.IsMap()) continue;
      const YAML::Node kind = Child(document.root, "kind");
      if (!kind.IsDefined() || !kind.IsScalar() || kind.Scalar() != "Workspace") return true;
    }
    return false;
  }

  bool SameContext(const ParseCache::Entry& entry, const fs::path& base_dir) const {
    return entry.base_dir == base_dir.native() && entry.root == root_.native() &&
           entry.reserved_subdomains == options_.reserved_subdomains;
  }

  // What adding a cached file produced, as AddParsed produced it (under a file index of its own).
  void Replay(const ParseCache::Result& result, const fs::path& base_dir) {
    const std::size_t file_index = next_file_index_++;
    for (const Diagnostic& diagnostic : result.diagnostics) Emit(file_index, diagnostic);
    for (const auto& [cached, paths] : result.workspaces) {
      WorkspaceEntry entry = cached;
      entry.source.file_index = file_index;
      if (paths) {
        entry.source.base_dir = base_dir;
        entry.source.source_root = root_;
      }
      workspaces_.push_back(std::move(entry));
    }
  }

  // A file named on the command line or in the config: the operator chose it.
  std::optional<std::string> ReadPlain(const fs::path& path) {
    const std::string file = path.string();
    std::error_code ec;
    std::uintmax_t size = fs::file_size(path, ec);
    if (ec) {
      FileError(file, "cannot read file: " + ec.message());
      return std::nullopt;
    }
    if (size > kMaxFileBytes) {
      FileError(file, "file is larger than 16 MiB");
      return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) {
      FileError(file, "cannot read file");
      return std::nullopt;
    }
    return std::move(text).str();
  }

  // A file found beneath root_: read beneath it only.
  std::optional<std::string> ReadConfined(const fs::path& path) {
    const std::string file = path.string();
    const std::optional<fs::path> relative = confined::Beneath(root_, path);
    if (!relative) {
      FileError(file, "cannot read file: it is outside the source folder " + root_.string());
      return std::nullopt;
    }
    Outcome<std::string> text = confined::ReadFile(root_, *relative, kMaxFileBytes);
    if (text) return std::move(text).value();
    const Failure& failure = text.failure();
    if (failure.reason == confined::kTooLarge) {
      FileError(file, "file is larger than 16 MiB");
    } else if (failure.reason == confined::kEscapes) {
      FileError(file, "cannot read file: it leads out of the source folder " + root_.string() +
                          " through a symbolic link (not followed)");
    } else {
      FileError(file, "cannot read file: " + failure.message);
    }
    return std::nullopt;
  }

  /// The file's identity for the parse cache, from one stat(2); nullopt when it cannot be had.
  static std::optional<ParseCache::Key> CacheKey(const fs::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return ParseCache::Key{st.st_ino, st.st_size,
                           std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec,
                           std::int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec};
  }

  void FileError(const std::string& file, std::string message) {
    Emit(next_file_index_++,
         Diagnostic{Diagnostic::Severity::kError, Location{file, 0, 0}, "", std::move(message)});
  }

  void Emit(std::size_t file_index, Diagnostic diagnostic) {
    diagnostics_.emplace_back(file_index, std::move(diagnostic));
  }

  Diagnostic Error(const Location& where, std::string field, std::string message) {
    return Diagnostic{Diagnostic::Severity::kError, where, std::move(field), std::move(message)};
  }

  // --- one document --------------------------------------------------------------------------

  void AddDocument(const Source& source) {
    const YAML::Node& root = source.root;
    // Not a mapping, or no apiVersion and kind: a compose template or other YAML kept beside
    // the manifests (docs/architecture.md#manifests).
    if (!root.IsMap()) return;
    const YAML::Node api = Child(root, "apiVersion");
    const YAML::Node kind = Child(root, "kind");
    const bool has_api = KeyMark(root, "apiVersion").has_value();
    const bool has_kind = KeyMark(root, "kind").has_value();
    if (!has_api && !has_kind) return;

    const Location doc_at = source.At(KeyMark(root, "kind").value_or(root.Mark()));
    const std::string kind_text =
        kind.IsScalar() && detail::Resolve(kind) == ScalarType::kString ? kind.Scalar() : "";
    std::vector<Diagnostic> header;
    if (!has_api) {
      header.push_back(Error(source.At(root.Mark()), "apiVersion", "required field is missing"));
    } else if (!api.IsScalar() || detail::Resolve(api) != ScalarType::kString) {
      header.push_back(Error(source.At(api.IsNull() ? *KeyMark(root, "apiVersion") : api.Mark()),
                             "apiVersion", "must be string, got " + detail::Describe(api)));
    } else {
      const std::string& api_text = api.Scalar();
      if (api_text.substr(0, api_text.find('/')) != kGroup) {
        Emit(source.file_index, Diagnostic{Diagnostic::Severity::kNotice, source.At(api), "",
                                           "skipped: apiVersion " + Quote(api_text) + " is not a " +
                                               kGroup + " resource"});
        return;
      }
      if (api_text != kApiVersion) {
        header.push_back(Error(source.At(api), "apiVersion",
                               "unsupported apiVersion " + Quote(api_text) +
                                   " (this operator reads " + kApiVersion + ")"));
      }
    }
    if (header.empty() && !has_kind) {
      header.push_back(Error(source.At(root.Mark()), "kind", "required field is missing"));
    } else if (header.empty() && kind_text != "Workspace" && kind_text != "Product") {
      header.push_back(Error(
          source.At(kind.IsNull() ? *KeyMark(root, "kind") : kind.Mark()), "kind",
          "unknown kind " + (kind.IsScalar() ? Quote(kind.Scalar()) : detail::Describe(kind)) +
              " (" + kApiVersion + " has Workspace and Product)"));
    }

    if (kind_text == "Workspace") {
      std::vector<Diagnostic> errors =
          header.empty() ? WorkspaceSchema().Validate(root, source.file, source.line_offset)
                         : header;
      AddWorkspace(source, doc_at, std::move(errors));
      return;
    }
    if (kind_text == "Product") {
      std::vector<Diagnostic> errors =
          header.empty() ? ProductSchema().Validate(root, source.file, source.line_offset) : header;
      AddProduct(source, doc_at, std::move(errors));
      return;
    }
    for (Diagnostic& error : header) Emit(source.file_index, std::move(error));
  }

  // --- products ------------------------------------------------------------------------------

  void AddProduct(const Source& source, const Location& doc_at, std::vector<Diagnostic> errors) {
    const YAML::Node& root = source.root;
    ProductEntry entry{Product{}, source, doc_at, errors.empty()};
    entry.product.where = doc_at;
    for (Diagnostic& error : errors) Emit(source.file_index, std::move(error));
    std::optional<std::string> name = ReadableName(root);
    if (!entry.valid) {
      // Remembered by name so its workspaces hear "invalid", not "not found".
      if (name) {
        entry.product.name = *name;
        entry.name_at = source.At(Child(Child(root, "metadata"), "name"));
        entry.source.root.reset();  // see AddWorkspace
        products_.push_back(std::move(entry));
      }
      return;
    }
    const YAML::Node metadata = Child(root, "metadata");
    const YAML::Node spec = Child(root, "spec");
    Product& product = entry.product;
    ReadMetadata(source, metadata, entry, product);
    product.display_name = Str(spec, "displayName");
    product.image = Str(spec, "image");
    product.default_version = Str(spec, "defaultVersion");
    product.port = Int(spec, "port", product.port);
    product.extensions = StrList(spec, "extensions");
    if (Present(Child(spec, "modes"))) {
      product.modes.clear();
      for (const std::string& mode : StrList(spec, "modes")) {
        product.modes.push_back(mode == "dedicated" ? Mode::kDedicated : Mode::kShared);
      }
    }
    product.root = source.source_root;
    product.stack_template =
        ResolvePath(source, spec, "stackTemplate", "spec.", /*directory=*/false, entry.valid);
    product.migrations =
        ResolvePath(source, spec, "migrations", "spec.", /*directory=*/true, entry.valid);
    product.ignore_missing_migrations = Bool(spec, "ignoreMissingMigrations", false);
    const bool dedicated = std::find(product.modes.begin(), product.modes.end(),
                                     Mode::kDedicated) != product.modes.end();
    if (dedicated && !Present(Child(spec, "stackTemplate"))) {
      Emit(source.file_index,
           Error(source.At(spec), "spec.stackTemplate",
                 "required when the product offers the dedicated mode (spec.modes)"));
      entry.valid = false;
    }
    ReadSharedRuntime(source, spec, product, entry.valid);
    ReadRollout(source, spec, product, entry.valid);
    entry.source.root.reset();  // see AddWorkspace
    products_.push_back(std::move(entry));
  }

  // `spec.rollout` (manifests/rollout_spec.hpp); its healthCheck needs the dedicated mode (the
  // CRD's third x-kubernetes-validations rule).
  void ReadRollout(const Source& source, const YAML::Node& spec, Product& product, bool& valid) {
    const YAML::Node rollout = Child(spec, "rollout");
    if (!Present(rollout)) return;
    const bool dedicated = std::find(product.modes.begin(), product.modes.end(),
                                     Mode::kDedicated) != product.modes.end();
    std::vector<Diagnostic> errors;
    product.rollout =
        detail::ReadRolloutSpec(rollout, dedicated, source.file, source.line_offset, errors);
    if (!errors.empty()) valid = false;
    for (Diagnostic& error : errors) Emit(source.file_index, std::move(error));
  }

  // `spec.sharedRuntime`: its template is confined like spec.stackTemplate, and only a product
  // that offers the shared mode may declare it (the CRD's second x-kubernetes-validations rule).
  void ReadSharedRuntime(const Source& source, const YAML::Node& spec, Product& product,
                         bool& valid) {
    const YAML::Node runtime = Child(spec, "sharedRuntime");
    if (!Present(runtime)) return;
    const bool shared = std::find(product.modes.begin(), product.modes.end(), Mode::kShared) !=
                        product.modes.end();
    if (!shared) {
      Emit(source.file_index,
           Error(source.At(*KeyMark(spec, "sharedRuntime")), "spec.sharedRuntime",
                 "only allowed when the product offers the shared mode (spec.modes has no "
                 "shared)"));
      valid = false;
    }
    SharedRuntimeSpec out;
    out.stack_template = ResolvePath(source, runtime, "stackTemplate", "spec.sharedRuntime.",
                                     /*directory=*/false, valid);
    out.endpoint = Int(runtime, "endpoint", out.endpoint);
    product.shared_runtime = std::move(out);
  }

  // A product path: relative, resolved against the manifest's folder, beneath the source's
  // folder lexically and through symbolic links (checked confined, never following one out),
  // and checked to exist.
  // `parent` is the field path of `map` with its trailing dot (`spec.`).
  fs::path ResolvePath(const Source& source, const YAML::Node& map, const char* key,
                       const char* parent, bool directory, bool& valid) {
    const YAML::Node node = Child(map, key);
    if (!Present(node)) return {};
    const std::string field = std::string(parent) + key;
    const std::string rule =
        "path must be relative and stay inside the source folder " + source.source_root.string();
    fs::path path(node.Scalar());
    std::string problem;
    std::optional<fs::path> relative;
    if (!path.is_relative()) {
      problem = rule + "; " + Quote(node.Scalar()) + " is absolute";
    } else {
      std::error_code ec;
      path = fs::absolute(source.base_dir / path, ec).lexically_normal();
      relative = confined::Beneath(source.source_root, path);
      if (!relative) problem = rule + "; " + Quote(node.Scalar()) + " leads out of it";
    }
    if (relative) {
      Outcome<confined::Type> type = confined::Probe(source.source_root, *relative);
      const char* what = directory ? "directory" : "file";
      if (!type && type.failure().reason == confined::kEscapes) {
        problem = rule + "; " + Quote(node.Scalar()) +
                  " leads out of it through a symbolic link (not followed)";
      } else if (!type && type.failure().reason == confined::kNotFound) {
        problem = std::string(what) + " not found: " + path.string();
      } else if (!type) {
        problem = std::string("cannot open ") + what + " " + path.string() + ": " +
                  type.failure().message;
      } else if (directory && *type != confined::Type::kDirectory) {
        problem = "not a directory: " + path.string();
      } else if (!directory && *type != confined::Type::kFile) {
        problem = "not a regular file: " + path.string();
      }
    }
    if (!problem.empty()) {
      Emit(source.file_index, Error(source.At(node), field, problem));
      valid = false;
    }
    return path;
  }

  void CheckProducts() {
    std::map<std::string, std::vector<ProductEntry*>> by_name;
    for (ProductEntry& entry : products_) by_name[entry.product.name].push_back(&entry);
    for (auto& [name, entries] : by_name) {
      if (entries.size() < 2) continue;
      for (ProductEntry* entry : entries) {
        const ProductEntry* other = entries.front() == entry ? entries[1] : entries.front();
        Emit(entry->source.file_index,
             Error(entry->name_at, "metadata.name",
                   "Product " + Quote(name) + " is also defined at " + FileLine(other->name_at)));
        entry->valid = false;
      }
    }
  }

  const ProductEntry* FindProduct(const std::string& name) const {
    for (const ProductEntry& entry : products_) {
      if (entry.product.name == name) return &entry;
    }
    return nullptr;
  }

  // --- workspaces ----------------------------------------------------------------------------

  void AddWorkspace(const Source& source, const Location& doc_at, std::vector<Diagnostic> errors) {
    const YAML::Node& root = source.root;
    WorkspaceEntry entry;
    entry.source = source;
    entry.workspace.where = doc_at;
    std::optional<std::string> name = ReadableName(root);
    if (!errors.empty()) {
      for (const Diagnostic& error : errors) Emit(source.file_index, error);
      if (!name) return;
      entry.workspace.name = *name;
      entry.name_at = source.At(Child(Child(root, "metadata"), "name"));
      entry.errors = std::move(errors);
      entry.source.root.reset();
      workspaces_.push_back(std::move(entry));
      return;
    }
    Convert(entry);
    CheckOwnRules(entry);
    // Nothing after the document reads its tree (the checks across documents read the entry):
    // let go of it (a rebind; operator= would assign into it), so a load holds the trees of the
    // file being added only, not of every file until it finishes.
    entry.source.root.reset();
    workspaces_.push_back(std::move(entry));
  }

  // Reads a document the schema accepted, applying the defaults (README.md#manifest-reference).
  static void Convert(WorkspaceEntry& entry) {
    const Source& source = entry.source;
    const YAML::Node metadata = Child(source.root, "metadata");
    const YAML::Node spec = Child(source.root, "spec");
    const YAML::Node database = Child(spec, "database");
    const YAML::Node dedicated = Child(spec, "dedicated");
    const YAML::Node backup = Child(spec, "backup");
    Workspace& w = entry.workspace;

    ReadMetadata(source, metadata, entry, w);
    w.product = Str(spec, "product");
    entry.product_at = source.At(Child(spec, "product"));
    w.mode = Str(spec, "mode") == "dedicated" ? Mode::kDedicated : Mode::kShared;
    entry.mode_at = source.At(Child(spec, "mode"));
    w.suspend = Bool(spec, "suspend", false);

    auto field_at = [&](const YAML::Node& map, const char* key, bool& defaulted) {
      YAML::Node node = Child(map, key);
      defaulted = !Present(node);
      return defaulted ? entry.name_at : source.At(node);
    };
    w.subdomain = Str(spec, "subdomain", w.name);
    entry.subdomain_at = field_at(spec, "subdomain", entry.subdomain_defaulted);

    DatabaseSpec& db = w.database;
    db.cluster = Str(database, "cluster", "");
    entry.cluster_at = field_at(database, "cluster", db.cluster_placed);
    db.cluster_selector = StrMap(Child(database, "placement"), "clusterSelector");
    db.name = Str(database, "name", DefaultDatabaseName(w.name));
    entry.database_at = field_at(database, "name", entry.database_defaulted);
    db.owner = Str(database, "owner", DefaultOwnerRole(w.name));
    entry.owner_at = field_at(database, "owner", entry.owner_defaulted);
    db.connection_limit = Int(database, "connectionLimit", db.connection_limit);
    db.extensions = StrList(database, "extensions");
    db.reclaim_policy = Str(database, "reclaimPolicy") == "Delete" ? ReclaimPolicy::kDelete
                                                                   : ReclaimPolicy::kRetain;
    db.password_rotation = Int(database, "passwordRotation", db.password_rotation);
    db.adopt = Bool(database, "adopt", db.adopt);

    if (Present(dedicated)) {
      DedicatedSpec d;
      d.endpoint = Int(dedicated, "endpoint", d.endpoint);
      d.endpoint_placed = !Present(Child(dedicated, "endpoint"));
      d.endpoint_selector = StrMap(Child(dedicated, "placement"), "endpointSelector");
      d.version = Str(dedicated, "version");
      d.env = StrMap(dedicated, "env");
      w.dedicated = std::move(d);
    }
    w.backup.schedule = Str(backup, "schedule");
    w.backup.keep = Int(backup, "keep", w.backup.keep);
  }

  void Fail(WorkspaceEntry& entry, const Location& where, std::string field, std::string message) {
    Diagnostic error = Error(where, std::move(field), std::move(message));
    Emit(entry.source.file_index, error);
    entry.errors.push_back(std::move(error));
  }

  // A placement selector's keys and values are label keys and values.
  void CheckSelector(WorkspaceEntry& entry, const YAML::Node& selector, const std::string& path) {
    for (auto it = selector.begin(); selector.IsMap() && it != selector.end(); ++it) {
      if (!it->first.IsScalar() || !it->second.IsScalar()) continue;
      const std::string field = path + "[" + detail::PathKey(it->first.Scalar()) + "]";
      if (std::optional<std::string> error = LabelKeyError(it->first.Scalar())) {
        Fail(entry, entry.source.At(it->first), field,
             "invalid label key " + Quote(it->first.Scalar()) + ": " + *error);
      }
      if (std::optional<std::string> error = LabelValueError(it->second.Scalar())) {
        Fail(entry, entry.source.At(it->second), field,
             "invalid label value " + Quote(it->second.Scalar()) + ": " + *error);
      }
    }
  }

  // Rules a structural schema cannot express, on one workspace alone.
  void CheckOwnRules(WorkspaceEntry& entry) {
    const Source& source = entry.source;
    const YAML::Node spec = Child(source.root, "spec");
    const Workspace& w = entry.workspace;

    if (w.mode == Mode::kDedicated && !w.dedicated) {
      Fail(entry, entry.mode_at, "spec.dedicated", "required when spec.mode is dedicated");
    }
    if (w.mode == Mode::kShared && w.dedicated) {
      Fail(entry, source.At(*KeyMark(spec, "dedicated")), "spec.dedicated",
           "only allowed when spec.mode is dedicated (spec.mode is shared)");
    }
    // spec.database.placement chooses among clusters; a named cluster is not chosen.
    const YAML::Node placement = Child(Child(spec, "database"), "placement");
    if (Present(placement) && !w.database.cluster_placed) {
      Fail(entry, source.At(*KeyMark(Child(spec, "database"), "placement")),
           "spec.database.placement",
           "only for a workspace without spec.database.cluster (it names cluster " +
               Quote(w.database.cluster) + ")");
    }
    CheckSelector(entry, Child(placement, "clusterSelector"),
                  "spec.database.placement.clusterSelector");
    // spec.dedicated.placement likewise chooses among endpoints.
    const YAML::Node stack_placement = Child(Child(spec, "dedicated"), "placement");
    if (w.dedicated && Present(stack_placement) && !w.dedicated->endpoint_placed) {
      Fail(entry, source.At(*KeyMark(Child(spec, "dedicated"), "placement")),
           "spec.dedicated.placement",
           "only for a workspace without spec.dedicated.endpoint (it names endpoint " +
               std::to_string(w.dedicated->endpoint) + ")");
    }
    CheckSelector(entry, Child(stack_placement, "endpointSelector"),
                  "spec.dedicated.placement.endpointSelector");
    if (w.dedicated) {
      const YAML::Node env = Child(Child(spec, "dedicated"), "env");
      for (auto it = env.begin(); env.IsMap() && it != env.end(); ++it) {
        const std::string key = it->first.Scalar();
        const std::string field = "spec.dedicated.env[" + key + "]";
        if (!IsEnvName(key)) {
          Fail(entry, source.At(it->first), "spec.dedicated.env",
               "variable name " + Quote(key) + " must match ^[A-Za-z_][A-Za-z0-9_]*$");
        } else if (IsOperatorVariable(key)) {
          Fail(entry, source.At(it->first), field,
               "is set by the operator (TM_*, DB_* and DATABASE_URL cannot be overridden)");
        }
      }
    }

    // The CRD's pattern only shapes the text; the parser knows each field's range and refuses a
    // schedule that never fires (0 0 31 2 *), which would otherwise take no backup, silently.
    if (!w.backup.schedule.empty()) {
      Outcome<CronSchedule> schedule = CronSchedule::Parse(w.backup.schedule);
      if (!schedule) {
        Fail(entry, source.At(Child(Child(spec, "backup"), "schedule")), "spec.backup.schedule",
             schedule.failure().message);
      }
    }

    const std::vector<std::string>& reserved = options_.reserved_subdomains.empty()
                                                   ? DefaultReservedSubdomains()
                                                   : options_.reserved_subdomains;
    if (std::find(reserved.begin(), reserved.end(), w.subdomain) != reserved.end()) {
      Fail(entry, entry.subdomain_at, "spec.subdomain",
           "subdomain " + Quote(w.subdomain) + " is reserved" +
               (entry.subdomain_defaulted ? " (defaulted from metadata.name; set spec.subdomain)"
                                          : ""));
    }
    if (ReservedDatabases().count(w.database.name) != 0) {
      Fail(entry, entry.database_at, "spec.database.name",
           "database " + Quote(w.database.name) + " is reserved" +
               (entry.database_defaulted ? " (defaulted from metadata.name; set spec.database.name)"
                                         : ""));
    }
    if (ReservedRoles().count(w.database.owner) != 0 || w.database.owner.rfind("pg_", 0) == 0) {
      Fail(entry, entry.owner_at, "spec.database.owner",
           "role " + Quote(w.database.owner) + " is reserved" +
               (entry.owner_defaulted ? " (defaulted from metadata.name; set spec.database.owner)"
                                      : ""));
    }
  }

  // Rules that need the other documents: the product and the operator config's clusters.
  void ResolveReferences(WorkspaceEntry& entry) {
    Workspace& w = entry.workspace;
    const ProductEntry* product = FindProduct(w.product);
    if (product == nullptr) {
      Fail(entry, entry.product_at, "spec.product", "Product " + Quote(w.product) + " not found");
    } else if (!product->valid) {
      Fail(entry, entry.product_at, "spec.product",
           "Product " + Quote(w.product) + " is invalid (see the errors of its manifest at " +
               FileLine(product->name_at) + ")");
    } else {
      const std::vector<Mode>& modes = product->product.modes;
      if (std::find(modes.begin(), modes.end(), w.mode) == modes.end()) {
        std::vector<std::string> names;
        for (Mode mode : modes) names.emplace_back(ToString(mode));
        Fail(entry, entry.mode_at, "spec.mode",
             "Product " + Quote(w.product) + " does not offer the " + ToString(w.mode) +
                 " mode (its modes: " + Join(names) + ")");
      }
      if (w.dedicated && w.dedicated->version.empty()) {
        w.dedicated->version = product->product.default_version;
        w.dedicated->version_defaulted = true;
      }
    }
    if (!w.database.cluster_placed && options_.known_clusters &&
        options_.known_clusters->count(w.database.cluster) == 0) {
      std::vector<std::string> known(options_.known_clusters->begin(),
                                     options_.known_clusters->end());
      Fail(entry, entry.cluster_at, "spec.database.cluster",
           "unknown cluster " + Quote(w.database.cluster) + " (the operator config defines: " +
               (known.empty() ? std::string("none") : Join(known)) + ")");
    }
  }

  void Clash(WorkspaceEntry& entry, const Location& where, const std::string& field,
             std::string message) {
    Diagnostic error = Error(where, field, std::move(message));
    Emit(entry.source.file_index, error);
    entry.conflicts.push_back(std::move(error));
  }

  // Two documents of one name: both stall, neither is reconciled (docs/architecture.md#manifests).
  // Invalid documents count too: their name is still claimed.
  void CheckUniqueNames() {
    std::map<std::string, std::vector<WorkspaceEntry*>> by_name;
    for (WorkspaceEntry& entry : workspaces_) by_name[entry.workspace.name].push_back(&entry);
    for (auto& [name, entries] : by_name) {
      if (entries.size() < 2) continue;
      for (WorkspaceEntry* entry : entries) {
        const WorkspaceEntry* other = entries.front() == entry ? entries[1] : entries.front();
        Clash(*entry, entry->name_at, "metadata.name",
              "Workspace " + Quote(name) + " is also defined at " + FileLine(other->name_at));
      }
    }
  }

  template <class Get>
  void CheckUniqueField(Location WorkspaceEntry::*at, const char* field, const char* what,
                        Get get) {
    std::map<std::string, std::vector<WorkspaceEntry*>> by_value;
    for (WorkspaceEntry& entry : workspaces_) {
      if (entry.errors.empty()) by_value[get(entry.workspace)].push_back(&entry);
    }
    for (auto& [value, entries] : by_value) {
      if (entries.size() < 2) continue;
      for (WorkspaceEntry* entry : entries) {
        const WorkspaceEntry* other = entries.front() == entry ? entries[1] : entries.front();
        Clash(*entry, entry->*at, field,
              std::string(what) + " " + Quote(value) + " is also used by Workspace " +
                  Quote(other->workspace.name) + " at " + FileLine(other->*at));
      }
    }
  }

  // --- result --------------------------------------------------------------------------------

  Fleet Build() {
    Fleet fleet;
    for (ProductEntry& entry : products_) {
      if (entry.valid) fleet.products.push_back(std::move(entry.product));
    }
    for (WorkspaceEntry& entry : workspaces_) {
      Workspace& w = entry.workspace;
      if (!entry.errors.empty()) {
        fleet.rejected.push_back(
            RejectedWorkspace{w.name, w.where, kInvalidManifest, entry.errors.front().Format()});
      } else if (!entry.conflicts.empty()) {
        fleet.rejected.push_back(
            RejectedWorkspace{w.name, w.where, kConflict, entry.conflicts.front().Format()});
      } else {
        fleet.workspaces.push_back(std::move(w));
      }
    }
    std::stable_sort(diagnostics_.begin(), diagnostics_.end(), [](const auto& a, const auto& b) {
      if (a.first != b.first) return a.first < b.first;
      if (a.second.where.line != b.second.where.line)
        return a.second.where.line < b.second.where.line;
      return a.second.where.column < b.second.where.column;
    });
    for (auto& [index, diagnostic] : diagnostics_)
      fleet.diagnostics.push_back(std::move(diagnostic));
    return fleet;
  }

  const LoadOptions& options_;
  fs::path root_;  ///< of the path being added (NormalRoot)
  std::size_t next_file_index_ = 0;
  std::set<fs::path> seen_files_;
  std::vector<std::pair<std::size_t, Diagnostic>> diagnostics_;
  std::vector<ProductEntry> products_;
  std::vector<WorkspaceEntry> workspaces_;
};

}  // namespace

const std::vector<std::string>& DefaultReservedSubdomains() {
  static const std::vector<std::string> names = {
      "panel", "www",  "api",       "admin",   "mail",      "ftp",   "smtp",
      "pop",   "imap", "localhost", "traefik", "portainer", "status"};
  return names;
}

Fleet LoadPaths(const std::vector<std::filesystem::path>& paths, const LoadOptions& options) {
  Loader loader(options);
  try {
    for (const std::filesystem::path& path : paths) loader.AddPath(path);
    return loader.Finish();
  } catch (const std::exception& e) {
    Loader failed(options);
    failed.InternalError(e.what());
    return failed.Finish();
  }
}

Fleet LoadText(std::string_view text, const std::string& file_name,
               const std::filesystem::path& base_dir, const LoadOptions& options) {
  Loader loader(options);
  try {
    loader.AddText(text, file_name, base_dir);
    return loader.Finish();
  } catch (const std::exception& e) {
    Loader failed(options);
    failed.InternalError(e.what());
    return failed.Finish();
  }
}

}  // namespace tmaster::manifests
