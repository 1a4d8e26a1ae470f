#include "model/archive.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>

#include <zlib.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace slimfit {
namespace {

constexpr uint32_t kEocdSignature = 0x06054b50;
constexpr uint32_t kZip64EocdSignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr uint32_t kCentralSignature = 0x02014b50;
constexpr uint32_t kLocalSignature = 0x04034b50;
constexpr uint64_t kMaxScannedCode = uint64_t{16} << 20;
constexpr int64_t kEocdSize = 22;
constexpr int64_t kMaxComment = 0xFFFF;

uint16_t U16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) |
                               (static_cast<uint8_t>(p[1]) << 8));
}
uint32_t U32(const char* p) {
  return static_cast<uint32_t>(U16(p)) | (static_cast<uint32_t>(U16(p + 2)) << 16);
}
uint64_t U64(const char* p) {
  return static_cast<uint64_t>(U32(p)) | (static_cast<uint64_t>(U32(p + 4)) << 32);
}

absl::Status Bad(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("\"", path, "\" is not a TorchScript model: ", what));
}

absl::StatusOr<std::string> ReadRange(std::ifstream& in, const std::string& path,
                                      int64_t offset, int64_t size) {
  std::string buf(static_cast<size_t>(size), '\0');
  in.clear();
  in.seekg(offset);
  in.read(buf.data(), size);
  if (in.gcount() != size) {
    return Bad(path, absl::StrCat("short read of ", size, " bytes at offset ",
                                  offset, " (file truncated?)"));
  }
  return buf;
}

bool UnsafeName(absl::string_view name) {
  if (name.empty() || name.front() == '/' || name.front() == '\\') return true;
  if (name.find('\0') != absl::string_view::npos) return true;
  // Any ".." path component.
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find_first_of("/\\", start);
    if (end == absl::string_view::npos) end = name.size();
    if (name.substr(start, end - start) == "..") return true;
    start = end + 1;
  }
  return false;
}

// Raw deflate (zip method 8) of exactly `size` bytes; nullopt when the
// stream is corrupt or its length is not the one the directory declares.
std::optional<std::string> Inflate(const std::string& in, uint64_t size) {
  std::string out(static_cast<size_t>(size), '\0');
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return std::nullopt;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char spare;  // one byte past the declared size: a longer stream is refused
  z.next_out = reinterpret_cast<Bytef*>(size > 0 ? out.data() : &spare);
  z.avail_out = static_cast<uInt>(size > 0 ? size : 1);
  int rc = inflate(&z, Z_FINISH);
  if (rc != Z_STREAM_END && z.avail_out == 0 && size > 0) {
    z.next_out = reinterpret_cast<Bytef*>(&spare);
    z.avail_out = 1;
    rc = inflate(&z, Z_FINISH);
  }
  const uint64_t produced = z.total_out;
  inflateEnd(&z);
  if (rc != Z_STREAM_END || produced != size) return std::nullopt;
  return out;
}

bool IdentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Calls of the form `torch.NAME(` and `ops.NS.NAME(` in serialized
// TorchScript source (how it spells builtin and registered operators).
void ScanOps(absl::string_view code, std::map<std::string, int>* ops) {
  for (size_t i = 0; i < code.size(); ++i) {
    if (i > 0 && (IdentChar(code[i - 1]) || code[i - 1] == '.')) continue;
    const bool torch = absl::StartsWith(code.substr(i), "torch.");
    if (!torch && !absl::StartsWith(code.substr(i), "ops.")) continue;
    size_t j = i;
    while (j < code.size() && (IdentChar(code[j]) || code[j] == '.')) ++j;
    size_t k = j;
    while (k < code.size() && code[k] == ' ') ++k;
    if (k < code.size() && code[k] == '(' && j > i && code[j - 1] != '.') {
      ++(*ops)[std::string(code.substr(i, j - i))];
    }
    i = j;
  }
}

// Why `op` deserves a look before the model is loaded, or "" when it does not.
std::string NotableOpReason(const std::string& op) {
  if (absl::EndsWith(op, ".from_file")) return "reads a file when the model runs";
  if (!absl::StartsWith(op, "ops.")) return "";
  const absl::string_view ns = absl::string_view(op).substr(4, op.find('.', 4) - 4);
  for (absl::string_view known : {"aten", "prim", "quantized", "prepacked", "_quantized",
                                  "quantized_decomposed", "mkldnn", "mkldnn_prepacked"}) {
    if (ns == known) return "";
  }
  return "a custom operator: needs a plugin library slimfit does not load";
}

}  // namespace

