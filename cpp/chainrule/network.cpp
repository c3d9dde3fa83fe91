// The core is compiled once here, for both precisions; other files include the header only.
#include "network.hpp"

namespace chainrule {

template class Network<float>;
template class Network<double>;

}  // namespace chainrule
