#include "tools/portainer-sim/sim_json.hpp"

#include <cctype>
#include <cstdio>
#include <utility>

#include "common/text.hpp"

namespace tmaster::tools::portainer_sim {
namespace {

/// How Go's UnmarshalTypeError names the JSON value it could not store.
std::string GoKind(const json::value& v) {
  switch (v.kind()) {
    case json::kind::string:
      return "string";
    case json::kind::bool_:
      return "bool";
    case json::kind::array:
      return "array";
    case json::kind::object:
      return "object";
    default:
      return "number";
  }
}

/// Go's quoteChar for syntax errors.
std::string QuoteChar(char c) {
  if (c == '\'') return "'\\''";
  if (c == '"') return "'\"'";
  if (std::isprint(static_cast<unsigned char>(c)) != 0) return std::string("'") + c + "'";
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "'\\x%02x'",
                static_cast<unsigned>(static_cast<unsigned char>(c)));
  return buffer;
}

bool AllWhitespace(std::string_view text) {
  for (const char c : text) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
  }
  return true;
}

}  // namespace

std::string GoSerialize(const json::value& value) {
  const std::string raw = json::serialize(value);
  std::string out;
  out.reserve(raw.size());
  // These bytes only ever appear inside JSON strings, so a plain substitution is exact.
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xE2' && i + 2 < raw.size() && raw[i + 1] == '\x80' &&
               (raw[i + 2] == '\xA8' || raw[i + 2] == '\xA9')) {
      out += raw[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::string> GoDecode(std::string_view body, json::value& out, bool whole) {
  json::parse_options options;
  options.allow_invalid_utf8 = true;  // Go replaces invalid UTF-8 instead of rejecting it
  options.max_depth = 10000;
  json::stream_parser parser(json::storage_ptr(), options);
  boost::system::error_code ec;
  const std::size_t consumed = parser.write_some(body.data(), body.size(), ec);
  if (ec) {
    if (consumed < body.size()) {
      return "invalid character " + QuoteChar(body[consumed]) + " looking for beginning of value";
    }
    return std::string(whole ? "unexpected end of JSON input" : "unexpected EOF");
  }
  if (!parser.done()) {
    if (AllWhitespace(body)) return std::string(whole ? "unexpected end of JSON input" : "EOF");
    parser.finish(ec);  // a bare number is only complete at the end of the input
    if (ec || !parser.done()) {
      return std::string(whole ? "unexpected end of JSON input" : "unexpected EOF");
    }
  }
  if (whole) {
    const std::string_view rest = body.substr(consumed);
    for (const char c : rest) {
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
      return "invalid character " + QuoteChar(c) + " after top-level value";
    }
  }
  out = parser.release();
  return std::nullopt;
}

std::string Capitalize(std::string text) {
  if (!text.empty() && text[0] >= 'a' && text[0] <= 'z') {
    text[0] = static_cast<char>(text[0] - 'a' + 'A');
  }
  return text;
}

GoStruct::GoStruct(const json::value& value, std::string go_type) {
  const auto dot = go_type.rfind('.');
  struct_name_ = dot == std::string::npos ? go_type : go_type.substr(dot + 1);
  if (value.is_object()) {
    object_ = &value.get_object();
  } else if (!value.is_null()) {
    error_ = "json: cannot unmarshal " + GoKind(value) + " into Go value of type " + go_type;
  }
}

template <class Fn>
void GoStruct::ForEach(std::string_view field, Fn&& fn) {
  if (object_ == nullptr || error_) return;
  for (const auto& entry : *object_) {
    if (!EqualsIgnoreCase(entry.key(), field)) continue;
    fn(entry.value());
    if (error_) return;
  }
}

void GoStruct::Mismatch(const json::value& got, std::string_view field,
                        std::string_view go_field_type) {
  if (error_) return;
  error_ = "json: cannot unmarshal " + GoKind(got) + " into Go struct field " + struct_name_ + "." +
           std::string(field) + " of type " + std::string(go_field_type);
}

void GoStruct::String(std::string_view field, std::string& out) {
  ForEach(field, [&](const json::value& v) {
    if (v.is_null()) return;
    if (!v.is_string()) return Mismatch(v, field, "string");
    out = std::string(v.get_string());
  });
}

void GoStruct::Bool(std::string_view field, bool& out) {
  ForEach(field, [&](const json::value& v) {
    if (v.is_null()) return;
    if (!v.is_bool()) return Mismatch(v, field, "bool");
    out = v.get_bool();
  });
}

void GoStruct::Int(std::string_view field, std::int64_t& out) {
  ForEach(field, [&](const json::value& v) {
    if (v.is_null()) return;
    if (v.is_int64()) {
      out = v.get_int64();
      return;
    }
    Mismatch(v, field, "int");
  });
}

void GoStruct::Env(std::string_view field, EnvList& out) {
  ForEach(field, [&](const json::value& v) {
    if (v.is_null()) {
      out.reset();
      return;
    }
    if (!v.is_array()) return Mismatch(v, field, "[]portainer.Pair");
    std::vector<EnvPair> pairs;
    for (const auto& item : v.get_array()) {
      EnvPair pair;
      if (item.is_object()) {
        for (const auto& entry : item.get_object()) {
          const bool is_name = EqualsIgnoreCase(entry.key(), "name");
          if (!is_name && !EqualsIgnoreCase(entry.key(), "value")) continue;
          if (entry.value().is_null()) continue;
          if (!entry.value().is_string()) {
            return Mismatch(entry.value(), std::string(field) + (is_name ? ".name" : ".value"),
                            "string");
          }
          (is_name ? pair.name : pair.value) = std::string(entry.value().get_string());
        }
      } else if (!item.is_null()) {
        return Mismatch(item, field, "portainer.Pair");
      }
      pairs.push_back(std::move(pair));
    }
    out = std::move(pairs);
  });
}

bool DecodeEnvText(std::string_view text, EnvList& out) {
  json::value value;
  if (GoDecode(text, value)) return false;
  const json::value wrapper = json::object{{"Env", std::move(value)}};
  GoStruct reader(wrapper, "[]portainer.Pair");
  reader.Env("Env", out);
  return !reader.Error();
}

json::value EnvJson(const EnvList& env) {
  if (!env) return nullptr;
  json::array out;
  for (const auto& pair : *env) {
    json::object item;
    item["name"] = pair.name;
    item["value"] = pair.value;
    out.push_back(std::move(item));
  }
  return out;
}

json::object ResourceControlJson(const ResourceControl& rc) {
  json::object o;
  o["Id"] = rc.id;
  o["ResourceId"] = rc.resource_id;
  o["SubResourceIds"] = json::array();
  o["Type"] = kResourceControlTypeStack;
  json::array users;
  for (const std::int64_t user : rc.user_ids) {
    json::object access;
    access["UserId"] = user;
    access["AccessLevel"] = 1;
    users.push_back(std::move(access));
  }
  o["UserAccesses"] = std::move(users);
  o["TeamAccesses"] = json::array();
  o["Public"] = false;
  o["AdministratorsOnly"] = rc.administrators_only;
  o["System"] = false;
  return o;
}

// Field by field, in the order Portainer's Go struct declares them: the object is flat, so the
// lines share one shape without repeating anything.
json::object StackJson(const Stack& stack, const ResourceControl* resource_control) {
  json::object o;
  o["Id"] = stack.id;
  o["Name"] = stack.name;
  o["Type"] = stack.type;
  o["EndpointId"] = stack.endpoint_id;
  o["SwarmId"] = stack.swarm_id;
  o["EntryPoint"] = stack.entry_point;
  o["Env"] = EnvJson(stack.env);
  if (resource_control != nullptr) {
    o["ResourceControl"] = ResourceControlJson(*resource_control);
  } else {
    o["ResourceControl"] = nullptr;
  }
  o["Status"] = stack.status;
  o["ProjectPath"] = stack.project_path;
  o["CreationDate"] = stack.creation_date;
  o["CreatedBy"] = stack.created_by;
  o["UpdateDate"] = stack.update_date;
  o["UpdatedBy"] = stack.updated_by;
  o["AdditionalFiles"] = nullptr;
  o["AutoUpdate"] = nullptr;
  o["Option"] = nullptr;
  o["GitConfig"] = nullptr;
  o["FromAppTemplate"] = stack.from_app_template;
  o["Namespace"] = "";
  return o;
}

json::object EndpointJson(const Endpoint& endpoint, const State& state, bool exclude_snapshots) {
  std::int64_t stack_count = 0, containers = 0, services = 0;
  for (const auto& [id, stack] : state.Stacks()) {
    if (stack.endpoint_id != endpoint.id) continue;
    ++stack_count;
    if (!stack.running) continue;
    ++(stack.type == kStackTypeSwarm ? services : containers);
  }
  for (const auto& foreign : state.Foreign()) {
    if (foreign.endpoint_id == endpoint.id) ++(foreign.swarm ? services : containers);
  }

  json::object o;
  o["Id"] = endpoint.id;
  o["Name"] = endpoint.name;
  o["Type"] = endpoint.type;
  o["ContainerEngine"] = "docker";
  o["URL"] = endpoint.url;
  o["GroupId"] = endpoint.group_id;
  o["PublicURL"] = "";
  o["Gpus"] = json::array();
  o["TLSConfig"] = json::object{{"TLS", false}, {"TLSSkipVerify", false}};
  o["TagIds"] = json::array();
  o["Status"] = endpoint.up ? kEndpointStatusUp : kEndpointStatusDown;
  json::array snapshots;
  if (!exclude_snapshots) {
    json::object snapshot;
    snapshot["Time"] = state.Now();
    snapshot["DockerVersion"] = "24.0.7";
    snapshot["Swarm"] = !endpoint.swarm_id.empty();
    snapshot["TotalCPU"] = 2;
    snapshot["TotalMemory"] = 4294967296LL;
    snapshot["ContainerCount"] = containers;
    snapshot["RunningContainerCount"] = containers;
    snapshot["StoppedContainerCount"] = 0;
    snapshot["HealthyContainerCount"] = 0;
    snapshot["UnhealthyContainerCount"] = 0;
    snapshot["VolumeCount"] = 0;
    snapshot["ImageCount"] = 0;
    snapshot["ServiceCount"] = services;
    snapshot["StackCount"] = stack_count;
    snapshot["NodeCount"] = 1;
    snapshot["GpuUseAll"] = false;
    snapshot["GpuUseList"] = nullptr;
    snapshot["IsPodman"] = false;
    snapshots.push_back(std::move(snapshot));
  }
  o["Snapshots"] = std::move(snapshots);
  o["UserAccessPolicies"] = json::object();
  o["TeamAccessPolicies"] = json::object();
  o["EdgeKey"] = "";
  o["EdgeCheckinInterval"] = 0;
  o["Kubernetes"] =
      json::object{{"Snapshots", nullptr},
                   {"Configuration", json::object{{"UseLoadBalancer", false},
                                                  {"UseServerMetrics", false},
                                                  {"EnableResourceOverCommit", false},
                                                  {"ResourceOverCommitPercentage", 0},
                                                  {"StorageClasses", nullptr},
                                                  {"IngressClasses", nullptr},
                                                  {"RestrictDefaultNamespace", false},
                                                  {"IngressAvailabilityPerNamespace", false},
                                                  {"AllowNoneIngressClass", false}}},
                   {"Flags", json::object{{"IsServerMetricsDetected", false},
                                          {"IsServerIngressClassDetected", false},
                                          {"IsServerStorageDetected", false}}}};
  o["ComposeSyntaxMaxVersion"] = "3.9";
  o["SecuritySettings"] = json::object{{"allowBindMountsForRegularUsers", true},
                                       {"allowPrivilegedModeForRegularUsers", true},
                                       {"allowVolumeBrowserForRegularUsers", false},
                                       {"allowHostNamespaceForRegularUsers", true},
                                       {"allowDeviceMappingForRegularUsers", true},
                                       {"allowStackManagementForRegularUsers", true},
                                       {"allowContainerCapabilitiesForRegularUsers", true},
                                       {"allowSysctlSettingForRegularUsers", true},
                                       {"enableHostManagementFeatures", false}};
  o["UserTrusted"] = false;
  o["PostInitMigrations"] = json::object{{"MigrateIngresses", true}, {"MigrateGPUs", true}};
  o["Edge"] = json::object{
      {"AsyncMode", false}, {"PingInterval", 0}, {"SnapshotInterval", 0}, {"CommandInterval", 0}};
  o["Agent"] = json::object{{"Version", ""}};
  o["EnableGPUManagement"] = false;
  o["LastCheckInDate"] = 0;
  o["QueryDate"] = state.Now();
  o["Heartbeat"] = false;
  return o;
}

json::object SwarmInspectJson(const Endpoint& endpoint) {
  json::object spec;
  spec["Name"] = "default";
  spec["Labels"] = json::object();
  spec["Orchestration"] = json::object{{"TaskHistoryRetentionLimit", 5}};
  spec["Raft"] = json::object{{"SnapshotInterval", 10000},
                              {"KeepOldSnapshots", 0},
                              {"LogEntriesForSlowFollowers", 500},
                              {"ElectionTick", 10},
                              {"HeartbeatTick", 1}};
  spec["Dispatcher"] = json::object{{"HeartbeatPeriod", 5000000000LL}};
  spec["CAConfig"] = json::object{{"NodeCertExpiry", 7776000000000000LL}};
  spec["TaskDefaults"] = json::object();
  spec["EncryptionConfig"] = json::object{{"AutoLockManagers", false}};

  json::object o;
  o["ID"] = endpoint.swarm_id;
  o["Version"] = json::object{{"Index", 10}};
  o["CreatedAt"] = "2024-01-01T00:00:00.000000000Z";
  o["UpdatedAt"] = "2024-01-01T00:00:00.000000000Z";
  o["Spec"] = std::move(spec);
  o["TLSInfo"] =
      json::object{{"TrustRoot", ""}, {"CertIssuerSubject", ""}, {"CertIssuerPublicKey", ""}};
  o["RootRotationInProgress"] = false;
  o["DefaultAddrPool"] = json::array{"10.0.0.0/8"};
  o["SubnetSize"] = 24;
  o["DataPathPort"] = 4789;
  o["JoinTokens"] = json::object{{"Worker", "SWMTKN-1-portainer-sim-worker"},
                                 {"Manager", "SWMTKN-1-portainer-sim-manager"}};
  return o;
}

std::string ErrorBody(const std::string& message, const std::string& details) {
  json::object o;
  if (!message.empty()) o["message"] = message;
  if (!details.empty()) o["details"] = details;
  return GoSerialize(o);
}

}  // namespace tmaster::tools::portainer_sim
