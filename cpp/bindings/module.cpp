// The compiled core of chainrule. Each concept registers itself from its own file.
#include <pybind11/pybind11.h>

#include "gemm_binding.hpp"
#include "network_binding.hpp"
#include "runtime_binding.hpp"
#include "validation_binding.hpp"

// The same sources are compiled once per instruction-set level, each as its own module
// (_core, _core_v3, ...): CMake sets the module's name and the level it was compiled for.
#ifndef CHAINRULE_MODULE_NAME
#define CHAINRULE_MODULE_NAME _core
#endif
#ifndef CHAINRULE_ISA_NAME
#define CHAINRULE_ISA_NAME "baseline"
#endif

PYBIND11_MODULE(CHAINRULE_MODULE_NAME, m) {
  m.doc() = "chainrule's C++ core: dense layers, costs, backpropagation and optimizers";
  m.attr("ISA") = CHAINRULE_ISA_NAME;
  chainrule::bindings::register_network<float>(m, "Network32");
  chainrule::bindings::register_network<double>(m, "Network64");
  chainrule::bindings::register_gemm<float>(m);
  chainrule::bindings::register_gemm<double>(m);
  chainrule::bindings::register_runtime(m);
  chainrule::bindings::register_validation(m);
}
