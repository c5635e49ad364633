#include "controller/api/webhook.hpp"

#include <boost/json.hpp>

#include <array>
#include <exception>
#include <string>
#include <utility>

#include "common/crypto.hpp"
#include "common/text.hpp"

namespace tmaster::controller {
namespace {

constexpr std::string_view kHeadsPrefix = "refs/heads/";
constexpr std::string_view kTagsPrefix = "refs/tags/";
constexpr std::string_view kSha256Prefix = "sha256=";
// Body values are attacker-chosen text until proven otherwise and end up in logs and the store.
constexpr std::size_t kMaxShownChars = 80;

enum class Scheme {
  kHexHmac,        // <hex HMAC-SHA256(secret, body)>
  kPrefixedHmac,   // sha256=<hex HMAC-SHA256(secret, body)>
  kToken,          // the secret itself
};

struct Provider {
  std::string_view name;
  std::string_view signature_header;  // lower case
  std::string_view display_header;    // as documented by the provider, for messages
  std::string_view event_header;      // lower case; empty: no events, every delivery is a push
  Scheme scheme;
};

// Gitea comes first: it sends GitHub's X-Hub-Signature-256 and X-GitHub-Event as well.
constexpr std::array<Provider, 4> kProviders{{
    {"gitea", "x-gitea-signature", "X-Gitea-Signature", "x-gitea-event", Scheme::kHexHmac},
    {"github", "x-hub-signature-256", "X-Hub-Signature-256", "x-github-event",
     Scheme::kPrefixedHmac},
    {"gitlab", "x-gitlab-token", "X-Gitlab-Token", "x-gitlab-event", Scheme::kToken},
    {"generic", "x-signature", "X-Signature", "", Scheme::kPrefixedHmac},
}};

// Printable ASCII only, shortened: a verified sender may still send odd bytes.
std::string Shown(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, kMaxShownChars)) out += (c >= 0x20 && c <= 0x7e) ? c : '?';
  if (text.size() > kMaxShownChars) out += "...";
  return out;
}

WebhookResult Make(Verdict verdict, std::string_view provider, std::string message) {
  WebhookResult result;
  result.verdict = verdict;
  result.provider = std::string(provider);
  result.message = std::move(message);
  switch (verdict) {
    case Verdict::kAccepted: result.http_status = 202; break;
    case Verdict::kIgnoredBranch:
    case Verdict::kIgnoredEvent: result.http_status = 200; break;
    case Verdict::kBadSignature:
    case Verdict::kMissingSignature: result.http_status = 401; break;
    case Verdict::kTooLarge: result.http_status = 413; break;
    case Verdict::kMalformed: result.http_status = 400; break;
  }
  return result;
}

// The provider whose signature header is present; else a guess from the event header, so that
// even a rejected delivery is logged under the right name.
const Provider* FindSigned(const WebhookRequest& request) {
  for (const Provider& p : kProviders) {
    if (request.FindHeader(p.signature_header) != nullptr) return &p;
  }
  return nullptr;
}

bool HexHmacMatches(const Secret& secret, std::string_view body, std::string_view received_hex) {
  const std::string expected = crypto::Hex(crypto::HmacSha256(secret.Reveal(), body));
  // Lower-casing the received value depends only on it, never on the secret.
  return crypto::ConstantTimeEqual(expected, Lower(received_hex));
}

bool TokenMatches(const Secret& secret, std::string_view received) {
  // Comparing fixed-size digests keeps even the token's length out of the timing.
  return crypto::ConstantTimeEqual(crypto::HmacSha256(secret.Reveal(), received),
                                   crypto::HmacSha256(secret.Reveal(), secret.Reveal()));
}

bool SignatureMatches(const Provider& provider, const std::string& received,
                      const WebhookRequest& request, const Secret& secret) {
  switch (provider.scheme) {
    case Scheme::kHexHmac: return HexHmacMatches(secret, request.body, received);
    case Scheme::kToken: return TokenMatches(secret, received);
    case Scheme::kPrefixedHmac: {
      std::string_view value = received;
      if (value.size() < kSha256Prefix.size() ||
          !EqualsIgnoreCase(value.substr(0, kSha256Prefix.size()), kSha256Prefix)) {
        return false;
      }
      return HexHmacMatches(secret, request.body, value.substr(kSha256Prefix.size()));
    }
  }
  return false;
}

bool IsPushEvent(const Provider& provider, std::string_view event) {
  if (provider.scheme == Scheme::kToken) {
    return EqualsIgnoreCase(event, "Push Hook") || EqualsIgnoreCase(event, "Tag Push Hook");
  }
  return EqualsIgnoreCase(event, "push");
}

struct PushBody {
  std::string ref;
  std::string after;
  std::string error;  // empty when the body is a usable push
};

