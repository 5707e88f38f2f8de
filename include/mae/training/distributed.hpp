// mae/training/distributed.hpp — data-parallel training over MPI, as the reference's
// DistributedDataParallel: every rank holds the whole model, the global batch is split across
// the ranks, the gradients are averaged, and every rank applies the same optimizer step.
// A separate header and CMake target (mae::mpi: mae::mae + MPI::MPI_CXX) so that nothing else
// in the library needs MPI.
//
//   mae::mpi::Session mpi(argc, argv);             // MPI_Init_thread .. MPI_Finalize
//   loader.set_shard(mpi.rank(), mpi.size());      // DistributedSampler's share (data/loader.hpp)
//   ... forward / backward on this rank's share of the batch ...
//   mae::mpi::allreduce_mean(grads.data(), grads.size(), mpi.comm());    // DDP's averaging
//   opt.step(...);                                 // the same step on every rank
//
// What a rank draws must not depend on the rank count, so that R ranks train the model one
// process trains at the same global batch: the data order is one permutation per epoch seeded
// by (seed, epoch) on every rank, augmentation is seeded by (seed, epoch, position in the
// epoch) (data/loader.hpp), and so is the masking noise (masking.hpp's masking_noise).
// Trainer (pretrain.hpp) does all of this given a DataParallel, which data_parallel() fills:
//
//   mae::TrainOptions o;  o.parallel = mae::mpi::data_parallel();  // o.batch_size: per process
//
// Reproducibility: the average is MPI_Allreduce's sum, then a multiplication by 1 / R on every
// rank. Each rank's gradients are themselves bitwise the same for any OpenMP thread count, so
// for a fixed rank count and MPI build the run is the same run to run and thread count to
// thread count. Against one process the sum over the batch is taken in another order (per
// rank, then across ranks), so the two agree to float rounding, not bit for bit.
#ifndef MAE_TRAINING_DISTRIBUTED_HPP
#define MAE_TRAINING_DISTRIBUTED_HPP

#include "../core/common.hpp"
#include "../layers/masking.hpp"
#include "pretrain.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace mae::mpi {

// Throws mae::Error naming the call when an MPI function fails (with MPI_ERRORS_RETURN set
// on the communicator; the default handler aborts the job itself).
inline void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(std::string(what) + " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

// MPI for the life of the object (one per process). Threads: only the thread that made the
// Session calls MPI (MPI_THREAD_FUNNELED); the OpenMP teams inside a step never do.
class Session {
 public:
  Session(int& argc, char**& argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      // OpenMPI's non-blocking allreduce (libnbc, used by GradientMean) picks, for 2 ranks on
      // one machine, an algorithm that made a ViT-Base step with the overlapped mean ~10%
      // slower than with the blocking one; Rabenseifner's (3: reduce-scatter + allgather)
      // matched it (docs/distributed.md). That is the default unless the environment (or
      // mpirun --mca) chooses; other MPIs ignore the variable.
      setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", /*overwrite=*/0);
      int provided = 0;
      check(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owner_ = true;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (!owner_) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm comm() const { return MPI_COMM_WORLD; }

 private:
  int rank_ = 0, size_ = 1;
  bool owner_ = false;
};

template <class S>
inline MPI_Datatype datatype() {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "mae::mpi: float or double");
  return std::is_same_v<S, float> ? MPI_FLOAT : MPI_DOUBLE;
}

// The allreduce's bucket: DistributedDataParallel's bucket_cap_mb (25 MiB). One MPI_Allreduce
// per bucket, not one for the whole store: on one machine (OpenMPI 4.1, shared memory) a
// 446 MB store reduces at 0.37 GB/s in one call and at 5.2 GB/s in 25 MB calls (docs/
// distributed.md). Each value is reduced within one call, so the bucket changes which calls
// carry it, not how it is summed.
inline constexpr Index kBucketBytes = Index(25) << 20;

// A bucket's values (at least 1, at most 2^30 so that MPI's int count holds them).
template <class S>
inline Index bucket_values(Index bucket_bytes) {
  return std::max<Index>(1, std::min<Index>(bucket_bytes / Index(sizeof(S)), Index(1) << 30));
}

// data (n values, the same n on every rank) = the mean over the ranks, in place: the sum of
// MPI_Allreduce, bucket by bucket, times 1 / ranks.
template <class S>
inline void allreduce_mean(S* data, Index n, MPI_Comm comm, Index bucket_bytes = kBucketBytes) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  const Index bucket = bucket_values<S>(bucket_bytes);
  for (Index i = 0; i < n; i += bucket)
    check(
        MPI_Allreduce(MPI_IN_PLACE, data + i, static_cast<int>(std::min(bucket, n - i)), datatype<S>(), MPI_SUM, comm),
        "MPI_Allreduce (gradients)");
  const S inv = S(1) / static_cast<S>(size);
  for (Index i = 0; i < n; ++i) data[i] *= inv;
}

// DistributedDataParallel's reducer: the mean of a gradient store over the ranks, begun while
// backward still runs. ready(data, n, from), called with a backward's GradientsReady reports
// (params.hpp: data[from, n) is final), starts an MPI_Iallreduce on every bucket lying wholly
// inside [from, n) and lets those under way progress (MPI_Testall: without a progress thread
// OpenMPI moves a non-blocking collective on only inside MPI calls). mean(data, n) then starts
// the rest, waits for all and multiplies by 1 / ranks. Buckets are cut from the end of the
// store, where the gradients are final first, at the same places every step: each value is
// summed by one call, whenever the reports came, so the result does not depend on timing.
class GradientMean {
 public:
  explicit GradientMean(MPI_Comm comm, Index bucket_bytes = kBucketBytes)
      : comm_(comm), bucket_(bucket_values<float>(bucket_bytes)) {
    MPI_Comm_size(comm, &size_);
  }
  GradientMean(const GradientMean&) = delete;
  GradientMean& operator=(const GradientMean&) = delete;
  ~GradientMean() {  // an exception left requests behind: complete them (MPI_Abort usually comes first)
    if (!requests_.empty()) MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
  }

  void ready(float* data, Index n, Index from) {
    begin(data, n);
    start_buckets_from(from);
    int done = 0;
    if (!requests_.empty())
      check(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE),
            "MPI_Testall (gradients)");
  }

  void mean(float* data, Index n) {
    begin(data, n);
    start_buckets_from(0);
    check(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE),
          "MPI_Waitall (gradients)");
    requests_.clear();
    data_ = nullptr, started_ = 0;
    const float inv = 1.0f / static_cast<float>(size_);
    for (Index i = 0; i < n; ++i) data[i] *= inv;
  }

  Index buckets_started() const { return started_; }  // of the mean under way

 private:
  void begin(float* data, Index n) {
    if (data_ == data && n_ == n) return;
    if (data_ != nullptr) throw Error("GradientMean: a mean of another array is under way");
    data_ = data, n_ = n, started_ = 0;
    requests_.reserve(static_cast<std::size_t>((n + bucket_ - 1) / bucket_));
  }
  // bucket b covers [max(0, n - (b+1) bucket), n - b bucket)
  void start_buckets_from(Index from) {
    for (;;) {
      const Index hi = n_ - started_ * bucket_, lo = std::max<Index>(0, hi - bucket_);
      if (hi <= 0 || lo < from) return;
      requests_.emplace_back();
      check(MPI_Iallreduce(MPI_IN_PLACE, data_ + lo, static_cast<int>(hi - lo), MPI_FLOAT, MPI_SUM, comm_,
                           &requests_.back()),
            "MPI_Iallreduce (gradients)");
      ++started_;
    }
  }

  MPI_Comm comm_;
  int size_ = 1;
  Index bucket_;
  float* data_ = nullptr;
  Index n_ = 0, started_ = 0;
  std::vector<MPI_Request> requests_;
};

