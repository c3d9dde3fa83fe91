// Input checks that numpy would make in more passes over memory.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "chainrule/finite.hpp"

namespace chainrule::bindings {

namespace py = pybind11;

inline void register_validation(py::module_& m) {
  m.def(
      "first_nonfinite",
      [](const py::array& a) -> Index {
        if (!(a.flags() & py::array::c_style))
          throw py::value_error("first_nonfinite needs a C-contiguous array");
        const Index n = a.size();
        if (has_dtype<float>(a)) {
          const auto* data = static_cast<const float*>(a.data());
          py::gil_scoped_release release;
          return chainrule::first_nonfinite(data, n);
        }
        if (has_dtype<double>(a)) {
          const auto* data = static_cast<const double*>(a.data());
          py::gil_scoped_release release;
          return chainrule::first_nonfinite(data, n);
        }
        throw py::type_error("first_nonfinite takes float32 or float64, got " +
                             std::string(py::str(a.dtype())));
      },
      py::arg("a"),
      "the flat index of the first NaN or infinity in a C-contiguous float32 or float64 "
      "array, or -1; one pass, with the GIL released");
}

}  // namespace chainrule::bindings
