import CXDP
import Glibc
import Testing
import VSwiftDatapath
import VSwiftPacket
import VSwiftTesting

/// The XDP flow cache's lookup structure (XDPFlowCacheMask: compact keys by size class, the
/// per-slot shape filter) against a reference written from the definition: a frame hits the entry
/// of the lowest mask slot whose masked key equals the entry's, or misses.
@Suite(.serialized) struct XDPFlowCacheLookupTests {
    typealias Fixture = XDPFlowCacheTests.Fixture

    static func mask(_ fields: [FlowField]) -> FlowKey {
        var mask = FlowKey()
        for field in fields { mask.set(field, field.layout.valueMask) }
        return mask
    }

    static func masked(_ key: FlowKey, _ mask: FlowKey) -> FlowKey {
        var out = FlowKey()
        for w in 0..<FlowKey.wordCount { out[word: w] = key[word: w] & mask[word: w] }
        return out
    }

    /// The entry's tag, written as the frame's Ethernet source: which entry the frame hit.
    static func tagged(_ tag: UInt64) -> [XDPFlowCacheAction] { [.setEthernetSource(tag), .output(slot: 1)] }

    static func hitTag(_ result: XDPTestRun.Result) -> UInt64? {
        guard result.action == XDPTestRun.redirect else { return nil }
        return Ref.u64([0, 0] + result.frame[6..<12], 0)
    }

    /// One mask of each size class (1 word, 4 words, 16 words) in one cache: each hits its own
    /// frame and only it; the 2- and 6-word tables and the full table are all probed.
    @Test func eachSizeClassHitsAndMisses() throws {
        guard let f = Fixture.make() else { return }
        let small = try #require(try f.cache.addMask(Self.mask([.inPort, .dlDst])))
        let large = try #require(try f.cache.addMask(Self.mask([.inPort, .dlType, .nwProto, .nwSrc, .nwDst, .tpSrc, .tpDst])))
        let full = try #require(try f.cache.addMask(XDPFlowCacheTests.exactMask))
        let a = Build.ipv4UDP(src: 1, dst: 2), b = Build.ipv4UDP(src: 3, dst: 4), c = Build.ipv4TCP()
        var aOther = a
        aOther[0] ^= 1  // another dl_dst: misses the small mask
        _ = try f.cache.install(maskSlot: small, key: XDPFlowCacheTests.key(aOther), actions: Self.tagged(1))
        _ = try f.cache.install(maskSlot: large, key: XDPFlowCacheTests.key(b), actions: Self.tagged(2))
        _ = try f.cache.install(maskSlot: full, key: XDPFlowCacheTests.key(c), actions: Self.tagged(3))
        #expect(Self.hitTag(try f.run(aOther)) == 1)
        #expect(Self.hitTag(try f.run(b)) == 2)
        #expect(Self.hitTag(try f.run(c)) == 3)
        #expect(Self.hitTag(try f.run(a)) == nil)
        #expect(Self.hitTag(try f.run(Build.ipv4UDP(src: 3, dst: 5))) == nil)
        // a's dl_dst differs from aOther's only; the small mask's table key holds dl_dst.
        _ = try f.cache.install(maskSlot: small, key: XDPFlowCacheTests.key(a), actions: Self.tagged(4))
        #expect(Self.hitTag(try f.run(a)) == 4)
    }

    /// Two entries of one slot share a shape bit (same in_port and dl_type): removing one leaves
    /// the bit set for the other; removing both clears it, and a removed entry is never hit again.
    @Test func removalKeepsSharedShapeBitsAndForgetsEntries() throws {
        guard let f = Fixture.make() else { return }
        let slot = try #require(try f.cache.addMask(Self.mask([.inPort, .dlType, .dlDst])))
        let a = Build.ipv4UDP()
        var b = Build.ipv4UDP()
        b[5] ^= 0x40
        let ia = try f.cache.install(maskSlot: slot, key: XDPFlowCacheTests.key(a), actions: Self.tagged(1))
        let ib = try f.cache.install(maskSlot: slot, key: XDPFlowCacheTests.key(b), actions: Self.tagged(2))
        #expect(try Self.hitTag(f.run(a)) == 1)
        #expect(try Self.hitTag(f.run(b)) == 2)
        f.cache.remove(id: ia)
        #expect(Self.hitTag(try f.run(a)) == nil, "removed: the next run misses")
        #expect(Self.hitTag(try f.run(b)) == 2, "the shared shape bit stays for b")
        f.cache.remove(id: ib)
        #expect(Self.hitTag(try f.run(b)) == nil)
        // Reinstalled after both went: the bit is set again.
        _ = try f.cache.install(maskSlot: slot, key: XDPFlowCacheTests.key(a), actions: Self.tagged(3))
        #expect(Self.hitTag(try f.run(a)) == 3)
        // An entry for another in_port (another shape) never matches this program's frames.
        _ = try f.cache.install(maskSlot: slot, key: XDPFlowCacheTests.key(b, inPort: 9), actions: Self.tagged(4))
        #expect(Self.hitTag(try f.run(b)) == nil)
    }

