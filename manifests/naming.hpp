#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace tmaster::manifests {

/// Longest workspace or product name: `tenant_` + 40 stays within PostgreSQL's 63-byte
/// identifiers and `tm-` + 40 within Docker's stack names.
inline constexpr std::size_t kMaxNameLength = 40;

/// `tenant_<workspace with '-' replaced by '_'>`: the database a workspace gets by default.
std::string DefaultDatabaseName(std::string_view workspace);

/// `user_<workspace with '-' replaced by '_'>`: the owner role a workspace gets by default.
std::string DefaultOwnerRole(std::string_view workspace);

/// True for an RFC 1123 DNS label of 1..max_length characters: lower-case letters, digits and
/// '-', starting and ending with a letter or digit.
bool IsDnsLabel(std::string_view text, std::size_t max_length = 63);

/// Why `key` is not a valid Kubernetes label or annotation key (`[prefix/]name`: the prefix a
/// DNS subdomain of at most 253 characters, the name 1-63 characters of [A-Za-z0-9-_.]
/// starting and ending alphanumeric); nullopt when it is valid.
std::optional<std::string> LabelKeyError(std::string_view key);

/// Why `value` is not a valid Kubernetes label value (empty, or at most 63 characters of
/// [A-Za-z0-9-_.] starting and ending alphanumeric); nullopt when it is valid.
std::optional<std::string> LabelValueError(std::string_view value);

}  // namespace tmaster::manifests
