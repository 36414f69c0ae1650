/// Ethernet header access on raw frame memory.
///
/// MAC addresses are carried as the low 48 bits of a UInt64 (first octet most significant), so a
/// comparison or hash is one integer operation and nothing is allocated.
public enum Ethernet {
    public static let headerLength = 14
    public static let broadcast: UInt64 = 0xffff_ffff_ffff

    /// Destination MAC of the frame at `frame` (which must hold at least 14 bytes).
    @inline(__always)
    public static func destination(_ frame: UnsafeRawPointer) -> UInt64 {
        // Bytes 0..7 hold dst (6) + the first 2 bytes of src.
        UInt64(bigEndian: frame.loadUnaligned(as: UInt64.self)) >> 16
    }

    /// Source MAC of the frame at `frame` (which must hold at least 14 bytes).
    @inline(__always)
    public static func source(_ frame: UnsafeRawPointer) -> UInt64 {
        // Bytes 6..13 hold src (6) + the ethertype.
        UInt64(bigEndian: (frame + 6).loadUnaligned(as: UInt64.self)) >> 16
    }

    @inline(__always)
    public static func etherType(_ frame: UnsafeRawPointer) -> UInt16 {
        UInt16(bigEndian: (frame + 12).loadUnaligned(as: UInt16.self))
    }

    /// Group (multicast or broadcast) addresses have the I/G bit, the low bit of the first octet, set.
    @inline(__always)
    public static func isGroup(_ mac: UInt64) -> Bool { mac & (1 << 40) != 0 }

    @inline(__always)
    public static func setDestination(_ frame: UnsafeMutableRawPointer, _ mac: UInt64) {
        store(mac, at: frame)
    }

    @inline(__always)
    public static func setSource(_ frame: UnsafeMutableRawPointer, _ mac: UInt64) {
        store(mac, at: frame + 6)
    }

    @inline(__always)
    static func store(_ mac: UInt64, at p: UnsafeMutableRawPointer) {
        p.storeBytes(of: UInt32(truncatingIfNeeded: mac >> 16).bigEndian, as: UInt32.self)
        (p + 4).storeBytes(of: UInt16(truncatingIfNeeded: mac).bigEndian, as: UInt16.self)
    }
}
