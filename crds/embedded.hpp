#pragma once

#include <string_view>

namespace tmaster::crds {

/// The text of `crds/workspaces.yaml` as it was when the binary was built: the
/// apiextensions.k8s.io/v1 CustomResourceDefinition of kind Workspace.
std::string_view WorkspacesCrd();

/// The text of `crds/products.yaml` as it was when the binary was built: the
/// apiextensions.k8s.io/v1 CustomResourceDefinition of kind Product.
std::string_view ProductsCrd();

}  // namespace tmaster::crds
