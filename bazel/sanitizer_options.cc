// Default options for the sanitizer runtimes, linked into every slimfit test
// and binary (slimfit_cc_test / slimfit_cc_binary / the fuzz targets). The
// runtimes call these hooks at start-up when the program is built with
// --config=asan, --config=ubsan or --config=fuzz; otherwise nothing calls
// them. Environment variables (ASAN_OPTIONS, LSAN_OPTIONS, UBSAN_OPTIONS)
// still override them.
//
// LeakSanitizer suppressions — LibTorch's, not ours. LibTorch and c10 build
// process-lifetime singletons at load time and on first use (the operator
// registry and its schemas, the JIT's symbol and type tables, the CPU
// allocator's and the intra-op thread pool's state) and deliberately never
// free them; protobuf's generated descriptor pool does the same. LSan reports
// those at exit as "leaks". They are matched by the library the allocation's
// stack passes through (libtorch_cpu.so, libc10.so, libprotobuf.so; and
// LibTorch's CUDA half and the CUDA runtime libraries it loads, which a test
// that asks for a CUDA device loads: model/device.h). A leak whose stack
// stays in slimfit code is still reported and fails the test.
extern "C" {

const char* __asan_default_options() {
  // detect_leaks: LSan on (gcc's ASan already enables it on x86-64 Linux).
  return "detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1";
}

const char* __lsan_default_suppressions() {
  return "leak:libtorch_cpu.so\n"
         "leak:libc10.so\n"
         "leak:libprotobuf.so\n"
         "leak:libtorch_cuda.so\n"
         "leak:libc10_cuda.so\n"
         "leak:libcudart.so\n"
         "leak:libcublas\n"
         "leak:libcudnn\n"
         "leak:libnccl.so\n";
}

const char* __ubsan_default_options() {
  return "print_stacktrace=1:halt_on_error=1";
}

}  // extern "C"
