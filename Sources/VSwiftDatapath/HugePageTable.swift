import Glibc

/// Memory for a worker's tables that the packet path reads at random (the map-cache resolutions,
/// the tunnel next hops): whole 2 MiB pages where the kernel gives them (transparent huge pages,
/// asked for with madvise), so that reading them costs no TLB miss of its own — on 4 KiB pages, 64
/// next hops spread over a 512 KiB table are 64 pages, the whole first-level data TLB. The size is
/// rounded up to whole huge pages (a kernel backs only a 2 MiB-aligned, fully madvised range with
/// one). Plain data: nothing to deinitialize.
enum HugePageTable {
    static let hugePage = 2 << 20

    /// `capacity` elements, zero-filled pages (initialize them before use), 2 MiB-aligned.
    static func allocate<T>(_: T.Type, capacity: Int) -> UnsafeMutablePointer<T> {
        let bytes = max(capacity * MemoryLayout<T>.stride, 1)
        let rounded = (bytes + hugePage - 1) / hugePage * hugePage
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, hugePage, rounded) == 0, let raw else { fatalError("worker table of \(rounded) bytes: out of memory") }
        _ = madvise(raw, rounded, MADV_HUGEPAGE)
        return raw.bindMemory(to: T.self, capacity: capacity)
    }

    static func free<T>(_ pointer: UnsafeMutablePointer<T>) { Glibc.free(pointer) }
}
