import Testing
import VSwiftPacket
import VSwiftTesting

@Suite("Flow shape (the bits a megaflow always keeps)")
struct FlowShapeTests {
    /// Frames that `FlowExtractor` parses differently (other headers, other offsets).
    static let shapes: [(String, [UInt8])] = [
        ("IPv4 TCP", Build.ipv4TCP()),
        ("IPv4 TCP, one tag", Build.ipv4TCP(tags: [(0x8100, 5)])),
        ("IPv4 TCP, two tags", Build.ipv4TCP(tags: [(0x88a8, 7), (0x8100, 5)])),
        ("IPv4 UDP", Build.ipv4UDP()),
        ("IPv4 ICMP", Build.ethernet(type: 0x0800, Build.ipv4(proto: 1, Build.icmp(type: 8, code: 0)))),
        ("IPv4 later fragment", Build.ethernet(type: 0x0800, Build.ipv4(proto: 6, frag: 0x0010, Build.tcp()))),
        ("IPv4 first fragment", Build.ethernet(type: 0x0800, Build.ipv4(proto: 6, frag: 0x2000, Build.tcp()))),
        ("IPv6 TCP", Build.ethernet(type: 0x86dd, Build.ipv6(next: 6, Build.tcp()))),
        ("ARP", Build.ethernet(type: 0x0806, [0, 1, 8, 0, 6, 4, 0, 1] + [UInt8](repeating: 0, count: 20))),
        ("802.3", Build.ethernet(type: 0x0040, [UInt8](repeating: 0, count: 64))),
    ]

    @Test func framesThatParseDifferentlyNeverShareAMegaflow() {
        let keys = Self.shapes.map { extract($0.1) }
        for a in keys.indices {
            let mask = FlowShape.mask(of: keys[a])
            for b in keys.indices where b != a {
                let inside = (0..<FlowKey.wordCount).allSatisfy { w in
                    keys[a][word: w] & mask[word: w] == keys[b][word: w] & mask[word: w]
                }
                #expect(!inside, "\(Self.shapes[b].0) would fall inside a megaflow of \(Self.shapes[a].0)")
            }
        }
    }

    /// The mask depends only on bits it keeps: keys inside it have the same mask.
    @Test func theMaskIsSelfConsistent() {
        var rng = SplitMix64(seed: TestSeed.resolve(0x5a9e))
        for (_, frame) in Self.shapes {
            let key = extract(frame)
            let mask = FlowShape.mask(of: key)
            for _ in 0..<200 {
                var other = FlowKey()
                for w in 0..<FlowKey.wordCount { other[word: w] = key[word: w] & mask[word: w] | rng.next() & ~mask[word: w] }
                #expect(FlowShape.mask(of: other) == mask, "\(TestSeed.replay(rng.seed))")
            }
        }
    }
}
