import Testing
import VSwiftPacket
import VSwiftTesting

@Suite("Internet checksum and CRC32c")
struct ChecksumTests {
    func sum(_ bytes: [UInt8], offset: Int = 0) -> UInt16 {
        // Copy at `offset` into an exact-size buffer, to exercise unaligned starts.
        let p = UnsafeMutableRawPointer.allocate(byteCount: offset + max(bytes.count, 1), alignment: 16)
        defer { p.deallocate() }
        bytes.withUnsafeBytes { if let b = $0.baseAddress { (p + offset).copyMemory(from: b, byteCount: bytes.count) } }
        return Checksum.sum(p + offset, length: bytes.count)
    }

    @Test func ipv4BaseHeaderSumIsTheGeneralSum() {
        var generator = SplitMix64(seed: TestSeed.resolve(20))
        let replay = TestSeed.replay(generator.seed)
        for offset in 0..<4 {
            for _ in 0..<200 {
                let header = (0..<20).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let p = UnsafeMutableRawPointer.allocate(byteCount: 24, alignment: 16)
                defer { p.deallocate() }
                header.withUnsafeBytes { (p + offset).copyMemory(from: $0.baseAddress!, byteCount: 20) }
                #expect(Checksum.sumIPv4BaseHeader(p + offset) == sum(header), "\(replay)")
            }
        }
    }

    @Test func rfc1071Example() {
        // RFC 1071 §3: the sum of 00 01 f2 03 f4 f5 f6 f7 is dd f2.
        let bytes: [UInt8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
        #expect(sum(bytes) == 0xddf2)
        bytes.withUnsafeBytes { #expect(Checksum.checksum($0.baseAddress!, length: 8) == 0x220d) }
        #expect(sum([]) == 0)
        #expect(sum([0xab]) == 0xab00)
        #expect(sum([0xab, 0xcd, 0xef]) == 0xabcd + 0xef00 - 0xffff)
    }

    @Test func ipv4HeaderVector() {
        // A well-known header: 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7.
        var header: [UInt8] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xde, 0xad,
                               0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7]
        // Computed as if the field were zero, whatever it holds.
        header.withUnsafeBytes { #expect(Checksum.ipv4Header($0.baseAddress!, headerLength: 20) == 0xb861) }
        header[10] = 0xb8; header[11] = 0x61
        #expect(sum(header) == 0xffff)
    }

    @Test func matchesReferenceAtEveryLengthAndAlignment() {
        var rng = SplitMix64(seed: TestSeed.resolve(1))
        let replay = TestSeed.replay(rng.seed)
        for length in 0..<300 {
            let bytes = rng.bytes(length)
            let expected = UInt16(Ref.sum(bytes))
            for offset in 0..<3 {
                // 0 and 0xffff are both one's-complement zero; the reference folds to 0xffff only from
                // a nonzero sum, and so does the fast sum.
                #expect(sum(bytes, offset: offset) == expected, "length \(length) offset \(offset) \(replay)")
            }
        }
        // Worst case for carries: all 0xff.
        for length in [1, 2, 7, 8, 31, 32, 33, 1500, 9000] {
            let bytes = [UInt8](repeating: 0xff, count: length)
            #expect(sum(bytes) == UInt16(Ref.sum(bytes)), "\(replay)")
        }
    }

    @Test func piecesCombine() {
        var rng = SplitMix64(seed: TestSeed.resolve(2))
        let replay = TestSeed.replay(rng.seed)
        for _ in 0..<200 {
            let a = rng.bytes(Int(rng.next() % 50) * 2)
            let b = rng.bytes(Int(rng.next() % 100))
            #expect(Checksum.add(sum(a), sum(b)) == sum(a + b), "\(replay)")
        }
    }

    @Test func pseudoHeaders() {
        var rng = SplitMix64(seed: TestSeed.resolve(3))
        let replay = TestSeed.replay(rng.seed)
        for _ in 0..<200 {
            let segment = rng.bytes(Int(rng.next() % 200) + 8)
            let src = UInt32(truncatingIfNeeded: rng.next()), dst = UInt32(truncatingIfNeeded: rng.next())
            let expected = Ref.checksum(Ref.be32(src) + Ref.be32(dst) + [0, 17] + Ref.be16(UInt16(segment.count)) + segment)
            segment.withUnsafeBytes {
                #expect(Checksum.transportIPv4($0.baseAddress!, length: segment.count, source: src, destination: dst,
                                               protocol: 17) == expected, "\(replay)")
            }
            let s6 = V6(high: rng.next(), low: rng.next()), d6 = V6(high: rng.next(), low: rng.next())
            let expected6 = Ref.checksum(s6.bytes + d6.bytes + Ref.be32(UInt32(segment.count)) + [0, 0, 0, 6] + segment)
            let addresses = s6.bytes + d6.bytes
            addresses.withUnsafeBytes { a in
                segment.withUnsafeBytes {
                    let got = Checksum.transportIPv6($0.baseAddress!, length: segment.count, source: a.baseAddress!,
                                                     destination: a.baseAddress! + 16, nextHeader: 6)
                    #expect(got == expected6, "\(replay)")
                    let viaPointers = Checksum.pseudoHeaderIPv6(source: a.baseAddress!, destination: a.baseAddress! + 16,
                                                                nextHeader: 6, length: segment.count)
                    let viaWords = Checksum.pseudoHeaderIPv6(source: (s6.high, s6.low), destination: (d6.high, d6.low),
                                                             nextHeader: 6, length: segment.count)
                    #expect(viaPointers == viaWords, "\(replay)")
                }
            }
        }
    }

