/// @file device_buffer.hpp
/// @brief An array in device memory that frees itself: host code's side of a kernel call.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "attn/cuda.hpp"

namespace attn::cuda {

/// `size()` elements of T in device memory (cudaMalloc), freed by the destructor.
/// Its contents start undefined (NaN bytes on the emulator) until upload().
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t count) : size_(count) { ATTN_CUDA_CHECK(cudaMalloc(&data_, bytes())); }
  /// A copy of `host` in device memory.
  explicit DeviceBuffer(std::span<const T> host) : DeviceBuffer(host.size()) { upload(host); }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(std::span<const T>(host)) {}
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() { return data_; }
  const T* get() const { return data_; }
  std::size_t size() const { return size_; }
  std::size_t bytes() const { return size_ * sizeof(T); }

  /// Copies `host` (exactly size() elements) to the device.
  void upload(std::span<const T> host) {
    if (host.size() != size_)
      throw Error("DeviceBuffer::upload: expected " + std::to_string(size_) + " elements, given " +
                  std::to_string(host.size()));
    ATTN_CUDA_CHECK(cudaMemcpy(data_, host.data(), bytes(), cudaMemcpyHostToDevice));
  }
  /// Copies the buffer back to the host.
  std::vector<T> download() const {
    std::vector<T> host(size_);
    ATTN_CUDA_CHECK(cudaMemcpy(host.data(), data_, bytes(), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace attn::cuda
