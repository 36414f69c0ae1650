import Glibc

/// Memory for a snapshot's tables: cache-line aligned, and on 2 MiB pages (transparent huge
/// pages, asked for with madvise) when a table spans at least one. A 100k-prefix table is tens of
/// MiB read at random: on 4 KiB pages every probe would also be a TLB miss (as for the UMEM,
/// Umem.swift).
enum TableMemory {
    static let hugePage = 2 << 20

    static func allocate<T>(_: T.Type, capacity: Int) -> UnsafeMutablePointer<T> {
        let bytes = max(capacity, 1) * MemoryLayout<T>.stride
        let alignment = bytes >= hugePage ? hugePage : 64
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, alignment, bytes) == 0, let raw else { fatalError("map-cache table of \(bytes) bytes: out of memory") }
        if alignment == hugePage { _ = madvise(raw, bytes, MADV_HUGEPAGE) }
        return raw.bindMemory(to: T.self, capacity: max(capacity, 1))
    }

    /// Frees what `allocate` returned (its elements need no deinitialization: plain data).
    static func free<T>(_ pointer: UnsafeMutablePointer<T>) { Glibc.free(pointer) }
}
