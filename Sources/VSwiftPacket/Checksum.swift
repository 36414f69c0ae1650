/// Internet checksums (RFC 1071) with incremental updates (RFC 1624), and CRC32c (SCTP, RFC 4960).
///
/// Conventions: every 16-bit sum or checksum passed in or returned is a *host-order number equal to
/// the big-endian value on the wire* (what `UInt16(bigEndian: load)` gives), so sums of header fields
/// given as integers and sums of raw bytes combine with `add`. "Sum" means the folded one's-complement
/// sum (not complemented); "checksum" means its complement, the value stored in a header.
///
/// Nothing here allocates; all functions work on raw memory with explicit lengths and never touch a
/// byte outside `[p, p + length)`.
public enum Checksum {
    // MARK: RFC 1071

    /// Folded one's-complement sum of `length` bytes at `p` (an odd trailing byte is padded with zero,
    /// so when sums of several pieces are combined, only the last piece may have an odd length).
    /// 64-bit accumulation: one add-with-carry per 8 bytes.
    @inlinable
    public static func sum(_ p: UnsafeRawPointer, length: Int) -> UInt16 {
        var acc: UInt64 = 0
        var i = 0
        // The sum is taken over native-order loads; one's-complement addition commutes with the byte
        // swap (RFC 1071 §2B), so the folded result is swapped once at the end.
        while i &+ 32 <= length {
            acc = addCarry(acc, p.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            acc = addCarry(acc, p.loadUnaligned(fromByteOffset: i &+ 8, as: UInt64.self))
            acc = addCarry(acc, p.loadUnaligned(fromByteOffset: i &+ 16, as: UInt64.self))
            acc = addCarry(acc, p.loadUnaligned(fromByteOffset: i &+ 24, as: UInt64.self))
            i &+= 32
        }
        while i &+ 8 <= length {
            acc = addCarry(acc, p.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i &+= 8
        }
        // Tail: at most 7 bytes, each piece at an even offset from `p`.
        var tail: UInt64 = 0
        if i &+ 4 <= length {
            tail &+= UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            i &+= 4
        }
        if i &+ 2 <= length {
            tail &+= UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt16.self))
            i &+= 2
        }
        if i < length {
            // The odd byte is the high byte of a zero-padded big-endian word: its position in memory
            // (the low byte of a little-endian word) is exactly what a native load of it gives.
            let byte = UInt64(p.load(fromByteOffset: i, as: UInt8.self))
            #if _endian(big)
            tail &+= byte << 8
            #else
            tail &+= byte
            #endif
        }
        acc = addCarry(acc, tail)
        return UInt16(bigEndian: fold(acc))
    }

