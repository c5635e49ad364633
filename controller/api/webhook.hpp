#pragma once

// Verification of `POST /hooks/git` deliveries
// (docs/architecture.md#from-a-commit-to-a-ready-workspace, issue 3 item 3). Pure: no I/O, no
// clock; the HTTP server hands over the request and stores/counts the result it gets back.

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "common/secret.hpp"

namespace tmaster::controller {

/// One webhook delivery as received. Header names are case-insensitive: `SetHeader` stores them
/// lower-cased, and `FindHeader` also finds a name inserted into `headers` directly with any case.
struct WebhookRequest {
  std::map<std::string, std::string> headers;  ///< lower-case name -> value
  std::string body;                            ///< raw bytes, exactly as signed by the sender
  /// The sender's IP address as the server saw it ("192.0.2.7", "2001:db8::1"; empty when the
  /// socket could not tell). Not looked at by VerifyWebhook; the server limits by it.
  std::string remote_address;

  /// Stores `value` under the lower-cased `name`, replacing an earlier value.
  void SetHeader(std::string_view name, std::string value);
  /// The value of header `name` (any case), or nullptr when absent.
  [[nodiscard]] const std::string* FindHeader(std::string_view name) const;
};

/// What became of a delivery. Each value is one label of
/// `tenant_master_webhook_deliveries_total{verdict}` (see ToString).
enum class Verdict {
  kAccepted,          ///< signed, a push to the watched branch: fetch now (HTTP 202)
  kIgnoredBranch,     ///< signed push to another branch or to a tag: nothing to do (HTTP 200)
  kIgnoredEvent,      ///< signed, but not a push (GitHub/Gitea `ping`, a merge request) (HTTP 200)
  kBadSignature,      ///< signature/token does not match, or no secret is configured (HTTP 401)
  kMissingSignature,  ///< none of the signature headers is present (HTTP 401)
  kTooLarge,          ///< body over the limit; nothing else was looked at (HTTP 413)
  kMalformed,         ///< signed, but the body is not the JSON push we expect (HTTP 400)
};

/// Lower-case snake_case label: "accepted", "ignored_branch", "ignored_event", "bad_signature",
/// "missing_signature", "too_large", "malformed".
const char* ToString(Verdict verdict);

/// The verdict with what the server needs to answer, store and act on the delivery.
struct WebhookResult {
  Verdict verdict = Verdict::kMalformed;
  /// "github" | "gitea" | "gitlab" | "generic", from the headers present (even when rejected).
  std::string provider;
  /// The pushed branch (`refs/heads/<branch>`); set for kAccepted and for kIgnoredBranch pushes
  /// to a branch; empty otherwise (a tag, or a rejected delivery).
  std::string branch;
  /// The pushed commit (`after`); set only for kAccepted, and empty when the push deleted the
  /// branch (all-zero `after`).
  std::string revision;
  /// For people and the delivery log. Never contains the secret or the received signature; values
  /// from the body appear only once the signature has been verified, shortened and sanitized.
  std::string message;
  /// 202 accepted, 200 ignored, 401 bad or missing signature, 413 too large, 400 malformed.
  int http_status = 400;
};

/// The provider a delivery claims by its headers, in VerifyWebhook's order (signature headers
/// first, then event headers; "generic" when none): how a delivery is logged even when its body
/// was never read (too large) or its signature is missing.
std::string_view GuessProvider(const WebhookRequest& request);

/// Default body limit: 1 MiB.
inline constexpr std::size_t kDefaultWebhookBodyLimit = std::size_t{1} << 20;

/// Verifies one delivery for a git source that watches `watched_branch`.
///
/// Order, each step deciding before the next looks at anything:
///  1. body larger than `body_limit` -> kTooLarge;
///  2. no signature header -> kMissingSignature; an empty `secret` -> kBadSignature for every
///     delivery (a secret is mandatory: an unsigned hook would let anyone trigger fetches);
///  3. the signature, checked in constant time BEFORE the body is parsed, by provider (the first
///     header present wins, Gitea first because it also sends GitHub's header):
///     - Gitea   `X-Gitea-Signature: <hex HMAC-SHA256(secret, body)>`, event `X-Gitea-Event`;
///     - GitHub  `X-Hub-Signature-256: sha256=<hex>`, event `X-GitHub-Event`;
///     - GitLab  `X-Gitlab-Token: <secret>` (a shared token, no HMAC), event `X-Gitlab-Event`;
///     - generic `X-Signature: sha256=<hex>`, no event header: every delivery is a push.
///     Hex is accepted in either case. Mismatch -> kBadSignature;
///  4. the event: GitHub/Gitea `push`, GitLab `Push Hook` and `Tag Push Hook` are pushes; any
///     other event (GitHub/Gitea `ping`) -> kIgnoredEvent; a missing event header -> kMalformed;
///  5. the body: a JSON object with a non-empty string `ref` (and, if present, a string
///     `after`), else kMalformed;
///  6. `ref` must be `refs/heads/<watched_branch>`, else kIgnoredBranch (tags included). An empty
///     `watched_branch` matches no push.
/// Otherwise kAccepted: the caller fetches the source now.
WebhookResult VerifyWebhook(const WebhookRequest& request, const Secret& secret,
                            std::string_view watched_branch,
                            std::size_t body_limit = kDefaultWebhookBodyLimit);

}  // namespace tmaster::controller
