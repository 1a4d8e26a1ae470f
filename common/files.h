// File: common/files.h
//
// File helpers with Status errors, and atomic replacement of files.
//
//   RETURN_IF_ERROR(WriteFileAtomically("runs/x/report.json", json));
//   RETURN_IF_ERROR(ReplaceFileAtomically("runs/x/model.pt",
//       [&](const std::string& tmp) { return SaveTo(tmp); }));
//
// Atomic: the content is written to a temporary file in the destination's
// directory, flushed to disk (fsync), then renamed over the destination. A
// reader, or a run killed at any moment, sees the old file or the new one,
// never a torn one. On any failure the temporary is removed and the old file
// is untouched.
#ifndef SLIMFIT_COMMON_FILES_H_
#define SLIMFIT_COMMON_FILES_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace slimfit {

// The whole file. NotFound if it does not exist; the error names the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Size in bytes; NotFound if missing, FailedPrecondition if not a regular file.
absl::StatusOr<int64_t> RegularFileSize(const std::string& path);

// Writes `contents` to `path` atomically.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

// Calls `write(tmp_path)` to produce the new file, then renames it over
// `path` atomically. `write` must create `tmp_path` (and may fail).
absl::Status ReplaceFileAtomically(
    const std::string& path,
    const std::function<absl::Status(const std::string& tmp_path)>& write);

// "<what> \"<path>\": <strerror(err)>" with a code that fits errno: NotFound,
// PermissionDenied, ResourceExhausted (ENOSPC, EDQUOT, EFBIG),
// FailedPrecondition (EISDIR, ENOTDIR), else Internal.
absl::Status ErrnoStatus(int err, absl::string_view what, absl::string_view path);

// Writes all `n` bytes to `fd`, retrying short writes and EINTR. Returns 0,
// or the errno of the write that failed (EIO for a write that took nothing).
int WriteFully(int fd, const void* data, size_t n);

// mkdir -p. OK if it exists as a directory.
absl::Status CreateDirectories(const std::string& path);

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_FILES_H_