    /// `sum` of the 20 bytes of an IPv4 header without options: three loads, no loop (the packet
    /// path checks one per LISP packet received).
    @inlinable @inline(__always)
    public static func sumIPv4BaseHeader(_ p: UnsafeRawPointer) -> UInt16 {
        var acc = addCarry(p.loadUnaligned(fromByteOffset: 0, as: UInt64.self), p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        acc = addCarry(acc, UInt64(p.loadUnaligned(fromByteOffset: 16, as: UInt32.self)))
        return UInt16(bigEndian: fold(acc))
    }

    /// The RFC 1071 checksum of `length` bytes at `p`: `~sum`.
    @inlinable
    public static func checksum(_ p: UnsafeRawPointer, length: Int) -> UInt16 {
        ~sum(p, length: length)
    }

    /// One's-complement addition of two folded sums.
    @inlinable @inline(__always)
    public static func add(_ a: UInt16, _ b: UInt16) -> UInt16 {
        let s = UInt32(a) &+ UInt32(b)
        return UInt16(truncatingIfNeeded: (s & 0xffff) &+ (s >> 16))
    }

    /// The checksum for an IPv4 header of `headerLength` bytes at `header`, computed as if its checksum
    /// field (bytes 10..<12) were zero, whatever it holds. `headerLength` must be at least 12.
    @inlinable
    public static func ipv4Header(_ header: UnsafeRawPointer, headerLength: Int) -> UInt16 {
        let field = UInt16(bigEndian: (header + 10).loadUnaligned(as: UInt16.self))
        // Adding the complement of the field cancels it.
        return ~add(sum(header, length: headerLength), ~field)
    }

    // MARK: Pseudo-headers

    /// Folded sum of the IPv4 pseudo-header (RFC 793/768): addresses, protocol, transport length.
    @inlinable @inline(__always)
    public static func pseudoHeaderIPv4(source: UInt32, destination: UInt32, protocol proto: UInt8,
                                        length: Int) -> UInt16 {
        var s = UInt64(source >> 16) &+ UInt64(source & 0xffff)
        s &+= UInt64(destination >> 16) &+ UInt64(destination & 0xffff)
        s &+= UInt64(proto) &+ UInt64(UInt32(truncatingIfNeeded: length) >> 16)
        s &+= UInt64(UInt32(truncatingIfNeeded: length) & 0xffff)
        return foldHost(s)
    }

    /// Folded sum of the IPv6 pseudo-header (RFC 8200 §8.1) for 16-byte addresses in memory at
    /// `source` and `destination` (e.g. offsets 8 and 24 of an IPv6 header).
    @inlinable @inline(__always)
    public static func pseudoHeaderIPv6(source: UnsafeRawPointer, destination: UnsafeRawPointer,
                                        nextHeader: UInt8, length: Int) -> UInt16 {
        let len = UInt32(truncatingIfNeeded: length)
        let tail = UInt64(len >> 16) &+ UInt64(len & 0xffff) &+ UInt64(nextHeader)
        return add(add(sum(source, length: 16), sum(destination, length: 16)), foldHost(tail))
    }

    /// Folded sum of the IPv6 pseudo-header for addresses given as (high, low) 64-bit words, as in a
    /// `FlowKey`.
    @inlinable @inline(__always)
    public static func pseudoHeaderIPv6(source: (UInt64, UInt64), destination: (UInt64, UInt64),
                                        nextHeader: UInt8, length: Int) -> UInt16 {
        let len = UInt32(truncatingIfNeeded: length)
        var acc = addCarry(source.0, source.1)
        acc = addCarry(acc, destination.0)
        acc = addCarry(acc, destination.1)
        acc = addCarry(acc, UInt64(len) &+ UInt64(nextHeader))
        return foldHost(acc)
    }

    /// The TCP/UDP checksum over IPv4 of the transport segment at `segment` (`length` bytes, its
    /// checksum field zeroed by the caller). For UDP, store 0xffff when this returns 0 (RFC 768).
    @inlinable
    public static func transportIPv4(_ segment: UnsafeRawPointer, length: Int, source: UInt32,
                                     destination: UInt32, protocol proto: UInt8) -> UInt16 {
        ~add(pseudoHeaderIPv4(source: source, destination: destination, protocol: proto, length: length),
             sum(segment, length: length))
    }

    /// The TCP/UDP/ICMPv6 checksum over IPv6 of the segment at `segment` (`length` bytes, its checksum
    /// field zeroed by the caller); the addresses are 16 bytes each in memory.
    @inlinable
    public static func transportIPv6(_ segment: UnsafeRawPointer, length: Int, source: UnsafeRawPointer,
                                     destination: UnsafeRawPointer, nextHeader: UInt8) -> UInt16 {
        ~add(pseudoHeaderIPv6(source: source, destination: destination, nextHeader: nextHeader, length: length),
             sum(segment, length: length))
    }

    // MARK: RFC 1624 incremental updates

    /// The checksum after a 16-bit word covered by it changes from `old16` to `new16`:
    /// `HC' = ~(~HC + ~m + m')` (RFC 1624 eqn. 3). Gives the same value as recomputing, except that a
    /// checksum over all-zero data comes out 0 rather than 0xffff (both are one's-complement zero).
    @inlinable @inline(__always)
    public static func update(checksum: UInt16, old16: UInt16, new16: UInt16) -> UInt16 {
        var s = UInt32(~checksum) &+ UInt32(~old16) &+ UInt32(new16)
        s = (s & 0xffff) &+ (s >> 16)
        s = (s & 0xffff) &+ (s >> 16)
        return ~UInt16(truncatingIfNeeded: s)
    }

    /// The checksum after a 32-bit field (two aligned 16-bit words, e.g. an IPv4 address) changes.
    @inlinable @inline(__always)
    public static func update(checksum: UInt16, old32: UInt32, new32: UInt32) -> UInt16 {
        let s = UInt64(~checksum) &+ UInt64(~old32) &+ UInt64(new32)
        return ~foldHost(s)
    }

    /// The checksum after a 128-bit field (e.g. an IPv6 address, as (high, low) words) changes.
    @inlinable @inline(__always)
    public static func update(checksum: UInt16, old128: (UInt64, UInt64), new128: (UInt64, UInt64)) -> UInt16 {
        var acc = addCarry(UInt64(~checksum), ~old128.0)
        acc = addCarry(acc, ~old128.1)
        acc = addCarry(acc, new128.0)
        acc = addCarry(acc, new128.1)
        return ~foldHost(acc)
    }

    // MARK: Folding

    /// 64-bit one's-complement addition (end-around carry).
    @inlinable @inline(__always)
    static func addCarry(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (s, o) = a.addingReportingOverflow(b)
        return s &+ (o ? 1 : 0)
    }

    /// Folds a 64-bit one's-complement accumulator to 16 bits (same byte order as the input).
    @inlinable @inline(__always)
    static func fold(_ acc: UInt64) -> UInt16 {
        var s = (acc >> 32) &+ (acc & 0xffff_ffff)
        s = (s >> 32) &+ (s & 0xffff_ffff)
        s = (s >> 16) &+ (s & 0xffff)
        s = (s >> 16) &+ (s & 0xffff)
        return UInt16(truncatingIfNeeded: s)
    }

    /// `fold` for accumulators of host-order values.
    @inlinable @inline(__always)
    static func foldHost(_ acc: UInt64) -> UInt16 { fold(acc) }

    // MARK: CRC32c (Castagnoli), for SCTP

    /// Builds the CRC32c tables now (8 KB, once per process) so that the first SCTP packet on a
    /// worker does not allocate. Optional: they are otherwise built on first use.
    public static func prepareCRC32c() {
        _ = CRC32cTables.shared
    }

    /// CRC32c of `length` bytes at `p` (reflected polynomial 0x82f63b78, initial value and final XOR
    /// 0xffffffff). Chain pieces by passing the previous result as `initial`. SCTP stores the result
    /// little-endian (`crc.littleEndian` in memory). Slicing-by-8, tables built on first use.
    public static func crc32c(_ p: UnsafeRawPointer, length: Int, initial: UInt32 = 0) -> UInt32 {
        let t = CRC32cTables.shared.base
        var crc = ~initial
        var i = 0
        while i &+ 8 <= length {
            let w = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) ^ UInt64(crc)
            crc = t[7 &* 256 &+ Int(w & 0xff)] ^ t[6 &* 256 &+ Int((w >> 8) & 0xff)]
                ^ t[5 &* 256 &+ Int((w >> 16) & 0xff)] ^ t[4 &* 256 &+ Int((w >> 24) & 0xff)]
                ^ t[3 &* 256 &+ Int((w >> 32) & 0xff)] ^ t[2 &* 256 &+ Int((w >> 40) & 0xff)]
                ^ t[256 &+ Int((w >> 48) & 0xff)] ^ t[Int(w >> 56)]
            i &+= 8
        }
        while i < length {
            crc = t[Int((crc ^ UInt32(p.load(fromByteOffset: i, as: UInt8.self))) & 0xff)] ^ (crc >> 8)
            i &+= 1
        }
        return ~crc
    }

