// Lesson 06: rotary position embeddings. Fill in each body between TODO(06.k) and
// END TODO(06.k), in the order of the README.
#include "rope.hpp"

#include <cmath>
#include <string>
#include <utility>

namespace attn {

std::vector<double> rope_frequencies(std::size_t head_dim, double theta) {
  // TODO(06.1): check D (even, > 0) and theta (finite, > 0); omega_i = theta^(-2i/D) in double
  throw NotImplemented("06.1", "2. Rotating pairs of channels");
  // END TODO(06.1)
}

Tensor4 apply_rope(const Tensor4& x, std::size_t first_position, RopePairing pairing,
                   double theta) {
  // TODO(06.2): for each row t at position first_position + t, rotate pair i by (first_position + t) * omega_i
  throw NotImplemented("06.2", "4. Two pairings: adjacent and half-split");
  // END TODO(06.2)
}

Tensor2 half_split_to_adjacent(const Tensor2& w, std::size_t n_heads) {
  // TODO(06.3): check the heads; within each head, column 2i + s of the result is column s*D/2 + i of w
  throw NotImplemented("06.3", "5. The permutation that links them");
  // END TODO(06.3)
}

Tensor2 adjacent_to_half_split(const Tensor2& w, std::size_t n_heads) {
  // TODO(06.4): check the heads; within each head, column s*D/2 + i of the result is column 2i + s of w
  throw NotImplemented("06.4", "5. The permutation that links them");
  // END TODO(06.4)
}

PositionHook rope_position_hook(RopePairing pairing, double theta) {
  // TODO(06.5): return a callable that rotates q and k in place, row t to position first_position + t
  throw NotImplemented("06.5", "6. Positions in a decoder: rotate, then cache");
  // END TODO(06.5)
}

}  // namespace attn
