#include "threads.hpp"

#include <atomic>
#include <stdexcept>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace chainrule {

namespace {
int default_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();  // honours OMP_NUM_THREADS
#else
  return 1;
#endif
}

std::atomic<int>& thread_count() {
  static std::atomic<int> n{default_threads()};
  return n;
}
}  // namespace

// The core's products are split into shape-determined blocks shared out over this many OpenMP
// threads (gemm.hpp); Eigen itself always runs single-threaded (EIGEN_DONT_PARALLELIZE).
void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("the number of threads must be >= 1");
#ifdef _OPENMP
  thread_count() = n;
#else
  thread_count() = 1;
#endif
}

int get_num_threads() { return thread_count(); }

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace chainrule