    /// The change of a CRC32c over a message of `length` bytes when bytes `[0, 4)` change by XOR with
    /// `delta` (given in memory order, i.e. as loaded little-endian) and nothing else changes.
    /// The CRC is affine in the message, so `crc(new) = crc(old) ^ crc32cDelta(...)`: the raw CRC of
    /// the 4 changed bytes advanced over `length - 4` zero bytes (multiplication by x^(8(length-4))
    /// mod P, as zlib's crc32_combine). O(log length), independent of the payload.
    public static func crc32cDelta(firstWordXOR delta: UInt32, length: Int) -> UInt32 {
        let t = CRC32cTables.shared.base
        var c: UInt32 = 0
        var d = delta
        for _ in 0..<4 {
            c = t[Int((c ^ d) & 0xff)] ^ (c >> 8)
            d >>= 8
        }
        guard length > 4 else { return c }
        return CRC32cTables.multiply(CRC32cTables.xPower8(length &- 4), c)
    }
}

/// Slicing-by-8 tables and x^(2^k) powers for CRC32c, allocated once and never freed.
// @unchecked: the tables are written once, in `init` (run once, for `shared`), and only read after.
struct CRC32cTables: @unchecked Sendable {
    static let polynomial: UInt32 = 0x82f6_3b78
    /// 8 × 256 table entries followed by 32 powers x^(2^k) mod P.
    let base: UnsafeMutablePointer<UInt32>