    static let fieldPool: [FlowField] = [.dlType, .vlanTCI, .dlSrc, .nwProto, .nwTos, .dlDst, .nwTTL, .nwFrag, .nwDst,
                                         .nwSrc, .tpDst, .tpSrc, .tcpFlags, .vlanOuterTCI, .ipv6Label, .ipv6SrcHigh,
                                         .ipv6SrcLow, .ipv6DstHigh, .ipv6DstLow, .arpSha, .arpTha]

    static func randomMask(_ rng: inout SplitMix64) -> FlowKey {
        var mask = FlowKey()
        if rng.next() % 4 != 0 { mask.set(.inPort, 0xffff_ffff) }
        for _ in 0..<Int(rng.next() % 9) {
            let field = fieldPool[Int(rng.next() % UInt64(fieldPool.count))]
            // Whole fields or a prefix of one (nw_src/16 and the like).
            let full = field.layout.valueMask
            let bits = UInt64(field.layout.bits)
            let kept = rng.next() % 3 == 0 ? 1 + rng.next() % bits : bits
            mask.set(field, full & ~((1 << (bits - kept)) - 1) & full)
        }
        return mask
    }

    /// Random masks (1 to 16 words, prefixes, with and without in_port) with random entries taken
    /// from random frames, installed and removed at random, masks freed and their slots reused:
    /// every frame hits exactly the entry the reference names (lowest slot first) or misses.
    @Test func randomMasksAndEntriesMatchTheReference() throws {
        guard let f = Fixture.make(capacity: 4096) else { return }
        var rng = SplitMix64(seed: TestSeed.resolve(0x17d1))
        let replay = TestSeed.replay(rng.seed)
        var frames: [[UInt8]] = []
        while frames.count < 48 {
            let frame = RandomFrames.next(&rng)
            if frame.count >= 14 { frames.append(frame) }  // the tag is written into the Ethernet header
        }
        let keys = frames.map { XDPFlowCacheTests.key($0) }
        /// slot → (mask, entries: tag → (id, masked key)).
        var slots: [Int: (mask: FlowKey, entries: [UInt64: (id: UInt32, masked: FlowKey)])] = [:]
        var nextTag: UInt64 = 1
        var hits = 0, misses = 0
        for round in 0..<40 {
            // Change the masks: add one, or (sometimes) free one with its entries.
            if slots.count < 3 || rng.next() % 4 != 0 {
                let mask = Self.randomMask(&rng)
                if let slot = try f.cache.addMask(mask), slots[slot] == nil { slots[slot] = (mask, [:]) }
            } else if let slot = slots.keys.sorted().dropFirst(Int(rng.next() % UInt64(slots.count))).first {
                try f.cache.removeMask(slot: slot)
                slots[slot] = nil
            }
            // Install entries from frames (sometimes as if another in_port), remove some.
            for _ in 0..<12 {
                guard let slot = slots.keys.sorted().dropFirst(Int(rng.next() % UInt64(max(slots.count, 1)))).first else { break }
                let n = Int(rng.next() % UInt64(frames.count))
                var key = keys[n]
                if rng.next() % 5 == 0 { key.set(.inPort, 7) }
                let masked = Self.masked(key, slots[slot]!.mask)
                if slots[slot]!.entries.values.contains(where: { $0.masked == masked }) { continue }
                let tag = nextTag
                nextTag += 1
                let id = try f.cache.install(maskSlot: slot, key: key, actions: Self.tagged(tag))
                slots[slot]!.entries[tag] = (id, masked)
            }
            for slot in slots.keys.sorted() where rng.next() % 3 == 0 {
                if let (tag, entry) = slots[slot]!.entries.first {
                    f.cache.remove(id: entry.id)
                    slots[slot]!.entries[tag] = nil
                }
            }
            for (n, frame) in frames.enumerated() {
                var expected: UInt64? = nil
                for slot in slots.keys.sorted() {
                    let masked = Self.masked(keys[n], slots[slot]!.mask)
                    if let (tag, _) = slots[slot]!.entries.first(where: { $0.value.masked == masked }) {
                        expected = tag
                        break
                    }
                }
                let got = Self.hitTag(try f.run(frame))
                if got != nil { hits += 1 } else { misses += 1 }
                #expect(got == expected, "\(replay) round \(round) frame \(n)")
            }
        }
        #expect(hits > 100 && misses > 20, "\(replay): \(hits) hits, \(misses) misses")
    }
}
