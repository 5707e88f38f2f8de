// mae/core/processes.hpp — this process's part when several run one job (under mpirun): what
// data-parallel training needs (a mean over the processes), and what the data needs at start-up
// (one process's bytes for all, a sum over the processes). The default is one process, where
// every one of these is the identity. mae::mpi::data_parallel (training/distributed.hpp) fills it
// from MPI; Trainer (pretrain.hpp) and Finetuner (finetune.hpp) take one in their options.
#ifndef MAE_CORE_PROCESSES_HPP
#define MAE_CORE_PROCESSES_HPP

#include "common.hpp"

#include <functional>
#include <memory>
#include <string>

namespace mae {

// DistributedDataParallel's idea: the batch of each step is split across `ranks` processes,
// each computing the gradients of its share and `mean` replacing them by their mean over the
// processes before every optimizer step.
struct DataParallel {
  int rank = 0, ranks = 1;
  std::function<void(float* data, Index n)> mean;  // in place: data = its mean over the processes
  // Optional, for the gradients: data[from, n) is final (a backward's GradientsReady report),
  // so their mean may begin while backward runs; the mean(data, n) after backward completes it.
  std::function<void(float* data, Index n, Index from)> ready;
  // For the start-up (a folder's index, the images' statistics), made by one process for all:
  // in place, data = the first process's bytes on every process; and data = its sum over the
  // processes (each adds its own part, zeros elsewhere: the sum is exact, the same as one
  // process computing every part).
  std::function<void(std::string& data)> broadcast;
  std::function<void(double* data, Index n)> sum;

  // Every process waits here for the others (a mean of nothing, as a barrier): after the first
  // process wrote a checkpoint that the others must not exit before.
  void barrier() const {
    if (ranks <= 1 || !mean) return;
    float nothing = 0;
    mean(&nothing, 1);
  }
  // Are there other processes to share the start-up with?
  bool shares() const { return ranks > 1 && broadcast && sum; }
};

// Something made once for all processes (p): the first makes it (make() -> std::unique_ptr<T>)
// and sends its bytes (bytes(T) -> std::string, never empty) to the others, which rebuild it
// (from(std::string) -> T) without doing the work. If the first fails, the others throw
// `failed` instead of waiting. One process (p.shares() false): make().
template <class T, class Make, class Bytes, class From>
std::unique_ptr<T> made_once(const DataParallel& p, Make&& make, Bytes&& bytes, From&& from,
                             const std::string& failed) {
  if (!p.shares()) return make();
  std::unique_ptr<T> made;
  std::string data;
  if (p.rank == 0) {
    try {
      made = make();
      data = bytes(*made);
    } catch (...) {
      data.clear();  // empty: the others learn that it failed, and stop too
      p.broadcast(data);
      throw;
    }
  }
  p.broadcast(data);
  if (data.empty()) throw Error(failed);
  if (p.rank != 0) made = std::make_unique<T>(from(data));
  return made;
}

}  // namespace mae

#endif  // MAE_CORE_PROCESSES_HPP
