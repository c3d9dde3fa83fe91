// Turning numpy arrays into Eigen maps without copies, or refusing them with a clear error.
// The Python layer converts inputs once, deliberately; anything that reaches here must already
// have the network's dtype and row-major rows.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

#include "chainrule/finite.hpp"
#include "chainrule/loss.hpp"
#include "chainrule/types.hpp"

namespace chainrule::bindings {

namespace py = pybind11;

template <class T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

inline std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// Whether a holds values of T. Equivalence, not identity of the dtype objects: an unpickled
// array's dtype is an equal but separate object.
template <class T>
bool has_dtype(const py::array& a) {
  return py::detail::npy_api::get().PyArray_EquivTypes_(a.dtype().ptr(), py::dtype::of<T>().ptr());
}

// A (rows, cols) map onto a 2-D array of T whose rows are contiguous (any row stride).
template <class T>
Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>> matrix_view(const py::array& a,
                                                                 const char* name, Index cols) {
  if (!has_dtype<T>(a))
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name<T>() + ", got " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != 2)
    throw py::value_error(std::string(name) + " must be 2-D, got shape " + shape_of(a));
  if (cols >= 0 && a.shape(1) != cols)
    throw py::value_error(std::string(name) + " has " + std::to_string(a.shape(1)) +
                          " columns, the network expects " + std::to_string(cols));
  const auto item = static_cast<py::ssize_t>(sizeof(T));
  if (a.shape(0) > 0 && a.shape(1) > 1 && a.strides(1) != item)
    throw py::value_error(std::string(name) + " must have contiguous rows (C order)");
  if (a.shape(0) > 1 && (a.strides(0) % item != 0 || a.strides(0) < a.shape(1) * item))
    throw py::value_error(std::string(name) + " has a row stride that is not a whole row");
  const Index row_stride = a.shape(0) > 1 ? a.strides(0) / item : a.shape(1);
  return {static_cast<const T*>(a.data()), a.shape(0), a.shape(1),
          Eigen::OuterStride<>(row_stride)};
}

// (row, column) of the first NaN or infinity in x, or (-1, -1) if every value is finite.
template <class Xpr>
std::pair<Index, Index> first_nonfinite_cell(const Xpr& x) {
  for (Index r = 0; r < x.rows(); ++r) {
    const Index c = chainrule::first_nonfinite(x.row(r).data(), x.cols());
    if (c >= 0) return {r, c};
  }
  return {-1, -1};
}

// Targets: int32 labels of shape (n,) in [0, n_out), or a (n, n_out) array of T.
template <class T>
Targets<T> targets_view(const py::array& y, Index n, Index n_out, bool labels_allowed) {
  Targets<T> t;
  if (y.ndim() == 1 && has_dtype<std::int32_t>(y)) {
    if (!labels_allowed)
      throw py::value_error("integer labels need the cross_entropy loss; pass a 2-D float array");
    if (y.shape(0) != n)
      throw py::value_error("y has " + std::to_string(y.shape(0)) + " labels for " +
                            std::to_string(n) + " samples");
    if (y.strides(0) != sizeof(std::int32_t)) throw py::value_error("labels must be contiguous");
    t.labels = static_cast<const std::int32_t*>(y.data());
    for (Index i = 0; i < n; ++i)
      if (t.labels[i] < 0 || t.labels[i] >= n_out)
        throw py::value_error("label " + std::to_string(t.labels[i]) + " at index " +
                              std::to_string(i) + " is outside [0, " + std::to_string(n_out) +
                              ")");
    return t;
  }
  auto values = matrix_view<T>(y, "y", n_out);
  if (values.rows() != n)
    throw py::value_error("y has " + std::to_string(values.rows()) + " rows for " +
                          std::to_string(n) + " samples");
  t.values = values.data();
  t.stride = values.outerStride();
  return t;
}

// A numpy view of memory owned by `owner`, which the view keeps alive.
template <class T>
py::array_t<T> view_of(T* data, std::vector<py::ssize_t> shape, py::handle owner) {
  std::vector<py::ssize_t> strides(shape.size(), sizeof(T));
  for (std::size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
  return py::array_t<T>(shape, strides, data, owner);
}

}  // namespace chainrule::bindings
