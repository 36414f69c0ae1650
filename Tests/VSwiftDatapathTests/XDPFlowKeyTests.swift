import CXDP
import Testing
import VSwiftDatapath
import VSwiftPacket
import VSwiftTesting

/// The XDP flow key (bpf/vswift_flowkey.h) against FlowExtractor, byte for byte: the XDP flow
/// cache is keyed by FlowKey's own layout, so a worker installs exactly the key it classified.
/// Runs the real program through BPF_PROG_RUN (root, a BPF-capable kernel: required under CI).
@Suite(.serialized) struct XDPFlowKeyTests {
    static let objectName = "vswift_flowkey_test.bpf.o"

    /// The harness program and its two maps, or nil (recorded as a failure under CI) when BPF is out of reach.
    struct Harness {
        let object: BPFObjectFile
        let program: Int32
        let keyMap: Int32
        let portMap: Int32

        static func load() -> Harness? {
            guard let path = BPFObjects.locate(XDPFlowKeyTests.objectName) else {
                Issue.record("\(XDPFlowKeyTests.objectName) not found: run scripts/build-bpf.sh and set VSWIFT_BPF_DIR")
                return nil
            }
            do {
                let object = try BPFObjectFile(path: path)
                return Harness(object: object, program: try object.programFD("vswift_flowkey_test"),
                               keyMap: try object.mapFD("vswift_test_key"), portMap: try object.mapFD("vswift_test_port"))
            } catch {
                Issue.record("cannot load \(path): \(error)")
                return nil
            }
        }

        func key(_ frame: [UInt8], inPort: UInt32) throws -> FlowKey {
            var zero: UInt32 = 0
            var port = inPort
            #expect(bpf_map_update_elem(portMap, &zero, &port, 0) == 0)
            var dirty = FlowKey()
            for i in 0..<FlowKey.wordCount { dirty[word: i] = 0xa5a5_a5a5_a5a5_a5a5 }
            #expect(bpf_map_update_elem(keyMap, &zero, &dirty, 0) == 0)
            let result = try XDPTestRun.run(programFD: program, frame: frame)
            #expect(result.action == XDPTestRun.pass)
            var key = FlowKey()
            #expect(bpf_map_lookup_elem(keyMap, &zero, &key) == 0)
            return key
        }
    }

    static func swiftKey(_ frame: [UInt8], inPort: UInt32) -> FlowKey {
        var key = FlowKey()
        frame.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: $0.count, inPort: inPort, into: &key) }
        return key
    }

    static func hex(_ key: FlowKey) -> String {
        (0..<FlowKey.wordCount).map { "w\($0)=" + String(key[word: $0], radix: 16) }.joined(separator: " ")
    }

    @Test func handPickedFramesMatchFlowExtractor() throws {
        guard let harness = Harness.load() else { return }
        let frames: [[UInt8]] = [
            Build.ipv4TCP(), Build.ipv4UDP(), Build.ipv6WithExtensions(),
            Build.ipv4TCP(tags: [(0x8100, 5)]), Build.ipv4TCP(tags: [(0x88a8, 7), (0x8100, 0x2005)]),
            Build.ipv4TCP(tags: [(0x88a8, 7), (0x8100, 8), (0x8100, 9)]),
            Build.ethernet(type: 0x0800, Build.ipv4(proto: 1, frag: 0x2000, Build.icmp(type: 8, code: 0))),
            Build.ethernet(type: 0x0800, Build.ipv4(proto: 6, frag: 0x0010, Build.tcp())),
            Build.ethernet(type: 0x86dd, Build.ipv6(next: 58, Build.icmpv6(type: 128, code: 0))),
            Build.ethernet(type: 0x0806, Ref.be16(1) + Ref.be16(0x0800) + [6, 4] + Ref.be16(2) + [UInt8](repeating: 7, count: 20)),
            Build.ethernet(type: 0x0042, [UInt8](repeating: 0, count: 46)),
            Array(Build.ipv4TCP().prefix(14)),
        ]
        for (i, frame) in frames.enumerated() {
            let bpf = try harness.key(frame, inPort: UInt32(i + 1))
            let swift = Self.swiftKey(frame, inPort: UInt32(i + 1))
            #expect(bpf == swift, "frame \(i): bpf \(Self.hex(bpf)) swift \(Self.hex(swift))")
        }
    }

    /// Seeded random frames, valid and malformed (RandomFrames): the BPF key equals FlowExtractor's.
    @Test func randomFramesMatchFlowExtractor() throws {
        guard let harness = Harness.load() else { return }
        var rng = SplitMix64(seed: TestSeed.resolve(0x17a))
        let replay = TestSeed.replay(rng.seed)
        var mismatches = 0
        for i in 0..<1500 {
            let frame = RandomFrames.next(&rng)
            let inPort = UInt32(truncatingIfNeeded: rng.next())
            let bpf = try harness.key(frame, inPort: inPort)
            let swift = Self.swiftKey(frame, inPort: inPort)
            if bpf != swift {
                mismatches += 1
                if mismatches <= 5 {
                    Issue.record("\(replay) frame \(i) \(frame.map { String($0, radix: 16) }): bpf \(Self.hex(bpf)) swift \(Self.hex(swift))")
                }
            }
        }
        #expect(mismatches == 0, "\(replay)")
    }
}
