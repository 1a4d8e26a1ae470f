#include "common/files.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace slimfit {
absl::Status ErrnoStatus(int err, absl::string_view what,
                         absl::string_view path) {
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (err) {
    case ENOENT: code = absl::StatusCode::kNotFound; break;
    case EACCES:
    case EPERM: code = absl::StatusCode::kPermissionDenied; break;
    case ENOSPC:
    case EDQUOT:
    case EFBIG: code = absl::StatusCode::kResourceExhausted; break;
    case EISDIR:
    case ENOTDIR: code = absl::StatusCode::kFailedPrecondition; break;
    default: break;
  }
  return absl::Status(code, absl::StrCat(what, " \"", path, "\": ",
                                         std::strerror(err)));
}

int WriteFully(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  for (size_t done = 0; done < n;) {
    const ssize_t w = ::write(fd, p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : EIO;
    done += static_cast<size_t>(w);
  }
  return 0;
}

namespace {

absl::Status FsyncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return ErrnoStatus(errno, "cannot open for fsync", path);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(err, "cannot fsync", path);
  return absl::OkStatus();
}

std::string DirectoryOf(const std::string& path) {
  std::filesystem::path p(path);
  std::string dir = p.parent_path().string();
  return dir.empty() ? "." : dir;
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return ErrnoStatus(errno, "cannot read", path);
  }
  if (S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read \"", path, "\": it is a directory"));
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return ErrnoStatus(errno, "cannot open", path);
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  const bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) return absl::DataLossError(absl::StrCat("read error on \"", path, "\""));
  return out;
}

absl::StatusOr<int64_t> RegularFileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "cannot stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("\"", path, "\" is not a regular file"));
  }
  return static_cast<int64_t>(st.st_size);
}

absl::Status ReplaceFileAtomically(
    const std::string& path,
    const std::function<absl::Status(const std::string& tmp_path)>& write) {
  const std::string dir = DirectoryOf(path);
  const std::string tmp = absl::StrFormat(
      "%s/.%s.tmp.%d", dir, std::filesystem::path(path).filename().string(),
      static_cast<int>(::getpid()));
  absl::Status s = write(tmp);
  if (s.ok()) s = FsyncPath(tmp, /*directory=*/false);
  if (s.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    s = ErrnoStatus(errno, "cannot rename into place", path);
  }
  if (!s.ok()) {
    std::remove(tmp.c_str());
    return s;
  }
  // Make the rename itself durable; failure here loses nothing already there.
  FsyncPath(dir, /*directory=*/true).IgnoreError();
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents) {
  return ReplaceFileAtomically(path, [&](const std::string& tmp) {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr) return ErrnoStatus(errno, "cannot create", tmp);
    size_t written = std::fwrite(contents.data(), 1, contents.size(), f);
    int err = errno;
    bool ok = written == contents.size();
    if (std::fclose(f) != 0 && ok) {
      ok = false;
      err = errno;
    }
    if (!ok) return ErrnoStatus(err, "cannot write", path);
    return absl::OkStatus();
  });
}

absl::Status CreateDirectories(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return ErrnoStatus(ec.value(), "cannot create directory", path);
  }
  if (!std::filesystem::is_directory(path)) {
    return absl::FailedPreconditionError(
        absl::StrCat("\"", path, "\" exists and is not a directory"));
  }
  return absl::OkStatus();
}

}  // namespace slimfit
