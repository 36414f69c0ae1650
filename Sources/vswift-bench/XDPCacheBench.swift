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
/// entries, a hit with rewrites, a LISP encapsulation, a LISP decapsulation (XDPCacheBench+Decap.swift).
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

        // Misses, k masks, each with one entry of this frame's in_port and dl_type (so the shape
        // filter passes) that the frame's tp_dst misses: every mask is probed. The first structure
        // (`compactKeys: false, shapeFilter: false`: the 136-byte key per probe) against the
        // current one, alternating, in one run; then the same masks 16 words wide (the full key
        // either way), and a frame of another dl_type (the shape filter skips every slot).
        let ipv6 = Build.ethernet(type: 0x86dd, Build.ipv6(next: 17, Build.udp(src: 40000, dst: 4789, [UInt8](repeating: 0xab, count: 6))))
        for k in [1, 4, 16, 32] {
            for (name, compact) in [("miss, every mask probed, first structure", false), ("miss, every mask probed, compact keys", true)] {
                let cache = try XDPFlowCache(capacity: 4096, portSlots: 16, compactKeys: compact, shapeFilter: compact)
                let program = try XDPFlowCacheProgram(objectPath: object, cache: cache, inPort: 1)
                try measure("miss, cache off", program, frame, masks: 0, entries: 0, only: k == 1 && compact)
                try cache.setEnabled(true)
                try addMissMasks(cache, k, wide: false)
                try measure(name, program, frame, masks: k, entries: k)
                if compact { try measure("miss, other dl_type (shape filter)", program, ipv6, masks: k, entries: k) }
                let wide = try XDPFlowCache(capacity: 4096, portSlots: 16, compactKeys: compact, shapeFilter: compact)
                let wideProgram = try XDPFlowCacheProgram(objectPath: object, cache: wide, inPort: 1)
                try wide.setEnabled(true)
                try addMissMasks(wide, k, wide: true)
                try measure(name + ", 16-word masks", wideProgram, frame, masks: k, entries: k)
            }
        }

        let small = try XDPFlowCache(capacity: 65536, portSlots: 16)
        let program = try XDPFlowCacheProgram(objectPath: object, cache: small, inPort: 1)
        try small.setPort(slot: 1, ifindex: if_nametoindex("lo"))
        try small.setEnabled(true)

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
        // IPv6 outer: the UDP checksum over the whole datagram is computed in XDP.
        try small.setLISPTemplate(slot: 0, XDPFlowCache.LISPTemplate(
            ethernetDestination: 0x0200_0000_00aa, ethernetSource: 0x0200_0000_00bb,
            sourceAddress: IPAddress(high: 0x2001_0db8_0000_0001, low: 1), destinationAddress: IPAddress(high: 0x2001_0db8_0000_0002, low: 2),
            instanceID: 1000))
        try measureOneByOne("hit LISP encap (IPv6 outer), one run per call", program, frame, masks: 1, entries: 1)
        let large6 = Build.ipv4UDP(src: 40000, dst: 4789, [UInt8](repeating: 0xab, count: 1400))
        try measureOneByOne("hit LISP encap (IPv6 outer), 1442-byte frame", program, large6, masks: 1, entries: 1)
        try small.removeAll()
        try measureDecap(object: object, inner: frame)

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

    /// `k` distinct masks (in_port, dl_type and a distinct tp_dst mask; `wide`: every other word
    /// too), each with one entry of in_port 1, IPv4, a tp_dst no frame of the bench has.
    func addMissMasks(_ cache: XDPFlowCache, _ k: Int, wide: Bool) throws {
        while cache.maskCount < k {
            var mask = FlowKey()
            if wide { for w in 0..<FlowKey.wordCount { mask[word: w] = .max } }
            mask.set(.inPort, 0xffff_ffff)
            mask.set(.dlType, 0xffff)
            mask.set(.tpDst, UInt64(cache.maskCount + 1))
            let slot = try cache.addMask(mask)!
            var key = FlowKey()
            key.set(.inPort, 1)
            key.set(.dlType, 0x0800)
            key.set(.nwProto, 17)  // the frame's: a wide mask's shape bit passes too
            key.set(.tpDst, UInt64(4789 ^ 0xffff))
            _ = try cache.install(maskSlot: slot, key: key, actions: [.drop])
        }
    }

    func measure(_ name: String, _ program: XDPFlowCacheProgram, _ frame: [UInt8], masks: Int, entries: Int, only: Bool = true) throws {
        guard only else { return }
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
