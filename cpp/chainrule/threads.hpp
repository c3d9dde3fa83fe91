// How many threads the core's matrix products use. Eigen parallelises its products with OpenMP
// when the build has it; without OpenMP there is one thread.
#pragma once

namespace chainrule {

void set_num_threads(int n);
int get_num_threads();
bool has_openmp();

}  // namespace chainrule
