#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "manifests/types.hpp"

namespace tmaster::manifests {

/// Parsed files kept between loads of the same tree (the daemon re-reads a watched directory on
/// every change): a file whose inode, size, modification and change times are unchanged is not
/// read or parsed again. A file of Workspace documents only keeps what validating it alone gave
/// (its diagnostics and workspaces, which depend on its text alone), not its parsed documents
/// (yaml-cpp trees, several kB each); any other file keeps its documents and is validated again.
/// The checks across documents (references, names and fields used twice) always run again. Not
/// thread-safe: one per source thread.
class ParseCache;
std::shared_ptr<ParseCache> MakeParseCache();

/// What validation needs to know beyond the documents themselves.
struct LoadOptions {
  /// Subdomains no workspace may use (docs/architecture.md#manifests). Empty means the built-in
  /// default list.
  std::vector<std::string> reserved_subdomains;
  /// Cluster names from the operator config; nullopt (offline validation) skips the check.
  std::optional<std::set<std::string>> known_clusters;
  /// Optional; see ParseCache.
  std::shared_ptr<ParseCache> parse_cache;
  /// The source's folder: a product's `spec.migrations` and `spec.stackTemplate` must be
  /// relative and resolve beneath it, also through symbolic links (common/confined.hpp), and
  /// manifests found by walking a directory are read confined to it. Empty: each path given to
  /// LoadPaths is its own root (a directory itself, a file its folder); LoadText's `base_dir`.
  std::filesystem::path root;
};

/// The default reserved subdomains: panel www api admin mail ftp smtp pop imap localhost
/// traefik portainer status.
const std::vector<std::string>& DefaultReservedSubdomains();

/// Reads a file, or every `*.yaml`/`*.yml` under a directory recursively (sorted, so the order
/// is stable), validates each document against the CRD schemas and then across documents.
/// A missing path is one error diagnostic. Never throws.
Fleet LoadPaths(const std::vector<std::filesystem::path>& paths, const LoadOptions& options);

/// Same as LoadPaths for text already in memory (`tenantctl validate -f -`, the API).
/// `file_name` is what diagnostics call it; relative product paths resolve against `base_dir`
/// and stay beneath `options.root` (empty: beneath `base_dir`).
Fleet LoadText(std::string_view text, const std::string& file_name,
               const std::filesystem::path& base_dir, const LoadOptions& options);

}  // namespace tmaster::manifests