    static let shared = CRC32cTables()

    private init() {
        base = .allocate(capacity: 8 * 256 + 32)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ CRC32cTables.polynomial : c >> 1 }
            base[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let prev = base[(k - 1) * 256 + i]
                base[k * 256 + i] = (prev >> 8) ^ base[Int(prev & 0xff)]
            }
        }
        // Powers in reflected representation: bit 31 is x^0. x^1 = 1 << 30.
        var p: UInt32 = 1 << 30
        base[8 * 256] = p
        for k in 1..<32 {
            p = CRC32cTables.multiply(p, p)
            base[8 * 256 + k] = p
        }
    }

    /// a·b mod P in the reflected representation (zlib's multmodp).
    static func multiply(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var m: UInt32 = 1 << 31
        var b = b
        var p: UInt32 = 0
        while m != 0 {
            if a & m != 0 { p ^= b }
            m >>= 1
            b = b & 1 != 0 ? (b >> 1) ^ polynomial : b >> 1
        }
        return p
    }

    /// x^(8n) mod P.
    static func xPower8(_ n: Int) -> UInt32 {
        let powers = shared.base + 8 * 256
        var p: UInt32 = 1 << 31 // x^0
        var n = n
        var k = 3 // x^(2^3) = x^8 per byte
        while n != 0 && k < 32 {
            if n & 1 != 0 { p = multiply(powers[k], p) }
            n >>= 1
            k += 1
        }
        return p
    }
}

// MARK: Big-endian field access on raw frames (shared by the parser and the rewriters)

/// Loads and stores of network-order fields at byte offsets; callers check bounds.
@usableFromInline
enum Wire {
    @inlinable @inline(__always)
    static func u8(_ p: UnsafeRawPointer, _ o: Int) -> UInt8 { p.load(fromByteOffset: o, as: UInt8.self) }

    @inlinable @inline(__always)
    static func u16(_ p: UnsafeRawPointer, _ o: Int) -> UInt16 {
        UInt16(bigEndian: (p + o).loadUnaligned(as: UInt16.self))
    }

    @inlinable @inline(__always)
    static func u32(_ p: UnsafeRawPointer, _ o: Int) -> UInt32 {
        UInt32(bigEndian: (p + o).loadUnaligned(as: UInt32.self))
    }

    @inlinable @inline(__always)
    static func u64(_ p: UnsafeRawPointer, _ o: Int) -> UInt64 {
        UInt64(bigEndian: (p + o).loadUnaligned(as: UInt64.self))
    }

    /// 48-bit MAC at `o` via an 8-byte load: needs `o + 8` bytes available.
    @inlinable @inline(__always)
    static func mac8(_ p: UnsafeRawPointer, _ o: Int) -> UInt64 { u64(p, o) >> 16 }

    /// Stores the low 48 bits of `mac` at `o` (6 bytes).
    @inlinable @inline(__always)
    static func putMAC(_ p: UnsafeMutableRawPointer, _ o: Int, _ mac: UInt64) {
        put32(p, o, UInt32(truncatingIfNeeded: mac >> 16))
        put16(p, o &+ 4, UInt16(truncatingIfNeeded: mac))
    }

    @inlinable @inline(__always)
    static func put8(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt8) {
        p.storeBytes(of: v, toByteOffset: o, as: UInt8.self)
    }

    @inlinable @inline(__always)
    static func put16(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt16) {
        (p + o).storeBytes(of: v.bigEndian, as: UInt16.self)
    }

    @inlinable @inline(__always)
    static func put32(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt32) {
        (p + o).storeBytes(of: v.bigEndian, as: UInt32.self)
    }

    @inlinable @inline(__always)
    static func put64(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt64) {
        (p + o).storeBytes(of: v.bigEndian, as: UInt64.self)
    }
}
