#include "data/image_codec.h"

#include "common/field_error.h"

// clang-format off
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE and size_t first
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
// clang-format on

#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace slimfit {
namespace {

absl::Status TooLarge(int64_t width, int64_t height) {
  return absl::ResourceExhaustedError(absl::StrCat(width, "x", height, " pixels is more than the limit of ",
                                                   kMaxImagePixels, " (a decompression bomb?)"));
}

// ---- JPEG -------------------------------------------------------------------

struct JpegErrorManager {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void JpegErrorExit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings are ignored except running out of data: libjpeg would pad a
// truncated file with gray, PIL refuses it ("image file is truncated").
void JpegEmitMessage(j_common_ptr cinfo, int level) {
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) JpegErrorExit(cinfo);
}

absl::StatusOr<Image> DecodeJpeg(absl::string_view bytes, ColorMode mode) {
  // Heap-held so that nothing automatic changes between setjmp and longjmp.
  auto out = std::make_unique<Image>();
  auto cinfo = std::make_unique<jpeg_decompress_struct>();
  auto err = std::make_unique<JpegErrorManager>();
  cinfo->err = jpeg_std_error(&err->mgr);
  err->mgr.error_exit = JpegErrorExit;
  err->mgr.emit_message = JpegEmitMessage;
  if (setjmp(err->jump)) {
    jpeg_destroy_decompress(cinfo.get());
    return absl::DataLossError(absl::StrCat("corrupt or truncated JPEG: ", err->message));
  }
  jpeg_create_decompress(cinfo.get());
  jpeg_mem_src(cinfo.get(), reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(cinfo.get(), TRUE);
  if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(cinfo.get());
    return absl::UnimplementedError("CMYK JPEG: convert it to RGB first (e.g. PIL's convert(\"RGB\"))");
  }
  if (static_cast<int64_t>(cinfo->image_width) * cinfo->image_height > kMaxImagePixels) {
    const auto w = cinfo->image_width, h = cinfo->image_height;
    jpeg_destroy_decompress(cinfo.get());
    return TooLarge(w, h);
  }
  cinfo->out_color_space = mode == ColorMode::kGray ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(cinfo.get());
  out->width = static_cast<int>(cinfo->output_width);
  out->height = static_cast<int>(cinfo->output_height);
  out->channels = cinfo->output_components;
  const size_t row_bytes = static_cast<size_t>(out->width) * out->channels;
  out->pixels.resize(row_bytes * out->height);
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = out->pixels.data() + row_bytes * cinfo->output_scanline;
    jpeg_read_scanlines(cinfo.get(), &row, 1);
  }
  jpeg_finish_decompress(cinfo.get());
  jpeg_destroy_decompress(cinfo.get());
  return std::move(*out);
}

// ---- PNG --------------------------------------------------------------------

struct PngState {
  const uint8_t* data;
  size_t size;
  size_t position;
  char message[256];
};

[[noreturn]] void PngError(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof(state->message), "%s", message);
  png_longjmp(png, 1);
}

void PngWarning(png_structp, png_const_charp) {}

void PngRead(png_structp png, png_bytep dest, png_size_t n) {
  auto* state = static_cast<PngState*>(png_get_io_ptr(png));
  if (n > state->size - state->position) png_error(png, "unexpected end of file");
  std::memcpy(dest, state->data + state->position, n);
  state->position += n;
}

absl::StatusOr<Image> DecodePng(absl::string_view bytes, ColorMode mode) {
  auto out = std::make_unique<Image>();
  auto rows = std::make_unique<std::vector<png_bytep>>();
  auto state = std::make_unique<PngState>();
  state->data = reinterpret_cast<const uint8_t*>(bytes.data());
  state->size = bytes.size();
  state->position = 0;
  state->message[0] = '\0';
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, state.get(), PngError, PngWarning);
  if (png == nullptr) return absl::ResourceExhaustedError("libpng: cannot allocate a reader");
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return absl::ResourceExhaustedError("libpng: cannot allocate a reader");
  }
  // png and info are not modified after this point: safe across longjmp.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return absl::DataLossError(absl::StrCat("corrupt or truncated PNG: ", state->message));
  }
  png_set_read_fn(png, state.get(), PngRead);
  png_read_info(png, info);
  const png_uint_32 width = png_get_image_width(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  const int color_type = png_get_color_type(png, info);
  if (bit_depth == 16) {
    png_destroy_read_struct(&png, &info, nullptr);
    return absl::UnimplementedError("16-bit PNG: only 8-bit images are read (convert it to 8 bits first)");
  }
  if (static_cast<int64_t>(width) * height > kMaxImagePixels) {
    png_destroy_read_struct(&png, &info, nullptr);
    return TooLarge(width, height);
  }
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  out->width = static_cast<int>(width);
  out->height = static_cast<int>(height);
  out->channels = png_get_channels(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  if ((out->channels != 1 && out->channels != 3) || row_bytes != static_cast<size_t>(width) * out->channels) {
    png_destroy_read_struct(&png, &info, nullptr);
    return absl::InternalError(absl::StrCat("PNG reader produced ", out->channels, " channels, ", row_bytes,
                                            " bytes per row for width ", width));
  }
  out->pixels.resize(row_bytes * height);
  rows->resize(height);
  for (png_uint_32 y = 0; y < height; ++y) (*rows)[y] = out->pixels.data() + row_bytes * y;
  png_read_image(png, rows->data());
  png_destroy_read_struct(&png, &info, nullptr);
  return std::move(*out);
}

absl::Status CheckImage(const Image& image) {
  if ((image.channels != 1 && image.channels != 3) || image.height < 1 || image.width < 1 ||
      image.pixels.size() != static_cast<size_t>(image.height) * image.width * image.channels) {
    return absl::InvalidArgumentError(absl::StrCat("image: ", image.height, "x", image.width, "x", image.channels,
                                                   " with ", image.pixels.size(),
                                                   " bytes (want 1 or 3 channels and H*W*C bytes)"));
  }
  return absl::OkStatus();
}

}  // namespace

