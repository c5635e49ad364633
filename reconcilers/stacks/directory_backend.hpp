#pragma once

#include <filesystem>
#include <memory>

#include "reconcilers/stacks/gateway.hpp"

namespace tmaster::stacks {

/// The `directory` stack backend (docs/stacks.md#directory-backend), for machines without
/// Portainer. Each stack is a folder `<dir>/<workspace>/` (mode 0700) holding
///  - `docker-compose.yml`: the rendered file (mode 0600);
///  - `stack.env`: the Env as `NAME=VALUE` lines (mode 0600 from creation: it holds the
///    database password);
///  - `stack.meta`: `id=`, `endpoint=`, `name=`, `status=` lines (1 active, 2 stopped).
/// Every file is replaced atomically (temporary file in the same folder, fsync, rename); a new
/// stack is assembled in a temporary folder and renamed into place, so a crash never leaves a
/// half-written stack. Ids are stable (kept in `stack.meta`) and never reused (`<dir>/.stack-ids`
/// holds the last one). A stack's UpdateDate is the modification time of its
/// `docker-compose.yml` in nanoseconds, so a hand edit of the file is seen as drift.
///
/// List(endpoint) returns the folders whose meta names that endpoint; Start/Stop flip the
/// status; Delete removes the folder (deleting a stack that is already gone succeeds). A create
/// whose folder already exists adopts it when its Env carries the workspace's marker, and is
/// Stalled `StackConflict` otherwise. Workspace names become folder names: anything empty,
/// starting with `.`, or holding `/`, `\` or `..` is Stalled `InvalidStackName`. Inspect
/// says standalone for every endpoint. The backend
/// starts no containers: run `docker compose` in a folder to bring its stack up
/// (docs/stacks.md). Thread-safe (one lock).
std::unique_ptr<StackGateway> MakeDirectoryBackend(std::filesystem::path dir);

}  // namespace tmaster::stacks
