// Fuzz target: webhook verification and payload parsing (controller/api/webhook.hpp), the part of
// `POST /hooks/git` that reads what the internet sends: headers and body of a delivery.
//
// Input, in the split format of tests/fuzz/fuzz_input.hpp: header lines `Name: value` (as a
// server hands them over; the name's case is free), an empty line, then the body. So that the
// fuzzer gets past the signature check to the payload parser, two tokens in a header value are
// replaced before the delivery is verified: `@HMAC@` by the hex HMAC-SHA256 of the body under the
// secret, `@SECRET@` by the secret itself (GitLab's token). The secret is `fuzz-webhook-secret`,
// the watched branch `main`, the body limit 64 KiB. Example:
//
//   X-GitHub-Event: push
//   X-Hub-Signature-256: sha256=@HMAC@
//
//   {"ref":"refs/heads/main","after":"9fceb02d0ae598e95dc970b74767f19372d61af8"}
//
// Properties beyond "no crash, no exception, no sanitizer report", from VerifyWebhook's contract:
//  - the HTTP status is the verdict's (202, 200, 401, 413, 400);
//  - the provider is one of github, gitea, gitlab, generic, and GuessProvider agrees with it;
//  - accepted: the branch is `main`; a revision only for an accepted delivery;
//  - the message never holds the secret, nor a signature received (hex, 16 digits or more),
//    nor anything of an unverified body (the same delivery with other bytes of the same length
//    gets the same verdict and message);
//  - a body over the limit is kTooLarge whatever else the delivery holds.

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "common/crypto.hpp"
#include "common/secret.hpp"
#include "controller/api/webhook.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using tmaster::controller::Verdict;
using tmaster::fuzz::Require;

constexpr std::string_view kSecret = "fuzz-webhook-secret";
constexpr std::size_t kBodyLimit = 64U * 1024U;

void ReplaceAll(std::string& text, std::string_view token, const std::string& with) {
  for (auto at = text.find(token); at != std::string::npos;
       at = text.find(token, at + with.size())) {
    text.replace(at, token.size(), with);
  }
}

bool IsSignatureHeader(std::string name) {
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name == "x-gitea-signature" || name == "x-hub-signature-256" ||
         name == "x-hub-signature" || name == "x-gitlab-token" || name == "x-signature";
}

// Hex of at least 16 digits, after an optional `sha256=`: a signature, not words that could be
// part of a message by chance.
bool LooksLikeSignature(std::string_view value) {
  if (value.size() > 7 && (value.substr(0, 7) == "sha256=" || value.substr(0, 7) == "SHA256=")) {
    value.remove_prefix(7);
  }
  return value.size() >= 16 &&
         value.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos;
}

int StatusOf(Verdict verdict) {
  switch (verdict) {
    case Verdict::kAccepted: return 202;
    case Verdict::kIgnoredBranch:
    case Verdict::kIgnoredEvent: return 200;
    case Verdict::kBadSignature:
    case Verdict::kMissingSignature: return 401;
    case Verdict::kTooLarge: return 413;
    case Verdict::kMalformed: return 400;
  }
  return -1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tmaster::fuzz::SplitInput input = tmaster::fuzz::Split(tmaster::fuzz::AsText(data, size));
  tmaster::controller::WebhookRequest request;
  request.body = std::move(input.body);
  const std::string hmac =
      tmaster::crypto::Hex(tmaster::crypto::HmacSha256(kSecret, request.body));
  std::string signatures;  // every signature or token value received, for the leak check
  std::string others = request.body;  // what else was received
  for (auto& [name, value] : input.fields) {
    if (IsSignatureHeader(name)) {
      ReplaceAll(value, "@HMAC@", hmac);
      ReplaceAll(value, "@SECRET@", std::string(kSecret));
      if (LooksLikeSignature(value)) signatures += value + '\n';
    } else {
      others += value + '\n';
    }
    request.SetHeader(name, std::move(value));
  }
  // The secret can show up elsewhere only when the input spells it out (then the sender knows it).
  const bool input_has_secret =
      tmaster::fuzz::AsText(data, size).find(kSecret) != std::string_view::npos;

  const tmaster::controller::WebhookResult result =
      tmaster::controller::VerifyWebhook(request, tmaster::Secret(std::string(kSecret)), "main",
                                         kBodyLimit);

  Require(result.http_status == StatusOf(result.verdict), "the status is the verdict's");
  Require(result.provider == "github" || result.provider == "gitea" ||
              result.provider == "gitlab" || result.provider == "generic",
          "a known provider");
  Require(tmaster::controller::GuessProvider(request) == result.provider,
          "GuessProvider agrees with VerifyWebhook");
  Require(std::string_view(tmaster::controller::ToString(result.verdict)).size() > 0,
          "the verdict has a label");
  if (request.body.size() > kBodyLimit) {
    Require(result.verdict == Verdict::kTooLarge, "a body over the limit is too large");
  }
  if (result.verdict == Verdict::kAccepted) {
    Require(result.branch == "main", "an accepted push is to the watched branch");
  } else {
    Require(result.revision.empty(), "a revision only for an accepted push");
  }
  Require(input_has_secret || result.message.find(kSecret) == std::string::npos,
          "the message never holds the secret");
  const bool verified = result.verdict == Verdict::kAccepted ||
                        result.verdict == Verdict::kIgnoredBranch ||
                        result.verdict == Verdict::kIgnoredEvent ||
                        result.verdict == Verdict::kMalformed;
  if (!verified) {
    // Nothing of an unverified body but its size reaches the message: the same delivery with
    // other bytes of the same length gets the same answer.
    tmaster::controller::WebhookRequest other = request;
    const char filler = request.body.empty() || request.body[0] != 'x' ? 'x' : 'y';
    other.body.assign(request.body.size(), filler);
    const auto blind = tmaster::controller::VerifyWebhook(
        other, tmaster::Secret(std::string(kSecret)), "main", kBodyLimit);
    Require(blind.verdict == result.verdict && blind.message == result.message,
            "an unverified body never shows in the message");
  }
  for (std::size_t at = 0; at < signatures.size();) {
    const auto end = signatures.find('\n', at);
    const std::string_view value = std::string_view(signatures).substr(at, end - at);
    Require(others.find(value) != std::string::npos ||
                result.message.find(value) == std::string::npos,
            "a received header value (signature) never shows in the message");
    at = end + 1;
  }
  return 0;
}
