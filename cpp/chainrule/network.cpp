// The network's passes, compiled once here for both precisions. The header declares them and
// defines only the accessors, so a file that includes it (the bindings, each C++ test) calls
// these instead of compiling the whole network again: member functions defined in the class
// are inline, and GCC instantiates them for inlining despite an extern template declaration.
#include "network.hpp"

namespace chainrule {

template <class T>
void Network<T>::forward(const ConstMatrixRef<T>& x, Workspace<T>& ws, bool training) {
  const Index B = x.rows();
  reserve(ws, B);
  for (std::size_t l = 0; l < n_layers(); ++l) {
    dense_forward<T>(layer_input(x, ws, l, B), W(l), b(l), activations_[l], leaky_slope_,
                     ws.z[l].topRows(B), ws.a[l].topRows(B));
    ws.dropout_active[l] = training && dropout_[l] > 0;
    if (ws.dropout_active[l]) apply_dropout(ws, l, B);
  }
}

template <class T>
LossResult<T> Network<T>::output_delta(const Targets<T>& y, Workspace<T>& ws, Index B) {
  const std::size_t L = n_layers() - 1;
  return loss_forward_backward<T>(loss_, activations_[L], leaky_slope_, ws.z[L].topRows(B),
                                  ws.a[L].topRows(B), y, ws.delta[L].topRows(B));
}

template <class T>
void Network<T>::backward(const ConstMatrixRef<T>& x, Workspace<T>& ws, T scale, MatrixRef<T>* dx,
                          bool accumulate, double* layer_sum_sq) {
  const Index B = x.rows();
  for (std::size_t l = n_layers(); l-- > 0;) {
    const ConstMatrixRef<T> delta = ws.delta[l].topRows(B);
    auto dW_l = dW(l);
    auto db_l = db(l);
    T sum_sq = 0;
    const bool known = dense_backward_params<T>(layer_input(x, ws, l, B), delta, scale, dW_l,
                                                db_l, accumulate, layer_sum_sq ? &sum_sq : nullptr);
    if (layer_sum_sq != nullptr) layer_sum_sq[l] = known ? double(sum_sq) : -1.0;
    propagate_delta(l, B, ws, dx);
  }
}

template <class T>
void Network<T>::backward_deltas(Index B, Workspace<T>& ws, MatrixRef<T>* dx) {
  for (std::size_t l = n_layers(); l-- > 0;) propagate_delta(l, B, ws, dx);
}

template <class T>
void Network<T>::propagate_delta(std::size_t l, Index B, Workspace<T>& ws, MatrixRef<T>* dx) {
  const ConstMatrixRef<T> delta = ws.delta[l].topRows(B);
  if (l > 0) {
    auto delta_prev = ws.delta[l - 1].topRows(B);
    dense_backward_input<T>(delta, W(l), delta_prev);
    if (ws.dropout_active[l - 1]) delta_prev.array() *= ws.mask[l - 1].topRows(B).array();
    activation_backward<T>(activations_[l - 1], leaky_slope_, ws.z[l - 1].topRows(B),
                           ws.a[l - 1].topRows(B), delta_prev);
  } else if (dx != nullptr) {
    dense_backward_input<T>(delta, W(0), *dx);
  }
}

template <class T>
LossResult<T> Network<T>::accumulate_gradients(const ConstMatrixRef<T>& x, const Targets<T>& y,
                                               Workspace<T>& ws, T scale, bool training,
                                               MatrixRef<T>* dx) {
  forward(x, ws, training);
  const LossResult<T> result = output_delta(y, ws, x.rows());
  backward(x, ws, scale, dx);
  return result;
}

template <class T>
void Network<T>::train_step(const ConstMatrixRef<T>& x, const Targets<T>& y,
                            const StepOptions& options, TrainStats& stats) {
  const Index B = x.rows();
  forward(x, train_ws_, true);
  const LossResult<T> result = output_delta(y, train_ws_, B);
  backward(x, train_ws_, T(1) / T(B), nullptr, /*accumulate=*/false, layer_sum_sq_.data());
  if (!std::isfinite(double(result.loss_sum))) stats.nonfinite_loss = true;
  double norm = 0;
  // Coupled L2 changes the gradient after backward, so its squares are taken afresh.
  const double* known_sum_sq = options.l2 > 0 ? nullptr : layer_sum_sq_.data();
  if (!apply_gradients(options, stats, &norm, known_sum_sq)) return;
  stats.loss_sum += double(result.loss_sum);
  stats.n_correct += result.n_correct;
  stats.n_samples += B;
  stats.n_batches += 1;
  stats.grad_norm = norm;
}

template <class T>
bool Network<T>::apply_gradients(const StepOptions& options, TrainStats& stats, double* norm,
                                 const double* known_sum_sq) {
  if (options.l2 > 0)
    for (std::size_t l = 0; l < n_layers(); ++l) dW(l) += T(options.l2) * W(l);
  const double g = grad_norm_checked(stats, known_sum_sq);
  if (norm != nullptr) *norm = g;
  if (stats.nonfinite_loss || stats.nonfinite_layer >= 0) return false;
  if (options.max_grad_norm > 0 && g > options.max_grad_norm)
    grads_ *= T(options.max_grad_norm / (g + 1e-6));
  optimizer_->step(params_.data(), grads_.data(), n_params(), T(options.lr));
  return true;
}

template <class T>
TrainStats Network<T>::train_batches(const ConstMatrixRef<T>& X, const Targets<T>& Y,
                                     const std::int64_t* order, Index batch_size, Index first_batch,
                                     Index n_batches, const StepOptions& options) {
  TrainStats stats;
  const Index n = X.rows();
  reserve(train_ws_, std::min(batch_size, n));
  Workspace<T>& ws = train_ws_;
  for (Index k = first_batch; k < first_batch + n_batches; ++k) {
    const Index start = k * batch_size;
    if (start >= n) break;
    const Index B = std::min(batch_size, n - start);
    Targets<T> batch_y;
    if (order == nullptr) {
      batch_y = Y;
      if (Y.labels) batch_y.labels = Y.labels + start;
      if (Y.values) batch_y.values = Y.values + start * Y.stride;
      train_step(X.middleRows(start, B), batch_y, options, stats);
    } else {
      gather_rows(X, order + start, B, ws.x);
      if (Y.labels) {
        for (Index i = 0; i < B; ++i) ws.labels[i] = Y.labels[order[start + i]];
        batch_y.labels = ws.labels.data();
      } else {
        for (Index i = 0; i < B; ++i) ws.y.row(i) = Y.row(order[start + i], n_outputs());
        batch_y.values = ws.y.data();
        batch_y.stride = n_outputs();
      }
      train_step(ws.x.topRows(B), batch_y, options, stats);
    }
    if (stats.nonfinite_loss || stats.nonfinite_layer >= 0) break;
  }
  return stats;
}

template <class T>
void Network<T>::gather_rows(const ConstMatrixRef<T>& X, const std::int64_t* rows, Index count,
                             Matrix<T>& out) {
  const int threads = count * X.cols() >= kMinParallelCopy ? get_num_threads() : 1;
  parallel_for(count, threads, [&](Index i) { out.row(i) = X.row(rows[i]); });
}

template <class T>
void Network<T>::predict(const ConstMatrixRef<T>& X, MatrixRef<T> out) {
  auto lease = inference_workspaces_.borrow();
  Workspace<T>& ws = *lease;
  const std::size_t L = n_layers() - 1;
  for (Index start = 0; start < X.rows(); start += kInferenceChunk) {
    const Index B = std::min(kInferenceChunk, X.rows() - start);
    forward_inference(X.middleRows(start, B), ws, /*output_z=*/false);
    out.middleRows(start, B) = ws.a[L].topRows(B);
  }
}

template <class T>
LossResult<T> Network<T>::evaluate(const ConstMatrixRef<T>& X, const Targets<T>& Y) {
  auto lease = inference_workspaces_.borrow();
  Workspace<T>& ws = *lease;
  LossResult<T> total;
  for (Index start = 0; start < X.rows(); start += kInferenceChunk) {
    const Index B = std::min(kInferenceChunk, X.rows() - start);
    Targets<T> y = Y;
    if (Y.labels) y.labels = Y.labels + start;
    if (Y.values) y.values = Y.values + start * Y.stride;
    forward_inference(X.middleRows(start, B), ws, /*output_z=*/true);
    const LossResult<T> part = output_delta(y, ws, B);
    total.loss_sum += part.loss_sum;
    total.n_correct += part.n_correct;
  }
  return total;
}

template <class T>
double Network<T>::grad_norm_checked(TrainStats& stats, const double* known_sum_sq) {
  double total = 0;
  for (std::size_t l = 0; l < n_layers(); ++l) {
    // dW(l) and db(l) are one contiguous range of the gradient buffer.
    const Index count = sizes_[l] * sizes_[l + 1] + sizes_[l + 1];
    const bool known = known_sum_sq != nullptr && !(known_sum_sq[l] < 0);
    const double layer = known ? known_sum_sq[l]
                               : double(sum_of_squares(grads_.data() + w_offset_[l], count));
    if (!std::isfinite(layer) && stats.nonfinite_layer < 0) stats.nonfinite_layer = int(l);
    total += layer;
  }
  return std::sqrt(total);
}

template <class T>
void Network<T>::reserve(Workspace<T>& ws, Index B) const {
  if (ws.capacity >= B && ws.z.size() == n_layers()) return;
  const std::size_t L = n_layers();
  ws.capacity = B;
  ws.z.resize(L), ws.a.resize(L), ws.dropped.resize(L), ws.mask.resize(L), ws.delta.resize(L);
  ws.dropout_active.assign(L, false);
  for (std::size_t l = 0; l < L; ++l) {
    const Index out = sizes_[l + 1];
    ws.z[l].resize(B, out);
    ws.a[l].resize(B, out);
    ws.delta[l].resize(B, out);
    if (dropout_[l] > 0) ws.dropped[l].resize(B, out), ws.mask[l].resize(B, out);
  }
  ws.x.resize(B, n_inputs());
  ws.y.resize(B, n_outputs());
  ws.labels.resize(B);
}

template <class T>
void Network<T>::forward_inference(const ConstMatrixRef<T>& x, Workspace<T>& ws, bool output_z) {
  const Index B = x.rows();
  reserve_inference(ws, B);
  const std::size_t L = n_layers() - 1;
  for (std::size_t l = 0; l <= L; ++l) {
    ws.dropout_active[l] = false;
    auto a = ws.a[l].topRows(B);
    auto z = output_z && l == L ? ws.z[l].topRows(B) : a;
    const ConstMatrixRef<T> a_prev = layer_input(x, ws, l, B);
    if (B == 1 && one_row_forward_fits<T>(sizes_[l], sizes_[l + 1])) {
      one_row_forward<T>(a_prev.data(), W(l), b(l).data(), z.data(), ws.one_row_scratch.data(),
                         ws.one_row_backwards);
      activation_forward<T>(activations_[l], leaky_slope_, z, a);
    } else {
      dense_forward<T>(a_prev, W(l), b(l), activations_[l], leaky_slope_, z, a);
    }
  }
  ws.one_row_backwards = !ws.one_row_backwards;
}

template <class T>
void Network<T>::reserve_inference(Workspace<T>& ws, Index B) const {
  const std::size_t L = n_layers();
  if (ws.capacity >= B && ws.a.size() == L) return;
  ws.capacity = B;
  ws.z.resize(L), ws.a.resize(L), ws.dropped.resize(L), ws.mask.resize(L), ws.delta.resize(L);
  ws.dropout_active.assign(L, false);
  for (std::size_t l = 0; l < L; ++l) ws.a[l].resize(B, sizes_[l + 1]);
  ws.z[L - 1].resize(B, n_outputs());
  ws.delta[L - 1].resize(B, n_outputs());
  Index scratch = 0;
  for (std::size_t l = 0; l < L; ++l)
    if (one_row_forward_fits<T>(sizes_[l], sizes_[l + 1]))
      scratch = std::max(scratch, one_row_scratch_size(sizes_[l], sizes_[l + 1]));
  ws.one_row_scratch.resize(std::size_t(scratch));
}

template <class T>
void Network<T>::apply_dropout(Workspace<T>& ws, std::size_t l, Index B) {
  if (ws.mask[l].rows() < B) {  // dropout switched on after the workspace was sized
    ws.mask[l].resize(ws.capacity, sizes_[l + 1]);
    ws.dropped[l].resize(ws.capacity, sizes_[l + 1]);
  }
  const double p = dropout_[l];
  const T keep_scale = T(1 / (1 - p));
  auto mask = ws.mask[l].topRows(B);
  for (Index r = 0; r < B; ++r) rng_.keep_mask(&mask(r, 0), mask.cols(), p, keep_scale);
  ws.dropped[l].topRows(B) = ws.a[l].topRows(B).cwiseProduct(mask);
}

// The kernels the headers declare extern (each header says so), then the network.
CHAINRULE_ACTIVATION_INSTANCES(template, float)
CHAINRULE_ACTIVATION_INSTANCES(template, double)
CHAINRULE_LOSS_INSTANCES(template, float)
CHAINRULE_LOSS_INSTANCES(template, double)
#ifdef CHAINRULE_SMALL_BATCH_KERNELS
CHAINRULE_SMALL_BATCH_FORWARD_INSTANCES(template, float)
CHAINRULE_SMALL_BATCH_FORWARD_INSTANCES(template, double)
CHAINRULE_WEIGHT_GRADIENT_INSTANCES(template, float)
CHAINRULE_WEIGHT_GRADIENT_INSTANCES(template, double)
#endif
CHAINRULE_DENSE_INSTANCES(template, float)
CHAINRULE_DENSE_INSTANCES(template, double)
template class Network<float>;
template class Network<double>;

}  // namespace chainrule
