#pragma once
// Runtime settings (threads) and the names the core understands.

#include <pybind11/pybind11.h>

#include "chainrule/activation.hpp"
#include "chainrule/loss.hpp"
#include "chainrule/optimizer.hpp"
#include "chainrule/threads.hpp"

namespace chainrule::bindings {

namespace py = pybind11;

inline void register_runtime(py::module_& m) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "threads used by the matrix products of training and inference");
  m.def("get_num_threads", &get_num_threads);
  m.def("has_openmp", &has_openmp);
  m.attr("ACTIVATIONS") = py::make_tuple("identity", "sigmoid", "tanh", "relu", "leaky_relu",
                                         "softmax");
  m.attr("LOSSES") = py::make_tuple("mse", "cross_entropy", "binary_cross_entropy");
  m.attr("OPTIMIZERS") = py::make_tuple("sgd", "adam", "adamw", "rmsprop", "adagrad");
}

}  // namespace chainrule::bindings
