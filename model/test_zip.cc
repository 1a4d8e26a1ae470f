#include "model/test_zip.h"

namespace slimfit::testing {
namespace {

void Put16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xFF));
  s.push_back(static_cast<char>(v >> 8));
}
void Put32(std::string& s, uint32_t v) {
  Put16(s, static_cast<uint16_t>(v & 0xFFFF));
  Put16(s, static_cast<uint16_t>(v >> 16));
}

}  // namespace

std::string MakeZip(const std::vector<ZipEntry>& entries) {
  std::string out, central;
  for (const ZipEntry& e : entries) {
    const uint32_t offset = static_cast<uint32_t>(out.size());
    const uint32_t size = static_cast<uint32_t>(e.data.size());
    Put32(out, 0x04034b50);
    Put16(out, 20); Put16(out, 0); Put16(out, 0);  // version, flags, stored
    Put16(out, 0); Put16(out, 0);                  // time, date
    Put32(out, 0);                                 // crc (not checked here)
    Put32(out, size); Put32(out, size);
    Put16(out, static_cast<uint16_t>(e.name.size())); Put16(out, 0);
    out += e.name;
    out += e.data;

    Put32(central, 0x02014b50);
    Put16(central, 20); Put16(central, 20); Put16(central, 0); Put16(central, 0);
    Put16(central, 0); Put16(central, 0);
    Put32(central, 0);
    Put32(central, size);
    Put32(central, e.claimed_size != 0 ? e.claimed_size : size);
    Put16(central, static_cast<uint16_t>(e.name.size()));
    Put16(central, 0); Put16(central, 0); Put16(central, 0); Put16(central, 0);
    Put32(central, 0);
    Put32(central, offset);
    central += e.name;
  }
  const uint32_t cd_offset = static_cast<uint32_t>(out.size());
  out += central;
  Put32(out, 0x06054b50);
  Put16(out, 0); Put16(out, 0);
  Put16(out, static_cast<uint16_t>(entries.size()));
  Put16(out, static_cast<uint16_t>(entries.size()));
  Put32(out, static_cast<uint32_t>(central.size()));
  Put32(out, cd_offset);
  Put16(out, 0);
  return out;
}

}  // namespace slimfit::testing