// The first rank's bytes on every rank: their length, then the bytes (in pieces that fit an int).
inline void broadcast(std::string& data, MPI_Comm comm) {
  unsigned long long n = data.size();
  check(MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, 0, comm), "MPI_Bcast (size)");
  data.resize(static_cast<std::size_t>(n));
  constexpr std::size_t piece = std::size_t(1) << 30;
  for (std::size_t i = 0; i < data.size(); i += piece)
    check(MPI_Bcast(data.data() + i, static_cast<int>(std::min(piece, data.size() - i)), MPI_CHAR, 0, comm),
          "MPI_Bcast (data)");
}

// In place: data = its sum over the ranks (doubles; bucket by bucket).
inline void allreduce_sum(double* data, Index n, MPI_Comm comm) {
  const Index bucket = bucket_values<double>(kBucketBytes);
  for (Index i = 0; i < n; i += bucket)
    check(MPI_Allreduce(MPI_IN_PLACE, data + i, static_cast<int>(std::min(bucket, n - i)), MPI_DOUBLE, MPI_SUM, comm),
          "MPI_Allreduce (sum)");
}

// One value's mean over the ranks (a loss, for the log).
template <class S>
inline S mean_over_ranks(S value, MPI_Comm comm) {
  allreduce_mean(&value, 1, comm);
  return value;
}

// This process's part in a data-parallel Trainer run over comm (after a Session started MPI).
// overlap: the gradients' mean begins during backward (GradientMean); otherwise it runs after
// backward, bucket by bucket (allreduce_mean).
inline DataParallel data_parallel(MPI_Comm comm = MPI_COMM_WORLD, bool overlap = true) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  DataParallel p;
  p.rank = rank, p.ranks = size;
  p.mean = [comm](float* data, Index n) { allreduce_mean(data, n, comm); };
  p.broadcast = [comm](std::string& data) { broadcast(data, comm); };
  p.sum = [comm](double* data, Index n) { allreduce_sum(data, n, comm); };
  if (overlap) {
    auto reducer = std::make_shared<GradientMean>(comm);
    p.mean = [reducer](float* data, Index n) { reducer->mean(data, n); };
    p.ready = [reducer](float* data, Index n, Index from) { reducer->ready(data, n, from); };
  }
  return p;
}

// Runs f() and returns its exit code; an exception on any rank prints "rank r: message" and
// aborts the whole job (MPI_Abort), so the other ranks do not wait forever in a collective.
template <class F>
inline int run_or_abort(F&& f, MPI_Comm comm = MPI_COMM_WORLD) {
  try {
    return f();
  } catch (const std::exception& e) {
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    std::fflush(stderr);
    MPI_Abort(comm, 1);
  }
  return 1;
}

}  // namespace mae::mpi

#endif  // MAE_TRAINING_DISTRIBUTED_HPP