PushBody ParsePush(std::string_view body) {
  PushBody push;
  try {
    boost::system::error_code ec;
    const boost::json::value doc = boost::json::parse(body, ec);
    if (ec) {
      push.error = "body is not JSON: " + ec.message();
      return push;
    }
    const boost::json::object* object = doc.if_object();
    if (object == nullptr) {
      push.error = "body is not a JSON object";
      return push;
    }
    const boost::json::value* ref = object->if_contains("ref");
    if (ref == nullptr || !ref->is_string() || ref->get_string().empty()) {
      push.error = "body has no string \"ref\"";
      return push;
    }
    push.ref = std::string(ref->get_string());
    if (const boost::json::value* after = object->if_contains("after")) {
      if (!after->is_string()) {
        push.error = "\"after\" is not a string";
        return push;
      }
      push.after = std::string(after->get_string());
    }
  } catch (const std::exception& e) {
    push.error = std::string("body could not be read: ") + e.what();
  }
  return push;
}

bool IsZeroSha(std::string_view sha) {
  return !sha.empty() && sha.find_first_not_of('0') == std::string_view::npos;
}

WebhookResult DecideRef(std::string_view provider, const PushBody& push,
                        std::string_view watched_branch) {
  const std::string_view ref = push.ref;
  if (ref.starts_with(kTagsPrefix)) {
    return Make(Verdict::kIgnoredBranch, provider,
                "push of tag " + Shown(ref.substr(kTagsPrefix.size())) +
                    " ignored; this source follows branch " + Shown(watched_branch));
  }
  if (!ref.starts_with(kHeadsPrefix)) {
    return Make(Verdict::kIgnoredBranch, provider,
                "push of ref " + Shown(ref) + " ignored; this source follows branch " +
                    Shown(watched_branch));
  }
  const std::string_view branch = ref.substr(kHeadsPrefix.size());
  if (watched_branch.empty() || branch != watched_branch) {
    WebhookResult result = Make(Verdict::kIgnoredBranch, provider,
                                "push to branch " + Shown(branch) +
                                    " ignored; this source follows branch " +
                                    Shown(watched_branch));
    result.branch = std::string(branch);
    return result;
  }
  const bool deleted = IsZeroSha(push.after);
  WebhookResult result =
      Make(Verdict::kAccepted, provider,
           deleted ? "push deleted branch " + Shown(branch) + "; fetching to report it"
                   : "push to branch " + Shown(branch) +
                         (push.after.empty() ? "" : " at " + Shown(push.after)) + "; fetching");
  result.branch = std::string(branch);
  if (!deleted) result.revision = push.after;
  return result;
}

}  // namespace

std::string_view GuessProvider(const WebhookRequest& request) {
  if (const Provider* p = FindSigned(request)) return p->name;
  for (const Provider& p : kProviders) {
    if (!p.event_header.empty() && request.FindHeader(p.event_header) != nullptr) return p.name;
  }
  return "generic";
}

void WebhookRequest::SetHeader(std::string_view name, std::string value) {
  headers[Lower(name)] = std::move(value);
}

const std::string* WebhookRequest::FindHeader(std::string_view name) const {
  if (auto it = headers.find(Lower(name)); it != headers.end()) return &it->second;
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return &value;
  }
  return nullptr;
}

const char* ToString(Verdict verdict) {
  switch (verdict) {
    case Verdict::kAccepted: return "accepted";
    case Verdict::kIgnoredBranch: return "ignored_branch";
    case Verdict::kIgnoredEvent: return "ignored_event";
    case Verdict::kBadSignature: return "bad_signature";
    case Verdict::kMissingSignature: return "missing_signature";
    case Verdict::kTooLarge: return "too_large";
    case Verdict::kMalformed: return "malformed";
  }
  return "unknown";
}

WebhookResult VerifyWebhook(const WebhookRequest& request, const Secret& secret,
                            std::string_view watched_branch, std::size_t body_limit) {
  if (request.body.size() > body_limit) {
    return Make(Verdict::kTooLarge, GuessProvider(request),
                "body of " + std::to_string(request.body.size()) + " bytes exceeds the limit of " +
                    std::to_string(body_limit) + " bytes");
  }
  const Provider* provider = FindSigned(request);
  if (provider == nullptr) {
    return Make(Verdict::kMissingSignature, GuessProvider(request),
                "no signature header (X-Hub-Signature-256, X-Gitea-Signature, X-Gitlab-Token or "
                "X-Signature)");
  }
  if (secret.Empty()) {
    return Make(Verdict::kBadSignature, provider->name,
                "no webhook secret is configured for this source; deliveries cannot be verified");
  }
  if (!SignatureMatches(*provider, *request.FindHeader(provider->signature_header), request,
                        secret)) {
    return Make(Verdict::kBadSignature, provider->name,
                std::string(provider->display_header) + " does not match the configured secret");
  }
  if (!provider->event_header.empty()) {
    const std::string* event = request.FindHeader(provider->event_header);
    if (event == nullptr) {
      return Make(Verdict::kMalformed, provider->name,
                  "signed delivery without the " + std::string(provider->event_header) +
                      " header");
    }
    if (!IsPushEvent(*provider, *event)) {
      return Make(Verdict::kIgnoredEvent, provider->name,
                  "event " + Shown(*event) + " ignored; only pushes trigger a fetch");
    }
  }
  const PushBody push = ParsePush(request.body);
  if (!push.error.empty()) return Make(Verdict::kMalformed, provider->name, push.error);
  return DecideRef(provider->name, push, watched_branch);
}

}  // namespace tmaster::controller
