import FuzzDriver
import Glibc

// Hands control to libFuzzer (its usual options: corpus directories, -runs=, -max_total_time=, …).
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzz(data ?? UnsafePointer(bitPattern: 1)!, size) })
