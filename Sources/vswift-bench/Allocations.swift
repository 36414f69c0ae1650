import CXDP
import Foundation
import Glibc
import MallocInterposerSwift
import Synchronization

/// Heap allocations made by the switch's worker threads over a measurement window, counted by
/// malloc-interposer (ordo-one), whose malloc/calloc/realloc/free/posix_memalign/... replacements
/// count per thread while enabled.
///
/// On Linux the interposer works only if its library comes before libc in symbol lookup, which
/// LD_PRELOAD guarantees: `prepareProcess()` checks that a malloc is really counted and, if not,
/// re-executes the bench with LD_PRELOAD naming the library it is linked with (then removes
/// LD_PRELOAD from its own environment so the commands it runs do not inherit it).
///
/// Attribution: an allocation hook, run on the allocating thread for each counted allocation,
/// compares the thread's id with the worker thread ids and counts the matches. The process-wide
/// total over the same window (main thread, generator, ...) is kept too, for the JSON output.
enum AllocationCounter {
    private static let reexecMarker = "VSWIFT_BENCH_PRELOADED"
    private static let libraryName = "libMallocInterposerSwift.so"
    private static let maxTracked = 64

    /// Whether counting works in this process (decided by `prepareProcess`).
    static var isAvailable: Bool { available.load(ordering: .relaxed) }
    private static let available = Atomic<Bool>(false)
    /// Why not, if it does not.
    static var unavailableReason: String { reason.withLock { $0 } }
    private static let reason = Mutex("")

    // Read by the allocation hook (any thread), written by `begin` only while the hook is not
    // installed; installing it (`setAllocationHook`, `hook`) publishes the writes. No lock or atomic
    // per id: the hook runs inside malloc.
    nonisolated(unsafe) private static let trackedThreads = UnsafeMutablePointer<Int32>.allocate(capacity: maxTracked)
    private static let trackedCount = Atomic<Int>(0)
    private static let trackedAllocations = Atomic<Int>(0)

    private static let hook: MallocInterposerSwift.AllocationHook = { _ in
        let tid = vs_gettid()
        for i in 0..<AllocationCounter.trackedCount.load(ordering: .relaxed) where AllocationCounter.trackedThreads[i] == tid {
            AllocationCounter.trackedAllocations.add(1, ordering: .relaxed)
            return
        }
    }

    /// Call first thing in main: may replace the process image (execv) to preload the interposer.
    static func prepareProcess() {
        let reexecuted = getenv(reexecMarker) != nil
        if reexecuted {
            unsetenv(reexecMarker)
            unsetenv("LD_PRELOAD")
        }
        if countsAllocations() {
            available.store(true, ordering: .relaxed)
            return
        }
        guard !reexecuted else {
            reason.withLock { $0 = "malloc-interposer does not count allocations even with LD_PRELOAD" }
            return
        }
        guard let library = loadedLibraryPath() else {
            reason.withLock { $0 = "\(libraryName) is not mapped into the process" }
            return
        }
        var preload = library
        if let existing = getenv("LD_PRELOAD") { preload += ":" + String(cString: existing) }
        setenv("LD_PRELOAD", preload, 1)
        setenv(reexecMarker, "1", 1)
        // CommandLine.unsafeArgv is NULL-terminated, as execv wants.
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        unsetenv("LD_PRELOAD")
        unsetenv(reexecMarker)
        let failure = "re-executing with LD_PRELOAD failed: \(errnoText())"
        reason.withLock { $0 = failure }
    }

    /// Does a malloc made now get counted?
    private static func countsAllocations() -> Bool {
        MallocInterposerSwift.reset()
        MallocInterposerSwift.hook()
        // Called through pointers from dlsym: the optimizer cannot drop a malloc/free pair it does
        // not recognise, and dlsym resolves the names the way every other caller's PLT does.
        typealias Malloc = @convention(c) (Int) -> UnsafeMutableRawPointer?
        typealias Free = @convention(c) (UnsafeMutableRawPointer?) -> Void
        guard let mallocSymbol = dlsym(nil, "malloc"), let freeSymbol = dlsym(nil, "free") else { return false }
        let pointer = unsafeBitCast(mallocSymbol, to: Malloc.self)(40)
        unsafeBitCast(freeSymbol, to: Free.self)(pointer)
        MallocInterposerSwift.unhook()
        let counted = MallocInterposerSwift.getStatistics().mallocCount
        MallocInterposerSwift.reset()
        return counted >= 1
    }

    /// The path of the interposer library as mapped (from /proc/self/maps).
    private static func loadedLibraryPath() -> String? {
        guard let maps = readTextFile("/proc/self/maps") else { return nil }
        for line in maps.split(separator: "\n") where line.hasSuffix("/" + libraryName) {
            if let slash = line.firstIndex(of: "/") { return String(line[slash...]) }
        }
        return nil
    }

    /// Starts counting; allocations by threads `tids` are attributed to them.
    static func begin(tracking tids: [Int32]) {
        guard isAvailable else { return }
        for (i, tid) in tids.prefix(maxTracked).enumerated() { trackedThreads[i] = tid }
        trackedCount.store(min(tids.count, maxTracked), ordering: .relaxed)
        trackedAllocations.store(0, ordering: .relaxed)
        MallocInterposerSwift.reset()
        MallocInterposerSwift.setAllocationHook(hook)
        MallocInterposerSwift.hook()
    }

    /// Stops counting: (allocations by the tracked threads, allocations by the whole process).
    static func end() -> (tracked: Int, process: Int)? {
        guard isAvailable else { return nil }
        MallocInterposerSwift.unhook()
        MallocInterposerSwift.setAllocationHook(nil)
        let process = MallocInterposerSwift.getStatistics().mallocCount
        return (trackedAllocations.load(ordering: .relaxed), process)
    }
}
