/// @file rope.hpp
/// @brief Lesson 06: rotary position embeddings (RoPE, Su et al. 2021, "RoFormer").
///        Each pair of channels of a query or key head is rotated by an angle
///        proportional to the token's absolute position, so that q . k depends only
///        on the distance between the two tokens. Two pairings exist in the wild:
///        adjacent pairs (GGUF / llama.cpp) and half-split pairs (Hugging Face);
///        a permutation of the projection's columns turns one into the other.
#pragma once

#include <cstddef>
#include <vector>

#include "attn/core.hpp"
#include "decoder.hpp"  // PositionHook, lesson 05

namespace attn {

/// Which channels of a head of dimension D form the i-th rotated pair, i = 0 ... D/2 - 1.
enum class RopePairing {
  adjacent,   ///< (2i, 2i + 1): original RoFormer / Meta Llama, GGUF and llama.cpp
  half_split  ///< (i, i + D/2): Hugging Face transformers' Llama (rotate_half)
};

/// The base of the frequencies in RoFormer and in Llama 1 and 2 (models may set their own).
inline constexpr double kRopeTheta = 10000.0;

/// The angular frequencies of RoPE: omega_i = theta^(-2i/D), i = 0 ... D/2 - 1, in float64.
/// Pair i turns by position * omega_i radians: omega_0 = 1, and the last pair turns slowest.
/// @param head_dim D, even and at least 2
/// @param theta    the base, finite and > 0 (10000 in RoFormer and Llama 2)
/// @return         D/2 frequencies, omega_0 = 1 first
/// @throws std::invalid_argument if D is odd or 0, or theta is not a finite positive number.
std::vector<double> rope_frequencies(std::size_t head_dim, double theta = kRopeTheta);

/// Rotary position embedding of the rows of x: row t of every batch and head sits at
/// absolute position p = first_position + t, and each of its pairs (a, b), chosen by
/// `pairing`, is rotated by the angle p * omega_i:
///   y_a = x_a cos(p omega_i) - x_b sin(p omega_i),
///   y_b = x_a sin(p omega_i) + x_b cos(p omega_i).
/// The angles are computed in float64, so the result is exact to float32 rounding at any
/// position. Position 0 leaves x unchanged.
/// @param x              (B, H, T, D), D even
/// @param first_position absolute position of row 0
/// @param pairing        RopePairing::adjacent or RopePairing::half_split
/// @param theta          the base of the frequencies, see rope_frequencies
/// @return               (B, H, T, D)
/// @throws std::invalid_argument if D is odd or 0, or theta is not a finite positive number.
Tensor4 apply_rope(const Tensor4& x, std::size_t first_position, RopePairing pairing,
                   double theta = kRopeTheta);

/// Permutes the columns of a query or key projection so that adjacent-pair RoPE on the
/// permuted weights equals half-split RoPE on the original ones, as llama.cpp's converter
/// does from Hugging Face to GGUF. Within each head (columns h*D ... h*D + D - 1):
///   out[:, h*D + 2i + s] = w[:, h*D + s*D/2 + i],  i < D/2, s in {0, 1}.
/// Then x out equals x w with every head's channels permuted the same way, and q . k is
/// unchanged when both projections are permuted.
/// @param w       (d_model, n_heads*D), head h owning columns h*D ... h*D + D - 1
/// @param n_heads number of heads of this projection (H for queries, G for keys)
/// @return        (d_model, n_heads*D)
/// @throws std::invalid_argument if n_heads is 0, does not divide the columns, or D is odd.
Tensor2 half_split_to_adjacent(const Tensor2& w, std::size_t n_heads);

/// The inverse of half_split_to_adjacent: out[:, h*D + s*D/2 + i] = w[:, h*D + 2i + s].
/// Turns a GGUF (adjacent-pair) projection back into the Hugging Face layout.
/// @param w       (d_model, n_heads*D)
/// @param n_heads number of heads of this projection
/// @return        (d_model, n_heads*D)
/// @throws std::invalid_argument if n_heads is 0, does not divide the columns, or D is odd.
Tensor2 adjacent_to_half_split(const Tensor2& w, std::size_t n_heads);

/// A PositionHook (lesson 05: called on every layer's q (B, H, T, D) and k (B, G, T, D) right
/// after the projections, before k enters the cache) that applies
/// apply_rope(., first_position, pairing, theta) to q and to k.
/// @param pairing the pairing the weights were made for
/// @param theta   the base of the frequencies
/// @return        the hook; it throws what apply_rope throws
PositionHook rope_position_hook(RopePairing pairing, double theta = kRopeTheta);

}  // namespace attn
