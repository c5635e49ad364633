// Webhook verification for each provider: signatures, events, branches, limits. Pure, no server.
#include <doctest/doctest.h>

#include <array>
#include <set>
#include <string>
#include <string_view>

#include "common/crypto.hpp"
#include "common/secret.hpp"
#include "controller/api/webhook.hpp"

namespace {

using tmaster::Secret;
using tmaster::controller::ToString;
using tmaster::controller::Verdict;
using tmaster::controller::VerifyWebhook;
using tmaster::controller::WebhookRequest;
using tmaster::controller::WebhookResult;

constexpr std::string_view kSecretText = "tm-webhook-secret";
constexpr std::string_view kSha = "9fceb02d0ae598e95dc970b74767f19372d61af8";
const std::string kPushMain =
    R"({"ref":"refs/heads/main","after":"9fceb02d0ae598e95dc970b74767f19372d61af8",)"
    R"("repository":{"full_name":"ops/fleet"}})";
// Computed independently of the code under test, while writing this test, with $body set to
// kPushMain (the two halves above, joined; no newline):
//   printf '%s' "$body" | openssl dgst -sha256 -hmac 'tm-webhook-secret'
constexpr std::string_view kPushMainHmac =
    "044cbe3151f25b2b2f0525bdb99c314420717480ae95c3c407ae20ae27fa9c8a";

enum class Kind { kGithub, kGitea, kGitlab, kGeneric };
constexpr std::array<Kind, 4> kAllKinds{Kind::kGithub, Kind::kGitea, Kind::kGitlab,
                                        Kind::kGeneric};

std::string Name(Kind kind) {
  switch (kind) {
    case Kind::kGithub: return "github";
    case Kind::kGitea: return "gitea";
    case Kind::kGitlab: return "gitlab";
    case Kind::kGeneric: return "generic";
  }
  return "?";
}

std::string HexHmac(std::string_view key, std::string_view body) {
  return tmaster::crypto::Hex(tmaster::crypto::HmacSha256(key, body));
}

std::string Body(std::string_view ref, std::string_view after = kSha) {
  return R"({"ref":")" + std::string(ref) + R"(","after":")" + std::string(after) +
         R"(","repository":{"full_name":"ops/fleet"}})";
}

// Puts the provider's signature of `body` under `key` (GitLab: `key` itself as the token) and
// its event header; an empty `event` means the provider's push event.
WebhookRequest Delivery(Kind kind, std::string body, std::string_view key,
                        std::string_view event = {}) {
  WebhookRequest request;
  const std::string hex = HexHmac(key, body);
  switch (kind) {
    case Kind::kGithub:
      request.SetHeader("X-Hub-Signature-256", "sha256=" + hex);
      request.SetHeader("X-GitHub-Event", std::string(event.empty() ? "push" : event));
      break;
    case Kind::kGitea:
      request.SetHeader("X-Gitea-Signature", hex);
      request.SetHeader("X-Gitea-Event", std::string(event.empty() ? "push" : event));
      break;
    case Kind::kGitlab:
      request.SetHeader("X-Gitlab-Token", std::string(key));
      request.SetHeader("X-Gitlab-Event", std::string(event.empty() ? "Push Hook" : event));
      break;
    case Kind::kGeneric: request.SetHeader("X-Signature", "sha256=" + hex); break;
  }
  request.body = std::move(body);
  return request;
}

WebhookRequest Signed(Kind kind, std::string body, std::string_view event = {}) {
  return Delivery(kind, std::move(body), kSecretText, event);
}

// Every verification goes through here: neither the secret nor any received signature or token
// may appear in the message.
WebhookResult Verify(const WebhookRequest& request,
                     const Secret& secret = Secret(std::string(kSecretText)),
                     std::string_view branch = "main",
                     std::size_t limit = tmaster::controller::kDefaultWebhookBodyLimit) {
  WebhookResult result = VerifyWebhook(request, secret, branch, limit);
  CAPTURE(result.message);
  if (!secret.Empty()) CHECK(result.message.find(secret.Reveal()) == std::string::npos);
  CHECK(result.message.find(kSecretText) == std::string::npos);
  for (const char* header :
       {"x-hub-signature-256", "x-gitea-signature", "x-gitlab-token", "x-signature"}) {
    if (const std::string* value = request.FindHeader(header)) {
      const std::string_view hex = std::string_view(*value).substr(value->find('=') + 1);
      if (!hex.empty()) CHECK(result.message.find(hex) == std::string::npos);
    }
  }
  CHECK_FALSE(result.message.empty());
  return result;
}

}  // namespace

