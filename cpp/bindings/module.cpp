// The compiled core of chainrule. Each concept registers itself from its own file.
#include <pybind11/pybind11.h>

#include "network_binding.hpp"
#include "runtime_binding.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "chainrule's C++ core: dense layers, costs, backpropagation and optimizers";
  chainrule::bindings::register_network<float>(m, "Network32");
  chainrule::bindings::register_network<double>(m, "Network64");
  chainrule::bindings::register_runtime(m);
}
