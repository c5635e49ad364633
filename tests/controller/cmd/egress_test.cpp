// The mains' egresses (controller/cmd): secrets resolved from the config are registered with the
// process's scrubber, and the log and the `--once` report pass through it.
#include <doctest/doctest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>

#include "common/scrub.hpp"
#include "controller/cmd/logging.hpp"
#include "controller/cmd/report.hpp"
#include "controller/cmd/secrets.hpp"

namespace tmaster::controller {
namespace {

TEST_CASE("ResolveSecret registers the value, and the password inside a DSN") {
  const std::string password = "cmd-dsn-password-31415";
  const std::string dsn = "postgresql://admin:" + password + "@db.internal:5432/postgres";
  REQUIRE(::setenv("TM_EGRESS_TEST_DSN", dsn.c_str(), 1) == 0);
  manifests::SecretRef ref;
  ref.env = "TM_EGRESS_TEST_DSN";
  Outcome<Secret> resolved = ResolveSecret(ref, "clusters.main.dsn");
  REQUIRE(resolved.ok());
  CHECK(resolved->Reveal() == dsn);
  // The password alone, as a server's error would quote it, and the whole DSN.
  CHECK(ScrubProcessSecrets("auth failed for " + password) == "auth failed for <redacted>");
  CHECK(ScrubProcessSecrets("cannot connect to " + dsn + ".") == "cannot connect to <redacted>.");
  // A conninfo DSN's password too.
  REQUIRE(::setenv("TM_EGRESS_TEST_DSN", "host=db user=admin password=cmd-kv-password-2718", 1) ==
          0);
  REQUIRE(ResolveSecret(ref, "store.dsn").ok());
  CHECK(ScrubProcessSecrets("x cmd-kv-password-2718 y") == "x <redacted> y");
  ::unsetenv("TM_EGRESS_TEST_DSN");
}

TEST_CASE("InstallScrubbingLogger: a log line carrying a registered secret is written redacted") {
  const std::string secret = "cmd-log-secret-16180";
  RegisterProcessSecret(secret);
  InstallScrubbingLogger("%l %v");
  std::ostringstream written;
  auto logger = std::make_shared<spdlog::logger>(
      "egress-test", std::make_shared<spdlog::sinks::ostream_sink_st>(written));
  spdlog::initialize_logger(logger);  // takes the formatter installed above
  logger->warn("migration failed: syntax error at or near \"{}\"", secret);
  logger->flush();
  spdlog::drop("egress-test");
  spdlog::set_pattern("%+");  // the default again, for the other tests
  CHECK(written.str() == "warning migration failed: syntax error at or near \"<redacted>\"\n");
}

TEST_CASE("PrintReport: the --once output carries no registered secret") {
  const std::string secret = "cmd-report-secret-14142";
  RegisterProcessSecret(secret);
  PassReport report;
  WorkspaceResult failed;
  failed.name = "acme";
  failed.phase = Phase::kStalled;
  failed.reason = "MigrationFailed";
  failed.message = "syntax error at or near \"" + secret + "\"";
  report.workspaces.push_back(failed);
  std::ostringstream out;
  PrintReport(out, {}, report, false);
  CAPTURE(out.str());
  CHECK(out.str().find(secret) == std::string::npos);
  CHECK(out.str().find("syntax error at or near \"<redacted>\"") != std::string::npos);
}

}  // namespace
}  // namespace tmaster::controller
