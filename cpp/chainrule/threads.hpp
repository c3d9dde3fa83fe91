// How many threads the core's matrix products use. The products are cut into blocks that depend
// on the shapes only and the threads share them out (gemm.hpp), so results are bit-identical
// whatever the count. Without OpenMP there is one thread.
#pragma once

namespace chainrule {

void set_num_threads(int n);
int get_num_threads();
bool has_openmp();

}  // namespace chainrule