    /// Incremental updates equal recomputation for random rewrites of 16-, 32- and 128-bit fields.
    @Test func incrementalEqualsRecomputed() {
        var rng = SplitMix64(seed: TestSeed.resolve(4))
        let replay = TestSeed.replay(rng.seed)
        for _ in 0..<2000 {
            var data = rng.bytes(64)
            data[0] |= 1 // never all zero
            let c = Ref.checksum(data)
            let at = Int(rng.next() % 24) * 2
            switch rng.next() % 3 {
            case 0:
                let old = Ref.u16(data, at), new = UInt16(truncatingIfNeeded: rng.next())
                Ref.put16(&data, at, new)
                #expect(Checksum.update(checksum: c, old16: old, new16: new) == Ref.checksum(data), "\(replay)")
            case 1:
                let old = Ref.u32(data, at), new = UInt32(truncatingIfNeeded: rng.next())
                Ref.put32(&data, at, new)
                #expect(Checksum.update(checksum: c, old32: old, new32: new) == Ref.checksum(data), "\(replay)")
            default:
                let old = (Ref.u64(data, at), Ref.u64(data, at + 8))
                let new = (rng.next(), rng.next())
                for (i, b) in (Ref.be64(new.0) + Ref.be64(new.1)).enumerated() { data[at + i] = b }
                #expect(Checksum.update(checksum: c, old128: old, new128: new) == Ref.checksum(data), "\(replay)")
            }
        }
        // Edge values. A checksum of 0xffff only covers all-zero data; eqn. 3 gives the other
        // one's-complement zero for it (documented; unreachable for IP/TCP/UDP headers).
        #expect(Checksum.update(checksum: 0xffff, old16: 0, new16: 0) == 0, "\(replay)")
        #expect(Checksum.update(checksum: 0xffff, old16: 0, new16: 1) == 0xfffe, "\(replay)")
        #expect(Checksum.update(checksum: 0x0000, old16: 0xffff, new16: 0xffff) == 0x0000, "\(replay)")
    }

    @Test func crc32cVectors() {
        func crc(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { Checksum.crc32c($0.baseAddress!, length: bytes.count) } }
        #expect(crc(Array("123456789".utf8)) == 0xe306_9283)
        // RFC 3720 §B.4.
        #expect(crc([UInt8](repeating: 0, count: 32)) == 0x8a91_36aa)
        #expect(crc([UInt8](repeating: 0xff, count: 32)) == 0x62a8_ab43)
        #expect(crc((0..<32).map { UInt8($0) }) == 0x46dd_794e)
        #expect(crc((0..<32).reversed().map { UInt8($0) }) == 0x113f_db5c)
        var rng = SplitMix64(seed: TestSeed.resolve(5))
        let replay = TestSeed.replay(rng.seed)
        for length in 0..<200 {
            let bytes = rng.bytes(length)
            #expect(crc(bytes) == Ref.crc32c(bytes), "\(replay)")
            // Chaining.
            let split = length / 3
            let first = crc(Array(bytes[..<split]))
            let chained = Array(bytes[split...]).withUnsafeBytes {
                Checksum.crc32c($0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, length: length - split, initial: first)
            }
            #expect(chained == crc(bytes), "\(replay)")
        }
    }

    @Test func crc32cDeltaOfFirstWord() {
        var rng = SplitMix64(seed: TestSeed.resolve(6))
        let replay = TestSeed.replay(rng.seed)
        for _ in 0..<500 {
            let length = Int(rng.next() % 1500) + 4
            var bytes = rng.bytes(length)
            let before = Ref.crc32c(bytes)
            let old = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
            for i in 0..<4 { bytes[i] = UInt8(truncatingIfNeeded: rng.next()) }
            let new = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
            #expect(before ^ Checksum.crc32cDelta(firstWordXOR: old ^ new, length: length) == Ref.crc32c(bytes), "\(replay)")
        }
    }
}
