// File: common/allocator.h
//
// glibc malloc, left at its defaults, serves every tensor above its mmap
// threshold (128 KiB at start, raised only as large blocks are freed) with a
// fresh mmap and hands it back to the OS on free — so a training step that
// allocates a few MiB-sized activations page-faults them in again on every
// step. Measured on this project's machine (resnet_small, batch 128, one
// thread): the first epoch ran ~2x slower and spent ~4x more system time than
// with the thresholds raised.
//
// TuneAllocatorForTensors() raises them once per process: blocks up to 32 MiB
// come from the heap, and up to 1 GiB of freed heap is kept for reuse instead
// of being trimmed. The cost is that a process may hold that much freed
// memory. Tools and the Trainer call it; a program embedding slimfit that
// wants glibc's defaults can call KeepDefaultAllocator() first.
#ifndef SLIMFIT_COMMON_ALLOCATOR_H_
#define SLIMFIT_COMMON_ALLOCATOR_H_

namespace slimfit {

// Idempotent; returns true if the settings are in force.
bool TuneAllocatorForTensors();

// Makes later TuneAllocatorForTensors() calls do nothing.
void KeepDefaultAllocator();

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_ALLOCATOR_H_
