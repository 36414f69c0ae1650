import CXDP
import Glibc
import Testing
@testable import vswift_bench

/// The live generator's program (bpf/vswift_trafficgen.bpf.c) on a page a switch has rewritten:
/// live mode recycles pages without copying the template back, so a frame LISP-encapsulated in
/// XDP comes back with outer headers over its Ethernet header. Runs the real program through
/// BPF_PROG_RUN (root and a BPF-capable kernel: required, as for the other BPF tests).
@Suite(.serialized) struct LiveGeneratorProgramTests {
    static let source: [UInt8] = [0x02, 0, 0, 0, 0, 1]
    static let destination: [UInt8] = [0x02, 0, 0, 0, 0, 2]
    /// enum xdp_action (linux/bpf.h).
    static let xdpDrop: Int32 = 1
    static let xdpTX: Int32 = 3

    func load() throws -> (program: GeneratorProgram, fd: Int32) {
        let directory = try Artifacts.bpfDirectory(explicit: nil)
        let program = try GeneratorProgram(path: "\(directory)/\(Artifacts.trafficgen)")
        return (program, try program.object.programFD("vswift_trafficgen"))
    }

    /// What an encapsulating switch leaves at the frame's start: the tail of the outer UDP header
    /// and the LISP header (RFC 9300 section 5.1) where the Ethernet header was.
    static func rewritten(_ template: [UInt8]) -> [UInt8] {
        var frame = template
        let outerTail: [UInt8] = [0x10, 0xf5, 0x00, 0x2c, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00]
        frame.replaceSubrange(0..<outerTail.count, with: outerTail)
        return frame
    }

    func run(_ fd: Int32, _ frame: [UInt8]) -> (verdict: Int32, frame: [UInt8]) {
        var out = [UInt8](repeating: 0, count: frame.count + 256)
        var outSize = UInt32(out.count), duration: UInt32 = 0
        let verdict = frame.withUnsafeBytes { input in
            vs_xdp_prog_run(fd, input.baseAddress, UInt32(frame.count), &out, &outSize, 1, &duration)
        }
        return (verdict, Array(out[0..<Int(outSize)]))
    }

    @Test(arguments: [60, 64, 127, 128, 1514])
    func rewrittenFrameIsRestoredToTheTemplate(size: Int) throws {
        let (program, fd) = try load()
        try program.configure(flows: 1)
        let template = FrameTemplate.udp(size: size, source: Self.source, destination: Self.destination)
        try program.restoreHeader(from: template)
        let result = run(fd, Self.rewritten(template))
        #expect(result.verdict == Self.xdpTX)
        #expect(result.frame == template, "the program's output differs from the template")
        #expect(program.frames == 1 && program.badFrames == 0)
    }

    /// Without the header restored (the program before the fix), the same page is not a template:
    /// dropped and counted bad — the "generated 0" of the LISP encap runs.
    @Test func withoutTheHeaderARewrittenFrameIsBad() throws {
        let (program, fd) = try load()
        try program.configure(flows: 1)
        let template = FrameTemplate.udp(size: 64, source: Self.source, destination: Self.destination)
        let result = run(fd, Self.rewritten(template))
        #expect(result.verdict == Self.xdpDrop)
        #expect(program.frames == 0 && program.badFrames == 1)
    }

    /// A LISP template (the decap scenario's frames, 114 bytes at 64 B inside) restored whole.
    @Test func lispTemplateIsRestored() throws {
        let (program, fd) = try load()
        try program.configure(flows: 1)
        let inner = FrameTemplate.udp(size: 64, source: Self.source, destination: Self.destination)
        let template = FrameTemplate.lisp(inner: inner, source: Self.source, destination: Self.destination,
                                          from: "198.19.1.2", to: "198.19.1.1")
        try program.restoreHeader(from: template)
        var damaged = template
        for i in 36..<min(template.count, 50) { damaged[i] = 0xee }  // decap's new Ethernet header
        let result = run(fd, damaged)
        #expect(result.verdict == Self.xdpTX)
        // The program stamps the (outer) UDP source port: base_port for flow 0.
        var expected = template
        expected[34] = UInt8(FrameTemplate.baseSourcePort >> 8)
        expected[35] = UInt8(FrameTemplate.baseSourcePort & 0xff)
        #expect(result.frame == expected)
    }
}