void ConvertChannels(Image& img, ColorMode mode) {
  const int64_t n = static_cast<int64_t>(img.height) * img.width;
  if (mode == ColorMode::kRgb && img.channels == 1) {
    std::vector<uint8_t> rgb(static_cast<size_t>(n) * 3);
    for (int64_t i = 0; i < n; ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = img.pixels[i];
    img.pixels = std::move(rgb);
    img.channels = 3;
  } else if (mode == ColorMode::kGray && img.channels == 3) {
    std::vector<uint8_t> gray(static_cast<size_t>(n));
    const uint8_t* p = img.pixels.data();
    for (int64_t i = 0; i < n; ++i, p += 3) {
      gray[i] = static_cast<uint8_t>((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    }
    img.pixels = std::move(gray);
    img.channels = 1;
  }
}

ImageFormat SniffImageFormat(absl::string_view bytes) {
  static constexpr char kPng[] = "\x89PNG\r\n\x1a\n";
  if (bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xFF && static_cast<uint8_t>(bytes[1]) == 0xD8 &&
      static_cast<uint8_t>(bytes[2]) == 0xFF) {
    return ImageFormat::kJpeg;
  }
  if (bytes.size() >= 8 && bytes.substr(0, 8) == absl::string_view(kPng, 8)) return ImageFormat::kPng;
  return ImageFormat::kUnknown;
}

absl::StatusOr<Image> DecodeImage(absl::string_view bytes, ColorMode mode) {
  absl::StatusOr<Image> image;
  switch (SniffImageFormat(bytes)) {
    case ImageFormat::kJpeg:
      image = DecodeJpeg(bytes, mode);
      break;
    case ImageFormat::kPng:
      image = DecodePng(bytes, mode);
      break;
    case ImageFormat::kUnknown: {
      std::string head;
      for (size_t i = 0; i < bytes.size() && i < 8; ++i) {
        absl::StrAppend(&head, i ? " " : "", absl::StrFormat("%02x", static_cast<uint8_t>(bytes[i])));
      }
      return absl::InvalidArgumentError(
          absl::StrCat("neither JPEG nor PNG (", bytes.size(), " bytes, first: ", head.empty() ? "none" : head, ")"));
    }
  }
  if (!image.ok()) return image.status();
  ConvertChannels(*image, mode);
  return image;
}

absl::StatusOr<std::string> EncodePng(const Image& image) {
  if (absl::Status s = CheckImage(image); !s.ok()) return s;
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = image.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, image.pixels.data(), 0, nullptr)) {
    return absl::InternalError(absl::StrCat("libpng: ", png.message));
  }
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.pixels.data(), 0, nullptr)) {
    return absl::InternalError(absl::StrCat("libpng: ", png.message));
  }
  out.resize(size);
  return out;
}

absl::StatusOr<std::string> EncodeJpeg(const Image& image, int quality) {
  if (absl::Status s = CheckImage(image); !s.ok()) return s;
  if (quality < 1 || quality > 100) {
    return FieldError("quality", "out of range", quality, "[1, 100]");
  }
  auto cinfo = std::make_unique<jpeg_compress_struct>();
  auto err = std::make_unique<JpegErrorManager>();
  auto buffer = std::make_unique<unsigned char*>(nullptr);
  auto size = std::make_unique<unsigned long>(0);  // NOLINT(runtime/int): libjpeg's type
  cinfo->err = jpeg_std_error(&err->mgr);
  err->mgr.error_exit = JpegErrorExit;
  if (setjmp(err->jump)) {
    jpeg_destroy_compress(cinfo.get());
    std::free(*buffer);
    return absl::InternalError(absl::StrCat("libjpeg: ", err->message));
  }
  jpeg_create_compress(cinfo.get());
  jpeg_mem_dest(cinfo.get(), buffer.get(), size.get());
  cinfo->image_width = static_cast<JDIMENSION>(image.width);
  cinfo->image_height = static_cast<JDIMENSION>(image.height);
  cinfo->input_components = image.channels;
  cinfo->in_color_space = image.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(cinfo.get());
  jpeg_set_quality(cinfo.get(), quality, TRUE);
  jpeg_start_compress(cinfo.get(), TRUE);
  const size_t row_bytes = static_cast<size_t>(image.width) * image.channels;
  while (cinfo->next_scanline < cinfo->image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(image.pixels.data() + row_bytes * cinfo->next_scanline);
    jpeg_write_scanlines(cinfo.get(), &row, 1);
  }
  jpeg_finish_compress(cinfo.get());
  std::string out(reinterpret_cast<const char*>(*buffer), *size);
  jpeg_destroy_compress(cinfo.get());
  std::free(*buffer);
  return out;
}

}  // namespace slimfit
