// mae/io/files.hpp — every file mae writes (checkpoints, weights, CSV, PNG, features) goes
// through write_file, which writes where the path points:
//   - a regular file, or a name that does not exist yet: atomically (a temporary file beside
//     it, fsync, rename), after following symlinks to their target, so a link stays a link;
//   - a FIFO, a character device (/dev/null, a terminal), or "-" (standard output): straight
//     through, no temporary file and no rename (renaming over /dev/null would replace it);
//   - a directory, a socket, a block device, an empty path: refused, naming the path.
// A writer killed mid-write leaves `<target>.tmp.<pid>`; the next writer of that name (or a
// training run starting in that directory) removes the ones whose process is gone.
#ifndef MAE_IO_FILES_HPP
#define MAE_IO_FILES_HPP

#include "../core/common.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mae {

// The temporary name a writer in this process uses for `path`: `path.tmp.<pid>`.
inline std::string temp_path_for(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

namespace detail {
// Removes the files of `dir` named `<target>.tmp.<pid>` (target "" = any name) whose process
// no longer exists: what a writer killed mid-write left. A live writer's file is never touched.
inline void remove_dead_writers_temp_files(const std::filesystem::path& dir, const std::string& target) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::size_t at = name.rfind(".tmp.");
    if (at == std::string::npos || at == 0 || (!target.empty() && name.compare(0, at, target) != 0)) continue;
    const std::string pid = name.substr(at + 5);
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t p = static_cast<pid_t>(std::stol(pid));
    std::error_code rm;
    if (p > 0 && p != ::getpid() && ::kill(p, 0) != 0 && errno == ESRCH) fs::remove(it->path(), rm);
  }
}

inline std::string errno_text() { return std::strerror(errno); }

// Writes all of `bytes` to `fd`; false (errno set) on failure.
inline bool write_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(w);
  }
  return true;
}
}  // namespace detail

// Removes `path.tmp.<pid>` files that a writer killed mid-write left behind: only those whose
// process no longer exists (a live writer's file is never touched).
inline void remove_stale_temp_files(const std::string& path) {
  const std::filesystem::path target(path);
  detail::remove_dead_writers_temp_files(target.has_parent_path() ? target.parent_path() : ".",
                                         target.filename().string());
}

// The same for every file of a directory: a training run calls it on its output directory at
// start, since a figure of an epoch that a resumed run does not repeat is never written again.
inline void remove_stale_temp_files_in(const std::string& dir) { detail::remove_dead_writers_temp_files(dir, ""); }

// Where a write to `path` goes (write_file's first half, usable to check an output path
// before a long run). Throws for what write_file refuses.
struct OutputTarget {
  enum class Kind { file, stream, standard_output };
  Kind kind = Kind::file;
  std::string path;  // file: the regular file to replace (symlinks followed); stream: the path as given
};

inline OutputTarget output_target(const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty()) throw Error("an empty output path: give a file name");
  if (path == "-") return {OutputTarget::Kind::standard_output, path};
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {  // exists (symlinks followed, /proc's magic links too)
    if (S_ISREG(st.st_mode)) {
      std::error_code ec;
      const fs::path real = fs::canonical(path, ec);
      return {OutputTarget::Kind::file, ec ? path : real.string()};
    }
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) return {OutputTarget::Kind::stream, path};
    if (S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, not a file to write");
    throw Error(path + ": is a " + std::string(S_ISSOCK(st.st_mode) ? "socket" : "block device") +
                ", not a file mae writes");
  }
  if (errno != ENOENT) throw Error(path + ": cannot write (" + detail::errno_text() + ")");
  // A new file, or a symlink whose target does not exist yet: create the target, keep the link.
  fs::path p(path);
  for (int hops = 0;; ++hops) {
    std::error_code ec;
    if (!fs::is_symlink(fs::symlink_status(p, ec))) break;
    if (hops == 40) throw Error(path + ": too many levels of symbolic links");
    const fs::path to = fs::read_symlink(p, ec);
    if (ec) throw Error(path + ": cannot read the symbolic link '" + p.string() + "' (" + ec.message() + ")");
    p = to.is_absolute() ? to : p.parent_path() / to;
  }
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(path + ": cannot create it: the directory '" + dir.string() + "' does not exist");
  return {OutputTarget::Kind::file, p.string()};
}

// Writes `bytes` to `path` as the header says. A failed write of a regular file leaves the
// previous file as it was (and says so).
inline void write_file(const std::string& path, const std::string& bytes) {
  const OutputTarget t = output_target(path);
  if (t.kind != OutputTarget::Kind::file) {
    const bool stdout_ = t.kind == OutputTarget::Kind::standard_output;
    if (stdout_) std::fflush(stdout);  // what the program printed comes first
    const int fd = stdout_ ? STDOUT_FILENO : ::open(t.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw Error(path + ": cannot open for writing (" + detail::errno_text() + ")");
    const bool ok = detail::write_all(fd, bytes);
    const std::string err = ok ? "" : detail::errno_text();
    if (!stdout_) ::close(fd);
    if (!ok) throw Error(path + ": write failed (" + err + ")");
    return;
  }
  const std::string& target = t.path;
  remove_stale_temp_files(target);
  const std::string previous =
      std::filesystem::exists(target) ? "; the previous file is untouched" : "; no file was written";
  const std::string tmp = temp_path_for(target);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path + ": cannot create '" + tmp + "' (" + detail::errno_text() + ")");
  struct stat old {
  }, mine{};  // a replaced file keeps its mode (the temporary file is checked to be a file)
  if (::stat(target.c_str(), &old) == 0 && ::fstat(fd, &mine) == 0 && S_ISREG(mine.st_mode))
    (void)::fchmod(fd, old.st_mode & 07777);
  if (!detail::write_all(fd, bytes)) {
    const std::string err = detail::errno_text();
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(path + ": write failed (" + err + ")" + previous);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string err = detail::errno_text();
    ::unlink(tmp.c_str());
    throw Error(path + ": cannot flush (" + err + ")" + previous);
  }
  if (std::rename(tmp.c_str(), target.c_str()) != 0) {
    const std::string err = detail::errno_text();
    ::unlink(tmp.c_str());
    throw Error(path + ": cannot rename the temporary file into place (" + err + ")");
  }
}

// Reads a whole file (a figure a helper program drew); throws naming it.
inline std::string read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(path + ": cannot open (" + detail::errno_text() + ")");
  std::string out;
  char buf[1 << 16];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  const bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) throw Error(path + ": read failed");
  return out;
}

}  // namespace mae

#endif  // MAE_IO_FILES_HPP
