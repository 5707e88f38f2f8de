// A rank that throws stops the whole job with its message (mae::mpi::run_or_abort) instead of
// leaving the others waiting in a collective: rank 1 fails to read a file while rank 0 waits
// in a barrier. tests/CMakeLists.txt expects the message and a non-zero exit, within a timeout.
#include <mae/training/distributed.hpp>
#include <mae/io/safetensors.hpp>

int main(int argc, char** argv) {
  mae::mpi::Session mpi(argc, argv);
  return mae::mpi::run_or_abort([&] {
    if (mpi.rank() == 1) mae::safetensors::File f("/nonexistent/checkpoint.safetensors");
    MPI_Barrier(mpi.comm());
    return 0;
  });
}
