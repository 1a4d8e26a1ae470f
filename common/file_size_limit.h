// RunWithFileSizeLimit: runs `fn` in a forked child whose writes fail past
// `limit_bytes` (RLIMIT_FSIZE; the kernel returns EFBIG as a full disk returns
// ENOSPC), and returns the Status `fn` returned there. Test-only: it makes a
// failing write real — the bytes written before the failure stay on disk, the
// error comes from write()/close() — without root, tmpfs or a write hook.
//
//   EXPECT_THAT(RunWithFileSizeLimit(4096, [&] { return model.Save(path); }),
//               StatusIs(absl::StatusCode::kResourceExhausted, ...));
//
// The child runs only `fn` and exits; keep `fn` single-threaded (fork copies
// one thread). A child that crashes returns Internal naming the signal.
#ifndef SLIMFIT_COMMON_FILE_SIZE_LIMIT_H_
#define SLIMFIT_COMMON_FILE_SIZE_LIMIT_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"

namespace slimfit {

absl::Status RunWithFileSizeLimit(uint64_t limit_bytes, const std::function<absl::Status()>& fn);

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_FILE_SIZE_LIMIT_H_