absl::StatusOr<ArchiveSummary> InspectTorchScriptArchive(
    const std::string& path, uint64_t max_entry_bytes) {
  ASSIGN_OR_RETURN(int64_t file_size, RegularFileSize(path));
  if (file_size == 0) return Bad(path, "the file is empty");
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::PermissionDeniedError(absl::StrCat("cannot open \"", path, "\""));

  ASSIGN_OR_RETURN(std::string head, ReadRange(in, path, 0, std::min<int64_t>(4, file_size)));
  if (head.size() < 4 || U32(head.data()) != 0x04034b50) {
    return Bad(path,
               "not a zip archive (TorchScript files are zip archives written "
               "by torch.jit.save / torch::jit::Module::save)");
  }
  if (file_size < kEocdSize) return Bad(path, "truncated zip archive");

  // Find the end-of-central-directory record in the tail.
  const int64_t tail_size = std::min<int64_t>(file_size, kEocdSize + kMaxComment);
  ASSIGN_OR_RETURN(std::string tail,
                   ReadRange(in, path, file_size - tail_size, tail_size));
  int64_t eocd = -1;
  for (int64_t i = tail_size - kEocdSize; i >= 0; --i) {
    if (U32(tail.data() + i) == kEocdSignature) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    return Bad(path,
               "truncated zip archive (no end-of-central-directory record; "
               "was the file cut short while copying?)");
  }
  const char* e = tail.data() + eocd;
  uint64_t num_entries = U16(e + 10);
  uint64_t cd_size = U32(e + 12);
  uint64_t cd_offset = U32(e + 16);
  if (num_entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    // ZIP64: the locator sits just before the EOCD record.
    const int64_t eocd_abs = file_size - tail_size + eocd;
    if (eocd_abs < 20) return Bad(path, "corrupt ZIP64 locator");
    ASSIGN_OR_RETURN(std::string loc, ReadRange(in, path, eocd_abs - 20, 20));
    if (U32(loc.data()) != kZip64LocatorSignature) return Bad(path, "corrupt ZIP64 locator");
    const uint64_t z64 = U64(loc.data() + 8);
    if (z64 + 56 > static_cast<uint64_t>(file_size)) return Bad(path, "corrupt ZIP64 record");
    ASSIGN_OR_RETURN(std::string rec, ReadRange(in, path, static_cast<int64_t>(z64), 56));
    if (U32(rec.data()) != kZip64EocdSignature) return Bad(path, "corrupt ZIP64 record");
    num_entries = U64(rec.data() + 32);
    cd_size = U64(rec.data() + 40);
    cd_offset = U64(rec.data() + 48);
  }
  if (cd_offset + cd_size > static_cast<uint64_t>(file_size) ||
      cd_size > (uint64_t{1} << 32)) {
    return Bad(path, absl::StrCat("truncated zip archive (central directory at ",
                                  cd_offset, "+", cd_size, " lies past the end of the ",
                                  file_size, "-byte file)"));
  }
  ASSIGN_OR_RETURN(std::string cd, ReadRange(in, path, static_cast<int64_t>(cd_offset),
                                             static_cast<int64_t>(cd_size)));

  ArchiveSummary summary;
  summary.file_size = file_size;
  size_t pos = 0;
  for (uint64_t i = 0; i < num_entries; ++i) {
    if (pos + 46 > cd.size() || U32(cd.data() + pos) != kCentralSignature) {
      return Bad(path, absl::StrCat("corrupt central directory at entry ", i));
    }
    const char* c = cd.data() + pos;
    const uint16_t method = U16(c + 10);
    uint64_t csize = U32(c + 20);
    uint64_t usize = U32(c + 24);
    uint64_t local_offset = U32(c + 42);
    const uint16_t name_len = U16(c + 28);
    const uint16_t extra_len = U16(c + 30);
    const uint16_t comment_len = U16(c + 32);
    if (pos + 46 + name_len + extra_len + comment_len > cd.size()) {
      return Bad(path, absl::StrCat("corrupt central directory at entry ", i));
    }
    std::string name(c + 46, name_len);
    // The ZIP64 extra field (id 1) carries, in this order, the real
    // uncompressed size, compressed size and local header offset of those
    // that are saturated.
    if (usize == 0xFFFFFFFF || csize == 0xFFFFFFFF || local_offset == 0xFFFFFFFF) {
      const char* x = c + 46 + name_len;
      for (size_t k = 0; k + 4 <= extra_len;) {
        const uint16_t id = U16(x + k), len = U16(x + k + 2);
        if (id == 1 && k + 4 + len <= extra_len) {
          size_t f = k + 4;
          for (uint64_t* v : {&usize, &csize, &local_offset}) {
            if (*v == 0xFFFFFFFF && f + 8 <= k + 4 + len) {
              *v = U64(x + f);
              f += 8;
            }
          }
        }
        k += 4 + len;
      }
    }
    pos += 46 + name_len + extra_len + comment_len;
    if (UnsafeName(name)) {
      return Bad(path, absl::StrCat("unsafe entry name \"", name,
                                    "\" (absolute or containing \"..\")"));
    }
    if (usize > max_entry_bytes) {
      return Bad(path, absl::StrCat("entry \"", name, "\" claims ", usize,
                                    " bytes, over the limit of ", max_entry_bytes));
    }
    const size_t slash = name.find('/');
    const absl::string_view rel =
        slash == std::string::npos ? absl::string_view(name)
                                   : absl::string_view(name).substr(slash + 1);
    if (absl::StartsWith(rel, "code/") && absl::EndsWith(rel, ".py")) {
      ++summary.num_code_files;
      // The source itself (PyTorch stores it deflated): entries of sane size
      // whose local header agrees; anything else is counted as unscanned.
      bool scanned = false;
      if ((method == 0 || method == 8) && usize <= kMaxScannedCode && csize <= kMaxScannedCode &&
          local_offset < static_cast<uint64_t>(file_size) &&
          static_cast<uint64_t>(file_size) - local_offset >= 30) {
        ASSIGN_OR_RETURN(std::string local, ReadRange(in, path, static_cast<int64_t>(local_offset), 30));
        const uint64_t data_offset = local_offset + 30 + U16(local.data() + 26) + U16(local.data() + 28);
        if (U32(local.data()) == kLocalSignature && data_offset + csize <= static_cast<uint64_t>(file_size)) {
          ASSIGN_OR_RETURN(std::string raw, ReadRange(in, path, static_cast<int64_t>(data_offset),
                                                      static_cast<int64_t>(csize)));
          std::optional<std::string> code;
          if (method == 0 && csize == usize) code = std::move(raw);
          if (method == 8) code = Inflate(raw, usize);
          if (code.has_value()) {
            ScanOps(*code, &summary.declared_ops);
            scanned = true;
          }
        }
      }
      if (!scanned) ++summary.num_unscanned_code_files;
    }
    if (rel == "constants.pkl") summary.has_constants_pkl = true;
    if (rel == "archive_format" || (absl::StartsWith(rel, "models/") && absl::EndsWith(rel, ".json"))) {
      summary.is_exported_program = true;
    }
    if (rel == "data.pkl") summary.has_data_pkl = true;
    if ((absl::StartsWith(rel, "data/") || absl::StartsWith(rel, "constants/")) &&
        !absl::EndsWith(rel, "/")) {
      ++summary.num_tensor_blobs;
      summary.tensor_bytes += usize;
    }
    summary.entries.push_back({std::move(name), usize});
  }
  for (const auto& [op, count] : summary.declared_ops) {
    if (std::string why = NotableOpReason(op); !why.empty()) summary.notable_ops[op] = std::move(why);
  }
  if (summary.is_exported_program) {
    return Bad(path,
               "this is a torch.export program (a .pt2 archive: models/*.json, "
               "archive_format), which LibTorch can neither load nor train. Save the "
               "model as TorchScript instead: torch.jit.trace(model, example).save(path) "
               "or torch.jit.script(model).save(path)");
  }
  if (!summary.has_data_pkl) return Bad(path, "the zip archive has no data.pkl");
  if (summary.num_code_files == 0 || !summary.has_constants_pkl) {
    return Bad(path,
               "the zip archive holds no TorchScript code: it looks like a "
               "torch.save() file (a state_dict?). Export the model with "
               "torch.jit.script(model).save(path) or "
               "torch.jit.trace(model, example).save(path)");
  }
  return summary;
}

}  // namespace slimfit
