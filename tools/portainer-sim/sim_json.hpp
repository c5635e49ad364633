#pragma once

// Go-compatible JSON for the simulator: Portainer decodes requests with encoding/json semantics
// (case-insensitive keys, unknown keys ignored, first value only) and encodes responses compactly
// in struct order. Internal to tools/portainer-sim: it includes boost/json.hpp, so only the
// simulator's own .cpp files include it.

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/portainer-sim/sim_state.hpp"

namespace tmaster::tools::portainer_sim {

namespace json = boost::json;

/// Compact JSON as Go's Encoder writes it with SetAppendNewline(false): `<`, `>`, `&`,
/// U+2028 and U+2029 escaped (HTML-safe, Go's default).
std::string GoSerialize(const json::value& value);

/// Go's `json.NewDecoder(body).Decode(&v)`: decodes the first JSON value and ignores what
/// follows. On failure returns Go's error text: `EOF` (empty body), `unexpected EOF`,
/// `invalid character 'x' looking for beginning of value`, ... With `whole` it is
/// `json.Unmarshal` instead: trailing non-space is an error, truncation is
/// `unexpected end of JSON input`.
std::optional<std::string> GoDecode(std::string_view body, json::value& out, bool whole = false);

/// Upper-cases the first byte, as Portainer does for `details`.
std::string Capitalize(std::string text);

/// Reads a JSON value into Go struct fields the way encoding/json does: every key of the
/// object is matched to a field case-insensitively (later keys win), unknown keys are ignored,
/// `null` leaves scalars untouched and sets slices to nil, a type mismatch is an error naming
/// the Go struct and field. The first error is kept; reading stops mattering after it.
class GoStruct {
 public:
  /// `go_type` as Go prints it, e.g. `stacks.composeStackFromFileContentPayload`.
  GoStruct(const json::value& value, std::string go_type);
  /// The reader keeps a pointer to the value: it must outlive the reader.
  GoStruct(json::value&& value, std::string go_type) = delete;

  void String(std::string_view field, std::string& out);
  void Bool(std::string_view field, bool& out);
  void Int(std::string_view field, std::int64_t& out);
  /// `[]portainer.Pair` with lower-case `name` / `value` tags.
  void Env(std::string_view field, EnvList& out);

  /// Go's error text (not capitalized), if any field failed.
  [[nodiscard]] const std::optional<std::string>& Error() const { return error_; }

 private:
  template <class Fn>
  void ForEach(std::string_view field, Fn&& fn);
  void Mismatch(const json::value& got, std::string_view field, std::string_view go_field_type);

  const json::object* object_ = nullptr;
  std::string struct_name_;
  std::optional<std::string> error_;
};

/// Decodes an Env array given as JSON text (multipart form field `Env`). False when invalid.
bool DecodeEnvText(std::string_view text, EnvList& out);

// --- response objects, keys in Portainer's struct order ---

json::object StackJson(const Stack& stack, const ResourceControl* resource_control);
json::object ResourceControlJson(const ResourceControl& rc);
json::value EnvJson(const EnvList& env);
json::object EndpointJson(const Endpoint& endpoint, const State& state, bool exclude_snapshots);
/// Docker's `GET /swarm` object for a manager of `endpoint.swarm_id`.
json::object SwarmInspectJson(const Endpoint& endpoint);
/// Portainer's error body `{"message": ..., "details": ...}`, both omitempty.
std::string ErrorBody(const std::string& message, const std::string& details);

}  // namespace tmaster::tools::portainer_sim
