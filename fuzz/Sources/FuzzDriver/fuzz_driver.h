// libFuzzer's entry for programs that have their own main (compiler-rt FuzzerInterface.h).
// SwiftPM gives every executable a main of its own (it renames the module's entry point and links
// `main` to it), so the targets start libFuzzer from main.swift instead of using libFuzzer's main.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
