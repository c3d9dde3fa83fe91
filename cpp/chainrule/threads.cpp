#include "threads.hpp"

#include <Eigen/Core>
#include <stdexcept>

namespace chainrule {

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("the number of threads must be >= 1");
  Eigen::setNbThreads(n);
}

int get_num_threads() { return Eigen::nbThreads(); }

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace chainrule