TEST_CASE("webhook: a signed push to the watched branch is accepted, for each provider") {
  for (Kind kind : kAllKinds) {
    CAPTURE(Name(kind));
    const WebhookResult result = Verify(Signed(kind, kPushMain));
    CHECK(result.verdict == Verdict::kAccepted);
    CHECK(result.http_status == 202);
    CHECK(result.provider == Name(kind));
    CHECK(result.branch == "main");
    CHECK(result.revision == kSha);
  }
}

TEST_CASE("webhook: the openssl test vectors verify") {
  const Secret secret{std::string(kSecretText)};
  SUBCASE("GitHub header") {
    WebhookRequest request;
    request.SetHeader("X-Hub-Signature-256", "sha256=" + std::string(kPushMainHmac));
    request.SetHeader("X-GitHub-Event", "push");
    request.body = kPushMain;
    CHECK(Verify(request, secret).verdict == Verdict::kAccepted);
  }
  SUBCASE("Gitea header") {
    WebhookRequest request;
    request.SetHeader("X-Gitea-Signature", std::string(kPushMainHmac));
    request.SetHeader("X-Gitea-Event", "push");
    request.body = kPushMain;
    CHECK(Verify(request, secret).verdict == Verdict::kAccepted);
  }
  SUBCASE("generic header") {
    WebhookRequest request;
    request.SetHeader("X-Signature", "sha256=" + std::string(kPushMainHmac));
    request.body = kPushMain;
    CHECK(Verify(request, secret).verdict == Verdict::kAccepted);
  }
  SUBCASE("GitHub's documented example") {
    // From GitHub's "Validating webhook deliveries"; also
    //   printf '%s' 'Hello, World!' | openssl dgst -sha256 -hmac "It's a Secret to Everybody"
    // The signature passes, so the verdict is about the (non-JSON) body, not the signature.
    WebhookRequest request;
    request.SetHeader(
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
    request.SetHeader("X-GitHub-Event", "push");
    request.body = "Hello, World!";
    const WebhookResult result = Verify(request, Secret("It's a Secret to Everybody"));
    CHECK(result.verdict == Verdict::kMalformed);
    request.body = "Hello, World?";
    CHECK(Verify(request, Secret("It's a Secret to Everybody")).verdict == Verdict::kBadSignature);
  }
}

TEST_CASE("webhook: a wrong signature or token is rejected with 401, for each provider") {
  SUBCASE("signed with another secret") {
    for (Kind kind : kAllKinds) {
      CAPTURE(Name(kind));
      const WebhookResult result = Verify(Delivery(kind, kPushMain, "not-the-secret"));
      CHECK(result.verdict == Verdict::kBadSignature);
      CHECK(result.http_status == 401);
      CHECK(result.provider == Name(kind));
      CHECK(result.branch.empty());
      CHECK(result.revision.empty());
    }
  }
  SUBCASE("body changed after signing") {
    for (Kind kind : kAllKinds) {
      CAPTURE(Name(kind));
      WebhookRequest request = Signed(kind, kPushMain);
      request.body = Body("refs/heads/main", "0123456789abcdef0123456789abcdef01234567");
      // GitLab's token does not cover the body: the same token is still valid.
      const Verdict expected = kind == Kind::kGitlab ? Verdict::kAccepted : Verdict::kBadSignature;
      CHECK(Verify(request).verdict == expected);
    }
  }
  SUBCASE("a prefix of the secret") {
    for (Kind kind : kAllKinds) {
      CAPTURE(Name(kind));
      CHECK(Verify(Delivery(kind, kPushMain, kSecretText.substr(0, 5))).verdict ==
            Verdict::kBadSignature);
    }
  }
  SUBCASE("GitHub without the sha256= prefix") {
    WebhookRequest request = Signed(Kind::kGithub, kPushMain);
    request.SetHeader("X-Hub-Signature-256", HexHmac(kSecretText, kPushMain));
    CHECK(Verify(request).verdict == Verdict::kBadSignature);
  }
  SUBCASE("GitHub with a sha1= signature") {
    WebhookRequest request = Signed(Kind::kGithub, kPushMain);
    request.SetHeader("X-Hub-Signature-256", "sha1=" + HexHmac(kSecretText, kPushMain));
    CHECK(Verify(request).verdict == Verdict::kBadSignature);
  }
  SUBCASE("GitLab token given as the HMAC of the body") {
    WebhookRequest request = Signed(Kind::kGitlab, kPushMain);
    request.SetHeader("X-Gitlab-Token", HexHmac(kSecretText, kPushMain));
    CHECK(Verify(request).verdict == Verdict::kBadSignature);
  }
  SUBCASE("a truncated signature") {
    WebhookRequest request = Signed(Kind::kGitea, kPushMain);
    request.SetHeader("X-Gitea-Signature", HexHmac(kSecretText, kPushMain).substr(0, 63));
    CHECK(Verify(request).verdict == Verdict::kBadSignature);
  }
}

TEST_CASE("webhook: a delivery without a signature header is rejected with 401") {
  for (Kind kind : kAllKinds) {
    CAPTURE(Name(kind));
    WebhookRequest request = Signed(kind, kPushMain);
    for (const char* header :
         {"x-hub-signature-256", "x-gitea-signature", "x-gitlab-token", "x-signature"}) {
      request.headers.erase(header);
    }
    const WebhookResult result = Verify(request);
    CHECK(result.verdict == Verdict::kMissingSignature);
    CHECK(result.http_status == 401);
    // The event header still names the sender in the delivery log.
    CHECK(result.provider == Name(kind));
  }
  SUBCASE("a legacy sha1 header alone is not a signature") {
    WebhookRequest request;
    request.SetHeader("X-Hub-Signature", "sha1=" + HexHmac(kSecretText, kPushMain));
    request.SetHeader("X-GitHub-Event", "push");
    request.body = kPushMain;
    CHECK(Verify(request).verdict == Verdict::kMissingSignature);
  }
}

TEST_CASE("webhook: a push to another branch or a tag is ignored with 200") {
  const Secret secret{std::string(kSecretText)};
  SUBCASE("another branch") {
    for (Kind kind : kAllKinds) {
      CAPTURE(Name(kind));
      const WebhookResult result = Verify(Signed(kind, Body("refs/heads/dev")));
      CHECK(result.verdict == Verdict::kIgnoredBranch);
      CHECK(result.http_status == 200);
      CHECK(result.provider == Name(kind));
      CHECK(result.branch == "dev");
      CHECK(result.revision.empty());
    }
  }
  SUBCASE("a branch whose name starts like the watched one") {
    for (Kind kind : kAllKinds) {
      CAPTURE(Name(kind));
      CHECK(Verify(Signed(kind, Body("refs/heads/main-old"))).verdict == Verdict::kIgnoredBranch);
      CHECK(Verify(Signed(kind, Body("refs/heads/mai"))).verdict == Verdict::kIgnoredBranch);
    }
  }
  SUBCASE("a tag named like the branch") {
    for (Kind kind : kAllKinds) {
      CAPTURE(Name(kind));
      const std::string_view event = kind == Kind::kGitlab ? "Tag Push Hook" : "";
      const WebhookResult result = Verify(Signed(kind, Body("refs/tags/main"), event));
      CHECK(result.verdict == Verdict::kIgnoredBranch);
      CHECK(result.http_status == 200);
      CHECK(result.branch.empty());
      CHECK(result.message.find("tag") != std::string::npos);
    }
  }
  SUBCASE("a ref that is not a branch") {
    for (Kind kind : kAllKinds) {
      CAPTURE(Name(kind));
      CHECK(Verify(Signed(kind, Body("main"))).verdict == Verdict::kIgnoredBranch);
      CHECK(Verify(Signed(kind, Body("refs/pull/1/head"))).verdict == Verdict::kIgnoredBranch);
    }
  }
  SUBCASE("the branch this source watches decides") {
    for (Kind kind : kAllKinds) {
      CAPTURE(Name(kind));
      CHECK(Verify(Signed(kind, Body("refs/heads/release/1.2")), secret, "release/1.2").verdict ==
            Verdict::kAccepted);
      CHECK(Verify(Signed(kind, kPushMain), secret, "").verdict == Verdict::kIgnoredBranch);
    }
  }
}

TEST_CASE("webhook: events other than push are ignored with 200 once signed") {
  for (Kind kind : {Kind::kGithub, Kind::kGitea}) {
    CAPTURE(Name(kind));
    const std::string ping = R"({"zen":"Keep it logically awesome.","hook_id":1})";
    const WebhookResult result = Verify(Signed(kind, ping, "ping"));
    CHECK(result.verdict == Verdict::kIgnoredEvent);
    CHECK(result.http_status == 200);
    CHECK(result.message.find("ping") != std::string::npos);
    // A ping is still verified first.
    CHECK(Verify(Delivery(kind, ping, "wrong", "ping")).verdict == Verdict::kBadSignature);
  }
  SUBCASE("GitLab merge request") {
    const WebhookResult result =
        Verify(Signed(Kind::kGitlab, R"({"object_kind":"merge_request"})", "Merge Request Hook"));
    CHECK(result.verdict == Verdict::kIgnoredEvent);
    CHECK(result.http_status == 200);
  }
  SUBCASE("a signed delivery without its event header is malformed") {
    WebhookRequest request = Signed(Kind::kGithub, kPushMain);
    request.headers.erase("x-github-event");
    const WebhookResult result = Verify(request);
    CHECK(result.verdict == Verdict::kMalformed);
    CHECK(result.http_status == 400);
  }
}

TEST_CASE("webhook: an oversized body is refused with 413 before anything else") {
  const std::string big =
      kPushMain + std::string(tmaster::controller::kDefaultWebhookBodyLimit, ' ');
  for (Kind kind : kAllKinds) {
    CAPTURE(Name(kind));
    const WebhookResult signed_big = Verify(Signed(kind, big));
    CHECK(signed_big.verdict == Verdict::kTooLarge);
    CHECK(signed_big.http_status == 413);
    CHECK(signed_big.provider == Name(kind));
    // Unsigned or badly signed: still 413, the signature is never computed over it.
    CHECK(Verify(Delivery(kind, big, "wrong")).verdict == Verdict::kTooLarge);
  }
  SUBCASE("the limit itself is allowed, one byte more is not") {
    CHECK(Verify(Signed(Kind::kGithub, kPushMain), Secret(std::string(kSecretText)), "main",
                 kPushMain.size())
              .verdict == Verdict::kAccepted);
    CHECK(Verify(Signed(Kind::kGithub, kPushMain), Secret(std::string(kSecretText)), "main",
                 kPushMain.size() - 1)
              .verdict == Verdict::kTooLarge);
  }
  SUBCASE("JSON whitespace up to the default limit is fine") {
    const std::string padded = kPushMain + std::string(1000, ' ');
    CHECK(Verify(Signed(Kind::kGeneric, padded)).verdict == Verdict::kAccepted);
  }
}

TEST_CASE("webhook: a signed body that is not a JSON push is malformed (400)") {
  for (Kind kind : kAllKinds) {
    CAPTURE(Name(kind));
    for (const char* body : {"{not json", "", "[]", "\"refs/heads/main\"", R"({"after":"abc"})",
                             R"({"ref":5})", R"({"ref":""})",
                             R"({"ref":"refs/heads/main","after":7})",
                             R"({"ref":"refs/heads/main"} trailing)"}) {
      CAPTURE(body);
      const WebhookResult result = Verify(Signed(kind, body));
      CHECK(result.verdict == Verdict::kMalformed);
      CHECK(result.http_status == 400);
      CHECK(result.provider == Name(kind));
    }
  }
}

TEST_CASE("webhook: without a configured secret every delivery is rejected") {
  for (Kind kind : kAllKinds) {
    CAPTURE(Name(kind));
    // Signed with the empty key (GitLab: an empty token): exactly what an empty secret expects.
    const WebhookResult result = Verify(Delivery(kind, kPushMain, ""), Secret());
    CHECK(result.verdict == Verdict::kBadSignature);
    CHECK(result.http_status == 401);
    CHECK(result.message.find("no webhook secret") != std::string::npos);
    CHECK(Verify(Signed(kind, kPushMain), Secret()).verdict == Verdict::kBadSignature);
  }
}

TEST_CASE("webhook: hex signatures are accepted in upper case") {
  const std::string upper = [] {
    std::string hex(kPushMainHmac);
    for (char& c : hex) c = (c >= 'a' && c <= 'f') ? static_cast<char>(c - 'a' + 'A') : c;
    return hex;
  }();
  REQUIRE(upper != kPushMainHmac);
  WebhookRequest github = Signed(Kind::kGithub, kPushMain);
  github.SetHeader("X-Hub-Signature-256", "sha256=" + upper);
  CHECK(Verify(github).verdict == Verdict::kAccepted);
  github.SetHeader("X-Hub-Signature-256", "SHA256=" + upper);
  CHECK(Verify(github).verdict == Verdict::kAccepted);
  WebhookRequest gitea = Signed(Kind::kGitea, kPushMain);
  gitea.SetHeader("X-Gitea-Signature", upper);
  CHECK(Verify(gitea).verdict == Verdict::kAccepted);
  WebhookRequest generic = Signed(Kind::kGeneric, kPushMain);
  generic.SetHeader("X-Signature", "sha256=" + upper);
  CHECK(Verify(generic).verdict == Verdict::kAccepted);
  SUBCASE("but the GitLab token is compared exactly") {
    WebhookRequest gitlab = Signed(Kind::kGitlab, kPushMain);
    gitlab.SetHeader("X-Gitlab-Token", "TM-WEBHOOK-SECRET");
    CHECK(Verify(gitlab).verdict == Verdict::kBadSignature);
  }
}

TEST_CASE("webhook: header names are case-insensitive") {
  WebhookRequest request;
  request.headers["X-HUB-Signature-256"] = "sha256=" + std::string(kPushMainHmac);
  request.headers["x-github-EVENT"] = "push";
  request.body = kPushMain;
  CHECK(request.FindHeader("X-Hub-Signature-256") != nullptr);
  CHECK(request.FindHeader("x-hub-signature") == nullptr);
  CHECK(Verify(request).verdict == Verdict::kAccepted);
  request.SetHeader("X-GitHub-Event", "ping");
  CHECK(request.headers.count("x-github-event") == 1);
  CHECK(*request.FindHeader("X-GITHUB-EVENT") == "ping");
}

TEST_CASE("webhook: Gitea's extra GitHub-style headers still make it Gitea") {
  WebhookRequest request = Signed(Kind::kGitea, kPushMain);
  request.SetHeader("X-Hub-Signature-256", "sha256=" + HexHmac(kSecretText, kPushMain));
  request.SetHeader("X-GitHub-Event", "push");
  const WebhookResult result = Verify(request);
  CHECK(result.verdict == Verdict::kAccepted);
  CHECK(result.provider == "gitea");
}

TEST_CASE("webhook: a push deleting the watched branch is accepted without a revision") {
  const WebhookResult result =
      Verify(Signed(Kind::kGithub, Body("refs/heads/main", std::string(40, '0'))));
  CHECK(result.verdict == Verdict::kAccepted);
  CHECK(result.revision.empty());
  CHECK(result.message.find("deleted") != std::string::npos);
}

TEST_CASE("webhook: body values in messages are shortened and printable") {
  const std::string branch = "x\ny" + std::string(200, 'z');
  const WebhookResult result =
      Verify(Signed(Kind::kGithub, R"({"ref":"refs/heads/x\ny)" + std::string(200, 'z') + "\"}"));
  CHECK(result.verdict == Verdict::kIgnoredBranch);
  CHECK(result.branch == branch);
  CHECK(result.message.find('\n') == std::string::npos);
  CHECK(result.message.size() < 200);
}

TEST_CASE("webhook: verdict labels are distinct lower-case metric label values") {
  std::set<std::string> labels;
  for (Verdict verdict : {Verdict::kAccepted, Verdict::kIgnoredBranch, Verdict::kIgnoredEvent,
                          Verdict::kBadSignature, Verdict::kMissingSignature, Verdict::kTooLarge,
                          Verdict::kMalformed}) {
    const std::string label = ToString(verdict);
    CAPTURE(label);
    CHECK(label.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string::npos);
    labels.insert(label);
  }
  CHECK(labels.size() == 7);
  CHECK(std::string(ToString(Verdict::kBadSignature)) == "bad_signature");
}
