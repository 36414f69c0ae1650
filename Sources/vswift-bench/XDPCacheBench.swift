import ArgumentParser
import CXDP
import Foundation
import Glibc
import VSwiftDatapath
import VSwiftPacket
import VSwiftTesting

/// The XDP flow cache's cost per frame, measured by the kernel with BPF_PROG_RUN (`repeat`, no live
/// frames: the program runs on a copy of the frame; a redirect's transmit is not included): the
/// miss path with the cache off and on (k masks scanned), a p2p hit, a hit among 1M installed
/// entries, a hit with rewrites, a LISP encapsulation.
struct XDPCacheBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xdp-cache", abstract: "ns per frame of the XDP flow cache (BPF_PROG_RUN with repeat): misses, hits, 1M entries.")

    @Option(help: "Program runs per measurement (BPF_PROG_RUN repeat).")
    var `repeat`: UInt32 = 1_000_000

    @Option(help: "Measurements per case (the minimum is printed).")
    var runs: Int = 3

    @Option(help: "Installed entries for the large-table case.")
    var entries: Int = 1_000_000

    @Option(name: .customLong("bpf-dir"), help: "Directory of the BPF objects (default: $VSWIFT_BPF_DIR, next to the executable, .build/bpf).")
    var bpfDirectory: String?

    mutating func run() throws {
        _ = vs_pin_to_cpu(1)
        guard let object = BPFObjects.locate(BPFObjects.redirect, directory: bpfDirectory)
                ?? BPFObjects.locate(BPFObjects.redirect, directory: ".build/bpf") else {
            throw ValidationError("cannot find \(BPFObjects.redirect): run scripts/build-bpf.sh or pass --bpf-dir")
        }
        let frame = Build.ipv4UDP(src: 40000, dst: 4789, [UInt8](repeating: 0xab, count: 18)) // 64 bytes with FCS: 60 here
        print("XDP flow cache, BPF_PROG_RUN repeat \(self.repeat), min of \(runs) runs, \(frame.count)-byte UDP/IPv4 frame:")
        print(row(["case", "masks", "entries", "verdict", "ns/frame"]))

        let small = try XDPFlowCache(capacity: 65536, portSlots: 16)
        let program = try XDPFlowCacheProgram(objectPath: object, cache: small, inPort: 1)
        try small.setPort(slot: 1, ifindex: if_nametoindex("lo"))
        try measure("miss, cache off", program, frame, masks: 0, entries: 0)
        try small.setEnabled(true)
        // Masks that never match this frame's in_port: every one is scanned, then the socket path.
        var installed = 0
        for k in [1, 4, 16, 32] {
            while small.maskCount < k {
                var mask = FlowKey()
                mask.set(.inPort, 0xffff_ffff)
                mask.set(.tpDst, UInt64(small.maskCount)) // distinct masks
                let slot = try small.addMask(mask)!
                var key = FlowKey()
                key.set(.inPort, 99)
                _ = try small.install(maskSlot: slot, key: key, actions: [.drop])
                installed += 1
            }
            try measure("miss, cache on", program, frame, masks: k, entries: installed)
        }
        try small.removeAll()

        // p2p: in_port only, output to a port.
        var inPortMask = FlowKey()
        inPortMask.set(.inPort, 0xffff_ffff)
        let p2p = try small.addMask(inPortMask)!
        var key = FlowKey()
        key.set(.inPort, 1)
        let id = try small.install(maskSlot: p2p, key: key, actions: [.output(slot: 1)])
        try measure("hit p2p output", program, frame, masks: 1, entries: 1)
        try measureOneByOne("hit p2p output, one run per call", program, frame, masks: 1, entries: 1)
        small.remove(id: id)
        // Rewrites that do the same work on every repeat (BPF_PROG_RUN runs `repeat` times on one
        // buffer: a dec_ttl would run the TTL out, an address already set skips its checksum update).
        _ = try small.install(maskSlot: p2p, key: key, actions: [
            .setEthernetSource(0x0200_0000_0001), .setEthernetDestination(0x0200_0000_0002), .setTTL(63),
            .setTransportSource(1234), .output(slot: 1),
        ])
        try measure("hit rewrite (MACs, TTL, tp_src)", program, frame, masks: 1, entries: 1)
        try small.removeAll()
        _ = try small.addMask(inPortMask)
        try small.setLISPTemplate(slot: 0, XDPFlowCache.LISPTemplate(
            ethernetDestination: 0x0200_0000_00aa, ethernetSource: 0x0200_0000_00bb, source: 0xc000_0201,
            destination: 0xc633_6402, instanceID: 1000))
        _ = try small.install(maskSlot: p2p, key: key, actions: [.lispEncapsulate(template: 0), .output(slot: 1)])
        // The encapsulation grows the buffer's head: one run per call, the kernel's time per call.
        try measureOneByOne("hit LISP encap (IPv4 outer), one run per call", program, frame, masks: 1, entries: 1)
        try small.removeAll()

        // A large table: 5-tuple megaflows (in_port, addresses, protocol, ports), one hot flow.
        let large = try XDPFlowCache(capacity: entries, portSlots: 16)
        let largeProgram = try XDPFlowCacheProgram(objectPath: object, cache: large, inPort: 1)
        try large.setPort(slot: 1, ifindex: if_nametoindex("lo"))
        try large.setEnabled(true)
        var fiveTuple = FlowKey()
        for field in [FlowField.inPort, .dlType, .nwSrc, .nwDst, .nwProto, .tpSrc, .tpDst] {
            fiveTuple.set(field, field.layout.valueMask)
        }
        let slot = try large.addMask(fiveTuple)!
        var hot = FlowKey()
        frame.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: $0.count, inPort: 1, into: &hot) }
        let start = Date()
        for i in 0..<(entries - 1) {
            var k = hot
            k.set(.nwSrc, 0x0b00_0000 | UInt64(i >> 16))
            k.set(.tpSrc, UInt64(i & 0xffff))
            _ = try large.install(maskSlot: slot, key: k, actions: [.output(slot: 1)])
        }
        _ = try large.install(maskSlot: slot, key: hot, actions: [.output(slot: 1)])
        print("(installed \(entries) entries in \(String(format: "%.1f", Date().timeIntervalSince(start))) s)")
        try measure("hit among many (5-tuple)", largeProgram, frame, masks: 1, entries: entries)
    }

    func measure(_ name: String, _ program: XDPFlowCacheProgram, _ frame: [UInt8], masks: Int, entries: Int) throws {
        var best = UInt32.max
        var verdict: UInt32 = 0
        for _ in 0..<max(runs, 1) {
            let result = try XDPTestRun.run(programFD: program.programFD, frame: frame, repeat: self.repeat)
            best = min(best, result.nanosecondsPerRun)
            verdict = result.action
        }
        let verdicts: [UInt32: String] = [1: "drop (no socket)", 2: "pass", 3: "tx", 4: "redirect"]
        print(row([name, "\(masks)", "\(entries)", verdicts[verdict] ?? "\(verdict)", "\(best)"]))
    }

    /// For programs that change the frame's size: BPF_PROG_RUN with repeat 1, `calls` times; the
    /// mean of the kernel's per-call times (each includes one pair of clock reads).
    func measureOneByOne(_ name: String, _ program: XDPFlowCacheProgram, _ frame: [UInt8], masks: Int, entries: Int,
                         calls: Int = 200_000) throws {
        var best = Double.infinity
        var verdict: UInt32 = 0
        for _ in 0..<max(runs, 1) {
            var total: UInt64 = 0
            for _ in 0..<calls {
                let result = try XDPTestRun.run(programFD: program.programFD, frame: frame, repeat: 1)
                total += UInt64(result.nanosecondsPerRun)
                verdict = result.action
            }
            best = min(best, Double(total) / Double(calls))
        }
        let verdicts: [UInt32: String] = [1: "drop (no socket)", 2: "pass", 3: "tx", 4: "redirect"]
        print(row([name, "\(masks)", "\(entries)", verdicts[verdict] ?? "\(verdict)", String(format: "%.0f", best)]))
    }

    func row(_ cells: [String]) -> String {
        let widths = [48, 6, 9, 17, 9]
        return zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: " ")
    }
}
