// How many threads the core's matrix products use. The products are cut into blocks that depend
// on the shapes only and the threads share them out (gemm.hpp), so results are bit-identical
// whatever the count. Without OpenMP there is one thread.
#pragma once

#include "types.hpp"

namespace chainrule {

void set_num_threads(int n);
int get_num_threads();
bool has_openmp();

// body(i) for i in [0, n), shared out over `threads` OpenMP threads in static blocks, or run on
// the calling thread when threads ≤ 1. Then there is no parallel region at all: even an inactive
// one (an `if` clause that is false) goes through GOMP_parallel, which allocates and frees a
// team every time, about 0.3 µs, a tenth of a 64-32-10 training step at batch 32.
template <class Body>
void parallel_for(Index n, int threads, const Body& body) {
  if (threads <= 1) {
    for (Index i = 0; i < n; ++i) body(i);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
  for (Index i = 0; i < n; ++i) body(i);
}

}  // namespace chainrule
