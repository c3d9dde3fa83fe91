// Python bindings of Network<T>: validate with the GIL held, then release it for the C++ work.
#pragma once

#include <pybind11/eigen.h>
#include <pybind11/stl.h>

#include "arrays.hpp"
#include "chainrule/network.hpp"

namespace chainrule::bindings {

template <class T>
py::dict stats_to_dict(const TrainStats& s) {
  py::dict d;
  d["loss_sum"] = s.loss_sum;
  d["n_correct"] = s.n_correct;
  d["n_samples"] = s.n_samples;
  d["n_batches"] = s.n_batches;
  d["grad_norm"] = s.grad_norm;
  d["nonfinite_layer"] = s.nonfinite_layer;
  d["nonfinite_loss"] = s.nonfinite_loss;
  return d;
}

template <class T>
OptimizerConfig optimizer_config_from(const std::string& kind, const py::dict& options) {
  OptimizerConfig c;
  c.kind = parse_optimizer(kind);
  for (auto item : options) {
    const auto key = py::cast<std::string>(item.first);
    const py::handle value = item.second;
    if (key == "momentum") c.momentum = py::cast<double>(value);
    else if (key == "dampening") c.dampening = py::cast<double>(value);
    else if (key == "nesterov") c.nesterov = py::cast<bool>(value);
    else if (key == "beta1") c.beta1 = py::cast<double>(value);
    else if (key == "beta2") c.beta2 = py::cast<double>(value);
    else if (key == "eps") c.eps = py::cast<double>(value);
    else if (key == "alpha") c.alpha = py::cast<double>(value);
    else if (key == "centered") c.centered = py::cast<bool>(value);
    else if (key == "lr_decay") c.lr_decay = py::cast<double>(value);
    else if (key == "initial_accumulator_value") c.initial_accumulator_value = py::cast<double>(value);
    else if (key == "weight_decay") c.weight_decay = py::cast<double>(value);
    else throw py::value_error("unknown optimizer option '" + key + "'");
  }
  return c;
}

// Whether X is exactly what predict takes as it is: an ndarray (not a subclass, such as a
// masked array) of T, 2-D, C-contiguous, with n > 0 rows of n_inputs values.
template <class T>
bool is_ready_features(py::handle X, Index n_inputs) {
  const auto& api = py::detail::npy_api::get();
  if (Py_TYPE(X.ptr()) != api.PyArray_Type_) return false;
  const auto a = py::reinterpret_borrow<py::array>(X);
  return a.ndim() == 2 && a.shape(0) > 0 && a.shape(1) == n_inputs &&
         (a.flags() & py::array::c_style) && has_dtype<T>(a);
}

// a of the output layer for each row of x, under the shared side of the parameter lock.
template <class T, class Rows>
py::array_t<T> predict_rows(Network<T>& n, const Rows& x, bool check_finite) {
  py::array_t<T> out({x.rows(), n.n_outputs()});
  MatrixMap<T> out_map(out.mutable_data(), x.rows(), n.n_outputs());
  std::pair<Index, Index> bad{-1, -1};
  {
    py::gil_scoped_release release;
    if (check_finite) bad = first_nonfinite_cell(x);
    if (bad.first < 0) {
      ParamLock::SharedGuard reading(n.param_lock());
      n.predict(x, out_map);
    }
  }
  if (bad.first >= 0)
    throw py::value_error("X contains NaN or infinity (first at row " +
                          std::to_string(bad.first) + ", column " + std::to_string(bad.second) +
                          ")");
  return out;
}

template <class T>
void register_network(py::module_& m, const char* name) {
  using Net = Network<T>;
  // module_local: the per-ISA builds of the core may share a process without clashing.
  py::class_<Net>(m, name, py::module_local())
      .def(py::init([](const std::vector<Index>& sizes, const std::vector<std::string>& acts,
                       const std::string& loss, double leaky_slope) {
             // Parameter counts past 2^62 would overflow Index arithmetic in the constructor.
             double n_params = 0;
             for (std::size_t l = 0; l + 1 < sizes.size(); ++l)
               n_params += double(sizes[l]) * double(sizes[l + 1]) + double(sizes[l + 1]);
             if (n_params > 4.6e18)
               throw py::value_error("the layer sizes give more parameters than can be indexed");
             if (!std::isfinite(leaky_slope))
               throw py::value_error("leaky_slope must be finite");
             std::vector<Activation> parsed;
             for (const auto& a : acts) parsed.push_back(parse_activation(a));
             return std::make_unique<Net>(sizes, parsed, parse_loss(loss), leaky_slope);
           }),
           py::arg("sizes"), py::arg("activations"), py::arg("loss"),
           py::arg("leaky_slope") = 0.01)
      .def_property_readonly("sizes", &Net::sizes)
      .def_property_readonly("n_layers", &Net::n_layers)
      .def_property_readonly("n_params", &Net::n_params)
      .def_property_readonly("loss", [](const Net& n) { return loss_name(n.loss()); })
      .def_property_readonly("leaky_slope", [](const Net& n) { return double(n.leaky_slope()); })
      .def_property_readonly("activations",
                             [](const Net& n) {
                               std::vector<std::string> names;
                               for (std::size_t l = 0; l < n.n_layers(); ++l)
                                 names.push_back(activation_name(n.activation(l)));
                               return names;
                             })
      .def_property_readonly("dtype", [](const Net&) { return py::dtype::of<T>(); })
      // Views into the flat buffers: [W0, b0, W1, b1, ...].
      .def_property_readonly("params",
                             [](py::object self) {
                               auto& n = self.cast<Net&>();
                               return view_of<T>(n.params(), {n.n_params()}, self);
                             })
      .def_property_readonly("grads",
                             [](py::object self) {
                               auto& n = self.cast<Net&>();
                               return view_of<T>(n.grads(), {n.n_params()}, self);
                             })
      .def(
          "layer_views",
          [](py::object self, std::size_t l) {
            auto& n = self.cast<Net&>();
            if (l >= n.n_layers()) throw py::index_error("layer index out of range");
            const py::ssize_t in = n.sizes()[l], out = n.sizes()[l + 1];
            return py::make_tuple(view_of<T>(n.params() + n.w_offset(l), {in, out}, self),
                                  view_of<T>(n.params() + n.b_offset(l), {out}, self),
                                  view_of<T>(n.grads() + n.w_offset(l), {in, out}, self),
                                  view_of<T>(n.grads() + n.b_offset(l), {out}, self));
          },
          py::arg("layer"), "(W, b, dW, db) of one layer as numpy views")
      .def_property(
          "dropout", [](const Net& n) { return n.dropout(); }, &Net::set_dropout)
      .def_property(
          "rng_state", [](Net& n) { return n.rng().state(); },
          [](Net& n, std::uint64_t s) { n.rng().set_state(s); })
      .def(
          "set_optimizer",
          [](Net& n, const std::string& kind, const py::dict& options) {
            n.set_optimizer(optimizer_config_from<T>(kind, options));
          },
          py::arg("kind"), py::arg("options") = py::dict())
      .def_property_readonly("optimizer_name",
                             [](Net& n) { return optimizer_name(n.optimizer().config().kind); })
      .def_property(
          "optimizer_step", [](Net& n) { return n.optimizer().step_count(); },
          [](Net& n, std::int64_t t) {
            if (t < 0) throw py::value_error("optimizer_step must be >= 0");
            n.optimizer().set_step_count(t);
          })
      .def(
          "optimizer_state",
          [](py::object self) {
            auto& opt = self.cast<Net&>().optimizer();
            py::list states;
            for (auto* s : {&opt.state1(), &opt.state2(), &opt.state3()})
              states.append(view_of<T>(s->data(), {s->size()}, self));
            return states;
          },
          "the optimizer's state buffers (momentum/first moment, second moment, centred mean) "
          "as views; unused ones are empty")
      .def("zero_grad", &Net::zero_grad)
      .def(
          "accumulate_gradients",
          [](Net& n, const py::array& X, const py::array& y, double scale, bool training,
             bool input_gradient) {
            auto x = matrix_view<T>(X, "X", n.n_inputs());
            auto targets = targets_view<T>(y, x.rows(), n.n_outputs(),
                                           n.loss() == Loss::cross_entropy);
            if (x.rows() == 0) throw py::value_error("X has no rows");
            Matrix<T> dx(input_gradient ? x.rows() : 0, n.n_inputs());
            MatrixRef<T> dx_ref(dx);
            LossResult<T> r;
            {
              py::gil_scoped_release release;
              Workspace<T> ws;
              r = n.accumulate_gradients(x, targets, ws, T(scale), training,
                                         input_gradient ? &dx_ref : nullptr);
            }
            py::object dx_out = py::none();
            if (input_gradient) dx_out = py::cast(dx);
            return py::make_tuple(double(r.loss_sum), r.n_correct, dx_out);
          },
          py::arg("X"), py::arg("y"), py::arg("scale"), py::arg("training") = false,
          py::arg("input_gradient") = false,
          "grads += scale·∂(Σ_k C_k)/∂params; returns (Σ_k C_k, n_correct, ∂C_k/∂x or None)")
      .def(
          "apply_gradients",
          [](Net& n, double lr, double l2, double max_grad_norm) {
            if (!(lr > 0) || !std::isfinite(lr))
              throw py::value_error("the learning rate must be positive and finite");
            StepOptions options{lr, l2, max_grad_norm};
            TrainStats stats;
            double norm = 0;
            bool applied = false;
            {
              py::gil_scoped_release release;
              applied = n.apply_gradients(options, stats, &norm);
            }
            py::dict d;
            d["applied"] = applied;
            d["grad_norm"] = norm;
            d["nonfinite_layer"] = stats.nonfinite_layer;
            return d;
          },
          py::arg("lr"), py::arg("l2") = 0.0, py::arg("max_grad_norm") = 0.0,
          "the update half of train_step on the current gradient buffer: grads += l2·W, "
          "global-norm check and clip, one optimizer step; returns {applied, grad_norm "
          "(before clipping), nonfinite_layer}. A non-finite gradient applies nothing.")
      .def(
          "trace",
          [](Net& n, const py::array& X, const py::array& y) {
            auto x = matrix_view<T>(X, "X", n.n_inputs());
            auto targets = targets_view<T>(y, x.rows(), n.n_outputs(),
                                           n.loss() == Loss::cross_entropy);
            if (x.rows() == 0) throw py::value_error("X has no rows");
            Workspace<T> ws;
            {
              py::gil_scoped_release release;
              ParamLock::SharedGuard reading(n.param_lock());  // not while fit updates W
              n.forward(x, ws, false);
              n.output_delta(targets, ws, x.rows());
              n.backward_deltas(x.rows(), ws);
            }
            py::list layers;
            for (std::size_t l = 0; l < n.n_layers(); ++l) {
              py::dict d;
              d["z"] = Matrix<T>(ws.z[l].topRows(x.rows()));
              d["a"] = Matrix<T>(ws.a[l].topRows(x.rows()));
              d["delta"] = Matrix<T>(ws.delta[l].topRows(x.rows()));
              layers.append(d);
            }
            return layers;
          },
          py::arg("X"), py::arg("y"),
          "forward and backward without touching the gradients; per layer z, a and δ = ∂C_k/∂z")
      .def(
          "train_batches",
          [](Net& n, const py::array& X, const py::array& y, py::object order,
             Index batch_size, Index first_batch, Index n_batches, py::object lr_arg, double l2,
             double max_grad_norm) {
            auto x = matrix_view<T>(X, "X", n.n_inputs());
            auto targets = targets_view<T>(y, x.rows(), n.n_outputs(),
                                           n.loss() == Loss::cross_entropy);
            if (batch_size < 1) throw py::value_error("batch_size must be >= 1");
            if (first_batch < 0 || n_batches < 0)
              throw py::value_error("batch range must be non-negative");
            // lr: one value for every batch, or a sequence of one value per batch (schedules
            // that change the learning rate at each step).
            // Both arrive as numpy arrays (converted here at most once, never element by
            // element through Python objects) and are read in place.
            using LrArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
            using OrderArray =
                py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
            LrArray lr_values;
            if (py::isinstance<py::float_>(lr_arg) || py::isinstance<py::int_>(lr_arg)) {
              lr_values = LrArray(1);
              lr_values.mutable_at(0) = py::cast<double>(lr_arg);
            } else {
              lr_values = LrArray::ensure(lr_arg);
              if (!lr_values || lr_values.ndim() != 1 || Index(lr_values.size()) != n_batches)
                throw py::value_error("lr must be a number or hold one value per batch");
            }
            const double* lrs = lr_values.data();
            const Index n_lrs = lr_values.size();
            for (Index k = 0; k < n_lrs; ++k)
              if (!(lrs[k] > 0) || !std::isfinite(lrs[k]))
                throw py::value_error("the learning rate must be positive and finite");
            OrderArray order_values;
            const std::int64_t* idx = nullptr;
            if (!order.is_none()) {
              order_values = OrderArray::ensure(order);
              if (!order_values || order_values.ndim() != 1 ||
                  Index(order_values.size()) != x.rows())
                throw py::value_error("order must hold one index per sample");
              idx = order_values.data();
              for (Index k = 0; k < x.rows(); ++k)
                if (idx[k] < 0 || idx[k] >= x.rows())
                  throw py::value_error("order index out of range");
            }
            // Keep k·batch_size far from Index overflow: no batch is larger than X, and batches
            // past the end of X are empty anyway.
            batch_size = std::min<Index>(batch_size, std::max<Index>(x.rows(), 1));
            first_batch = std::min<Index>(first_batch, x.rows());
            n_batches = std::min<Index>(n_batches, x.rows());
            StepOptions options{lrs[0], l2, max_grad_norm};
            TrainStats stats;
            {
              py::gil_scoped_release release;
              if (n_lrs == 1) {
                stats = n.train_batches(x, targets, idx, batch_size, first_batch, n_batches,
                                        options);
              } else {
                for (Index k = 0; k < n_batches; ++k) {
                  options.lr = lrs[k];
                  const TrainStats s =
                      n.train_batches(x, targets, idx, batch_size, first_batch + k, 1, options);
                  stats.loss_sum += s.loss_sum;
                  stats.n_correct += s.n_correct;
                  stats.n_samples += s.n_samples;
                  stats.n_batches += s.n_batches;
                  if (s.n_batches) stats.grad_norm = s.grad_norm;
                  stats.nonfinite_layer = s.nonfinite_layer;
                  stats.nonfinite_loss = s.nonfinite_loss;
                  if (s.nonfinite_loss || s.nonfinite_layer >= 0 || s.n_batches == 0) break;
                }
              }
            }
            return stats_to_dict<T>(stats);
          },
          py::arg("X"), py::arg("y"), py::arg("order"), py::arg("batch_size"),
          py::arg("first_batch"), py::arg("n_batches"), py::arg("lr"), py::arg("l2") = 0.0,
          py::arg("max_grad_norm") = 0.0,
          "train on batches [first_batch, first_batch + n_batches) of the epoch ordered by "
          "`order` (None: as stored); one optimizer step per batch; lr is a number or one value "
          "per batch")
      .def(
          "evaluate",
          [](Net& n, const py::array& X, const py::array& y) {
            auto x = matrix_view<T>(X, "X", n.n_inputs());
            auto targets = targets_view<T>(y, x.rows(), n.n_outputs(),
                                           n.loss() == Loss::cross_entropy);
            LossResult<T> r;
            {
              py::gil_scoped_release release;
              ParamLock::SharedGuard reading(n.param_lock());
              r = n.evaluate(x, targets);
            }
            return py::make_tuple(double(r.loss_sum), r.n_correct);
          },
          py::arg("X"), py::arg("y"), "(Σ_k C_k, n_correct) over X, forward only")
      .def(
          "predict",
          [](Net& n, const py::array& X, bool check_finite) {
            return predict_rows(n, matrix_view<T>(X, "X", n.n_inputs()), check_finite);
          },
          py::arg("X"), py::arg("check_finite") = false,
          "the output layer's activations a for each row of X; with check_finite, a NaN or "
          "infinity in X raises ValueError naming its row and column")
      .def(
          "predict_if_ready",
          [](Net& n, py::handle X) -> py::object {
            if (!is_ready_features<T>(X, n.n_inputs())) return py::none();
            return predict_rows(n, matrix_view<T>(py::reinterpret_borrow<py::array>(X), "X",
                                                  n.n_inputs()),
                                /*check_finite=*/true);
          },
          py::arg("X"),
          "predict(X, check_finite=True) if X is already what the core takes, a C-contiguous "
          "(n > 0, n_inputs) ndarray of the network's dtype, else None: inference's fast path, "
          "without a Python-level check")
      .def(
          "lock_params",
          [](Net& n, bool exclusive) {
            // Another thread may hold the lock and need the GIL to finish and let go of it.
            py::gil_scoped_release release;
            if (exclusive) n.param_lock().lock();
            else n.param_lock().lock_shared();
          },
          py::arg("exclusive"), "wait for the exclusive (training) or shared (reading) side")
      .def(
          "unlock_params",
          [](Net& n, bool exclusive) {
            if (exclusive) n.param_lock().unlock();
            else n.param_lock().unlock_shared();
          },
          py::arg("exclusive"), "let go of the side taken by lock_params");
}

}  // namespace chainrule::bindings
