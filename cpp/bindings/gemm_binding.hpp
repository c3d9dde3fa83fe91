#pragma once
// The core's matrix product, exposed so that benchmarks can measure the GEMM that training runs
// (and tests can compare it with numpy): the same kernels, blocks and threads.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "arrays.hpp"
#include "chainrule/gemm.hpp"

namespace chainrule::bindings {

namespace py = pybind11;

// Whether the memory spans of two matrices overlap (the product writes out while reading A, B).
template <class X, class Y>
bool overlaps(const X& x, const Y& y) {
  if (x.size() == 0 || y.size() == 0) return false;
  // row-major, unit inner stride: the last element is (rows − 1)·outerStride + cols − 1 along
  const auto* x0 = reinterpret_cast<const char*>(x.data());
  const auto* y0 = reinterpret_cast<const char*>(y.data());
  const auto* x1 = reinterpret_cast<const char*>(x.data() + (x.rows() - 1) * x.outerStride() +
                                                 x.cols());
  const auto* y1 = reinterpret_cast<const char*>(y.data() + (y.rows() - 1) * y.outerStride() +
                                                 y.cols());
  return x0 < y1 && y0 < x1;
}

template <class T>
void register_gemm(py::module_& m) {
  m.def(
      "matmul",
      [](const py::array& A, const py::array& B, py::array_t<T, py::array::c_style> out) {
        auto a = matrix_view<T>(A, "A", -1);
        auto b = matrix_view<T>(B, "B", -1);
        if (b.rows() != a.cols())
          throw py::value_error("A has " + std::to_string(a.cols()) + " columns but B has " +
                                std::to_string(b.rows()) + " rows");
        if (out.ndim() != 2 || out.shape(0) != a.rows() || out.shape(1) != b.cols())
          throw py::value_error("out must have shape (" + std::to_string(a.rows()) + ", " +
                                std::to_string(b.cols()) + ")");
        MatrixMap<T> c(out.mutable_data(), a.rows(), b.cols());
        if (overlaps(c, a) || overlaps(c, b))
          throw py::value_error("out must not share memory with A or B");
        py::gil_scoped_release release;
        gemm(c, a, b, T(1), false);
      },
      py::arg("A"), py::arg("B"), py::arg("out").noconvert(),
      "out = A·B with the core's GEMM (its kernels, blocking and threads); all three of the "
      "same dtype, out C-contiguous");
}

}  // namespace chainrule::bindings
