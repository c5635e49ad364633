#include "controller/cmd/report.hpp"

#include <algorithm>
#include <sstream>
#include <string>

#include "common/scrub.hpp"

namespace tmaster::controller {
namespace {

void WriteDiagnostics(std::ostream& out, const std::vector<manifests::Diagnostic>& diagnostics) {
  for (const auto& d : diagnostics) {
    if (d.severity == manifests::Diagnostic::Severity::kNotice) out << "notice: ";
    out << d.Format() << '\n';
  }
}

void WriteReport(std::ostream& out, const std::vector<manifests::Diagnostic>& diagnostics,
                 const PassReport& report, bool show_plans) {
  WriteDiagnostics(out, diagnostics);

  std::size_t name_width = 4, phase_width = 5, reason_width = 6;
  for (const auto& w : report.workspaces) {
    name_width = std::max(name_width, w.name.size());
    phase_width = std::max(phase_width, std::string(ToString(w.phase)).size());
    reason_width = std::max(reason_width, w.reason.size());
  }
  auto pad = [&out](const std::string& text, std::size_t width) {
    out << text << std::string(width - text.size() + 2, ' ');
  };
  pad("NAME", name_width);
  pad("PHASE", phase_width);
  pad("REASON", reason_width);
  out << "MESSAGE\n";
  int ready = 0;
  for (const auto& w : report.workspaces) {
    if (w.ready) ++ready;
    pad(w.name, name_width);
    pad(ToString(w.phase), phase_width);
    pad(w.reason, reason_width);
    out << w.message << '\n';
    if (!show_plans) continue;
    for (const auto& line : w.plan) out << "    + " << line << '\n';
  }
  for (const auto& o : report.orphans) {
    const bool stack = o.kind == "stack";
    out << "orphan: " << o.kind << " \"" << o.name << "\" on " << (stack ? "" : "cluster \"")
        << o.cluster << (stack ? "" : "\"") << " is marked for workspace \"" << o.workspace
        << "\", " << o.why << "; left untouched\n";
  }
  for (const auto& line : report.pruned) out << "deleted: " << line << '\n';
  if (report.prune_blocked) {
    out << "not deleted: " << report.prune_blocked->reason << ": " << report.prune_blocked->message
        << '\n';
  }
  const auto errors = std::count_if(diagnostics.begin(), diagnostics.end(), [](const auto& d) {
    return d.severity == manifests::Diagnostic::Severity::kError;
  });
  out << report.workspaces.size() << " workspaces, " << ready << " ready, " << errors
      << " invalid documents, " << report.orphans.size() << " orphans\n";
}

const char* RuntimePhase(const SharedRuntimeResult& runtime) {
  if (runtime.reason == "DryRun") return ToString(Phase::kProgressing);
  if (runtime.ready) return ToString(Phase::kReady);
  return ToString(*runtime.failure_kind == FailureKind::kStalled ? Phase::kStalled
                                                                  : Phase::kDegraded);
}

void WriteSharedRuntimes(std::ostream& out, const SharedRuntimeReport& report, bool show_plans) {
  std::size_t name_width = 7, phase_width = 5, reason_width = 6;
  for (const auto& r : report.runtimes) {
    name_width = std::max(name_width, r.product.size());
    phase_width = std::max(phase_width, std::string(RuntimePhase(r)).size());
    reason_width = std::max(reason_width, r.reason.size());
  }
  auto pad = [&out](const std::string& text, std::size_t width) {
    out << text << std::string(width - text.size() + 2, ' ');
  };
  if (!report.runtimes.empty()) {
    pad("RUNTIME", name_width);
    pad("PHASE", phase_width);
    pad("REASON", reason_width);
    out << "MESSAGE\n";
  }
  int ready = 0;
  for (const auto& r : report.runtimes) {
    if (r.ready) ++ready;
    pad(r.product, name_width);
    pad(RuntimePhase(r), phase_width);
    pad(r.reason, reason_width);
    out << r.message << '\n';
    if (!show_plans) continue;
    for (const auto& line : r.plan) out << "    + " << line << '\n';
  }
  for (const auto& line : report.pruned) out << "deleted: " << line << '\n';
  if (report.prune_failed) {
    out << "not deleted: " << report.prune_failed->reason << ": " << report.prune_failed->message
        << '\n';
  }
  out << report.runtimes.size() << " shared runtimes, " << ready << " ready\n";
}

}  // namespace

// They print through the process's scrubber: a message can quote what a server or a file said,
// and the report is the `--once` run's output (docs/architecture.md#secrets). Scrubbed whole,
// after the columns are laid out: MESSAGE is the last column, so a redaction moves nothing.
void PrintDiagnostics(std::ostream& out, const std::vector<manifests::Diagnostic>& diagnostics) {
  std::ostringstream text;
  WriteDiagnostics(text, diagnostics);
  out << ScrubProcessSecrets(text.str());
}

void PrintReport(std::ostream& out, const std::vector<manifests::Diagnostic>& diagnostics,
                 const PassReport& report, bool show_plans) {
  std::ostringstream text;
  WriteReport(text, diagnostics, report, show_plans);
  out << ScrubProcessSecrets(text.str());
}

void PrintSharedRuntimes(std::ostream& out, const SharedRuntimeReport& report, bool show_plans) {
  if (report.runtimes.empty() && report.pruned.empty() && !report.prune_failed) return;
  std::ostringstream text;
  WriteSharedRuntimes(text, report, show_plans);
  out << ScrubProcessSecrets(text.str());
}

}  // namespace tmaster::controller
